"""The Go-cnitool commands: ``add``, ``check``, ``del``, ``gc``, ``status``, and
``version`` / ``validate``.

``add``/``check``/``del`` take ``NETWORK NETNS`` as Go's cnitool does: the
network is looked up by name in the conf dir, the container ID is derived
from the netns path (``cnitool-`` + 20 hex digits of its SHA-512) unless
``--container-id`` is given, and ``add`` prints the result as Go prints it.
A NETNS without ``/`` that names a namespace under ``/var/run/netns`` means
that namespace (Go would take it as a relative path).
"""

from __future__ import annotations

import os
import sys

from ._argv import Command, Opt, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..api import CNI
    from ..core.inputs import RuntimeConf
    from ..core.netconf import NetworkConfigList
    from ..core.record import ContainerIfname
    from ..core.reports import GCReport
    from .main import Context

__all__ = ["run", "spec"]

_IFNAME = Opt("--ifname", dest="ifname", metavar="NAME", env="CNI_IFNAME", help="interface name (default eth0)")
_CID = Opt(
    "--container-id",
    dest="container_id",
    metavar="ID",
    help="container ID (default: derived from NETNS as Go's cnitool does)",
)
_ARGS = Opt("--args", dest="args", metavar="K=V;...", env="CNI_ARGS", help="CNI_ARGS for the plugins")
_CAPS = Opt(
    "--capability-args",
    dest="capability_args",
    metavar="JSON",
    env="CAP_ARGS",
    help="capability arguments, a JSON object",
)
_ATTACH = (_IFNAME, _CID, _ARGS, _CAPS)
_CURRENT = Opt(
    "--current-config",
    dest="current_config",
    help="DEL with the network's file as it is now, not the configuration recorded at ADD "
    "(Go's behaviour; the way past a recorded plugin that can no longer DEL)",
)
#: The options that describe an attachment (shared with ``exec``).
ATTACH_OPTIONS = _ATTACH

SPECS = {
    "add": Command(
        "add",
        ("NETWORK", "NETNS"),
        "Add the container whose network namespace is NETNS to NETWORK; print the result.",
        _ATTACH,
    ),
    "check": Command("check", ("NETWORK", "NETNS"), "Check the attachment against its cached result.", _ATTACH),
    "del": Command("del", ("NETWORK", "NETNS"), "Remove the container from NETWORK.", (*_ATTACH, _CURRENT)),
    "gc": Command(
        "gc",
        ("NETWORK",),
        "Delete every cached attachment of NETWORK that is not listed as valid, then send plugins GC.",
        (
            Opt(
                "--valid",
                dest="valid",
                metavar="CONTAINERID/IFNAME",
                repeat=True,
                help="an attachment that is still in use",
            ),
            Opt("--all", dest="all", help="no attachment is listed as valid (dead ones are deleted)"),
            Opt(
                "--force",
                dest="force",
                help="delete every attachment not listed as valid, live ones too (what Go's cnitool gc does)",
            ),
            Opt(
                "--cri-socket",
                dest="cri_socket",
                metavar="PATH",
                help="ask this CRI runtime (containerd, CRI-O) which sandboxes are alive",
            ),
            _CURRENT,
        ),
        description="Go's 'cnitool gc' hands libcni no list of valid attachments and so deletes every\n"
        "attachment of the network; this one refuses to unless --all is given, and even then\n"
        "deletes only attachments proven dead (namespace gone, or not listed by the CRI runtime\n"
        "of --cri-socket): other runtimes share the cache dir.  It says why it kept each other one.",
    ),
    "status": Command("status", ("NETWORK",), "Ask the network's plugins whether they are ready (spec 1.1.0)."),
    "version": Command("version", ("PLUGIN",), "Ask a plugin which CNI spec versions it supports."),
    "validate": Command(
        "validate",
        ("NETWORK",),
        "Check the network's file against the JSON Schemas, and that each plugin exists and "
        "supports its version; print its capabilities.",
    ),
}


def spec(command: str) -> Command:
    """The declaration of ``command``."""
    return SPECS[command]


def _positionals(command: str, positionals: list[str]) -> list[str]:
    wanted = SPECS[command].args
    if len(positionals) != len(wanted):
        got = " ".join(positionals) or "nothing"
        raise UsageError(f"expected {' '.join(wanted)}, got {got}")
    return positionals


def resolve_netns(netns: str) -> str:
    """A netns argument as a path: ``blue`` means ``/var/run/netns/blue`` when
    that exists; anything else is made absolute as Go's ``filepath.Abs``."""
    if "/" not in netns and os.path.exists(os.path.join("/var/run/netns", netns)):
        return os.path.join("/var/run/netns", netns)
    return os.path.abspath(netns)


