"""GC on a node shared with other runtimes, with Debian's bridge + host-local
in namespaces the tests make: only proven-dead attachments are deleted.

Other runtimes' attachments are made realistic the way they are on a real
node: a real ADD in a live namespace, then the record rewritten in Go libcni
1.1.2's form (no ``netns`` key: the namespace is only in the result's
``interfaces[].sandbox``) with the CNI_ARGS a CRI runtime passes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import faults
import kernel
import pytest
from networks import bridge_network
from support import CNITOOL, DEBIAN_PLUGINS, run_cnitool, unique

from libcni_py import CNI, RuntimeConf, load_network, netns
from libcni_py.core.args import cnitool_container_id
from libcni_py.runtime import PodNetworks

pytestmark = pytest.mark.root

CRI_ARGS = (("IgnoreUnknown", "1"), ("K8S_POD_NAMESPACE", "default"), ("K8S_POD_NAME", "web"))


class Node:
    """One bridge network in temp conf/cache/data dirs, and helpers."""

    def __init__(self, tmp_path: Path, conf_dir: Path, cache_dir: Path) -> None:
        self.data_dir = tmp_path / "ipam"
        net = bridge_network(self.data_dir, prefix="gcl", bridge_prefix="gcb", gateway=False)
        self.network, self.bridge = net.name, net.bridge
        self.conf_dir, self.cache_dir = conf_dir, cache_dir
        net.write(conf_dir, "10-net.conflist")
        self.env = {"NETCONFPATH": str(conf_dir), "CNI_PATH": str(DEBIAN_PLUGINS), "CNI_CACHE_DIR": str(cache_dir)}
        self.cni = CNI(plugin_path=[str(DEBIAN_PLUGINS)], cache_dir=str(cache_dir), on_stderr=None)

    def net(self) -> object:
        return load_network(str(self.conf_dir), self.network)

    def foreign(self, ns: str, container_id: str) -> str:
        """A CRI sandbox's attachment, recorded as Go libcni 1.1.2 records it;
        returns its address."""
        rt = RuntimeConf(container_id=container_id, netns=netns.path_for(ns), ifname="eth0", args=CRI_ARGS)
        result = self.cni.add(self.net(), rt)  # type: ignore[arg-type]
        record = self.record(container_id)
        doc = json.loads(record.read_bytes())
        doc.pop("netns", None)
        record.write_text(json.dumps(doc))
        return str(result.ips[0].address).split("/")[0]

    def record(self, container_id: str) -> Path:
        return self.cache_dir / "results" / f"{self.network}-{container_id}-eth0"

    def reserved(self) -> list[str]:
        return kernel.reservations(self.data_dir, self.network)

    def cnitool(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return run_cnitool(*argv, env=self.env)


@pytest.fixture
def node_net(node: str, tmp_path: Path, conf_dir: Path, cache_dir: Path) -> Iterator[Node]:
    made = Node(tmp_path, conf_dir, cache_dir)
    yield made
    # whatever a failed test left: everything of this network, forced (our own temp dirs)
    made.cnitool("gc", made.network, "--all", "--force")
    for pod in (cache_dir / "libcni_py" / "pods").glob("*") if (cache_dir / "libcni_py").is_dir() else ():
        made.cnitool("pod", "down", pod.name)


def _unmount_leaving_the_file(name: str) -> str:
    """Make /var/run/netns/NAME stale: the namespace goes, the empty file stays."""
    path = netns.path_for(name)
    subprocess.run(["umount", path], check=True)
    assert netns.state(path) == "stale"
    return path


def test_gc_valid_keeps_other_live_attachments_and_collects_gone_and_stale(node_net: Node, make_netns: object) -> None:
    names = [make_netns("gca") for _ in range(4)]  # type: ignore[operator]
    paths = [netns.path_for(n) for n in names]
    for path in paths:
        assert node_net.cnitool("add", node_net.network, path).returncode == 0
    ours, live, gone, stale = (cnitool_container_id(p) for p in paths)
    addresses = {
        cid: json.loads(node_net.record(cid).read_bytes())["result"]["ips"][0]["address"] for cid in (ours, live)
    }
    doc = json.loads(node_net.record(live).read_bytes())
    del doc["netns"]  # as Go 1.1.2 wrote it: the namespace only in the result
    node_net.record(live).write_text(json.dumps(doc))
    subprocess.run(["ip", "netns", "del", names[2]], check=True)
    stale_path = _unmount_leaving_the_file(names[3])
    try:
        proc = node_net.cnitool("gc", node_net.network, "--valid", f"{ours}/eth0")
    finally:
        os.unlink(stale_path)
    assert proc.returncode == 0, proc.stderr
    assert f"kept {ours}/eth0: listed as valid" in proc.stdout
    assert f"kept {live}/eth0: namespace {paths[1]} is alive" in proc.stdout
    assert f"removed {gone}/eth0" in proc.stdout and f"removed {stale}/eth0" in proc.stdout
    assert node_net.reserved() == sorted(a.split("/")[0] for a in addresses.values())
    assert ("eth0", addresses[live]) in kernel.addresses(names[1])
    assert node_net.record(live).exists() and node_net.record(ours).exists()

    # --all: nothing is valid, but both are alive: kept
    again = node_net.cnitool("gc", node_net.network, "--all")
    assert again.returncode == 0 and "removed" not in again.stdout, again.stdout
    # --force: Go's GC, asked for by name
    forced = node_net.cnitool("gc", node_net.network, "--all", "--force")
    assert f"removed {live}/eth0" in forced.stdout and f"removed {ours}/eth0" in forced.stdout
    assert node_net.reserved() == []


def test_pod_gc_leaves_other_runtimes_attachments_alone(node_net: Node, make_netns: object) -> None:
    up = node_net.cnitool("pod", "up", "--name", "mine", "--json")
    assert up.returncode == 0, up.stderr
    mine = json.loads(up.stdout)["containerId"]
    alive_ns, dead_ns = make_netns("gcf"), make_netns("gcf")  # type: ignore[operator]
    alive_id, dead_id = os.urandom(32).hex(), os.urandom(32).hex()
    alive_ip = node_net.foreign(alive_ns, alive_id)
    node_net.foreign(dead_ns, dead_id)
    subprocess.run(["ip", "netns", "del", dead_ns], check=True)

    ls = node_net.cnitool("pod", "ls")
    assert ls.returncode == 0, ls.stderr
    row = next(line.split() for line in ls.stdout.splitlines() if line.startswith(alive_id[:12]))
    assert row[1:5] == ["default/web", "cri", "foreign", "alive"], ls.stdout
    assert "'pod gc' leaves them alone" in ls.stdout
    cache_ls = node_net.cnitool("cache", "ls")
    line = next(line.split() for line in cache_ls.stdout.splitlines() if alive_id in line)
    assert line[3:6] == [netns.path_for(alive_ns), "cri", "alive"], cache_ls.stdout

    gc = node_net.cnitool("pod", "gc")
    assert gc.returncode == 0, gc.stderr
    assert "removed" not in gc.stdout, gc.stdout
    assert f"kept {node_net.network} {alive_id} eth0: cri's (K8S_POD_* args" in gc.stdout
    assert "pod gc leaves other runtimes' attachments alone" in gc.stdout
    assert f"kept {node_net.network} {mine} eth0: its namespace" in gc.stdout
    assert node_net.record(dead_id).exists() and alive_ip in node_net.reserved()

    # asked for: only the dead one goes
    wider = node_net.cnitool("pod", "gc", "--include-foreign")
    assert wider.returncode == 0, wider.stderr
    assert f"removed {node_net.network} {dead_id} eth0" in wider.stdout
    assert f"kept {node_net.network} {alive_id} eth0: namespace {netns.path_for(alive_ns)} is alive" in wider.stdout
    assert not node_net.record(dead_id).exists() and node_net.record(alive_id).exists()
    assert alive_ip in node_net.reserved() and len(node_net.reserved()) == 2  # ours and the live foreign one
    assert ("eth0", f"{alive_ip}/24") in kernel.addresses(alive_ns)

    # pod check of a Go-written record finds its namespace in the result
    check = node_net.cnitool("pod", "check", alive_id)
    assert check.returncode == 0 and "eth0 ok" in check.stdout, check.stderr


def test_a_cri_runtimes_list_keeps_and_collects(node_net: Node, make_netns: object) -> None:
    listed_ns, unlisted_ns = make_netns("gcc"), make_netns("gcc")  # type: ignore[operator]
    listed, unlisted = os.urandom(32).hex(), os.urandom(32).hex()
    node_net.foreign(listed_ns, listed)
    node_net.foreign(unlisted_ns, unlisted)
    report = node_net.cni.gc(node_net.net(), [], live_sandboxes=frozenset({listed}))  # type: ignore[arg-type]
    assert report.removed == ((unlisted, "eth0"),)
    assert report.kept_reasons == ((listed, "eth0", f"the CRI runtime says sandbox {listed[:12]} is alive"),)
    # the runtime GC: a foreign CRI sandbox the runtime no longer lists is dead (when asked for foreign ones)
    pods = PodNetworks(
        conf_dir=str(node_net.conf_dir), plugin_path=[str(DEBIAN_PLUGINS)], cache_dir=str(node_net.cache_dir)
    )
    kept = pods.gc(include_foreign=False, live_sandboxes=frozenset())
    assert kept.removed == () and [k[1] for k in kept.kept] == [listed]
    gone = pods.gc(include_foreign=True, live_sandboxes=frozenset())
    assert gone.removed == ((node_net.network, listed, "eth0"),)
    assert node_net.reserved() == []


def test_a_pod_up_killed_during_setup_is_collected(node_net: Node, tmp_path: Path) -> None:
    shims = faults.write_shims(tmp_path / "shims", DEBIAN_PLUGINS, ("bridge", "host-local", "loopback"))
    pod_id = unique("half")
    env = dict(os.environ) | node_net.env | {"CNI_PATH": str(shims), "FAULT_AT": "after ADD bridge"}
    what = faults.kill_in_plugin(
        [sys.executable, str(CNITOOL), "pod", "up", "--name", "half", "--id", pod_id], env, tmp_path / "reached"
    )
    assert what == "killed", what
    path = netns.path_for(f"lcpy-{pod_id}")
    assert netns.state(path) == "alive" and len(node_net.reserved()) == 1, "setup got half-way"
    record = json.loads((node_net.cache_dir / "libcni_py" / "pods" / pod_id).read_bytes())
    assert "setup" in record

    ls = node_net.cnitool("pod", "ls")
    assert next(line.split() for line in ls.stdout.splitlines() if line.startswith(pod_id[:12]))[3] == "dead", ls.stdout
    gc = node_net.cnitool("pod", "gc")
    assert gc.returncode == 0, gc.stderr
    assert f"removed pod {pod_id}" in gc.stdout and f"removed netns {path}" in gc.stdout
    assert netns.state(path) == "gone"
    assert node_net.reserved() == []
    assert not list((node_net.cache_dir / "results").iterdir())


def test_pod_namespaces_never_clash(node_net: Node, make_netns: object) -> None:
    tag = unique("")
    first, second = f"web-frontend-1-{tag}", f"web-frontend-2-{tag}"
    for pod_id in (first, second):
        up = node_net.cnitool("pod", "up", "--name", pod_id, "--id", pod_id)
        assert up.returncode == 0, up.stderr
    assert netns.state(netns.path_for(f"lcpy-{first}")) == netns.state(netns.path_for(f"lcpy-{second}")) == "alive"

    # a namespace of that name exists and is not ours: refused before anything is touched
    taken = f"taken-{tag}"
    subprocess.run(["ip", "netns", "add", f"lcpy-{taken}"], check=True)
    try:
        up = node_net.cnitool("pod", "up", "--name", "x", "--id", taken)
        assert up.returncode != 0
        assert f"its namespace {netns.path_for('lcpy-' + taken)} exists already" in up.stderr
        assert netns.state(netns.path_for(f"lcpy-{taken}")) == "alive"
        assert not (node_net.cache_dir / "libcni_py" / "pods" / taken).exists()
    finally:
        subprocess.run(["ip", "netns", "del", f"lcpy-{taken}"], check=False)
    for pod_id in (first, second):
        assert node_net.cnitool("pod", "down", pod_id).returncode == 0
    assert node_net.reserved() == []
