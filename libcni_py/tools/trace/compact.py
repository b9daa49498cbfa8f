"""The trace in a few lines: one per step of the runtime, one per plugin call
(nested plugins indented under the plugin that ran them), one per change
(under the program that made it), and a plugin's stderr as a quoted block.

``cnitool --trace-compact`` prints it as the operation runs;
``cnitool trace compact FILE`` prints it from a ``--trace-json`` file.  The
full timeline (``--trace``) and the JSON keep everything this leaves out:
environments, stdin, stdout, the programs a plugin ran besides plugins
(counted here: ``ran iptables x27``), and who made each change in detail.

Pure: event dicts of ``libcni_py.trace/2`` in, text out.  Every line starts
with the indentation or ``trace #N``: what plugins printed is quoted (``|``)
with its control characters made visible.
"""

from __future__ import annotations

from .model import Call, call_tree, change_sign, change_where, exit_text
from .text import terminal_safe

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

__all__ = ["format_event", "render"]

#: At most this many lines of a plugin's stderr are quoted (--trace shows all).
STDERR_LINES = 12
#: Longer lines (of stderr, of a change) are cut to this many characters.
WIDTH = 200


def _cut(text: str) -> str:
    return text if len(text) <= WIDTH else text[: WIDTH - 3] + "..."


def _change_line(change: Mapping[str, Any], indent: str) -> str:
    where = change_where(change)
    text = (where + " " if where else "") + str(change.get("text", ""))
    return _cut(f"{indent}{change_sign(change)} {change.get('kind', '')!s:<15}{text}")


def _head(event: Mapping[str, Any], text: str) -> str:
    at = event.get("at")
    when = f" +{at:.3f}s" if isinstance(at, int | float) else ""
    return f"trace #{event.get('seq')}{when} {text}"


def _call_lines(call: Call, depth: int) -> list[str]:
    """A call's line (the plugin the runtime ran has the step's), what it and
    the helpers it ran changed, then the plugins it ran, indented."""
    indent = "    " + "  " * depth
    lines = [f"{indent}{call.label()}: {call.status()}"] if depth else []
    helpers = [kid for kid in call.children if not kid.plugin]
    if helpers:
        runs: dict[str, int] = {}
        for kid in helpers:
            runs[kid.program] = runs.get(kid.program, 0) + kid.runs
        ran = ", ".join(f"{program} x{n}" if n > 1 else program for program, n in runs.items())
        lines.append(f"{indent}  ran {ran}")
    lines += [_change_line(c, indent + "  ") for c in call.changes]
    lines += [_change_line(c, indent + "  ") for kid in helpers for c in kid.changes]
    for kid in call.children:
        if kid.plugin:
            lines += _call_lines(kid, depth + 1)
    return lines


def format_event(event: Mapping[str, Any]) -> str:
    """One step (an element of ``events``) as compact lines."""
    if event.get("effect") != "exec":
        lines = [_head(event, str(event.get("summary", "")))]
        lines += [_change_line(c, "      ") for c in event.get("changes") or [] if isinstance(c, dict)]
    else:
        root, others = call_tree(event)
        plugin = event.get("plugin") or {}
        where = f"plugins[{plugin.get('index')}] of {plugin.get('network')}" if plugin.get("network") else "probe"
        took = event.get("pluginDuration")
        status = exit_text(event) + (f", {took:.3f}s" if isinstance(took, int | float) else "")
        lines = [_head(event, f"{root.label()} ({where}): {status}")]
        stderr = terminal_safe(str(event.get("stderr") or "")).strip("\n")  # blank lines around: not worth a line
        if stderr:
            quoted = stderr.split("\n")
            lines += [_cut(f"    stderr| {line}".rstrip()) for line in quoted[:STDERR_LINES]]
            if len(quoted) > STDERR_LINES:
                lines.append(f"    stderr| ... {len(quoted) - STDERR_LINES} more lines (--trace shows them all)")
        lines += _call_lines(root, 0)
        lines += [_change_line(c, "    ? ") + "  (not started by this step)" for c in others]
    if event.get("error"):
        lines.append(f"    error: {event['error']}")
    return "\n".join(terminal_safe(line, one_line=True) for line in lines)


def render(doc: Mapping[str, Any]) -> str:
    """A whole ``--trace-json`` document as compact lines."""
    lines = [format_event(e) for e in doc.get("events") or [] if isinstance(e, dict)]
    if doc.get("error"):
        lines.append(terminal_safe(f"failed: {doc['error']}", one_line=True))
    return "\n".join(lines) + "\n"
