"""The operations on a network -- ADD, CHECK, DEL, GC, STATUS, validate and
VERSION -- written once, without I/O.

Each operation is a generator (a *plan*) that yields **effects** -- "resolve
these plugin binaries", "run this plugin", "read/write/remove this cache
record", "take this lock" -- and receives their outcomes.  A driver performs
the effects: :mod:`libcni_py.drivers.blocking` with blocking calls for the one-shot
CLI, :mod:`libcni_py.drivers.async_trio` with trio for the library.  The sequence of
calls, the stdin and environment of each, when the cache is written and what
errors mean are decided here and nowhere else.

The semantics are Go libcni's (``libcni/api.go``), with these deliberate
differences, each tested:

* names (network, container ID, ifname) are validated before every operation,
  not only ADD, and every plugin binary is resolved before the first runs;
* the attachment is recorded before the first ADD plugin runs and after each
  one (see :mod:`libcni_py.core.record`), so a crash never leaves resources that no
  DEL or GC can find; the first and the last record are fsynced (they
  survive a power loss), the ones in between only replace it atomically;
* a per-attachment lock serialises ADD, CHECK and DEL of one attachment;
* CHECK without a cached result fails with a clear error instead of running
  plugins with a null ``prevResult``; DEL with a damaged cache file goes on
  without ``prevResult`` and removes the file only once the DEL succeeded;
* ADD of an attachment on record, or whose cache file name another
  attachment's record holds, is refused before any plugin runs; reading a
  record checks whose it is;
* DEL is best-effort across the chain (a missing or failing plugin does not
  stop the others; the record keeps what is left); plugin GC goes on plugin
  by plugin; a namespace that is gone or stale is not passed to DEL;
* DEL (and GC's DEL of a stale attachment) runs with the configuration
  recorded with the attachment when the current one differs, and can run
  from the record alone when the network's file is gone;
* GC deletes attachments whose cache file is damaged (by the file's name),
  sweeps temporary and lock files interrupted operations left, and reports
  what it removed.

See docs/reliability.md for each guarantee and its test.
"""

from __future__ import annotations

from ..errors import (
    CODE_UNKNOWN_CONTAINER,
    ArgsError,
    CacheError,
    CNIError,
    DecodeError,
    LeftoverError,
    LockUnavailableError,
    MultiError,
    NetnsError,
    PluginError,
    PluginNotFoundError,
    UnsupportedOperationError,
)
from . import args, names, ownership, result, version
from . import netconf as conf
from . import plugin_call as invoke
from . import plugin_input as request
from . import record as cache
from .effects import (
    Acquire,
    AcquireGC,
    Exec,
    ListRecords,
    Notice,
    ProbeLinks,
    ProbeNetns,
    ReadRecord,
    Release,
    RemoveRecord,
    Resolve,
    Sweep,
    WriteRecord,
)
from .inputs import Options, RuntimeConf
from .reports import GCReport

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Mapping, Sequence

    from .effects import Found, Plan
    from .netconf import NetworkConfigList
    from .record import AttachmentKey, CacheRecord
    from .result import AnyResult
    from .version import PluginInfo

__all__ = ["add", "check", "delete", "gc", "status", "validate", "version_info"]


# --------------------------------------------------------------------------
# helpers


def _check_names(netlist: NetworkConfigList, rt: RuntimeConf) -> AttachmentKey:
    return _check_key(netlist.name, rt, netlist.source)


def _check_key(network: str, rt: RuntimeConf, where: str, *, recording: bool = True) -> AttachmentKey:
    """Check every name and argument of an operation before anything runs.

    ``recording``: the operation writes a record, so the netns path, CNI_ARGS
    and capability args must be valid UTF-8 (JSON, as Go writes it, would
    keep U+FFFD instead; see :func:`libcni_py.core.names.check_utf8`).  DEL
    writes none and passes them to the plugins byte for byte: an attachment
    Go added with such a path can still be deleted.
    """
    names.check_network_name(network, where=where)
    names.check_container_id(rt.container_id, where=where)
    names.check_ifname(rt.ifname, where=where)
    args.check_cni_args(rt.args)
    if "\0" in rt.netns:
        raise ArgsError("netns: the path has a NUL byte", hint="give the path of a network namespace")
    if not recording:
        return cache.AttachmentKey(network=network, container_id=rt.container_id, ifname=rt.ifname)
    names.check_utf8("netns: the path", rt.netns)
    for index, (arg_key, value) in enumerate(rt.args, start=1):
        names.check_utf8(f"CNI_ARGS: pair {index}", f"{arg_key}={value}")
    if names.non_utf8_string(rt.capability_args) is not None:
        # never quoted: capability arguments may carry secrets
        raise ArgsError(
            "capability args: a string is not valid UTF-8",
            hint="plugins and the cache record would get U+FFFD in its place; give valid UTF-8",
        )
    return cache.AttachmentKey(network=network, container_id=rt.container_id, ifname=rt.ifname)


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
    rt: RuntimeConf | None = None,
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
        redact=request.capability_strings(plugin, rt.capability_args) if rt is not None else (),
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
    try:
        parsed = result.parse(record.result, result.declared_version(record.result))
        return result.convert(parsed, to_version)
    except DecodeError as exc:
        raise CacheError(path, f"holds a result that cannot be used: {exc.msg}") from None


