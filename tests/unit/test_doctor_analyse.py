"""The doctor's judgement (pure): facts in, findings out."""

from __future__ import annotations

import json

from libcni_py.core.ownership import owner_of
from libcni_py.core.record import decode_record
from libcni_py.tools.doctor.analyse import analyse, bridge_gateway, comment_owner
from libcni_py.tools.doctor.facts import Facts, FlannelFact, HostLink, RecordFact, Reservation
from libcni_py.tools.doctor.gather import parse_iptables_save

CID = "a" * 64
OTHER = "b" * 64


def _record(cid: str, netns: str, state: str, ip: str = "10.1.0.5", veth: str = "veth1234") -> RecordFact:
    doc = {
        "kind": "cniCacheV1",
        "containerId": cid,
        "config": "",
        "ifName": "eth0",
        "networkName": "net",
        "netns": netns,
        "cniArgs": [],
        "capabilityArgs": {},
        "result": {
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "cni0"}, {"name": veth}, {"name": "eth0", "sandbox": netns}],
            "ips": [{"address": f"{ip}/24", "interface": 2}],
        },
    }
    record = decode_record(json.dumps(doc).encode(), f"net-{cid}-eth0")
    return RecordFact(
        file=f"net-{cid}-eth0", record=record, netns=netns, netns_state=state, owner=owner_of(cid, netns, [])
    )


def _res(cid: str, ip: str = "10.1.0.9", age: float = 3600) -> Reservation:
    return Reservation(network="net", path=f"/d/net/{ip}", ip=ip, container_id=cid, ifname="eth0", age=age)


def test_a_record_is_dead_only_by_gcs_rules() -> None:
    facts = Facts(records=[_record(CID, "/run/netns/x", "gone"), _record(OTHER, "/run/netns/y", "alive")])
    found = analyse(facts)
    assert [(f.kind, f.dead) for f in found] == [("record", True)]
    assert found[0].actions[0] == ("gc", "net", CID, "eth0")
    unknown = analyse(Facts(records=[_record(CID, "/run/netns/x", "unknown")]))
    assert unknown == []


def test_a_dead_record_takes_its_stale_file_along_but_not_its_host_veth() -> None:
    """A host veth outlives its pod only while the pod's namespace is held
    by some process: not proven dead, so advice, never an action."""
    facts = Facts(
        records=[_record(CID, "/run/netns/x", "stale")],
        host_links=[HostLink(name="veth1234", kind="veth", master="cni0", peer_netnsid=3)],
        cni_bridges=["cni0"],
    )
    (finding,) = analyse(facts)
    assert finding.actions[1:] == (("netns-del", "/run/netns/x"),)
    assert not [a for a in finding.actions if "link" in a]
    assert "its host veth veth1234 stays" in finding.fix and "ip link del veth1234" in finding.fix


def test_a_damaged_record_keeps_what_may_be_its_containers() -> None:
    """GC keeps an attachment whose cache file cannot be read; the doctor
    must not release that container's reservation or rules either."""
    damaged = [(f"net-{CID}-eth0", "not valid JSON")]
    assert [f.kind for f in analyse(Facts(reservations=[_res(CID)], damaged=damaged))] == ["damaged-record"]
    assert [f.kind for f in analyse(Facts(reservations=[_res(CID)]))] == ["reservation"]


def test_iptables_rules_that_name_no_address_prove_nothing() -> None:
    """A portmap rule names its container's address only as a DNAT target;
    a rule that names none at all (a pod whose ADD is under way, before
    its runtime writes the record, looks the same) is not proven dead."""
    dnat_only = "\n".join(
        [
            "*nat",
            ":CNI-HOSTPORT-DNAT - [0:0]",
            ":CNI-DN-0123456789abcdef01234 - [0:0]",
            f'-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \\"net\\" id: \\"{CID}\\"" '
            "-m multiport --dports 8080 -j CNI-DN-0123456789abcdef01234",
            "-A CNI-DN-0123456789abcdef01234 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.1.0.7:80",
            "COMMIT",
        ]
    )
    rules = parse_iptables_save(dnat_only, "4")
    assert analyse(Facts(iptables=rules, live_addresses={"10.1.0.7": "eth0 in x"})) == []
    (dead,) = analyse(Facts(iptables=rules))
    assert dead.dead and "10.1.0.7" in dead.cause
    no_target = [r for r in rules if r.chain != "CNI-DN-0123456789abcdef01234"]
    assert analyse(Facts(iptables=no_target)) == []


