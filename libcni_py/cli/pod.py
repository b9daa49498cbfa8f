"""``cnitool pod ...`` and ``cnitool ready``: the runtime layer on the command line.

``pod up`` does what a CRI runtime does for a new pod sandbox: it records
the pod, creates its network namespace (``/var/run/netns/lcpy-<id>``, unless
``--netns`` names one; refused if that name is taken), and sets up the loopback network and the pod's
networks (the conf dir's default network as ``eth0`` unless ``--network``
says otherwise).  ``pod down`` tears the networks down from the cache (so a
changed or removed conf file does not matter), deletes the namespace it
created and forgets the pod.  ``pod check`` runs CHECK for all of a pod's
networks, ``pod status`` shows one pod, ``pod ls`` all of them.

**Which pods are alive** (for ``pod gc``): the pods recorded under the cache
dir (``libcni_py/pods/``) by ``pod up`` and by programs using the library
(``examples/toy_runtime.py``).  A pod with an owner process (a runtime that
keeps it) is alive while that process runs; a pod made by ``pod up`` is
alive, once set up, while its namespace exists; a ``pod up`` killed
half-way (its record still says "setup" and that process is gone) is dead.
This is judged while the GC holds the GC lock, which every pod operation
holds shared, so a pod being set up is never taken for dead.  ``--live ID``
adds pods the records do not know.

**Whose** (``pod ls``'s OWNER): other runtimes (containerd, CRI-O, podman)
and ``cnitool add`` keep attachments in the same cache dir without a pod
record.  ``pod gc`` leaves them alone; ``--include-foreign`` lets it delete
those of them that are proven dead (namespace gone, or a CRI sandbox the
runtime of ``--cri-socket`` does not list), never a live one.

Sandbox IDs are random (64 hex digits, as containerd makes them); a pod is
named on the command line by its ID, a unique prefix of it, or
``NAMESPACE/NAME``.  The conf dir, plugin path and cache dir come from the
global options and environment, as for every command.
"""

from __future__ import annotations

import os
import sys

from ._argv import Command, Opt, UsageError, bounded_int

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..runtime.k8s import PodSpec
    from ..runtime.manager import PodNetworks
    from ..runtime.pod import PodResult
    from ..runtime.sandbox import PodSandbox
    from .main import Context

__all__ = ["run", "spec"]

_JSON = Opt("--json", dest="json", help="print JSON for programs")
_MAX = Opt(
    "--max-networks",
    dest="max_networks",
    metavar="N",
    help="how many conf files every pod gets (containerd's max_conf_num; default 1, 0: all)",
)
_CONCURRENT = Opt("--concurrent", dest="concurrent", help="attach the networks concurrently (trio)")

