"""Who did it: the processes each traced step started, and which of them
wrote each file and made each link, address and route.

Used by :mod:`libcni_py.tools.trace.tracer` while tracing, as root; never otherwise (not
even imported).  Three kernel interfaces, all only read:

* the **process events connector** (netlink ``NETLINK_CONNECTOR``,
  ``CN_IDX_PROC``, ``PROC_CN_MCAST_LISTEN``): a FORK, EXEC and EXIT event
  for every process of the machine.  A reader thread keeps those of the
  processes that descend from this one (the runtime), and reads
  ``/proc/<pid>/exe``, ``cmdline`` and the ``CNI_*`` variables of
  ``environ`` the moment one of them executes a program, so that a process
  that lives a millisecond (host-local, iptables) is still named (the thread
  runs at the lowest real-time priority, to be woken at once on a busy
  machine; a process gone all the same is named after the file it executed,
  which fanotify reports).  The kernel serves this interface in the initial
  network namespace only: when the runtime runs in another one (``ip netns
  exec``), the socket is made by a worker thread that enters the initial
  namespace (that of ``kthreadd``, pid 2, else of pid 1); it reports pids
  of the initial PID namespace only.
* **fanotify** (``FAN_REPORT_DFID_NAME``, a filesystem mark on each
  filesystem holding a watched directory): every entry created, written
  (closed after writing), renamed or deleted, with the pid of the process
  that did it and the file handle of its directory plus its name.  The
  queue is unlimited, so nothing is lost while a plugin runs; the events are
  read after the step.  A kernel without ``FAN_REPORT_DFID_NAME`` (before
  5.9) falls back to ``FAN_CLOSE_WRITE`` on mount marks: written files only,
  by path.
* **rtnetlink** notifications (links, addresses, routes) of the host's and
  the container's network namespace, timed by the reader thread: an address
  or a route names the process that requested it (the netlink port the
  kernel reports is the requester's pid); a link, for which the kernel
  names nobody, is put down to the innermost process of the call running
  when it appeared.

The before/after snapshots of :mod:`libcni_py.edges.probes` stay the source of
truth for *what* changed; this module says *who*: the events on a changed
path (matched by its directory's file handle and its name) or a changed
link, address or route, and the process tree, tell whether it was the
plugin, a program it ran (and run by whom), the runtime itself, or some
other process of the machine acting at the same time (never blamed on the
plugin).

The decoding of events from bytes, the tree and the attribution are pure
(:func:`parse_proc_events`, :func:`parse_fanotify`, :func:`parse_rtnetlink`,
:class:`ProcessTree`, :func:`pick_writer`, :func:`classify`,
:func:`net_writer`); the I/O (sockets, the reader thread, ctypes) is in
:class:`Observer`, which never raises: what it cannot look at is reported
as a reason (``unprobed``).
"""

from __future__ import annotations

import os
import struct
import threading

from ...core.value import Value
from ...errors import CNIError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from socket import socket
    from typing import Any, TypeAlias

    from ...edges.probes import Change

    #: (filesystem id, handle type, handle bytes) of a directory.
    HandleKey: TypeAlias = "tuple[int, int, bytes]"

__all__ = [
    "NEEDS_ROOT",
    "FileEvent",
    "NetEvent",
    "Observation",
    "Observer",
    "Proc",
    "ProcEvent",
    "ProcessTree",
    "Writer",
    "classify",
    "control_message",
    "describe_writer",
    "exec_opens",
    "handle_key",
    "net_key",
    "net_writer",
    "parse_fanotify",
    "parse_proc_events",
    "parse_rtnetlink",
    "pick_writer",
    "processes_json",
    "program_name",
    "program_path",
    "subject",
    "wait_status",
]

# --------------------------------------------------------------------------
# process events: <linux/connector.h>, <linux/cn_proc.h>

NETLINK_CONNECTOR = 11
CN_IDX_PROC = 1
CN_VAL_PROC = 1
PROC_CN_MCAST_LISTEN = 1
PROC_CN_MCAST_IGNORE = 2
PROC_EVENT_FORK = 0x1
PROC_EVENT_EXEC = 0x2
PROC_EVENT_EXIT = 0x80000000
NLMSG_DONE = 3

_NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
_CN_MSG = struct.Struct("=IIIIHH")  # idx, val, seq, ack, len, flags
_PROC_EVENT = struct.Struct("=IIQ")  # what, cpu, timestamp_ns (CLOCK_MONOTONIC)
_FORK = struct.Struct("=IIII")  # parent pid, parent tgid, child pid, child tgid
_EXEC = struct.Struct("=II")  # pid, tgid
_EXIT = struct.Struct("=IIIIII")  # pid, tgid, exit code, exit signal, parent pid, parent tgid
_HEADERS = _NLMSGHDR.size + _CN_MSG.size + _PROC_EVENT.size


class ProcEvent(Value):
    """One process event of the kernel's connector.

    Attributes:
        kind: ``fork``, ``exec`` or ``exit``.
        pid: the thread (for a fork: the new one).
        tgid: its process (thread group).
        parent: for a fork, the process that forked; for an exit, its parent.
        status: for an exit, the wait status (as ``waitpid`` gives it).
        ns: when, in nanoseconds of ``CLOCK_MONOTONIC`` (``time.monotonic``).
    """

    kind: str
    pid: int
    tgid: int
    parent: int = 0
    status: int = 0
    ns: int = 0


def control_message(op: int, port: int = 0) -> bytes:
    """The netlink message that subscribes to (``PROC_CN_MCAST_LISTEN``) or
    leaves (``PROC_CN_MCAST_IGNORE``) the process events."""
    payload = struct.pack("=I", op)
    cn = _CN_MSG.pack(CN_IDX_PROC, CN_VAL_PROC, 0, 0, len(payload), 0) + payload
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(cn), NLMSG_DONE, 0, 0, port) + cn


