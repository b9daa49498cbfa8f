"""The runtime layer with Debian's plugins in real namespaces: two pods with
two bridge networks each, set up concurrently, reach each other; tearing one
down leaves the other working; readiness follows the conf dir; a pod whose
conflist vanished still comes down cleanly."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import kernel
import pytest
import trio
from networks import bridge_network
from support import DEBIAN_PLUGINS, run_cnitool

from libcni_py import netns
from libcni_py.runtime import AsyncPodNetworks, PodNetworks, PodSpec

pytestmark = pytest.mark.root


@pytest.fixture
def reaper(node: str, conf_dir: Path, cache_dir: Path) -> Iterator[None]:
    """Whatever a failed test left of its pods is removed (GC with no live pod)."""
    yield
    PodNetworks(conf_dir=str(conf_dir), plugin_path=[str(DEBIAN_PLUGINS)], cache_dir=str(cache_dir), on_stderr=None).gc(
        []
    )


def listen_in(ns: str) -> socket.socket:
    """A TCP listener on all addresses of namespace ``ns``."""

    def make() -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("0.0.0.0", 0))
        sock.listen(8)
        sock.settimeout(10)
        return sock

    return netns.run_in(ns, make)


def connect_from(ns: str | None, address: str, listener: socket.socket) -> str:
    """Connect from namespace ``ns`` (None: the node) to ``address`` at the
    listener's port; returns the peer address the listener saw."""
    port = listener.getsockname()[1]

    def make() -> socket.socket:
        return socket.create_connection((address, port), timeout=10)

    client = netns.run_in(ns, make) if ns else make()
    try:
        conn, peer = listener.accept()
        conn.close()
        return str(peer[0])
    finally:
        client.close()


def test_two_pods_with_two_networks_reach_each_other_and_survive_each_other(
    tmp_path: Path, conf_dir: Path, cache_dir: Path, reaper: None
) -> None:
    data_dir = tmp_path / "ipam"
    a = bridge_network(data_dir, prefix="pna", bridge_prefix="bra", masq=True)
    b = bridge_network(data_dir, prefix="pnb", bridge_prefix="brb", masq=True)
    a.write(conf_dir, "10-a.conflist")
    b.write(conf_dir, "20-b.conflist")
    net_a, net_b = a.name, b.name
    pods = AsyncPodNetworks(
        conf_dir=str(conf_dir),
        plugin_path=[str(DEBIAN_PLUGINS)],
        cache_dir=str(cache_dir),
        max_networks=2,
        on_stderr=None,
    )
    up: dict[str, tuple] = {}

    async def start(name: str) -> None:
        up[name] = await pods.run_pod(PodSpec(namespace="t", name=name))

    async def both() -> None:
        assert (await pods.status()).ready
        async with trio.open_nursery() as nursery:
            nursery.start_soon(start, "one")
            nursery.start_soon(start, "two")

    trio.run(both)
    (sb1, res1), (sb2, res2) = up["one"], up["two"]
    ns1, ns2 = Path(sb1.netns).name, Path(sb2.netns).name
    assert netns.exists(ns1) and netns.exists(ns2)
    for res in (res1, res2):
        assert [(i.ifname, i.network) for i in res.interfaces] == [
            ("lo", "cni-loopback"),
            ("eth0", net_a),
            ("eth1", net_b),
        ]
        assert res.address("lo") == "127.0.0.1"
    assert a.subnet.contains(res1.address("eth0")) and b.subnet.contains(res1.address("eth1"))
    assert (("eth0", res1.interface("eth0").ips[0].address)) in kernel.addresses(ns1)
    assert (("eth1", res2.interface("eth1").ips[0].address)) in kernel.addresses(ns2)

    # each pod reaches the other over both bridges
    with listen_in(ns1) as listener1, listen_in(ns2) as listener2:
        for ifname in ("eth0", "eth1"):
            assert connect_from(ns2, res1.address(ifname), listener1) == res2.address(ifname)
            assert connect_from(ns1, res2.address(ifname), listener2) == res1.address(ifname)

    # tearing pod one down leaves pod two working
    report = trio.run(pods.stop_pod, sb1.container_id)
    assert sorted(report.removed) == sorted([(net_a, "eth0"), (net_b, "eth1"), ("cni-loopback", "lo")])
    assert report.netns_removed == sb1.netns and not netns.exists(ns1)
    assert kernel.reservations(data_dir, net_a) == [res2.address("eth0")]
    assert kernel.reservations(data_dir, net_b) == [res2.address("eth1")]
    checked = trio.run(pods.check, sb2.container_id)
    assert sorted(checked) == sorted([("cni-loopback", "lo"), (net_a, "eth0"), (net_b, "eth1")])
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as node_listener:  # in the test's node namespace
        node_listener.bind(("0.0.0.0", 0))
        node_listener.listen(4)
        node_listener.settimeout(10)
        assert connect_from(ns2, a.subnet.gateway, node_listener) == res2.address("eth0")
        assert connect_from(ns2, b.subnet.gateway, node_listener) == res2.address("eth1")
    trio.run(pods.stop_pod, sb2.container_id)
    assert not netns.exists(ns2)
    assert kernel.reservations(data_dir, net_a) == [] and kernel.reservations(data_dir, net_b) == []
    assert list((cache_dir / "results").iterdir()) == []