SPECS = {
    "pod": Command(
        "pod",
        ("up|down|check|status|ls|gc", "[POD]"),
        "Pod networks as a CRI runtime makes them: loopback, then eth0, eth1, ...",
        (
            Opt("--namespace", dest="namespace", metavar="NS", help="the pod's namespace (default: default)"),
            Opt("--name", dest="name", metavar="NAME", help="the pod's name (pod up: required)"),
            Opt("--uid", dest="uid", metavar="UID", help="the pod's UID (K8S_POD_UID)"),
            Opt("--id", dest="id", metavar="ID", help="the sandbox ID (default for up: 64 random hex digits)"),
            Opt(
                "--network",
                dest="network",
                metavar="NAME[:IFNAME]",
                repeat=True,
                help="a network for the pod (default: the conf dir's default network as eth0)",
            ),
            Opt(
                "--port",
                dest="port",
                metavar="[IP:]HOST:CONTAINER[/PROTO]",
                repeat=True,
                help="a host port mapping (portMappings)",
            ),
            Opt(
                "--bandwidth",
                dest="bandwidth",
                metavar="INGRESS[:EGRESS]",
                help="rate limits in bits/s, e.g. 10M:5M (bandwidth)",
            ),
            Opt("--annotation", dest="annotation", metavar="KEY=VALUE", repeat=True, help="a pod annotation"),
            Opt("--netns", dest="netns", metavar="PATH", help="use this namespace (default: pod up creates one)"),
            Opt("--live", dest="live", metavar="ID", repeat=True, help="gc: also keep this pod (container ID)"),
            Opt(
                "--include-foreign",
                dest="include_foreign",
                help="gc: also delete attachments of other runtimes/cnitool add -- only those proven dead",
            ),
            Opt(
                "--cri-socket",
                dest="cri_socket",
                metavar="PATH",
                help="gc: ask this CRI runtime (containerd, CRI-O) which sandboxes are alive",
            ),
            _MAX,
            _CONCURRENT,
            _JSON,
        ),
        description=(
            "  up        create the pod's namespace and set up its networks\n"
            "  down      tear down its networks (from the cache), delete the namespace it made\n"
            "  check     CHECK each of its networks\n"
            "  status    show one pod\n"
            "  ls        list the pods (records and cached attachments), whose, and if alive\n"
            "  gc        remove libcni_py's dead pods; other runtimes' attachments are left alone\n"
            "\n"
            "POD is a sandbox ID, a unique prefix of one, or NAMESPACE/NAME (or give\n"
            "--id / --namespace and --name).  Live pods for gc: recorded pods whose owner\n"
            "process runs or (without owner) whose namespace exists, and --live IDs; a\n"
            "'pod up' killed during setup is dead.  Attachments without a pod record (podman,\n"
            "containerd, CRI-O, 'cnitool add') are kept unless --include-foreign, and then\n"
            "deleted only when proven dead (namespace gone; CRI sandbox not listed)."
        ),
    ),
    "ready": Command(
        "ready",
        (),
        "Say whether the pod network is ready (CRI's NetworkReady); exit 0 if it is.",
        (_MAX, _JSON),
        description="When not ready, the reason names what to fix: the conf dir, a file, a plugin.",
    ),
}


def spec(command: str) -> Command:
    """The declaration of ``command``."""
    return SPECS[command]


def run(ctx: Context, command: str, values: dict[str, object], positionals: list[str]) -> int:
    """Run ``pod ...`` or ``ready``."""
    if command == "ready":
        if positionals:
            raise UsageError(f"ready takes no arguments, got {' '.join(positionals)}")
        return _ready(ctx, values)
    if not positionals:
        raise UsageError("pod needs an action: up, down, check, status, ls or gc")
    action, rest = positionals[0], positionals[1:]
    runner = _ACTIONS.get(action)
    if runner is None:
        raise UsageError(f"unknown pod action {action!r} (up, down, check, status, ls, gc)")
    if len(rest) > 1 or (rest and action in ("up", "ls", "gc")):
        raise UsageError(f"pod {action}: unexpected argument(s) {' '.join(rest)}")
    return runner(ctx, values, rest[0] if rest else "")


# --------------------------------------------------------------------------
# helpers


def _manager(ctx: Context, values: dict[str, object], *, concurrent: bool = False) -> Any:
    """The pod network manager for these settings (trio's when ``--concurrent``)."""
    from ..runtime.manager import AsyncPodNetworks, PodNetworks
    from .ls import MAX_CONF_NUM

    max_networks = bounded_int(values.get("max_networks", "1"), option="--max-networks", low=0, high=MAX_CONF_NUM)
    cls = AsyncPodNetworks if concurrent else PodNetworks
    return cls(
        conf_dir=ctx.conf_dir,
        plugin_path=ctx.plugin_path,
        cache_dir=ctx.cache_dir,
        max_networks=max_networks,
        concurrent=concurrent,
        timeout=ctx.timeout,
        env=ctx.env,
        on_notice=ctx.notice,
        tracer=ctx.tracer,
        on_stderr=ctx.plugin_stderr(),
    )


def _call(ctx: Context, values: dict[str, object], method: str, *args: Any, **kwargs: Any) -> Any:
    """Call a manager method in the blocking form, or with trio for ``--concurrent``."""
    if not values.get("concurrent"):
        return getattr(_manager(ctx, values), method)(*args, **kwargs)
    import trio

    manager = _manager(ctx, values, concurrent=True)

    async def call() -> Any:
        return await getattr(manager, method)(*args, **kwargs)

    return trio.run(call)