def parse_proc_events(data: bytes) -> list[ProcEvent]:
    """The FORK, EXEC and EXIT events in one datagram of the connector (other
    events, and messages that are not process events, are skipped)."""
    out: list[ProcEvent] = []
    offset = 0
    while offset + _NLMSGHDR.size <= len(data):
        length = _NLMSGHDR.unpack_from(data, offset)[0]
        if length < _NLMSGHDR.size or offset + length > len(data):
            break
        end = offset + length
        body = offset + _NLMSGHDR.size
        if end - offset >= _HEADERS:
            idx, val = _CN_MSG.unpack_from(data, body)[:2]
            if idx == CN_IDX_PROC and val == CN_VAL_PROC:
                what, _cpu, ns = _PROC_EVENT.unpack_from(data, body + _CN_MSG.size)
                at = offset + _HEADERS
                if what == PROC_EVENT_FORK and at + _FORK.size <= end:
                    _ppid, ptgid, cpid, ctgid = _FORK.unpack_from(data, at)
                    out.append(ProcEvent(kind="fork", pid=cpid, tgid=ctgid, parent=ptgid, ns=ns))
                elif what == PROC_EVENT_EXEC and at + _EXEC.size <= end:
                    pid, tgid = _EXEC.unpack_from(data, at)
                    out.append(ProcEvent(kind="exec", pid=pid, tgid=tgid, ns=ns))
                elif what == PROC_EVENT_EXIT and at + _EXIT.size <= end:
                    pid, tgid, code, _signal, _ppid, ptgid = _EXIT.unpack_from(data, at)
                    out.append(ProcEvent(kind="exit", pid=pid, tgid=tgid, parent=ptgid, status=code, ns=ns))
        offset += (length + 3) & ~3
    return out


#: Where, in a datagram holding one process event, the process it is about
#: is: the parent's tgid for a fork, the process's own for an exec or exit.
SUBJECT_OFFSET = _HEADERS + 4


def subject(data: bytes) -> int:
    """The process a datagram of one FORK, EXEC or EXIT event is about (see
    :data:`SUBJECT_OFFSET`), or -1 when it may hold more (parse it then).
    Lets the reader skip the events of the machine's other processes
    without decoding them."""
    if len(data) < SUBJECT_OFFSET + 4 or _NLMSGHDR.unpack_from(data)[0] != len(data):
        return -1
    return int(struct.unpack_from("=I", data, SUBJECT_OFFSET)[0])


def wait_status(status: int) -> int:
    """A wait status as an exit status: the code, or minus the signal."""
    signal = status & 0x7F
    return (status >> 8) & 0xFF if signal == 0 else -signal


# --------------------------------------------------------------------------
# the process tree

#: Programs that run a script named by a later argument (``#!`` lines).
INTERPRETERS = frozenset({"env", "sh", "bash", "dash", "python", "python3", "perl", "ruby", "node"})


def _is_interpreter(name: str) -> bool:
    return name in INTERPRETERS or (name.startswith("python3.") and name[8:].isdigit())


def program_path(argv: Sequence[str], exe: str) -> str:
    """The program a process runs: its ``argv[0]``, or, for an interpreter
    running a script (``/usr/bin/env python3 /opt/cni/bin/flannel``), the
    script; ``exe`` when ``argv`` is unknown."""
    if not argv:
        return exe
    if _is_interpreter(os.path.basename(argv[0])):
        for arg in argv[1:]:
            if arg.startswith("-") or _is_interpreter(os.path.basename(arg)):
                continue
            return arg
    return argv[0]


def program_name(argv: Sequence[str], exe: str) -> str:
    """The short name of what a process runs (``host-local``, ``iptables``,
    ``flannel``), from :func:`program_path`; ``?`` when unknown."""
    return os.path.basename(program_path(argv, exe)) or "?"


class Proc:
    """A process of the tree (filled in as its events arrive).

    Attributes:
        pid: its process ID.
        parent: the process that forked it (None for the root).
        started_ns, ended_ns: fork and exit times (``CLOCK_MONOTONIC`` ns), 0 if unknown.
        exe, argv, cni_env: what ``/proc`` said when it last executed a program
            (``cni_env``: its ``CNI_*`` variables); a fork that did not execute
            anything keeps its parent's.
        execs: how many programs it executed.
        exit_status: exit status (minus the signal that killed it), None if not seen.
        unread: why ``/proc`` could not be read after an exec, or "".
        in_plugin_dir: for a process gone before ``/proc`` could be read
            (whole or in part), whether the program it executed (known from
            fanotify) lies in a ``CNI_PATH`` directory.
    """

    __slots__ = (
        "pid",
        "parent",
        "started_ns",
        "ended_ns",
        "exe",
        "argv",
        "cni_env",
        "execs",
        "exit_status",
        "unread",
        "in_plugin_dir",
    )

    def __init__(self, pid: int, parent: Proc | None, started_ns: int = 0) -> None:
        self.pid = pid
        self.parent = parent
        self.started_ns = started_ns
        self.ended_ns = 0
        self.exe: str = parent.exe if parent else ""
        self.argv: tuple[str, ...] = parent.argv if parent else ()
        self.cni_env: dict[str, str] = dict(parent.cni_env) if parent else {}
        self.execs = 0
        self.exit_status: int | None = None
        self.unread = ""
        self.in_plugin_dir = False

    @property
    def program(self) -> str:
        """Its short name (see :func:`program_name`)."""
        return program_name(self.argv, self.exe)

    @property
    def is_plugin(self) -> bool:
        """True if it runs a CNI plugin: ``CNI_COMMAND`` is set and the program
        lies in a ``CNI_PATH`` directory (helpers a plugin runs, such as
        iptables, inherit ``CNI_COMMAND`` but live elsewhere)."""
        if not self.execs:
            return False
        if self.in_plugin_dir:
            return True
        if not self.cni_env.get("CNI_COMMAND"):
            return False
        where = os.path.dirname(program_path(self.argv, self.exe))
        dirs = [os.path.normpath(d) for d in self.cni_env.get("CNI_PATH", "").split(":") if d]
        return bool(where) and os.path.normpath(where) in dirs

    def ancestors(self) -> list[Proc]:
        """Its parent, grandparent, ... up to the root."""
        out: list[Proc] = []
        node = self.parent
        while node is not None:
            out.append(node)
            node = node.parent
        return out


