"""What each plugin call receives: its stdin (the request configuration) and
its environment.  Pure functions, byte-exact with Go libcni.

Go builds the stdin with ``InjectConf`` -- decode the plugin object into a
map, set keys, ``json.Marshal`` -- once for ``name``/``cniVersion``/
``prevResult`` and, when capability arguments apply, a second time for
``runtimeConfig``.  The second pass re-decodes the first pass's output, so
``prevResult`` keeps Go's struct field order only when no ``runtimeConfig``
is added, and has sorted keys otherwise.  :func:`plugin_stdin` reproduces
that, quirk included, so plugins see exactly the bytes Go would send.
"""

from __future__ import annotations

from ..errors import ArgsError
from . import gojson, result
from .args import format_cni_args
from .gojson import Struct
from .value import Value

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

    from .netconf import PluginConf
    from .result import AnyResult

__all__ = [
    "ENV_VARIABLES",
    "TraceContext",
    "capability_split",
    "capability_strings",
    "encode_valid_attachments",
    "gc_stdin",
    "parse_baggage",
    "parse_trace_context",
    "plugin_env",
    "plugin_stdin",
    "status_stdin",
    "version_env",
    "version_stdin",
]


#: The variables :func:`plugin_env` sets over the runtime's environment, in
#: the order Go's ``Args.AsEnv`` lists them (then the trace context's).
ENV_VARIABLES = (
    "CNI_COMMAND",
    "CNI_CONTAINERID",
    "CNI_NETNS",
    "CNI_ARGS",
    "CNI_IFNAME",
    "CNI_PATH",
    "TRACEPARENT",
    "TRACESTATE",
    "BAGGAGE",
)


class TraceContext(Value):
    """A W3C trace context (and baggage) to hand plugins as ``TRACEPARENT``,
    ``TRACESTATE`` and ``BAGGAGE``, as Go libcni's ``pkg/invoke`` does when
    its context carries a valid span (containernetworking/cni PR #1173, on
    the main branch since November 2025, in no release yet: 1.3.0 passes
    none of them)."""

    traceparent: str
    tracestate: str = ""
    baggage: str = ""


_HEX = frozenset("0123456789abcdef")
_TRACEPARENT_FORM = "<2 hex version>-<32 hex trace id>-<16 hex parent id>-<2 hex flags>, lower case"
#: W3C Trace Context: at most 32 list members in ``tracestate``.
_MAX_TRACESTATE_MEMBERS = 32
#: W3C Baggage limits as OpenTelemetry-Go's ``baggage.Parse`` enforces them.
_MAX_BAGGAGE_MEMBERS = 64
_MAX_BAGGAGE_BYTES = 8192
#: RFC 7230 token characters (a baggage key or property name).
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
#: W3C baggage-octet: printable ASCII but space, '"', ',', ';' and '\\' (and '%' starts an escape).
_BAGGAGE_OCTETS = frozenset(chr(c) for c in range(0x21, 0x7F)) - frozenset('",;\\')


def _is_hex(text: str, size: int) -> bool:
    return len(text) == size and all(ch in _HEX for ch in text)


def _tracestate_key_ok(key: str) -> bool:
    tenant, at, system = key.partition("@")
    allowed = _HEX | frozenset("ghijklmnopqrstuvwxyz_-*/")

    def simple(text: str, limit: int, first: str) -> bool:
        return 0 < len(text) <= limit and text[0] in first and all(ch in allowed for ch in text)

    digits_lower = "0123456789abcdefghijklmnopqrstuvwxyz"
    if not at:
        return simple(key, 256, digits_lower)
    return simple(tenant, 241, digits_lower) and simple(system, 14, "abcdefghijklmnopqrstuvwxyz")


def _tracestate_value_ok(value: str) -> bool:
    return (
        0 < len(value) <= 256 and all(0x20 <= ord(ch) <= 0x7E and ch not in ",=" for ch in value) and value[-1] != " "
    )


