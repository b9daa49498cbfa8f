"""The trace's renderers on a document with every kind of step, written as
plugins could make it: hostile strings everywhere (markup, quotes, control
characters, newlines in file names).  The HTML page must show each plugin
call and each change, escape everything, and fetch nothing; the compact and
full timelines must keep each of their lines one line."""

from __future__ import annotations

import copy
from html import escape
from html.parser import HTMLParser

from libcni_py.tools.trace import compact as trace_compact
from libcni_py.tools.trace import html as trace_html
from libcni_py.tools.trace.model import call_tree
from libcni_py.tools.trace.tracer import terminal_safe

EVIL = "<script>alert(1)</script>\"'&"
ESC_NEWLINE_NAME = "/var/lib/cni/x\ntrace #99 +0.000s forged header"


def change(kind: str, what: str, text: str, *, where: str = "host", by: str = "bridge", writer: object = None) -> dict:
    doc = {"kind": kind, "change": what, "where": where, "text": text, "by": by}
    if writer is not None:
        doc["writer"] = writer
    return doc


def proc(pid: int, ppid: int, program: str, *, plugin: bool, depth: int, argv: list[str], status: int = 0) -> dict:
    return {
        "pid": pid,
        "ppid": ppid,
        "depth": depth,
        "program": program,
        "plugin": plugin,
        "cniCommand": "ADD" if plugin else None,
        "path": f"/usr/lib/cni/{program}",
        "argv": argv,
        "exitStatus": status,
    }


def writer(pid: int, program: str, scope: str = "call") -> dict:
    return {"pid": pid, "program": program, "scope": scope, "runBy": [], "action": "created", "basis": "event"}


def runtime_event(seq: int, effect: str, summary: str, **extra: object) -> dict:
    return {
        "seq": seq,
        "at": seq / 100,
        "duration": 0.001,
        "actor": "libcni_py",
        "effect": effect,
        "summary": summary,
        "changes": [],
        "unprobed": [],
        "error": None,
        **extra,
    }


