"""End-to-end matrix, part 3: chained (meta) plugins after bridge + host-local
-- tuning, portmap, bandwidth, firewall, sbr.  Debian's plugins, through the
library and through cnitool (see tests/matrix.py)."""

from __future__ import annotations

import json
import os
import socket
import threading
from pathlib import Path

import kernel
import networks
import pytest
from matrix import VIAS, Matrix, sh
from support import DEBIAN_PLUGINS, unique

from libcni_py import netns
from libcni_py.core.plugin_call import ExecRequest
from libcni_py.drivers.blocking import run_plugin

pytestmark = pytest.mark.root


@pytest.fixture(params=VIAS)
def mx(request: pytest.FixtureRequest, make_netns: object, tmp_path: Path) -> object:
    matrix = Matrix(request.param, make_netns("mx"), tmp_path)  # type: ignore[operator]
    yield matrix
    matrix.cleanup()


def bridge(mx: Matrix, name: str, **extra: object) -> dict[str, object]:
    """The matrix's bridge: the gateway of this test's subnet, with a default route."""
    return networks.bridge(name, mx.host_local(mx.v4(), routes=networks.DEFAULT_ROUTE), **extra)


def host_veth(res: dict[str, object]) -> str:
    interfaces = res["interfaces"]
    assert isinstance(interfaces, list)
    return str(interfaces[1]["name"])


def test_tuning_sysctl_and_mac(mx: Matrix) -> None:
    br = unique("mxbr")
    mac = f"02:42:00:00:{mx.block // 256:02x}:{mx.block % 256:02x}"
    tuning_dir = mx.tmp / "tuning"
    tuning = {
        "type": "tuning",
        "capabilities": {"mac": True},
        "sysctl": {"net.ipv4.conf.eth0.arp_filter": "1"},
        "dataDir": str(tuning_dir),
    }
    att = mx.attach([bridge(mx, br), tuning], caps={"mac": mac})
    assert kernel.sysctl(mx.pod, "net.ipv4.conf.all.arp_filter") == "0"
    res = att.add()
    assert res["interfaces"][2] == {"name": "eth0", "mac": mac, "sandbox": mx.netns}
    assert kernel.links(mx.pod)["eth0"]["mac"] == mac
    assert kernel.sysctl(mx.pod, "net.ipv4.conf.eth0.arp_filter") == "1"
    # tuning keeps the original MAC (and settings) to restore on DEL
    saved = tuning_dir / f"{att.container_id}_eth0.json"
    assert saved.exists()
    assert att.check() is None

    sh("ip", "netns", "exec", mx.pod, "sysctl", "-q", "-w", "net.ipv4.conf.eth0.arp_filter=0")
    assert att.check() == (
        'plugin type="tuning" failed (check): Error: Tuning configured value of '
        "/proc/sys/net/ipv4/conf/eth0/arp_filter is 1, current value is 0"
    )
    att.delete()
    assert not saved.exists()
    att.assert_gone(node_links_may_stay={br})


def serve_once(pod: str, port: int) -> tuple[socket.socket, list[str]]:
    """A TCP server inside the pod (its socket made there with netns.run_in)
    that answers each connection with the peer it saw."""
    server = netns.run_in(pod, lambda: socket.create_server(("0.0.0.0", port)))
    seen: list[str] = []

    def serve() -> None:
        while True:
            try:
                conn, peer = server.accept()
            except OSError:
                return
            with conn:
                seen.append(peer[0])
                conn.sendall(f"hello from {pod}\n".encode())

    threading.Thread(target=serve, daemon=True).start()
    return server, seen


def fetch(host: str, port: int) -> str:
    with socket.create_connection((host, port), timeout=10) as conn:
        return conn.makefile().readline().strip()