class ProcessTree:
    """The processes that descend from ``root`` (the runtime), built from
    connector events in the order they arrive.

    Args:
        root: the process whose descendants are kept (the others, every other
            process of the machine, are ignored).
    """

    def __init__(self, root: int) -> None:
        self.root = Proc(root, None)
        self.current: dict[int, Proc] = {root: self.root}
        self.order: list[Proc] = []

    def apply(self, event: ProcEvent) -> Proc | None:
        """Take one event; returns the process when the event is an exec of
        one of the tree's (its ``/proc`` entries should be read now)."""
        if event.kind == "fork":
            parent = self.current.get(event.parent)
            if parent is None or event.pid != event.tgid:
                return None  # not ours, or a new thread
            child = Proc(event.tgid, parent, event.ns)
            self.current[event.tgid] = child  # a reused pid now names the new process
            self.order.append(child)
            return None
        proc = self.current.get(event.tgid)
        if proc is None or proc is self.root:
            return None
        if event.kind == "exec":
            proc.execs += 1
            return proc
        if event.kind == "exit" and event.pid == event.tgid:
            proc.exit_status = wait_status(event.status)
            proc.ended_ns = event.ns
        return None

    def name_unread(self, opened: Mapping[int, Sequence[tuple[str, str, bool]]]) -> None:
        """Name the processes that were gone before ``/proc`` could be read,
        from the programs each opened to execute (fanotify ``FAN_OPEN_EXEC``:
        pid -> ``(directory or "", name, in a CNI_PATH directory)`` in order;
        the first is the program itself, the later ones its interpreter or
        dynamic loader)."""
        for proc in self.order:
            files = opened.get(proc.pid)
            if not proc.unread or not files:
                continue
            directory, name, in_plugin_dir = next((f for f in files if f[2]), files[0])
            proc.in_plugin_dir = in_plugin_dir
            if not proc.argv:
                proc.exe = os.path.join(directory, name) if directory else name

    def find(self, pid: int) -> Proc | None:
        """The process of the tree that has (or last had) ``pid``."""
        return self.current.get(pid)

    def subtree(self, top: Proc) -> list[tuple[Proc, int]]:
        """``top`` and its descendants in the order they started, with their depth below ``top``."""
        out: list[tuple[Proc, int]] = [(top, 0)]
        depth: dict[int, int] = {id(top): 0}
        for proc in self.order:
            if proc.parent is not None and id(proc.parent) in depth and proc is not top:
                depth[id(proc)] = depth[id(proc.parent)] + 1
                out.append((proc, depth[id(proc)]))
        return out


# --------------------------------------------------------------------------
# fanotify: <linux/fanotify.h>

FAN_CLOEXEC = 0x1
FAN_NONBLOCK = 0x2
FAN_CLASS_NOTIF = 0x0
FAN_UNLIMITED_QUEUE = 0x10
FAN_REPORT_DFID_NAME = 0xC00
FAN_MARK_ADD = 0x1
FAN_MARK_MOUNT = 0x10
FAN_MARK_FILESYSTEM = 0x100
FAN_ATTRIB = 0x4
FAN_CLOSE_WRITE = 0x8
FAN_MOVED_FROM = 0x40
FAN_MOVED_TO = 0x80
FAN_CREATE = 0x100
FAN_DELETE = 0x200
FAN_OPEN_EXEC = 0x1000
FAN_Q_OVERFLOW = 0x4000
FAN_ONDIR = 0x40000000
FAN_NOFD = -1
FAN_EVENT_INFO_TYPE_DFID_NAME = 2
FAN_EVENT_INFO_TYPE_DFID = 3
FANOTIFY_METADATA_VERSION = 3

#: What the DFID_NAME group asks for (``FAN_OPEN_EXEC`` names the programs of
#: processes gone before ``/proc`` could be read).
DFID_MASK = (
    FAN_CREATE | FAN_DELETE | FAN_MOVED_FROM | FAN_MOVED_TO | FAN_CLOSE_WRITE | FAN_ATTRIB | FAN_OPEN_EXEC | FAN_ONDIR
)

_METADATA = struct.Struct("=IBBHQii")  # event_len, vers, reserved, metadata_len, mask, fd, pid
_INFO_HEADER = struct.Struct("=BBH")  # info_type, pad, len
_FSID = struct.Struct("=II")
_HANDLE_HEADER = struct.Struct("=Ii")  # handle_bytes, handle_type


class FileEvent(Value):
    """One fanotify event.

    Attributes:
        mask: what happened (``FAN_*`` bits; the kernel merges consecutive
            events of one process on one entry into one).
        pid: the process that did it.
        dir_key: the directory's (filesystem id, handle type, handle), or None.
        name: the entry's name in that directory ("" if none).
        fd: in fd mode, the descriptor of the file (the reader closes it).
        path: in fd mode, the file's path (filled in by the reader).
    """

    mask: int
    pid: int
    dir_key: HandleKey | None = None
    name: str = ""
    fd: int = -1
    path: str = ""


def fsid_value(val0: int, val1: int) -> int:
    """A ``__kernel_fsid_t`` as the one number ``os.statvfs().f_fsid`` gives."""
    return (val0 & 0xFFFFFFFF) | ((val1 & 0xFFFFFFFF) << 32)


def parse_fanotify(data: bytes) -> tuple[list[FileEvent], bool]:
    """The events in a buffer read from a fanotify group, and whether the
    queue overflowed (events were lost)."""
    events: list[FileEvent] = []
    overflow = False
    offset = 0
    while offset + _METADATA.size <= len(data):
        length, version, _reserved, meta_len, mask, fd, pid = _METADATA.unpack_from(data, offset)
        if length < _METADATA.size or offset + length > len(data) or version != FANOTIFY_METADATA_VERSION:
            break
        end = offset + length
        if mask & FAN_Q_OVERFLOW:
            overflow = True
            offset = end
            continue
        dir_key: HandleKey | None = None
        name = ""
        info = offset + meta_len
        while info + _INFO_HEADER.size <= end:
            info_type, _pad, info_len = _INFO_HEADER.unpack_from(data, info)
            if info_len < _INFO_HEADER.size or info + info_len > end:
                break
            if info_type in (FAN_EVENT_INFO_TYPE_DFID_NAME, FAN_EVENT_INFO_TYPE_DFID):
                at = info + _INFO_HEADER.size
                val0, val1 = _FSID.unpack_from(data, at)
                at += _FSID.size
                size, handle_type = _HANDLE_HEADER.unpack_from(data, at)
                at += _HANDLE_HEADER.size
                handle = data[at : at + size]
                dir_key = (fsid_value(val0, val1), handle_type, handle)
                if info_type == FAN_EVENT_INFO_TYPE_DFID_NAME:
                    raw = data[at + size : info + info_len].split(b"\0", 1)[0]
                    name = os.fsdecode(raw)
            info += info_len
        events.append(FileEvent(mask=mask, pid=pid, dir_key=dir_key, name=name, fd=fd))
        offset = end
    return events, overflow