def _baggage_value_ok(value: str) -> bool:
    if any(ch not in _BAGGAGE_OCTETS for ch in value):
        return False
    parts = value.split("%")
    return all(_is_hex(part[:2].lower(), 2) for part in parts[1:])


def parse_baggage(baggage: str, *, source: str = "baggage") -> str:
    """Check a W3C baggage header value and put it in the form plugins get:
    members ``key=value[;property...]`` joined by ``,``, white space around
    members, keys, values and properties removed (as OpenTelemetry-Go parses
    it; values stay percent-encoded as given).

    Raises:
        ArgsError: naming the member and what is wrong with it.
    """
    hint = "baggage looks like userId=alice,serverNode=DF%2028;weight=1 (W3C Baggage)"
    members: list[str] = []
    for raw in baggage.split(","):
        if not raw.strip(" \t"):
            continue
        fields = [field.strip(" \t") for field in raw.split(";")]
        key, eq, value = fields[0].partition("=")
        key, value = key.strip(" \t"), value.strip(" \t")
        if not eq or not key or any(ch not in _TOKEN for ch in key) or not _baggage_value_ok(value):
            raise ArgsError(f"{source}: baggage member {raw.strip()!r} is not key=value in W3C form", hint=hint)
        props = []
        for prop in fields[1:]:
            name, peq, pvalue = prop.partition("=")
            name, pvalue = name.strip(" \t"), pvalue.strip(" \t")
            if not name or any(ch not in _TOKEN for ch in name) or (peq and not _baggage_value_ok(pvalue)):
                raise ArgsError(f"{source}: baggage property {prop!r} of {key!r} is not valid", hint=hint)
            props.append(f"{name}={pvalue}" if peq else name)
        members.append(";".join([f"{key}={value}", *props]))
    if len(members) > _MAX_BAGGAGE_MEMBERS:
        raise ArgsError(f"{source}: baggage has {len(members)} members, at most {_MAX_BAGGAGE_MEMBERS} allowed")
    text = ",".join(members)
    if len(text.encode()) > _MAX_BAGGAGE_BYTES:
        raise ArgsError(f"{source}: baggage is {len(text.encode())} bytes, at most {_MAX_BAGGAGE_BYTES} allowed")
    return text