def _run_all(requests: Sequence[invoke.ExecRequest]) -> Plan[None]:
    for req in requests:
        outcome = yield from Exec(request=req)
        invoke.raise_for_outcome(req, outcome)


# --------------------------------------------------------------------------
# the operations


def add(netlist: NetworkConfigList, rt: RuntimeConf, opts: Options) -> Plan[AnyResult]:
    """ADD: run the plugins in order, each given the previous one's result,
    and cache the final result.

    An attachment that is already on record is not added again: the record
    of a working attachment is what its CHECK and DEL need, and a second ADD
    that fails ("eth0 already exists") would replace it with a failed one.
    Go libcni runs the plugins again; here the ADD is refused before any
    plugin runs, as is an ADD whose cache file name is taken by another
    attachment (names may hold ``-``: container ``x`` with interface ``a-b``
    and container ``x-a`` with interface ``b`` share a file).  A record that
    cannot be read or decoded holds nothing a DEL could use; it is replaced,
    with a notice.

    Returns (as the generator's value) the last plugin's result, in the
    version that plugin answered in.

    Raises:
        InvalidNameError, PluginNotFoundError: before anything runs.
        NetnsError: the namespace path does not exist (probed first, before
            anything runs).
        ArgsError: the attachment is on record already, or its cache file
            name is another attachment's (before any plugin runs).
        PluginError: the first plugin that failed (the chain stops there; as
            in Go, undoing it is the caller's DEL).
    """
    key = _check_names(netlist, rt)
    if rt.netns and (yield from ProbeNetns(path=rt.netns)) == "gone":
        # Plugins given a namespace that is not there fail, but some only
        # after making things on the host (Debian's bridge: its bridge).
        raise NetnsError(
            f"network namespace {rt.netns} does not exist",
            hint=f"create it first (ip netns add {rt.netns.rsplit('/', 1)[-1]}, or cnitool netns add); "
            "no plugin was run",
        )
    paths = yield from Resolve(plugin_types=[p.type for p in netlist.plugins], plugin_path=opts.plugin_path)
    yield from Acquire(key=key)
    yield from _refuse_existing(key)
    total = len(netlist.plugins)
    # Recorded before anything runs: a crash from here on leaves a record
    # that DEL and GC find.
    yield from WriteRecord(
        key=key, data=_record(netlist, rt, None, cache.Progress(state="adding", done=0, plugins=total))
    )
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
        req = _request(netlist, index=index, path=paths[index], command="ADD", stdin=stdin, env=env, rt=rt)
        outcome = yield from Exec(request=req)
        try:
            prev = invoke.decode_result(req, outcome)
        except PluginError:
            yield from WriteRecord(
                key=key, data=_record(netlist, rt, prev, cache.Progress(state="failed", done=index, plugins=total))
            )
            raise
        if index + 1 < total:
            # A checkpoint: atomic, not fsynced.  After a power loss the durable
            # record written before the first plugin (or, with luck, this one)
            # is there, and DEL or GC undoes the whole chain from either.
            yield from WriteRecord(
                key=key,
                data=_record(netlist, rt, prev, cache.Progress(state="adding", done=index + 1, plugins=total)),
                durable=False,
            )
    yield from WriteRecord(key=key, data=_record(netlist, rt, prev, None))
    yield from Release(key=key)
    assert prev is not None  # a list has at least one plugin (netconf refuses one without)
    return prev


def _refuse_existing(key: AttachmentKey) -> Plan[None]:
    """Raise if ``key``'s cache file holds a usable record: the attachment's
    own (it exists: DEL it first) or another attachment's (the names collide).

    Runs with the attachment's lock held, so no ADD or DEL of ours comes in
    between this look and the first write.
    """
    where = f"cache record {key.filename}"
    try:
        record = yield from _read_record(key, where)
    except CacheError as exc:
        if not exc.path.endswith(key.filename):
            raise  # the cache directory itself cannot be used: nothing could be recorded
        yield from Notice(text=f"{exc.one_line()}; it holds nothing a DEL could use, replacing it")
        return
    if record is None:
        return
    attachment = f"{key.network}/{key.container_id}/{key.ifname}"
    other = cache.owner(record, key)
    if other and cache.shares_file(record, key):
        raise ArgsError(
            f"cannot add {attachment}: its cache file name {key.filename} is taken by the attachment of {other}",
            hint="names holding '-' can make the same file name: use another container ID or interface name; "
            "nothing was run",
        )
    if other:
        # A misplaced record (names that do not make its file's name): what
        # it holds is not this attachment's, and DEL treats it as damaged.
        yield from Notice(text=f"{where} holds the record of {other}, not of this attachment; replacing it")
        return
    state = "complete" if record.progress is None else record.progress.describe()
    raise ArgsError(
        f"attachment {attachment} exists ({where}: {state}); DEL it first",
        hint="an ADD of an attachment on record would damage its record; nothing was run",
    )


