"""End-to-end matrix, part 1: loopback, bridge + host-local (IPv4, IPv6, dual
stack), ptp, static IPAM -- Debian's plugins, through the library and
through cnitool (see tests/matrix.py for the steps every case shares)."""

from __future__ import annotations

import shlex
from pathlib import Path

import kernel
import networks
import pytest
from matrix import VIAS, Matrix, sh
from support import unique

pytestmark = pytest.mark.root


@pytest.fixture(params=VIAS)
def mx(request: pytest.FixtureRequest, make_netns: object, tmp_path: Path) -> object:
    matrix = Matrix(request.param, make_netns("mx"), tmp_path)  # type: ignore[operator]
    yield matrix
    matrix.cleanup()


def gateway4(mx: Matrix) -> str:
    return mx.subnet.gateway


def test_loopback(mx: Matrix) -> None:
    att = mx.attach([{"type": "loopback"}], ifname="lo")
    res = att.add()
    assert res["interfaces"] == [{"name": "lo", "mac": "00:00:00:00:00:00", "sandbox": mx.netns}]
    assert res["ips"] == [{"interface": 0, "address": "127.0.0.1/8"}, {"interface": 0, "address": "::1/128"}]
    assert kernel.links(mx.pod)["lo"]["up"]
    assert {("lo", "127.0.0.1/8"), ("lo", "::1/128")} <= kernel.addresses(mx.pod)
    assert att.check() is None

    sh("ip", "-n", mx.pod, "link", "set", "lo", "down")
    assert att.check() == 'plugin type="loopback" failed (check): loopback interface is down'

    sh("ip", "-n", mx.pod, "link", "set", "lo", "up")
    att.delete()
    assert not kernel.links(mx.pod)["lo"]["up"]  # DEL sets lo down again
    att.assert_gone()


def bridge_checks(mx: Matrix, res: dict[str, object], bridge: str) -> str:
    """The host side of a bridge attachment; returns the host veth's name."""
    interfaces = res["interfaces"]
    assert isinstance(interfaces, list)
    assert [i["name"] for i in interfaces][::2] == [bridge, "eth0"]
    veth = interfaces[1]["name"]
    host = kernel.links()
    assert host[bridge]["kind"] == "bridge" and host[bridge]["up"]
    assert host[veth]["kind"] == "veth" and host[veth]["master"] == host[bridge]["index"]
    pod = kernel.links(mx.pod)
    assert set(pod) == {"lo", "eth0"} and pod["eth0"]["kind"] == "veth" and pod["eth0"]["up"]
    assert pod["eth0"]["mac"] == interfaces[2]["mac"] and interfaces[2]["sandbox"] == mx.netns
    return str(veth)


def test_bridge_ipv4_with_masquerade(mx: Matrix) -> None:
    bridge = unique("mxbr")
    ipam = mx.host_local(mx.v4(), routes=[{"dst": "0.0.0.0/0"}])
    att = mx.attach([networks.bridge(bridge, ipam, masq=True)])
    res = att.add()
    address, gw = mx.v4(2), gateway4(mx)
    assert res["ips"] == [{"interface": 2, "address": address, "gateway": gw}]
    bridge_checks(mx, res, bridge)
    assert (bridge, mx.v4(1)) in kernel.addresses()
    assert (mx.v4(), None, bridge) in kernel.routes()
    assert ("eth0", address) in kernel.addresses(mx.pod)
    assert ("0.0.0.0/0", gw, "eth0") in kernel.routes(mx.pod)
    assert kernel.reservations(mx.data_dir, att.network) == [address.split("/")[0]]
    assert (mx.data_dir / att.network / address.split("/")[0]).read_text().split() == [att.container_id, "eth0"]
    # masquerade: POSTROUTING sends the container's traffic to a chain of its own
    nat = kernel.iptables("nat")
    jump = [r for r in nat if r.startswith(f"-A POSTROUTING -s {address.split('/')[0]}/32") and att.container_id in r]
    assert len(jump) == 1
    chain = jump[0].split(" -j ")[-1]
    comment = f'-m comment --comment "name: \\"{att.network}\\" id: \\"{att.container_id}\\""'
    assert f"-A {chain} ! -d 224.0.0.0/4 {comment} -j MASQUERADE" in nat
    assert att.check() is None

    sh("ip", "-n", mx.pod, "route", "del", "default")
    assert att.check() == (
        'plugin type="bridge" failed (check): Expected Route {Dst:{IP:0.0.0.0 Mask:00000000} GW:<nil>} '
        "not found in routing table"
    )
    att.delete()
    att.assert_gone(node_links_may_stay={bridge})  # the bridge plugin never deletes bridges


