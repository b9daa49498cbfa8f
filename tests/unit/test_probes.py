"""The probes' pure parts: differences of snapshots, and the timeline text."""

from __future__ import annotations

import os
from pathlib import Path

from libcni_py.edges import probes
from libcni_py.tools.trace.tracer import Event, format_event


def test_file_snapshots_and_their_difference(tmp_path: Path) -> None:
    root = tmp_path / "data"
    (root / "net").mkdir(parents=True)
    (root / "net" / "keep").write_text("same")
    (root / "net" / "edit").write_text("old")
    (root / "net" / "gone").write_text("x")
    before = probes.snapshot_files([str(root)])
    (root / "net" / "edit").write_text("new!")
    (root / "net" / "gone").unlink()
    (root / "net" / "10.1.0.2").write_text("cid\neth0")
    (root / "link").symlink_to("net/keep")
    os.utime(root / "net" / "keep", (1, 1))  # mtime alone is not a change
    changes = probes.diff_files(before, probes.snapshot_files([str(root)]))
    assert [(c.change, c.kind, os.path.relpath(c.where, root)) for c in changes] == [
        ("created", "symlink", "link"),
        ("created", "file", "net/10.1.0.2"),
        ("changed", "file", "net/edit"),
        ("removed", "file", "net/gone"),
    ]
    created = changes[1]
    assert created.details["content"] == "cid\neth0" and created.details["size"] == 8
    assert changes[0].details["target"] == "net/keep"


def test_roots_are_deduplicated_and_data_dirs_found() -> None:
    assert probes.watch_roots(["/var/lib/cni", "/var/lib/cni/networks", "/tmp/x/", "/tmp/x", ""]) == (
        "/tmp/x",
        "/var/lib/cni",
    )
    conf = {"type": "bridge", "ipam": {"type": "host-local", "dataDir": "/d1"}, "x": [{"dataDir": "/d2"}], "dataDir": 3}
    assert probes.find_data_dirs(conf) == ["/d1", "/d2"]


def test_net_difference() -> None:
    before = ({"lo": ("", "", True), "br0": ("bridge", "", True)}, {("lo", "127.0.0.1/8")}, set())
    after = (
        {"lo": ("", "", True), "br0": ("bridge", "", True), "veth1": ("veth", "br0", True)},
        {("lo", "127.0.0.1/8"), ("br0", "10.0.0.1/24")},
        {(4, "10.0.0.0/24", "", "br0", "kernel"), (4, "0.0.0.0/0", "10.0.0.1", "eth0", "boot")},
    )
    texts = [(c.change, c.kind, c.text) for c in probes.diff_net(before, after, "host")]  # type: ignore[arg-type]
    assert texts == [
        ("added", "link", "veth1 (veth, master br0, up)"),
        ("added", "address", "br0 10.0.0.1/24"),
        ("added", "route", "0.0.0.0/0 via 10.0.0.1 dev eth0"),
        ("added", "route", "10.0.0.0/24 dev br0 proto kernel"),
    ]
    back = probes.diff_net(after, before, "host")  # type: ignore[arg-type]
    assert {c.change for c in back} == {"removed"} and len(back) == 4


def test_iptables_difference_keeps_order_and_duplicates() -> None:
    before = {"nat": [":PREROUTING ACCEPT", "-A PREROUTING -j X"], "filter": []}
    after = {
        "nat": [":PREROUTING ACCEPT", ":CNI-1 -", "-A PREROUTING -j X", "-A PREROUTING -j X", "-A CNI-1 -j Y"],
        "filter": [":FORWARD DROP"],
    }
    changes = probes.diff_iptables(before, after)
    assert [(c.where, c.kind, c.text) for c in changes] == [
        ("nat", "iptables-chain", "CNI-1"),
        ("nat", "iptables-rule", "-A PREROUTING -j X"),
        ("nat", "iptables-rule", "-A CNI-1 -j Y"),
        ("filter", "iptables-chain", "FORWARD (policy DROP)"),
    ]


def test_timeline_of_a_plugin_call() -> None:
    change = probes.Change(
        kind="file",
        change="created",
        where="/d/n/10.1.0.2",
        text="/d/n/10.1.0.2 (8 bytes, 0644)",
        details={"content": "cid\neth0"},
    )
    event = Event(
        seq=4,
        at=0.25,
        duration=0.03,
        actor="plugin",
        effect="exec",
        summary="plugin bridge ADD (plugins[0] of network n)",
        data={
            "plugin": {"type": "bridge", "path": "/opt/cni/bin/bridge", "delegates": ["host-local"]},
            "env": {"HOME": "/root", "CNI_COMMAND": "ADD", "CNI_IFNAME": "eth0"},
            "stdin": '{"a":1}',
            "exitStatus": 0,
            "pluginDuration": 0.03,
            "pid": 42,
            "stdout": "{}\n",
            "stderr": "",
        },
        changes=[change],
        unprobed=["container network (/x): gone"],
    )
    text = format_event(event)
    assert text.splitlines()[0] == "trace #4 +0.250s plugin bridge ADD (plugins[0] of network n)"
    assert "    binary   /opt/cni/bin/bridge   (its config delegates to: host-local)" in text
    assert "    env      CNI_COMMAND=ADD CNI_IFNAME=eth0" in text and "+ 1 variables inherited" in text
    assert "    result   exit status 0 after 0.030s (pid 42)" in text and "    stderr   (empty)" in text
    assert "    changed during this step (by bridge or a plugin it ran):" in text
    assert '      + file           /d/n/10.1.0.2 (8 bytes, 0644)  "cid\\neth0"' in text
    assert text.splitlines()[-1] == "    not probed: container network (/x): gone"
    assert event.to_json()["changes"][0]["by"] == "bridge"