def _read_record(key: AttachmentKey, store_path: str) -> Plan[CacheRecord | None]:
    data = yield from ReadRecord(key=key)
    if data is None:
        return None
    return cache.decode_record(data, store_path)


def check(netlist: NetworkConfigList, rt: RuntimeConf, opts: Options) -> Plan[None]:
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
    paths = yield from Resolve(plugin_types=[p.type for p in netlist.plugins], plugin_path=opts.plugin_path)
    yield from Acquire(key=key)
    where = f"cache record of network {netlist.name!r}, container {rt.container_id!r}, interface {rt.ifname!r}"
    record = yield from _read_record(key, where)
    if record is None:
        # nothing to guard: drop the lock file too, so CHECKs of unknown
        # attachments leave no files behind
        yield from Release(key=key, forget=True)
        raise ArgsError(  # the attachment named is not on record: bad arguments (exit 3), as ADD of one that is
            f"nothing to check: no {where}",
            code=CODE_UNKNOWN_CONTAINER,
            hint="was the attachment added with this cache dir (--cache-dir)?",
        )
    other = cache.owner(record, key)
    if other:
        raise ArgsError(
            f"nothing to check: the cache file {key.filename} holds the record of {other}, not of this attachment",
            code=CODE_UNKNOWN_CONTAINER,
            hint="was the attachment added with this cache dir (--cache-dir)?",
        )
    if record.progress is not None:
        raise CNIError(
            f"the {where} is {_unfinished(record.progress)}",
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
            rt=rt,
        )
        for index, plugin in enumerate(netlist.plugins)
    ]
    yield from _run_all(requests)
    yield from Release(key=key)
    return None


def _unfinished(progress: cache.Progress) -> str:
    """What an unfinished record is from, for a person."""
    if progress.state == cache.DELETING:
        return f"from a DEL that did not finish (still to delete: {', '.join(t for _, t in progress.remaining)})"
    return f"from an ADD that did not complete ({progress.state}, {progress.done} of {progress.plugins} plugins done)"


def _recorded_config(
    record: CacheRecord | None, key: AttachmentKey, given: NetworkConfigList | None
) -> tuple[NetworkConfigList | None, str]:
    """The configuration an attachment was added with, from its record.

    Returns:
        ``(netlist, "")``, or ``(None, why)`` when the record has none that
        can be used (``why`` is "" when there is simply no record).  Plugins
        that ``given`` aggregated from ``<confdir>/<name>/*.conf`` are kept:
        like Go's, the record holds only the list file's bytes.
    """
    if record is None or record.legacy:
        return None, ""
    where = f"configuration cached in {key.filename}"
    if not record.config:
        return None, f"cache record {key.filename} holds no configuration"
    if (record.network, record.container_id, record.ifname) != (key.network, key.container_id, key.ifname):
        return None, f"cache record {key.filename} is for another attachment"
    try:
        recorded = conf.parse_conflist(record.config, where)
    except CNIError as exc:
        return None, exc.one_line()
    if recorded.name != key.network:
        return None, f"{where}: name: {recorded.name!r} is not the network {key.network!r}"
    if given is not None and not recorded.load_only_inlined_plugins:
        try:
            inline = len(conf.parse_conflist(given.config_bytes, given.source, strict=False).plugins)
        except CNIError:
            inline = len(given.plugins)
        recorded = recorded.replace(plugins=recorded.plugins + given.plugins[inline:])
    return recorded, ""


def _resolve_each(plugins: Sequence[conf.PluginConf], opts: Options) -> Plan[tuple[Found, ...]]:
    """Resolve every plugin's binary, going past missing ones: each is its
    path, or the :class:`~libcni_py.errors.PluginNotFoundError` that says it
    is missing.  One look-up for the whole chain when nothing is missing (the
    usual case), one per plugin otherwise.  DEL and plugin GC are best-effort
    across the chain: one plugin that cannot run must not keep the others
    (the IPAM plugin releasing the address, say) from running."""
    types = [p.type for p in plugins]
    try:
        paths: tuple[Found, ...] = yield from Resolve(plugin_types=types, plugin_path=opts.plugin_path)
        return paths
    except PluginNotFoundError:
        pass
    found: list[Found] = []
    for plugin_type in types:
        try:
            (path,) = yield from Resolve(plugin_types=[plugin_type], plugin_path=opts.plugin_path)
            found.append(path)
        except PluginNotFoundError as exc:
            found.append(exc)
    return tuple(found)


