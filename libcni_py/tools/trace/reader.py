"""The reader thread: the process events connector socket (entered in the
initial network namespace when needed), the rtnetlink sockets of the watched
namespaces, and the thread that reads them as events arrive, reading each
new program's ``/proc`` entries at once.

Part of :mod:`libcni_py.tools.trace.proc` (see there for the whole picture).
"""

from __future__ import annotations

import os
import threading

from ...errors import CNIError
from .filewatch import _RCVBUF, _SO_RCVBUFFORCE, _Unavailable
from .net_events import NET_GROUPS, NETLINK_ROUTE, NetEvent, parse_rtnetlink
from .nft_events import NETLINK_NETFILTER, NFNLGRP_NFTABLES
from .proc_events import (
    CN_IDX_PROC,
    NETLINK_CONNECTOR,
    PROC_CN_MCAST_IGNORE,
    PROC_CN_MCAST_LISTEN,
    control_message,
    parse_proc_events,
    subject,
)
from .proc_tree import Proc, ProcessTree

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from socket import socket


def _listen() -> socket:
    """A connector socket subscribed to process events, in this thread's
    network namespace.

    Raises:
        ConnectionRefusedError: this is not the initial network namespace.
        OSError: anything else.
    """
    import socket as socketlib

    sock = socketlib.socket(socketlib.AF_NETLINK, socketlib.SOCK_DGRAM | socketlib.SOCK_CLOEXEC, NETLINK_CONNECTOR)
    try:
        try:
            sock.setsockopt(socketlib.SOL_SOCKET, _SO_RCVBUFFORCE, _RCVBUF)
        except OSError:
            pass
        sock.bind((0, CN_IDX_PROC))
        sock.send(control_message(PROC_CN_MCAST_LISTEN))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _open_connector() -> socket:
    try:
        return _listen()
    except ConnectionRefusedError:
        pass
    except OSError as exc:
        raise _Unavailable(f"the process events connector: {exc.strerror or exc}") from None
    from ... import netns

    for candidate in ("/proc/2/ns/net", "/proc/1/ns/net"):
        try:
            return netns.run_in(candidate, _listen)
        except (OSError, CNIError):
            continue
    raise _Unavailable(
        "the process events connector answers in the initial network namespace only, and it could not be entered"
    )


def _read_proc(proc: Proc) -> None:
    """Fill in what ``/proc`` says about a process that just executed a
    program (its command line first: the process may be gone any moment)."""
    base = f"/proc/{proc.pid}"
    proc.exe, proc.argv, proc.cni_env = "", (), {}  # no longer its parent's program
    try:
        with open(f"{base}/cmdline", "rb") as fh:
            proc.argv = tuple(os.fsdecode(a) for a in fh.read().split(b"\0")[:-1])
        with open(f"{base}/environ", "rb") as fh:
            for item in fh.read().split(b"\0"):
                if item.startswith(b"CNI_"):
                    key, _, value = item.partition(b"=")
                    proc.cni_env[os.fsdecode(key)] = os.fsdecode(value)
        proc.exe = os.readlink(f"{base}/exe")
    except OSError as exc:
        gone = isinstance(exc, FileNotFoundError | ProcessLookupError)
        proc.unread = "gone before it could be read" if gone else str(exc)
        return
    proc.unread = ""


def _nft_socket() -> socket:
    """A netfilter netlink socket subscribed to nf_tables changes (tables,
    chains, rules: what iptables-nft does) of this thread's namespace."""
    import socket as socketlib

    flags = socketlib.SOCK_RAW | socketlib.SOCK_CLOEXEC | socketlib.SOCK_NONBLOCK
    sock = socketlib.socket(socketlib.AF_NETLINK, flags, NETLINK_NETFILTER)
    try:
        try:
            sock.setsockopt(socketlib.SOL_SOCKET, _SO_RCVBUFFORCE, _RCVBUF)
        except OSError:
            pass
        sock.bind((0, 1 << (NFNLGRP_NFTABLES - 1)))
    except BaseException:
        sock.close()
        raise
    return sock