def test_bridge_ipv6(mx: Matrix) -> None:
    bridge = unique("mxbr")
    att = mx.attach([networks.bridge(bridge, mx.host_local(mx.v6(), routes=[{"dst": "::/0"}]))])
    res = att.add()
    address, gw = mx.v6(2), mx.v6(1).split("/")[0]
    assert res["ips"] == [{"interface": 2, "address": address, "gateway": gw}]
    bridge_checks(mx, res, bridge)
    assert (bridge, mx.v6(1)) in kernel.addresses()
    assert ("eth0", address) in kernel.addresses(mx.pod)
    assert ("::/0", gw, "eth0") in kernel.routes(mx.pod, family=10)
    assert (mx.v6(), None, "eth0") in kernel.routes(mx.pod, family=10)
    assert kernel.reservations(mx.data_dir, att.network) == [address.split("/")[0]]
    assert att.check() is None

    sh("ip", "-n", mx.pod, "-6", "addr", "flush", "dev", "eth0", "scope", "global")
    assert att.check() == f'plugin type="bridge" failed (check): Failed to match addr {address} on interface eth0'
    att.delete()
    att.assert_gone(node_links_may_stay={bridge})


def test_bridge_dual_stack(mx: Matrix) -> None:
    bridge = unique("mxbr")
    ipam = mx.host_local(mx.v4(), mx.v6(), routes=[{"dst": "0.0.0.0/0"}, {"dst": "::/0"}])
    att = mx.attach([networks.bridge(bridge, ipam)])
    res = att.add()
    v4, v6 = mx.v4(2), mx.v6(2)
    assert [ip["address"] for ip in res["ips"]] == [v4, v6]
    bridge_checks(mx, res, bridge)
    assert {(bridge, mx.v4(1)), (bridge, mx.v6(1))} <= kernel.addresses()
    assert {("eth0", v4), ("eth0", v6)} <= kernel.addresses(mx.pod)
    assert ("0.0.0.0/0", gateway4(mx), "eth0") in kernel.routes(mx.pod)
    assert ("::/0", mx.v6(1).split("/")[0], "eth0") in kernel.routes(mx.pod, family=10)
    assert sorted(kernel.reservations(mx.data_dir, att.network)) == sorted([v4.split("/")[0], v6.split("/")[0]])
    assert att.check() is None

    sh("ip", "-n", mx.pod, "-6", "addr", "flush", "dev", "eth0", "scope", "global")
    assert att.check() == f'plugin type="bridge" failed (check): Failed to match addr {v6} on interface eth0'
    att.delete()
    att.assert_gone(node_links_may_stay={bridge})