def _config_for_delete(
    given: NetworkConfigList | None, record: CacheRecord | None, key: AttachmentKey, opts: Options
) -> Plan[tuple[NetworkConfigList, tuple[Found, ...]]]:
    """Choose the configuration a DEL runs with, and resolve its plugins.

    DEL undoes what ADD did, so it runs the plugins ADD ran, with the
    configuration they were given: the one recorded with the attachment when
    it differs from ``given`` (the conf file changed since), ``given`` when
    they are the same or nothing usable was recorded.  When a plugin of the
    recorded configuration is no longer installed, ``given`` is used instead
    (a DEL that can never succeed would leave the attachment stuck).

    Returns:
        The configuration, and for each of its plugins its path or the
        error that says it is missing (see :func:`_resolve_each`).

    Raises:
        CNIError: only a network name was given and no configuration was
            recorded.
    """
    recorded, problem = _recorded_config(record, key, given)
    if problem:
        yield from Notice(text=f"{problem}; it cannot be used to delete")
    if given is None:
        if recorded is None:
            raise CNIError(
                f"cannot delete container {key.container_id!r} interface {key.ifname!r} from network "
                f"{key.network!r}: the network's configuration is not known and no usable cache record "
                "holds it",
                hint="restore the network's file in the conf dir, then run DEL again",
            )
        return recorded, (yield from _resolve_each(recorded.plugins, opts))
    if recorded is None or recorded.config_bytes == given.config_bytes or opts.delete_with == "current":
        if recorded is not None and recorded.config_bytes != given.config_bytes:
            yield from Notice(
                text=f"{given.source} changed since {key.filename} was added; deleting with the current "
                "configuration, as asked: what only the recorded one's plugins made is not undone"
            )
        return given, (yield from _resolve_each(given.plugins, opts))
    try:
        paths = yield from Resolve(plugin_types=[p.type for p in recorded.plugins], plugin_path=opts.plugin_path)
    except PluginNotFoundError as exc:
        yield from Notice(
            text=f"{given.source} changed since {key.filename} was added, and the configuration it was added "
            f"with cannot be run ({exc.msg}); deleting with the current one: what the missing plugin made "
            "is not undone"
        )
        return given, (yield from _resolve_each(given.plugins, opts))
    yield from Notice(
        text=f"{given.source} changed since {key.filename} was added "
        f"(plugins then: {', '.join(p.type for p in recorded.plugins)}; now: "
        f"{', '.join(p.type for p in given.plugins)}); deleting with the configuration it was added with"
    )
    return recorded, paths


def _netns_for_delete(rt: RuntimeConf) -> Plan[RuntimeConf]:
    """``rt``, with no netns when its namespace is gone or stale.

    The spec makes ``CNI_NETNS`` optional for DEL for this case: plugins
    then release what lives outside the namespace (the address, iptables
    rules) and skip what was inside it, which went with the namespace.
    Given a path that is not a namespace any more, Debian's loopback and
    bridge fail instead ("unknown FS magic"), and nothing is released.
    """
    if not rt.netns:
        return rt
    state = yield from ProbeNetns(path=rt.netns)
    if state not in ("gone", "stale"):
        return rt
    yield from Notice(text=f"namespace {rt.netns} is {state}: DEL runs with CNI_NETNS unset")
    return rt.replace(netns="")


def _delete_order(record: CacheRecord | None, chosen: NetworkConfigList, where: str) -> Plan[list[int]]:
    """Which plugins a DEL runs, last first: all of them, or -- when the
    record is from a DEL that did not finish and the DEL runs with the same
    configuration -- only those whose DEL has not succeeded yet.

    Rerunning the others would be harmless for plugins that follow the spec
    (DEL must tolerate being called again), but it is not needed, and a
    plugin whose DEL succeeded may be gone by now.
    """
    every = list(reversed(range(len(chosen.plugins))))
    progress = record.progress if record is not None else None
    if record is None or progress is None:
        return every
    if progress.state != cache.DELETING:
        yield from Notice(text=f"{where} is {_unfinished(progress)}; deleting all of it")
        return every
    types = [p.type for p in chosen.plugins]
    same = (
        record.config == chosen.config_bytes
        and progress.plugins == len(types)
        and all(0 <= i < len(types) and types[i] == t for i, t in progress.remaining)
    )
    if not same:
        yield from Notice(
            text=f"{where} is {_unfinished(progress)}, but this DEL runs another configuration: "
            "running every plugin's DEL"
        )
        return every
    left = {i for i, _ in progress.remaining}
    yield from Notice(text=f"{where} is {_unfinished(progress)}; running only those")
    return [i for i in every if i in left]


