"""Readiness of the pod network: CRI's ``NetworkReady`` condition.

Kubelet keeps a node ``NotReady`` ("network plugin not ready: cni plugin not
initialized") while the runtime says its network is not ready.  Runtimes say
little more than that; :func:`status` says what a person can act on, in the
first check that fails, with a one-word ``reason`` for programs:

============================  ==================================================
``NoConfDir``                 the conf dir does not exist
``NoNetworkConfig``           it has no ``.conf``/``.conflist``/``.json`` file
``NoValidNetwork``            it has some, none valid (each file's reason given)
``DefaultNetworkNotFound``    a configured default network name (ocicni) is
                              not among the valid networks
``TooFewNetworks``            fewer valid networks than the configured minimum
                              (go-cni's ``WithMinNetworkCount``)
``PluginNotFound``            a plugin of the default network(s) or of the
                              loopback network is in none of the plugin
                              directories (which plugin, which directories)
``PluginVersionUnsupported``  a plugin does not support the network's
                              ``cniVersion`` (its VERSION answer)
``PluginFailed``              a plugin could not answer VERSION
``PluginNotReady``            STATUS (spec 1.1) answered code 50 or 51
``StatusFailed``              STATUS failed otherwise
============================  ==================================================

Checks cover the networks every pod gets: the loopback network and the first
``max_networks`` valid files.  VERSION answers are remembered per plugin
binary (by device, inode, size and mtime), so a status check probes a plugin
again only after its binary changed; STATUS runs every time.  The conf dir is
re-read when it changed (:class:`~libcni_py.runtime.confdir.ConfDir`), so a
conflist dropped in makes the network ready without a restart.
"""

from __future__ import annotations

from ..core import operations as ops
from ..core.effects import Resolve
from ..core.value import Value
from ..errors import NetworkNotReadyError, PluginError, PluginNotFoundError
from .effects import Batch, Fingerprint

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any, TypeAlias

    from ..core.effects import Plan
    from ..core.inputs import Options
    from ..core.netconf import NetworkConfigList
    from ..core.version import PluginInfo
    from .confdir import ConfDirState

__all__ = ["NetworkStatus", "conf_dir_problem", "status"]

#: VERSION answers by plugin binary: ``(path, fingerprint) -> PluginInfo``.
ProbeCache: TypeAlias = "dict[tuple[str, Any], PluginInfo]"


class NetworkStatus(Value):
    """The pod network's readiness.

    Attributes:
        ready: True when pods can be set up.
        reason: one CamelCase word when not ready ("" when ready).
        message: what is wrong, naming the file, network or plugin.
        hint: what to do about it.
        default_network: the default network's name ("" if none).
    """

    ready: bool
    reason: str = ""
    message: str = ""
    hint: str = ""
    default_network: str = ""

    def error(self) -> NetworkNotReadyError:
        """The status as an error (to raise when not ready)."""
        return NetworkNotReadyError(self.reason, self.message, hint=self.hint)

    def to_cri(self) -> dict[str, Any]:
        """The CRI ``RuntimeCondition`` form: type, status, reason, message."""
        return {"type": "NetworkReady", "status": self.ready, "reason": self.reason, "message": self.message}


def _not_ready(reason: str, message: str, hint: str = "", default: str = "") -> NetworkStatus:
    return NetworkStatus(ready=False, reason=reason, message=message, hint=hint, default_network=default)


def conf_dir_problem(state: ConfDirState) -> NetworkStatus | None:
    """What keeps the conf dir from providing a default network, or None."""
    if not state.exists and not state.networks:
        return _not_ready(
            "NoConfDir",
            f"conf dir {state.conf_dir} does not exist",
            "create it and put a network configuration (.conflist) in it, or point --conf-dir/NETCONFPATH elsewhere",
        )
    if state.networks:
        if state.default_network and state.default is None:
            return _not_ready(
                "DefaultNetworkNotFound",
                f"the default network {state.default_network!r} is not among the valid networks "
                f"({', '.join(n.name for n in state.networks)}) in {state.conf_dir}"
                + (f"; skipped: {state.problems()}" if state.invalid else ""),
                "install its configuration (the network add-on writes it when it starts), or configure "
                "another default network",
            )
        if len(state.networks) < state.min_networks:
            return _not_ready(
                "TooFewNetworks",
                f"{len(state.networks)} valid network(s) in {state.conf_dir}, at least {state.min_networks} needed",
                "wait for the network add-ons to write their configurations, or lower the minimum",
            )
        return None
    if not state.invalid:
        return _not_ready(
            "NoNetworkConfig",
            f"no network configuration in {state.conf_dir} (no .conf, .conflist or .json file)",
            "install a CNI network there (your network add-on writes one when it starts)",
        )
    return _not_ready(
        "NoValidNetwork",
        f"no valid network in {state.conf_dir}: {state.problems()}",
        "fix the file(s) named, or move them out of the conf dir",
    )