def parse_trace_context(
    traceparent: str, tracestate: str = "", *, baggage: str = "", source: str = "traceparent"
) -> TraceContext:
    """Check a W3C trace context and put it in the form Go libcni hands plugins.

    Go libcni's ``pkg/invoke`` (main branch, PR #1173; no release yet) sets
    ``TRACEPARENT`` and ``TRACESTATE`` from the caller's span context
    through OpenTelemetry's W3C propagator, which re-encodes what it was
    given: version ``00``, only the "sampled" flag kept, and the
    ``tracestate`` members joined by ``,`` without spaces (``TRACESTATE`` is
    set only when there is a state); ``BAGGAGE`` carries the context's
    baggage, and all three only when there is a valid span.  This does the
    same to the values a person gives, and refuses what is not a trace
    context (or baggage) at all, where Go would silently pass nothing.

    Args:
        traceparent: ``00-<trace id>-<parent id>-<flags>``.
        tracestate: ``key=value`` members separated by ``,`` (may be empty).
        baggage: W3C baggage (may be empty), see :func:`parse_baggage`.
        source: where the values came from, for messages (``--traceparent``).

    Returns:
        The normalised :class:`TraceContext`.

    Raises:
        ArgsError: naming the value and what is wrong with it.
    """
    hint = f"a traceparent looks like 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01 ({_TRACEPARENT_FORM})"
    parts = traceparent.strip().split("-")
    if len(parts) < 4:
        raise ArgsError(f"{source}: {traceparent!r} is not a W3C traceparent", hint=hint)
    version, trace_id, parent_id, flags = parts[:4]
    for part, size, what in (
        (version, 2, "version"),
        (trace_id, 32, "trace id"),
        (parent_id, 16, "parent id"),
        (flags, 2, "flags"),
    ):
        if not _is_hex(part, size):
            raise ArgsError(
                f"{source}: {traceparent!r}: the {what} must be {size} lower-case hex digits, not {part!r}", hint=hint
            )
    if version == "ff":
        raise ArgsError(f"{source}: {traceparent!r}: version ff is invalid", hint=hint)
    if version == "00" and len(parts) != 4:
        raise ArgsError(f"{source}: {traceparent!r}: version 00 has exactly four fields", hint=hint)
    if trace_id == "0" * 32 or parent_id == "0" * 16:
        raise ArgsError(f"{source}: {traceparent!r}: an all-zero trace id or parent id is invalid", hint=hint)
    sampled = int(flags, 16) & 0x01
    members: list[str] = []
    keys: set[str] = set()
    for raw in tracestate.split(","):
        member = raw.strip(" \t")
        if not member:
            continue
        key, eq, value = member.partition("=")
        if not eq or not _tracestate_key_ok(key) or not _tracestate_value_ok(value):
            raise ArgsError(
                f"{source}: tracestate member {member!r} is not key=value in W3C form",
                hint="keys: lower-case letters, digits, '_', '-', '*', '/' (tenant@system allowed); "
                "values: printable ASCII without ',' or '='",
            )
        if key in keys:
            raise ArgsError(f"{source}: tracestate has key {key!r} twice")
        keys.add(key)
        members.append(f"{key}={value}")
    if len(members) > _MAX_TRACESTATE_MEMBERS:
        raise ArgsError(f"{source}: tracestate has {len(members)} members, at most {_MAX_TRACESTATE_MEMBERS} allowed")
    return TraceContext(
        traceparent=f"00-{trace_id}-{parent_id}-{sampled:02x}",
        tracestate=",".join(members),
        baggage=parse_baggage(baggage, source=source) if baggage else "",
    )


def _plain(value: Any) -> Any:
    """``value`` with every :class:`Struct` turned into a plain (sorted) map,
    as a JSON round trip through ``map[string]interface{}`` leaves it."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def capability_split(plugin: PluginConf, capability_args: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Which capability args reach ``plugin``: those whose key it declares
    with ``"capabilities": {key: true}``.

    Returns:
        ``(passed, dropped)``: the ``runtimeConfig`` map and the sorted keys
        of the args it does not declare.
    """
    passed = {
        key: capability_args[key] for key, enabled in plugin.capabilities.items() if enabled and key in capability_args
    }
    dropped = sorted(key for key in capability_args if key not in passed)
    return passed, dropped


