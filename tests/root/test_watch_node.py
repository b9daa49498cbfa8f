"""``cnitool watch`` on a real runtime: containerd (CRI) starts and removes a
pod sandbox on an isolated node while the watch runs outside it, on a
bridge + host-local + portmap network and on the Flannel network with the
real plugin.  The report must hold containerd's ADD and DEL, each plugin
call and the calls nested in it, the files (containerd's own record under
``results/`` included), links, addresses and iptables changes, each put down
to the program that made it -- and nothing that an unrelated process did
meanwhile.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from shared_node import SharedNode
from support import CNITOOL, REPO

pytestmark = [pytest.mark.root, pytest.mark.slow]


def flannel_bin_dir(root: Path, flannel: Path) -> Path:
    """Debian's plugins plus the real Flannel plugin, in one dir (containerd
    1.6 takes one ``bin_dir``)."""
    bin_dir = root / "cni-bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    for entry in Path("/usr/lib/cni").iterdir():
        (bin_dir / entry.name).symlink_to(entry)
    (bin_dir / "flannel").symlink_to(flannel)
    return bin_dir


def write_flannel_conf(node: SharedNode) -> str:
    """kube-flannel's conflist (flannel delegating to bridge + host-local,
    then portmap) and the subnet.env flanneld would have written."""
    subnet = node.root / "subnet.env"
    subnet.write_text(
        "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n"
    )
    conf = {
        "name": "cbr0",
        "cniVersion": "0.3.1",
        "plugins": [
            {
                "type": "flannel",
                "subnetFile": str(subnet),
                "delegate": {"hairpinMode": True, "isDefaultGateway": True},
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
    for old in node.conf_dir.iterdir():
        old.unlink()
    (node.conf_dir / "10-flannel.conflist").write_text(json.dumps(conf, indent=2))
    return "cbr0"


def wait_network_ready(node: SharedNode, network: str) -> None:
    """containerd reloads its conf dir on change; wait until it took ``network``."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = node.cri.Status(node.pb2.StatusRequest(verbose=True), timeout=10)
        if network in json.dumps(dict(status.info)):
            return
        time.sleep(0.2)
    raise AssertionError(f"containerd did not take network {network} in 30 s")


class Watch:
    """``cnitool watch`` running outside the node, watching its netns and dirs."""

    def __init__(self, node: SharedNode, out: Path) -> None:
        self.json = out
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(CNITOOL),
                "--cache-dir",
                str(node.cni_dir),
                "--conf-dir",
                str(node.conf_dir),
                "watch",
                "--netns",
                f"/proc/{node.pid}/ns/net",
                "--json",
                str(out),
                "--linger",
                "1",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stderr is not None
        line = self.proc.stderr.readline()
        assert "watching" in line, line + self.proc.stderr.read()

    def stop(self) -> tuple[dict[str, Any], str, str]:
        time.sleep(1.5)  # the last operation's linger
        self.proc.send_signal(signal.SIGINT)
        out, err = self.proc.communicate(timeout=60)
        assert self.proc.returncode == 0, err
        return json.loads(self.json.read_text()), out, err


def unrelated_activity(node: SharedNode) -> None:
    """A process that is no CNI call writes into the watched dir and makes a
    link in the node's namespace."""
    (node.cni_dir / "unrelated-note").write_text("not a plugin\n")
    node.run("ip", "link", "add", "lcpyunrel0", "type", "veth", "peer", "name", "lcpyunrel1")
    node.run("ip", "addr", "add", "192.0.2.77/32", "dev", "lcpyunrel0")
    node.run("ip", "link", "del", "lcpyunrel0")
    (node.cni_dir / "unrelated-note").unlink()