def _rtnl_socket() -> socket:
    """An rtnetlink socket subscribed to link, address and route changes of
    this thread's network namespace."""
    import socket as socketlib

    flags = socketlib.SOCK_RAW | socketlib.SOCK_CLOEXEC | socketlib.SOCK_NONBLOCK
    sock = socketlib.socket(socketlib.AF_NETLINK, flags, NETLINK_ROUTE)
    try:
        try:
            sock.setsockopt(socketlib.SOL_SOCKET, _SO_RCVBUFFORCE, _RCVBUF)
        except OSError:
            pass
        sock.bind((0, NET_GROUPS))
    except BaseException:
        sock.close()
        raise
    return sock


class _ProcWatch:
    """The connector socket, the rtnetlink sockets of the namespaces a plugin
    call changes, and the thread that reads them."""

    def __init__(self, netns: Mapping[str, str]) -> None:
        self.sock = _open_connector()
        self.tree = ProcessTree(os.getpid())
        self.lost = 0
        self.net_lost = 0
        self.problem = ""
        self.net_events: list[NetEvent] = []
        self.net_problems: list[str] = []
        self._rtnl: dict[int, tuple[str, socket]] = {}
        for where, path in netns.items():
            try:
                if path:
                    from ... import netns as netnslib

                    sock = netnslib.run_in(path, _rtnl_socket)
                else:
                    sock = _rtnl_socket()
            except (OSError, CNIError) as exc:
                self.net_problems.append(f"{where} network: who made each change: {exc}")
                continue
            self._rtnl[sock.fileno()] = (where, sock)
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._thread = threading.Thread(target=self._loop, name="libcni_py-proctrace", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        import select

        # Short-lived processes (host-local, iptables) are gone a millisecond
        # after they start; on a busy machine an ordinary thread is woken too
        # late to read their /proc entries (and to time the network changes).
        # The lowest real-time priority makes it run at once; it sleeps in
        # poll() otherwise, does a few microseconds of work per event, and
        # only this thread is affected.
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
        except (OSError, AttributeError):
            pass
        poller = select.poll()
        poller.register(self.sock.fileno(), select.POLLIN)
        for fd in self._rtnl:
            poller.register(fd, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        try:
            while True:
                ready = {fd for fd, _ in poller.poll()}
                self._drain_net(ready)
                self._drain()
                if self._wake_r in ready:
                    self._drain_net(set(self._rtnl))
                    self._drain()
                    return
        except Exception as exc:  # a reader that dies must say so, not kill the trace
            self.problem = f"{type(exc).__name__}: {exc}"

    def _drain(self) -> None:
        import errno

        while True:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:
                    self.lost += 1
                    continue
                raise
            who = subject(data)
            if who >= 0 and who not in self.tree.current:
                continue  # another process of the machine
            for event in parse_proc_events(data):
                proc = self.tree.apply(event)
                if proc is not None:
                    _read_proc(proc)

    def _drain_net(self, ready: set[int]) -> None:
        import errno
        import time

        for fd in ready & set(self._rtnl):
            where, sock = self._rtnl[fd]
            while True:
                try:
                    data = sock.recv(65536)
                except BlockingIOError:
                    break
                except OSError as exc:
                    if exc.errno == errno.ENOBUFS:
                        self.net_lost += 1
                        continue
                    raise
                self.net_events += parse_rtnetlink(data, where, time.monotonic_ns())

    def stop(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass
        self._thread.join()
        try:
            self.sock.send(control_message(PROC_CN_MCAST_IGNORE))
        except OSError:
            pass
        self.sock.close()
        for _where, sock in self._rtnl.values():
            sock.close()
        os.close(self._wake_r)
        os.close(self._wake_w)