def delete(netlist: NetworkConfigList | str, rt: RuntimeConf, opts: Options) -> Plan[None]:
    """DEL: run the plugins in reverse order, each given the cached ADD
    result (from spec 0.4.0), then remove the cache record.

    The configuration is the one the attachment was added with when its
    record holds one that differs from ``netlist`` (see
    :func:`_config_for_delete`); ``netlist`` may also be just the network's
    name, when its conf file is gone: the recorded configuration is then the
    only one.  Each such choice is announced with a notice.

    When the namespace is gone or stale, the plugins run without one (see
    :func:`_netns_for_delete`).

    A record that cannot be used (empty, truncated, unparsable, a symbolic
    link, or holding another attachment) does not stop the DEL: it goes on
    without ``prevResult``, says so with a notice, and the record is removed
    once every plugin succeeded.  A record of another attachment whose names
    make the same file name (a collision) is left in place.

    DEL is best-effort across the chain: a plugin that is missing or fails
    does not stop the others.  The record then stays, marked with the
    plugins still to delete (``libcniPy.state`` "deleting"); the next DEL
    or GC runs only those (see :func:`_delete_order`).  A record that cannot
    be removed after the plugins succeeded is reported with a notice, not as
    a failure: what the attachment made is gone, and a later DEL or GC finds
    the record again.

    Nor does a lock that cannot be taken because its file cannot be created
    (a read-only cache directory, one of another user) stop the DEL: it
    goes on without the lock, with a notice.

    Raises:
        PluginNotFoundError, PluginError: the one plugin whose DEL did not
            succeed; MultiError: several.
    """
    given = None if isinstance(netlist, str) else netlist
    name = netlist if isinstance(netlist, str) else netlist.name
    key = _check_key(name, rt, given.source if given is not None else "", recording=False)
    try:
        yield from Acquire(key=key)
    except LockUnavailableError as exc:
        # Read-only or damaged cache state must not keep DEL from running the
        # plugins; a lock file nobody can create is one nobody else holds here.
        yield from Notice(text=f"{exc.one_line()}; deleting without the attachment's lock")
    where = f"cache record {key.filename}"
    record: CacheRecord | None = None
    on_file = False  # a file of this attachment is there (usable or not)
    collided = False  # the file is another attachment's, whose names make the same file name
    try:
        record = yield from _read_record(key, where)
        on_file = record is not None
    except CacheError as exc:
        on_file = True
        yield from Notice(text=f"{exc}; deleting without prevResult")
    other = cache.owner(record, key) if record is not None else ""
    if record is not None and other:
        if cache.shares_file(record, key):
            on_file, collided = False, True
            yield from Notice(
                text=f"{where} is the record of {other}, whose names make the same file name; deleting "
                "without it, and leaving it in place"
            )
        else:
            yield from Notice(text=f"{where} holds the record of {other}; deleting without prevResult")
        record = None
    run_rt = yield from _netns_for_delete(rt)
    chosen, paths = yield from _config_for_delete(given, record, key, opts)
    order = yield from _delete_order(record, chosen, where)
    cached: AnyResult | None = None
    if record is not None and version.gte(chosen.cni_version, "0.4.0"):
        try:
            cached = _cached_result(record, chosen.cni_version, where)
        except CacheError as exc:
            yield from Notice(text=f"{exc}; deleting without prevResult")
    env = _env("DEL", run_rt, opts)
    failed: list[tuple[int, CNIError]] = []
    for index in order:
        path = paths[index]
        if isinstance(path, CNIError):
            failed.append((index, path))
            continue
        req = _request(
            chosen,
            index=index,
            path=path,
            command="DEL",
            stdin=request.plugin_stdin(
                chosen.plugins[index],
                name=chosen.name,
                cni_version=chosen.cni_version,
                prev_result=cached,
                capability_args=rt.capability_args,
            ),
            env=env,
            rt=rt,
        )
        outcome = yield from Exec(request=req)
        try:
            invoke.raise_for_outcome(req, outcome)
        except PluginError as exc:
            failed.append((index, exc))
    if failed:
        yield from _keep_what_remains(key, chosen, rt, record, failed, on_file=on_file)
        if len(failed) == 1:
            raise failed[0][1]
        raise MultiError(
            f"DEL of {key.network}/{key.container_id}/{key.ifname}: {len(failed)} plugins did not finish",
            [exc for _, exc in failed],
        )
    if on_file and record is not None and record.progress is not None and record.progress.state == cache.DELETING:
        left = yield from _left_behind(key, record, run_rt, where)
        if left:
            yield from _keep_leftover(key, chosen=chosen, rt=rt, record=record, order=order, left=left)
            raise LeftoverError(
                f"DEL of {key.network}/{key.container_id}/{key.ifname}: every plugin's DEL succeeded, but "
                f"{', '.join(left)} {'is' if len(left) == 1 else 'are'} still in {run_rt.netns}",
                hint="a plugin forgot what to undo when an earlier DEL failed, as Flannel's plugin does from "
                f"v1.2.0; {where} is kept. Delete the namespace (its interfaces go with it), DEL again, then "
                "release what the IPAM plugin still holds for this container",
            )
    if on_file:
        try:
            yield from RemoveRecord(key=key)
        except CacheError as exc:
            yield from Notice(
                text=f"{exc.one_line()}; the attachment is deleted but its cache record is not "
                "(a later DEL or GC finds it)"
            )
    yield from Release(key=key, forget=not collided)
    return None


