"""The text form of a trace: one :class:`~libcni_py.tools.trace.tracer.Event`
as the lines ``cnitool --trace`` prints (:func:`format_event`), and
:func:`terminal_safe`, which every text form of a trace uses for what plugins
printed.

The tracer records events; this module only renders them (the compact form
is :mod:`libcni_py.tools.trace.compact`, the HTML one
:mod:`libcni_py.tools.trace.html`).
"""

from __future__ import annotations

from ...core import gojson
from ...core.plugin_input import ENV_VARIABLES

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from ...edges.probes import Change
    from .tracer import Event

__all__ = ["format_event", "terminal_safe"]


#: Control characters other than tab and newline, made visible in the timeline.
_CONTROLS = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0)) if c not in (0x09, 0x0A)}


_ONE_LINE = {**_CONTROLS, 0x0A: "\\x0a"}


def terminal_safe(text: str, *, one_line: bool = False) -> str:
    """``text`` with ``\\r\\n`` as a newline and every other control character
    shown as ``\\xNN`` (with ``one_line``, newlines too): what a plugin
    printed, or a file name it made, cannot move the cursor, clear the line
    or pass for one of the trace's own lines."""
    return text.replace("\r\n", "\n").translate(_ONE_LINE if one_line else _CONTROLS)


def _indent_block(label: str, text: str, width: int = 9) -> list[str]:
    """A plugin's text as a block of its own lines, indented under ``label``
    (it need not end with a newline; it cannot glue itself to a header)."""
    text = terminal_safe(text)
    lines = text.rstrip("\n").split("\n") if text.strip() else ["(empty)"]
    out = [f"    {label:<{width}}{lines[0]}".rstrip()]
    out += [f"    {'':<{width}}{line}" for line in lines[1:]]
    return out


def _change_line(change: Change) -> str:
    sign = {"created": "+", "added": "+", "removed": "-", "changed": "~"}.get(change.change, "?")
    where = ""
    if change.kind in ("link", "address", "route") or change.kind.startswith("iptables"):
        where = f"{change.where} "
    line = f"      {sign} {change.kind:<15}{where}{change.text}"
    if "writer" in change.details:
        writer = change.details["writer"]
        if isinstance(writer, dict):
            from .proc import describe_writer

            line += f"  ({describe_writer(writer, change.change == 'removed', change.kind)})"
        else:
            line += "  (writer not seen)"
    content = change.details.get("content")
    if isinstance(content, str) and content:
        shown = content if len(content) <= 80 else content[:77] + "..."
        line += "  " + gojson.dumps(shown)
    return line


def process_label(proc: dict[str, Any]) -> str:
    if proc.get("plugin"):
        label = f"{proc.get('program')} {proc.get('cniCommand') or '(CNI_COMMAND not read)'}"
        if proc.get("depth") and proc.get("path"):
            label += f" ({proc['path']})"
        return label
    argv = [str(a) for a in proc.get("argv") or []]
    if not argv:
        return f"{proc.get('program')} ({proc.get('unread') or 'its command line was not read'})"
    path = proc.get("path")
    args = argv[argv.index(path) + 1 :] if path in argv else argv[1:]  # after the script, for interpreters
    text = " ".join([str(proc.get("program")), *args])
    return text if len(text) <= 100 else text[:97] + "..."


def process_status(proc: dict[str, Any]) -> str:
    status = proc.get("exitStatus")
    if status is None:
        return "exit not seen"
    return f"exit {status}" if status >= 0 else f"killed by signal {-status}"


