"""The doctor's judgement: :class:`~.facts.Facts` in, :class:`~.facts.Finding` s out (pure).

Liveness and ownership are GC's (:mod:`libcni_py.core.ownership`): a cached
attachment is dead when :func:`~libcni_py.core.ownership.judge` says so
(namespace gone or no longer a namespace, or a CRI runtime that owns it no
longer lists it), and ``--fix`` deletes it through GC itself.  What has no
record -- a host-local reservation, iptables rules naming a container --
is dead only when nothing on the node is alive for it: no record of any
runtime names its container, no live namespace holds its address, it is
not the container ID cnitool derives from a live namespace's path, a CRI
runtime (when asked) does not list it, and (reservations) it is older than
the grace period, since an ADD reserves before it records.  When a live
namespace could not be read, nothing without a record is proven dead.
"""

from __future__ import annotations

import shlex

from ...core.ownership import CNITOOL, LIBCNI_PY, judge, owner_of
from .facts import Finding

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

    from ...core.ownership import Verdict
    from .facts import Facts, FlannelFact, IptRule, RecordFact

__all__ = ["KIND_ORDER", "analyse", "bridge_gateway", "comment_owner", "problem_count"]

#: The order findings are reported in.
KIND_ORDER = (
    "conf",
    "flannel-subnet",
    "flannel-bridge",
    "record",
    "flannel-saved",
    "damaged-record",
    "reservation",
    "orphan-address",
    "veth",
    "iptables",
    "netns-file",
)

#: Chains every attachment shares (portmap's, firewall's): never removed here.
SHARED_CHAINS = frozenset(
    {
        "CNI-HOSTPORT-DNAT",
        "CNI-HOSTPORT-SETMARK",
        "CNI-HOSTPORT-MASQ",
        "CNI-FORWARD",
        "CNI-ADMIN",
        "CNI-ISOLATION-STAGE-1",
    }
)


def comment_owner(comment: str) -> tuple[str, str, str] | None:
    """``(maker, network, container_id)`` from the comment CNI's plugins put
    on their rules: bridge's ipMasq ``name: "NET" id: "CID"``, portmap's
    ``dnat name: "NET" id: "CID"``; None for other comments."""
    maker = "bridge (ipMasq)"
    text = comment
    if text.startswith("dnat "):
        maker, text = "portmap", text[5:]
    if not text.startswith('name: "'):
        return None
    network, sep, rest = text[7:].partition('" id: "')
    if not sep or not rest.endswith('"'):
        return None
    return maker, network, rest[:-1]


def bridge_gateway(flannel_subnet: str) -> str:
    """The address the bridge plugin gives the bridge for Flannel's subnet:
    host-local's default gateway, the first address of ``FLANNEL_SUBNET``
    (``10.244.1.1/24`` -> ``10.244.1.1/24``; ``10.244.1.7/24`` too)."""
    import ipaddress

    net = ipaddress.ip_interface(flannel_subnet).network
    return f"{net.network_address + 1}/{net.prefixlen}"


def problem_count(findings: Iterable[Finding]) -> int:
    """How many findings there are (each is a problem)."""
    return sum(1 for _ in findings)


class _Life:
    """What is alive on the node, for what has no record of its own."""

    def __init__(self, facts: Facts, dead_records: set[tuple[str, str, str]]) -> None:
        self.facts = facts
        self.by_cid: dict[str, list[RecordFact]] = {}
        for fact in facts.records:
            self.by_cid.setdefault(fact.record.container_id, []).append(fact)
        self.dead_records = dead_records
        #: cache files that cannot be read: the container they stand for may live (GC keeps them too)
        self.damaged_names = [name for name, _problem in facts.damaged]
        self.recorded_ips: dict[str, str] = {}
        for fact in facts.records:
            for ip in _result_ips(fact.record.result):
                self.recorded_ips[ip] = fact.record.container_id

    def why_alive(self, container_id: str, addresses: Iterable[str]) -> str | None:
        """Why what belongs to ``container_id`` (holding ``addresses``) is
        alive; "" when nothing is (proven dead); None when it cannot be told."""
        facts = self.facts
        records = self.by_cid.get(container_id, [])
        if records:
            live = [
                r
                for r in records
                if (r.record.network, r.record.container_id, r.record.ifname) not in self.dead_records
            ]
            if live:
                return f"its container has a record ({live[0].file}) that is not dead"
            return f"its container's record {records[0].file} is dead: deleting that attachment releases it"
        if facts.live_sandboxes is not None and container_id in facts.live_sandboxes:
            return f"the CRI runtime says sandbox {container_id[:12]} is alive"
        if any(f"-{container_id}-" in name for name in self.damaged_names):
            return None  # a damaged record may be this container's: GC keeps it, so nothing is proven
        addresses = list(addresses)
        if container_id in facts.live_cnitool_ids:
            held = [f" ({a} is on {facts.live_addresses[a]})" for a in addresses if a in facts.live_addresses]
            return f"it is cnitool's container ID of the live namespace {facts.live_cnitool_ids[container_id]}" + (
                held[0] if held else ""
            )
        for address in addresses:
            holder = facts.live_addresses.get(address)
            if holder:
                return f"its address {address} is on {holder}"
        if not facts.namespaces_read:
            return None
        return ""


