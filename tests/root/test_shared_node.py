"""A node shared with podman and containerd: cnitool harms nothing of theirs.

Two podman containers (CNI backend) and two containerd CRI sandboxes run on
one private node (``tests/shared_node.py``), on one bridge + host-local +
portmap network, with the node's own ``/etc/cni/net.d`` and
``/var/lib/cni``.  Every cnitool command a user might run there runs inside
the node with its defaults, and after each one their attachments must be as
they were: the cache records byte for byte, host-local's reservations, each
interface with its address and MAC inside its namespace, the iptables rules
made for it; and no address is held by two namespaces.  Then podman and
containerd tear down cleanly.  GC commands each get a fresh node, so one
that harms it does not hide what the next one does.

Nothing here skips in CI: a machine that cannot run podman or containerd
fails with the reason (``scripts/setup`` installs them).
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from shared_node import SharedNode, running_node

from libcni_py.runtime.cri import live_sandboxes

pytestmark = [pytest.mark.root, pytest.mark.slow]


@pytest.fixture(scope="module")
def shared() -> Iterator[SharedNode]:
    """One node for the commands that should change nothing of theirs."""
    with running_node() as node:
        yield node


@pytest.fixture
def fresh() -> Iterator[SharedNode]:
    """A node of its own, for a command that deletes things (GC)."""
    with running_node() as node:
        yield node


# --------------------------------------------------------------------------
# what the other runtimes have, and the check that it is intact


@dataclass(frozen=True)
class Attachment:
    runtime: str
    record: str  # the cache file's name
    container_id: str
    network: str
    ifname: str
    netns: str
    addresses: tuple[str, ...]  # "a.b.c.d/len" from the result
    mac: str


def foreign_ids(node: SharedNode) -> dict[str, str]:
    """``{container ID: runtime}`` of the other runtimes' containers."""
    return {**dict.fromkeys(node.podman_ids, "podman"), **dict.fromkeys(node.sandbox_ids, "containerd")}


def foreign_attachments(node: SharedNode) -> list[Attachment]:
    """The other runtimes' attachments, from their cache records."""
    owners = foreign_ids(node)
    out = []
    for path in sorted(node.results_dir.iterdir()):
        doc = json.loads(path.read_bytes())
        if doc.get("containerId") not in owners:
            continue
        result = doc["result"]
        ifaces = result["interfaces"]
        inside = [i for i, iface in enumerate(ifaces) if iface.get("sandbox")]
        assert inside, f"{path.name}: no interface with a sandbox"
        index = inside[0]
        out.append(
            Attachment(
                runtime=owners[doc["containerId"]],
                record=path.name,
                container_id=doc["containerId"],
                network=doc["networkName"],
                ifname=doc["ifName"],
                netns=ifaces[index]["sandbox"],
                addresses=tuple(ip["address"] for ip in result.get("ips", []) if ip.get("interface", index) == index),
                mac=ifaces[index]["mac"],
            )
        )
    return out


def _interfaces(node: SharedNode, attachments: list[Attachment]) -> dict[str, dict[str, Any]]:
    """``{record: {"mac", "addresses", "up"}}`` as the kernel has them now
    (one nsenter for all)."""
    script = "; ".join(
        f"echo '@@{a.record}'; nsenter --net={a.netns} ip -j addr show dev {a.ifname} || echo null" for a in attachments
    )
    out: dict[str, dict[str, Any]] = {}
    for chunk in node.run("sh", "-c", script, check=False).stdout.split("@@")[1:]:
        name, _, body = chunk.partition("\n")
        parsed = json.loads(body.strip() or "null")
        if not parsed:
            out[name] = {"missing": True}
            continue
        link = parsed[0]
        out[name] = {
            "mac": link.get("address"),
            "addresses": sorted(
                f"{a['local']}/{a['prefixlen']}"
                for a in link.get("addr_info", [])
                if not a["local"].startswith("fe80:")
            ),
            "up": "UP" in link.get("flags", []),
        }
    return out


def _iptables(node: SharedNode) -> list[str]:
    lines = []
    for table in ("nat", "filter"):
        dump = node.run("iptables-save", "-t", table).stdout
        lines += [f"{table} {line}" for line in dump.splitlines() if line.startswith("-A ")]
    return lines


