"""libcni_py: the runtime side of the Container Network Interface, in Python.

What Go's ``libcni`` is to containerd and CRI-O: load network configurations,
run plugin chains (ADD, CHECK, DEL, GC, STATUS) exactly as Go libcni does,
keep the result cache interchangeable with Go's -- and hold up where Go's
does not (crash-safe records, locks, timeouts that kill what plugins start).

Public names are importable from here; they are loaded on first use, so that
``import libcni_py`` stays cheap for one-shot tools::

    from libcni_py import CNI, AsyncCNI, RuntimeConf, load_network

See :mod:`libcni_py.api` for the operations, :mod:`libcni_py.core.netconf` for
configuration, :mod:`libcni_py.core.result` for results and
:mod:`libcni_py.errors` for the error tree.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .api import CNI, AsyncCNI
    from .core.inputs import RuntimeConf
    from .core.netconf import NetworkConfigList, PluginConf, load_any_file, load_network, parse_conflist
    from .core.plugin_input import TraceContext
    from .core.record import AttachmentKey, CacheRecord
    from .core.reports import GCReport
    from .core.result import DNS, Interface, IPConfig, LegacyResult, Result, Route
    from .core.version import PluginInfo
    from .errors import (
        ArgsError,
        CacheError,
        CNIError,
        ConfigError,
        InvalidNameError,
        InvalidResultError,
        LeftoverError,
        MultiError,
        NetnsError,
        NetworkNotFoundError,
        NetworkNotReadyError,
        PluginError,
        PluginExecError,
        PluginNotFoundError,
        PluginTimeoutError,
        UnsupportedOperationError,
        VersionError,
    )

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "CNI": "api",
    "AsyncCNI": "api",
    "AttachmentKey": "core.record",
    "CacheRecord": "core.record",
    "NetworkConfigList": "core.netconf",
    "PluginConf": "core.netconf",
    "load_any_file": "core.netconf",
    "load_network": "core.netconf",
    "parse_conflist": "core.netconf",
    "ArgsError": "errors",
    "CacheError": "errors",
    "CNIError": "errors",
    "ConfigError": "errors",
    "InvalidNameError": "errors",
    "InvalidResultError": "errors",
    "LeftoverError": "errors",
    "MultiError": "errors",
    "NetnsError": "errors",
    "NetworkNotFoundError": "errors",
    "NetworkNotReadyError": "errors",
    "PluginError": "errors",
    "PluginExecError": "errors",
    "PluginNotFoundError": "errors",
    "PluginTimeoutError": "errors",
    "UnsupportedOperationError": "errors",
    "VersionError": "errors",
    "GCReport": "core.reports",
    "RuntimeConf": "core.inputs",
    "TraceContext": "core.plugin_input",
    "DNS": "core.result",
    "Interface": "core.result",
    "IPConfig": "core.result",
    "LegacyResult": "core.result",
    "Result": "core.result",
    "Route": "core.result",
    "PluginInfo": "core.version",
}

__all__ = [
    "CNI",
    "AsyncCNI",
    "AttachmentKey",
    "CacheRecord",
    "NetworkConfigList",
    "PluginConf",
    "load_any_file",
    "load_network",
    "parse_conflist",
    "ArgsError",
    "CacheError",
    "CNIError",
    "ConfigError",
    "InvalidNameError",
    "InvalidResultError",
    "LeftoverError",
    "MultiError",
    "NetnsError",
    "NetworkNotFoundError",
    "NetworkNotReadyError",
    "PluginError",
    "PluginExecError",
    "PluginNotFoundError",
    "PluginTimeoutError",
    "UnsupportedOperationError",
    "VersionError",
    "GCReport",
    "RuntimeConf",
    "TraceContext",
    "DNS",
    "Interface",
    "IPConfig",
    "LegacyResult",
    "Result",
    "Route",
    "PluginInfo",
]


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'libcni_py' has no attribute {name!r}")
    # __import__ rather than importlib.import_module: importing importlib
    # (and the warnings module it pulls in) costs a one-shot CLI call ~1 ms
    value = getattr(__import__(f"{__name__}.{module}", fromlist=[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
