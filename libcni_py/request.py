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

from . import gojson, result
from ._values import Value
from .args import format_cni_args
from .gojson import Struct

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

    from .conf import PluginConf
    from .result import AnyResult

__all__ = [
    "TraceContext",
    "capability_split",
    "encode_valid_attachments",
    "gc_stdin",
    "plugin_env",
    "plugin_stdin",
    "status_stdin",
    "version_env",
    "version_stdin",
]


class TraceContext(Value):
    """A W3C trace context to hand plugins as ``TRACEPARENT``/``TRACESTATE``
    (as Go libcni 1.3 does when its context carries one)."""

    __slots__ = ("traceparent", "tracestate")
    traceparent: str
    tracestate: str

    def __init__(self, *, traceparent: str, tracestate: str = "") -> None:
        self._set(traceparent=traceparent, tracestate=tracestate)


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