def runtime_conf(ctx: Context, values: dict[str, object], netns_arg: str, *, must_exist: bool) -> RuntimeConf:
    """The :class:`~libcni_py.core.inputs.RuntimeConf` of an add/check/del."""
    from ..core import args
    from ..core.inputs import RuntimeConf
    from ..errors import NetnsError

    netns = resolve_netns(netns_arg)
    if must_exist and not os.path.exists(netns):
        raise NetnsError(
            f"network namespace {netns} does not exist",
            hint=f"create it first (ip netns add {os.path.basename(netns)}, or cnitool netns add)",
        )
    container_id = str(values.get("container_id") or args.cnitool_container_id(netns))
    cni_args = args.parse_cni_args(
        str(values["args"]) if "args" in values else ctx.env.get("CNI_ARGS", ""),
        source="--args" if "args" in values else "CNI_ARGS",
    )
    caps = args.parse_capability_args(
        str(values["capability_args"]) if "capability_args" in values else ctx.env.get("CAP_ARGS", ""),
        source="--capability-args" if "capability_args" in values else "CAP_ARGS",
    )
    ifname = str(values.get("ifname") or ctx.env.get("CNI_IFNAME") or "eth0")
    return RuntimeConf(container_id=container_id, netns=netns, ifname=ifname, args=cni_args, capability_args=caps)


def _network(ctx: Context, name: str) -> NetworkConfigList:
    from ..core.netconf import load_network

    return load_network(ctx.conf_dir, name)


def _network_for_teardown(ctx: Context, cni: CNI, name: str, rt: RuntimeConf | None) -> NetworkConfigList | str:
    """The network to DEL (``rt`` given) or GC with: loaded from the conf dir,
    or -- when it cannot be (its file is gone or broken, or another file
    stops the look-up) -- just its name, so that the configuration cached
    with the attachments is used.  That fallback is announced; without a
    cached configuration to fall back on, the loading error stands."""
    from ..errors import CNIError, ConfigError

    try:
        return _network(ctx, name)
    except ConfigError as exc:
        try:
            if rt is not None:
                record = cni.cached_record(name, rt)
                usable = record is not None and bool(record.config)
            else:
                usable = any(r.network == name and r.config for r in cni.cached_attachments())
        except CNIError:
            usable = False
        if not usable:
            raise
        what = "the attachment" if rt is not None else "each cached attachment"
        ctx.notice(f"{exc.one_line()}; using the configuration cached with {what} instead")
        return name


def with_recorded_args(
    ctx: Context, cni: CNI, network: str, rt: RuntimeConf, values: dict[str, object], *, announce: bool = True
) -> RuntimeConf:
    """``rt`` with the CNI_ARGS and capability args recorded at ADD, for those
    the caller gave none of (neither flag nor environment).

    Plugins undo and check what they did from these: portmap, for one, finds
    its rules from ``portMappings``, so a DEL without them leaves the
    container's DNAT rules behind (Go's cnitool does exactly that).  Runtimes
    pass the same arguments at teardown; a person at a shell rarely does.
    """
    from ..errors import CNIError

    missing_args = "args" not in values and not ctx.env.get("CNI_ARGS")
    missing_caps = "capability_args" not in values and not ctx.env.get("CAP_ARGS")
    if not (missing_args or missing_caps):
        return rt
    try:
        record = cni.cached_record(network, rt)
    except CNIError:
        return rt
    if record is None:
        return rt
    used = []
    if missing_args and record.cni_args:
        rt = rt.replace(args=record.cni_args)
        used.append("CNI_ARGS")
    if missing_caps and record.capability_args:
        rt = rt.replace(capability_args=dict(record.capability_args))
        used.append("capability args")
    if used and announce:
        # said once the operation succeeded (flush_notes): before an error it is noise
        ctx.notices.append(f"using the {' and '.join(used)} recorded when the attachment was added")
    return rt


def flush_notes(ctx: Context) -> None:
    """Print the notes kept for after a successful operation."""
    notes, ctx.notices = ctx.notices, []
    for text in notes:
        ctx.notice(text)


def run(ctx: Context, command: str, values: dict[str, object], positionals: list[str]) -> int:
    """Run one of this module's commands."""
    return _RUNNERS[command](ctx, values, _positionals(command, positionals))


def _add(ctx: Context, values: dict[str, object], pos: list[str]) -> int:
    from ..core.result import to_json_bytes

    netlist = _network(ctx, pos[0])
    rt = runtime_conf(ctx, values, pos[1], must_exist=False)  # CNI.add probes the namespace itself, first
    res = ctx.cni().add(netlist, rt)
    sys.stdout.buffer.write(to_json_bytes(res, indent="    ") + b"\n")
    sys.stdout.flush()
    return 0


def _check(ctx: Context, values: dict[str, object], pos: list[str]) -> int:
    netlist = _network(ctx, pos[0])
    rt = runtime_conf(ctx, values, pos[1], must_exist=True)
    cni = ctx.cni()
    cni.check(netlist, with_recorded_args(ctx, cni, netlist.name, rt, values))
    flush_notes(ctx)
    return 0