def status(
    state: ConfDirState,
    loopback: NetworkConfigList | None,
    opts: Options,
    probes: ProbeCache,
    *,
    concurrent: bool = False,
) -> Plan[NetworkStatus]:
    """The readiness check (see the module docstring) as a plan.

    Args:
        state: the conf dir as loaded.
        loopback: the loopback network every pod gets, or None.
        opts: plugin path and environment.
        probes: VERSION answers remembered between calls (updated here).
        concurrent: probe plugins concurrently (trio driver only).

    Returns:
        :class:`NetworkStatus`.
    """
    problem = conf_dir_problem(state)
    if problem is not None:
        return problem
    default = state.default.name if state.default is not None else state.networks[0].name
    networks: Sequence[NetworkConfigList] = ((loopback,) if loopback is not None else ()) + state.defaults

    # every binary present
    binaries: dict[str, tuple[str, Any]] = {}  # plugin type -> (path, fingerprint)
    for net in networks:
        for plugin in net.plugins:
            if plugin.type in binaries:
                continue
            try:
                (path,) = yield from Resolve(plugin_types=[plugin.type], plugin_path=opts.plugin_path)
            except PluginNotFoundError as exc:
                return _not_ready(
                    "PluginNotFound",
                    f"network {net.name!r} ({net.source}): {exc.msg}",
                    exc.hint,
                    default,
                )
            binaries[plugin.type] = (path, (yield from Fingerprint(path=path)))

    # every plugin supports its network's version (VERSION, remembered per binary)
    unknown = [t for t, (path, fp) in binaries.items() if (path, fp) not in probes or fp is None]
    if unknown:
        outcomes = yield from Batch(plans=[ops.version_info(t, opts) for t in unknown], concurrent=concurrent)
        for plugin_type, outcome in zip(unknown, outcomes, strict=True):
            if outcome.error is not None:
                return _not_ready(
                    "PluginFailed",
                    f"plugin {plugin_type!r} did not answer VERSION: {outcome.error.one_line()}",
                    "run the binary by hand with CNI_COMMAND=VERSION to see why",
                    default,
                )
            path, fp = binaries[plugin_type]
            if fp is not None:
                probes[(path, fp)] = outcome.value
    for net in networks:
        wanted = net.cni_version or "0.1.0"
        for plugin in net.plugins:
            path, fp = binaries[plugin.type]
            info = probes.get((path, fp))
            if info is not None and not info.supports(wanted):
                return _not_ready(
                    "PluginVersionUnsupported",
                    f'network {net.name!r} ({net.source}) has cniVersion "{wanted}", but plugin {plugin.type!r} '
                    f"({path}) supports only {', '.join(info.supported_versions)}",
                    'lower the network\'s cniVersion (or list several in "cniVersions"), or install a newer plugin',
                    default,
                )

    # STATUS (spec 1.1.0; a no-op below)
    outcomes = yield from Batch(plans=[ops.status(net, opts) for net in state.defaults], concurrent=concurrent)
    for net, outcome in zip(state.defaults, outcomes, strict=True):
        error = outcome.error
        if error is None:
            continue
        if isinstance(error, PluginError) and error.not_ready:
            return _not_ready(
                "PluginNotReady",
                f"network {net.name!r} ({net.source}): {error.one_line()}",
                "the plugin says it cannot set up pods yet (code 50) or only with limited connectivity (code 51)",
                default,
            )
        return _not_ready("StatusFailed", f"network {net.name!r} ({net.source}): {error.one_line()}", "", default)
    return NetworkStatus(ready=True, default_network=default)