def _pod_spec(values: dict[str, object]) -> PodSpec:
    from ..errors import ArgsError
    from ..runtime.k8s import Bandwidth, NetworkSelection, PodSpec, PortMapping

    name = str(values.get("name") or "")
    if not name:
        raise UsageError("pod up needs --name NAME (the pod's name)")
    annotations: dict[str, str] = {}
    for item in _list(values, "annotation"):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ArgsError(f"--annotation {item!r}: expected KEY=VALUE")
        annotations[key] = value
    bandwidth = values.get("bandwidth")
    return PodSpec(
        namespace=str(values.get("namespace") or "default"),
        name=name,
        uid=str(values.get("uid") or ""),
        networks=tuple([NetworkSelection.parse(item) for item in _list(values, "network")]),
        port_mappings=tuple([PortMapping.parse(item) for item in _list(values, "port")]),
        bandwidth=Bandwidth.parse(str(bandwidth)) if bandwidth else None,
        annotations=annotations,
    )


def _list(values: dict[str, object], key: str) -> list[str]:
    items = values.get(key) or []
    assert isinstance(items, list)
    return [str(item) for item in items]


def _print_json(value: object) -> None:
    from ._out import print_json

    print_json(value)


class _Known:
    """A pod as the CLI sees it: its record and/or its cached attachments."""

    def __init__(self, container_id: str) -> None:
        self.container_id = container_id
        self.sandbox: PodSandbox | None = None
        self.records: list[Any] = []

    @property
    def netns(self) -> str:
        """The pod's namespace: its record's, else its attachments'."""
        from ..core.record import record_netns

        if self.sandbox is not None:
            return self.sandbox.netns
        return next((ns for ns in map(record_netns, self.records) if ns), "")

    def owner(self) -> Any:
        """Whose it is (:func:`libcni_py.core.ownership.owner_of`)."""
        from ..core.ownership import LIBCNI_PY, Owner, owner_of

        if self.sandbox is not None:
            return Owner(name=LIBCNI_PY, evidence="a libcni_py pod record exists")
        args = [pair for record in self.records for pair in record.cni_args]
        return owner_of(self.container_id, self.netns, args)

    @property
    def namespace_name(self) -> str:
        if self.sandbox is not None and self.sandbox.name:
            return f"{self.sandbox.namespace}/{self.sandbox.name}"
        for record in self.records:
            args = dict(record.cni_args)
            if args.get("K8S_POD_NAME"):
                return f"{args.get('K8S_POD_NAMESPACE', '')}/{args['K8S_POD_NAME']}"
        return ""


def _known_pods(pods: PodNetworks) -> dict[str, _Known]:
    known: dict[str, _Known] = {}
    for sandbox in pods.sandboxes():
        known.setdefault(sandbox.container_id, _Known(sandbox.container_id)).sandbox = sandbox
    for record in pods.attachments():
        known.setdefault(record.container_id, _Known(record.container_id)).records.append(record)
    return known


def _find(pods: PodNetworks, values: dict[str, object], ref: str, *, required: bool) -> list[_Known]:
    """The pods ``ref`` (or --id, or --namespace/--name) names."""
    known = _known_pods(pods)
    by_id = str(values.get("id") or "")
    if not ref and by_id:
        ref = by_id
    if not ref and values.get("name"):
        ref = f"{values.get('namespace') or 'default'}/{values['name']}"
    if not ref:
        raise UsageError("name the pod: POD (ID, ID prefix or NAMESPACE/NAME), --id ID, or --namespace/--name")
    if "/" in ref:
        found = [k for k in known.values() if k.namespace_name == ref]
    elif ref in known:
        found = [known[ref]]
    else:
        found = [k for k in known.values() if k.container_id.startswith(ref)]
    if len(found) > 1 and "/" not in ref:
        ids = ", ".join(k.container_id[:12] for k in found)
        raise UsageError(f"{ref!r} names several pods ({ids}); give more of the ID")
    if not found and required:
        from ..errors import CNIError

        raise CNIError(
            f"no pod {ref!r} in {pods.cache_dir}",
            hint="'cnitool pod ls' lists the pods; was it made with this cache dir (--cache-dir)?",
        )
    return found