def _del(ctx: Context, values: dict[str, object], pos: list[str]) -> int:
    rt = runtime_conf(ctx, values, pos[1], must_exist=False)
    cni = ctx.cni(delete_with="current" if values.get("current_config") else "recorded")
    rt = with_recorded_args(ctx, cni, pos[0], rt, values)
    cni.delete(_network_for_teardown(ctx, cni, pos[0], rt), rt)
    flush_notes(ctx)
    return 0


def _gc(ctx: Context, values: dict[str, object], pos: list[str]) -> int:
    from ..core import names

    valid_args = values.get("valid") or []
    assert isinstance(valid_args, list)
    if not valid_args and not values.get("all"):
        raise UsageError(
            "refusing to GC without a list of valid attachments: that deletes every cached attachment of "
            f"network {pos[0]!r} (Go's cnitool gc does exactly that); give --valid CONTAINERID/IFNAME for each "
            "attachment in use, or --all if none is"
        )
    valid: list[ContainerIfname] = []
    for item in valid_args:
        cid, sep, ifname = str(item).partition("/")
        if not sep:
            raise UsageError(f"--valid {item!r}: expected CONTAINERID/IFNAME")
        names.check_container_id(cid, where="--valid")
        names.check_ifname(ifname, where="--valid")
        valid.append((cid, ifname))
    cni = ctx.cni(delete_with="current" if values.get("current_config") else "recorded")
    netlist = _network_for_teardown(ctx, cni, pos[0], None)
    from ..errors import MultiError

    sandboxes = cri_sandboxes(values)
    try:
        report = cni.gc(netlist, valid, force=bool(values.get("force")), live_sandboxes=sandboxes)
    except MultiError as exc:
        from ..core.reports import GCReport

        if isinstance(exc.report, GCReport):
            _print_gc(exc.report, loaded=not isinstance(netlist, str))
        raise
    _print_gc(report, loaded=not isinstance(netlist, str))
    return 0


def cri_sandboxes(values: dict[str, object]) -> frozenset[str] | None:
    """The sandboxes the CRI runtime of ``--cri-socket`` lists (None: not given)."""
    socket = values.get("cri_socket")
    if not socket:
        return None
    from ..runtime.cri import live_sandboxes  # type: ignore[import-not-found, unused-ignore]  # grpc: when asked

    found: frozenset[str] = live_sandboxes(str(socket))
    return found


def _print_gc(report: GCReport, *, loaded: bool) -> None:
    if report.skipped:
        print("gc: skipped (disableGC is set)")
        return
    for cid, ifname in report.removed:
        print(f"removed {cid}/{ifname}")
    reasons = {(cid, ifname): why for cid, ifname, why in report.kept_reasons}
    for cid, ifname in report.kept:
        why = reasons.get((cid, ifname))
        print(f"kept {cid}/{ifname}" + (f": {why}" if why else ""))
    if not report.plugin_gc:
        why = "needs cniVersion 1.1.0" if loaded else "the network is not in the conf dir"
        print(f"plugins not asked to GC ({why})")


def _status(ctx: Context, values: dict[str, object], pos: list[str]) -> int:
    from ..core import version

    netlist = _network(ctx, pos[0])
    if not version.gte(netlist.cni_version or "0.1.0", "1.1.0"):
        # Go's libcni returns success without asking any plugin; so does this
        # (exit 0: nothing says the network is not ready), but it says so
        print(
            f"STATUS does not apply to network {netlist.name!r}: its cniVersion is "
            f"{netlist.cni_version or '0.1.0 (none given)'}, and STATUS is a spec 1.1.0 operation "
            "(plugins of older versions cannot be asked; libcni reports success without asking them)"
        )
        return 0
    ctx.cni().status(netlist)
    print(f"network {netlist.name!r} is ready: each of its plugins answered STATUS with success")
    return 0


def _version(ctx: Context, values: dict[str, object], pos: list[str]) -> int:
    from ._out import print_json

    info = ctx.cni().version_info(pos[0])
    print_json(info.to_json())
    return 0


def _validate(ctx: Context, values: dict[str, object], pos: list[str]) -> int:
    from ..core import gojson, schema
    from ..errors import ConfigError

    netlist = _network(ctx, pos[0])
    if netlist.path.endswith(".conflist"):
        faults = schema.validate_with_jsonschema(gojson.loads(netlist.config_bytes), "conflist")
        if faults:
            raise ConfigError(netlist.path, faults[0][0], faults[0][1])
    caps = ctx.cni().validate(netlist)
    types = ", ".join(p.type for p in netlist.plugins)
    print(f"network {netlist.name!r} ({netlist.path}) is valid: plugins {types} support version {netlist.cni_version}")
    print("capabilities: " + (", ".join(caps) if caps else "none"))
    return 0


_RUNNERS = {
    "add": _add,
    "check": _check,
    "del": _del,
    "gc": _gc,
    "status": _status,
    "version": _version,
    "validate": _validate,
}