def foreign_rules(node: SharedNode, ids: list[str]) -> set[str]:
    """The iptables rules made for these containers: those naming their ID
    in a comment, and the rules of the per-container chains they jump to."""
    lines = _iptables(node)
    direct = {line for line in lines if any(cid in line for cid in ids)}
    chains = {m for line in direct for m in re.findall(r"-j (CNI-(?!HOSTPORT-)\S+)", line)}
    return direct | {line for line in lines if line.split()[2] in chains}


def reservations(node: SharedNode, ids: list[str]) -> dict[str, bytes]:
    """host-local's reservation files (address -> content) held by these IDs."""
    out = {}
    for directory in node.ipam_dir.iterdir():
        for path in directory.iterdir():
            if path.name == "lock" or path.name.startswith("last_reserved_ip"):
                continue
            data = path.read_bytes()
            if any(data.startswith(cid.encode()) for cid in ids):
                out[f"{directory.name}/{path.name}"] = data
    return out


@dataclass
class Snapshot:
    records: dict[str, bytes]
    reservations: dict[str, bytes]
    interfaces: dict[str, dict[str, Any]]
    rules: set[str]


def snapshot(node: SharedNode) -> Snapshot:
    attachments = foreign_attachments(node)
    ids = list(foreign_ids(node))
    return Snapshot(
        records={a.record: (node.results_dir / a.record).read_bytes() for a in attachments},
        reservations=reservations(node, ids),
        interfaces=_interfaces(node, attachments),
        rules=foreign_rules(node, ids),
    )


def addresses_by_netns(node: SharedNode) -> dict[str, list[str]]:
    """Every IPv4 address (not loopback) in every namespace of the node."""
    script = 'for n in $(ls /run/netns); do echo "@@$n"; ip -n "$n" -j -4 addr show; done'
    out = {}
    for chunk in node.run("sh", "-c", script).stdout.split("@@")[1:]:
        name, _, body = chunk.partition("\n")
        addrs = [a["local"] for link in json.loads(body or "[]") for a in link.get("addr_info", [])]
        out[name] = [a for a in addrs if not a.startswith("127.")]
    bridge = json.loads(node.run("ip", "-j", "-4", "addr", "show").stdout)
    out["(node)"] = [a["local"] for link in bridge for a in link.get("addr_info", []) if a["local"] != "127.0.0.1"]
    return out


def assert_intact(node: SharedNode, before: Snapshot, after_what: str) -> None:
    """The other runtimes' attachments are as in ``before``, and no address
    is held twice."""
    now = snapshot(node)
    assert sorted(now.records) == sorted(before.records), f"after {after_what}: foreign cache records changed"
    for name, data in before.records.items():
        assert now.records[name] == data, f"after {after_what}: {name} was rewritten"
    assert now.reservations == before.reservations, f"after {after_what}: host-local reservations changed"
    assert now.interfaces == before.interfaces, f"after {after_what}: interfaces inside their namespaces changed"
    assert before.rules <= now.rules, f"after {after_what}: iptables rules gone: {sorted(before.rules - now.rules)}"
    held: dict[str, list[str]] = {}
    for netns, addrs in addresses_by_netns(node).items():
        for addr in addrs:
            held.setdefault(addr, []).append(netns)
    twice = {addr: where for addr, where in held.items() if len(where) > 1}
    assert not twice, f"after {after_what}: addresses held twice: {twice}"


@pytest.fixture(scope="module")
def baseline(shared: SharedNode) -> Snapshot:
    return _baseline(shared)


def _baseline(node: SharedNode) -> Snapshot:
    snap = snapshot(node)
    # the bring-up itself: four foreign attachments on the network (and
    # containerd's two loopback ones), each live with its address
    eth0 = [a for a in foreign_attachments(node) if a.network == node.network]
    assert sorted(a.runtime for a in eth0) == ["containerd", "containerd", "podman", "podman"]
    assert len(snap.records) == 6, sorted(snap.records)
    assert len(snap.reservations) == 4, snap.reservations
    for attachment in eth0:
        seen = snap.interfaces[attachment.record]
        assert seen.get("up") and seen["mac"] == attachment.mac, (attachment, seen)
        assert seen["addresses"] == list(attachment.addresses), (attachment, seen)
    assert len({cid for cid in foreign_ids(node) if any(cid in rule for rule in snap.rules)}) == 4, snap.rules
    return snap