def _describe(result: PodResult, sandbox: PodSandbox) -> None:
    print(f"pod {sandbox.label} {sandbox.container_id}")
    print(f"  netns {sandbox.netns}")
    for item in result.interfaces:
        addresses = ", ".join(ip.address + (f" via {ip.gateway}" if ip.gateway else "") for ip in item.ips)
        print(f"  {item.ifname:<6} {item.network:<20} {addresses or '-'}")
    sys.stdout.flush()


# --------------------------------------------------------------------------
# the actions


def _up(ctx: Context, values: dict[str, object], ref: str) -> int:
    from .ops import resolve_netns

    pod_spec = _pod_spec(values)
    netns_arg = values.get("netns")
    netns = resolve_netns(str(netns_arg)) if netns_arg else None
    if netns is not None and not os.path.exists(netns):
        from ..errors import NetnsError

        raise NetnsError(f"network namespace {netns} does not exist", hint="create it first, or leave out --netns")
    container_id = str(values.get("id") or "") or None
    sandbox, result = _call(ctx, values, "run_pod", pod_spec, netns=netns, container_id=container_id)
    if values.get("json"):
        from ..core.gojson import Struct

        _print_json(Struct(pod=f"{sandbox.namespace}/{sandbox.name}", **result.to_json()))
    else:
        _describe(result, sandbox)
    return 0


def _down(ctx: Context, values: dict[str, object], ref: str) -> int:
    pods = _manager(ctx, values)
    found = _find(pods, values, ref, required=False)
    if not found:
        ctx.notice(f"no pod {ref or values.get('id') or values.get('name')!r} in {pods.cache_dir}; nothing to do")
        return 0
    for item in found:
        report = _call(ctx, values, "stop_pod", item.container_id)
        gone = ", ".join(f"{ifname} ({network})" for network, ifname in report.removed) or "no attachments"
        extra = f"; deleted {report.netns_removed}" if report.netns_removed else ""
        print(f"pod {item.namespace_name or item.container_id[:12]} {item.container_id}: removed {gone}{extra}")
    return 0


def _check(ctx: Context, values: dict[str, object], ref: str) -> int:
    pods = _manager(ctx, values)
    for item in _find(pods, values, ref, required=True):
        checked = _call(ctx, values, "check", item.container_id)
        print(f"pod {item.namespace_name or item.container_id[:12]}: " + ", ".join(f"{i} ok" for _, i in checked))
    return 0


def _pod_json(pods: PodNetworks, item: _Known) -> dict[str, object]:
    from .. import netns

    sandbox = item.sandbox
    owner = item.owner()
    out: dict[str, object] = {
        "containerId": item.container_id,
        "pod": item.namespace_name,
        "owner": owner.name,
        "ownerEvidence": owner.evidence,
        "netnsState": netns.state(item.netns),
    }
    if sandbox is not None:
        out["netns"] = sandbox.netns
        out["netnsOwned"] = sandbox.netns_owned
        out["ownerPid"] = sandbox.owner_pid
        out["alive"] = pods.is_alive(sandbox)
    else:
        out["alive"] = None
    attachments = []
    for record in item.records:
        ips = [ip.get("address") for ip in (record.result or {}).get("ips") or [] if isinstance(ip, dict)]
        attachments.append(
            {
                "network": record.network,
                "ifname": record.ifname,
                "complete": record.complete,
                "ips": ips,
            }
        )
    out["attachments"] = attachments
    return out


def _status(ctx: Context, values: dict[str, object], ref: str) -> int:
    pods = _manager(ctx, values)
    found = _find(pods, values, ref, required=True)
    docs = [_pod_json(pods, item) for item in found]
    if values.get("json"):
        _print_json(docs if len(docs) != 1 else docs[0])
        return 0
    for doc in docs:
        print(f"pod {doc['pod'] or '-'} {doc['containerId']}")
        alive = doc["alive"]
        state = "no record (attachments only)" if alive is None else ("alive" if alive else "dead")
        print(f"  state  {state}")
        evidence = f" ({doc['ownerEvidence']})" if doc["ownerEvidence"] else ""
        print(f"  owner  {doc['owner']}{evidence}; namespace {doc['netnsState']}")
        if "netns" in doc:
            owned = " (made by cnitool/the runtime layer)" if doc["netnsOwned"] else ""
            print(f"  netns  {doc['netns']}{owned}")
        attachments = doc["attachments"]
        assert isinstance(attachments, list)
        for att in attachments:
            flag = "" if att["complete"] else " (ADD incomplete)"
            print(f"  {att['ifname']:<6} {att['network']:<20} {', '.join(att['ips']) or '-'}{flag}")
    return 0


