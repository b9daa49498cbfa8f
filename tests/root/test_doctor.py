"""``cnitool doctor`` on a real node: each broken state is made with
Debian's bridge + host-local + portmap in namespaces this test creates (and
a Flannel node with the real flannel plugin), doctor must name each with its
fix, and ``--fix`` must repair exactly the dead ones while the live
attachments -- libcni_py's and another runtime's (a podman-style record of a
live namespace) -- stay as they were.

Everything is in the test's private dirs and the root tests' node namespace
(see tests/conftest.py): iptables chains made here are the node's own.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import kernel
import pytest
from networks import bridge_portmap, host_port
from support import DEBIAN_PLUGINS, run_cnitool, unique, write_conf

from libcni_py import netns
from libcni_py.core.args import cnitool_container_id

pytestmark = pytest.mark.root

_subnets = itertools.count(31)
OLD = time.time() - 3600


class Node:
    """A bridge + host-local + portmap network in the test's own dirs."""

    def __init__(self, tmp_path: Path, conf_dir: Path, cache_dir: Path) -> None:
        self.data_dir = tmp_path / "ipam"
        self.net = bridge_portmap(self.data_dir, prefix="dr", bridge_prefix="drb")
        self.network, self.bridge, self.subnet = self.net.name, self.net.bridge, self.net.subnet
        self.conf_dir, self.cache_dir = conf_dir, cache_dir
        self.net.write(conf_dir, "10-net.conflist")
        self.env = {
            "NETCONFPATH": str(conf_dir),
            "CNI_PATH": str(DEBIAN_PLUGINS),
            "CNI_CACHE_DIR": str(cache_dir),
        }
        self.held: list[subprocess.Popen[bytes]] = []

    def cnitool(self, *argv: str, caps: object = None) -> subprocess.CompletedProcess[str]:
        env = dict(self.env)
        if caps is not None:
            env["CAP_ARGS"] = json.dumps(caps)
        return run_cnitool(*argv, env=env)

    def doctor(self, *extra: str) -> subprocess.CompletedProcess[str]:
        return self.cnitool("doctor", "--ipam-dir", str(self.data_dir), "--no-probe", *extra)

    def add(self, ns: str, **kw: object) -> str:
        caps = {"portMappings": [{"hostPort": host_port(), "containerPort": 80, "protocol": "tcp"}]}
        proc = self.cnitool("add", self.network, netns.path_for(ns), caps=caps, **kw)  # type: ignore[arg-type]
        assert proc.returncode == 0, proc.stderr
        return str(json.loads(proc.stdout)["ips"][0]["address"]).split("/")[0]

    def record(self, container_id: str) -> Path:
        return self.cache_dir / "results" / f"{self.network}-{container_id}-eth0"

    def reserved(self) -> list[str]:
        return kernel.reservations(self.data_dir, self.network)

    def rules_of(self, container_id: str) -> list[str]:
        return [line for line in kernel.iptables("nat") if container_id in line]

    def hold(self, ns: str) -> None:
        """A process that keeps the namespace alive after its file is removed."""
        self.held.append(subprocess.Popen(["ip", "netns", "exec", ns, "sleep", "600"], stdin=subprocess.DEVNULL))
        time.sleep(0.3)

    def cleanup(self) -> None:
        for proc in self.held:  # only the processes this test started
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        self.cnitool("gc", self.network, "--all", "--force")
        subprocess.run(["ip", "link", "del", self.bridge], check=False, capture_output=True)


@pytest.fixture
def doc_node(node: str, tmp_path: Path, conf_dir: Path, cache_dir: Path) -> Iterator[Node]:
    made = Node(tmp_path, conf_dir, cache_dir)
    yield made
    made.cleanup()


def _finding(doc: dict[str, object], kind: str, needle: str) -> dict[str, object]:
    findings = doc["findings"]
    assert isinstance(findings, list)
    found = [f for f in findings if f["kind"] == kind and needle in f["subject"] + f["cause"]]
    assert found, (kind, needle, [(f["kind"], f["subject"]) for f in findings])
    return found[0]