def _ok(proc: subprocess.CompletedProcess[str], what: str) -> None:
    assert proc.returncode == 0, f"{what}: exit {proc.returncode}: {proc.stderr.strip()}"


def _no_traceback(proc: subprocess.CompletedProcess[str], what: str) -> None:
    assert "Traceback" not in proc.stderr, f"{what}: {proc.stderr}"


# --------------------------------------------------------------------------
# the runtimes themselves


def test_bring_up_gives_four_live_foreign_attachments(shared: SharedNode, baseline: Snapshot) -> None:
    attachments = foreign_attachments(shared)
    podman = [a for a in attachments if a.runtime == "podman"]
    cri = [a for a in attachments if a.runtime == "containerd"]
    assert {a.container_id for a in podman} == set(shared.podman_ids)
    assert {a.container_id for a in cri} == set(shared.sandbox_ids)
    # facts the ownership guesses rely on (docs/reliability.md)
    assert all(a.netns.startswith("/run/netns/netns-") for a in podman), podman
    assert all(a.netns.startswith("/var/run/netns/cni-") for a in cri), cri
    assert sorted((a.network, a.ifname) for a in cri) == sorted([("cni-loopback", "lo"), (shared.network, "eth0")] * 2)
    for name in baseline.records:
        doc = json.loads(baseline.records[name])
        assert "netns" not in doc, name  # Go libcni 1.1.2: no netns key
        args = dict(doc["cniArgs"])
        if doc["containerId"] in shared.sandbox_ids:
            assert args["K8S_POD_INFRA_CONTAINER_ID"] == doc["containerId"]
            assert args["K8S_POD_NAMESPACE"] == "default"
        else:
            assert set(args) == {"IgnoreUnknown", "K8S_POD_NAME"}


def test_live_sandboxes_are_containerds(shared: SharedNode) -> None:
    assert live_sandboxes(f"unix://{shared.socket}") == frozenset(shared.sandbox_ids)
    assert live_sandboxes(shared.socket, timeout=2) == frozenset(shared.sandbox_ids)


# --------------------------------------------------------------------------
# commands that must change nothing of theirs


def _first(node: SharedNode, runtime: str, network: str | None = None) -> Attachment:
    return next(a for a in foreign_attachments(node) if a.runtime == runtime and a.network == (network or node.network))


READ_ONLY: dict[str, tuple[Callable[[SharedNode], list[str]], bool]] = {
    # name: (argv, must exit 0)
    "ls": (lambda n: ["ls"], True),
    "ls --json": (lambda n: ["ls", "--json"], True),
    "cache ls": (lambda n: ["cache", "ls"], True),
    "cache ls --json": (lambda n: ["cache", "ls", "--json"], True),
    "cache show podman": (lambda n: ["cache", "show", n.network, n.podman_ids[0], "eth0"], True),
    "cache show containerd": (lambda n: ["cache", "show", n.network, n.sandbox_ids[0], "eth0"], True),
    "cache show containerd loopback": (lambda n: ["cache", "show", "cni-loopback", n.sandbox_ids[1], "lo"], True),
    # a user checking someone else's container: may fail, must not harm
    "check podman's": (
        lambda n: ["check", n.network, _first(n, "podman").netns, "--container-id", n.podman_ids[0]],
        False,
    ),
    "check containerd's": (
        lambda n: ["check", n.network, _first(n, "containerd").netns, "--container-id", n.sandbox_ids[0]],
        False,
    ),
    "pod ls": (lambda n: ["pod", "ls"], True),
    "pod ls --json": (lambda n: ["pod", "ls", "--json"], True),
    "pod status containerd's": (lambda n: ["pod", "status", n.sandbox_ids[0]], False),
    "pod check containerd's": (lambda n: ["pod", "check", n.sandbox_ids[0]], False),
    "ready": (lambda n: ["ready"], True),
    "validate": (lambda n: ["validate", n.network], True),
}