def test_portmap(mx: Matrix, v4only_path: str) -> None:
    br = unique("mxbr")
    host_port = networks.host_port()
    caps = {"portMappings": [{"hostPort": host_port, "containerPort": 8080, "protocol": "tcp"}]}
    # v4only_path: Debian's portmap CHECK is broken for IPv4-only attachments when ip6tables exists (see conftest)
    att = mx.attach(
        [bridge(mx, br, ipMasq=True), networks.portmap()],
        caps=caps,
        path=v4only_path,
    )
    res = att.add()
    address = res["ips"][0]["address"].split("/")[0]
    gateway = mx.subnet.gateway
    nat = kernel.iptables("nat")
    dnat = [r for r in nat if r.endswith(f"--dport {host_port} -j DNAT --to-destination {address}:8080")]
    assert len(dnat) == 1
    chain = dnat[0].split()[1]
    assert any(
        r.startswith("-A CNI-HOSTPORT-DNAT ") and att.container_id in r and r.endswith(f"-j {chain}") for r in nat
    )
    assert "-A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT" in nat
    # a real connection from the node to the host port reaches the server in the pod
    server, seen = serve_once(mx.pod, 8080)
    with server:
        assert fetch(gateway, host_port) == f"hello from {mx.pod}"
        assert fetch("127.0.0.1", host_port) == f"hello from {mx.pod}"  # route_localnet + masquerade
    assert seen == [gateway, gateway]
    assert Path(f"/proc/sys/net/ipv4/conf/{br}/route_localnet").read_text() == "1\n"  # set by portmap
    assert att.check() is None

    sh("iptables", "-t", "nat", "-F", chain)
    rule = (
        f"[[-p tcp --dport {host_port} -s {mx.v4(2)} -j CNI-HOSTPORT-SETMARK] "
        f"[-p tcp --dport {host_port} -s 127.0.0.1 -j CNI-HOSTPORT-SETMARK] "
        f"[-p tcp --dport {host_port} -j DNAT --to-destination {address}:8080]]"
    )
    assert att.check() == (
        f'plugin type="portmap" failed (check): could not check ipv4 dnat: rule {rule} in chain {chain} '
        "not found in table nat"
    )
    att.delete()
    # by design portmap leaves its top-level chains in place
    hostport_chains = {"CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-MASQ", "CNI-HOSTPORT-SETMARK"}
    att.assert_gone(node_links_may_stay={br}, chains_may_stay=hostport_chains)
    assert {f":{name} - [0:0]" for name in hostport_chains} <= set(kernel.iptables("nat"))