def test_ptp(mx: Matrix) -> None:
    att = mx.attach([{"type": "ptp", "ipMasq": True, "ipam": mx.host_local(mx.v4(), routes=[{"dst": "0.0.0.0/0"}])}])
    res = att.add()
    address, gw = mx.v4(2), gateway4(mx)
    assert res["ips"] == [{"interface": 1, "address": address, "gateway": gw}]
    veth = res["interfaces"][0]["name"]
    host = kernel.links()
    assert host[veth]["kind"] == "veth" and host[veth]["master"] is None
    # the host end holds the gateway address as a /32, with a host route to the container
    assert (veth, f"{gw}/32") in kernel.addresses()
    assert (f"{address.split('/')[0]}/32", None, veth) in kernel.routes()
    assert ("eth0", address) in kernel.addresses(mx.pod)
    assert {("0.0.0.0/0", gw, "eth0"), (mx.v4(), gw, "eth0"), (f"{gw}/32", None, "eth0")} <= kernel.routes(mx.pod)
    assert any(att.container_id in r and "MASQUERADE" in r for r in kernel.iptables("nat"))
    assert att.check() is None

    sh("ip", "-n", mx.pod, "route", "del", "default")
    assert att.check() == (
        'plugin type="ptp" failed (check): Expected Route {Dst:{IP:0.0.0.0 Mask:00000000} GW:<nil>} '
        "not found in routing table"
    )
    att.delete()
    att.assert_gone()


def test_static_ipam(mx: Matrix) -> None:
    bridge = unique("mxbr")
    address, gw = mx.v4(7), gateway4(mx)
    ipam = {"type": "static", "addresses": [{"address": address, "gateway": gw}], "routes": [{"dst": "0.0.0.0/0"}]}
    att = mx.attach([networks.bridge(bridge, ipam)])
    res = att.add()
    assert res["ips"] == [{"interface": 2, "address": address, "gateway": gw}]
    bridge_checks(mx, res, bridge)
    assert ("eth0", address) in kernel.addresses(mx.pod)
    assert ("0.0.0.0/0", gw, "eth0") in kernel.routes(mx.pod)
    assert not mx.data_dir.exists()  # static keeps no state
    assert att.check() is None

    sh("ip", "-n", mx.pod, "addr", "flush", "dev", "eth0")
    assert att.check() == f'plugin type="bridge" failed (check): Failed to match addr {address} on interface eth0'
    att.delete()
    att.assert_gone(node_links_may_stay={bridge})


@pytest.mark.parametrize("main", ["ptp", "bridge"])
def test_debian_masquerade_leaks_when_the_address_is_gone(main: str, make_netns: object, tmp_path: Path) -> None:
    """Pins a behaviour of Debian's ptp and bridge (1.1.1): DEL finds the
    container's addresses on the interface itself, not in prevResult, so if
    they were removed by hand, DEL succeeds but leaves the masquerade rules
    (the POSTROUTING jump and the CNI-... chain) behind for good."""
    mx = Matrix("lib", make_netns("mx"), tmp_path)  # type: ignore[operator]
    plugin: dict[str, object] = {"type": main, "ipMasq": True, "ipam": mx.host_local(mx.v4())}
    if main == "bridge":
        plugin["bridge"] = unique("mxbr")
    att = mx.attach([plugin])
    att.add()
    sh("ip", "-n", mx.pod, "addr", "flush", "dev", "eth0")
    att.delete()
    left = att.leftover_rules()
    try:
        assert kernel.reservations(mx.data_dir, att.network) == []  # host-local did release the address
        assert not att.cache_file.exists()
        jumps = [r for r in left if " -A POSTROUTING " in r]
        assert len(jumps) == 1 and jumps[0].startswith(f"iptables-save nat: -A POSTROUTING -s {att.ips[0]}/32")
        chain = jumps[0].split(" -j ")[-1]
        assert sorted(r.split(": ", 1)[1].split(" ")[0:2] for r in left) == sorted(
            [["-A", "POSTROUTING"], ["-A", chain], ["-A", chain]]
        )
    finally:  # remove by hand what the plugin left
        for rule in left:
            if " -A POSTROUTING " in rule:
                sh("iptables", "-t", "nat", "-D", *shlex.split(rule.split(": ", 1)[1])[1:])
                sh("iptables", "-t", "nat", "-F", rule.split(" -j ")[-1])
                sh("iptables", "-t", "nat", "-X", rule.split(" -j ")[-1])
        mx.cleanup()
    assert att.leftover_rules() == []
