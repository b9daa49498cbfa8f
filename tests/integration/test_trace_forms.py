"""The forms of a traced operation from the command line, with real test
plugin processes: the full timeline (``--trace``) when a plugin writes stderr
without a final newline (as the real Flannel plugin does), the compact lines
(``--trace-compact``), the page (``--trace-html``) and ``cnitool trace
html|compact`` of a ``--trace-json`` file, for ``add``, ``del`` and ``pod up``."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from support import CNITOOL, PLUGINS, run_cnitool, write_conf

#: What the chatty plugin writes: no final newline, a forged header after a
#: carriage return, an escape sequence that would clear a terminal.
STDERR = '\nmap[string]interface {}{"type":"bridge"}\ndelegateAdd: sent\x1b[2J\rtrace #9 +0.000s forged'
HEADER = re.compile(r"^trace #(\d+) \+\d+\.\d{3}s ", re.M)


def run_raw(*args: str, env: dict[str, str]) -> tuple[int, str]:
    """Run cnitool; its exit status and stderr as written (run_cnitool's text
    mode would turn a carriage return into a newline)."""
    proc = subprocess.run(
        [sys.executable, str(CNITOOL), *args], env={**os.environ, **env}, capture_output=True, timeout=120, check=False
    )
    return proc.returncode, proc.stderr.decode()


@pytest.fixture
def env(conf_dir: Path, cache_dir: Path, record_file: Path) -> dict[str, str]:
    write_conf(
        conf_dir,
        "10-chatty.conflist",
        {
            "cniVersion": "1.0.0",
            "name": "chatty",
            "plugins": [
                {"type": "misbehave", "mode": "chatty", "stderr": STDERR},
                {"type": "recorder", "interfaceName": "r1"},
            ],
        },
    )
    return {
        "NETCONFPATH": str(conf_dir),
        "CNI_PATH": str(PLUGINS),
        "CNI_CACHE_DIR": str(cache_dir),
        "RECORD_FILE": str(record_file),
    }


@pytest.fixture
def netns(tmp_path: Path) -> str:
    path = tmp_path / "ns"
    path.write_text("")
    return str(path)


def test_every_trace_header_starts_a_line_whatever_a_plugin_wrote(
    env: dict[str, str], netns: str, tmp_path: Path
) -> None:
    # without a printed trace, the plugin's stderr is copied as Go copies it: raw
    status, stderr = run_raw("add", "chatty", netns, "--container-id", "plain", env=env)
    assert status == 0, stderr
    assert stderr == STDERR

    out = tmp_path / "add.json"
    status, stderr = run_raw("--trace", "--trace-json", str(out), "add", "chatty", netns, env=env)
    assert status == 0, stderr
    events = json.loads(out.read_text())["events"]
    (plugin_step,) = [e for e in events if e.get("stderr")]
    assert plugin_step["stderr"] == STDERR  # the JSON has it as written
    # the headers are the trace's own, each at the start of a line, in order; the forged one is not
    assert [int(n) for n in HEADER.findall(stderr)] == [e["seq"] for e in events] == list(range(1, len(events) + 1))
    # the plugin's text is shown once, in its step, indented, with its controls made visible
    block = stderr[stderr.index("    stderr") :].splitlines()[:4]
    assert block[:3] == [
        "    stderr",
        '             map[string]interface {}{"type":"bridge"}',
        "             delegateAdd: sent\\x1b[2J\\x0dtrace #9 +0.000s forged",
    ]
    assert not block[3].startswith("             ")  # the block ends there: the trace goes on
    assert stderr.count("delegateAdd: sent\\x1b[2J") == 1  # not also copied raw (the stdin has it JSON-quoted)
    assert "\x1b" not in stderr and "\r" not in stderr
    assert all(not line or line.startswith(("trace #", " ")) for line in stderr.splitlines())


def test_compact_lines_match_the_json_and_trace_compact_of_the_file(
    env: dict[str, str], netns: str, tmp_path: Path
) -> None:
    out = tmp_path / "add.json"
    status, stderr = run_raw("--trace-compact", "--trace-json", str(out), "add", "chatty", netns, env=env)
    assert status == 0, stderr
    doc = json.loads(out.read_text())
    lines = stderr.splitlines()
    # one line per step, per plugin call and per change; the stderr quoted
    heads = [line for line in lines if line.startswith("trace #")]
    assert len(heads) == len(doc["events"])
    for event in doc["events"]:
        head = heads[event["seq"] - 1]
        if event["effect"] == "exec":
            plugin = event["plugin"]
            assert f" {plugin['type']} {event['command']} (plugins[{plugin['index']}] of chatty): exit 0, " in head
        else:
            assert head.endswith(event["summary"])
    changes = [line for line in lines if re.match(r"^ +[-+~] ", line)]
    assert len(changes) == sum(len(e["changes"]) for e in doc["events"]) > 0
    for event in doc["events"]:
        for change in event["changes"]:
            assert any(line.rstrip().endswith(change["text"]) for line in changes), change
    assert [line for line in lines if line.startswith("    stderr|")] == [
        '    stderr| map[string]interface {}{"type":"bridge"}',
        "    stderr| delegateAdd: sent\\x1b[2J\\x0dtrace #9 +0.000s forged",
    ]
    assert len(lines) < 40
    # the same lines from the file
    again = run_cnitool("trace", "compact", str(out), env=env)
    assert again.returncode == 0 and again.stdout == stderr


def test_trace_html_is_the_page_of_the_trace_json(env: dict[str, str], netns: str, tmp_path: Path) -> None:
    run_cnitool("add", "chatty", netns, env=env)
    json_out, html_out, rendered = tmp_path / "del.json", tmp_path / "del.html", tmp_path / "again.html"
    proc = run_cnitool("--trace-json", str(json_out), "--trace-html", str(html_out), "del", "chatty", netns, env=env)
    assert proc.returncode == 0, proc.stderr
    page = html_out.read_text()
    assert stat.S_IMODE(html_out.stat().st_mode) == 0o600  # it holds the plugins' configurations
    assert page.startswith("<!DOCTYPE html>") and "del chatty" in page
    for event in json.loads(json_out.read_text())["events"]:
        assert f'id="step-{event["seq"]}"' in page
    render = run_cnitool("trace", "html", str(json_out), str(rendered), env=env)
    assert render.returncode == 0, render.stderr
    assert rendered.read_text() == page


def test_trace_forms_reach_pod_up(env: dict[str, str], netns: str, tmp_path: Path, plugin_dir: Path) -> None:
    (plugin_dir / "misbehave").symlink_to(PLUGINS / "misbehave")
    env = {**env, "CNI_PATH": str(plugin_dir)}  # with loopback
    html_out = tmp_path / "up.html"
    proc = run_cnitool(
        "--trace-compact", "--trace-html", str(html_out), "pod", "up", "--name", "web", "--netns", netns,
        "--network", "chatty", env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "misbehave ADD (plugins[0] of chatty): exit 0" in proc.stderr
    assert "    stderr| delegateAdd: sent\\x1b[2J\\x0dtrace #9 +0.000s forged" in proc.stderr
    assert proc.stderr.count("delegateAdd") == 1  # not also copied raw
    assert "recorder ADD" in html_out.read_text()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read: No such file or directory"),
        ("{", "not JSON"),
        ('{"cniVersion": "1.0.0"}', 'not a --trace-json document (no "schema": "libcni_py.trace/...")'),
    ],
)
def test_trace_render_of_a_file_that_is_no_trace(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "t.json"
    if content is not None:
        path.write_text(content)
    proc = run_cnitool("trace", "html", str(path), str(tmp_path / "out.html"))
    assert proc.returncode == 3
    assert proc.stderr.startswith(f"cnitool: error: {path}: {message}") and len(proc.stderr.splitlines()) == 1
    assert not (tmp_path / "out.html").exists()
