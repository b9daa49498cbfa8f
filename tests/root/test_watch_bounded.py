"""``cnitool watch`` keeps memory flat: each finished operation is written
out and dropped.  Thirty operations (ADD and DEL of Debian's loopback plugin,
run by cnitool in a namespace of the test's own) go by while the watch runs;
it reports each (the next starts once the last is reported), and the
operations and processes it holds at the end, and at most at any moment,
are counted (objects, not timings)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support import CNITOOL, unique, write_conf

pytestmark = pytest.mark.root

ROUNDS = 15


def test_watch_drops_finished_operations(make_netns, tmp_path: Path) -> None:
    host, pod = make_netns("host"), make_netns("pod")
    conf_dir, cache_dir = tmp_path / "net.d", tmp_path / "cache"
    cache_dir.mkdir()
    conf_dir.mkdir()
    network = unique("lo")
    write_conf(conf_dir, "10-lo.conf", {"cniVersion": "1.0.0", "name": network, "type": "loopback"})
    out = tmp_path / "watch.json"
    watch = subprocess.Popen(
        [
            sys.executable, str(CNITOOL), "--cache-dir", str(cache_dir), "--conf-dir", str(conf_dir),
            "watch", "--netns", f"/var/run/netns/{host}", "--json", str(out), "--count", str(2 * ROUNDS),
            "--linger", "0.1", "--duration", "120",
        ],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert watch.stderr is not None
    assert "watching" in watch.stderr.readline()
    # one operation at a time: the next starts once the watch has reported
    # the last (so whatever it still holds then is what it failed to drop)
    assert watch.stdout is not None
    text = ""
    done = 0
    for i in range(ROUNDS):
        for verb in ("add", "del"):
            subprocess.run(
                ["ip", "netns", "exec", host, sys.executable, str(CNITOOL), "--cache-dir", str(cache_dir),
                 "--conf-dir", str(conf_dir), verb, network, f"/var/run/netns/{pod}", "--container-id", f"c{i}"],
                check=True, capture_output=True, timeout=60,
                env={"CNI_PATH": "/usr/lib/cni", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
            )  # fmt: skip
            done += 1
            while f"operation {done}:" not in text:
                line = watch.stdout.readline()
                assert line, f"the watch ended early: {text}"
                text += line
    text += watch.stdout.read()  # the watch ends by itself (--count)
    err = watch.stderr.read()
    watch.wait(timeout=60)
    assert watch.returncode == 0, err
    doc = json.loads(out.read_text())
    summary = doc["summary"]
    assert summary["operations"] == 2 * ROUNDS
    seen = {(e["operation"]["command"], e["operation"]["containerId"]) for e in doc["events"]}
    assert seen == {(verb, f"c{i}") for i in range(ROUNDS) for verb in ("ADD", "DEL")}
    assert text.count("loopback ADD") == ROUNDS and text.count("loopback DEL") == ROUNDS
    # nothing kept once done: never more than the one operation under way
    assert summary["retained"] == {"operations": 0, "processes": 0, "netns": 0}
    assert summary["peakOpenOperations"] == 1, summary
    assert summary["peakProcesses"] == 1, summary


def test_watch_output_cannot_drive_the_terminal(make_netns, tmp_path: Path) -> None:
    """What the timeline prints comes from other programs (argv, file and
    link names): an escape sequence in a plugin's child's argv is shown as
    text, never sent to the terminal."""
    host = make_netns("host")
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    watch = subprocess.Popen(
        [
            sys.executable, str(CNITOOL), "--cache-dir", str(cache_dir), "--conf-dir", str(tmp_path),
            "watch", "--netns", f"/var/run/netns/{host}", "--count", "1", "--linger", "0.1", "--duration", "60",
        ],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert watch.stderr is not None and "watching" in watch.stderr.readline()
    evil = "\x1b[2J\x1b[Hpwned"
    subprocess.run(
        ["ip", "netns", "exec", host, "sh", "-c", 'sh -c "sleep 0.3; true" "$0"', evil],
        check=True, timeout=30,
        env={"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "esc1", "CNI_IFNAME": "eth0", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    out, err = watch.communicate(timeout=60)
    assert watch.returncode == 0, err
    assert "operation 1:" in out and "esc1" in out, out
    assert "\x1b" not in out
    assert "\\x1b[2J\\x1b[Hpwned" in out, out