def test_ready_follows_the_conf_dir_and_pod_down_survives_a_vanished_conflist(
    tmp_path: Path, conf_dir: Path, cache_dir: Path, reaper: None
) -> None:
    env = {"NETCONFPATH": str(conf_dir), "CNI_PATH": str(DEBIAN_PLUGINS), "CNI_CACHE_DIR": str(cache_dir)}
    data_dir = tmp_path / "ipam"
    net = bridge_network(data_dir, prefix="pnr", bridge_prefix="brr", masq=True)
    network = net.name
    links_before = set(kernel.links())

    not_ready = run_cnitool("ready", env=env)
    assert not_ready.returncode == 1
    assert "network not ready (NoNetworkConfig)" in not_ready.stderr

    net.write(conf_dir, "10-net.conflist")
    ready = run_cnitool("ready", env=env)
    assert ready.returncode == 0, ready.stderr
    assert ready.stdout == f"ready (default network {network!r})\n"

    up = run_cnitool("pod", "up", "--namespace", "prod", "--name", "web", "--json", env=env)
    assert up.returncode == 0, up.stderr
    doc = json.loads(up.stdout)
    ns = Path(doc["netns"]).name
    address = doc["interfaces"]["eth0"]["ips"][0]["address"]
    assert netns.exists(ns) and ("eth0", address) in kernel.addresses(ns)
    assert kernel.reservations(data_dir, network) == [address.split("/")[0]]

    (conf_dir / "10-net.conflist").unlink()
    assert "NoNetworkConfig" in run_cnitool("ready", env=env).stderr

    down = run_cnitool("pod", "down", "prod/web", env=env)
    assert down.returncode == 0, down.stderr
    assert f"deleted {doc['netns']}" in down.stdout
    assert not netns.exists(ns)
    assert kernel.reservations(data_dir, network) == []
    veths = [n for n, link in kernel.links().items() if n not in links_before and link["kind"] == "veth"]
    assert veths == []
    assert list((cache_dir / "results").iterdir()) == []
    assert list((cache_dir / "libcni_py" / "pods").iterdir()) == []


def test_a_plugin_that_does_not_support_the_version_is_named(conf_dir: Path, cache_dir: Path, tmp_path: Path) -> None:
    bridge_network(tmp_path, prefix="pnv", bridge_prefix="brv", masq=True, version="1.1.0").write(
        conf_dir, "10-net.conflist"
    )
    proc = run_cnitool(
        "ready",
        "--json",
        env={"NETCONFPATH": str(conf_dir), "CNI_PATH": str(DEBIAN_PLUGINS), "CNI_CACHE_DIR": str(cache_dir)},
    )
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["reason"] == "PluginVersionUnsupported"
    assert "plugin 'bridge' (/usr/lib/cni/bridge) supports only 0.1.0, 0.2.0, 0.3.0, 0.3.1, 0.4.0, 1.0.0" in proc.stderr


def test_a_failed_pod_up_removes_its_namespace_and_everything_else(
    tmp_path: Path, conf_dir: Path, cache_dir: Path, reaper: None
) -> None:
    from support import PLUGINS

    data_dir = tmp_path / "ipam"
    failer = {"type": "failer", "failOn": ["ADD"], "msg": "no room at the inn"}
    net = bridge_network(data_dir, prefix="pnf", bridge_prefix="brf", masq=True, extra=[failer])
    net.write(conf_dir, "10-net.conflist")
    network = net.name
    links_before = set(kernel.links())
    env = {"NETCONFPATH": str(conf_dir), "CNI_PATH": f"{DEBIAN_PLUGINS}:{PLUGINS}", "CNI_CACHE_DIR": str(cache_dir)}
    pod_id = os.urandom(32).hex()

    up = run_cnitool("pod", "up", "--name", "web", "--id", pod_id, env=env)

    assert up.returncode == 1
    assert 'plugin type="failer" failed (add): no room at the inn' in up.stderr
    assert not os.path.lexists(f"/var/run/netns/lcpy-{pod_id}")  # the namespace it made is gone again
    assert [n for n, link in kernel.links().items() if n not in links_before and link["kind"] == "veth"] == []
    assert kernel.reservations(data_dir, network) == []
    assert list((cache_dir / "results").iterdir()) == []
    assert list((cache_dir / "libcni_py" / "pods").iterdir()) == []