def _process_lines(processes: Sequence[dict[str, Any]]) -> list[str]:
    """The process tree of a plugin call, for a person: every plugin, nested
    under the process that ran it; of the other programs, those a plugin ran
    itself (iptables...), consecutive runs of one program folded into one
    line; what those programs ran in turn is only counted (``--trace-json``
    has every process)."""
    from collections import Counter

    if not processes:
        return []
    children: dict[int, list[dict[str, Any]]] = {}
    for proc in processes[1:]:
        children.setdefault(int(proc.get("ppid") or 0), []).append(proc)

    def below(proc: dict[str, Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for kid in children.get(int(proc["pid"]), []):
            out += [kid, *below(kid)]
        return out

    lines: list[str] = []

    def show(proc: dict[str, Any], extra: str = "") -> None:
        indent = "      " + "  " * int(proc.get("depth") or 0)
        lines.append(f"{indent}{process_label(proc)}  [pid {proc.get('pid')}, {process_status(proc)}]{extra}")

    def walk(plugin: dict[str, Any]) -> None:
        show(plugin)
        kids = children.get(int(plugin["pid"]), [])
        index = 0
        while index < len(kids):
            kid = kids[index]
            if kid.get("plugin"):
                walk(kid)
                index += 1
                continue
            run = [kid]
            while (
                index + len(run) < len(kids)
                and not kids[index + len(run)].get("plugin")
                and kids[index + len(run)].get("program") == kid.get("program")
            ):
                run.append(kids[index + len(run)])
            index += len(run)
            hidden = [p for member in run for p in below(member)]
            extra = ""
            if len(run) > 1:
                statuses = Counter(process_status(p) for p in run)
                summary = ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items()))
                more = len(run) - 1
                extra += f"  + {more} more run{'s' if more > 1 else ''} of {kid.get('program')} ({summary})"
            inner = [p for p in hidden if not p.get("plugin")]
            if inner:
                extra += f"  ({len(inner)} more processes below)"
            show(kid, extra)
            for proc in hidden:
                if proc.get("plugin") and not any(p.get("plugin") for p in hidden if p["pid"] == proc.get("ppid")):
                    walk(proc)

    walk(processes[0])
    return lines


def format_event(event: Event) -> str:
    """An event as lines of the readable timeline (``cnitool --trace``)."""
    head = f"trace #{event.seq} +{event.at:.3f}s {event.summary}"
    if event.duration >= 0.0005 and event.effect != "exec":
        head += f" [{event.duration * 1000:.1f} ms]"
    lines = [head]
    data = event.data
    if event.effect == "exec":
        plugin = data.get("plugin", {})
        binary = str(plugin.get("path", ""))
        if plugin.get("delegates"):
            binary += f"   (its config delegates to: {', '.join(plugin['delegates'])})"
        lines.append(f"    {'binary':<9}{binary}")
        env = data.get("env", {})
        shown = [f"{k}={env[k]}" for k in ENV_VARIABLES if k in env]
        inherited = len(env) - len(shown)
        lines.append(f"    {'env':<9}{' '.join(shown)}")
        lines.append(f"    {'':<9}+ {inherited} variables inherited from the runtime's environment")
        lines += _indent_block("stdin", str(data.get("stdin", "")))
        if "exitStatus" in data:
            if data.get("startError"):
                status = f"could not start: {data['startError']}"
            elif data.get("timedOut"):
                status = "killed at the deadline"
            else:
                status = f"exit status {data['exitStatus']}"
            lines.append(
                f"    {'result':<9}{status} after {data.get('pluginDuration', 0.0):.3f}s (pid {data.get('pid')})"
            )
            lines += _indent_block("stdout", str(data.get("stdout", "")))
            lines += _indent_block("stderr", str(data.get("stderr", "")))
            if data.get("stderrDropped"):
                lines.append(f"    {'':<9}({data['stderrDropped']} more bytes of stderr were not kept)")
    processes = data.get("processes")
    if processes:
        lines.append("    processes (in the order they started):")
        lines += _process_lines(processes)
    if event.error:
        lines.append(f"    {'error':<9}{event.error}")
    if event.changes:
        who = event.actor if event.actor == "libcni_py" else f"{data.get('plugin', {}).get('type', 'the plugin')}"
        if processes is not None and event.actor == "plugin":
            if len(processes) > 1:
                who += " or a program it ran"
        elif event.actor == "plugin" and data.get("plugin", {}).get("delegates"):
            who += " or a plugin it ran"
        lines.append(f"    changed during this step (by {who}):")
        lines += [_change_line(c) for c in event.changes]
    elif event.effect == "exec" and "exitStatus" in data:
        lines.append("    changed during this step: nothing seen")
    lines += [f"    not probed: {text}" for text in event.unprobed]
    # each line is one line: a newline in a file name or a summary is shown, not followed
    return "\n".join(terminal_safe(line, one_line=True) for line in lines)