def test_bandwidth(mx: Matrix) -> None:
    br = unique("mxbr")
    rates = {"ingressRate": 1_000_000, "ingressBurst": 100_000, "egressRate": 2_000_000, "egressBurst": 200_000}
    att = mx.attach(
        [bridge(mx, br), {"type": "bandwidth", "capabilities": {"bandwidth": True}}], caps={"bandwidth": rates}
    )
    res = att.add()
    veth = host_veth(res)
    ifb = res["interfaces"][3]["name"]
    assert ifb.startswith("bwp") and kernel.links()[ifb]["kind"] == "ifb"
    qdiscs = kernel.qdiscs()
    # ingress (traffic to the pod): tbf on the host veth; egress: the veth's
    # ingress is redirected to the ifb device, which has its own tbf
    assert [(q["kind"], q["rate"]) for q in qdiscs[veth] if q["kind"] == "tbf"] == [("tbf", 1_000_000 // 8)]
    assert "ingress" in [q["kind"] for q in qdiscs[veth]]
    assert [(q["kind"], q["rate"]) for q in qdiscs[ifb]] == [("tbf", 2_000_000 // 8)]
    assert att.check() is None

    sh("ip", "link", "del", ifb)
    assert att.check() == 'plugin type="bandwidth" failed (check): get ifb device: Link not found'
    att.delete()
    att.assert_gone(node_links_may_stay={br})


def test_debian_bandwidth_check_misses_the_ingress_qdisc(make_netns: object, tmp_path: Path) -> None:
    """Pins Debian's bandwidth (1.1.1): CHECK looks at the ifb device, not at
    the host veth's tbf, so removing the ingress limit goes unnoticed."""
    mx = Matrix("lib", make_netns("mx"), tmp_path)  # type: ignore[operator]
    br = unique("mxbr")
    att = mx.attach(
        [bridge(mx, br), {"type": "bandwidth", "ingressRate": 1_000_000, "ingressBurst": 100_000}],
    )
    res = att.add()
    veth = host_veth(res)
    sh("tc", "qdisc", "del", "dev", veth, "root")
    assert "tbf" not in [q["kind"] for q in kernel.qdiscs().get(veth, [])]
    assert att.check() is None
    att.delete()
    att.assert_gone(node_links_may_stay={br})


def test_firewall(mx: Matrix) -> None:
    br = unique("mxbr")
    att = mx.attach([bridge(mx, br), {"type": "firewall", "backend": "iptables"}])
    res = att.add()
    address = res["ips"][0]["address"].split("/")[0]
    rules = kernel.iptables("filter")
    mine = [r for r in rules if r.startswith("-A CNI-FORWARD ") and f"{address}/32" in r]
    assert mine == [
        f"-A CNI-FORWARD -d {address}/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        f"-A CNI-FORWARD -s {address}/32 -j ACCEPT",
    ]
    assert '-A FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD' in rules
    assert att.check() is None

    sh("iptables", "-D", *mine[-1].split()[1:])
    assert att.check() == f'plugin type="firewall" failed (check): expected rule [-s {address}/32 -j ACCEPT] not found'
    att.delete()
    # by design the firewall plugin leaves its chains in place
    att.assert_gone(node_links_may_stay={br}, chains_may_stay={"CNI-FORWARD", "CNI-ADMIN"})
    assert {":CNI-FORWARD - [0:0]", ":CNI-ADMIN - [0:0]"} <= set(kernel.iptables("filter"))


def test_sbr(mx: Matrix) -> None:
    """sbr moves the interface's routes to a table of their own with a rule
    for the source address.  Pinned: after that, the bridge plugin's CHECK
    (which looks for the gateway in the main table) always fails -- in
    Debian's 1.1.1 no chain with sbr passes CHECK; sbr's own CHECK is a
    no-op (test_sbr_check_is_a_no_op)."""
    br = unique("mxbr")
    att = mx.attach([bridge(mx, br), {"type": "sbr"}])
    res = att.add()
    address = res["ips"][0]["address"].split("/")[0]
    gateway = mx.subnet.gateway
    assert (32765, f"{address}/32", 100) in kernel.rules(mx.pod)
    assert {("0.0.0.0/0", gateway, "eth0"), (mx.v4(), None, "eth0")} <= kernel.table_routes(mx.pod, 100)
    assert not [r for r in kernel.routes(mx.pod) if r[2] == "eth0"]  # moved out of the main table
    assert att.check() == f'plugin type="bridge" failed (check): Failed to find Gateway {gateway} for interface eth0'
    att.delete()
    assert not [r for r in kernel.rules(mx.pod) if r[1] == f"{address}/32"]
    att.assert_gone(node_links_may_stay={br})


def test_sbr_check_is_a_no_op(make_netns: object, tmp_path: Path) -> None:
    """Debian's sbr CHECK, run alone with the cached result, succeeds even
    when its rule and table are gone."""
    mx = Matrix("lib", make_netns("mx"), tmp_path)  # type: ignore[operator]
    att = mx.attach([bridge(mx, unique("mxbr")), {"type": "sbr"}])
    res = att.add()
    sh("ip", "-n", mx.pod, "rule", "del", "pref", "32765")
    sh("ip", "-n", mx.pod, "route", "flush", "table", "100")
    stdin = {"cniVersion": "1.0.0", "name": att.network, "type": "sbr", "prevResult": res}
    env = dict(os.environ) | {
        "CNI_COMMAND": "CHECK",
        "CNI_CONTAINERID": att.container_id,
        "CNI_NETNS": mx.netns,
        "CNI_IFNAME": "eth0",
        "CNI_PATH": str(DEBIAN_PLUGINS),
    }
    req = ExecRequest(
        plugin_type="sbr",
        path=str(DEBIAN_PLUGINS / "sbr"),
        command="CHECK",
        stdin=json.dumps(stdin).encode(),
        env=env,
        result_version="1.0.0",
    )
    outcome = run_plugin(req, 30)
    assert outcome.returncode == 0 and outcome.stdout == b""
    att.delete()
