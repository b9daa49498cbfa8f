"""A traced operation as one self-contained HTML page: a sequence diagram.

``render(doc)`` takes a ``--trace-json`` document (``libcni_py.trace/2``, see
docs/tracing.md) and returns the page: one lane for the runtime (libcni_py,
or cnitool), one for each program that ran (the plugins the runtime ran, the
plugins those ran -- flannel -> bridge -> host-local -- and the other
programs, such as iptables), arrows for each call and its exit, and beside
each lane what that program made or removed: files, links, addresses,
routes, iptables chains and rules.  Below the diagram, each step in full
(environment, stdin, stdout, stderr, every process, every change with its
writer), folded.

The page reads offline: plain HTML and CSS, inline; no script, no font, no
image, no link to anything (a Content-Security-Policy forbids fetching
anything, should a browser be asked to).  Every string of the trace comes
from plugins and is escaped.  Pure: a dict in, a string out.
"""

from __future__ import annotations

from html import escape

from .model import Call, call_tree, change_sign, change_where, exit_text, process_status

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

__all__ = ["render"]

#: Lane widths of the diagram (em): a lane, and the gutter of step numbers.
_LANE_EM = 9.5
_GUTTER_EM = 5.5

#: Lane colours (by lane index; the runtime's is the first).
_COLOURS = ("#455a64", "#1565c0", "#6a1b9a", "#2e7d32", "#ef6c00", "#00838f", "#ad1457", "#5d4037", "#827717")

_CSS = """
body{font:14px/1.35 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:1.2em;color:#222;background:#fff}
h1{font-size:1.3em;margin:0 0 .3em}
.meta{color:#555;margin:0 0 1em}.meta code{background:#f3f3f3;padding:0 .3em;overflow-wrap:anywhere}
.err{color:#b71c1c;font-weight:600}
.legend span{margin-right:1.2em}
.seq{display:grid;align-items:start;row-gap:.15em;margin:1em 0 2em}
.head{position:sticky;top:0;z-index:3;text-align:center;padding:.35em .2em;margin:0 .3em;border-radius:4px;
 color:#fff;font-weight:600;overflow-wrap:anywhere}
.head small{display:block;font-weight:400;font-size:.75em;opacity:.9}
.life{z-index:0;align-self:stretch;background:linear-gradient(#bbb,#bbb) center/1px 100% no-repeat}
.gut{z-index:1;color:#777;font:12px ui-monospace,monospace;padding-top:.3em;white-space:nowrap}
.arrow{z-index:1;position:relative;padding:0 LANEHALFem;text-align:center;font-size:.85em}
.arrow .lbl{display:block;padding:0 .4em;overflow-wrap:anywhere}
.arrow .line{display:block;position:relative;height:0;border-top:2px solid var(--c)}
.arrow.ret .line{border-top-style:dashed}
.arrow .line::after{content:"";position:absolute;top:-6px;border:5px solid transparent}
.arrow.right .line::after{right:-2px;border-left:9px solid var(--c)}
.arrow.left .line::after{left:-2px;border-right:9px solid var(--c)}
.arrow.bad .lbl{color:#b71c1c;font-weight:600}
.note{z-index:2;position:relative;margin-left:LANEHALFem;border:1px solid var(--c);border-left:4px solid var(--c);
 background:#fcfcfc;border-radius:3px;padding:.2em .5em;font-size:.85em}
.note .who{font-weight:600;color:var(--c)}
.note ul{list-style:none;margin:.1em 0;padding:0}
.note li{font-family:ui-monospace,monospace;font-size:.95em;overflow-wrap:anywhere;
 padding-left:1.2em;text-indent:-1.2em}
.note .step{font-weight:600}
.note .unprobed{color:#777;font-style:italic}
li.added,li.created{color:#1b5e20}li.removed{color:#b71c1c}li.changed{color:#8d6e00}
.kind{display:inline-block;min-width:10.5em;text-indent:0;color:#555}
.by{color:#777}
details{border-top:1px solid #ddd;padding:.3em 0}
summary{cursor:pointer;font-weight:600}
pre{background:#f6f6f6;padding:.4em .6em;margin:.2em 0 .6em;white-space:pre-wrap;overflow-wrap:anywhere;font-size:.85em}
table{border-collapse:collapse;font-size:.85em}
td,th{border:1px solid #ddd;padding:.15em .4em;text-align:left;vertical-align:top}
td{overflow-wrap:anywhere}
"""


def _e(value: object) -> str:
    """Escape any value for HTML text or a quoted attribute."""
    return escape(str(value), quote=True)