def test_doctor_calls_none_of_theirs_dead(shared: SharedNode, baseline: Snapshot) -> None:
    """``cnitool doctor`` reads the whole node; their live attachments are
    no finding of its, and reading changes nothing."""
    proc = shared.cnitool("doctor", "--json", "--cri-socket", shared.socket)
    _no_traceback(proc, "doctor")
    assert proc.returncode in (0, 7), f"doctor: exit {proc.returncode}: {proc.stderr.strip()}"
    findings = json.loads(proc.stdout)["findings"]
    theirs = set(foreign_ids(shared))
    blamed = [f for f in findings if any(cid in json.dumps(f) for cid in theirs)]
    assert blamed == [], f"doctor reports a live attachment of podman's or containerd's: {blamed}"
    assert_intact(shared, baseline, "cnitool doctor")


@pytest.mark.parametrize("name", list(READ_ONLY))
def test_looking_changes_nothing_of_theirs(shared: SharedNode, baseline: Snapshot, name: str) -> None:
    argv, must_succeed = READ_ONLY[name]
    proc = shared.cnitool(*argv(shared))
    _no_traceback(proc, name)
    if must_succeed:
        _ok(proc, name)
    assert_intact(shared, baseline, f"cnitool {name}")


def test_cache_ls_shows_their_namespaces(shared: SharedNode) -> None:
    proc = shared.cnitool("cache", "ls", "--json")
    _ok(proc, "cache ls --json")
    rows = {(r["network"], r["containerId"], r["ifname"]): r for r in json.loads(proc.stdout)["attachments"]}
    for attachment in foreign_attachments(shared):
        row = rows[attachment.network, attachment.container_id, attachment.ifname]
        assert row["netns"] == attachment.netns, row


def test_add_check_del_of_our_own_namespaces(shared: SharedNode, baseline: Snapshot) -> None:
    names = [f"{shared.name}-own{i}" for i in range(2)]
    foreign = {addr.split("/")[0] for a in foreign_attachments(shared) for addr in a.addresses}
    try:
        for name in names:
            _ok(shared.cnitool("netns", "add", name), f"netns add {name}")
            proc = shared.cnitool("add", shared.network, name)
            _ok(proc, f"add {name}")
            mine = {ip["address"].split("/")[0] for ip in json.loads(proc.stdout)["ips"]}
            assert not mine & foreign, f"add {name} was given a running container's address: {mine & foreign}"
            assert_intact(shared, baseline, f"cnitool add {name}")
        _ok(shared.cnitool("check", shared.network, names[0]), "check")
        assert_intact(shared, baseline, "cnitool check")
        for name in names:
            _ok(shared.cnitool("del", shared.network, name), f"del {name}")
            assert_intact(shared, baseline, f"cnitool del {name}")
    finally:
        for name in names:
            shared.cnitool("del", shared.network, name)
            shared.cnitool("netns", "del", "--missing-ok", name)


def test_pod_up_and_down(shared: SharedNode, baseline: Snapshot) -> None:
    pod = f"{shared.name}-pod"
    proc = shared.cnitool("pod", "up", "--namespace", "lcpy", "--name", pod, "--json")
    _ok(proc, "pod up")
    try:
        assert_intact(shared, baseline, "cnitool pod up")
        _ok(shared.cnitool("pod", "check", f"lcpy/{pod}"), "pod check")
        assert_intact(shared, baseline, "cnitool pod check")
    finally:
        down = shared.cnitool("pod", "down", f"lcpy/{pod}")
    _ok(down, "pod down")
    assert_intact(shared, baseline, "cnitool pod down")


# --------------------------------------------------------------------------
# GC: each on a node of its own


def _dead_attachment_of_ours(node: SharedNode) -> str:
    """``cnitool add`` a namespace, then delete the namespace: an attachment
    proven dead.  Returns its container ID."""
    name = f"{node.name}-dead"
    _ok(node.cnitool("netns", "add", name), "netns add")
    proc = node.cnitool("add", node.network, name)
    _ok(proc, "add")
    _ok(node.cnitool("netns", "del", name), "netns del")
    record = next(p for p in node.results_dir.iterdir() if json.loads(p.read_bytes()).get("netns", "").endswith(name))
    return str(json.loads(record.read_bytes())["containerId"])


def _live_attachment_of_ours(node: SharedNode) -> str:
    name = f"{node.name}-live"
    _ok(node.cnitool("netns", "add", name), "netns add")
    _ok(node.cnitool("add", node.network, name), "add")
    record = next(p for p in node.results_dir.iterdir() if json.loads(p.read_bytes()).get("netns", "").endswith(name))
    return str(json.loads(record.read_bytes())["containerId"])


