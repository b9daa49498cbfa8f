"""The HTML trace in a real browser: a traced ADD of Debian's bridge +
host-local + portmap (in namespaces this test creates) written with
``--trace-html``, loaded in Debian's headless Chromium; the DOM Chromium
builds must show every plugin call (bridge, the host-local it ran, portmap,
the iptables they ran) and every change of the trace, compared with the
``--trace-json`` of the same run.  A screenshot is taken too (a PNG the
browser could lay out, of a sensible size).  The walkthrough's ADD
(examples/flannel, with the real flannel plugin) gets the same check.

Chromium runs with a profile of its own in a temporary folder (removed
after), no network features, in a session of its own: on a timeout the
process group it started is killed, nothing else."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from networks import bridge_portmap, host_port, port_mappings
from support import CNITOOL, DEBIAN_PLUGINS, IN_CI, REPO

pytestmark = pytest.mark.root

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
)


def chromium_binary() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        message = "needs Debian's chromium (scripts/setup installs it)"
        if IN_CI:
            pytest.fail(f"CI must render the HTML trace in a browser: {message}")
        pytest.skip(message)
    return found


def chromium(binary: str, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[bytes]:
    """Run headless Chromium once with a fresh profile; kill what it started
    if it hangs."""
    with tempfile.TemporaryDirectory(prefix="lcpy-chromium-") as profile:
        proc = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={profile}", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            env={**os.environ, "HOME": profile},
        )
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the group of the Chromium this test started
            proc.communicate()
            raise
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


class Dom(HTMLParser):
    """The elements of the diagram: plugin calls (``data-call``) and change
    items (``li.change``), each with its step and its text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.calls: list[tuple[str, str]] = []  # (step, label)
        self.changes: list[tuple[str, str, str]] = []  # (step, kind, text)
        self.lanes: list[str] = []
        self._li: list[str] | None = None
        self._li_attrs: dict[str, str | None] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if "data-call" in found:
            self.calls.append((found.get("data-seq") or "", found["data-call"] or ""))
        if "data-lane" in found:
            self.lanes.append(found["data-lane"] or "")
        if tag == "li" and "change" in (found.get("class") or "").split():
            self._li, self._li_attrs = [], found

    def handle_endtag(self, tag: str) -> None:
        if tag == "li" and self._li is not None:
            attrs = self._li_attrs
            self.changes.append((attrs.get("data-seq") or "", attrs.get("data-kind") or "", "".join(self._li)))
            self._li = None

    def handle_data(self, data: str) -> None:
        if self._li is not None:
            self._li.append(data)


def rendered(browser: str, page: Path) -> Dom:
    """The DOM headless Chromium builds from ``page``."""
    dumped = chromium(browser, "--dump-dom", page.as_uri())
    assert dumped.returncode == 0, dumped.stderr.decode(errors="replace")[-2000:]
    dom = Dom()
    dom.feed(dumped.stdout.decode())
    dom.close()
    return dom


def assert_every_call_and_change(dom: Dom, doc: dict[str, Any]) -> None:
    """Every plugin call of the trace (and each program it ran) is shown
    under its step, and every change of every step is shown there once."""
    for event in doc["events"]:
        if event["effect"] != "exec":
            continue
        seq = str(event["seq"])
        labels = [label for step, label in dom.calls if step == seq]
        plugins = [f"{p['program']} {p['cniCommand']}" for p in event["processes"] if p["plugin"]]
        assert plugins and [label for label in labels if label in plugins] == plugins, (labels, plugins)
        helpers = {p["program"] for p in event["processes"] if not p["plugin"]}
        assert helpers == {label.split(" ")[0] for label in labels if label not in plugins}
    shown = list(dom.changes)
    for event in doc["events"]:
        for change in event["changes"]:
            match = next(
                (i for i, (step, kind, text) in enumerate(shown)
                 if step == str(event["seq"]) and kind == change["kind"] and text.endswith(change["text"])),
                None,
            )  # fmt: skip
            assert match is not None, change
            shown.pop(match)
    assert shown == []