# --------------------------------------------------------------------------
# network changes: rtnetlink notifications <linux/rtnetlink.h>

NETLINK_ROUTE = 0
RTM_NEWLINK, RTM_DELLINK = 16, 17
RTM_NEWADDR, RTM_DELADDR = 20, 21
RTM_NEWROUTE, RTM_DELROUTE = 24, 25
RTMGRP_LINK = 0x1
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV4_ROUTE = 0x40
RTMGRP_IPV6_IFADDR = 0x100
RTMGRP_IPV6_ROUTE = 0x400
#: The groups a trace listens to: links, addresses and routes, both families.
NET_GROUPS = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_IFADDR | RTMGRP_IPV6_ROUTE
IFLA_IFNAME = 3
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_DST, RTA_GATEWAY, RTA_TABLE = 1, 5, 15
RT_TABLE_MAIN = 254

_IFINFOMSG = struct.Struct("=BxHiII")  # family, type, index, flags, change
_IFADDRMSG = struct.Struct("=BBBBI")  # family, prefixlen, flags, scope, index
_RTMSG = struct.Struct("=BBBBBBBBI")  # family, dst_len, src_len, tos, table, protocol, scope, type, flags
_RTATTR = struct.Struct("=HH")  # len, type


class NetEvent(Value):
    """One rtnetlink notification: a link, address or route added or removed.

    Attributes:
        where: ``host`` or ``container``.
        kind: ``link``, ``address`` or ``route``.
        change: ``added`` (links: added or changed) or ``removed``.
        key: what :func:`net_key` gives for the matching change.
        pid: the netlink port of the request that caused it (the pid of the
            requesting process for its first netlink socket; 0 when the
            kernel does not say, as for links).
        ns: when it was received (``CLOCK_MONOTONIC`` ns).
    """

    where: str
    kind: str
    change: str
    key: str
    pid: int = 0
    ns: int = 0


def _rtattrs(data: bytes, start: int, end: int) -> dict[int, bytes]:
    attrs: dict[int, bytes] = {}
    while start + _RTATTR.size <= end:
        length, kind = _RTATTR.unpack_from(data, start)
        if length < _RTATTR.size or start + length > end:
            break
        attrs[kind & 0x3FFF] = data[start + _RTATTR.size : start + length]
        start += (length + 3) & ~3
    return attrs


def _ip(family: int, raw: bytes) -> str:
    import socket as socketlib

    return socketlib.inet_ntop(socketlib.AF_INET if family == 2 else socketlib.AF_INET6, raw)


def parse_rtnetlink(data: bytes, where: str, ns: int) -> list[NetEvent]:
    """The link, address and route notifications in one datagram of an
    rtnetlink socket (routes of the main table only, as the probes read)."""
    out: list[NetEvent] = []
    offset = 0
    while offset + _NLMSGHDR.size <= len(data):
        length, msg_type, _flags, _seq, port = _NLMSGHDR.unpack_from(data, offset)
        if length < _NLMSGHDR.size or offset + length > len(data):
            break
        end = offset + length
        body = offset + _NLMSGHDR.size
        try:
            if msg_type in (RTM_NEWLINK, RTM_DELLINK) and body + _IFINFOMSG.size <= end:
                name = _rtattrs(data, body + _IFINFOMSG.size, end).get(IFLA_IFNAME, b"").split(b"\0", 1)[0]
                if name:
                    change = "added" if msg_type == RTM_NEWLINK else "removed"
                    key = os.fsdecode(name)
                    out.append(NetEvent(where=where, kind="link", change=change, key=key, pid=port, ns=ns))
            elif msg_type in (RTM_NEWADDR, RTM_DELADDR) and body + _IFADDRMSG.size <= end:
                family, prefixlen = _IFADDRMSG.unpack_from(data, body)[:2]
                attrs = _rtattrs(data, body + _IFADDRMSG.size, end)
                raw = attrs.get(IFA_ADDRESS) or attrs.get(IFA_LOCAL)
                if raw and family in (2, 10):
                    change = "added" if msg_type == RTM_NEWADDR else "removed"
                    key = f"{_ip(family, raw)}/{prefixlen}"
                    out.append(NetEvent(where=where, kind="address", change=change, key=key, pid=port, ns=ns))
            elif msg_type in (RTM_NEWROUTE, RTM_DELROUTE) and body + _RTMSG.size <= end:
                family, dst_len, _src, _tos, table = _RTMSG.unpack_from(data, body)[:5]
                attrs = _rtattrs(data, body + _RTMSG.size, end)
                if RTA_TABLE in attrs and len(attrs[RTA_TABLE]) == 4:
                    table = struct.unpack("=I", attrs[RTA_TABLE])[0]
                if table == RT_TABLE_MAIN and family in (2, 10):
                    dst = _ip(family, attrs[RTA_DST]) if RTA_DST in attrs else ("0.0.0.0" if family == 2 else "::")  # noqa: S104
                    gateway = _ip(family, attrs[RTA_GATEWAY]) if RTA_GATEWAY in attrs else ""
                    change = "added" if msg_type == RTM_NEWROUTE else "removed"
                    key = f"{dst}/{dst_len} via {gateway}"
                    out.append(NetEvent(where=where, kind="route", change=change, key=key, pid=port, ns=ns))
        except (ValueError, OSError):
            pass  # an address of the wrong length: not a notification to use
        offset += (length + 3) & ~3
    return out


