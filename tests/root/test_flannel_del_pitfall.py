"""Flannel's DEL pitfall on a real bridge network, and what libcni_py does
about it.

Flannel's plugin (flannel-io/cni-plugin, from v1.2.0) removes its saved
delegate configuration ``<dataDir>/<containerID>`` on DEL even when the
delegate's DEL (bridge, host-local) failed; a retried DEL then finds no
file and answers success without running the delegate: the pod's eth0, the
host veth and host-local's reservation stay.  libcni_py keeps the record
after the failed DEL (state "deleting"), notices after the retry that eth0
is still in the pod's namespace, and keeps the record (with ``leftover``)
instead of dropping it; GC reports it.  Once the namespace is gone (which
takes eth0 and the veth along), the next DEL removes the record and says
which address may still be reserved.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import kernel
import pytest
from support import PLUGINS, unique, write_conf

from libcni_py import CNI, LeftoverError, MultiError, PluginError, RuntimeConf, load_network, netns

pytestmark = pytest.mark.root

DEBIAN = "/usr/lib/cni"


class Net:
    """A Flannel network on a bridge of its own, in the test's node namespace."""

    def __init__(self, tmp_path: Path, flannel: Path, pod: str) -> None:
        self.bindir = tmp_path / "bin"
        self.bindir.mkdir()
        (self.bindir / "flannel").symlink_to(flannel)
        self.cache = tmp_path / "cache"
        self.data_dir = tmp_path / "flannel-data"
        self.ipam_dir = tmp_path / "ipam"
        subnet_env = tmp_path / "subnet.env"
        subnet_env.write_text(
            "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.9.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n"
        )
        self.bridge = unique("cnib")[:15]
        conf_dir = tmp_path / "net.d"
        conf_dir.mkdir()
        write_conf(
            conf_dir,
            "10-flannel.conflist",
            {
                "cniVersion": "1.0.0",
                "name": "cbr0",
                "plugins": [
                    {
                        "type": "flannel",
                        "subnetFile": str(subnet_env),
                        "dataDir": str(self.data_dir),
                        "ipam": {"dataDir": str(self.ipam_dir)},
                        "delegate": {"bridge": self.bridge, "isDefaultGateway": True},
                    }
                ],
            },
        )
        self.netlist = load_network(str(conf_dir), "cbr0")
        self.pod = pod
        self.rt = RuntimeConf(container_id=unique("pitfall"), netns=netns.path_for(pod), ifname="eth0")
        self.notices: list[str] = []

    def cni(self, *dirs: str) -> CNI:
        """libcni_py on this network's cache, with these plugin dirs (the
        delegate is found on the same path, CNI_PATH)."""
        return CNI(
            plugin_path=[str(self.bindir), *dirs],
            cache_dir=str(self.cache),
            on_stderr=None,
            on_notice=self.notices.append,
        )

    @property
    def reservation(self) -> Path:
        return self.ipam_dir / "cbr0" / "10.244.9.2"

    def host_veths(self) -> list[str]:
        links = kernel.links(None)
        bridge = links.get(self.bridge)
        return [
            n for n, link in links.items() if bridge and link["kind"] == "veth" and link["master"] == bridge["index"]
        ]


@pytest.fixture
def net(tmp_path: Path, make_netns: object, real_flannel: Path) -> object:
    pod = make_netns("pitfall")  # type: ignore[operator]
    made = Net(tmp_path, real_flannel, pod)
    yield made
    netns.delete(pod)
    subprocess.run(["ip", "link", "del", made.bridge], check=False, capture_output=True)


def test_real_flannel_retried_del_leaves_eth0_and_libcni_py_keeps_the_record(net: Net) -> None:
    full = net.cni(DEBIAN)
    full.add(net.netlist, net.rt)
    assert "eth0" in kernel.links(net.pod) and len(net.host_veths()) == 1 and net.reservation.exists()

    # the first DEL: bridge cannot be found (a plugin dir being upgraded, say): flannel fails...
    with pytest.raises(PluginError, match='failed to find plugin "bridge" in path'):
        net.cni().delete(net.netlist, net.rt)
    # ... and removed its saved delegate configuration all the same (v1.2.0 on)
    assert not (net.data_dir / net.rt.container_id).exists()
    record = full.cached_record(net.netlist, net.rt)
    assert record is not None and record.progress is not None
    assert (record.progress.state, record.progress.remaining, record.progress.leftover) == (
        "deleting",
        ((0, "flannel"),),
        (),
    )

    # the retry: flannel says success without running bridge; eth0 is still in the pod
    with pytest.raises(LeftoverError) as info:
        full.delete(net.netlist, net.rt)
    assert f"every plugin's DEL succeeded, but eth0 is still in {net.rt.netns}" in str(info.value)
    assert "as Flannel's plugin does from v1.2.0" in info.value.hint
    assert "eth0" in kernel.links(net.pod) and len(net.host_veths()) == 1 and net.reservation.exists()
    record = full.cached_record(net.netlist, net.rt)
    assert record is not None and record.progress is not None  # not dropped
    assert (record.progress.state, record.progress.leftover) == ("deleting", ("eth0",))
    assert record.result is not None and record.result["ips"][0]["address"] == "10.244.9.2/24"
    raw = json.loads((net.cache / "results" / f"cbr0-{net.rt.container_id}-eth0").read_text())
    assert raw["libcniPy"]["leftover"] == ["eth0"]

    # GC does not lose it either: it tries the DEL again and reports what is left
    with pytest.raises(MultiError) as gc_info:
        full.gc(net.netlist, [])
    assert "eth0 is still in" in str(gc_info.value)
    assert full.cached_record(net.netlist, net.rt) is not None

    # the runtime deletes the namespace (eth0 and the host veth go with it); the next DEL
    # drops the record and says which address may still be reserved
    netns.delete(net.pod)
    deadline = time.monotonic() + 30  # the kernel removes a dead namespace's veths on a work queue
    while net.host_veths() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert net.host_veths() == []
    net.notices.clear()
    full.delete(net.netlist, net.rt)
    assert full.cached_record(net.netlist, net.rt) is None
    assert any(
        "said eth0 stayed in the namespace after an earlier DEL" in n and "10.244.9.2/24" in n for n in net.notices
    ), net.notices
    # host-local's reservation is what no DEL can release any more (cnitool doctor's business)
    assert net.reservation.read_text() == f"{net.rt.container_id}\neth0"


def test_flannel_before_1_2_keeps_its_file_and_the_retry_cleans_up(net: Net, tmp_path: Path) -> None:
    """The contrast, with the Flannel-compatible stand-in
    testdata/plugins/flannel, kept for this one behaviour the real plugin no
    longer has: Flannel's plugin before v1.2.0 kept its file when the
    delegate's DEL failed, so the retried DEL runs bridge and host-local,
    eth0, the veth and the reservation go, and libcni_py drops its record."""
    (net.bindir / "flannel").unlink()
    (net.bindir / "flannel").symlink_to(PLUGINS / "flannel")
    (net.bindir / "_common.py").symlink_to(PLUGINS / "_common.py")
    full = net.cni(DEBIAN)
    full.add(net.netlist, net.rt)
    with pytest.raises(PluginError, match='"bridge" not found'):
        net.cni().delete(net.netlist, net.rt)
    assert (net.data_dir / net.rt.container_id).exists()
    full.delete(net.netlist, net.rt)
    assert "eth0" not in kernel.links(net.pod) and net.host_veths() == [] and not net.reservation.exists()
    assert full.cached_record(net.netlist, net.rt) is None