def test_a_reservation_is_leaked_only_when_nothing_lives_for_it() -> None:
    assert [f.kind for f in analyse(Facts(reservations=[_res(CID)]))] == ["reservation"]
    # too young: an ADD may be under way
    assert analyse(Facts(reservations=[_res(CID, age=5)])) == []
    # a namespace could not be read: nothing is proven
    assert analyse(Facts(reservations=[_res(CID)], namespaces_read=False)) == []
    # listed by the CRI runtime, or cnitool's ID of a live namespace: alive
    assert analyse(Facts(reservations=[_res(CID)], live_sandboxes=[CID])) == []
    # its address lives without a record: an orphan, not fixable
    (orphan,) = analyse(Facts(reservations=[_res(CID)], live_addresses={"10.1.0.9": "eth0 in /run/netns/p"}))
    assert orphan.kind == "orphan-address" and not orphan.dead
    # its container's record is dead: the record's finding covers it
    facts = Facts(records=[_record(CID, "/run/netns/x", "gone", ip="10.1.0.9")], reservations=[_res(CID)])
    assert [f.kind for f in analyse(facts)] == ["record"]


def test_iptables_of_a_container_that_is_gone() -> None:
    save = "\n".join(
        [
            "*nat",
            ":CNI-HOSTPORT-DNAT - [0:0]",
            ":CNI-DN-0123456789abcdef01234 - [0:0]",
            ":CNI-0123456789abcdef01234567 - [0:0]",
            f'-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \\"net\\" id: \\"{CID}\\"" '
            "-m multiport --dports 8080 -j CNI-DN-0123456789abcdef01234",
            f'-A POSTROUTING -s 10.1.0.7/32 -m comment --comment "name: \\"net\\" id: \\"{CID}\\"" '
            "-j CNI-0123456789abcdef01234567",
            "COMMIT",
        ]
    )
    rules = parse_iptables_save(save, "4")
    found = analyse(Facts(iptables=rules))
    assert [f.kind for f in found] == ["iptables", "iptables"] and all(f.dead for f in found)
    masq = next(f for f in found if f.made_by == "bridge (ipMasq)")
    assert masq.actions[0][:7] == ("run", "iptables", "-w", "-t", "nat", "-D", "POSTROUTING")
    assert masq.actions[1:] == (
        ("run", "iptables", "-w", "-t", "nat", "-F", "CNI-0123456789abcdef01234567"),
        ("run", "iptables", "-w", "-t", "nat", "-X", "CNI-0123456789abcdef01234567"),
    )
    # the address one of its rules names lives: all its rules are kept
    assert analyse(Facts(iptables=rules, live_addresses={"10.1.0.7": "eth0 in x"})) == []


def test_comments_and_flannel_gateway() -> None:
    assert comment_owner(f'dnat name: "n" id: "{CID}"') == ("portmap", "n", CID)
    assert comment_owner('name: "n" id: "c"') == ("bridge (ipMasq)", "n", "c")
    assert comment_owner("something else") is None
    assert bridge_gateway("10.244.1.1/24") == "10.244.1.1/24"
    assert bridge_gateway("10.244.1.7/24") == "10.244.1.1/24"


def test_flannel_bridge_differing_from_subnet_env() -> None:
    item = FlannelFact(
        conf_file="10-flannel.conflist",
        network="cbr0",
        subnet_file="/run/flannel/subnet.env",
        subnet_env={"FLANNEL_SUBNET": "10.244.1.1/24"},
        subnet_error="",
        bridge="cni0",
        bridge_exists=True,
        bridge_addrs=["10.244.7.1/24"],
        bridge_ports=0,
    )
    (found,) = analyse(Facts(flannel=[item]))
    assert '"cni0" already has an IP address different from 10.244.1.1/24' in found.cause
    assert found.fix.startswith("ip link del cni0")
    assert analyse(Facts(flannel=[item.replace(bridge_addrs=("10.244.1.1/24",))])) == []
