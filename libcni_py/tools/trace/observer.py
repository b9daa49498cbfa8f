"""The observer of one traced step: starts the file watch and the reader
thread, and after the step turns their events into an :class:`Observation`
that says who made each probed change.

Part of :mod:`libcni_py.tools.trace.proc` (see there for the whole picture).
"""

from __future__ import annotations

import os

from .attribution import classify, exec_opens, net_writer, pick_writer, processes_json
from .fanotify_events import FileEvent
from .filewatch import _FILE_KINDS, MAX_DIRS_NOTED, NEEDS_ROOT, _FileWatch, _Unavailable, handle_key
from .net_events import NetEvent, net_key
from .proc_tree import Proc, ProcessTree
from .reader import _ProcWatch

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any, TypeAlias

    from ...edges.probes import Change

    #: (filesystem id, handle type, handle bytes) of a directory.
    HandleKey: TypeAlias = "tuple[int, int, bytes]"


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