def document() -> dict:
    """A trace of every step kind; the plugin calls as root (processes) and not."""
    flannel = proc(10, 1, "flannel", plugin=True, depth=0, argv=["/opt/cni/bin/flannel"])
    bridge = proc(11, 10, "bridge", plugin=True, depth=1, argv=["/usr/lib/cni/bridge"])
    host_local = proc(12, 11, "host-local", plugin=True, depth=2, argv=["/usr/lib/cni/host-local"])
    evil_plugin = proc(13, 10, EVIL, plugin=True, depth=1, argv=[EVIL])
    iptables = [
        proc(20 + i, 10, "iptables", plugin=False, depth=1, argv=["iptables", "-t", "nat", EVIL], status=i % 2)
        for i in range(3)
    ]
    exec_root = {
        **runtime_event(6, "exec", "plugin flannel ADD (plugins[0] of network cbr0)"),
        "actor": "plugin",
        "plugin": {"type": "flannel", "name": None, "index": 0, "network": "cbr0", "path": "/opt/cni/bin/flannel"},
        "command": "ADD",
        "env": {"CNI_COMMAND": "ADD", "SECRET": "x"},
        "cniEnv": {"CNI_COMMAND": "ADD"},
        "stdin": '{"name":"cbr0"}' + EVIL,
        "stdout": "{}",
        "stderr": "\nmap[string]interface {}{...}\ndelegateAdd: " + EVIL + "\x1b[2J\rtrace #98 forged",
        "exitStatus": 0,
        "pid": 10,
        "pluginDuration": 0.1,
        "processes": [flannel, bridge, host_local, evil_plugin, *iptables],
        "changes": [
            change(
                "file",
                "created",
                "/var/lib/cni/flannel/c1 (10 bytes, 0600)",
                by="flannel",
                writer=writer(10, "flannel"),
            ),
            change(
                "file",
                "created",
                "/var/lib/cni/networks/cbr0/10.1.0.2",
                by="host-local",
                writer=writer(12, "host-local"),
            ),
            change("link", "added", "cni0 (bridge, up)", writer=writer(11, "bridge")),
            change("address", "added", "cni0 10.1.0.1/24", writer=writer(11, "bridge")),
            change("route", "added", "0.0.0.0/0 via 10.1.0.1 dev eth0", where="container", writer=writer(11, "bridge")),
            change("iptables-rule", "added", "-A POSTROUTING " + EVIL, where="nat", by="flannel"),
            change("file", "created", EVIL, by=EVIL, writer=writer(13, EVIL)),
            change("file", "removed", ESC_NEWLINE_NAME, by="iptables", writer=writer(21, "iptables")),
            change("file", "changed", "/var/lib/cni/other", by="dpkg", writer=writer(99, "dpkg", scope="other")),
        ],
    }
    exec_plain = {
        **runtime_event(8, "exec", "plugin portmap ADD (plugins[1] of network cbr0)"),
        "actor": "plugin",
        "plugin": {"type": "portmap", "index": 1, "network": "cbr0", "path": "/usr/lib/cni/portmap", "delegates": []},
        "command": "ADD",
        "env": {},
        "cniEnv": {},
        "stdin": "{}",
        "stdout": "",
        "stderr": "",
        "exitStatus": 1,
        "pid": 30,
        "pluginDuration": 0.01,
        "changes": [change("iptables-chain", "removed", "CNI-DN-" + EVIL, where="nat", by="portmap")],
        "unprobed": ["processes and who made each change: need root " + EVIL],
        "error": "plugin portmap failed: " + EVIL,
    }
    lock = runtime_event(2, "lock", "libcni_py locks the attachment (/c/locks/x)", lockFile="/c/locks/x")
    lock["changes"] = [change("file", "created", "/c/locks/x (0 bytes, 0600)", where="/c/locks/x", by="libcni_py")]
    events = [
        runtime_event(1, "resolve", "libcni_py finds the plugins: flannel -> /opt/cni/bin/flannel", types=["flannel"]),
        lock,
        runtime_event(3, "read-record", "libcni_py reads the cache record of cbr0/c1/eth0 (none)"),
        runtime_event(4, "write-record", "libcni_py writes the cache record of cbr0/c1/eth0 (ADD under way)"),
        runtime_event(5, "probe-netns", "libcni_py checks the namespace /run/netns/x: alive"),
        exec_root,
        runtime_event(7, "notice", "note: " + EVIL, text=EVIL),
        exec_plain,
        runtime_event(9, "list-records", "libcni_py lists the cache (3 files)", files=3),
        runtime_event(10, "sweep", "libcni_py sweeps what crashed writers left for cbr0", network="cbr0"),
        runtime_event(11, "remove-record", "libcni_py removes the cache record of cbr0/c1/eth0", removed=True),
        runtime_event(12, "unlock", "libcni_py unlocks the attachment", lockFile="/c/locks/x"),
    ]
    return {
        "schema": "libcni_py.trace/2",
        "started": "2026-12-05T09:00:00Z",
        "command": ["cnitool", "add", "cbr0", EVIL],
        "cacheDir": "/c",
        "error": "the command failed: " + EVIL,
        "events": events,
    }


