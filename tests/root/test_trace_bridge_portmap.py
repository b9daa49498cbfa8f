"""A traced ADD and DEL of Debian's bridge + host-local + portmap: the trace
reports the veth pair, the container's address and routes, the host-local
reservation, the cache file and the iptables rules -- and nothing else.

cnitool runs with ``ip netns exec`` in a "host" namespace of its own (inside
the test node), so the set of changes does not depend on what other tests
left there (portmap keeps its top-level chains by design)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from networks import bridge_portmap, host_port, port_mappings
from support import CNITOOL, DEBIAN_PLUGINS

from libcni_py.core.args import cnitool_container_id

pytestmark = pytest.mark.root


def run_traced(host: str, env: dict[str, str], trace_file: Path, *args: str) -> dict:
    proc = subprocess.run(
        ["ip", "netns", "exec", host, sys.executable, str(CNITOOL), "--trace-json", str(trace_file), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(trace_file.read_text())


def events_text(trace_file: Path) -> str:
    """The readable timeline of a --trace-json document."""
    from libcni_py.tools.trace.tracer import Event, format_event

    doc = json.loads(trace_file.read_text())
    out = []
    for e in doc["events"]:
        data = {k: v for k, v in e.items() if k not in Event.__slots__}
        event = Event(
            seq=e["seq"],
            at=e["at"],
            duration=e["duration"],
            actor=e["actor"],
            effect=e["effect"],
            summary=e["summary"],
            data=data,
            error=e["error"] or "",
        )
        out.append(format_event(event))
    return "\n".join(out)


def normalise(text: str, names: dict[str, str]) -> str:
    for real, placeholder in names.items():
        text = text.replace(real, placeholder)
    text = re.sub(r"CNI-DN-[0-9a-f]{21}", "CNI-DN-<hash>", text)
    text = re.sub(r"CNI-[0-9a-f]{24}", "CNI-<hash>", text)
    return re.sub(r"veth[0-9a-f]{8}", "veth<x>", text)


def reported(event: dict, names: dict[str, str]) -> set[tuple[str, str, str, str]]:
    return {
        (c["change"], c["kind"], normalise(c["where"], names), normalise(c["text"], names)) for c in event["changes"]
    }


def test_traced_add_and_del_report_exactly_what_changed(
    make_netns, tmp_path: Path, conf_dir: Path, cache_dir: Path, v4only_path: str
) -> None:
    host, pod = make_netns("host"), make_netns("pod")
    subprocess.run(["ip", "-n", host, "link", "set", "lo", "up"], check=True)
    data_dir = tmp_path / "ipam"
    made = bridge_portmap(data_dir)
    made.write(conf_dir, "10-bridge.conflist")
    bridge, network, port = made.bridge, made.name, host_port()
    env = {
        "NETCONFPATH": str(conf_dir),
        "CNI_PATH": str(DEBIAN_PLUGINS),
        "CNI_CACHE_DIR": str(cache_dir),
        "CAP_ARGS": json.dumps(port_mappings(port)),
        "PATH": v4only_path,
    }
    netns = f"/var/run/netns/{pod}"
    cid = cnitool_container_id(netns)
    names = {str(cache_dir): "<cache>", str(data_dir): "<data>", cid: "<cid>", network: "<net>", bridge: "<br>"}

    doc = run_traced(host, env, tmp_path / "add.json", "add", network, netns)
    # ADD checks the namespace exists, and looks for a record of the attachment (it refuses
    # one on record): nothing changes during either
    assert doc["events"][0]["effect"] == "probe-netns" and doc["events"][0]["changes"] == []
    assert doc["events"][3]["effect"] == "read-record" and doc["events"][3]["changes"] == []
    events = [e for e in doc["events"] if e["effect"] not in ("read-record", "probe-netns")]
    assert [(e["effect"], e.get("plugin", {}).get("type")) for e in events] == [
        ("resolve", None),
        ("lock", None),
        ("write-record", None),
        ("exec", "bridge"),
        ("write-record", None),
        ("exec", "portmap"),
        ("write-record", None),
        ("unlock", None),
    ]
    assert all(e["unprobed"] == [] for e in events)
    record = "<cache>/results/<net>-<cid>-eth0"
    assert reported(events[1], names) == {
        ("created", "dir", "<cache>/libcni_py", "<cache>/libcni_py"),
        ("created", "dir", "<cache>/libcni_py/gc-lock", "<cache>/libcni_py/gc-lock"),
        ("created", "file", "<cache>/libcni_py/gc-lock/lock", "<cache>/libcni_py/gc-lock/lock (0 bytes, 0600)"),
        ("created", "dir", "<cache>/libcni_py/locks", "<cache>/libcni_py/locks"),
        (
            "created",
            "file",
            "<cache>/libcni_py/locks/<net>-<cid>-eth0",
            "<cache>/libcni_py/locks/<net>-<cid>-eth0 (0 bytes, 0600)",
        ),
    }
    assert {(c, k, w) for c, k, w, _ in reported(events[2], names)} == {
        ("created", "dir", "<cache>/libcni_py/tmp"),
        ("created", "dir", "<cache>/results"),
        ("created", "file", record),
    }
    assert {(c, k, w) for c, k, w, _ in reported(events[4], names)} == {("changed", "file", record)}
    assert {(c, k, w) for c, k, w, _ in reported(events[6], names)} == {("changed", "file", record)}

    address = json.loads(events[3]["stdout"])["ips"][0]["address"]
    ip = address.split("/")[0]
    names[ip] = "<ip>"
    assert reported(events[3], names) == {
        # host-local's reservation, under the bridge plugin's call (it runs host-local)
        ("created", "dir", "<data>", "<data>"),
        ("created", "dir", "<data>/<net>", "<data>/<net>"),
        ("created", "file", "<data>/<net>/<ip>", "<data>/<net>/<ip> (34 bytes, 0644)"),
        (
            "created",
            "file",
            "<data>/<net>/last_reserved_ip.0",
            f"<data>/<net>/last_reserved_ip.0 ({len(ip)} bytes, 0644)",
        ),
        ("created", "file", "<data>/<net>/lock", "<data>/<net>/lock (0 bytes, 0750)"),
        # the bridge and the veth pair
        ("added", "link", "host", "<br> (bridge, up)"),
        ("added", "link", "host", "veth<x> (veth, master <br>, up)"),
        ("added", "address", "host", f"<br> {made.subnet.gateway}/24"),
        ("added", "route", "host", f"{made.subnet.cidr} dev <br> proto kernel"),
        ("added", "link", "container", "eth0 (veth, up)"),
        # the container's address and routes
        ("added", "address", "container", "eth0 <ip>/24"),
        ("added", "route", "container", f"0.0.0.0/0 via {made.subnet.gateway} dev eth0"),
        ("added", "route", "container", f"{made.subnet.cidr} dev eth0 proto kernel"),
        # ipMasq
        ("added", "iptables-chain", "nat", "CNI-<hash>"),
        (
            "added",
            "iptables-rule",
            "nat",
            '-A POSTROUTING -s <ip>/32 -m comment --comment "name: \\"<net>\\" id: \\"<cid>\\"" -j CNI-<hash>',
        ),
        (
            "added",
            "iptables-rule",
            "nat",
            f'-A CNI-<hash> -d {made.subnet.cidr} -m comment --comment "name: \\"<net>\\" id: \\"<cid>\\"" -j ACCEPT',
        ),
        (
            "added",
            "iptables-rule",
            "nat",
            '-A CNI-<hash> ! -d 224.0.0.0/4 -m comment --comment "name: \\"<net>\\" id: \\"<cid>\\"" -j MASQUERADE',
        ),
    }
    reservation = next(c for c in events[3]["changes"] if c["where"].endswith("/" + ip))
    assert events[3]["plugin"]["delegates"] == ["host-local"]
    # who: bridge ran host-local, and host-local, not bridge, wrote the reservation
    bridge_proc, *below = events[3]["processes"]
    assert bridge_proc["pid"] == events[3]["pid"] and bridge_proc["program"] == "bridge"
    # host-local first, then the iptables of ipMasq (one process each)
    assert (below[0]["program"], below[0]["plugin"], below[0]["cniCommand"]) == ("host-local", True, "ADD")
    assert all(p["ppid"] == bridge_proc["pid"] for p in below)
    assert {p["program"] for p in below[1:] if not p["unread"]} == {"iptables"}
    assert not any(p["plugin"] for p in below[1:])
    assert below[0]["exe"] == str(DEBIAN_PLUGINS / "host-local") and below[0]["exitStatus"] == 0
    assert reservation["content"] == f"{cid}\r\neth0" and reservation["by"] == "host-local"
    assert reservation["writer"] | {"pid": 0} == {
        "pid": 0,
        "program": "host-local",
        "scope": "call",
        "runBy": ["bridge"],
        "action": "created",
        "exe": str(DEBIAN_PLUGINS / "host-local"),
        "cniCommand": "ADD",
        "basis": "event",
    }
    assert reservation["writer"]["pid"] == below[0]["pid"]
    # the network: addresses and routes name the process that asked for them (bridge), links the
    # innermost process running when they appeared (bridge too: host-local makes none)
    net = {(c["kind"], c["where"]): c["writer"] for c in events[3]["changes"] if c["kind"] in ("link", "address")}
    assert all(w["program"] == "bridge" and w["pid"] == bridge_proc["pid"] for w in net.values()), net
    assert net[("address", "host")]["basis"] == net[("address", "container")]["basis"] == "requester"
    assert net[("link", "container")]["basis"] == "running"
    assert all(c["writer"] is not None for c in events[3]["changes"] if c["kind"] == "route")
    assert all("writer" not in c for c in events[3]["changes"] if c["kind"].startswith("iptables"))
    # the cache record and the lock: libcni_py, the pid of cnitool (which started bridge)
    runtime_pid = bridge_proc["ppid"]
    for event in (events[1], events[2], events[4], events[6]):
        for change in event["changes"]:
            assert change["by"] == "libcni_py", change
            assert change["writer"]["pid"] == runtime_pid and change["writer"]["scope"] == "runtime"
    assert {c["writer"]["action"] for c in events[4]["changes"]} == {"renamed into place"}
    # portmap runs iptables (on the plugins' PATH), each a process of its own
    portmap_proc, *helpers = events[5]["processes"]
    assert portmap_proc["program"] == "portmap" and helpers
    assert all(p["ppid"] == portmap_proc["pid"] and not p["plugin"] for p in helpers)
    named = [p for p in helpers if not p["unread"]]
    assert named and all(p["program"] in ("iptables", "ip6tables") for p in named)
    assert any(p["argv"][1:3] == ["-t", "nat"] and "-N" in p["argv"] for p in named)
    assert "portmap ADD  [pid" in events_text(tmp_path / "add.json")
    dnat = f'-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \\"<net>\\" id: \\"<cid>\\"" -m multiport --dports {port} -j CNI-DN-<hash>'
    portmap_rules = {
        ("added", "iptables-rule", "nat", "-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT"),
        ("added", "iptables-rule", "nat", "-A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT"),
        (
            "added",
            "iptables-rule",
            "nat",
            '-A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ',
        ),
        ("added", "iptables-rule", "nat", "-A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE"),
        (
            "added",
            "iptables-rule",
            "nat",
            '-A CNI-HOSTPORT-SETMARK -m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark 0x2000/0x2000',
        ),
    }
    dn_rules = {
        ("added", "iptables-chain", "nat", "CNI-DN-<hash>"),
        ("added", "iptables-rule", "nat", dnat),
        (
            "added",
            "iptables-rule",
            "nat",
            f"-A CNI-DN-<hash> -s {made.subnet.cidr} -p tcp -m tcp --dport {port} -j CNI-HOSTPORT-SETMARK",
        ),
        (
            "added",
            "iptables-rule",
            "nat",
            f"-A CNI-DN-<hash> -s 127.0.0.1/32 -p tcp -m tcp --dport {port} -j CNI-HOSTPORT-SETMARK",
        ),
        (
            "added",
            "iptables-rule",
            "nat",
            f"-A CNI-DN-<hash> -p tcp -m tcp --dport {port} -j DNAT --to-destination <ip>:80",
        ),
    }
    top_chains = {("added", "iptables-chain", "nat", f"CNI-HOSTPORT-{c}") for c in ("DNAT", "MASQ", "SETMARK")}
    assert reported(events[5], names) == portmap_rules | dn_rules | top_chains

    # DEL (with the same capability args, as a runtime passes them): the same things go, in reverse,
    # except the bridge and portmap's top-level chains, which both plugins keep by design
    doc = run_traced(host, env, tmp_path / "del.json", "del", network, netns)
    events = {(e["effect"], e.get("plugin", {}).get("type")): e for e in doc["events"]}

    def removed(items: set[tuple[str, str, str, str]]) -> set[tuple[str, str, str, str]]:
        return {("removed", k, w, t) for _, k, w, t in items}

    assert reported(events[("exec", "portmap")], names) == removed(dn_rules)
    freed = next(c for c in events[("exec", "bridge")]["changes"] if c["kind"] == "file")
    assert freed["by"] == "host-local" and freed["writer"]["action"] == "deleted"
    assert freed["writer"]["runBy"] == ["bridge"] and freed["writer"]["cniCommand"] == "DEL"
    # the kernel removes a link's routes with it, without a notification: they go with the link
    routes = [c for c in events[("exec", "bridge")]["changes"] if c["kind"] == "route"]
    assert routes and {c["writer"]["action"] for c in routes} == {"removed with link eth0"}
    assert {c["by"] for c in routes} == {"bridge"}
    assert events[("remove-record", None)]["changes"][0]["by"] == "libcni_py"
    assert reported(events[("exec", "bridge")], names) == {
        ("removed", "file", "<data>/<net>/<ip>", "<data>/<net>/<ip>"),
        ("removed", "link", "host", "veth<x> (veth, master <br>, up)"),
        ("removed", "link", "container", "eth0 (veth, up)"),
        ("removed", "address", "container", "eth0 <ip>/24"),
        ("removed", "route", "container", f"0.0.0.0/0 via {made.subnet.gateway} dev eth0"),
        ("removed", "route", "container", f"{made.subnet.cidr} dev eth0 proto kernel"),
        ("removed", "iptables-chain", "nat", "CNI-<hash>"),
        (
            "removed",
            "iptables-rule",
            "nat",
            '-A POSTROUTING -s <ip>/32 -m comment --comment "name: \\"<net>\\" id: \\"<cid>\\"" -j CNI-<hash>',
        ),
        (
            "removed",
            "iptables-rule",
            "nat",
            f'-A CNI-<hash> -d {made.subnet.cidr} -m comment --comment "name: \\"<net>\\" id: \\"<cid>\\"" -j ACCEPT',
        ),
        (
            "removed",
            "iptables-rule",
            "nat",
            '-A CNI-<hash> ! -d 224.0.0.0/4 -m comment --comment "name: \\"<net>\\" id: \\"<cid>\\"" -j MASQUERADE',
        ),
    }
    assert {(c, k, w) for c, k, w, _ in reported(events[("remove-record", None)], names)} == {
        ("removed", "file", record)
    }
    assert {(c, k, w) for c, k, w, _ in reported(events[("unlock", None)], names)} == {
        ("removed", "file", "<cache>/libcni_py/locks/<net>-<cid>-eth0")
    }
