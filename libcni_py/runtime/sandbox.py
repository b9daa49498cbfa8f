"""Pod sandboxes: the pod's identity, its network namespace, who owns it, and
the small record the runtime layer keeps of it under the cache dir.

A record is written (atomically, in ``<cacheDir>/libcni_py/pods/<id>``)
**before** the pod's namespace is created and before any plugin runs, and
removed after the pod's networks and namespace are gone, so a runtime that
dies at any point leaves something :mod:`libcni_py.runtime.gc` can find::

    {"kind": "libcniPyPodV1", "containerId": "3f2a...", "namespace": "default",
     "name": "web", "uid": "", "netns": "/var/run/netns/lcpy-3f2a...",
     "netnsOwned": true, "owner": {"pid": 4242, "start": 1234567},
     "setup": {"pid": 4242, "start": 1234567}, "created": 1700000000.5}

``setup`` is there while the pod is being set up, naming the process doing
it; the record is written again without it once setup has finished.  A pod
whose record still says ``setup`` and whose setting-up process is gone was
interrupted half-way (the process was killed): it is dead, whatever else
exists, and GC tears it down.

``owner`` names the process that keeps the pod running (a runtime such as
``examples/toy_runtime.py``): the pod is alive while that process is, judged
by pid *and* start time so that a reused pid does not count.  A pod without
an owner (made by ``cnitool pod up``) is alive, once set up, while its
namespace exists.

Sandbox IDs are random, 64 hex digits, as containerd makes them.  The
namespace the layer creates for a pod is ``lcpy-<id>`` (``lcpyh-`` + a hash
of the ID for IDs longer than 64 characters): one pod ID, one name, and a
prefix of our own (containerd's is ``cni-``, podman's ``netns-``).
"""

from __future__ import annotations

import os

from ..core import gojson, names, record
from ..core.gojson import Struct
from ..core.value import Value
from ..errors import CacheError, DecodeError

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
    "liveness_reason",
    "owner_alive",
    "pod_alive",
    "process_start_time",
    "same_pod",
]

POD_KIND = "libcniPyPodV1"

#: Where pod records live, below the cache dir (:mod:`libcni_py.core.record` owns the layout).
PODS_FOLDER = record.PODS_FOLDER


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
        setup_pid, setup_start: the process setting the pod up, while it
            does (0: setup finished).
    """

    container_id: str
    netns: str
    netns_owned: bool = False
    namespace: str = ""
    name: str = ""
    uid: str = ""
    owner_pid: int = 0
    owner_start: int = 0
    created: float = 0.0
    setup_pid: int = 0
    setup_start: int = 0

    @property
    def label(self) -> str:
        """``namespace/name`` (or the short ID when the pod has no name)."""
        return f"{self.namespace}/{self.name}" if self.name else self.container_id[:12]


def new_container_id() -> str:
    """A fresh sandbox ID: 32 random bytes in hex, as containerd generates them."""
    return os.urandom(32).hex()


#: Longest container ID used as it is in a pod's namespace name.
_NETNS_ID_MAX = 64


def netns_name_for(container_id: str) -> str:
    """The name of the namespace the runtime layer creates for a pod:
    ``lcpy-<id>``, or ``lcpyh-`` + SHA-256 of the ID for IDs longer than 64
    characters.  Two IDs never share a name (the two forms differ at their
    fifth character), and the prefix is nobody else's."""
    if len(container_id) <= _NETNS_ID_MAX:
        return "lcpy-" + container_id
    import hashlib

    return "lcpyh-" + hashlib.sha256(container_id.encode()).hexdigest()


def same_pod(one: PodSandbox | None, other: PodSandbox | None) -> bool:
    """Whether two records are of one pod (whatever its setup phase)."""
    if one is None or other is None:
        return one is other
    return one.replace(setup_pid=0, setup_start=0) == other.replace(setup_pid=0, setup_start=0)


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
    if sandbox.setup_pid:
        doc["setup"] = Struct(pid=sandbox.setup_pid, start=sandbox.setup_start)
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
    pid, start = _process(doc, "owner")
    setup_pid, setup_start = _process(doc, "setup")
    created = doc.get("created")
    return PodSandbox(
        container_id=container_id,
        netns=_text(doc, "netns"),
        netns_owned=doc.get("netnsOwned") is True,
        namespace=_text(doc, "namespace"),
        name=_text(doc, "name"),
        uid=_text(doc, "uid"),
        owner_pid=pid,
        owner_start=start,
        created=float(created) if isinstance(created, (int, float)) and not isinstance(created, bool) else 0.0,
        setup_pid=setup_pid,
        setup_start=setup_start,
    )


def _process(doc: dict[str, Any], key: str) -> tuple[int, int]:
    """``(pid, start)`` of the record's ``owner`` or ``setup`` ((0, 0): none)."""
    found = doc.get(key)
    if not isinstance(found, dict):
        return 0, 0
    pid, start = found.get("pid"), found.get("start")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return 0, 0
    return pid, start if isinstance(start, int) and not isinstance(start, bool) else 0


def process_start_time(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot), or None if it
    does not exist (or is a zombie)."""
    from ..edges.spawn import proc_stat

    stat = proc_stat(str(pid))
    return None if stat is None or stat[3] == "Z" else stat[2]


def _runs(pid: int, start: int) -> bool:
    started = process_start_time(pid)
    return started is not None and started == start


def owner_alive(sandbox: PodSandbox) -> bool:
    """Whether the pod's owner process still runs (False without an owner)."""
    return bool(sandbox.owner_pid) and _runs(sandbox.owner_pid, sandbox.owner_start)


def pod_alive(sandbox: PodSandbox) -> bool:
    """Whether a recorded pod is alive: while being set up, as long as the
    process setting it up runs (killed half-way: dead); then while its owner
    process runs, or (for a pod without owner) while its namespace exists."""
    from .. import netns

    if sandbox.setup_pid:
        return _runs(sandbox.setup_pid, sandbox.setup_start)
    if sandbox.owner_pid:
        return owner_alive(sandbox)
    return bool(sandbox.netns) and netns.is_netns(sandbox.netns)


def liveness_reason(sandbox: PodSandbox, alive: bool) -> str:
    """Why :func:`pod_alive` said what it said, for people."""
    if sandbox.setup_pid:
        verb = "runs" if alive else "died"
        return f"the process setting it up (pid {sandbox.setup_pid}) {verb}"
    if sandbox.owner_pid:
        return f"its owner process {sandbox.owner_pid} " + ("runs" if alive else "is gone")
    return f"its namespace {sandbox.netns or '(none)'} " + ("is alive" if alive else "is gone")
