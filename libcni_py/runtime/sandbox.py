"""Pod sandboxes: the pod's identity, its network namespace, who owns it, and
the small record the runtime layer keeps of it under the cache dir.

A record is written (atomically, in ``<cacheDir>/libcni_py/pods/<id>``)
**before** the pod's namespace is created and before any plugin runs, and
removed after the pod's networks and namespace are gone, so a runtime that
dies at any point leaves something :mod:`libcni_py.runtime.gc` can find::

    {"kind": "libcniPyPodV1", "containerId": "3f2a...", "namespace": "default",
     "name": "web", "uid": "", "netns": "/var/run/netns/cni-3f2a5b6c7d8e",
     "netnsOwned": true, "owner": {"pid": 4242, "start": 1234567}, "created": 1700000000.5}

``owner`` names the process that keeps the pod running (a runtime such as
``examples/toy_runtime.py``): the pod is alive while that process is, judged
by pid *and* start time so that a reused pid does not count.  A pod without
an owner (made by ``cnitool pod up``) is alive while its namespace exists.

Sandbox IDs are random, 64 hex digits, as containerd makes them; the
namespace the layer creates for a pod is ``cni-`` + the first 12.
"""

from __future__ import annotations

import os

from .. import gojson, names
from .._values import Value
from ..errors import CacheError, DecodeError
from ..gojson import Struct

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "POD_KIND",
    "PODS_FOLDER",
    "PodSandbox",
    "decode_sandbox",
    "encode_sandbox",
    "netns_name_for",
    "new_container_id",
    "owner_alive",
    "pod_alive",
    "process_start_time",
]

POD_KIND = "libcniPyPodV1"

#: Where pod records live, below the cache dir.
PODS_FOLDER = ("libcni_py", "pods")


class PodSandbox(Value):
    """A pod sandbox: what the runtime layer records about a pod.

    Attributes:
        container_id: the sandbox ID (CNI's container ID for all its networks).
        netns: path of its network namespace.
        netns_owned: the runtime layer created the namespace, and deletes it
            with the pod.
        namespace, name, uid: the pod's Kubernetes identity.
        owner_pid, owner_start: the process keeping the pod (0: none), and its
            start time in clock ticks since boot (``/proc/<pid>/stat`` field 22).
        created: when the record was made (seconds since the epoch).
    """

    __slots__ = (
        "container_id",
        "netns",
        "netns_owned",
        "namespace",
        "name",
        "uid",
        "owner_pid",
        "owner_start",
        "created",
    )
    container_id: str
    netns: str
    netns_owned: bool
    namespace: str
    name: str
    uid: str
    owner_pid: int
    owner_start: int
    created: float

    def __init__(
        self,
        *,
        container_id: str,
        netns: str,
        netns_owned: bool = False,
        namespace: str = "",
        name: str = "",
        uid: str = "",
        owner_pid: int = 0,
        owner_start: int = 0,
        created: float = 0.0,
    ) -> None:
        self._set(
            container_id=container_id,
            netns=netns,
            netns_owned=netns_owned,
            namespace=namespace,
            name=name,
            uid=uid,
            owner_pid=owner_pid,
            owner_start=owner_start,
            created=created,
        )

    @property
    def label(self) -> str:
        """``namespace/name`` (or the short ID when the pod has no name)."""
        return f"{self.namespace}/{self.name}" if self.name else self.container_id[:12]


def new_container_id() -> str:
    """A fresh sandbox ID: 32 random bytes in hex, as containerd generates them."""
    return os.urandom(32).hex()


def netns_name_for(container_id: str) -> str:
    """The name of the namespace the runtime layer creates for a pod."""
    return "cni-" + container_id[:12]


def encode_sandbox(sandbox: PodSandbox) -> bytes:
    """The record's bytes."""
    doc = Struct(
        kind=POD_KIND,
        containerId=sandbox.container_id,
        namespace=sandbox.namespace,
        name=sandbox.name,
        uid=sandbox.uid,
        netns=sandbox.netns,
        netnsOwned=sandbox.netns_owned,
    )
    if sandbox.owner_pid:
        doc["owner"] = Struct(pid=sandbox.owner_pid, start=sandbox.owner_start)
    doc["created"] = sandbox.created
    return gojson.dumps_bytes(doc)


def _text(doc: dict[str, Any], key: str) -> str:
    value = doc.get(key)
    return value if isinstance(value, str) else ""


def decode_sandbox(data: bytes, path: str) -> PodSandbox:
    """Decode a pod record.

    Raises:
        CacheError: not a pod record, or one whose container ID is not valid.
    """
    try:
        doc = gojson.loads(data)
    except DecodeError as exc:
        raise CacheError(path, f"is damaged: {exc.msg}") from None
    if not isinstance(doc, dict) or doc.get("kind") != POD_KIND:
        raise CacheError(path, f"is not a {POD_KIND} record")
    container_id = _text(doc, "containerId")
    if not names.is_valid_name(container_id):
        raise CacheError(path, f"containerId: {container_id!r} is not a valid container ID")
    owner = doc.get("owner") if isinstance(doc.get("owner"), dict) else {}
    assert isinstance(owner, dict)
    pid, start, created = owner.get("pid"), owner.get("start"), doc.get("created")
    return PodSandbox(
        container_id=container_id,
        netns=_text(doc, "netns"),
        netns_owned=doc.get("netnsOwned") is True,
        namespace=_text(doc, "namespace"),
        name=_text(doc, "name"),
        uid=_text(doc, "uid"),
        owner_pid=pid if isinstance(pid, int) and not isinstance(pid, bool) and pid > 0 else 0,
        owner_start=start if isinstance(start, int) and not isinstance(start, bool) else 0,
        created=float(created) if isinstance(created, (int, float)) and not isinstance(created, bool) else 0.0,
    )


def process_start_time(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot), or None if it
    does not exist (or is a zombie)."""
    from ..spawn import proc_stat

    stat = proc_stat(str(pid))
    return None if stat is None or stat[3] == "Z" else stat[2]


def owner_alive(sandbox: PodSandbox) -> bool:
    """Whether the pod's owner process still runs (False without an owner)."""
    if not sandbox.owner_pid:
        return False
    started = process_start_time(sandbox.owner_pid)
    return started is not None and started == sandbox.owner_start


def pod_alive(sandbox: PodSandbox) -> bool:
    """Whether a recorded pod is alive: its owner process runs, or (for a pod
    without owner) its namespace still exists."""
    from .. import netns

    if sandbox.owner_pid:
        return owner_alive(sandbox)
    return bool(sandbox.netns) and netns.is_netns(sandbox.netns)