def _records_of(node: SharedNode, container_id: str) -> list[str]:
    return [p.name for p in node.results_dir.iterdir() if container_id in p.name]


GC_COMMANDS: dict[str, Callable[[SharedNode, str], list[str]]] = {
    "gc NET --valid OURS": lambda n, live: ["gc", n.network, "--valid", f"{live}/eth0"],
    "gc NET --all": lambda n, live: ["gc", n.network, "--all"],
    "pod gc": lambda n, live: ["pod", "gc"],
    "pod gc --cri-socket": lambda n, live: ["pod", "gc", "--cri-socket", n.socket],
    "doctor --fix": lambda n, live: ["doctor", "--fix", "--grace", "0"],
    "doctor --fix --cri-socket": lambda n, live: ["doctor", "--fix", "--grace", "0", "--cri-socket", n.socket],
}


@pytest.mark.parametrize("name", list(GC_COMMANDS))
def test_gc_keeps_their_live_attachments(fresh: SharedNode, name: str) -> None:
    before = _baseline(fresh)
    dead = _dead_attachment_of_ours(fresh) if not name.startswith("pod") else ""
    live = _live_attachment_of_ours(fresh)
    proc = fresh.cnitool(*GC_COMMANDS[name](fresh, live))
    _no_traceback(proc, name)
    _ok(proc, name)
    assert_intact(fresh, before, f"cnitool {name}")
    if dead:
        assert _records_of(fresh, dead) == [], f"{name} kept an attachment whose namespace is gone"
        assert not reservations(fresh, [dead]), f"{name} kept the dead attachment's address"
    if name.startswith("gc NET --valid"):
        assert _records_of(fresh, live), f"{name} deleted the attachment listed as valid"


def test_pod_gc_removes_a_dead_pod_of_ours(fresh: SharedNode) -> None:
    before = _baseline(fresh)
    pod = f"{fresh.name}-gone"
    proc = fresh.cnitool("pod", "up", "--namespace", "lcpy", "--name", pod, "--json")
    _ok(proc, "pod up")
    sandbox = json.loads(proc.stdout)
    pod_id = sandbox["containerId"]
    netns = sandbox["netns"]
    assert pod_id and netns, sandbox
    fresh.run("ip", "netns", "del", netns.rsplit("/", 1)[-1])  # the pod's namespace is gone: proven dead
    proc = fresh.cnitool("pod", "gc")
    _no_traceback(proc, "pod gc")
    _ok(proc, "pod gc")
    assert _records_of(fresh, pod_id) == [], "pod gc kept a pod whose namespace is gone"
    assert not reservations(fresh, [pod_id])
    assert_intact(fresh, before, "cnitool pod gc")


# --------------------------------------------------------------------------
# and the runtimes tear down cleanly (last: it ends the shared node's pods)


def test_runtimes_tear_down_cleanly(shared: SharedNode, baseline: Snapshot) -> None:
    ids = list(foreign_ids(shared))
    netns = {a.netns.rsplit("/", 1)[-1] for a in foreign_attachments(shared)}
    first, second = shared.sandbox_ids
    pb = shared.pb2
    shared.cri.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=first), timeout=120)
    # stopped (NOTREADY) but not removed: still the runtime's, still listed;
    # containerd has torn its network down already
    assert live_sandboxes(shared.socket) == frozenset({first, second})
    assert [p.name for p in shared.results_dir.iterdir() if first in p.name] == []
    shared.remove_sandbox(first)
    shared.sandbox_ids.remove(first)
    assert live_sandboxes(shared.socket) == frozenset({second})
    assert shared.teardown_runtimes() == []
    assert live_sandboxes(shared.socket) == frozenset()
    assert [p.name for p in shared.results_dir.iterdir() if any(cid in p.name for cid in ids)] == []
    assert reservations(shared, ids) == {}
    assert foreign_rules(shared, ids) == set()
    left = set(shared.run("ls", "/run/netns").stdout.split())
    assert not left & netns, f"namespaces left behind: {left & netns}"
    veths = json.loads(shared.run("ip", "-j", "link", "show", "master", shared.bridge).stdout)
    assert veths == [], f"interfaces left on the bridge: {[v['ifname'] for v in veths]}"