def test_html_trace_of_a_real_add_shows_every_call_and_change_in_chromium(
    make_netns, tmp_path: Path, conf_dir: Path, cache_dir: Path, v4only_path: str
) -> None:
    browser = chromium_binary()
    host, pod = make_netns("host"), make_netns("pod")
    subprocess.run(["ip", "-n", host, "link", "set", "lo", "up"], check=True)
    net = bridge_portmap(tmp_path / "ipam")
    net.write(conf_dir, "10-bridge.conflist")
    network = net.name
    env = {
        **os.environ,
        "NETCONFPATH": str(conf_dir),
        "CNI_PATH": str(DEBIAN_PLUGINS),
        "CNI_CACHE_DIR": str(cache_dir),
        "CAP_ARGS": json.dumps(port_mappings(host_port())),
        "PATH": v4only_path,
    }
    page, trace = tmp_path / "add.html", tmp_path / "add.json"
    # cnitool in a "host" namespace of the test's own (its bridge and iptables rules go there)
    proc = subprocess.run(
        ["ip", "netns", "exec", host, sys.executable, str(CNITOOL), "--trace-json", str(trace),
         "--trace-html", str(page), "add", network, f"/var/run/netns/{pod}"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    try:
        assert proc.returncode == 0, proc.stderr
        doc = json.loads(trace.read_text())
        execs = [e for e in doc["events"] if e["effect"] == "exec"]
        assert [e["plugin"]["type"] for e in execs] == ["bridge", "portmap"]
        assert all(e.get("processes") for e in execs)  # as root: the process tree

        dom = rendered(browser, page)
        assert_every_call_and_change(dom, doc)
        assert tuple(label for step, label in dom.calls if step == str(execs[0]["seq"]) and label.endswith(" ADD")) == (
            "bridge ADD",
            "host-local ADD",
        )
        assert any(label.startswith("iptables") for step, label in dom.calls if step == str(execs[1]["seq"]))
        assert dom.lanes[:4] == ["cnitool", "bridge", "host-local", "iptables"] and "portmap" in dom.lanes

        assert sum(len(e["changes"]) for e in doc["events"]) > 20  # the reservation, links, addresses, routes, rules...
        kinds = {c["kind"] for e in doc["events"] for c in e["changes"]}
        assert {"file", "dir", "link", "address", "route", "iptables-chain", "iptables-rule"} <= kinds

        # and it lays out as a picture
        png = tmp_path / "add.png"
        shot = chromium(browser, f"--screenshot={png}", "--window-size=1300,1400", page.as_uri())
        assert shot.returncode == 0, shot.stderr.decode(errors="replace")[-2000:]
        data = png.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
        width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        assert (width, height) == (1300, 1400)
    finally:
        subprocess.run(
            ["ip", "netns", "exec", host, sys.executable, str(CNITOOL), "del", network, f"/var/run/netns/{pod}"],
            env=env, capture_output=True, timeout=120, check=False,
        )  # fmt: skip


def test_html_trace_of_the_walkthroughs_flannel_add_shows_every_call_and_change(
    make_netns, tmp_path: Path, cache_dir: Path, v4only_path: str, real_flannel: Path
) -> None:
    """The walkthrough's ADD (examples/flannel: kube-flannel's conflist, with
    the real flannel plugin delegating to Debian's bridge and host-local,
    then portmap) rendered by headless Chromium: every plugin call, nested
    ones included, and every change are on the page."""
    browser = chromium_binary()
    host, pod = make_netns("host"), make_netns("pod")
    subprocess.run(["ip", "-n", host, "link", "set", "lo", "up"], check=True)
    example = REPO / "examples" / "flannel"
    conf_dir = tmp_path / "net.d"
    conf_dir.mkdir()
    for conf in (example / "net.d").iterdir():  # the walkthrough's sandbox paths, here
        (conf_dir / conf.name).write_text(conf.read_text().replace("/tmp/cni-walkthrough", str(tmp_path)))
    subnet_env = tmp_path / "run" / "flannel" / "subnet.env"
    subnet_env.parent.mkdir(parents=True)
    subnet_env.write_text((example / "subnet.env").read_text())
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    for binary in DEBIAN_PLUGINS.iterdir():
        (plugins / binary.name).symlink_to(binary)
    (plugins / "flannel").symlink_to(real_flannel)
    env = {
        **os.environ,
        "NETCONFPATH": str(conf_dir),
        "CNI_PATH": str(plugins),
        "CNI_CACHE_DIR": str(cache_dir),
        "CAP_ARGS": json.dumps({"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]}),
        "PATH": v4only_path,
    }
    page, trace = tmp_path / "add.html", tmp_path / "add.json"
    proc = subprocess.run(
        ["ip", "netns", "exec", host, sys.executable, str(CNITOOL), "--trace-json", str(trace),
         "--trace-html", str(page), "--trace-watch", str(tmp_path / "var"), "add", "cbr0", f"/var/run/netns/{pod}"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    try:
        assert proc.returncode == 0, proc.stderr
        doc = json.loads(trace.read_text())
        execs = [e for e in doc["events"] if e["effect"] == "exec"]
        assert [e["plugin"]["type"] for e in execs] == ["flannel", "portmap"]
        dom = rendered(browser, page)
        assert_every_call_and_change(dom, doc)
        flannel_calls = [label for step, label in dom.calls if step == str(execs[0]["seq"])]
        assert [label for label in flannel_calls if label.endswith(" ADD")] == [
            "flannel ADD",
            "bridge ADD",
            "host-local ADD",
        ]
        assert any(label.startswith("iptables") for step, label in dom.calls if step == str(execs[1]["seq"]))
        assert {"flannel", "bridge", "host-local", "portmap"} <= set(dom.lanes)
        changes = [text for _, _, text in dom.changes]
        assert any("cni0" in text for text in changes)  # the bridge flannel's delegate made
        assert any(str(tmp_path / "var" / "lib" / "cni" / "flannel") in text for text in changes)  # its saved file
        assert any("10.244.1." in text for text in changes)  # the address from subnet.env's FLANNEL_SUBNET
    finally:
        subprocess.run(
            ["ip", "netns", "exec", host, sys.executable, str(CNITOOL), "del", "cbr0", f"/var/run/netns/{pod}"],
            env=env, capture_output=True, timeout=120, check=False,
        )  # fmt: skip