def _ls(ctx: Context, values: dict[str, object], ref: str) -> int:
    pods = _manager(ctx, values)
    known = _known_pods(pods)
    docs = [_pod_json(pods, item) for item in sorted(known.values(), key=lambda k: k.namespace_name)]
    if values.get("json"):
        _print_json(docs)
        return 0
    print(f"{'POD ID':<14}{'POD':<30}{'OWNER':<12}{'STATE':<10}{'NETNS':<9}INTERFACES")
    foreign = 0
    for doc in docs:
        alive = doc["alive"]
        state = "foreign" if alive is None else ("alive" if alive else "dead")
        foreign += alive is None
        attachments = doc["attachments"]
        assert isinstance(attachments, list)
        ifaces = " ".join(f"{a['ifname']}={','.join(a['ips']) or '-'}" for a in attachments) or "-"
        print(
            f"{str(doc['containerId'])[:12]:<14}{str(doc['pod']) or '-':<30}{doc['owner']!s:<12}{state:<10}"
            f"{doc['netnsState']!s:<9}{ifaces}"
        )
    if foreign:
        print(
            f"{foreign} not libcni_py's (no pod record): 'pod gc' leaves them alone "
            "(--include-foreign: only those proven dead)"
        )
    return 0


def _gc(ctx: Context, values: dict[str, object], ref: str) -> int:
    from ..core import names
    from ..errors import MultiError
    from ..runtime.gc import PodGCReport

    extra = _list(values, "live")
    for item in extra:
        names.check_container_id(item, where="--live")
    from .ops import cri_sandboxes

    sandboxes = cri_sandboxes(values)
    try:
        # the records' pods are judged inside, under the GC lock: a pod made
        # meanwhile is never taken for dead
        report = _call(
            ctx,
            values,
            "gc",
            extra,
            judge_records=True,
            include_foreign=bool(values.get("include_foreign")),
            live_sandboxes=sandboxes,
        )
    except MultiError as exc:
        if isinstance(exc.report, PodGCReport):
            _print_gc(exc.report)
        raise
    _print_gc(report)
    return 0


def _print_gc(report: Any) -> None:
    for network, cid, ifname in report.removed:
        print(f"removed {network} {cid} {ifname}")
    for cid in report.pods_removed:
        print(f"removed pod {cid}")
    for path in report.netns_removed:
        print(f"removed netns {path}")
    reasons = {(net, cid, ifname): why for net, cid, ifname, why in report.kept_reasons}
    for network, cid, ifname in report.kept:
        why = reasons.get((network, cid, ifname))
        print(f"kept {network} {cid} {ifname}" + (f": {why}" if why else ""))
    if report.plugin_gc:
        print("plugins sent GC: " + ", ".join(report.plugin_gc))
    for network in report.skipped:
        print(f"skipped {network} (disableGC)")
    sys.stdout.flush()


def _ready(ctx: Context, values: dict[str, object]) -> int:
    status = _manager(ctx, values).status()
    if values.get("json"):
        _print_json(status.to_cri())
    if not status.ready:
        raise status.error()
    if not values.get("json"):
        print(f"ready (default network {status.default_network!r})")
    for line in _failing_consumers(ctx.conf_dir):
        ctx.notice(line)
    return 0


def _failing_consumers(conf_dir: str) -> list[str]:
    """The other consumers of the conf dir that would take no network from
    it, as ``cnitool ls`` judges them (containerd fails its whole load on one
    invalid file that libcni_py's runtime layer, like CRI-O, skips)."""
    from ..tools.confdir_report import LABELS, analyse, scan

    report = analyse(scan(conf_dir), {})
    return [
        f"but {LABELS.get(c.name, c.name)} would not be ready: {c.error} (see 'cnitool ls')"
        for c in report.consumers
        if c.error
    ]


_ACTIONS = {
    "up": _up,
    "down": _down,
    "check": _check,
    "status": _status,
    "ls": _ls,
    "gc": _gc,
}