def _result_ips(result: object) -> list[str]:
    if not isinstance(result, dict):
        return []
    out = []
    for ip in result.get("ips") or ():
        if isinstance(ip, dict) and isinstance(ip.get("address"), str):
            out.append(ip["address"].split("/")[0])
    return out


def _host_ifaces(fact: RecordFact) -> list[str]:
    """The host-side interfaces of a record's result (no ``sandbox``)."""
    result = fact.record.result
    if not isinstance(result, dict):
        return []
    return [
        i["name"]
        for i in result.get("interfaces") or ()
        if isinstance(i, dict) and isinstance(i.get("name"), str) and not i.get("sandbox")
    ]


def _made_by(fact: RecordFact) -> str:
    owner = fact.owner
    who = {LIBCNI_PY: "libcni_py (a pod)", CNITOOL: "cnitool (libcni_py's or Go's)"}.get(owner.name, owner.name)
    return f"{who}: {owner.evidence}" if owner.evidence else who


def _plugin_types(fact: RecordFact) -> list[str]:
    from ...core import gojson

    try:
        doc = gojson.loads(fact.record.config) if fact.record.config else None
    except ValueError:
        return []
    if not isinstance(doc, dict):
        return []
    plugins = doc.get("plugins")
    if isinstance(plugins, list):
        return [str(p.get("type")) for p in plugins if isinstance(p, dict)]
    return [str(doc.get("type"))] if doc.get("type") else []


def analyse(facts: Facts) -> list[Finding]:
    """Every problem the facts show, in :data:`KIND_ORDER` then by subject."""
    findings: list[Finding] = []
    findings += _conf(facts.conf_problems)
    findings += _flannel(facts.flannel)
    verdicts: dict[tuple[str, str, str], Verdict] = {}
    for fact in facts.records:
        r = fact.record
        verdicts[(r.network, r.container_id, r.ifname)] = judge(
            r.container_id, fact.netns, fact.netns_state, fact.owner, live_sandboxes=facts.live_sandboxes
        )
    dead = {key for key, verdict in verdicts.items() if verdict.dead}
    links = {link.name: link for link in facts.host_links}
    claimed_links: set[str] = set()
    for fact in facts.records:
        r = fact.record
        key = (r.network, r.container_id, r.ifname)
        verdict = verdicts[key]
        host = [name for name in _host_ifaces(fact) if name in links and links[name].kind == "veth"]
        if verdict.dead:
            claimed_links.update(host)
            findings.append(_dead_record(fact, verdict.reason, host))
        elif fact.flannel_saved and not fact.flannel_saved_exists:
            findings.append(
                Finding(
                    kind="flannel-saved",
                    subject=f"{r.network}/{r.container_id}/{r.ifname}",
                    cause=(
                        f"flannel's saved delegate config {fact.flannel_saved} is gone while the pod lives "
                        f"({verdict.reason}): its DEL will succeed without running the delegate, leaving "
                        "the pod's interface and its host-local reservation behind"
                    ),
                    made_by="flannel (its dataDir was cleaned, or the node rebooted with it on tmpfs)",
                    fix=(
                        f"delete the pod's interface before its DEL (ip -n {fact.netns.rsplit('/', 1)[-1]} link del "
                        f"{r.ifname}), or after it run 'cnitool doctor --fix' once its namespace is gone: the "
                        "reservation is then proven leaked and released"
                    ),
                )
            )
    for filename, problem in facts.damaged:
        findings.append(
            Finding(
                kind="damaged-record",
                subject=filename,
                cause=f"cache file {filename} {problem}: no runtime can DEL with it",
                fix=(
                    "if its container is known dead: cnitool gc NETWORK --all --force deletes it without prevResult; "
                    "else look at it with 'cnitool cache ls'"
                ),
            )
        )
    life = _Life(facts, dead)
    findings += _reservations(facts, life)
    findings += _veths(facts, claimed_links)
    findings += _iptables(facts, life)
    for path in facts.stale_netns_files:
        if any(f.netns == path and f.netns_state == "stale" for f in facts.records):
            continue  # its dead record's finding removes it
        name = path.rsplit("/", 1)[-1]
        findings.append(
            Finding(
                kind="netns-file",
                subject=path,
                cause=f"{path} is no longer a namespace (its bind mount went away; the empty file stayed)",
                made_by="whoever created the namespace (ip netns add, a runtime) and lost its mount",
                fix=f"cnitool netns del {name} (or ip netns del {name}) once no runtime names it",
            )
        )
    order = {kind: index for index, kind in enumerate(KIND_ORDER)}
    findings.sort(key=lambda f: (order.get(f.kind, len(order)), f.subject))
    return findings


