"""``cnitool watch``: every CNI plugin call any process of the node makes,
and what each call changed, seen from outside the call path.

Same kernel interfaces as ``--trace`` (see :mod:`.proc`), without being the
runtime:

* process events: a process that executes a program with ``CNI_COMMAND`` in
  its environment (read from ``/proc/<pid>/environ`` at its exec) is a
  plugin call; it and what it starts are followed (bridge -> host-local,
  portmap -> iptables); every other process of the machine is ignored.  The
  process that started it is *the runtime* (containerd, podman, cnitool).
* fanotify on the cache and plugin data dirs: who created, wrote or removed
  each file (the plugins, and the runtime's own ``results/`` record).
* rtnetlink in the node's network namespace (``--netns``) and in each call's
  ``CNI_NETNS``: links, addresses, routes; nf_tables notifications
  (:mod:`.nft_events`) in the node's namespace: iptables chains and rules.

Calls are grouped into *operations*: the calls one runtime process makes
with one ``CNI_COMMAND``, container ID and ifname (one ADD of a chain, one
DEL).  An operation is finished when its calls have exited and nothing came
for ``linger`` seconds (the runtime writes its record after the chain); it is
then printed, written to the JSON file and dropped, so memory stays flat.

What it cannot see: a plugin's stdin (the network configuration) is a pipe
between the runtime and the plugin.  The network is named from the runtime's
record (``results/<network>-<id>-<ifname>``), else guessed from the conf dir
(the plugin types of the chain), and the report says which.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import select
import signal
import time

from ...edges import spawn
from ...errors import CNIError
from .attribution import Writer, in_call
from .fanotify_events import FAN_CLOSE_WRITE, FAN_CREATE, FAN_DELETE, FAN_MOVED_FROM, FAN_MOVED_TO, FAN_ONDIR
from .filewatch import _FileWatch, _Unavailable, handle_key
from .net_events import parse_rtnetlink
from .nft_events import parse_nft
from .observer import _note_dirs
from .proc_events import parse_proc_events, subject, wait_status
from .proc_tree import Proc, process_json, program_name, program_path, subtree
from .reader import _nft_socket, _open_connector, _read_proc, _rtnl_socket
from .text import process_label, process_status, terminal_safe

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from socket import socket
    from typing import IO, Any

__all__ = ["NEEDS_ROOT", "Operation", "Watcher", "guess_network"]

NEEDS_ROOT = (
    "watch needs root (the kernel's process events connector, fanotify and netlink are root-only); run it with sudo"
)
_MASK_CREATED = FAN_CREATE | FAN_MOVED_TO
_MASK_REMOVED = FAN_DELETE | FAN_MOVED_FROM


class Operation:
    """The calls one runtime process made for one ``CNI_COMMAND``, container
    ID and ifname, and what they changed."""

    __slots__ = ("seq", "runtime", "key", "procs", "changes", "started_ns", "last_ns", "netns", "network")

    def __init__(self, seq: int, runtime: dict[str, Any], key: tuple[int, str, str, str], now: int) -> None:
        self.seq = seq
        self.runtime = runtime
        self.key = key
        self.procs: list[Proc] = []
        self.changes: list[dict[str, Any]] = []
        self.started_ns = now
        self.last_ns = now
        self.netns = ""
        self.network: dict[str, str] = {}

    @property
    def command(self) -> str:
        return self.key[1]

    @property
    def container_id(self) -> str:
        return self.key[2]

    @property
    def ifname(self) -> str:
        return self.key[3]

    def running(self) -> bool:
        """Whether a call of it is still running."""
        return any(p.exit_status is None and p.parent is None for p in self.procs)


_CONF_CACHE: dict[str, tuple[object, list[tuple[str, str, list[str]]]]] = {}


def _conf_networks(conf_dir: str) -> list[tuple[str, str, list[str]]]:
    """``(file, network name, plugin types)`` of each conf file, loaded as
    every command loads them (files that do not load skipped); read again
    only when the conf dir changed (:func:`libcni_py.runtime.confdir.snapshot`)."""
    from ...core import netconf
    from ...errors import ConfigError
    from ...runtime.confdir import snapshot

    seen = snapshot(conf_dir)
    cached = _CONF_CACHE.get(conf_dir)
    if cached is not None and cached[0] == seen:
        return cached[1]
    out: list[tuple[str, str, list[str]]] = []
    for path in netconf.conf_files(conf_dir, netconf.CONF_EXTENSIONS) if seen else ():
        try:
            netlist = netconf.load_any_file(path, strict=False)
        except ConfigError:
            continue
        out.append((os.path.basename(path), netlist.name, [p.type for p in netlist.plugins]))
    _CONF_CACHE[conf_dir] = (seen, out)
    return out


def guess_network(
    conf_dir: str, types: Sequence[str], record_network: str, ifname: str, runtime: str
) -> dict[str, str]:
    """Which network (and conf file) a chain of calls most likely came from,
    and why: the plugin's stdin cannot be read.  Pure but for reading ``conf_dir``.

    Args:
        types: the plugin types the runtime ran, in order.
        record_network: the network named by the runtime's record file
            (``results/<network>-<id>-<ifname>``), or "".
    """
    confs = _conf_networks(conf_dir)
    if record_network:
        for name, network, _types in confs:
            if network == record_network:
                why = f"the runtime's record results/{record_network}-...-{ifname} names it; {name} declares it"
                return {"network": network, "file": os.path.join(conf_dir, name), "why": why}
        why = (
            f"the runtime's record names network {record_network!r}, which no file of {conf_dir} declares: "
            f"a network {runtime or 'the runtime'} builds itself"
        )
        return {"network": record_network, "file": "", "why": why}
    unique_types = list(dict.fromkeys(types))
    matches = [(n, net) for n, net, t in confs if unique_types and all(x in t for x in unique_types)]
    if len(matches) == 1:
        name, network = matches[0]
        why = f"the only file of {conf_dir} whose plugins include {', '.join(unique_types)}"
        return {"network": network, "file": os.path.join(conf_dir, name), "why": why}
    if matches:
        name, network = matches[0]
        why = (
            f"{len(matches)} files of {conf_dir} have plugins {', '.join(unique_types)}; "
            f"the first in the runtime's order is taken"
        )
        return {"network": network, "file": os.path.join(conf_dir, name), "why": why}
    why = f"no file of {conf_dir} has plugins {', '.join(unique_types) or '?'}"
    if ifname == "lo":
        why += f"; ifname lo: a loopback network {runtime or 'the runtime'} builds itself"
    return {"network": "", "file": "", "why": why}


def _record_network(changes: Sequence[dict[str, Any]], cid: str, ifname: str) -> str:
    """The network a runtime's record file names (``results/<net>-<cid>-<ifname>``)."""
    from ...core.record import RESULTS_FOLDER, key_from_filename

    for change in changes:
        folder, _, name = str(change.get("rel", "")).partition("/")
        key = key_from_filename(name, container_id=cid) if (folder,) == RESULTS_FOLDER and cid else None
        if key is not None and key.ifname == ifname:
            return key.network
    return ""