def test_doctor_names_each_broken_state_and_fix_removes_only_the_dead(doc_node: Node, make_netns: object) -> None:
    mk = make_netns  # type: ignore[assignment]
    node = doc_node
    # live: ours, and a podman-style record of a live namespace (no netns key, podman's names and args)
    live_ns = mk("drl")  # type: ignore[operator]
    live_ip = node.add(live_ns)
    live_cid = cnitool_container_id(netns.path_for(live_ns))
    podman_ns = f"netns-{uuid.uuid4()}"
    subprocess.run(["ip", "netns", "add", podman_ns], check=True)
    try:
        podman_cid = os.urandom(32).hex()
        podman_ip = _podman_add(node, podman_ns, podman_cid)
        # dead: namespace gone; namespace stale; namespace held by a process but its file removed
        gone_ns, stale_ns, held_ns = mk("drg"), mk("drs"), mk("drh")  # type: ignore[operator]
        node.add(gone_ns)
        node.add(stale_ns)
        node.add(held_ns)
        gone_cid, stale_cid, held_cid = (cnitool_container_id(netns.path_for(n)) for n in (gone_ns, stale_ns, held_ns))
        held_veth = _host_veth(node, held_cid)
        subprocess.run(["ip", "netns", "del", gone_ns], check=True)
        subprocess.run(["umount", netns.path_for(stale_ns)], check=True)
        node.hold(held_ns)
        subprocess.run(["ip", "netns", "del", held_ns], check=True)
        assert held_veth in kernel.links()
        # a leaked reservation (no record, no namespace), written as host-local writes it
        leaked = node.data_dir / node.network / node.subnet.host(200)
        leaked_cid = os.urandom(32).hex()
        leaked.write_text(f"{leaked_cid}\r\neth0")
        os.utime(leaked, (OLD, OLD))
        # iptables of a container that is gone with its record and reservation (a runtime that lost them)
        lost_ns = mk("drx")  # type: ignore[operator]
        lost_ip = node.add(lost_ns)
        lost_cid = cnitool_container_id(netns.path_for(lost_ns))
        node.record(lost_cid).unlink()
        (node.data_dir / node.network / lost_ip).unlink()
        subprocess.run(["ip", "netns", "del", lost_ns], check=True)
        assert node.rules_of(lost_cid)
        # an orphan address: the record is gone but the pod's interface lives (what a DEL that did not
        # reach the delegate leaves)
        orphan_ns = mk("dro")  # type: ignore[operator]
        orphan_ip = node.add(orphan_ns)
        orphan_cid = cnitool_container_id(netns.path_for(orphan_ns))
        node.record(orphan_cid).unlink()
        os.utime(node.data_dir / node.network / orphan_ip, (OLD, OLD))
        # conf files: a plugin missing, and an invalid file sorting first (containerd fails its load)
        write_conf(node.conf_dir, "20-missing.conflist",
                   {"cniVersion": "1.0.0", "name": unique("drm"), "plugins": [{"type": "nosuchplugin"}]})  # fmt: skip
        write_conf(node.conf_dir, "00-broken.conf", "{not json")

        before_live = (node.record(live_cid).read_bytes(), node.record(podman_cid).read_bytes())
        proc = node.doctor("--json")
        assert proc.returncode == 7, proc.stderr
        doc = json.loads(proc.stdout)
        assert proc.stdout.startswith('{\n    "cacheDir"')  # cnitool's one JSON indentation, sorted keys

        gone = _finding(doc, "record", gone_cid)
        assert f"namespace {netns.path_for(gone_ns)} is gone" in gone["cause"] and gone["provenDead"]
        assert gone["fix"].startswith(f"cnitool gc {node.network} --all") and "cnitool" in gone["madeBy"]
        stale = _finding(doc, "record", stale_cid)
        assert "is no longer a namespace" in stale["cause"] and stale["provenDead"]
        assert f"cnitool netns del {netns.path_for(stale_ns)}" in stale["fix"]
        held = _finding(doc, "record", held_cid)
        assert f"ip link del {held_veth}" in held["fix"], held
        res = _finding(doc, "reservation", str(leaked))
        assert leaked_cid in res["cause"] and res["provenDead"] and res["madeBy"].startswith("host-local")
        assert f"rm {leaked}" in res["fix"]
        ipt = _finding(doc, "iptables", lost_cid)
        assert ipt["provenDead"] and ipt["madeBy"] in ("portmap", "bridge (ipMasq)")
        assert "-D CNI-HOSTPORT-DNAT" in ipt["fix"] or "-D POSTROUTING" in ipt["fix"]
        orphan = _finding(doc, "orphan-address", orphan_ip)
        assert not orphan["provenDead"] and orphan_ns in orphan["cause"]
        missing = _finding(doc, "conf", "nosuchplugin")
        assert "install the plugin" in missing["fix"]
        blocker = _finding(doc, "conf", "containerd")
        assert "00-broken.conf" in blocker["cause"] and "containerd fails its whole load" in blocker["fix"]
        # the live ones are not findings
        for cid in (live_cid, podman_cid):
            assert not [f for f in doc["findings"] if cid in f["subject"] + f["cause"]], cid

        # the text form says the same, each with its fix
        text = node.doctor()
        assert text.returncode == 7
        assert f"[record] {node.network}/{gone_cid}/eth0" in text.stdout
        assert f"[reservation] {leaked}" in text.stdout and "(proven dead: --fix does it)" in text.stdout

        # --fix: exactly the dead ones
        fixed = node.doctor("--fix")
        assert fixed.returncode == 7, fixed.stdout + fixed.stderr  # what is not proven dead is left
        out = fixed.stdout
        for cid in (gone_cid, stale_cid, held_cid):
            assert f"deleted attachment {node.network}/{cid}/eth0" in out, out
            assert not node.record(cid).exists()
        assert f"removed reservation {leaked}" in out and not leaked.exists()
        # the held namespace's veth is not proven dead (a process holds its peer): advice, never removed
        assert "ran ip link del" not in out and held_veth in kernel.links()
        assert f"removed stale namespace file {netns.path_for(stale_ns)}" in out
        assert not os.path.exists(netns.path_for(stale_ns))
        assert node.rules_of(lost_cid) == [] and node.rules_of(gone_cid) == []
        # left: the live attachments, byte for byte, with their addresses, rules and reservations
        assert (node.record(live_cid).read_bytes(), node.record(podman_cid).read_bytes()) == before_live
        assert sorted(node.reserved()) == sorted([live_ip, podman_ip, orphan_ip])
        assert ("eth0", f"{live_ip}/24") in kernel.addresses(live_ns)
        assert ("eth0", f"{podman_ip}/24") in kernel.addresses(podman_ns)
        assert node.rules_of(live_cid) and node.rules_of(podman_cid)
        assert "[orphan-address]" in out and "[conf]" in out

        again = json.loads(node.doctor("--json").stdout)
        ours = [f for f in again["findings"] if f["kind"] == "conf" or node.network in f["subject"] + f["cause"]]
        assert {f["kind"] for f in ours} == {"conf", "orphan-address"}, ours
        assert [f["subject"] for f in ours if f["kind"] == "orphan-address"] == [
            str(node.data_dir / node.network / orphan_ip)
        ]
    finally:
        subprocess.run(["ip", "netns", "del", podman_ns], check=False, capture_output=True)