def _sandbox_interfaces(record: CacheRecord) -> list[str]:
    """The interfaces the attachment put in the pod's namespace, as its
    result says: those with a ``sandbox``.  (Not ``CNI_IFNAME`` by itself:
    a chain may not make it, and the namespace may hold one of that name
    that is not the chain's.)"""
    found: list[str] = []
    res = record.result or {}
    for iface in res.get("interfaces") or ():
        name = iface.get("name") if isinstance(iface, dict) and iface.get("sandbox") else None
        if isinstance(name, str) and name not in found:
            found.append(name)
    return found


def _left_behind(key: AttachmentKey, record: CacheRecord, run_rt: RuntimeConf, where: str) -> Plan[tuple[str, ...]]:
    """After a retried DEL (the record says an earlier one did not finish)
    whose plugins all succeeded: the interfaces of the attachment still in
    its namespace.

    Plugins may answer a DEL with success without undoing anything when
    they have forgotten what to undo (Flannel's plugin from v1.2.0 removes
    its saved delegate configuration even when the delegate's DEL failed).
    The namespace is the one place where that shows; when it is gone, its
    interfaces went with it, but what the plugins made outside it may not
    have: the notice says what the result held.
    """
    if not run_rt.netns:
        progress = record.progress
        if progress is not None and progress.leftover:
            ips = [str(ip.get("address")) for ip in (record.result or {}).get("ips") or () if isinstance(ip, dict)]
            held = f" (its result held {', '.join(ips)}: an address its IPAM plugin may still reserve)" if ips else ""
            yield from Notice(
                text=f"{where} said {', '.join(progress.leftover)} stayed in the namespace after an earlier DEL; "
                f"the namespace is gone and took {'it' if len(progress.leftover) == 1 else 'them'} along, but what "
                f"the plugins made outside it may remain{held}"
            )
        return ()
    inside = _sandbox_interfaces(record)
    if not inside:
        return ()
    found = yield from ProbeLinks(path=run_rt.netns, names=inside)
    return tuple(found or ())


def _keep_leftover(
    key: AttachmentKey,
    *,
    chosen: NetworkConfigList,
    rt: RuntimeConf,
    record: CacheRecord,
    order: Sequence[int],
    left: Sequence[str],
) -> Plan[None]:
    """Keep the record of an attachment whose DEL succeeded without undoing
    it (see :func:`_left_behind`), state "deleting", with the plugins run and
    what is left, so that DEL, GC and ``cnitool cache ls`` keep finding it."""
    total = len(chosen.plugins)
    data = cache.encode_record(
        container_id=rt.container_id,
        ifname=rt.ifname,
        network=chosen.name,
        config=chosen.config_bytes,
        netns=record.netns or rt.netns,
        cni_args=rt.args,
        capability_args=rt.capability_args,
        result=record.result,
        progress=cache.Progress(
            state=cache.DELETING,
            done=total - len(order),
            plugins=total,
            remaining=tuple(sorted((i, chosen.plugins[i].type) for i in order)),
            leftover=tuple(left),
        ),
    )
    try:
        yield from WriteRecord(key=key, data=data)
    except CacheError as exc:
        yield from Notice(text=f"{exc.one_line()}; the record of what is left could not be kept")


def _keep_what_remains(
    key: AttachmentKey,
    chosen: NetworkConfigList,
    rt: RuntimeConf,
    record: CacheRecord | None,
    failed: Sequence[tuple[int, CNIError]],
    *,
    on_file: bool,
) -> Plan[None]:
    """After a DEL some of whose plugins did not succeed: mark the record
    with what is left to delete, and say so.  Without a file of this
    attachment (there was no record, or it is another attachment's) nothing
    is written: a DEL of something never added must not create records."""
    left = sorted((index, chosen.plugins[index].type) for index, _ in failed)
    names = ", ".join(t for _, t in left)
    total = len(chosen.plugins)
    if not on_file:
        yield from Notice(
            text=f"DEL did not finish: still to delete: {names}; there is no record of it to keep that in"
        )
        return
    data = cache.encode_record(
        container_id=rt.container_id,
        ifname=rt.ifname,
        network=chosen.name,
        config=chosen.config_bytes,
        netns=record.netns if record is not None else rt.netns,
        cni_args=rt.args,
        capability_args=rt.capability_args,
        result=record.result if record is not None else None,
        progress=cache.Progress(state=cache.DELETING, done=total - len(left), plugins=total, remaining=tuple(left)),
    )
    try:
        yield from WriteRecord(key=key, data=data)
    except CacheError as exc:
        yield from Notice(text=f"DEL did not finish (still to delete: {names}), and {exc.one_line()}")
        return
    others = "the other plugins' DEL succeeded" if len(left) < total else "no plugin's DEL succeeded"
    yield from Notice(
        text=f"DEL did not finish: still to delete: {names}; {others}; cache record "
        f"{key.filename} keeps the rest for the next DEL or GC"
    )