def run_sandbox_with_port(node: SharedNode, name: str) -> str:
    """A sandbox with a port mapping, so that containerd gives portmap one."""
    pb = node.pb2
    config = pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, uid=f"uid-{node.name}-{name}", namespace="default", attempt=0),
        hostname=name,
        log_directory=str(node.root / "pod-logs" / name),
        port_mappings=[pb.PortMapping(protocol=pb.TCP, container_port=80, host_port=18080)],
        linux=pb.LinuxPodSandboxConfig(),
    )
    (node.root / "pod-logs" / name).mkdir(parents=True, exist_ok=True)
    return str(node.cri.RunPodSandbox(pb.RunPodSandboxRequest(config=config), timeout=120).pod_sandbox_id)


def pod_lifecycle(node: SharedNode, out: Path) -> tuple[dict[str, Any], str, str]:
    watch = Watch(node, out)
    try:
        unrelated_activity(node)
        sandbox = run_sandbox_with_port(node, "watched")
        unrelated_activity(node)
        node.remove_sandbox(sandbox)
    finally:
        if watch.proc.poll() is None:
            doc, text, err = watch.stop()
    return doc, text, err


@pytest.fixture
def node() -> Iterator[SharedNode]:
    n = SharedNode()
    try:
        n.start(podman=0, sandboxes=0)
        yield n
    finally:
        n.stop()


@pytest.fixture
def flannel_node(real_flannel: Path, tmp_path: Path) -> Iterator[SharedNode]:
    bin_dir = flannel_bin_dir(tmp_path, real_flannel)
    n = SharedNode(bin_dir=str(bin_dir))
    try:
        n.start(podman=0, sandboxes=0)
        yield n
    finally:
        n.stop()


