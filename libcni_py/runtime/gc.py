"""Garbage collection over the runtime: everything not belonging to a live pod.

Given the runtime's list of live pods (their container IDs), :func:`gc`

1. takes the GC lock exclusively: pod operations hold it shared (CRI-O's
   ``gcLock``, here across processes), so none is under way while the GC
   decides; then judges the pods the runtime layer recorded (unless told
   not to): a pod whose owner process runs, or without owner whose
   namespace exists, is alive even if the caller's list does not name it
   (it may have been made after the list was drawn up);
2. deletes each cached attachment of a dead pod whose network is no longer
   configured as it was when the attachment was made (changed or removed
   conf file), with the configuration from its cache record;
3. for every loaded network -- the conf dir's valid networks and the
   loopback network -- runs the network GC of :mod:`libcni_py.plan`
   (:meth:`libcni_py.CNI.gc`): the remaining dead attachments are deleted
   with the current configuration, and from spec 1.1.0 each plugin gets
   ``GC`` with the attachments still valid (those of live pods);
4. for networks known only from the cache (their conf file is gone), sends
   plugin GC with the cached configuration, so their plugins can release
   what nobody uses any more;
5. removes dead pods whose attachments are all gone: their namespace, if the
   runtime layer created it, and their record.

Failures are collected, never fatal; the report says what was done, and
:class:`~libcni_py.errors.MultiError` (with ``.report``) is raised at the end
if anything failed.  Attachments whose DEL failed are passed as valid to the
network GC, so that it does not retry them with another configuration.
"""

from __future__ import annotations

from .. import plan
from .._values import Value
from ..errors import CacheError, CNIError, MultiError
from .effects import (
    Batch,
    DeleteNetns,
    ForgetPod,
    ListAttachments,
    ListPods,
    LockGC,
    LockPod,
    PodAlive,
    PodPlan,
    UnlockPod,
)
from .pod import network_for_record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

    from ..cache import CacheRecord
    from ..conf import NetworkConfigList
    from .confdir import ConfDirState
    from .sandbox import PodSandbox

__all__ = ["PodGCReport", "gc"]


class PodGCReport(Value):
    """What a runtime GC did.

    Attributes:
        removed: ``(network, container_id, ifname)`` of each attachment deleted.
        kept: ``(network, container_id, ifname)`` of the live pods' attachments.
        plugin_gc: networks whose plugins were sent GC (spec >= 1.1.0).
        skipped: networks with ``disableGC`` (nothing done for them).
        pods_removed: container IDs of the dead pods removed (records).
        netns_removed: namespaces deleted with those pods.
        errors: what failed.
    """

    __slots__ = ("removed", "kept", "plugin_gc", "skipped", "pods_removed", "netns_removed", "errors")
    removed: tuple[tuple[str, str, str], ...]
    kept: tuple[tuple[str, str, str], ...]
    plugin_gc: tuple[str, ...]
    skipped: tuple[str, ...]
    pods_removed: tuple[str, ...]
    netns_removed: tuple[str, ...]
    errors: tuple[CNIError, ...]

    def __init__(
        self,
        *,
        removed: Iterable[tuple[str, str, str]] = (),
        kept: Iterable[tuple[str, str, str]] = (),
        plugin_gc: Iterable[str] = (),
        skipped: Iterable[str] = (),
        pods_removed: Iterable[str] = (),
        netns_removed: Iterable[str] = (),
        errors: Iterable[CNIError] = (),
    ) -> None:
        self._set(
            removed=tuple(removed),
            kept=tuple(kept),
            plugin_gc=tuple(plugin_gc),
            skipped=tuple(skipped),
            pods_removed=tuple(pods_removed),
            netns_removed=tuple(netns_removed),
            errors=tuple(errors),
        )


def _rt(record: CacheRecord) -> plan.RuntimeConf:
    return plan.RuntimeConf(
        container_id=record.container_id,
        netns=record.netns,
        ifname=record.ifname,
        args=record.cni_args,
        capability_args=record.capability_args,
    )