def capability_strings(plugin: PluginConf, capability_args: Mapping[str, Any]) -> tuple[str, ...]:
    """The string values (at any depth, 4 characters or more) of the
    capability arguments that reach ``plugin``: what error messages must not
    repeat, since capability arguments may carry secrets."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, str):
            if len(value) >= 4:
                found.add(value)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item)

    walk(capability_split(plugin, capability_args)[0])
    return tuple(sorted(found, key=len, reverse=True))


def plugin_stdin(
    plugin: PluginConf,
    *,
    name: str,
    cni_version: str,
    prev_result: AnyResult | Mapping[str, Any] | None = None,
    capability_args: Mapping[str, Any] | None = None,
) -> bytes:
    """The stdin of an ADD, CHECK or DEL call (Go's ``buildOneConfig``).

    Args:
        plugin: the plugin object.
        name: the list's name (replaces the object's own).
        cni_version: the list's version (replaces the object's own).
        prev_result: the previous plugin's result (ADD) or the cached result
            (CHECK/DEL), typed, or an already-encoded JSON map.
        capability_args: the runtime's capability arguments; only the keys
            the plugin declares reach it, as ``runtimeConfig``.
    """
    conf: dict[str, Any] = dict(plugin.raw)
    conf["name"] = name
    conf["cniVersion"] = cni_version
    if prev_result is not None:
        if isinstance(prev_result, (result.Result, result.LegacyResult)):
            conf["prevResult"] = result.to_json(prev_result)
        else:
            conf["prevResult"] = prev_result
    runtime_config, _ = capability_split(plugin, capability_args or {})
    if runtime_config:
        conf = _plain(conf)
        conf["runtimeConfig"] = runtime_config
    return gojson.dumps_bytes(conf)


def encode_valid_attachments(valid_attachments: Sequence[tuple[str, str]]) -> gojson.Raw:
    """GC's list of valid attachments, encoded once for every plugin's stdin
    (``[{"containerID":...,"ifname":...},...]``, as Go encodes it)."""
    return gojson.Raw(gojson.dumps([Struct(containerID=cid, ifname=ifname) for cid, ifname in valid_attachments]))


def gc_stdin(
    plugin: PluginConf,
    *,
    name: str,
    cni_version: str,
    valid_attachments: Sequence[tuple[str, str]] | gojson.Raw,
) -> bytes:
    """The stdin of a GC call: the object with ``name``, ``cniVersion`` and the
    valid attachments under ``cni.dev/valid-attachments`` (and, for plugins
    written against a typo in an early 1.1 draft, ``cni.dev/attachments``).

    Args:
        valid_attachments: ``(container ID, ifname)`` pairs, or the list
            already encoded by :func:`encode_valid_attachments`.
    """
    attachments = (
        valid_attachments if isinstance(valid_attachments, gojson.Raw) else encode_valid_attachments(valid_attachments)
    )
    conf: dict[str, Any] = dict(plugin.raw)
    conf["name"] = name
    conf["cniVersion"] = cni_version
    conf["cni.dev/valid-attachments"] = attachments
    conf["cni.dev/attachments"] = attachments
    return gojson.dumps_bytes(conf)


def status_stdin(plugin: PluginConf, *, name: str, cni_version: str) -> bytes:
    """The stdin of a STATUS call: the object with ``name`` and ``cniVersion``."""
    conf: dict[str, Any] = dict(plugin.raw)
    conf["name"] = name
    conf["cniVersion"] = cni_version
    return gojson.dumps_bytes(conf)


def version_stdin(newest: str) -> bytes:
    """The stdin of a VERSION probe: ``{"cniVersion": <newest implemented>}``."""
    return b'{"cniVersion":' + gojson.dumps_bytes(newest) + b"}"


def plugin_env(
    command: str,
    *,
    container_id: str,
    netns: str,
    ifname: str,
    cni_args: Sequence[tuple[str, str]],
    plugin_path: Sequence[str],
    base: Mapping[str, str],
    trace: TraceContext | None = None,
) -> dict[str, str]:
    """The environment of a plugin call (Go's ``Args.AsEnv``).

    The runtime's own environment (``base``) with the ``CNI_*`` variables set
    over it.  GC and STATUS pass empty container ID, netns, ifname and args.
    """
    env = dict(base)
    env["CNI_COMMAND"] = command
    env["CNI_CONTAINERID"] = container_id
    env["CNI_NETNS"] = netns
    env["CNI_ARGS"] = format_cni_args(cni_args)
    env["CNI_IFNAME"] = ifname
    env["CNI_PATH"] = ":".join(plugin_path)
    if trace is not None:
        env["TRACEPARENT"] = trace.traceparent
        if trace.tracestate:
            env["TRACESTATE"] = trace.tracestate
        else:
            # a state inherited from the runtime's environment belongs to
            # another trace; never pair it with this traceparent
            env.pop("TRACESTATE", None)
        if trace.baggage:
            # Go appends BAGGAGE after the environment, so it wins over an inherited one
            env["BAGGAGE"] = trace.baggage
    return env


def version_env(base: Mapping[str, str]) -> dict[str, str]:
    """The environment of a VERSION probe, with the dummy values Go passes for
    plugins built on old versions of skel."""
    return plugin_env(
        "VERSION",
        container_id="",
        netns="dummy",
        ifname="dummy",
        cni_args=(),
        plugin_path=("dummy",),
        base=base,
    )