def _dead_record(fact: RecordFact, reason: str, host: list[str]) -> Finding:
    r = fact.record
    actions: list[tuple[str, ...]] = []
    fix = ""
    if fact.owner.name == LIBCNI_PY:
        fix = "cnitool pod gc (the runtime layer's GC removes the pod, its attachments and its namespace)"
    else:
        actions.append(("gc", r.network, r.container_id, r.ifname))
        fix = f"cnitool gc {r.network} --all (it DELs only attachments proven dead, with their recorded config)"
        if host:
            # a veth lives as long as both its ends: its peer's namespace is still held by some process
            # (or mount), so it is not proven dead and --fix leaves it
            fix += (
                f"; its host veth {' '.join(host)} stays: the pod's namespace is still held by a process "
                f"(lsns -t net); end that process, which frees both ends, or ip link del {' '.join(host)} "
                "if you know it is unused"
            )
        if fact.netns_state == "stale":
            actions.append(("netns-del", fact.netns))
            fix += f"; then cnitool netns del {fact.netns}"
    cause = f"the record of {r.network}/{r.container_id}/{r.ifname} is dead: {reason}"
    if fact.flannel_saved and not fact.flannel_saved_exists:
        cause += (
            f"; flannel's saved file {fact.flannel_saved} is gone too, so its DEL will not release the "
            "reservation (doctor --fix releases it after the DEL)"
        )
    return Finding(
        kind="record",
        subject=f"{r.network}/{r.container_id}/{r.ifname}",
        cause=cause,
        made_by=_made_by(fact),
        fix=fix,
        dead=bool(actions),
        actions=tuple(actions),
    )


def _conf(problems: Iterable[str]) -> list[Finding]:
    out = []
    problems = list(problems)
    empty = any(" does not exist: " in t or " has no .conf, .conflist or .json file" in t for t in problems)
    for text in problems:
        if empty and text.split(":", 1)[0] in ("containerd", "CRI-O", "kubelet"):
            continue  # each runtime's "nothing to load" says the same again
        subject = text.split(":", 1)[0] if ":" in text else "conf dir"
        if " does not exist: " in text or " has no .conf, .conflist or .json file" in text:
            subject = text.split(" ", 1)[0]
        if "MISSING" in text and ", which is not searched)" in text:
            fix = (
                "put that directory on the plugin path of whatever loads this file (cnitool: --plugin-path "
                "or CNI_PATH; containerd: bin_dir; CRI-O: plugin_dirs; podman: cni_plugin_dirs), "
                "or install the plugin into a searched directory"
            )
        elif "MISSING" in text:
            fix = "install the plugin into one of the plugin directories, or fix the plugin's type in the file"
        elif "does not support cniVersion" in text:
            fix = "set the file's cniVersion to one the plugin supports, or install a newer plugin"
        elif text.startswith("containerd:"):
            fix = "fix that file or move it out of the conf dir: containerd fails its whole load on it"
        elif "does not exist" in text or "has no .conf" in text:
            fix = "install a network's conf file (the network add-on does this when it runs)"
        else:
            fix = "fix or remove the file ('cnitool ls' shows what each runtime takes)"
        out.append(Finding(kind="conf", subject=subject, cause=text, made_by="the conf dir's writer", fix=fix))
    return out