class _Diagram:
    """The grid: lanes (one per program), rows (one per arrow or note)."""

    def __init__(self, runtime: str) -> None:
        self.lanes: dict[str, int] = {}
        self.subtitles: dict[int, str] = {}
        self.rows: list[str] = []
        self.lane(runtime, "the runtime")

    def lane(self, name: str, subtitle: str = "") -> int:
        if name not in self.lanes:
            self.lanes[name] = len(self.lanes)
            self.subtitles[self.lanes[name]] = subtitle
        return self.lanes[name]

    def _row(self, cols: str, cls: str, colour_lane: int, body: str, *, gutter: str, data: str = "") -> None:
        row = len(self.rows) + 2
        gut = f'<div class="gut" style="grid-area:{row}/1">{gutter}</div>' if gutter else ""
        colour = _COLOURS[colour_lane % len(_COLOURS)]
        self.rows.append(
            f'{gut}<div class="{cls}" style="grid-row:{row};grid-column:{cols};--c:{colour}"{data}>{body}</div>'
        )

    def arrow(self, src: int, dst: int, label: str, *, ret: bool = False, bad: bool = False, gutter: str = "",
              data: str = "") -> None:  # fmt: skip
        low, high = min(src, dst), max(src, dst)
        if low == high:  # a program calling itself (a plugin running its own binary): a note
            self.note(src, label, [], gutter=gutter)
            return
        cls = "arrow " + ("right" if dst > src else "left") + (" ret" if ret else "") + (" bad" if bad else "")
        body = f'<span class="lbl">{label}</span><span class="line"></span>'
        self._row(f"{low + 2}/{high + 3}", cls, dst if not ret else src, body, gutter=gutter, data=data)

    def note(self, lane: int, title: str, items: list[str], *, gutter: str = "", data: str = "") -> None:
        body = f'<span class="who">{title}</span>'
        if items:
            body += "<ul>" + "".join(items) + "</ul>"
        self._row(f"{lane + 2}/-1", "note", lane, body, gutter=gutter, data=data)

    def html(self) -> str:
        lanes = len(self.lanes)
        nrows = len(self.rows)
        cols = f"{_GUTTER_EM}em repeat({lanes},{_LANE_EM}em) minmax(28em,1fr)"
        out = [f'<div class="seq" style="grid-template-columns:{cols}">']
        out.append('<div class="gut" style="grid-area:1/1;position:sticky;top:0">step</div>')
        for name, index in self.lanes.items():
            colour = _COLOURS[index % len(_COLOURS)]
            sub = self.subtitles.get(index, "")
            small = f"<small>{_e(sub)}</small>" if sub else ""
            out.append(
                f'<div class="head" style="grid-area:1/{index + 2};background:{colour}" data-lane="{_e(name)}">'
                f"{_e(name)}{small}</div>"
            )
            if nrows:
                out.append(f'<div class="life" style="grid-row:2/{nrows + 2};grid-column:{index + 2}"></div>')
        out += self.rows
        out.append("</div>")
        return "\n".join(out)


def _change_item(change: Mapping[str, Any], seq: object, *, by: bool = False) -> str:
    """One change as a list item of a note (``+ file /var/lib/cni/...``)."""
    kind = str(change.get("kind", ""))
    where = change_where(change)
    text = (where + " " if where else "") + str(change.get("text", ""))
    title = _writer_words(change)
    extra = f' <span class="by">by {_e(change.get("by", ""))}</span>' if by else ""
    return (
        f'<li class="change {_e(change.get("change", ""))}" data-seq="{_e(seq)}" data-kind="{_e(kind)}"'
        f' title="{_e(title)}">{_e(change_sign(change))} <span class="kind">{_e(kind)}</span>'
        f'<span class="text">{_e(text)}</span>{extra}</li>'
    )


def _writer_words(change: Mapping[str, Any]) -> str:
    """Who made a change, in words (the timeline's)."""
    writer = change.get("writer")
    if isinstance(writer, dict):
        from .proc import describe_writer

        return describe_writer(writer, change.get("change") == "removed", str(change.get("kind", "")))
    if "writer" in change:
        return "writer not seen"
    return f"by {change.get('by', '')}"


def _gutter(event: Mapping[str, Any]) -> str:
    at = event.get("at")
    when = f"+{at:.3f}s" if isinstance(at, int | float) else ""
    return f'<a href="#step-{_e(event.get("seq"))}">#{_e(event.get("seq"))}</a> {when}'


