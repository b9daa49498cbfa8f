"""The runtime layer: what containerd's go-cni and CRI-O's ocicni add around
libcni, so that a program embedding libcni_py networks pods as a Kubernetes
node does.

* :mod:`.confdir` -- the conf dir as runtimes read it (the first valid file
  is the default network), re-read when files change;
* :mod:`.pod` -- a pod's attachments (loopback, then ``eth0``, ``eth1``...),
  setup, check and teardown from the cache, under a per-pod lock;
* :mod:`.readiness` -- the ``NetworkReady`` condition, with reasons;
* :mod:`.k8s` -- Kubernetes' CNI_ARGS and capability arguments;
* :mod:`.gc` -- removing what belongs to no live pod;
* :mod:`.sandbox` -- pod identity, namespaces and their records;
* :mod:`.manager` -- :class:`PodNetworks` (blocking) and
  :class:`AsyncPodNetworks` (trio), the entry points.

Names are loaded on first use, as in the top-level package.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .confdir import ConfDir, ConfDirState, InvalidFile
    from .gc import PodGCReport
    from .k8s import Bandwidth, DNSConfig, IPRange, NetworkSelection, PodSpec, PortMapping
    from .manager import AsyncPodNetworks, PodNetworks
    from .pod import PodInterface, PodResult, PodTeardown
    from .readiness import NetworkStatus
    from .sandbox import PodSandbox

_EXPORTS = {
    "ConfDir": "confdir",
    "ConfDirState": "confdir",
    "InvalidFile": "confdir",
    "PodGCReport": "gc",
    "Bandwidth": "k8s",
    "DNSConfig": "k8s",
    "IPRange": "k8s",
    "NetworkSelection": "k8s",
    "PodSpec": "k8s",
    "PortMapping": "k8s",
    "AsyncPodNetworks": "manager",
    "PodNetworks": "manager",
    "PodInterface": "pod",
    "PodResult": "pod",
    "PodTeardown": "pod",
    "NetworkStatus": "readiness",
    "PodSandbox": "sandbox",
}

__all__ = [
    "ConfDir",
    "ConfDirState",
    "InvalidFile",
    "PodGCReport",
    "Bandwidth",
    "DNSConfig",
    "IPRange",
    "NetworkSelection",
    "PodSpec",
    "PortMapping",
    "AsyncPodNetworks",
    "PodNetworks",
    "PodInterface",
    "PodResult",
    "PodTeardown",
    "NetworkStatus",
    "PodSandbox",
]


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'libcni_py.runtime' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
