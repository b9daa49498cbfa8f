"""The operations on a network -- ADD, CHECK, DEL, GC, STATUS, validate and
VERSION -- written once, without I/O.

Each operation is a generator (a *plan*) that yields **effects** -- "resolve
these plugin binaries", "run this plugin", "read/write/remove this cache
record", "take this lock" -- and receives their outcomes.  A driver performs
the effects: :mod:`libcni_py.exec_sync` with blocking calls for the one-shot
CLI, :mod:`libcni_py.exec_trio` with trio for the library.  The sequence of
calls, the stdin and environment of each, when the cache is written and what
errors mean are decided here and nowhere else.

The semantics are Go libcni's (``libcni/api.go``), with these deliberate
differences, each tested:

* names (network, container ID, ifname) are validated before every operation,
  not only ADD, and every plugin binary is resolved before the first runs;
* the attachment is recorded before the first ADD plugin runs and after each
  one (see :mod:`libcni_py.cache`), so a crash never leaves resources that no
  DEL or GC can find; the first and the last record are fsynced (they
  survive a power loss), the ones in between only replace it atomically;
* a per-attachment lock serialises ADD, CHECK and DEL of one attachment;
* CHECK without a cached result fails with a clear error instead of running
  plugins with a null ``prevResult``; DEL with a damaged cache file goes on
  without ``prevResult`` and removes the file only once the DEL succeeded;
* GC reports what it removed.
"""

from __future__ import annotations