def _exec_rows(diagram: _Diagram, event: Mapping[str, Any]) -> None:
    """A plugin call: the runtime calls the plugin, which calls others; each
    lane's note lists what that program changed; the exits come back."""
    seq = event.get("seq")
    root, others = call_tree(event)
    plugin = event.get("plugin") or {}
    watched = bool(event.get("processes"))
    for call in root.walk():
        diagram.lane(call.program, str(call.procs[0].get("path") or plugin.get("path") or "") if call.plugin else "")

    def show(call: Call, parent: int, first: bool) -> None:
        lane = diagram.lanes[call.program]
        where = ""
        if first and isinstance(plugin.get("index"), int) and plugin["index"] >= 0:
            where = f" <small>plugins[{_e(plugin['index'])}]</small>"
        data = f' data-seq="{_e(seq)}" data-call="{_e(call.label())}"'
        if call.plugin:
            diagram.arrow(parent, lane, _e(call.label()) + where, gutter=_gutter(event) if first else "", data=data)
        else:
            more = f" ({call.hidden} more below)" if call.hidden else ""
            # not marked as failed: helpers such as iptables exit 1 to say "no such rule"
            diagram.arrow(parent, lane, f"{_e(call.label())} <small>{_e(call.status() + more)}</small>", data=data)
        for kid in call.children:
            show(kid, lane, False)
        if call.changes:
            who = call.program if watched else _step_who(call.program, plugin)
            verb = "did" if call.runs == 1 else "did (all runs)"
            items = [_change_item(c, seq) for c in call.changes]
            diagram.note(lane, f"{_e(who)} {verb}:", items, data=f' data-seq="{_e(seq)}"')
        if call.plugin:
            if first:
                status = exit_text(event)
                bad = status != "exit 0" or bool(event.get("error"))
                took = event.get("pluginDuration")
                label = _e(status) + (f" <small>{took:.3f}s</small>" if isinstance(took, int | float) else "")
                if event.get("error"):
                    label += f"<br>{_e(event['error'])}"
            else:
                label, bad = _e(process_status(call.procs[0])), call.failed()
            diagram.arrow(lane, parent, label, ret=True, bad=bad)

    show(root, 0, True)
    if others:
        items = [_change_item(c, seq, by=True) for c in others]
        diagram.note(0, "meanwhile, by processes this step did not start:", items)
    _unprobed(diagram, event, diagram.lanes[root.program])


def _step_who(program: str, plugin: Mapping[str, Any]) -> str:
    delegates = plugin.get("delegates") or []
    if delegates:
        return f"{program} or a plugin it ran ({', '.join(str(d) for d in delegates)})"
    return program


def _unprobed(diagram: _Diagram, event: Mapping[str, Any], lane: int) -> None:
    unprobed = [str(u) for u in event.get("unprobed") or []]
    if unprobed:
        items = [f'<li class="unprobed">not seen: {_e(u)}</li>' for u in unprobed]
        diagram.note(lane, "", items)


def _runtime_rows(diagram: _Diagram, event: Mapping[str, Any]) -> None:
    """A step of the runtime itself: a note on its lane, with what it changed."""
    seq = event.get("seq")
    summary = str(event.get("summary", ""))
    summary = summary.removeprefix("libcni_py ")
    items = [_change_item(c, seq) for c in event.get("changes") or [] if isinstance(c, dict)]
    title = f'<span class="step">{_e(summary)}</span>'
    if event.get("error"):
        title += f'<br><span class="err">{_e(event["error"])}</span>'
    data = f' data-seq="{_e(seq)}" data-step="{_e(event.get("effect"))}"'
    diagram.note(0, title, items, gutter=_gutter(event), data=data)
    _unprobed(diagram, event, 0)


def _pre(label: str, text: object) -> str:
    body = str(text) if text else ""
    return f"<div>{_e(label)}</div><pre>{_e(body) if body else '(empty)'}</pre>"


