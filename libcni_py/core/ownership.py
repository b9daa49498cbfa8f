"""Whose an attachment is, and whether GC may delete it: pure rules.

A node's cache dir is shared: containerd and CRI-O (through CRI), podman
(its CNI backend) and Go's ``cnitool`` keep their records next to
libcni_py's.  GC must never delete what it cannot prove dead, so every GC
here asks two questions of each attachment, answered by this module:

* **whose is it** (:func:`owner_of`): ``libcni_py`` when a libcni_py pod
  record exists for its container ID; otherwise the runtime it looks like,
  from facts those runtimes leave in the record:

  - podman (containers/common's CNI backend) names its namespaces
    ``netns-<uuid>`` and passes only ``IgnoreUnknown`` and ``K8S_POD_NAME``
    in CNI_ARGS (no ``K8S_POD_NAMESPACE``);
  - containerd's CRI plugin names them ``cni-<uuid>`` and passes
    ``K8S_POD_NAMESPACE``, ``K8S_POD_NAME``, ``K8S_POD_INFRA_CONTAINER_ID``;
  - CRI-O pins them as a bare ``<uuid>`` file, with the same ``K8S_POD_*``;
  - Go's cnitool (and ours) uses the container ID ``cnitool-`` + 20 hex
    digits;

  else ``unknown``.  Each answer carries its evidence, for people to judge.

* **is it dead** (:func:`judge`): only proof counts.  Its namespace
  (:func:`libcni_py.core.record.record_netns`) probed ``gone`` or ``stale``, or a
  CRI runtime that owns it does not list its sandbox.  A namespace that is
  ``alive`` keeps it; ``unknown`` keeps it too unless the user forces.
"""

from __future__ import annotations

from .value import Value

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Container, Iterable

__all__ = [
    "CNITOOL",
    "CONTAINERD",
    "CRIO",
    "CRI_OWNERS",
    "K8S",
    "LIBCNI_PY",
    "PODMAN",
    "UNKNOWN",
    "Owner",
    "Verdict",
    "judge",
    "owner_of",
]

LIBCNI_PY, PODMAN, CONTAINERD, CRIO, K8S, CNITOOL, UNKNOWN = (
    "libcni_py",
    "podman",
    "containerd",
    "cri-o",
    "cri",
    "cnitool",
    "unknown",
)

#: Owners whose sandboxes a CRI runtime lists (``K8S`` is "CRI, runtime not told").
CRI_OWNERS = frozenset({CONTAINERD, CRIO, K8S})

_HEX = frozenset("0123456789abcdef")


def _is_hex(text: str, length: int) -> bool:
    return len(text) == length and set(text) <= _HEX


def _is_uuid(text: str) -> bool:
    """``8-4-4-4-12`` lower-case hex digits (as Go's ``%x-%x-%x-%x-%x`` of 16
    random bytes prints them); without ``re``, whose import the one-shot CLI
    does not pay for."""
    parts = text.split("-")
    return len(parts) == 5 and all(_is_hex(p, n) for p, n in zip(parts, (8, 4, 4, 4, 12), strict=True))


class Owner(Value):
    """Whose an attachment is (one of this module's names) and why we think so."""

    name: str
    evidence: str = ""


def owner_of(container_id: str, netns: str, cni_args: Iterable[tuple[str, str]], pods: Container[str] = ()) -> Owner:
    """Whose the attachment ``container_id`` (namespace ``netns``, CNI_ARGS
    ``cni_args``) is; ``pods`` holds the container IDs of libcni_py's pod
    records."""
    if container_id in pods:
        return Owner(name=LIBCNI_PY, evidence="a libcni_py pod record exists")
    keys = {key for key, _ in cni_args}
    base = netns.rsplit("/", 1)[-1]
    k8s = "K8S_POD_NAMESPACE" in keys or "K8S_POD_INFRA_CONTAINER_ID" in keys
    if base.startswith("netns-") and _is_uuid(base[6:]):
        return Owner(name=PODMAN, evidence=f"podman's namespace name {base}")
    if k8s and base.startswith("cni-") and _is_uuid(base[4:]):
        return Owner(name=CONTAINERD, evidence=f"K8S_POD_* args and containerd's namespace name {base}")
    if k8s and _is_uuid(base):
        return Owner(name=CRIO, evidence=f"K8S_POD_* args and CRI-O's namespace name {base}")
    if k8s:
        return Owner(name=K8S, evidence="K8S_POD_* args (a CRI runtime)")
    if "K8S_POD_NAME" in keys and "IgnoreUnknown" in keys:
        return Owner(name=PODMAN, evidence="podman's CNI_ARGS (K8S_POD_NAME without K8S_POD_NAMESPACE)")
    if container_id.startswith("cnitool-") and _is_hex(container_id[8:], 20):
        return Owner(name=CNITOOL, evidence="cnitool's container ID form")
    return Owner(name=UNKNOWN)


class Verdict(Value):
    """What GC may do with an attachment: ``dead`` (delete it) or not, and why."""

    dead: bool
    reason: str


def judge(
    container_id: str,
    netns: str,
    netns_state: str,
    owner: Owner,
    *,
    live_sandboxes: Container[str] | None = None,
    force: bool = False,
) -> Verdict:
    """Whether GC may delete an attachment, and the reason.

    Args:
        netns: the attachment's namespace path ("" if its record has none).
        netns_state: :func:`libcni_py.netns.state` of it.
        live_sandboxes: the sandboxes a CRI runtime lists (None: not asked).
        force: the user asked to delete whatever is not proven alive by the
            runtime, live namespaces too (Go's GC).
    """
    if live_sandboxes is not None and container_id in live_sandboxes:
        return Verdict(dead=False, reason=f"the CRI runtime says sandbox {container_id[:12]} is alive")
    if netns_state == "gone":
        return Verdict(dead=True, reason=f"namespace {netns} is gone")
    if netns_state == "stale":
        return Verdict(dead=True, reason=f"{netns} is no longer a namespace")
    if live_sandboxes is not None and owner.name in CRI_OWNERS:
        return Verdict(dead=True, reason=f"the CRI runtime does not list sandbox {container_id[:12]}")
    if force:
        return Verdict(dead=True, reason="forced")
    if netns_state == "alive":
        return Verdict(dead=False, reason=f"namespace {netns} is alive")
    if not netns:
        return Verdict(dead=False, reason="liveness unknown: its record names no namespace (--force deletes it)")
    return Verdict(dead=False, reason=f"liveness unknown: namespace {netns} cannot be read (--force deletes it)")
