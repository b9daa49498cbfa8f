"""``cnitool watch`` keeps memory flat: each finished operation is written
out and dropped.  Thirty operations (ADD and DEL of Debian's loopback plugin,
run by cnitool in a namespace of the test's own) go by while the watch runs;
it reports each, and the operations and processes it still holds at the end,
and at most at any moment, are counted (objects, not timings)."""

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
    script = "; ".join(
        f"{sys.executable} {CNITOOL} --cache-dir {cache_dir} --conf-dir {conf_dir} {verb} {network} "
        f"/var/run/netns/{pod} --container-id c{i}"
        for i in range(ROUNDS)
        for verb in ("add", "del")
    )
    subprocess.run(
        ["ip", "netns", "exec", host, "sh", "-ec", script], check=True, capture_output=True,
        env={"CNI_PATH": "/usr/lib/cni", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}, timeout=300,
    )  # fmt: skip
    text, err = watch.communicate(timeout=60)
    assert watch.returncode == 0, err
    doc = json.loads(out.read_text())
    summary = doc["summary"]
    assert summary["operations"] == 2 * ROUNDS
    seen = {(e["operation"]["command"], e["operation"]["containerId"]) for e in doc["events"]}
    assert seen == {(verb, f"c{i}") for i in range(ROUNDS) for verb in ("ADD", "DEL")}
    assert text.count("loopback ADD") == ROUNDS and text.count("loopback DEL") == ROUNDS
    # nothing kept once done, and never more than a couple at once
    assert summary["retained"] == {"operations": 0, "processes": 0, "netns": 0}
    assert summary["peakOpenOperations"] <= 3, summary
    assert summary["peakProcesses"] <= 6, summary