def _details(event: Mapping[str, Any]) -> str:
    """One step in full, folded."""
    seq = event.get("seq")
    parts = [f'<details id="step-{_e(seq)}"><summary>#{_e(seq)} {_e(event.get("summary", ""))}</summary>']
    if event.get("effect") == "exec":
        plugin = event.get("plugin") or {}
        cni_env = event.get("cniEnv") or {}
        env_text = "\n".join(f"{k}={v}" for k, v in sorted(cni_env.items()))  # a file has its keys sorted
        inherited = len(event.get("env") or {}) - len(cni_env)
        if inherited > 0:
            env_text += f"\n(+ {inherited} variables inherited from the runtime's environment: in the JSON)"
        parts.append(f"<div>binary <code>{_e(plugin.get('path', ''))}</code> — {_e(exit_text(event))}</div>")
        parts += [_pre("environment", env_text), _pre("stdin", event.get("stdin"))]
        parts += [_pre("stdout", event.get("stdout")), _pre("stderr", event.get("stderr"))]
        if event.get("stderrDropped"):
            parts.append(f"<div>({_e(event['stderrDropped'])} more bytes of stderr were not kept)</div>")
        processes = [p for p in event.get("processes") or [] if isinstance(p, dict)]
        if processes:
            rows = "".join(
                "<tr>"
                + "".join(
                    f"<td>{_e(cell)}</td>"
                    for cell in (
                        p.get("pid"),
                        p.get("ppid"),
                        p.get("program"),
                        p.get("cniCommand") or "",
                        " ".join(str(a) for a in p.get("argv") or []) or p.get("unread") or "",
                        process_status(p),
                    )
                )
                + "</tr>"
                for p in processes
            )
            parts.append(
                "<div>processes</div><table><tr><th>pid</th><th>parent</th><th>program</th><th>CNI_COMMAND</th>"
                f"<th>command line</th><th>exit</th></tr>{rows}</table>"
            )
    changes = [c for c in event.get("changes") or [] if isinstance(c, dict)]
    if changes:
        rows = "".join(
            f"<tr><td>{_e(change_sign(c))} {_e(c.get('kind'))}</td><td>{_e(change_where(c))} {_e(c.get('text'))}</td>"
            f"<td>{_e(_writer_words(c))}</td><td>{_e(c.get('content') or '')}</td></tr>"
            for c in changes
        )
        parts.append(
            f"<div>changes</div><table><tr><th>change</th><th>what</th><th>who</th><th>content</th></tr>{rows}</table>"
        )
    for text in event.get("unprobed") or []:
        parts.append(f"<div>not seen: {_e(text)}</div>")
    if event.get("error"):
        parts.append(f'<div class="err">error: {_e(event["error"])}</div>')
    parts.append("</details>")
    return "\n".join(parts)


def render(doc: Mapping[str, Any]) -> str:
    """The page for a ``--trace-json`` document (see the module documentation)."""
    events = [e for e in doc.get("events") or [] if isinstance(e, dict)]
    command = doc.get("command")
    command_text = " ".join(str(a) for a in command) if isinstance(command, list) else ""
    runtime = "cnitool" if command_text.startswith("cnitool") else "libcni_py"
    if doc.get("watch"):  # cnitool watch: the runtime it saw (docs/tracing.md)
        first: Mapping[str, Any] = next((e["operation"] for e in events if isinstance(e.get("operation"), dict)), {})
        runtime = str((first.get("runtime") or {}).get("program") or "runtime")
    diagram = _Diagram(runtime)
    calls = changes = 0
    for event in events:
        if event.get("effect") == "exec":
            _exec_rows(diagram, event)
            calls += 1
        else:
            _runtime_rows(diagram, event)
        changes += len(event.get("changes") or [])
    title = f"trace: {command_text}" if command_text else "trace of a libcni_py operation"
    meta = [
        f"started {_e(doc.get('started', '?'))} (UTC)",
        f"cache dir <code>{_e(doc.get('cacheDir', '?'))}</code>",
        f"{len(events)} steps, {calls} plugin calls, {changes} changes",
        f"schema {_e(doc.get('schema', '?'))}",
    ]
    error = f'<p class="err">failed: {_e(doc["error"])}</p>' if doc.get("error") else ""
    csp = "default-src 'none'; style-src 'unsafe-inline'"
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{csp}">',
            '<meta name="viewport" content="width=device-width">',
            f"<title>{_e(title)}</title>",
            f"<style>{_CSS.replace('LANEHALF', str(_LANE_EM / 2))}</style>",
            "</head><body>",
            f"<h1>{_e(title)}</h1>",
            f'<p class="meta">{" · ".join(meta)}</p>',
            error,
            '<p class="legend"><span>→ a call, ⇠ its exit</span><span style="color:#1b5e20">+ made</span>'
            '<span style="color:#b71c1c">- removed</span><span style="color:#8d6e00">~ changed</span>'
            "<span>hover a change: who made it</span></p>",
            diagram.html(),
            "<h2>Each step in full</h2>",
            *[_details(event) for event in events],
            "</body></html>",
            "",
        ]
    )