def net_key(change: Change) -> str | None:
    """The :attr:`NetEvent.key` of the notifications behind a network change
    of :mod:`libcni_py.edges.probes`, or None for other changes."""
    details = change.details
    if change.kind == "link":
        return str(details.get("name") or "") or None
    if change.kind == "address":
        return str(details.get("address") or "") or None
    if change.kind == "route":
        return f"{details.get('dst')} via {details.get('gateway') or ''}"
    return None


# --------------------------------------------------------------------------
# attribution

_WRITES = (
    (FAN_CREATE, "created"),
    (FAN_MOVED_TO, "renamed into place"),
    (FAN_CLOSE_WRITE, "wrote"),
    (FAN_ATTRIB, "changed attributes of"),
)
_REMOVES = ((FAN_DELETE, "deleted"), (FAN_MOVED_FROM, "renamed away"))


def pick_writer(events: Sequence[FileEvent], removed: bool) -> tuple[FileEvent, str] | None:
    """Of the events on one entry (in order), the one that explains its
    change, and what it did: for a removal the last delete or rename away;
    otherwise the last creation, rename into place or write, else the last
    change of attributes.  None if no event explains it."""
    if removed:
        for event in reversed(events):
            for bit, action in _REMOVES:
                if event.mask & bit:
                    return event, action
        return None
    for event in reversed(events):
        for bit, action in _WRITES[:3]:
            if event.mask & bit:
                return event, action
    for event in reversed(events):
        if event.mask & FAN_ATTRIB:
            return event, "changed attributes of"
    return None


class Writer(Value):
    """The process that made one change to a file.

    Attributes:
        pid: its pid.
        program: its short name (the plugin type for the plugin itself,
            ``libcni_py`` for the runtime).
        scope: ``call`` (the plugin or a process it started), ``runtime``
            (this process), or ``other`` (not started by this step).
        run_by: for ``call``, the programs above it up to the plugin
            (``("bridge", "flannel")``).
        action: ``created``, ``wrote``, ``renamed into place``, ``changed
            attributes of``, ``deleted`` or ``renamed away``.
        exe: its executable, when known.
        cni_command: its ``CNI_COMMAND`` if it is a CNI plugin, else "".
        basis: how it is known: ``event`` (fanotify named the process that
            did it), ``requester`` (the netlink notification named the
            process that asked for it), ``running`` (it happened while this
            process, the innermost one of the step, was running), ``address``
            (a kernel prefix route, added or removed with an address whose
            requester is known).
    """

    pid: int
    program: str
    scope: str
    run_by: tuple[str, ...] = ()
    action: str
    exe: str = ""
    cni_command: str = ""
    basis: str = "event"

    def to_json(self) -> dict[str, Any]:
        """As the ``writer`` of a change in ``--trace-json``."""
        return {
            "pid": self.pid,
            "program": self.program,
            "scope": self.scope,
            "runBy": list(self.run_by),
            "action": self.action,
            "exe": self.exe or None,
            "cniCommand": self.cni_command or None,
            "basis": self.basis,
        }


def exec_opens(
    events: Iterable[FileEvent], plugin_dirs: Mapping[HandleKey, str]
) -> dict[int, list[tuple[str, str, bool]]]:
    """The programs each pid opened to execute, in order (see
    :meth:`ProcessTree.name_unread`); a directory is known only if it is
    one of ``plugin_dirs``."""
    out: dict[int, list[tuple[str, str, bool]]] = {}
    for event in events:
        if event.mask & FAN_OPEN_EXEC and event.name:
            directory = plugin_dirs.get(event.dir_key) if event.dir_key is not None else None
            out.setdefault(event.pid, []).append((directory or "", event.name, directory is not None))
    return out


def describe_writer(writer: Mapping[str, Any], removed: bool, kind: str) -> str:
    """The words the timeline puts after a change (``written by host-local,
    pid 12, run by bridge <- flannel``; ``while bridge ran, pid 11, run by
    flannel``)."""
    if writer.get("basis") == "running":
        text = f"while {writer.get('program')} ran, pid {writer.get('pid')}"
    else:
        if kind in ("link", "address", "route"):
            verb = "removed" if removed else "added"
        else:
            verb = "removed" if removed else "created" if kind == "dir" else "written"
        how = ""
        if writer.get("basis") == "address":
            how = " " + str(writer.get("action", "")).partition(" ")[2]  # "with address 10.0.0.1/24"
        text = f"{verb} by {writer.get('program')}{how}, pid {writer.get('pid')}"
    if writer.get("runBy"):
        text += ", run by " + " <- ".join(writer["runBy"])
    if writer.get("scope") == "other":
        text += ", which this step did not start"
    return text


def _in_call(proc: Proc, top: Proc, top_name: str, action: str, basis: str) -> Writer | None:
    """``proc`` as a writer of the call whose plugin is ``top``, or None if it
    is not ``top`` nor below it."""
    if proc is top:
        return Writer(
            pid=proc.pid,
            program=top_name,
            scope="call",
            action=action,
            exe=proc.exe,
            cni_command=proc.cni_env.get("CNI_COMMAND", ""),
            basis=basis,
        )
    chain = proc.ancestors()
    if top not in chain:
        return None
    above = chain[: chain.index(top) + 1]
    return Writer(
        pid=proc.pid,
        program=proc.program,
        scope="call",
        action=action,
        run_by=tuple([top_name if p is top else p.program for p in above]),
        exe=proc.exe,
        cni_command=proc.cni_env.get("CNI_COMMAND", "") if proc.is_plugin else "",
        basis=basis,
    )


def classify(
    pid: int,
    action: str,
    *,
    tree: ProcessTree | None,
    top: Proc | None,
    top_name: str,
    self_pid: int,
    comm: str = "",
) -> Writer:
    """Who ``pid`` is to this step: the runtime, the plugin (``top``) or one of
    its descendants (with the programs in between), or another process."""
    if pid == self_pid:
        return Writer(pid=pid, program="libcni_py", scope="runtime", action=action, exe="")
    proc = tree.find(pid) if tree is not None else None
    if proc is not None and top is not None:
        writer = _in_call(proc, top, top_name, action, "event")
        if writer is not None:
            return writer
    if proc is not None:
        return Writer(pid=pid, program=proc.program, scope="other", action=action, exe=proc.exe)
    return Writer(pid=pid, program=comm or "?", scope="other", action=action)


