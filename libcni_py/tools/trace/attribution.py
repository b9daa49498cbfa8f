"""Attribution: which process (the plugin, a program it ran, the runtime, or
another process of the machine) made a change, from the events on it and the
process tree.  Pure.

Part of :mod:`libcni_py.tools.trace.proc` (see there for the whole picture).
"""

from __future__ import annotations

from ...core.value import Value
from .fanotify_events import (
    FAN_ATTRIB,
    FAN_CLOSE_WRITE,
    FAN_CREATE,
    FAN_DELETE,
    FAN_MOVED_FROM,
    FAN_MOVED_TO,
    FAN_OPEN_EXEC,
    FileEvent,
)
from .net_events import NetEvent
from .proc_tree import Proc, ProcessTree, process_json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from typing import Any, TypeAlias

    #: (filesystem id, handle type, handle bytes) of a directory.
    HandleKey: TypeAlias = "tuple[int, int, bytes]"

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


def in_call(proc: Proc, top: Proc, top_name: str, action: str, basis: str) -> Writer | None:
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
        writer = in_call(proc, top, top_name, action, "event")
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
            writer = in_call(requester, top, top_name, event.change, "requester")
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
    return in_call(proc, top, top_name, first.change, "running")


def processes_json(tree: ProcessTree, top: Proc, top_name: str, t0: float) -> list[dict[str, Any]]:
    """``top`` and every process below it, in the order they started (the
    ``processes`` of an exec event in ``--trace-json``)."""
    return [
        process_json(
            proc,
            depth=depth,
            t0=t0,
            program=top_name if proc is top else proc.program,
            plugin=proc is top or proc.is_plugin,
        )
        for proc, depth in tree.subtree(top)
    ]
