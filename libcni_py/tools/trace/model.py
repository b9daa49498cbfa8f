"""A ``--trace-json`` document read as calls and changes: the shared ground of
the trace's pictures (:mod:`.trace_html`) and its compact lines
(:mod:`.trace_compact`).

Pure: it works on the JSON-ready dicts of ``libcni_py.trace/2`` (schema in
docs/tracing.md), whether they come from a file or from
:meth:`libcni_py.tools.trace.tracer.Event.to_json`.  Everything in them came from plugins
and is treated as text only.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

__all__ = ["Call", "call_tree", "change_sign", "change_where", "exit_text", "process_status"]

#: How a change reads in one character.
_SIGNS = {"created": "+", "added": "+", "removed": "-", "changed": "~"}


def change_sign(change: Mapping[str, Any]) -> str:
    """``+``, ``-`` or ``~`` for a change (``?`` for one the schema does not name)."""
    return _SIGNS.get(str(change.get("change")), "?")


def change_where(change: Mapping[str, Any]) -> str:
    """Where a network or iptables change happened (``host``, ``container``,
    the table), or "" for files (their text is the path)."""
    kind = str(change.get("kind", ""))
    if kind in ("link", "address", "route") or kind.startswith("iptables"):
        return str(change.get("where", ""))
    return ""


def process_status(proc: Mapping[str, Any]) -> str:
    """``exit 0``, ``killed by signal 9`` or ``exit not seen``."""
    status = proc.get("exitStatus")
    if not isinstance(status, int):
        return "exit not seen"
    return f"exit {status}" if status >= 0 else f"killed by signal {-status}"


def exit_text(event: Mapping[str, Any]) -> str:
    """How a plugin call ended, from its exec event."""
    if "exitStatus" not in event:
        return "did not run"
    if event.get("startError"):
        return f"could not start: {event['startError']}"
    if event.get("timedOut"):
        return "killed at the deadline"
    return f"exit {event.get('exitStatus')}"


class Call:
    """A process of a plugin call, or a run of consecutive processes of one
    program started by the same parent (``iptables`` x27), with the changes
    it made.

    Attributes:
        program: the program's name (the plugin's type for the call's plugin).
        plugin: whether it ran as a CNI plugin (``CNI_COMMAND`` set, in a
            ``CNI_PATH`` directory).
        command: its ``CNI_COMMAND`` (plugins), else "".
        procs: the processes it stands for (one, or the folded run).
        children: the calls it made, in the order they started.
        changes: the changes made by it (or, for a folded run, by any of its
            processes or what they ran).
        hidden: processes below a folded run (counted, not drawn).
    """

    __slots__ = ("program", "plugin", "command", "procs", "children", "changes", "hidden")

    def __init__(self, procs: Sequence[Mapping[str, Any]]) -> None:
        first = procs[0]
        self.program = str(first.get("program") or "?")
        self.plugin = bool(first.get("plugin"))
        self.command = str(first.get("cniCommand") or "") if self.plugin else ""
        self.procs = list(procs)
        self.children: list[Call] = []
        self.changes: list[Mapping[str, Any]] = []
        self.hidden = 0

    @property
    def runs(self) -> int:
        """How many processes this call stands for."""
        return len(self.procs)

    def status(self) -> str:
        """``exit 0``, or for a folded run ``exit 0: 18, exit 1: 9``."""
        if self.runs == 1:
            return process_status(self.procs[0])
        counts: dict[str, int] = {}
        for proc in self.procs:
            counts[process_status(proc)] = counts.get(process_status(proc), 0) + 1
        return ", ".join(f"{status}: {n}" for status, n in sorted(counts.items()))

    def failed(self) -> bool:
        """Whether any of its processes exited non-zero or was killed."""
        return any(isinstance(p.get("exitStatus"), int) and p["exitStatus"] != 0 for p in self.procs)

    def label(self) -> str:
        """What the call was: ``bridge ADD``, ``iptables --version``,
        ``iptables x27``."""
        if self.plugin:
            return f"{self.program} {self.command or '(CNI_COMMAND not read)'}"
        if self.runs > 1:
            return f"{self.program} x{self.runs}"
        proc = self.procs[0]
        argv = [str(a) for a in proc.get("argv") or []]
        path = proc.get("path")
        args = argv[argv.index(path) + 1 :] if path in argv else argv[1:]  # after the script, for interpreters
        text = " ".join([self.program, *args])
        return text if len(text) <= 60 else text[:57] + "..."

    def walk(self) -> list[Call]:
        """This call and every call below it, in order."""
        out = [self]
        for kid in self.children:
            out += kid.walk()
        return out


def call_tree(event: Mapping[str, Any]) -> tuple[Call, list[Mapping[str, Any]]]:
    """The calls of an exec event, rooted at the plugin the runtime ran, each
    with the changes it made; and the changes made by processes this step
    did not start (``writer.scope == "other"``).

    Without ``processes`` (not root) the tree is the plugin alone and holds
    every change of the step.  A change whose writer is not among the
    processes (or was not seen) goes to the plugin the runtime ran.
    """
    procs = [p for p in event.get("processes") or [] if isinstance(p, dict)]
    if not procs:
        plugin = event.get("plugin") or {}
        procs = [
            {
                "program": plugin.get("type") or "plugin",
                "plugin": True,
                "cniCommand": event.get("command"),
                "pid": event.get("pid"),
                "exitStatus": event.get("exitStatus"),
                "depth": 0,
            }
        ]
    kids: dict[object, list[Mapping[str, Any]]] = {}
    for proc in procs[1:]:
        kids.setdefault(proc.get("ppid"), []).append(proc)
    owner: dict[object, Call] = {}

    def below(proc: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        out: list[Mapping[str, Any]] = []
        for kid in kids.get(proc.get("pid"), []):
            out += [kid, *below(kid)]
        return out

    def build(procs_: Sequence[Mapping[str, Any]]) -> Call:
        call = Call(procs_)
        for proc in procs_:
            owner[proc.get("pid")] = call
        if len(procs_) > 1:  # a folded run: what it ran is counted, owned by the run
            for proc in procs_:
                for hidden in below(proc):
                    owner[hidden.get("pid")] = call
                    call.hidden += 1
            return call
        mine = kids.get(procs_[0].get("pid"), [])
        index = 0
        while index < len(mine):
            run = [mine[index]]
            if not run[0].get("plugin"):
                while (
                    index + len(run) < len(mine)
                    and not mine[index + len(run)].get("plugin")
                    and mine[index + len(run)].get("program") == run[0].get("program")
                ):
                    run.append(mine[index + len(run)])
            index += len(run)
            call.children.append(build(run))
        return call

    root = build(procs[:1])
    others: list[Mapping[str, Any]] = []
    for change in event.get("changes") or []:
        if not isinstance(change, dict):
            continue
        writer = change.get("writer")
        if isinstance(writer, dict) and writer.get("scope") == "other":
            others.append(change)
        elif isinstance(writer, dict) and writer.get("pid") in owner:
            owner[writer.get("pid")].changes.append(change)
        else:
            root.changes.append(change)
    return root, others
