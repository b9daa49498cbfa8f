"""``cnitool cache ls`` and ``cnitool cache show``: the result cache, decoded.

``cache ls`` lists the attachments recorded under ``<cache dir>/results``
(as Go's ``GetCachedAttachments`` reads them) and the files that are not
usable records.  ``cache show NETWORK CONTAINERID IFNAME`` decodes one
record: the network configuration it was added with, CNI_ARGS, capability
args, the result, the progress marker of an ADD that did not complete, and
whether the conf file of that network still holds the same configuration.
Nothing is written.
"""

from __future__ import annotations

import sys

from ._argv import Command, Opt, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..core.record import CacheRecord
    from .main import Context

__all__ = ["run", "spec"]

SPEC = Command(
    "cache",
    ("ls|show", "[NETWORK CONTAINERID IFNAME]"),
    "List cached attachments (cache ls), or decode one (cache show NETWORK CONTAINERID IFNAME).",
    (
        Opt("--container", dest="container", metavar="ID", help="cache ls: only this container's attachments"),
        Opt("--network", dest="network", metavar="NAME", help="cache ls: only this network's attachments"),
        Opt("--json", dest="json", help="print JSON"),
    ),
)


def spec(command: str) -> Command:
    """The declaration of ``cache``."""
    return SPEC


def run(ctx: Context, command: str, values: dict[str, object], positionals: list[str]) -> int:
    """Run ``cnitool cache ls|show``."""
    if not positionals or positionals[0] not in ("ls", "show"):
        raise UsageError("expected 'cache ls' or 'cache show NETWORK CONTAINERID IFNAME'")
    if positionals[0] == "ls":
        if len(positionals) != 1:
            raise UsageError(f"cache ls takes no arguments, got {' '.join(positionals[1:])}")
        return _ls(ctx, values)
    if len(positionals) != 4:
        raise UsageError("expected cache show NETWORK CONTAINERID IFNAME")
    return _show(ctx, values, *positionals[1:])


def _is_legacy(data: bytes, name: str) -> bool:
    from ..core.record import decode_record
    from ..errors import CacheError

    try:
        return decode_record(data, name).legacy
    except CacheError:
        return False


def _state(record: CacheRecord) -> str:
    return "complete" if record.progress is None else record.progress.describe()


def _whose(store: Any, records: list[CacheRecord]) -> dict[tuple[str, str, str], tuple[str, Any]]:
    """For each record: its namespace (:func:`~libcni_py.core.record.record_netns`)
    and whose it is (:func:`~libcni_py.core.ownership.owner_of`), keyed by
    ``(network, container_id, ifname)``."""
    from ..core.ownership import owner_of
    from ..core.record import record_netns
    from ..runtime.sandbox import PODS_FOLDER

    pods = set(store.names(folder=PODS_FOLDER))
    found = {}
    for r in records:
        netns = record_netns(r)
        found[r.network, r.container_id, r.ifname] = (netns, owner_of(r.container_id, netns, r.cni_args, pods))
    return found