from . import cache, invoke, names, request, result, version
from ._values import Value
from .errors import (
    CacheError,
    CNIError,
    DecodeError,
    MultiError,
    PluginError,
    UnsupportedOperationError,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Generator, Iterable, Mapping, Sequence
    from typing import Any, TypeAlias

    from .cache import AttachmentKey, CacheRecord
    from .conf import NetworkConfigList
    from .result import AnyResult

__all__ = [
    "Acquire",
    "Exec",
    "GCReport",
    "ListRecords",
    "Notice",
    "Options",
    "ReadRecord",
    "Release",
    "RemoveRecord",
    "Resolve",
    "RuntimeConf",
    "WriteRecord",
    "add",
    "check",
    "delete",
    "gc",
    "status",
    "validate",
    "version_info",
]


# --------------------------------------------------------------------------
# inputs


class RuntimeConf(Value):
    """The runtime side of one attachment (Go's ``RuntimeConf``).

    Attributes:
        container_id: the container (sandbox) ID.
        netns: path of its network namespace.
        ifname: the interface name inside it.
        args: CNI_ARGS pairs.
        capability_args: capability arguments; each plugin gets those it
            declares, as ``runtimeConfig``.
    """

    __slots__ = ("container_id", "netns", "ifname", "args", "capability_args")
    container_id: str
    netns: str
    ifname: str
    args: tuple[tuple[str, str], ...]
    capability_args: Mapping[str, Any]

    def __init__(
        self,
        *,
        container_id: str,
        netns: str = "",
        ifname: str = "eth0",
        args: Iterable[tuple[str, str]] = (),
        capability_args: Mapping[str, Any] | None = None,
    ) -> None:
        self._set(
            container_id=container_id,
            netns=netns,
            ifname=ifname,
            args=tuple((k, v) for k, v in args),
            capability_args=dict(capability_args or {}),
        )


class Options(Value):
    """Runtime-wide settings a plan needs.

    Attributes:
        plugin_path: directories searched for plugin binaries, in order.
        base_env: the environment plugins inherit (Go passes the runtime's).
        trace: a W3C trace context for plugins, or None.
    """

    __slots__ = ("plugin_path", "base_env", "trace")
    plugin_path: tuple[str, ...]
    base_env: Mapping[str, str]
    trace: request.TraceContext | None

    def __init__(
        self,
        *,
        plugin_path: Iterable[str],
        base_env: Mapping[str, str],
        trace: request.TraceContext | None = None,
    ) -> None:
        self._set(plugin_path=tuple(plugin_path), base_env=base_env, trace=trace)


# --------------------------------------------------------------------------
# effects


class Resolve(Value):
    """Find the binaries of these plugin types -> ``tuple[str, ...]`` of paths.
    Raises :class:`~libcni_py.errors.PluginNotFoundError` for the first missing."""

    __slots__ = ("plugin_types", "plugin_path")
    plugin_types: tuple[str, ...]
    plugin_path: tuple[str, ...]

    def __init__(self, *, plugin_types: Iterable[str], plugin_path: Iterable[str]) -> None:
        self._set(plugin_types=tuple(plugin_types), plugin_path=tuple(plugin_path))


class Exec(Value):
    """Run one plugin -> :class:`~libcni_py.invoke.ExecOutcome` (never raises
    for a failing plugin; the plan decides what the outcome means)."""

    __slots__ = ("request",)
    request: invoke.ExecRequest

    def __init__(self, *, request: invoke.ExecRequest) -> None:
        self._set(request=request)


class ReadRecord(Value):
    """Read an attachment record -> ``bytes | None``; may raise CacheError."""

    __slots__ = ("key",)
    key: AttachmentKey

    def __init__(self, *, key: AttachmentKey) -> None:
        self._set(key=key)


class WriteRecord(Value):
    """Replace an attachment record atomically -> None.

    ``durable=False`` marks a checkpoint that need not survive a power loss
    (the record it replaces did, and says as much): the store skips its
    ``fsync`` calls.  Replacing is atomic either way.
    """

    __slots__ = ("key", "data", "durable")
    key: AttachmentKey
    data: bytes
    durable: bool

    def __init__(self, *, key: AttachmentKey, data: bytes, durable: bool = True) -> None:
        self._set(key=key, data=data, durable=durable)


class RemoveRecord(Value):
    """Remove an attachment record -> ``bool`` (whether there was one)."""

    __slots__ = ("key",)
    key: AttachmentKey

    def __init__(self, *, key: AttachmentKey) -> None:
        self._set(key=key)


class ListRecords(Value):
    """List ``results/`` -> ``list[tuple[name, bytes | None, CacheError | None]]``."""

    __slots__ = ("container_id",)
    container_id: str

    def __init__(self, *, container_id: str = "") -> None:
        self._set(container_id=container_id)


class Acquire(Value):
    """Take the attachment's cross-process lock -> None (waits)."""

    __slots__ = ("key",)
    key: AttachmentKey

    def __init__(self, *, key: AttachmentKey) -> None:
        self._set(key=key)


class Release(Value):
    """Release the attachment's lock -> None; ``forget`` also removes the lock
    file (after a successful DEL).  Drivers release every lock a plan still
    holds when it ends, however it ends."""

    __slots__ = ("key", "forget")
    key: AttachmentKey
    forget: bool

    def __init__(self, *, key: AttachmentKey, forget: bool = False) -> None:
        self._set(key=key, forget=forget)


class Notice(Value):
    """Something a person should know (a damaged cache file was found, say)
    -> None.  Drivers hand it to the caller's notice callback."""

    __slots__ = ("text",)
    text: str

    def __init__(self, *, text: str) -> None:
        self._set(text=text)


Effect: TypeAlias = (
    "Resolve | Exec | ReadRecord | WriteRecord | RemoveRecord | ListRecords | Acquire | Release | Notice"
)
Plan: TypeAlias = "Generator[Effect, Any, Any]"


# --------------------------------------------------------------------------
# helpers


def _check_names(netlist: NetworkConfigList, rt: RuntimeConf) -> AttachmentKey:
    where = netlist.source
    names.check_network_name(netlist.name, where=where)
    names.check_container_id(rt.container_id, where=where)
    names.check_ifname(rt.ifname, where=where)
    return cache.AttachmentKey(network=netlist.name, container_id=rt.container_id, ifname=rt.ifname)


def _env(command: str, rt: RuntimeConf, opts: Options) -> dict[str, str]:
    return request.plugin_env(
        command,
        container_id=rt.container_id,
        netns=rt.netns,
        ifname=rt.ifname,
        cni_args=rt.args,
        plugin_path=opts.plugin_path,
        base=opts.base_env,
        trace=opts.trace,
    )


def _request(
    netlist: NetworkConfigList,
    *,
    index: int,
    path: str,
    command: str,
    stdin: bytes,
    env: Mapping[str, str],
) -> invoke.ExecRequest:
    plugin = netlist.plugins[index]
    return invoke.ExecRequest(
        plugin_type=plugin.type,
        plugin_name=plugin.name,
        path=path,
        command=command,
        stdin=stdin,
        env=env,
        network=netlist.name,
        index=index,
        result_version=netlist.cni_version or "0.1.0",
    )


def _record(
    netlist: NetworkConfigList,
    rt: RuntimeConf,
    res: AnyResult | None,
    progress: cache.Progress | None,
) -> bytes:
    return cache.encode_record(
        container_id=rt.container_id,
        ifname=rt.ifname,
        network=netlist.name,
        config=netlist.config_bytes,
        netns=rt.netns,
        cni_args=rt.args,
        capability_args=rt.capability_args,
        result=result.to_json(res) if res is not None else None,
        progress=progress,
    )


def _cached_result(record: CacheRecord, to_version: str, path: str) -> AnyResult | None:
    """The record's result converted to the list's current version.

    Raises:
        CacheError: the result cannot be parsed or converted.
    """
    if record.result is None:
        return None
    own = record.result.get("cniVersion")
    try:
        parsed = result.parse(record.result, own if isinstance(own, str) and own else "0.1.0")
        return result.convert(parsed, to_version)
    except DecodeError as exc:
        raise CacheError(path, f"holds a result that cannot be used: {exc.msg}") from None


def _run_all(requests: Sequence[invoke.ExecRequest]) -> Generator[Effect, Any, None]:
    for req in requests:
        outcome = yield Exec(request=req)
        invoke.raise_for_outcome(req, outcome)


# --------------------------------------------------------------------------
# the operations


def add(netlist: NetworkConfigList, rt: RuntimeConf, opts: Options) -> Plan:
    """ADD: run the plugins in order, each given the previous one's result,
    and cache the final result.

    Returns (as the generator's value) the last plugin's result, in the
    version that plugin answered in.

    Raises:
        InvalidNameError, PluginNotFoundError: before anything runs.
        PluginError: the first plugin that failed (the chain stops there; as
            in Go, undoing it is the caller's DEL).
    """
    key = _check_names(netlist, rt)
    paths = yield Resolve(plugin_types=[p.type for p in netlist.plugins], plugin_path=opts.plugin_path)
    yield Acquire(key=key)
    total = len(netlist.plugins)
    # Recorded before anything runs: a crash from here on leaves a record
    # that DEL and GC find.
    yield WriteRecord(key=key, data=_record(netlist, rt, None, cache.Progress(state="adding", done=0, plugins=total)))
    env = _env("ADD", rt, opts)
    prev: AnyResult | None = None
    for index, plugin in enumerate(netlist.plugins):
        stdin = request.plugin_stdin(
            plugin,
            name=netlist.name,
            cni_version=netlist.cni_version,
            prev_result=prev,
            capability_args=rt.capability_args,
        )
        req = _request(netlist, index=index, path=paths[index], command="ADD", stdin=stdin, env=env)
        outcome = yield Exec(request=req)
        try:
            prev = invoke.decode_result(req, outcome)
        except PluginError:
            yield WriteRecord(
                key=key, data=_record(netlist, rt, prev, cache.Progress(state="failed", done=index, plugins=total))
            )
            raise
        if index + 1 < total:
            # A checkpoint: atomic, not fsynced.  After a power loss the durable
            # record written before the first plugin (or, with luck, this one)
            # is there, and DEL or GC undoes the whole chain from either.
            yield WriteRecord(
                key=key,
                data=_record(netlist, rt, prev, cache.Progress(state="adding", done=index + 1, plugins=total)),
                durable=False,
            )
    yield WriteRecord(key=key, data=_record(netlist, rt, prev, None))
    yield Release(key=key)
    return prev


def _read_record(key: AttachmentKey, store_path: str) -> Generator[Effect, Any, CacheRecord | None]:
    data = yield ReadRecord(key=key)
    if data is None:
        return None
    return cache.decode_record(data, store_path)


def check(netlist: NetworkConfigList, rt: RuntimeConf, opts: Options) -> Plan:
    """CHECK: run the plugins in order, each given the cached ADD result.

    Raises:
        UnsupportedOperationError: the list's version is below 0.4.0.
        CNIError: no cached result, or the cached attachment is incomplete
            or damaged.
        PluginError: the first plugin that reported a problem.
    """
    if not version.gte(netlist.cni_version, "0.4.0"):
        raise UnsupportedOperationError(
            f'{netlist.source}: configuration version "{netlist.cni_version}" does not support the CHECK command',
            hint="CHECK exists from spec 0.4.0 on",
        )
    if netlist.disable_check:
        return None
    key = _check_names(netlist, rt)
    paths = yield Resolve(plugin_types=[p.type for p in netlist.plugins], plugin_path=opts.plugin_path)
    yield Acquire(key=key)
    where = f"cache record of network {netlist.name!r}, container {rt.container_id!r}, interface {rt.ifname!r}"
    record = yield from _read_record(key, where)
    if record is None:
        raise CNIError(
            f"nothing to check: no {where}",
            hint="was the attachment added with this cache dir (--cache-dir)?",
        )
    if record.progress is not None:
        raise CNIError(
            f"the {where} is from an ADD that did not complete "
            f"({record.progress.state}, {record.progress.done} of {record.progress.plugins} plugins done)",
            hint="run DEL (or GC) to remove what it made, then ADD again",
        )
    cached = _cached_result(record, netlist.cni_version, where)
    env = _env("CHECK", rt, opts)
    requests = [
        _request(
            netlist,
            index=index,
            path=paths[index],
            command="CHECK",
            stdin=request.plugin_stdin(
                plugin,
                name=netlist.name,
                cni_version=netlist.cni_version,
                prev_result=cached,
                capability_args=rt.capability_args,
            ),
            env=env,
        )
        for index, plugin in enumerate(netlist.plugins)
    ]
    yield from _run_all(requests)
    yield Release(key=key)
    return None


def delete(netlist: NetworkConfigList, rt: RuntimeConf, opts: Options) -> Plan:
    """DEL: run the plugins in reverse order, each given the cached ADD
    result (from spec 0.4.0), then remove the cache record.

    A record that cannot be used (empty, truncated, unparsable) does not stop
    the DEL: it goes on without ``prevResult``, says so with a notice, and the
    record is removed once every plugin succeeded.  A failing plugin stops the
    DEL and keeps the record, so that it can be retried.
    """
    key = _check_names(netlist, rt)
    paths = yield Resolve(plugin_types=[p.type for p in netlist.plugins], plugin_path=opts.plugin_path)
    yield Acquire(key=key)
    cached: AnyResult | None = None
    if version.gte(netlist.cni_version, "0.4.0"):
        where = f"cache record {key.filename}"
        try:
            record = yield from _read_record(key, where)
            if record is not None:
                if record.progress is not None:
                    yield Notice(
                        text=f"{where} is from an ADD that did not complete ({record.progress.state}, "
                        f"{record.progress.done} of {record.progress.plugins} plugins done); deleting all of it"
                    )
                cached = _cached_result(record, netlist.cni_version, where)
        except CacheError as exc:
            yield Notice(text=f"{exc}; deleting without prevResult")
            cached = None
    env = _env("DEL", rt, opts)
    requests = [
        _request(
            netlist,
            index=index,
            path=paths[index],
            command="DEL",
            stdin=request.plugin_stdin(
                netlist.plugins[index],
                name=netlist.name,
                cni_version=netlist.cni_version,
                prev_result=cached,
                capability_args=rt.capability_args,
            ),
            env=env,
        )
        for index in reversed(range(len(netlist.plugins)))
    ]
    yield from _run_all(requests)
    yield RemoveRecord(key=key)
    yield Release(key=key, forget=True)
    return None


class GCReport(Value):
    """What a GC did.

    Attributes:
        removed: ``(container_id, ifname)`` of the stale attachments deleted.
        kept: ``(container_id, ifname)`` of the cached attachments kept.
        plugin_gc: whether plugins were sent GC (spec >= 1.1.0).
        errors: what failed (GC goes on past failures).
        skipped: ``disableGC`` was set; nothing was done.
    """

    __slots__ = ("removed", "kept", "plugin_gc", "errors", "skipped")
    removed: tuple[tuple[str, str], ...]
    kept: tuple[tuple[str, str], ...]
    plugin_gc: bool
    errors: tuple[CNIError, ...]
    skipped: bool

    def __init__(
        self,
        *,
        removed: Iterable[tuple[str, str]] = (),
        kept: Iterable[tuple[str, str]] = (),
        plugin_gc: bool = False,
        errors: Iterable[CNIError] = (),
        skipped: bool = False,
    ) -> None:
        self._set(
            removed=tuple(removed),
            kept=tuple(kept),
            plugin_gc=plugin_gc,
            errors=tuple(errors),
            skipped=skipped,
        )


def cached_attachments(
    listing: Iterable[tuple[str, bytes | None, CacheError | None]], container_id: str = ""
) -> tuple[list[CacheRecord], list[tuple[str, str]]]:
    """Decode a listing of ``results/`` (Go's ``GetCachedAttachments``).

    Returns:
        ``(records, damaged)``: the usable ``cniCacheV1`` records (Go's
        filters: right kind, right container, ``ifName`` and ``networkName``
        present) and ``(file name, problem)`` for the files that could not be
        used.
    """
    records: list[CacheRecord] = []
    damaged: list[tuple[str, str]] = []
    for name, data, error in listing:
        if error is not None or data is None:
            damaged.append((name, str(error) if error else "unreadable"))
            continue
        try:
            record = cache.decode_record(data, name)
        except CacheError as exc:
            damaged.append((name, exc.msg))
            continue
        if record.legacy:
            continue
        if container_id and record.container_id != container_id:
            continue
        if not record.ifname or not record.network:
            damaged.append((name, "has no ifName or networkName"))
            continue
        records.append(record)
    return records, damaged


def gc(netlist: NetworkConfigList, valid_attachments: Sequence[tuple[str, str]], opts: Options) -> Plan:
    """GC: DEL every cached attachment of this network that is not in
    ``valid_attachments`` (with the current configuration and the cached
    netns and arguments), then, from spec 1.1.0, send GC to every plugin.

    Failures are collected, not fatal; the report lists them, and the plan
    raises :class:`~libcni_py.errors.MultiError` at the end if there were any.

    Returns:
        :class:`GCReport`.
    """
    if netlist.disable_gc:
        return GCReport(skipped=True)
    names.check_network_name(netlist.name, where=netlist.source)
    valid = {(cid, ifname) for cid, ifname in valid_attachments}
    listing = yield ListRecords()
    records, damaged = cached_attachments(listing)
    for name, problem in damaged:
        if name.startswith(netlist.name + "-"):
            yield Notice(text=f"cache file {name}: {problem}; not an attachment GC can act on")
    removed: list[tuple[str, str]] = []
    kept: list[tuple[str, str]] = []
    errors: list[CNIError] = []
    for record in records:
        if record.network != netlist.name:
            continue
        pair = (record.container_id, record.ifname)
        if pair in valid:
            kept.append(pair)
            continue
        rt = RuntimeConf(
            container_id=record.container_id,
            netns=record.netns,
            ifname=record.ifname,
            args=record.cni_args,
            capability_args=record.capability_args,
        )
        try:
            yield from delete(netlist, rt, opts)
            removed.append(pair)
        except CNIError as exc:
            errors.append(
                CNIError(f"failed to delete stale attachment {record.container_id} {record.ifname}: {exc.one_line()}")
            )
    plugin_gc = version.gte(netlist.cni_version or "0.1.0", "1.1.0")
    if plugin_gc:
        try:
            paths = yield Resolve(plugin_types=[p.type for p in netlist.plugins], plugin_path=opts.plugin_path)
        except CNIError as exc:
            errors.append(exc)
        else:
            env = request.plugin_env(
                "GC",
                container_id="",
                netns="",
                ifname="",
                cni_args=(),
                plugin_path=opts.plugin_path,
                base=opts.base_env,
                trace=opts.trace,
            )
            still_valid = request.encode_valid_attachments(sorted(valid))  # once, for every plugin
            for index, plugin in enumerate(netlist.plugins):
                stdin = request.gc_stdin(
                    plugin, name=netlist.name, cni_version=netlist.cni_version, valid_attachments=still_valid
                )
                req = _request(netlist, index=index, path=paths[index], command="GC", stdin=stdin, env=env)
                outcome = yield Exec(request=req)
                try:
                    invoke.raise_for_outcome(req, outcome)
                except PluginError as exc:
                    errors.append(exc)
    report = GCReport(removed=removed, kept=kept, plugin_gc=plugin_gc, errors=errors)
    if errors:
        raise MultiError(f"GC of network {netlist.name!r} had {len(errors)} failure(s)", errors, report=report)
    return report


def status(netlist: NetworkConfigList, opts: Options) -> Plan:
    """STATUS (spec 1.1.0): ask each plugin in order; the first error is the
    answer (codes 50/51 mean "not ready").  Below 1.1.0 there is nothing to ask."""
    if not version.gte(netlist.cni_version or "0.1.0", "1.1.0"):
        return None
    paths = yield Resolve(plugin_types=[p.type for p in netlist.plugins], plugin_path=opts.plugin_path)
    env = request.plugin_env(
        "STATUS",
        container_id="",
        netns="",
        ifname="",
        cni_args=(),
        plugin_path=opts.plugin_path,
        base=opts.base_env,
        trace=opts.trace,
    )
    requests = [
        _request(
            netlist,
            index=index,
            path=paths[index],
            command="STATUS",
            stdin=request.status_stdin(plugin, name=netlist.name, cni_version=netlist.cni_version),
            env=env,
        )
        for index, plugin in enumerate(netlist.plugins)
    ]
    yield from _run_all(requests)
    return None


def version_info(plugin_type: str, opts: Options) -> Plan:
    """VERSION: which spec versions a plugin supports (with Go's fallbacks).

    Returns:
        :class:`~libcni_py.version.PluginInfo`.
    """
    (path,) = yield Resolve(plugin_types=[plugin_type], plugin_path=opts.plugin_path)
    req = invoke.ExecRequest(
        plugin_type=plugin_type,
        path=path,
        command="VERSION",
        stdin=request.version_stdin(version.CURRENT),
        env=request.version_env(opts.base_env),
    )
    outcome = yield Exec(request=req)
    return invoke.decode_version_info(req, outcome)


def validate(netlist: NetworkConfigList, opts: Options) -> Plan:
    """Validate: every plugin exists and supports the list's version.

    Returns:
        The union of the plugins' enabled capabilities, sorted.

    Raises:
        MultiError: every problem found (all plugins are checked).
    """
    expected = netlist.cni_version or "0.1.0"
    errors: list[CNIError] = []
    for plugin in netlist.plugins:
        try:
            info = yield from version_info(plugin.type, opts)
        except CNIError as exc:
            errors.append(exc)
            continue
        if not info.supports(expected):
            errors.append(
                CNIError(
                    f'plugin "{plugin.type}" does not support config version "{expected}" '
                    f"(it supports {', '.join(info.supported_versions)})",
                    code=1,
                )
            )
    if errors:
        raise MultiError(f"{netlist.source}: network {netlist.name!r} is not valid", errors)
    return netlist.capabilities()