def gc(
    live: Iterable[str],
    state: ConfDirState | None,
    loopback: NetworkConfigList | None,
    opts: plan.Options,
    *,
    concurrent: bool,
    judge_records: bool = True,
) -> PodPlan:
    """The runtime GC (see the module docstring) as a plan.

    Args:
        live: container IDs of the pods that are alive; everything else in
            the cache (and in the pod records) is garbage.
        state: the conf dir as loaded (None: no configured network).
        loopback: the loopback network, or None.
        judge_records: also keep the recorded pods that are alive by their
            record (owner running, or namespace existing); False: ``live``
            alone decides.

    Returns:
        :class:`PodGCReport`.
    """
    yield LockGC(exclusive=True)
    alive = set(live)
    records, damaged = yield ListAttachments()
    sandboxes, damaged_pods = yield ListPods()
    for filename, problem in damaged:
        yield plan.Notice(text=f"cache file {filename}: {problem}; not an attachment GC can act on")
    for filename, problem in damaged_pods:
        yield plan.Notice(text=f"pod record {filename}: {problem}; that pod is left alone")
        alive.add(filename)
    if judge_records:
        for sandbox in sandboxes:
            if sandbox.container_id not in alive and (yield PodAlive(sandbox=sandbox)):
                alive.add(sandbox.container_id)
    dead = sorted(
        {r.container_id for r in records if r.container_id not in alive}
        | {s.container_id for s in sandboxes if s.container_id not in alive}
    )
    for container_id in dead:  # no pod operation runs (GC lock); taken so that their lock files go with them
        yield LockPod(container_id=container_id)

    loaded: dict[str, NetworkConfigList] = {}
    if loopback is not None:
        loaded[loopback.name] = loopback
    for net in state.networks if state is not None else ():
        loaded.setdefault(net.name, net)

    removed: list[tuple[str, str, str]] = []
    errors: list[CNIError] = []
    failed: set[tuple[str, str, str]] = set()

    # 2. dead attachments whose configuration changed or vanished: DEL with the cached one
    own_config = []
    for record in records:
        if record.container_id in alive:
            continue
        current = loaded.get(record.network)
        if current is not None and current.config_bytes == record.config:
            continue
        try:
            own_config.append((record, network_for_record(record, None, None)))
        except CacheError as exc:
            errors.append(exc)
            failed.add((record.network, record.container_id, record.ifname))
    outcomes = yield Batch(plans=[plan.delete(net, _rt(rec), opts) for rec, net in own_config], concurrent=concurrent)
    for (record, _), outcome in zip(own_config, outcomes, strict=True):
        triple = (record.network, record.container_id, record.ifname)
        if outcome.error is None:
            removed.append(triple)
        else:
            errors.append(outcome.error)
            failed.add(triple)

    # 3. and 4. network GC: loaded networks with their current configuration,
    # vanished ones with the newest cached configuration
    vanished: dict[str, NetworkConfigList] = {}
    for record in records:
        if record.network not in loaded:
            try:
                vanished[record.network] = network_for_record(record, None, None)
            except CacheError:
                continue  # already reported in step 2
    networks = [*loaded.values(), *vanished.values()]
    valid_of: dict[str, list[tuple[str, str]]] = {net.name: [] for net in networks}
    kept: list[tuple[str, str, str]] = []
    for record in records:
        triple = (record.network, record.container_id, record.ifname)
        if record.container_id in alive:
            kept.append(triple)
        if (record.container_id in alive or triple in failed) and record.network in valid_of:
            valid_of[record.network].append((record.container_id, record.ifname))
    outcomes = yield Batch(plans=[plan.gc(net, valid_of[net.name], opts) for net in networks], concurrent=concurrent)
    plugin_gc: list[str] = []
    skipped: list[str] = []
    for net, outcome in zip(networks, outcomes, strict=True):
        report = outcome.value
        if outcome.error is not None:
            errors.append(outcome.error)
            report = outcome.error.report if isinstance(outcome.error, MultiError) else None
        if not isinstance(report, plan.GCReport):
            continue
        if report.skipped:
            skipped.append(net.name)
        if report.plugin_gc:
            plugin_gc.append(net.name)
        removed.extend((net.name, cid, ifname) for cid, ifname in report.removed)
    gone = set(removed)
    for record in records:
        triple = (record.network, record.container_id, record.ifname)
        if record.container_id not in alive and triple not in gone:
            failed.add(triple)

    # 5. dead pods with nothing left: namespace and record
    pods_removed: list[str] = []
    netns_removed: list[str] = []
    left = {cid for _, cid, _ in failed}
    by_id: dict[str, PodSandbox] = {s.container_id: s for s in sandboxes}
    for container_id in dead:
        sandbox = by_id.get(container_id)
        if sandbox is None or container_id in left:
            continue
        try:
            if sandbox.netns_owned and (yield DeleteNetns(path=sandbox.netns)):
                netns_removed.append(sandbox.netns)
            yield ForgetPod(container_id=container_id)
            yield UnlockPod(container_id=container_id, forget=True)
            pods_removed.append(container_id)
        except CNIError as exc:
            errors.append(exc)

    report = PodGCReport(
        removed=removed,
        kept=kept,
        plugin_gc=plugin_gc,
        skipped=skipped,
        pods_removed=pods_removed,
        netns_removed=netns_removed,
        errors=errors,
    )
    if errors:
        raise MultiError(f"GC had {len(errors)} failure(s)", errors, report=report)
    return report