def operations(doc: dict[str, Any]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """The events of the first operation of each (command, ifname); a later
    one (containerd runs the DEL chain again at RemovePodSandbox, without a
    netns) is checked apart."""
    first: dict[tuple[str, str], int] = {}
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for event in doc["events"]:
        op = event["operation"]
        key = (op["command"], op["ifname"])
        if first.setdefault(key, op["seq"]) == op["seq"]:
            out.setdefault(key, []).append(event)
    return out


def changes(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for e in events for c in e["changes"]]


def by(changes_: list[dict[str, Any]], kind: str, change: str, program: str) -> list[dict[str, Any]]:
    return [c for c in changes_ if c["kind"] == kind and c["change"] == change and c["by"] == program]


def check_common(doc: dict[str, Any], node: SharedNode, network: str) -> dict[tuple[str, str], list[dict[str, Any]]]:
    ops = operations(doc)
    assert set(ops) == {("ADD", "eth0"), ("ADD", "lo"), ("DEL", "eth0"), ("DEL", "lo")}, sorted(ops)
    for events in ops.values():
        for event in events:
            assert event["operation"]["runtime"]["program"] == "containerd"
            assert event["operation"]["netns"].startswith("/var/run/netns/cni-")
    for event in doc["events"]:
        assert event["operation"]["runtime"]["program"] == "containerd"
        if event["effect"] == "exec":
            assert event["exitStatus"] == 0, event["summary"]
    # the loopback network containerd builds itself
    lo_add = ops[("ADD", "lo")]
    assert [e["plugin"]["type"] for e in lo_add if e["effect"] == "exec"] == ["loopback"]
    assert lo_add[0]["operation"]["network"]["network"] == "cni-loopback"
    assert lo_add[0]["operation"]["network"]["file"] == ""
    # containerd writes its records after each chain, and removes them on DEL
    add, dele = ops[("ADD", "eth0")], ops[("DEL", "eth0")]
    cid = add[0]["operation"]["containerId"]
    record = f"results/{network}-{cid}-eth0"
    assert [c["rel"] for c in by(changes(add), "file", "created", "containerd")].count(record) == 1
    assert by(changes(dele), "file", "removed", "containerd") and record in [
        c["rel"] for c in by(changes(dele), "file", "removed", "containerd")
    ]
    assert add[0]["operation"]["network"]["network"] == network
    assert add[0]["operation"]["network"]["file"] == str(next(node.conf_dir.iterdir()))
    assert "record" in add[0]["operation"]["network"]["why"]
    # nothing from the unrelated process
    everything = [c for e in doc["events"] for c in e["changes"]]
    assert not [c for c in everything if "unrelated-note" in c["text"] or "lcpyunrel0" in c["text"]]
    assert not [c for c in everything if c["text"].startswith("192.0.2.77")]
    assert doc["summary"]["ignoredChanges"] >= 4
    return ops


def test_watch_bridge_host_local_portmap(node: SharedNode, tmp_path: Path) -> None:
    doc, text, _err = pod_lifecycle(node, tmp_path / "watch.json")
    print(text)
    ops = check_common(doc, node, node.network)
    add = ops[("ADD", "eth0")]
    calls = [e for e in add if e["effect"] == "exec"]
    assert [e["plugin"]["type"] for e in calls] == ["bridge", "portmap"]
    bridge, portmap = calls
    # nested: bridge -> host-local (a plugin), portmap -> iptables (a helper)
    nested = [(p["program"], p["plugin"], p["depth"]) for p in bridge["processes"][1:]]
    assert ("host-local", True, 1) in nested
    assert any(p["program"].startswith("iptables") and not p["plugin"] for p in portmap["processes"][1:])
    ch = changes(add)
    ipam = by(ch, "file", "created", "host-local")
    assert any(c["rel"].startswith(f"networks/{node.network}/10.") for c in ipam), ipam
    assert any(c["rel"] == f"networks/{node.network}/last_reserved_ip.0" for c in ipam)
    assert by(ch, "link", "added", "bridge") and any(
        c["text"] == node.bridge for c in by(ch, "link", "added", "bridge")
    )
    assert any(c["where"] == "container" and c["text"] == "eth0" for c in by(ch, "link", "added", "bridge"))
    assert any(c["where"] == "container" for c in by(ch, "address", "added", "bridge"))
    rules = [c for c in ch if c["kind"] == "iptables-rule" and c["change"] == "added"]
    assert rules and all(c["writer"]["runBy"][-1] in ("bridge", "portmap") for c in rules)
    assert all(c["by"].startswith("iptables") for c in rules)
    # the DEL releases the reservation (host-local) and removes the veth (bridge)
    dele = changes(ops[("DEL", "eth0")])
    assert any(c["rel"].startswith(f"networks/{node.network}/10.") for c in by(dele, "file", "removed", "host-local"))
    assert [c for c in dele if c["kind"] == "iptables-rule" and c["change"] == "removed"]
    # the HTML picture renders it
    page = subprocess.run(
        [sys.executable, str(CNITOOL), "trace", "html", str(tmp_path / "watch.json"), "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert 'data-lane="containerd"' in page and 'data-lane="host-local"' in page
    # the timeline names the same things
    assert "operation 1: containerd" in text and "host-local ADD" in text


def test_watch_flannel_real_plugin(flannel_node: SharedNode, tmp_path: Path) -> None:
    node = flannel_node
    network = write_flannel_conf(node)
    wait_network_ready(node, network)
    doc, text, _err = pod_lifecycle(node, tmp_path / "watch.json")
    print(text)
    (tmp_path / "watch.txt").write_text(text)
    if os.environ.get("LCPY_KEEP_WATCH"):
        Path(os.environ["LCPY_KEEP_WATCH"]).write_text(json.dumps({"doc": doc, "text": text}))
    ops = check_common(doc, node, network)
    add = ops[("ADD", "eth0")]
    calls = [e for e in add if e["effect"] == "exec"]
    assert [e["plugin"]["type"] for e in calls] == ["flannel", "portmap"]
    flannel = calls[0]
    tree = [(p["program"], p["depth"]) for p in flannel["processes"]]
    assert ("bridge", 1) in tree and ("host-local", 2) in tree, tree
    ch = changes(add)
    assert any(
        c["rel"] == f"flannel/{add[0]['operation']['containerId']}" for c in by(ch, "file", "created", "flannel")
    )
    assert any(c["rel"].startswith("networks/cbr0/10.244.1.") for c in by(ch, "file", "created", "host-local"))
    assert any(c["text"] == "cni0" for c in by(ch, "link", "added", "bridge"))
    assert any(c["text"] == "10.244.1.1/24" for c in by(ch, "address", "added", "bridge"))
    dele = changes(ops[("DEL", "eth0")])
    assert by(dele, "file", "removed", "flannel")
    # docs/walkthrough.md, part 2: every fact it states
    cid = add[0]["operation"]["containerId"]
    facts = walkthrough_facts()
    assert len(facts) >= 30
    for line in facts:
        check_fact(line, ops, cid)


# --------------------------------------------------------------------------
# docs/walkthrough.md part 2: each fact it states, checked against the watch


def walkthrough_facts() -> list[str]:
    text = (REPO / "docs" / "walkthrough.md").read_text()
    block = re.search(r"```facts\n(.*?)```", text, re.S)
    assert block, "docs/walkthrough.md has no facts block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def _norm(text: str, cid: str) -> str:
    text = text.replace(cid, "<id>")
    text = re.sub(r"veth[0-9a-f]{8}", "veth<x>", text)
    text = re.sub(r"CNI-DN-[0-9a-f]+", "CNI-DN-<hash>", text)
    return re.sub(r" #\d+", "", text)


def _described(change: dict[str, Any], cid: str) -> str:
    if change["kind"] in ("file", "dir"):
        return f"{change['change']} {change['kind']} {_norm(change['rel'], cid)}"
    return f"{change['change']} {change['kind']} {_norm(change['where'] + ' ' + change['text'], cid)}"


def _span(events: list[dict[str, Any]]) -> tuple[float, float]:
    procs = [p for e in events if e["effect"] == "exec" for p in e["processes"]]
    return min(p["at"] for p in procs), max(p["exitAt"] for p in procs)


def check_fact(line: str, ops: dict[tuple[str, str], list[dict[str, Any]]], cid: str) -> None:
    head, *rest = [part.strip() for part in line.split("|")]
    words = head.split()
    if words[0] == "order":
        events = ops[(words[1], words[2])]
        procs = [p for e in events if e["effect"] == "exec" for p in e["processes"] if p["plugin"]]
        got = [p["program"] for p in sorted(procs, key=lambda p: p["at"])]
        assert got == [x.strip() for x in rest[0].split(",")], (line, got)
        return
    if words[0] == "concurrent":
        a, b = _span(ops[(words[1], words[2])]), _span(ops[tuple(rest[0].split())])  # type: ignore[index]
        assert a[0] < b[1] and b[0] < a[1], (line, a, b)
        return
    if words[0] == "after":
        events = ops[(words[1], words[2])]
        change = next(c for c in changes(events) if _norm(c.get("rel", ""), cid) == rest[0])
        procs = [p for e in events if e["effect"] == "exec" for p in e["processes"] if p["program"] == rest[1]]
        assert procs and change["at"] > procs[0]["exitAt"], (line, change["at"], procs[:1])
        return
    events = ops[(words[0], words[1])]
    who = [x.strip() for x in rest[1].removeprefix("by ").split("<")]
    if rest[0] == "no iptables":
        made = [c for c in changes(events) if c["kind"].startswith("iptables")]
        assert not [c for c in made if who[0] in (c["by"], *c["writer"]["runBy"])], line
        return
    found = [c for c in changes(events) if _described(c, cid) == rest[0]]
    assert found, (line, sorted({_described(c, cid) for c in changes(events)}))
    assert any([c["by"], *c["writer"]["runBy"]] == who for c in found), (line, [(c["by"], c["writer"]) for c in found])