def gc(
    netlist: NetworkConfigList | str,
    valid_attachments: Sequence[tuple[str, str]],
    opts: Options,
    *,
    force: bool = False,
    live_sandboxes: Collection[str] | None = None,
) -> Plan[GCReport]:
    """GC: DEL every cached attachment of this network that is not in
    ``valid_attachments`` and is proven dead, then, from spec 1.1.0, send GC
    to every plugin with the attachments kept.

    The cache dir is shared with other runtimes, so an attachment is deleted
    only when proven dead (:func:`libcni_py.core.ownership.judge`): its namespace
    (:func:`libcni_py.core.record.record_netns`, probed with :class:`ProbeNetns`)
    is gone or no longer a namespace, or ``live_sandboxes`` (what a CRI
    runtime lists) is given and the attachment looks like a CRI sandbox that
    is not in it.  One whose namespace is alive, or whose liveness cannot be
    told, is kept, and the report says why.  ``force``: Go's GC -- every
    attachment not valid (nor listed by the CRI runtime) is deleted.

    Each stale attachment is deleted as :func:`delete` deletes it, with its
    cached netns and arguments and the configuration it was added with (Go
    uses the current configuration; when plugins were removed from the list
    since, that leaks what they made).  ``netlist`` may be just the network's
    name, when its conf file is gone: stale attachments are then deleted with
    their recorded configurations, and no plugin is sent GC.

    Cache files of the network that cannot be used (empty, truncated, not a
    regular file, holding invalid names) are not skipped: the attachment is
    taken from the file's name; its liveness cannot be told, so it is kept
    unless ``force`` (then deleted without netns, arguments or ``prevResult``,
    and the file goes with it).  At the end,
    temporary and lock files that crashed writers left for this network are
    removed.  Each of these is announced with a notice.

    Failures are collected, not fatal; the report lists them, and the plan
    raises :class:`~libcni_py.errors.MultiError` at the end if there were any.

    Returns:
        :class:`GCReport`.
    """
    given = None if isinstance(netlist, str) else netlist
    name = netlist if isinstance(netlist, str) else netlist.name
    if given is not None and given.disable_gc:
        return GCReport(skipped=True)
    names.check_network_name(name, where=given.source if given is not None else "")
    valid = {(cid, ifname) for cid, ifname in valid_attachments}
    try:
        yield from AcquireGC()
    except LockUnavailableError as exc:
        yield from Notice(text=f"{exc.one_line()}; collecting without the GC lock")
    try:
        listing = yield from ListRecords()
    except CacheError as exc:
        yield from Notice(text=f"{exc.one_line()}; no cached attachment can be looked at")
        listing = []
    records, damaged = cache.cached_attachments(listing)
    stale: list[RuntimeConf] = []
    kept: list[tuple[str, str]] = []
    why: list[tuple[str, str, str]] = []
    for record in records:
        if record.network != name:
            continue
        pair = (record.container_id, record.ifname)
        if pair in valid:
            kept.append(pair)
            why.append((*pair, "listed as valid"))
            continue
        netns = cache.record_netns(record)
        found_state = yield from ProbeNetns(path=netns)
        verdict = ownership.judge(
            record.container_id,
            netns,
            found_state,
            ownership.owner_of(record.container_id, netns, record.cni_args),
            live_sandboxes=live_sandboxes,
            force=force,
        )
        # A DEL already began on it (its record says so): whoever owns the
        # attachment asked for it to go; finishing that harms nobody.
        deleting = record.progress is not None and record.progress.state == "deleting"
        if not verdict.dead and not deleting:
            kept.append(pair)
            why.append((*pair, verdict.reason))
            continue
        # a file that is no longer a namespace is not handed to plugins
        # (they fail on it: "unknown FS magic"); DEL allows none
        stale.append(cache.runtime_conf(record, netns="" if found_state == "stale" else None))
    for filename, problem in damaged:
        candidates = cache.keys_from_filename(filename, network=name)
        if len(candidates) != 1:
            if filename.startswith(name + "-"):
                # with several readings, each is kept valid: plugins must not release any of them
                maybe = [(k.container_id, k.ifname) for k in candidates]
                kept += maybe
                why += [(*pair, f"its damaged record {filename} may be this attachment's") for pair in maybe]
                yield from Notice(
                    text=f"cache file {filename} {problem}; cannot tell which attachment it is"
                    + (f" ({' or '.join(f'{c}/{i}' for c, i in maybe)})" if maybe else "")
                    + ", left alone"
                )
            continue
        found = candidates[0]
        pair = (found.container_id, found.ifname)
        if pair in valid or not force:
            reason = "listed as valid" if pair in valid else "liveness unknown: its record cannot be read"
            yield from Notice(text=f"cache file {filename} {problem}; kept {pair[0]}/{pair[1]}: {reason}")
            kept.append(pair)
            why.append((*pair, reason))
            continue
        yield from Notice(
            text=f"cache file {filename} {problem}; deleting attachment {pair[0]}/{pair[1]} "
            "without its netns, arguments or prevResult"
        )
        stale.append(RuntimeConf(container_id=pair[0], ifname=pair[1]))
    valid.update(kept)  # plugins must not release what GC keeps
    removed: list[tuple[str, str]] = []
    errors: list[CNIError] = []
    for rt in stale:
        try:
            yield from delete(netlist, rt, opts)
            removed.append((rt.container_id, rt.ifname))
        except CNIError as exc:
            errors.append(
                CNIError(f"failed to delete stale attachment {rt.container_id} {rt.ifname}: {exc.one_line()}")
            )
    try:
        swept_tmp, swept_locks = yield from Sweep(network=name)
    except CacheError as exc:
        yield from Notice(text=f"{exc.one_line()}; leftover temporary and lock files not removed")
    else:
        if swept_tmp or swept_locks:
            yield from Notice(
                text=f"removed {swept_tmp} temporary and {swept_locks} lock file(s) that interrupted "
                f"operations on network {name!r} left in the cache directory"
            )
    plugin_gc = given is not None and version.gte(given.cni_version or "0.1.0", "1.1.0")
    if given is not None and plugin_gc:
        errors.extend((yield from _plugin_gc(given, valid, opts)))
    report = GCReport(
        removed=tuple(removed), kept=tuple(kept), kept_reasons=tuple(why), plugin_gc=plugin_gc, errors=tuple(errors)
    )
    if errors:
        raise MultiError(f"GC of network {name!r} had {len(errors)} failure(s)", errors, report=report)
    return report