def _podman_add(node: Node, ns: str, container_id: str) -> str:
    """A podman container's attachment: a real ADD with podman's names and
    CNI_ARGS, recorded as podman's Go libcni 1.1.2 writes it (no netns key)."""
    caps = {"portMappings": [{"hostPort": host_port(), "containerPort": 80, "protocol": "tcp"}]}
    proc = node.cnitool(
        "add", node.network, netns.path_for(ns), "--container-id", container_id,
        "--args", "IgnoreUnknown=1;K8S_POD_NAME=web", caps=caps,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    record = node.record(container_id)
    doc = json.loads(record.read_bytes())
    doc.pop("netns", None)
    record.write_text(json.dumps(doc))
    return str(json.loads(proc.stdout)["ips"][0]["address"]).split("/")[0]


def _host_veth(node: Node, container_id: str) -> str:
    result = json.loads(node.record(container_id).read_bytes())["result"]
    return next(i["name"] for i in result["interfaces"] if not i.get("sandbox") and i["name"] != node.bridge)


def test_flannel_node_mismatched_bridge_and_the_del_pitfall(
    node: str, tmp_path: Path, conf_dir: Path, cache_dir: Path, make_netns: object, real_flannel: Path
) -> None:
    """A Flannel node (the real flannel plugin delegating to Debian's bridge +
    host-local): a bridge whose address is not subnet.env's, a pod whose
    flannel file went away, and what its DEL then leaves."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "flannel").symlink_to(real_flannel)
    for name in ("bridge", "host-local", "portmap", "loopback"):
        (plugins / name).symlink_to(DEBIAN_PLUGINS / name)
    third, bridge, network = next(_subnets), unique("fcn"), unique("fl")
    subnet_env = tmp_path / "subnet.env"
    subnet_env.write_text(
        f"FLANNEL_NETWORK=10.248.0.0/16\nFLANNEL_SUBNET=10.248.{third}.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n"
    )
    data_dir, flannel_dir = tmp_path / "networks", tmp_path / "flannel"
    write_conf(conf_dir, "10-flannel.conflist", {
        "name": network, "cniVersion": "0.3.1",
        "plugins": [
            {"type": "flannel", "subnetFile": str(subnet_env), "dataDir": str(flannel_dir),
             "ipam": {"dataDir": str(data_dir)},
             "delegate": {"bridge": bridge, "hairpinMode": True, "isDefaultGateway": True}},
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    })  # fmt: skip
    env = {"NETCONFPATH": str(conf_dir), "CNI_PATH": str(plugins), "CNI_CACHE_DIR": str(cache_dir)}
    pod = make_netns("fpod")  # type: ignore[operator]
    path = netns.path_for(pod)
    cid = cnitool_container_id(path)

    def doctor(*extra: str) -> subprocess.CompletedProcess[str]:
        return run_cnitool("doctor", "--ipam-dir", str(data_dir), "--json", *extra, env=env)

    # cni0's address differs from FLANNEL_SUBNET: the bridge plugin refuses every ADD
    subprocess.run(["ip", "link", "add", bridge, "type", "bridge"], check=True)
    try:
        subprocess.run(["ip", "addr", "add", f"10.248.{third + 100}.1/24", "dev", bridge], check=True)
        add = run_cnitool("add", network, path, env=env)
        assert add.returncode != 0 and "already has an IP address different from" in add.stderr, add.stderr
        assert run_cnitool("del", network, path, env=env).returncode == 0  # as a runtime does after a failed ADD
        proc = doctor()
        assert proc.returncode == 7, proc.stderr
        found = _finding(json.loads(proc.stdout), "flannel-bridge", bridge)
        assert f'"{bridge}" already has an IP address different from 10.248.{third}.1/24' in found["cause"]
        assert f"FLANNEL_SUBNET=10.248.{third}.1/24" in found["cause"] and not found["provenDead"]
        assert found["fix"].startswith(f"ip link del {bridge} (no pod is on it)")
        # the fix, as doctor says it
        subprocess.run(["ip", "link", "del", bridge], check=True)
        add = run_cnitool("add", network, path, env=env)
        assert add.returncode == 0, add.stderr
        ip = str(json.loads(add.stdout)["ips"][0]["address"]).split("/")[0]
        # nothing of this network is wrong (the node namespace is shared with other tests)
        mine = [f for f in json.loads(doctor().stdout)["findings"] if network in f["cause"] or bridge in f["cause"]]
        assert mine == []

        # flannel's saved file goes (a cleaned dataDir): doctor warns before the DEL
        (flannel_dir / cid).unlink()
        proc = doctor()
        saved = _finding(json.loads(proc.stdout), "flannel-saved", cid)
        assert str(flannel_dir / cid) in saved["cause"] and "DEL will succeed without" in saved["cause"]
        # the DEL succeeds and leaves the pod's interface and its reservation
        assert run_cnitool("del", network, path, env=env).returncode == 0
        assert ip in kernel.reservations(data_dir, network)
        assert ("eth0", f"{ip}/24") in kernel.addresses(pod)
        proc = doctor("--grace", "0")
        orphan = _finding(json.loads(proc.stdout), "orphan-address", ip)
        assert "flannel's DEL" in orphan["cause"] and not orphan["provenDead"]
        # --fix leaves it while the interface lives; once the namespace is gone, it releases it
        fixed = doctor("--grace", "0", "--fix")
        # (the node namespace is shared with other tests: only this network's lines count)
        assert [line for line in json.loads(fixed.stdout)["fixed"] if ip in line or network in line] == []
        assert ip in kernel.reservations(data_dir, network)
        subprocess.run(["ip", "netns", "del", pod], check=True)
        fixed = doctor("--grace", "0", "--fix")
        assert fixed.returncode in (0, 7), fixed.stdout + fixed.stderr
        assert not [f for f in json.loads(fixed.stdout)["findings"] if network in f["cause"] or ip in f["cause"]]
        assert any(ip in line and "removed reservation" in line for line in json.loads(fixed.stdout)["fixed"])
        assert kernel.reservations(data_dir, network) == []

        # no subnet.env (flanneld not running): named with its fix
        subnet_env.unlink()
        missing = _finding(json.loads(doctor().stdout), "flannel-subnet", str(subnet_env))
        assert "does not exist" in missing["cause"] and "start flanneld" in missing["fix"]
    finally:
        subprocess.run(["ip", "link", "del", bridge], check=False, capture_output=True)
