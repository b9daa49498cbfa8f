"""The process tree: the processes that descend from a root, built from
process events in the order they arrive, and how each is named.  Pure.

Part of :mod:`libcni_py.tools.trace.proc` (see there for the whole picture).
"""

from __future__ import annotations

import os

from .proc_events import ProcEvent, wait_status

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from typing import Any


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
        return subtree(self.order, top)


def subtree(procs: Iterable[Proc], top: Proc) -> list[tuple[Proc, int]]:
    """``top`` and those of ``procs`` (in the order they started) that
    descend from it, with their depth below ``top``."""
    out: list[tuple[Proc, int]] = [(top, 0)]
    depth: dict[int, int] = {id(top): 0}
    for proc in procs:
        if proc.parent is not None and id(proc.parent) in depth and proc is not top:
            depth[id(proc)] = depth[id(proc.parent)] + 1
            out.append((proc, depth[id(proc)]))
    return out


def process_json(proc: Proc, *, depth: int, t0: float, program: str, plugin: bool) -> dict[str, Any]:
    """One process as the trace file writes it (an entry of an exec event's
    ``processes``; ``cnitool watch`` writes the same): times in seconds
    since ``t0``, the ``CNI_*`` environment only for a plugin."""
    return {
        "pid": proc.pid,
        "ppid": proc.parent.pid if proc.parent else None,
        "depth": depth,
        "program": program,
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