def _flannel(facts: Iterable[FlannelFact]) -> list[Finding]:
    out = []
    for item in facts:
        if item.subnet_error:
            out.append(
                Finding(
                    kind="flannel-subnet",
                    subject=item.subnet_file,
                    cause=(
                        f"{item.conf_file}: flannel reads {item.subnet_file}, which {item.subnet_error}: "
                        "every ADD fails"
                    ),
                    made_by="flanneld (it writes the file when it has leased the node's subnet)",
                    fix="start flanneld (kube-flannel's DaemonSet) and wait for it to write the file",
                )
            )
            continue
        subnet = item.subnet_env.get("FLANNEL_SUBNET", "")
        if not subnet or not item.bridge_exists:
            continue
        try:
            want = bridge_gateway(subnet)
        except ValueError:
            out.append(
                Finding(
                    kind="flannel-subnet",
                    subject=item.subnet_file,
                    cause=f"FLANNEL_SUBNET={subnet} in {item.subnet_file} is not an address/prefix",
                    made_by="flanneld",
                    fix="restart flanneld so that it writes the file again",
                )
            )
            continue
        wrong = [a for a in item.bridge_addrs if a != want]
        if not wrong or want in item.bridge_addrs:
            continue
        ports = (
            f"{item.bridge_ports} link(s) are its ports: pods on the old subnet lose their network"
            if item.bridge_ports
            else "no pod is on it"
        )
        out.append(
            Finding(
                kind="flannel-bridge",
                subject=item.bridge,
                cause=(
                    f'"{item.bridge}" already has an IP address different from {want} (it has {", ".join(wrong)}; '
                    f"{item.subnet_file} says FLANNEL_SUBNET={subnet}): every ADD of {item.network!r} fails so"
                ),
                made_by=(
                    "flanneld leased this node another subnet (subnet.env changed) while the bridge kept "
                    "the old gateway"
                ),
                fix=f"ip link del {item.bridge} ({ports}); the next ADD recreates it with {want}",
            )
        )
    return out


def _reservations(facts: Facts, life: _Life) -> list[Finding]:
    out = []
    flannel_networks = {f.network for f in facts.flannel}
    for res in facts.reservations:
        why = life.why_alive(res.container_id, [res.ip])
        if why is None:
            continue  # cannot be told: not a finding
        subject = res.path
        owner = owner_of(res.container_id, "", ())
        made_by = "host-local" + (f", called for {owner.name}'s container ({owner.evidence})" if owner.evidence else "")
        if why:
            if why.startswith(("its address ", "it is cnitool's")) and not life.by_cid.get(res.container_id):
                pitfall = (
                    " (what flannel's DEL leaves when its saved file was gone)"
                    if res.network in flannel_networks
                    else ""
                )
                out.append(
                    Finding(
                        kind="orphan-address",
                        subject=subject,
                        cause=(
                            f"{res.ip} is reserved for container {res.container_id} ({res.ifname or 'no ifname'}), "
                            f"which has no record in the cache dir, but {why}: its DEL ran without deleting the "
                            f"interface{pitfall}"
                        ),
                        made_by=made_by,
                        fix=(
                            "delete that interface (or the pod's namespace); 'cnitool doctor --fix' then releases "
                            "the reservation"
                        ),
                    )
                )
            continue
        if res.age < facts.grace:
            continue  # an ADD may be between host-local and its record
        out.append(
            Finding(
                kind="reservation",
                subject=subject,
                cause=(
                    f"{res.ip} of network {res.network!r} is reserved for container {res.container_id}"
                    f"{'/' + res.ifname if res.ifname else ''}, which has no record in the cache dir and no live "
                    "namespace holding the address: leaked (a DEL that never ran, or ran without reaching host-local)"
                ),
                made_by=made_by,
                fix=f"rm {res.path} (cnitool doctor --fix does it under host-local's lock)",
                dead=True,
                actions=(("unlink", res.path, res.container_id),),
            )
        )
    return out


def _veths(facts: Facts, claimed: set[str]) -> list[Finding]:
    out = []
    live_ids = set(facts.live_nsids)
    for link in facts.host_links:
        if link.kind != "veth" or link.master not in facts.cni_bridges or link.name in claimed:
            continue
        if link.peer_netnsid < 0 or link.peer_netnsid in live_ids:
            continue
        out.append(
            Finding(
                kind="veth",
                subject=link.name,
                cause=(
                    f"host veth {link.name} on bridge {link.master}: its peer's namespace (nsid {link.peer_netnsid}) "
                    "has no namespace file and no record names it -- the namespace's file was removed while a "
                    "process still holds it"
                ),
                made_by="the bridge plugin (the runtime that removed the namespace file never ran the DEL)",
                fix=(
                    f"find the process holding it (lsns -t net) and end it, which frees both ends; or ip link del "
                    f"{link.name}"
                ),
            )
        )
    return out