def _runtime_info(pid: int) -> dict[str, Any]:
    out: dict[str, Any] = {"pid": pid, "program": "?", "argv": []}
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            argv = [os.fsdecode(a) for a in fh.read().split(b"\0")[:-1]]
        out["argv"] = argv
        exe = os.readlink(f"/proc/{pid}/exe")
        out["exe"] = exe
        out["program"] = program_name(argv, exe) or "?"
    except OSError:
        pass
    return out


def _ppid(pid: int) -> int:
    stat = spawn.proc_stat(str(pid))
    return stat[0] if stat is not None else 0


def _in_root(root: str, path: str) -> str:
    """``path`` as seen by a process whose root is ``root`` (``/proc/PID/root``),
    its symbolic links resolved there (``/var/run`` -> ``/run``), not here."""
    parts = [p for p in path.split("/") if p]
    done = ""
    for _ in range(40):
        if not parts:
            break
        part = parts.pop(0)
        here = f"{root}{done}/{part}"
        if os.path.islink(here):
            target = os.readlink(here)
            parts = [p for p in target.split("/") if p] + parts
            if target.startswith("/"):
                done = ""
            continue
        done = os.path.normpath(f"{done}/{part}") if part != ".." else os.path.dirname(done)
    return f"{root}{done}"


def _netns_ino(path: str) -> int:
    try:
        return os.stat(path).st_ino
    except OSError:
        return -1