def net_writer(events: Sequence[NetEvent], *, tree: ProcessTree, top: Proc, top_name: str) -> Writer | None:
    """Who made a network change, from the notifications behind it (in order):
    the process that requested one of them, when the kernel names it and it
    belongs to the call; else the innermost process of the call that was
    running when the first one arrived (``basis`` ``running``; the first,
    since the kernel follows a new link with notifications of its own, such
    as its carrier coming up, after the plugin is gone); None if neither."""
    for event in events:
        requester = tree.find(event.pid) if event.pid > 0 else None
        if requester is not None:
            writer = _in_call(requester, top, top_name, event.change, "requester")
            if writer is not None:
                return writer
    if not events:
        return None
    first = events[0]
    alive = [
        (depth, proc.started_ns, proc)
        for proc, depth in tree.subtree(top)
        if proc.started_ns <= first.ns and (not proc.ended_ns or first.ns <= proc.ended_ns)
    ]
    if not alive:
        return None
    _depth, _started, proc = max(alive, key=lambda item: (item[0], item[1]))
    return _in_call(proc, top, top_name, first.change, "running")


def processes_json(tree: ProcessTree, top: Proc, top_name: str, t0: float) -> list[dict[str, Any]]:
    """``top`` and every process below it, in the order they started (the
    ``processes`` of an exec event in ``--trace-json``)."""
    out: list[dict[str, Any]] = []
    for proc, depth in tree.subtree(top):
        plugin = proc is top or proc.is_plugin
        out.append(
            {
                "pid": proc.pid,
                "ppid": proc.parent.pid if proc.parent else None,
                "depth": depth,
                "program": top_name if proc is top else proc.program,
                "path": program_path(proc.argv, proc.exe) or None,
                "plugin": plugin,
                "cniCommand": proc.cni_env.get("CNI_COMMAND") if plugin else None,
                "exe": proc.exe or None,
                "argv": list(proc.argv),
                "cniEnv": dict(proc.cni_env) if plugin else {},
                "execs": proc.execs,
                "at": round(proc.started_ns / 1e9 - t0, 6) if proc.started_ns else None,
                "exitAt": round(proc.ended_ns / 1e9 - t0, 6) if proc.ended_ns else None,
                "exitStatus": proc.exit_status,
                "unread": proc.unread or None,
            }
        )
    return out


# --------------------------------------------------------------------------
# I/O: ctypes, sockets, the reader thread

_FILE_KINDS = ("file", "dir", "symlink", "other")
_AT_FDCWD = -100
_AT_HANDLE_FID = 0x200
_MAX_HANDLE_SZ = 128
_SO_RCVBUFFORCE = 33
_RCVBUF = 8 * 1024 * 1024
#: Directories under the watched roots whose handles are noted at the start
#: (so that a change under a directory removed meanwhile can still be matched).
MAX_DIRS_NOTED = 10_000

_LIBC: list[Any] = []

#: Why a plugin call's processes and writers are not watched without root.
NEEDS_ROOT = "processes and who made each change: need root (the kernel's process events connector, fanotify, netlink)"


class _Unavailable(CNIError):
    """This observation cannot be made here (the reason is reported, never raised out)."""


def _libc() -> Any:
    if not _LIBC:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.fanotify_init.argtypes = [ctypes.c_uint, ctypes.c_uint]
        libc.fanotify_mark.argtypes = [ctypes.c_int, ctypes.c_uint, ctypes.c_uint64, ctypes.c_int, ctypes.c_char_p]
        libc.name_to_handle_at.argtypes = [
            ctypes.c_int,
            ctypes.c_char_p,
            ctypes.c_void_p,
            ctypes.POINTER(ctypes.c_int),
            ctypes.c_int,
        ]
        _LIBC.append(libc)
    return _LIBC[0]


def _errno() -> int:
    import ctypes

    return ctypes.get_errno()


def handle_key(path: str) -> HandleKey | None:
    """The (filesystem id, handle type, handle) fanotify reports for the
    directory ``path``, or None if it cannot be had (gone, not supported)."""
    import ctypes

    libc = _libc()
    buf = ctypes.create_string_buffer(_HANDLE_HEADER.size + _MAX_HANDLE_SZ)
    mount_id = ctypes.c_int()
    encoded = os.fsencode(path)
    for flags in (_AT_HANDLE_FID, 0):
        _HANDLE_HEADER.pack_into(buf, 0, _MAX_HANDLE_SZ, 0)
        if libc.name_to_handle_at(_AT_FDCWD, encoded, buf, ctypes.byref(mount_id), flags) == 0:
            size, handle_type = _HANDLE_HEADER.unpack_from(buf.raw)
            try:
                fsid = os.statvfs(path).f_fsid
            except OSError:
                return None
            return (fsid, handle_type, buf.raw[_HANDLE_HEADER.size : _HANDLE_HEADER.size + size])
        if _errno() != 22:  # EINVAL: a kernel without AT_HANDLE_FID; try without
            return None
    return None


def _existing(path: str) -> str:
    """``path``, or its nearest ancestor that exists."""
    path = os.path.abspath(path)
    while not os.path.exists(path) and path != "/":
        path = os.path.dirname(path)
    return path