class Page(HTMLParser):
    """The page as tags, attributes and the text of each element."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.items: list[tuple[dict[str, str | None], list[str]]] = []  # change <li>s and their text
        self._open: list[list[str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "li" and "change" in (dict(attrs).get("class") or ""):
            self.items.append((dict(attrs), []))
            self._open.append(self.items[-1][1])

    def handle_endtag(self, tag: str) -> None:
        if tag == "li" and self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        for bucket in self._open:
            bucket.append(data)


def parse(page: str) -> Page:
    parser = Page()
    parser.feed(page)
    parser.close()
    return parser


def test_html_escapes_every_string_and_fetches_nothing() -> None:
    page = trace_html.render(document())
    assert EVIL not in page and "<script" not in page.lower()
    assert escape(EVIL, quote=True) in page
    parsed = parse(page)
    tags = {tag for tag, _ in parsed.tags}
    assert not tags & {"script", "link", "img", "iframe", "object", "embed", "base", "form", "svg", "use"}
    for tag, attrs in parsed.tags:
        assert not any(name.startswith("on") for name in attrs), (tag, attrs)  # no handler smuggled in
        assert not {"src", "srcset", "action"} & set(attrs), (tag, attrs)
        if "href" in attrs:
            assert (attrs["href"] or "").startswith("#step-"), attrs
        if tag == "meta" and attrs.get("http-equiv") == "Content-Security-Policy":
            assert "default-src 'none'" in (attrs.get("content") or "")
    assert "url(" not in page and "@import" not in page and "http:" not in page and "https:" not in page
    # the hostile text is shown as text
    assert EVIL in "".join(parsed.text)


def test_html_shows_every_plugin_call_every_change_and_every_step() -> None:
    doc = document()
    parsed = parse(trace_html.render(doc))
    text = "".join(parsed.text)
    for event in doc["events"]:
        assert f"#{event['seq']} {event['summary']}" in text  # the folded details, one per step
        if event["effect"] == "exec":
            root, _ = call_tree(event)
            calls = [tag_attrs for tag, tag_attrs in parsed.tags if tag_attrs.get("data-seq") == str(event["seq"])]
            shown = {attrs.get("data-call") for attrs in calls if "data-call" in attrs}
            assert shown == {call.label() for call in root.walk()}
        else:
            summary = event["summary"].removeprefix("libcni_py ")
            assert summary in text
        items = [(attrs, "".join(words)) for attrs, words in parsed.items if attrs.get("data-seq") == str(event["seq"])]
        assert len(items) == len(event["changes"])
        for change_doc in event["changes"]:  # each change is one item of its step
            match = next(
                i for i, (attrs, words) in enumerate(items)
                if attrs["data-kind"] == change_doc["kind"] and change_doc["text"] in words
            )  # fmt: skip
            items.pop(match)
    # every lane: the runtime, the plugins, the plugins they ran, the helpers
    lanes = [attrs["data-lane"] for tag, attrs in parsed.tags if "data-lane" in attrs]
    assert lanes == ["cnitool", "flannel", "bridge", "host-local", EVIL, "iptables", "portmap"]
    # the three iptables runs are one arrow, with how each ended
    assert "iptables x3" in text and "exit 0: 2, exit 1: 1" in text
    assert "meanwhile, by processes this step did not start:" in text
    assert "not seen: processes and who made each change: need root " + EVIL in text
    assert "failed: the command failed: " + EVIL in text
    # the environment beyond the CNI variables stays in the JSON
    assert "SECRET" not in text


def test_html_of_an_empty_or_partial_document_renders() -> None:
    assert "0 steps, 0 plugin calls, 0 changes" in trace_html.render({"schema": "libcni_py.trace/2", "events": []})
    doc = document()
    exec_event = copy.deepcopy(doc["events"][5])
    for key in ("processes", "exitStatus", "stdout", "stderr", "pid", "pluginDuration"):
        exec_event.pop(key)  # the plugin could not start: no outcome
    page = trace_html.render({**doc, "events": [exec_event]})
    assert "did not run" in page


def compact_lines(doc: dict) -> list[str]:
    return trace_compact.render(doc).splitlines()


def test_compact_is_one_line_per_step_plugin_call_and_change() -> None:
    doc = document()
    lines = compact_lines(doc)
    heads = [line for line in lines if line.startswith("trace #")]
    assert [line.split(" ", 2)[1] for line in heads] == [f"#{e['seq']}" for e in doc["events"]]
    assert all(line.startswith(("trace #", " ", "failed: ")) for line in lines), lines
    # each plugin call: the step's line for the plugin the runtime ran, one line for each it ran
    assert "trace #6 +0.060s flannel ADD (plugins[0] of cbr0): exit 0, 0.100s" in lines
    assert "      bridge ADD: exit 0" in lines and "        host-local ADD: exit 0" in lines
    assert "      ran iptables x3" in lines
    # each change once, under the program that made it; hostile text made one line
    changes = [line for line in lines if line.lstrip().startswith(("+ ", "- ", "~ ", "? "))]
    assert len(changes) == sum(len(e["changes"]) for e in doc["events"])
    assert any(line.startswith("          + file") and "10.1.0.2" in line for line in lines)  # host-local's, depth 2
    assert any("/var/lib/cni/x\\x0atrace #99" in line for line in lines)
    assert any(line.endswith("(not started by this step)") and "/var/lib/cni/other" in line for line in lines)
    # stderr quoted, control characters visible, no forged header
    quoted = [line for line in lines if line.startswith("    stderr|")]
    assert quoted[-1] == f"    stderr| delegateAdd: {EVIL}\\x1b[2J\\x0dtrace #98 forged"
    assert "\x1b" not in "\n".join(lines) and "\r" not in "\n".join(lines)
    assert f"    error: plugin portmap failed: {EVIL}" in lines


def test_terminal_safe() -> None:
    assert terminal_safe("a\r\nb\rc\x1b[0m\x00\x7f\x9b\té") == "a\nb\\x0dc\\x1b[0m\\x00\\x7f\\x9b\té"
    assert terminal_safe("a\nb", one_line=True) == "a\\x0ab"