def _ls(ctx: Context, values: dict[str, object]) -> int:
    from ..core.record import cached_attachments
    from ..edges.recordstore import CacheStore
    from ..netns import state
    from ._out import print_json

    store = CacheStore(ctx.cache_dir)
    container = str(values.get("container") or "")
    network = str(values.get("network") or "")
    listing = list(store.iter_files(container))
    records, damaged = cached_attachments(listing, container)
    if network:
        records = [r for r in records if r.network == network]
        damaged = [(n, p) for n, p in damaged if n.startswith(network + "-")]
    usable = {f"{r.network}-{r.container_id}-{r.ifname}" for r in records}
    broken = {name for name, _ in damaged}
    legacy = [
        name
        for name, data, _ in listing
        if name not in usable
        and name not in broken
        and data is not None
        and (not network or name.startswith(network + "-"))
        and _is_legacy(data, name)
    ]
    whose = _whose(store, records)
    live = {ns: state(ns) for ns, _ in whose.values()}
    if values.get("json"):
        doc = {
            "cacheDir": store.cache_dir,
            "attachments": [
                {
                    "network": r.network,
                    "containerId": r.container_id,
                    "ifname": r.ifname,
                    "netns": whose[r.network, r.container_id, r.ifname][0] or None,
                    "owner": whose[r.network, r.container_id, r.ifname][1].name,
                    "ownerEvidence": whose[r.network, r.container_id, r.ifname][1].evidence,
                    "live": live[whose[r.network, r.container_id, r.ifname][0]],
                    "state": "complete" if r.progress is None else r.progress.state,
                    "progress": None
                    if r.progress is None
                    else {"state": r.progress.state, "done": r.progress.done, "plugins": r.progress.plugins},
                    "file": store.results_dir + "/" + f"{r.network}-{r.container_id}-{r.ifname}",
                }
                for r in records
            ],
            "unusable": [{"file": name, "problem": problem.removeprefix(name + ": ")} for name, problem in damaged],
            "other": [
                {"file": name, "problem": "not a cniCacheV1 record (the old bare-result format?)"} for name in legacy
            ],
        }
        print_json(doc)
        return 0
    if not records and not damaged and not legacy:
        print(f"no cached attachments in {store.results_dir}")
        return 0
    rows = [["NETWORK", "CONTAINER", "IFNAME", "NETNS", "OWNER", "LIVE", "STATE"]]
    for r in records:
        netns, owner = whose[r.network, r.container_id, r.ifname]
        rows.append([r.network, r.container_id, r.ifname, netns or "-", owner.name, live[netns], _state(r)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
    for name, problem in damaged:
        print(f"unusable: {name}: {problem.removeprefix(name + ': ')}")
    for name in legacy:
        print(f"other: {name}: not a cniCacheV1 record (the old bare-result format?)")
    return 0


def _conf_match(ctx: Context, record: CacheRecord) -> tuple[str, str, str]:
    """``(state, file, detail)``: whether the network's conf file still holds
    the configuration the attachment was added with."""
    import difflib

    from ..core import gojson
    from ..core.netconf import load_network
    from ..errors import ConfigError, DecodeError, NetworkNotFoundError

    try:
        current = load_network(ctx.conf_dir, record.network)
    except NetworkNotFoundError:
        return "gone", "", f"no network named {record.network!r} in {ctx.conf_dir} any more"
    except ConfigError as exc:
        return "unknown", exc.file, f"the conf dir cannot be searched: {exc.one_line()}"
    if current.config_bytes == record.config:
        return "matches", current.path, ""

    def pretty(data: bytes) -> list[str]:
        try:
            return gojson.dumps(gojson.loads(data), indent="  ").split("\n")
        except DecodeError:
            return data.decode("utf-8", "replace").split("\n")

    diff = difflib.unified_diff(
        pretty(record.config), pretty(current.config_bytes), "cached", current.path, lineterm="", n=1
    )
    return "differs", current.path, "\n".join(diff)


def _show(ctx: Context, values: dict[str, object], network: str, container_id: str, ifname: str) -> int:
    from ..core import gojson
    from ..core import record as cache
    from ..edges.recordstore import CacheStore
    from ..errors import CODE_UNKNOWN_CONTAINER, ArgsError, DecodeError
    from ._out import print_json

    store = CacheStore(ctx.cache_dir)
    key = cache.AttachmentKey(network=network, container_id=container_id, ifname=ifname)
    path = store.path_for(key)
    data = store.read(key)
    if data is None:
        raise ArgsError(  # the attachment named is not on record: bad arguments (exit 3)
            f"no cache record {path}",
            code=CODE_UNKNOWN_CONTAINER,
            hint="'cnitool cache ls' lists the cached attachments (is --cache-dir / CNI_CACHE_DIR right?)",
        )
    record = cache.decode_record(data, path)
    try:
        config: Any = gojson.loads(record.config) if record.config else None
    except DecodeError:
        config = record.config.decode("utf-8", "replace")
    state, conf_file, detail = _conf_match(ctx, record) if not record.legacy else ("unknown", "", "legacy record")
    if values.get("json"):
        doc = {
            "file": path,
            "legacy": record.legacy,
            "network": record.network or None,
            "containerId": record.container_id or None,
            "ifname": record.ifname or None,
            "netns": record.netns or None,
            "config": config,
            "cniArgs": [list(pair) for pair in record.cni_args],
            "capabilityArgs": dict(record.capability_args),
            "result": record.result,
            "progress": None
            if record.progress is None
            else {"state": record.progress.state, "done": record.progress.done, "plugins": record.progress.plugins},
            "confFile": {"state": state, "file": conf_file or None, "detail": detail or None},
        }
        print_json(doc)
        return 0
    out = [f"cache record {path}"]
    if record.legacy:
        out.append("  format: the old bare-result format (only a result; no configuration or arguments)")
    else:
        out.append(f"  network      {record.network}")
        out.append(f"  container    {record.container_id}")
        out.append(f"  ifname       {record.ifname}")
        out.append(f"  netns        {record.netns or '(not recorded: written by libcni < 1.2)'}")
        out.append(f"  state        {_state(record)}")
        if record.progress is not None:
            out.append(
                "               (written by libcni_py while an ADD ran; a DEL or GC removes what the done plugins made)"
            )
        args_text = ";".join(f"{k}={v}" for k, v in record.cni_args) or "(none)"
        out.append(f"  CNI_ARGS     {args_text}")
        caps = gojson.dumps(dict(record.capability_args)) if record.capability_args else "(none)"
        out.append(f"  CAP_ARGS     {caps}")
        words = {
            "matches": f"matches {conf_file}",
            "differs": f"DIFFERS from {conf_file} (changed since the ADD: cnitool del runs the cached copy, "
            "as CRI-O does; del --current-config runs the file)",
            "gone": detail,
            "unknown": detail,
        }
        out.append(f"  conf file    {words[state]}")
        if state == "differs":
            out += ["    " + line for line in detail.split("\n")]
        out.append("  configuration (as cached):")
        shown = gojson.dumps(config, indent="  ") if not isinstance(config, str) else config
        out += ["    " + line for line in shown.split("\n")]
    out.append("  result:")
    if record.result is None:
        out.append("    (none yet)")
    else:
        out += ["    " + line for line in gojson.dumps(dict(record.result), indent="  ").split("\n")]
    sys.stdout.write("\n".join(out) + "\n")
    return 0