def _top(proc: Proc) -> Proc:
    """The call's own process: the plugin the runtime ran (the last ancestor)."""
    chain = proc.ancestors()
    return chain[-1] if chain else proc


def _has_cni_command(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            data = fh.read()
    except OSError:
        return False
    return data.startswith(b"CNI_COMMAND=") or b"\0CNI_COMMAND=" in data


class Watcher:
    """Watch the node; :meth:`run` until stopped.  Needs root.

    Args:
        roots: directories whose file changes are attributed (``{label: dir}``:
            the cache dir, plugin data dirs).
        netns: the node's network namespace (a path), "" for this one.
        conf_dir: where networks are looked up for the guess.
        emit: called with each finished operation's text block.
        sink: a file the JSON events are written to (or None).
        linger: seconds of quiet after an operation's calls that end it.
    """

    def __init__(
        self,
        roots: dict[str, str],
        *,
        netns: str = "",
        conf_dir: str = "/etc/cni/net.d",
        emit: Callable[[str], None] = print,
        sink: IO[str] | None = None,
        linger: float = 1.0,
    ) -> None:
        if os.geteuid() != 0:
            raise CNIError(NEEDS_ROOT)
        self.roots = {k: os.path.abspath(v) for k, v in roots.items()}
        self.conf_dir = conf_dir
        self.emit = emit
        self.sink = sink
        self.linger_ns = int(linger * 1e9)
        self.t0 = time.monotonic()
        self.unprobed: list[str] = []
        self.procs: dict[int, Proc] = {}
        self.op_of: dict[int, Operation] = {}
        self.open_ops: dict[tuple[int, str, str, str], Operation] = {}
        self.finished = 0
        self.peak_open = 0
        self.peak_procs = 0
        self.ignored = 0
        self.seq = 0
        self.event_seq = 0
        self._first_event = True
        self._stop = False
        self.poller = select.poll()  # every socket and the file watch, registered as they open
        self.conn = _open_connector()
        self.poller.register(self.conn.fileno(), select.POLLIN)
        self.net_socks: dict[int, tuple[str, socket]] = {}
        self.ns_socks: dict[str, int] = {}  # container netns path -> fd
        self.nft: socket | None = None
        self.node_netns = netns
        self.netns_ino = _netns_ino(netns) if netns else 0
        self.other_netns = 0
        self._open_node_net(netns)
        self.files: _FileWatch | None = None
        self.dirs: dict[Any, str] = {}
        try:
            self.files = _FileWatch(list(self.roots.values()), mode="dfid", unlimited=True)
            self.poller.register(self.files.fd, select.POLLIN)
            self.dirs = {key: path for path, key in _note_dirs(list(self.roots.values())).items()}
        except (_Unavailable, OSError) as exc:
            self.unprobed.append(f"file changes: {getattr(exc, 'msg', exc)}")
        if sink is not None:
            head = {
                "schema": "libcni_py.trace/2",
                "watch": "libcni_py.watch/1",
                "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "command": ["cnitool", "watch"],
                "runtime": "runtime",
                "cacheDir": self.roots.get("cache", ""),
                "roots": self.roots,
                "netns": netns or "this one",
                "confDir": conf_dir,
            }
            sink.write(json.dumps(head)[:-1] + ', "events": [\n')
            sink.flush()

    # ------------------------------------------------------------ sockets

    def _open_node_net(self, netns: str) -> None:
        from ... import netns as netnslib

        try:
            rtnl = netnslib.run_in(netns, _rtnl_socket) if netns else _rtnl_socket()
            self.net_socks[rtnl.fileno()] = ("node", rtnl)
            self.poller.register(rtnl.fileno(), select.POLLIN)
        except (OSError, CNIError) as exc:
            self.unprobed.append(f"links, addresses and routes of the node: {exc}")
        try:
            self.nft = netnslib.run_in(netns, _nft_socket) if netns else _nft_socket()
            self.poller.register(self.nft.fileno(), select.POLLIN)
        except (OSError, CNIError) as exc:
            self.unprobed.append(f"iptables changes (nf_tables): {exc}")

    def _watch_container_netns(self, proc: Proc) -> None:
        path = proc.cni_env.get("CNI_NETNS", "")
        if not path or path in self.ns_socks:
            return
        from ... import netns as netnslib

        for pid in (proc.pid, _ppid(proc.pid)):
            try:
                sock = netnslib.run_in(_in_root(f"/proc/{pid}/root", path), _rtnl_socket)
            except (OSError, CNIError):
                continue
            self.net_socks[sock.fileno()] = ("container", sock)
            self.ns_socks[path] = sock.fileno()
            self.poller.register(sock.fileno(), select.POLLIN)
            return

    def _close_container_netns(self, path: str) -> None:
        if any(op.netns == path for op in self.open_ops.values()):
            return
        fd = self.ns_socks.pop(path, None)
        if fd is not None:
            _where, sock = self.net_socks.pop(fd)
            self.poller.unregister(fd)
            sock.close()

    # ------------------------------------------------------------ events

    def _now(self) -> int:
        return time.monotonic_ns()

    def _on_proc_data(self, data: bytes) -> None:
        who = subject(data)
        for event in parse_proc_events(data):
            if event.kind == "fork":
                parent = self.procs.get(event.parent)
                if parent is not None and event.pid == event.tgid:
                    child = Proc(event.tgid, parent, event.ns)
                    self.procs[event.tgid] = child
                    op = self.op_of[parent.pid]
                    self.op_of[event.tgid] = op
                    op.procs.append(child)
                    op.last_ns = self._now()
            elif event.kind == "exec":
                proc = self.procs.get(event.tgid)
                if proc is not None:
                    proc.execs += 1
                    _read_proc(proc)
                elif who >= 0 and _has_cni_command(event.tgid):
                    self._new_call(event.tgid, event.ns)
            elif event.kind == "exit" and event.pid == event.tgid:
                proc = self.procs.get(event.tgid)
                if proc is not None:
                    proc.exit_status = wait_status(event.status)
                    proc.ended_ns = event.ns
                    self.op_of[proc.pid].last_ns = self._now()

    def _new_call(self, pid: int, ns: int) -> None:
        proc = Proc(pid, None, ns)
        proc.execs = 1
        _read_proc(proc)
        if not proc.cni_env.get("CNI_COMMAND"):
            return
        if self.netns_ino and _netns_ino(f"/proc/{pid}/ns/net") != self.netns_ino:
            self.other_netns += 1  # a call of another node (network namespace)
            return
        runtime_pid = _ppid(pid)
        key = (
            runtime_pid,
            proc.cni_env.get("CNI_COMMAND", ""),
            proc.cni_env.get("CNI_CONTAINERID", ""),
            proc.cni_env.get("CNI_IFNAME", ""),
        )
        op = self.open_ops.get(key)
        if (
            op is not None
            and any(p.parent is None and p.program == proc.program for p in op.procs)
            and not op.running()
        ):
            self._finish(op)  # the runtime runs the chain again (containerd: StopPodSandbox, RemovePodSandbox)
            op = None
        for other in list(self.open_ops.values()):
            if other.key[0] == key[0] and other.key[2:] == key[2:] and other.key[1] != key[1] and not other.running():
                self._finish(other)  # the runtime moved on to the next operation on this attachment
        if op is None:
            self.seq += 1
            op = Operation(self.seq, _runtime_info(runtime_pid), key, ns)
            op.netns = proc.cni_env.get("CNI_NETNS", "")
            self.open_ops[key] = op
            self.peak_open = max(self.peak_open, len(self.open_ops))
        op.procs.append(proc)
        op.last_ns = self._now()
        self.procs[pid] = proc
        self.op_of[pid] = op
        self.peak_procs = max(self.peak_procs, len(self.procs))
        self._watch_container_netns(proc)

    @staticmethod
    def _writer(proc: Proc, action: str, basis: str) -> dict[str, Any]:
        """``proc`` as the writer of a change: the call whose plugin is its top process."""
        top = _top(proc)
        writer = in_call(proc, top, top.program, action, basis)
        assert writer is not None  # proc is top or below it
        return writer.to_json()

    def _runtime_op(self, pid: int, path: str = "") -> Operation | None:
        mine = [op for op in self.open_ops.values() if op.key[0] == pid][::-1]  # the latest first
        for op in mine:
            if path.endswith(f"-{op.container_id}-{op.ifname}"):
                return op
        for op in mine:
            if op.container_id and op.container_id in path:
                return op
        return mine[0] if mine else None

    def _attach(self, pid: int, change: dict[str, Any], action: str, basis: str, at_ns: int) -> None:
        proc = self.procs.get(pid)
        if proc is not None:
            op = self.op_of[pid]
            change["writer"] = self._writer(proc, action, basis)
        else:
            op_ = self._runtime_op(pid, str(change.get("where", "")))
            if op_ is None:
                guess = basis != "event" and (pid == 0 or not os.path.exists(f"/proc/{pid}"))
                name = str(change.get("text", "")) if change.get("kind") == "link" else ""
                proc, op_ = self._running_at(at_ns, str(change.get("where", "")), name) if guess else (None, None)
                if proc is None or op_ is None:
                    self.ignored += 1
                    return
                change["writer"] = self._writer(proc, action, "running")
            else:
                info = op_.runtime
                runtime = Writer(
                    pid=pid,
                    program=info["program"],
                    scope="runtime",
                    action=action,
                    exe=info.get("exe") or "",
                    basis=basis,
                )
                change["writer"] = runtime.to_json()
            op = op_
        for seen in op.changes[-50:]:
            fields = ("kind", "change", "where", "text")
            if all(seen[f] == change[f] for f in fields) and seen["writer"]["pid"] == change["writer"]["pid"]:
                return  # the same change again (a link's flags, its master): one row
        if change["change"] == "changed" and change["kind"] == "file":
            for seen in op.changes:
                same = seen["where"] == change["where"] and seen["writer"]["pid"] == change["writer"]["pid"]
                if same and seen["change"] == "created":
                    return  # written just after it was created: one change
        change["by"] = change["writer"]["program"]
        change["at"] = round(at_ns / 1e9 - self.t0, 6)
        op.changes.append(change)
        op.last_ns = self._now()

    def _running_at(self, at_ns: int, where: str = "", name: str = "") -> tuple[Proc | None, Operation | None]:
        """The innermost plugin process running at ``at_ns``, for a change
        whose notification names no process (links; the kernel's own routes
        and addresses).  One that exited at most 20 ms before counts only
        when none was running (the notification may be read late).  Calls
        of several operations may run at once (containerd sets up its
        loopback network beside the pod's): a link named as an operation's
        ifname goes to it, and a change outside the container never to a
        call of the ``loopback`` plugin."""
        for slack in (0, 20_000_000):
            alive = [
                p
                for p in self.procs.values()
                if p.started_ns and p.started_ns <= at_ns and (not p.ended_ns or p.ended_ns + slack >= at_ns)
            ]
            plugins = [p for p in alive if p.parent is None or p.is_plugin] or alive
            if where == "container" and name:
                plugins = [p for p in plugins if self.op_of[p.pid].ifname == name] or plugins
            if where != "container":
                plugins = [p for p in plugins if _top(p).program != "loopback"] or plugins
            if plugins:
                best = max(plugins, key=lambda p: p.started_ns)
                return best, self.op_of.get(best.pid)
        return None, None

    def _on_net(self, where: str, data: bytes) -> None:
        now = self._now()
        for ev in parse_rtnetlink(data, where, now):
            change = {"kind": ev.kind, "change": ev.change, "where": where, "text": ev.key}
            self._attach(ev.pid, change, ev.change, "requester" if ev.pid else "running", now)

    def _on_nft(self, data: bytes) -> None:
        now = self._now()
        for ev in parse_nft(data):
            change = {"kind": ev.kind, "change": ev.change, "where": ev.table, "text": ev.text}
            self._attach(ev.pid, change, ev.change, "requester", now)

    def _on_files(self) -> None:
        if self.files is None:
            return
        events, overflow = self.files.drain()
        if overflow:
            self._note("file events: the kernel's queue overflowed; some were lost")
        now = self._now()
        for ev in events:
            directory = self.dirs.get(ev.dir_key)
            if directory is None or not ev.name:
                continue
            path = os.path.join(directory, ev.name)
            is_dir = bool(ev.mask & FAN_ONDIR)
            if ev.mask & _MASK_CREATED and is_dir:
                key = handle_key(path)
                if key is not None:
                    self.dirs[key] = path
            if ev.mask & _MASK_REMOVED and is_dir:
                self.dirs = {k: v for k, v in self.dirs.items() if v != path}
            if ev.mask & _MASK_CREATED:
                change, action = "created", ("created" if ev.mask & FAN_CREATE else "renamed into place")
            elif ev.mask & _MASK_REMOVED:
                change, action = "removed", ("deleted" if ev.mask & FAN_DELETE else "renamed away")
            elif ev.mask & FAN_CLOSE_WRITE:
                change, action = "changed", "wrote"
            else:
                continue
            label, rel = "", path
            for name, root in self.roots.items():
                if path == root or path.startswith(root + "/"):
                    label, rel = name, os.path.relpath(path, root)
                    break
            item = {"kind": "dir" if is_dir else "file", "change": change, "where": path, "text": path, "rel": rel}
            item["root"] = label
            self._attach(ev.pid, item, action, "event", now)

    # ------------------------------------------------------------ output

    def _finish(self, op: Operation) -> None:
        self.open_ops.pop(op.key, None)
        for proc in op.procs:
            self.procs.pop(proc.pid, None)
            self.op_of.pop(proc.pid, None)
        if op.netns:
            self._close_container_netns(op.netns)
        tops = [p for p in op.procs if p.parent is None]
        record = _record_network(op.changes, op.container_id, op.ifname)
        op.network = guess_network(
            self.conf_dir, [p.program for p in tops], record, op.ifname, str(op.runtime.get("program", ""))
        )
        self.finished += 1
        self.emit(self.render(op))
        if self.sink is not None:
            for event in self.events(op):
                self.sink.write(("" if self._first_event else ",\n") + json.dumps(event))
                self._first_event = False
            self.sink.flush()

    def _proc_json(self, proc: Proc, depth: int) -> dict[str, Any]:
        return process_json(
            proc, depth=depth, t0=self.t0, program=proc.program, plugin=proc.parent is None or proc.is_plugin
        )

    def operation_json(self, op: Operation) -> dict[str, Any]:
        """The operation's own fields (on each of its events, as ``operation``)."""
        return {
            "seq": op.seq,
            "command": op.command,
            "containerId": op.container_id,
            "ifname": op.ifname,
            "netns": op.netns,
            "runtime": {k: op.runtime.get(k) for k in ("pid", "program", "exe")},
            "network": op.network,
            "at": round(op.started_ns / 1e9 - self.t0, 6),
        }

    def events(self, op: Operation) -> list[dict[str, Any]]:
        """``--trace-json`` events of a finished operation: one exec event per
        call the runtime made, then one for the runtime's own changes."""
        out: list[dict[str, Any]] = []
        opj = self.operation_json(op)
        unseen = [
            "plugin stdin (the network configuration) is a pipe between the runtime and the plugin and cannot be "
            f"read: network {op.network.get('network') or '?'} ({op.network.get('file') or 'no conf file'}) "
            f"because {op.network.get('why')}"
        ]
        for index, top in enumerate(p for p in op.procs if p.parent is None):
            tree = subtree(op.procs, top)
            pids = {p.pid for p, _ in tree}
            self.event_seq += 1
            took = (top.ended_ns - top.started_ns) / 1e9 if top.ended_ns and top.started_ns else None
            out.append(
                {
                    "seq": self.event_seq,
                    "at": round(top.started_ns / 1e9 - self.t0, 6) if top.started_ns else None,
                    "duration": took,
                    "actor": "plugin",
                    "effect": "exec",
                    "summary": f"{op.runtime.get('program')} ran {top.program} {op.command} "
                    f"(container {op.container_id[:12]}, {op.ifname})",
                    "plugin": {
                        "type": top.program,
                        "name": op.network.get("network", ""),
                        "index": index,
                        "network": op.network.get("network", ""),
                        "path": program_path(top.argv, top.exe) or None,
                    },
                    "command": op.command,
                    "cniEnv": dict(top.cni_env),
                    "exitStatus": top.exit_status,
                    "pid": top.pid,
                    "pluginDuration": took,
                    "processes": [self._proc_json(p, d) for p, d in tree],
                    "changes": [c for c in op.changes if (c.get("writer") or {}).get("pid") in pids],
                    "unprobed": unseen,
                    "error": None,
                    "operation": opj,
                }
            )
        mine = [c for c in op.changes if (c.get("writer") or {}).get("scope") == "runtime"]
        if mine:
            self.event_seq += 1
            out.append(
                {
                    "seq": self.event_seq,
                    "at": mine[0].get("at"),
                    "duration": 0,
                    "actor": str(op.runtime.get("program")),
                    "effect": "runtime-changes",
                    "summary": f"{op.runtime.get('program')} (pid {op.runtime.get('pid')}) itself",
                    "changes": mine,
                    "unprobed": [],
                    "error": None,
                    "operation": opj,
                }
            )
        return out

    def render(self, op: Operation) -> str:
        """The readable timeline of a finished operation."""
        rt = op.runtime
        lines = [
            f"[{op.started_ns / 1e9 - self.t0:9.3f}s] operation {op.seq}: {rt.get('program')} (pid {rt.get('pid')}) "
            f"{op.command} container {op.container_id[:12]} ifname {op.ifname} netns {op.netns or '-'}",
            f"    network {op.network.get('network') or '?'} ({op.network.get('file') or 'no conf file'}): "
            f"{op.network.get('why')} (plugin stdin is a pipe: not readable)",
        ]

        def changes_of(pids: set[int], indent: str) -> None:
            for c in op.changes:
                writer = c.get("writer") or {}
                if writer.get("pid") in pids:
                    where = "" if c["kind"] in ("file", "dir") else f"{c['where']} "
                    text = c.get("rel") if c["kind"] in ("file", "dir") else c["text"]
                    sign = {"created": "+", "added": "+", "removed": "-"}.get(c["change"], "~")
                    lines.append(f"{indent}{sign} {c['kind']} {where}{text}  by {writer.get('program')}")

        for top in (p for p in op.procs if p.parent is None):
            for proc, depth in subtree(op.procs, top):
                shown = self._proc_json(proc, depth)
                took = f" {(proc.ended_ns - proc.started_ns) / 1e6:.1f} ms" if proc.ended_ns and proc.started_ns else ""
                at = (proc.started_ns / 1e9 - self.t0) if proc.started_ns else 0.0
                label, status = process_label(shown), process_status(shown)
                lines.append(f"    {'  ' * depth}[{at:9.3f}s] {label}  pid {proc.pid} {status}{took}")
                changes_of({proc.pid}, "    " + "  " * depth + "    ")
        runtime_pids = {c["writer"]["pid"] for c in op.changes if c["writer"].get("scope") == "runtime"}
        if runtime_pids:
            lines.append(f"    {rt.get('program')} itself:")
            changes_of(runtime_pids, "        ")
        # names, argv and paths come from other programs: none may move the cursor or fake a line
        return "\n".join(terminal_safe(line, one_line=True) for line in lines)

    # ------------------------------------------------------------ loop

    def stop(self) -> None:
        """Ask :meth:`run` to finish (from a signal handler)."""
        self._stop = True

    def _note(self, reason: str) -> None:
        """Keep a reason once (a repeated one must not grow memory)."""
        if reason not in self.unprobed:
            self.unprobed.append(reason)

    def retained(self) -> dict[str, int]:
        """How many operations and processes are held now (bounded: finished ones are dropped)."""
        return {"operations": len(self.open_ops), "processes": len(self.procs), "netns": len(self.ns_socks)}

    def _drain(self, sock: socket, handler: Callable[[bytes], None], what: str) -> None:
        """Hand every datagram waiting on ``sock`` to ``handler``; a queue the
        kernel overflowed (ENOBUFS) is said once, never silently lost."""
        while True:
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    raise
                self._note(f"{what}: the kernel dropped some (ENOBUFS)")
                continue
            handler(data)

    def run(self, *, duration: float = 0.0, count: int = 0) -> dict[str, Any]:
        """Watch until :meth:`stop`, ``duration`` seconds or ``count`` finished operations."""
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
        except (OSError, AttributeError):
            pass
        deadline = time.monotonic() + duration if duration else 0.0
        while not self._stop:
            ready = {fd for fd, _ in self.poller.poll(100)}
            self._drain(self.conn, self._on_proc_data, "process events")
            for fd in ready & set(self.net_socks):
                where, sock = self.net_socks[fd]
                self._drain(sock, functools.partial(self._on_net, where), f"link changes ({where})")
            if self.nft is not None:
                self._drain(self.nft, self._on_nft, "iptables changes")
            self._on_files()
            now = self._now()
            for op in list(self.open_ops.values()):
                if not op.running() and now - op.last_ns > self.linger_ns:
                    self._finish(op)
            if count and self.finished >= count:
                break
            if deadline and time.monotonic() >= deadline:
                break
        for op in list(self.open_ops.values()):
            self._finish(op)
        return self.close()

    def close(self) -> dict[str, Any]:
        """Close the sockets; finish the JSON document; the summary."""
        summary = {
            "operations": self.finished,
            "ignoredChanges": self.ignored,
            "callsInOtherNetns": self.other_netns,
            "peakOpenOperations": self.peak_open,
            "peakProcesses": self.peak_procs,
            "retained": self.retained(),
            "unprobed": sorted(set(self.unprobed)),
        }
        self.conn.close()
        for _where, sock in self.net_socks.values():
            sock.close()
        self.net_socks.clear()
        if self.nft is not None:
            self.nft.close()
        if self.files is not None:
            self.files.close()
        if self.sink is not None:
            self.sink.write('\n], "summary": ' + json.dumps(summary) + ', "error": null}\n')
            self.sink.flush()
        return summary


def install_signals(watcher: Watcher) -> None:
    """SIGINT and SIGTERM end the watch cleanly (the JSON document is closed)."""

    def handler(_signo: int, _frame: object) -> None:
        watcher.stop()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