class _FileWatch:
    """A fanotify group marking the filesystems (or, in fd mode, the mounts)
    of some directories."""

    def __init__(self, roots: Sequence[str], *, mode: str, unlimited: bool) -> None:
        libc = _libc()
        queue = FAN_UNLIMITED_QUEUE if unlimited else 0
        base = FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_NONBLOCK | queue
        self.mode = ""
        self.fd = -1
        modes = ("dfid", "fd") if mode == "auto" else (mode,)
        problem = ""
        for candidate in modes:
            flags = base | (FAN_REPORT_DFID_NAME if candidate == "dfid" else 0)
            fd = libc.fanotify_init(flags, os.O_RDONLY | os.O_CLOEXEC | os.O_LARGEFILE)
            if fd < 0:
                problem = f"fanotify_init: {os.strerror(_errno())}"
                continue
            try:
                self._mark(fd, roots, candidate)
            except _Unavailable as exc:
                os.close(fd)
                problem = exc.msg
                continue
            self.fd, self.mode = fd, candidate
            break
        if self.fd < 0:
            raise _Unavailable(problem or "fanotify is not available")

    @staticmethod
    def _mark(fd: int, roots: Sequence[str], mode: str) -> None:
        libc = _libc()
        seen: set[int] = set()
        for root in roots:
            target = _existing(root)
            try:
                device = os.stat(target).st_dev
            except OSError:
                continue
            if device in seen:
                continue
            seen.add(device)
            if mode == "dfid":
                flags, mask = FAN_MARK_ADD | FAN_MARK_FILESYSTEM, DFID_MASK
            else:
                flags, mask = FAN_MARK_ADD | FAN_MARK_MOUNT, FAN_CLOSE_WRITE
            if libc.fanotify_mark(fd, flags, mask, _AT_FDCWD, os.fsencode(target)) != 0:
                raise _Unavailable(f"fanotify_mark({target}): {os.strerror(_errno())}")

    def drain(self) -> tuple[list[FileEvent], bool]:
        """Every event queued so far, and whether some were lost."""
        chunks: list[bytes] = []
        while True:
            try:
                chunk = os.read(self.fd, 1 << 18)
            except BlockingIOError:
                break
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        events: list[FileEvent] = []
        overflow = False
        for chunk in chunks:
            got, lost = parse_fanotify(chunk)
            overflow = overflow or lost
            events.extend(got)
        if self.mode == "fd":
            resolved = []
            for event in events:
                if event.fd >= 0:
                    try:
                        path = os.readlink(f"/proc/self/fd/{event.fd}")
                    except OSError:
                        path = ""
                    finally:
                        os.close(event.fd)
                    resolved.append(event.replace(fd=-1, path=path))
            events = resolved
        return events, overflow

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


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


def _note_dirs(roots: Sequence[str]) -> dict[str, HandleKey]:
    keys: dict[str, HandleKey] = {}
    stack = [r for r in roots if os.path.isdir(r)]
    while stack and len(keys) < MAX_DIRS_NOTED:
        directory = stack.pop()
        key = handle_key(directory)
        if key is not None:
            keys[directory] = key
        try:
            stack += [e.path for e in os.scandir(directory) if e.is_dir(follow_symlinks=False)]
        except OSError:
            continue
    return keys


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as fh:
            return fh.read().strip()
    except OSError:
        return ""


class Observer:
    """Watches one traced step: start it just before the step, :meth:`stop`
    it just after.  Never raises; what it cannot watch is in :attr:`unprobed`.

    Args:
        roots: the watched directories (their filesystems are marked).
        processes: also follow the processes this one starts (plugin calls).
        plugin_dirs: the ``CNI_PATH`` directories (their filesystems are
            marked too: a program executed from one of them is a plugin).
        netns: with ``processes``, the network namespaces whose link, address
            and route changes are timed, by name (``host``: this thread's,
            given as ""; ``container``: a path).
        file_mode: ``auto`` (``FAN_REPORT_DFID_NAME``, else fd mode), ``dfid``
            or ``fd`` (``FAN_CLOSE_WRITE`` on mounts: written files only).
        unlimited_queue: False keeps the kernel's default queue size (events
            beyond it are lost, and the observation says so).
    """

    def __init__(
        self,
        roots: Sequence[str],
        *,
        processes: bool,
        plugin_dirs: Sequence[str] = (),
        netns: Mapping[str, str] | None = None,
        file_mode: str = "auto",
        unlimited_queue: bool = True,
    ) -> None:
        self.unprobed: list[str] = []
        self._files: _FileWatch | None = None
        self._procs: _ProcWatch | None = None
        self._dir_keys: dict[str, HandleKey] = {}
        self._plugin_dirs: dict[HandleKey, str] = {}
        self.processes = processes
        if os.geteuid() != 0:
            self.unprobed.append(NEEDS_ROOT if processes else "file writers: need root (fanotify)")
            return
        try:
            self._files = _FileWatch([*roots, *plugin_dirs], mode=file_mode, unlimited=unlimited_queue)
        except _Unavailable as exc:
            self.unprobed.append(f"file writers: {exc.msg}")
        except OSError as exc:
            self.unprobed.append(f"file writers: {exc}")
        if self._files is not None and self._files.mode == "dfid":
            self._dir_keys = _note_dirs(roots)
            for directory in plugin_dirs:
                key = handle_key(directory)
                if key is not None:
                    self._plugin_dirs.setdefault(key, os.path.normpath(directory))
        if processes:
            try:
                self._procs = _ProcWatch(netns or {})
            except _Unavailable as exc:
                self.unprobed.append(f"processes: {exc.msg}")
            except OSError as exc:
                self.unprobed.append(f"processes: {exc}")

    def stop(self) -> Observation:
        """Stop watching.

        Returns:
            What was seen (the events still queued are read now, without
            waiting), with the reasons for what could not be watched.
        """
        events: list[FileEvent] = []
        overflow = False
        mode = ""
        if self._files is not None:
            events, overflow = self._files.drain()
            mode = self._files.mode
            self._files.close()
        tree: ProcessTree | None = None
        net_events: list[NetEvent] = []
        unprobed = list(self.unprobed)
        if self._procs is not None:
            self._procs.stop()
            tree = self._procs.tree
            tree.name_unread(exec_opens(events, self._plugin_dirs))
            net_events = self._procs.net_events
            unprobed += self._procs.net_problems
            if self._procs.net_lost:
                unprobed.append(
                    f"network: the kernel dropped link/address/route notifications {self._procs.net_lost} time(s)"
                )
            if self._procs.lost:
                unprobed.append(f"processes: the kernel dropped process events {self._procs.lost} time(s)")
            if self._procs.problem:
                unprobed.append(f"processes: the reader failed: {self._procs.problem}")
        if overflow:
            unprobed.append("file writers: the fanotify queue overflowed, some events were lost")
        if mode == "fd":
            unprobed.append(
                "file writers: this kernel lacks FAN_REPORT_DFID_NAME; only written files are attributed "
                "(not creations of folders, nor removals)"
            )
        return Observation(
            events=events,
            overflow=overflow,
            tree=tree,
            net_events=net_events,
            dir_keys=self._dir_keys,
            watching_files=self._files is not None,
            watching_processes=self._procs is not None,
            unprobed=unprobed,
        )