def _network_env(command: str, opts: Options) -> dict[str, str]:
    """The environment of a command for the whole network (GC, STATUS): no
    container, namespace, interface or CNI_ARGS."""
    return request.plugin_env(
        command,
        container_id="",
        netns="",
        ifname="",
        cni_args=(),
        plugin_path=opts.plugin_path,
        base=opts.base_env,
        trace=opts.trace,
    )


def _plugin_gc(netlist: NetworkConfigList, valid: Iterable[tuple[str, str]], opts: Options) -> Plan[list[CNIError]]:
    """Send GC to every plugin of the list, in order, plugin by plugin: one
    that is missing or fails does not keep the others from theirs (as Go
    libcni does).  Returns what went wrong."""
    errors: list[CNIError] = []
    try:
        paths = yield from _resolve_each(netlist.plugins, opts)
    except CNIError as exc:  # an unsafe plugin directory: nothing may run from it
        return [exc]
    env = _network_env("GC", opts)
    still_valid = request.encode_valid_attachments(sorted(valid))  # once, for every plugin
    for index, plugin in enumerate(netlist.plugins):
        path = paths[index]
        if isinstance(path, CNIError):
            errors.append(path)
            continue
        stdin = request.gc_stdin(
            plugin, name=netlist.name, cni_version=netlist.cni_version, valid_attachments=still_valid
        )
        req = _request(netlist, index=index, path=path, command="GC", stdin=stdin, env=env)
        outcome = yield from Exec(request=req)
        try:
            invoke.raise_for_outcome(req, outcome)
        except PluginError as exc:
            errors.append(exc)
    return errors


def status(netlist: NetworkConfigList, opts: Options) -> Plan[None]:
    """STATUS (spec 1.1.0): ask each plugin in order; the first error is the
    answer (codes 50/51 mean "not ready").  Below 1.1.0 there is nothing to ask."""
    if not version.gte(netlist.cni_version or "0.1.0", "1.1.0"):
        return None
    paths = yield from Resolve(plugin_types=[p.type for p in netlist.plugins], plugin_path=opts.plugin_path)
    env = _network_env("STATUS", opts)
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


def version_info(plugin_type: str, opts: Options) -> Plan[PluginInfo]:
    """VERSION: which spec versions a plugin supports (with Go's fallbacks).

    Returns:
        :class:`~libcni_py.core.version.PluginInfo`.
    """
    (path,) = yield from Resolve(plugin_types=[plugin_type], plugin_path=opts.plugin_path)
    req = invoke.ExecRequest(
        plugin_type=plugin_type,
        path=path,
        command="VERSION",
        stdin=request.version_stdin(version.CURRENT),
        env=request.version_env(opts.base_env),
    )
    outcome = yield from Exec(request=req)
    return invoke.decode_version_info(req, outcome)


def validate(netlist: NetworkConfigList, opts: Options) -> Plan[tuple[str, ...]]:
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