def rule_addresses(rule: IptRule) -> list[str]:
    """The single addresses an iptables rule names: a ``/32`` or ``/128``
    source or destination, a DNAT ``--to-destination`` (its port dropped)."""
    out = [a.rsplit("/", 1)[0] for a in (rule.option("-s"), rule.option("-d")) if a.endswith(("/32", "/128"))]
    target = rule.option("--to-destination")
    if target.startswith("["):  # [fd00::7]:80
        out.append(target[1 : target.find("]")])
    elif target.count(":") == 1:  # 10.1.0.7:80
        out.append(target.split(":")[0])
    elif target:
        out.append(target)
    return [a for a in out if a and "-" not in a]  # not a range


def _iptables(facts: Facts, life: _Life) -> list[Finding]:
    by_cid: dict[tuple[str, str, str], list[IptRule]] = {}
    chains: dict[tuple[str, str, str], IptRule] = {}
    for rule in facts.iptables:
        if rule.chain_only:
            chains[(rule.family, rule.table, rule.chain)] = rule
            continue
        found = comment_owner(rule.option("--comment"))
        if found is not None:
            maker, network, cid = found
            by_cid.setdefault((cid, network, maker), []).append(rule)
    in_chain: dict[tuple[str, str, str], list[IptRule]] = {}
    for rule in facts.iptables:
        if not rule.chain_only:
            in_chain.setdefault((rule.family, rule.table, rule.chain), []).append(rule)
    own_chains_of: dict[tuple[str, str, str], list[IptRule]] = {}
    addresses_of: dict[str, set[str]] = {}
    for group, rules in by_cid.items():
        own_chains = own_chains_of.setdefault(group, [])
        for rule in rules:
            target = rule.option("-j")
            if target.startswith("CNI-") and target not in SHARED_CHAINS:
                key = (rule.family, rule.table, target)
                if key in chains and chains[key] not in own_chains:
                    own_chains.append(chains[key])
        # every address the container's rules name: masquerade rules as -s/-d, portmap's DNAT rules as
        # --to-destination in the container's own chain
        members = [r for c in own_chains for r in in_chain.get((c.family, c.table, c.chain), ())]
        addresses_of.setdefault(group[0], set()).update(a for r in (*rules, *members) for a in rule_addresses(r))
    out = []
    for (cid, network, maker), rules in sorted(by_cid.items()):
        own_chains = own_chains_of[(cid, network, maker)]
        addresses = sorted(addresses_of[cid])
        if not addresses and not life.by_cid.get(cid):
            continue  # nothing to test for life (a pod whose ADD has not finished looks the same): not proven
        why = life.why_alive(cid, addresses)
        if why is None or why:
            continue
        actions: list[tuple[str, ...]] = []
        for rule in rules:
            if (rule.family, rule.table, rule.chain) in {(c.family, c.table, c.chain) for c in own_chains}:
                continue  # flushed with its chain
            tool = "iptables" if rule.family == "4" else "ip6tables"
            actions.append(("run", tool, "-w", "-t", rule.table, "-D", rule.chain, *rule.spec))
        for chain in own_chains:
            tool = "iptables" if chain.family == "4" else "ip6tables"
            actions.append(("run", tool, "-w", "-t", chain.table, "-F", chain.chain))
            actions.append(("run", tool, "-w", "-t", chain.table, "-X", chain.chain))
        names = sorted({r.chain for r in rules} | {c.chain for c in own_chains})
        out.append(
            Finding(
                kind="iptables",
                subject=f"{cid} ({network})",
                cause=(
                    f"{len(rules)} iptables rule(s) in {', '.join(names)} for container {cid} of network "
                    f"{network!r}, which no longer exists (no record, no live namespace"
                    + (f" holding {', '.join(sorted(set(addresses)))}" if addresses else "")
                    + ")"
                ),
                made_by=maker,
                fix="; ".join(shlex.join(a[1:]) for a in actions) + " (cnitool doctor --fix runs these)",
                dead=True,
                actions=tuple(actions),
            )
        )
    return out