def _routes_gone_with_links(changes: list[Change]) -> list[Change]:
    """Routes the kernel removed because their link went (it sends no
    notification for those): the link's writer, ``removed with link X``."""
    gone = {
        (c.where, c.details.get("name")): c.details.get("writer")
        for c in changes
        if c.kind == "link" and c.change == "removed" and isinstance(c.details.get("writer"), dict)
    }
    out: list[Change] = []
    for change in changes:
        dev = change.details.get("dev")
        link_writer = gone.get((change.where, dev))
        if (
            change.kind == "route"
            and change.change == "removed"
            and change.details.get("writer") is None
            and link_writer
        ):
            writer = {**link_writer, "action": f"removed with link {dev}"}
            out.append(change.replace(details={**change.details, "writer": writer}))
        else:
            out.append(change)
    return out


def _prefix_routes_with_addresses(changes: list[Change]) -> list[Change]:
    """A ``proto kernel`` route is the prefix route the kernel adds (or drops)
    with an address: it is the address's writer's doing (``with address X``).

    Its own notification names no requester, and the process running when it
    is read may already be the caller of the one that added the address (a
    busy machine reads late), so the address's writer is the better evidence.
    """
    import ipaddress

    addresses: dict[tuple[str, str, str | None, str], dict[str, Any]] = {}
    for change in changes:
        writer = change.details.get("writer")
        if change.kind != "address" or not isinstance(writer, dict) or writer.get("basis") != "requester":
            continue
        try:
            network = str(ipaddress.ip_interface(str(change.details.get("address"))).network)
        except ValueError:
            continue
        addresses[(change.where, change.change, change.details.get("ifname"), network)] = {
            **writer,
            "action": f"{change.change} with address {change.details.get('address')}",
            "basis": "address",
        }
    if not addresses:
        return changes
    out: list[Change] = []
    for change in changes:
        writer = change.details.get("writer")
        basis = writer.get("basis") if isinstance(writer, dict) else None
        if change.kind == "route" and change.details.get("proto") == "kernel" and basis in (None, "running"):
            found = addresses.get(
                (change.where, change.change, change.details.get("dev"), str(change.details.get("dst")))
            )
            if found is not None:
                out.append(change.replace(details={**change.details, "writer": found}))
                continue
        out.append(change)
    return out


class Observation:
    """What an :class:`Observer` saw during one step."""

    def __init__(
        self,
        *,
        events: Sequence[FileEvent],
        overflow: bool,
        tree: ProcessTree | None,
        net_events: Sequence[NetEvent] = (),
        dir_keys: Mapping[str, HandleKey],
        watching_files: bool,
        watching_processes: bool,
        unprobed: Sequence[str],
    ) -> None:
        self.events = list(events)
        self.overflow = overflow
        self.tree = tree
        self.net_events = list(net_events)
        self.dir_keys = dict(dir_keys)
        self.watching_files = watching_files
        self.watching_processes = watching_processes
        self.unprobed = list(unprobed)
        self._by_entry: dict[tuple[HandleKey, str], list[FileEvent]] = {}
        self._by_path: dict[str, list[FileEvent]] = {}
        for event in self.events:
            if event.dir_key is not None and event.name:
                self._by_entry.setdefault((event.dir_key, event.name), []).append(event)
            elif event.path:
                self._by_path.setdefault(event.path, []).append(event)

    def top(self, pid: int) -> Proc | None:
        """The plugin process ``pid`` started by this process, if it was seen."""
        if self.tree is None or not pid:
            return None
        proc = self.tree.find(pid)
        return proc if proc is not None and proc.parent is self.tree.root else None

    def events_for(self, path: str) -> list[FileEvent]:
        """The events on the entry at ``path``, in order."""
        found = list(self._by_path.get(path, ()))
        if self._by_entry:
            parent, name = os.path.split(path)
            if parent not in self.dir_keys:
                key = handle_key(parent)
                if key is not None:
                    self.dir_keys[parent] = key
            if parent in self.dir_keys:
                found += self._by_entry.get((self.dir_keys[parent], name), ())
        return found

    def annotate(self, changes: Sequence[Change], *, top_pid: int = 0, top_name: str = "") -> list[Change]:
        """The changes, each with a ``writer`` in its details (what
        :meth:`Writer.to_json` gives, or None when nothing explains it):
        file changes when files were watched, links, addresses and routes
        when the plugin's processes and the network were; iptables changes
        unchanged (the processes list shows the iptables commands run)."""
        top = self.top(top_pid)
        self_pid = os.getpid()
        net: dict[tuple[str, str, str, str], list[NetEvent]] = {}
        for notice in self.net_events:
            net.setdefault((notice.where, notice.kind, notice.change, notice.key), []).append(notice)
        out: list[Change] = []
        for change in changes:
            writer: dict[str, Any] | None = None
            if change.kind in _FILE_KINDS:
                if not self.watching_files:
                    out.append(change)
                    continue
                picked = pick_writer(self.events_for(change.where), change.change == "removed")
                if picked is not None:
                    event, action = picked
                    comm = "" if event.pid == self_pid else _comm(event.pid)
                    writer = classify(
                        event.pid, action, tree=self.tree, top=top, top_name=top_name, self_pid=self_pid, comm=comm
                    ).to_json()
            elif change.kind in ("link", "address", "route") and self.tree is not None and top is not None:
                key = net_key(change)
                wanted = "removed" if change.change == "removed" else "added"
                found = net.get((change.where, change.kind, wanted, key or ""), [])
                who = net_writer(found, tree=self.tree, top=top, top_name=top_name)
                writer = who.to_json() if who is not None else None
            else:
                out.append(change)
                continue
            out.append(change.replace(details={**change.details, "writer": writer}))
        return _prefix_routes_with_addresses(_routes_gone_with_links(out))

    def processes(self, top_pid: int, top_name: str, t0: float) -> list[dict[str, Any]] | None:
        """The plugin's process and those it started (see :func:`processes_json`);
        None when processes were not watched or the plugin was not seen."""
        top = self.top(top_pid)
        if self.tree is None or top is None:
            return None
        return processes_json(self.tree, top, top_name, t0)
