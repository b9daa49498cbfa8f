"""Garbage collection over the runtime: libcni_py's dead pods, and nothing
that is not proven dead.

The cache dir is shared with containerd, CRI-O, podman and Go's cnitool, so
this GC acts on **libcni_py's own pods** (those with a pod record, see
:mod:`libcni_py.runtime.sandbox`) and leaves every other attachment alone,
saying whose it looks like (:mod:`libcni_py.core.ownership`).  Asked to
(``include_foreign``), it also collects other attachments, but only those
proven dead: namespace gone or no longer a namespace, or (``live_sandboxes``
from a CRI runtime) a CRI sandbox the runtime no longer lists.  :func:`gc`

1. takes the GC lock exclusively: pod operations hold it shared (CRI-O's
   ``gcLock``, here across processes), so none is under way while the GC
   decides; then judges the pods the runtime layer recorded (unless told
   not to): a pod being set up is alive while the process setting it up
   runs (killed half-way: dead, even though its namespace exists); a pod set
   up is alive while its owner process runs, or without owner while its
   namespace exists -- even if the caller's list does not name it (it may
   have been made after the list was drawn up);
2. deletes each cached attachment of a dead pod, with the configuration
   it was added with (the current one when it is the same);
3. for every loaded network -- the conf dir's valid networks and the
   loopback network -- runs the network GC of :mod:`libcni_py.core.operations`
   (:meth:`libcni_py.CNI.gc`) with every kept attachment as valid: it
   deletes only the foreign attachments asked for and proven dead, and from
   spec 1.1.0 each plugin gets ``GC`` with the attachments kept, so no
   plugin releases what a live container uses;
4. for networks known only from the cache (their conf file is gone), the
   same with the cached configuration;
5. removes dead pods whose attachments are all gone: their namespace, if the
   runtime layer created it, and their record.

It never deletes: an attachment of a live pod; another runtime's attachment
unless asked, and then never one whose namespace is alive or cannot be
told; a namespace the runtime layer did not create.  The report says why it
kept each attachment.  Failures are collected, never fatal; the report says
what was done, and :class:`~libcni_py.errors.MultiError` (with ``.report``)
is raised at the end if anything failed.  Attachments whose DEL failed are
passed as valid to the network GC, so that it does not retry them with
another configuration.
"""

from __future__ import annotations

from ..core import operations as ops
from ..core.effects import Notice
from ..core.ownership import owner_of
from ..core.record import record_netns, runtime_conf
from ..core.reports import GCReport
from ..core.value import Value
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
    UnlockPod,
)
from .pod import network_for_record
from .sandbox import liveness_reason

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Collection, Iterable

    from ..core.effects import Plan
    from ..core.inputs import Options
    from ..core.netconf import NetworkConfigList
    from ..core.record import ContainerIfname
    from .confdir import ConfDirState
    from .sandbox import PodSandbox

__all__ = ["PodGCReport", "gc"]


class PodGCReport(Value):
    """What a runtime GC did.

    Attributes:
        removed: ``(network, container_id, ifname)`` of each attachment deleted.
        kept: ``(network, container_id, ifname)`` of the attachments kept.
        kept_reasons: ``(network, container_id, ifname, reason)`` for each:
            why it was kept ("its owner process 4242 runs", "podman's
            (...): pod gc leaves other runtimes' attachments alone", ...).
        plugin_gc: networks whose plugins were sent GC (spec >= 1.1.0).
        skipped: networks with ``disableGC`` (nothing done for them).
        pods_removed: container IDs of the dead pods removed (records).
        netns_removed: namespaces deleted with those pods.
        errors: what failed.
    """

    removed: tuple[tuple[str, str, str], ...] = ()
    kept: tuple[tuple[str, str, str], ...] = ()
    kept_reasons: tuple[tuple[str, str, str, str], ...] = ()
    plugin_gc: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()
    pods_removed: tuple[str, ...] = ()
    netns_removed: tuple[str, ...] = ()
    errors: tuple[CNIError, ...] = ()


def gc(
    live: Iterable[str],
    state: ConfDirState | None,
    loopback: NetworkConfigList | None,
    opts: Options,
    *,
    concurrent: bool,
    judge_records: bool = True,
    include_foreign: bool = False,
    live_sandboxes: Collection[str] | None = None,
) -> Plan[PodGCReport]:
    """The runtime GC (see the module docstring) as a plan.

    Args:
        live: container IDs of pods that are alive.
        state: the conf dir as loaded (None: no configured network).
        loopback: the loopback network, or None.
        judge_records: also keep the recorded pods that are alive by their
            record (setting-up process or owner running, or namespace
            existing); False: ``live`` alone decides for libcni_py's pods.
        include_foreign: also collect attachments without a libcni_py pod
            record (other runtimes', cnitool's) -- only those proven dead.
        live_sandboxes: the sandboxes a CRI runtime lists: their
            attachments are kept; foreign ones that look like CRI sandboxes
            and are not listed are dead.

    Returns:
        :class:`PodGCReport`.
    """
    yield from LockGC(exclusive=True)
    alive = set(live)
    why: dict[str, str] = dict.fromkeys(alive, "listed as live")
    if live_sandboxes is not None:
        for container_id in live_sandboxes:
            alive.add(container_id)
            why[container_id] = f"the CRI runtime says sandbox {container_id[:12]} is alive"
    records, damaged = yield from ListAttachments()
    sandboxes, damaged_pods = yield from ListPods()
    for filename, problem in damaged:
        yield from Notice(text=f"cache file {filename}: {problem}; not an attachment GC can act on")
    for filename, problem in damaged_pods:
        yield from Notice(text=f"pod record {filename}: {problem}; that pod is left alone")
        alive.add(filename)
        why[filename] = "its pod record cannot be read"
    ours = {s.container_id for s in sandboxes} | {name for name, _ in damaged_pods}
    for sandbox in sandboxes:
        if sandbox.container_id in alive:
            continue
        running = judge_records and (yield from PodAlive(sandbox=sandbox))
        if running:
            alive.add(sandbox.container_id)
        why[sandbox.container_id] = liveness_reason(sandbox, running) if judge_records else "not listed as live"
    dead = sorted(ours - alive)
    for container_id in dead:  # no pod operation runs (GC lock); taken so that their lock files go with them
        yield from LockPod(container_id=container_id)

    loaded: dict[str, NetworkConfigList] = {}
    if loopback is not None:
        loaded[loopback.name] = loopback
    for net in state.networks if state is not None else ():
        loaded.setdefault(net.name, net)

    removed: list[tuple[str, str, str]] = []
    errors: list[CNIError] = []
    failed: set[tuple[str, str, str]] = set()
    kept_reasons: list[tuple[str, str, str, str]] = []

    # 2. the dead pods' attachments: proven dead by their records; DEL each
    # with the configuration it was added with (the current one when the same)
    mine = []
    for record in records:
        if record.container_id not in dead:
            continue
        try:
            mine.append((record, network_for_record(record, state, loopback)))
        except CacheError as exc:
            errors.append(exc)
            failed.add((record.network, record.container_id, record.ifname))
    outcomes = yield from Batch(
        plans=[ops.delete(net, runtime_conf(rec), opts) for rec, net in mine], concurrent=concurrent
    )
    for (record, _), outcome in zip(mine, outcomes, strict=True):
        triple = (record.network, record.container_id, record.ifname)
        if outcome.error is None:
            removed.append(triple)
        else:
            errors.append(outcome.error)
            failed.add(triple)

    # 3. and 4. network GC: loaded networks with their current configuration,
    # vanished ones with the newest cached configuration.  Valid (kept): live
    # pods' attachments, failed ones, and other runtimes' unless asked for.
    vanished: dict[str, NetworkConfigList] = {}
    for record in records:
        if record.network not in loaded:
            try:
                vanished[record.network] = network_for_record(record, None, None)
            except CacheError:
                continue  # reported in step 2, or kept as foreign below
    networks = [*loaded.values(), *vanished.values()]
    valid_of: dict[str, list[ContainerIfname]] = {net.name: [] for net in networks}
    kept: list[tuple[str, str, str]] = []
    for record in records:
        triple = (record.network, record.container_id, record.ifname)
        if triple in failed or record.container_id in dead:
            if triple in failed and record.network in valid_of:
                valid_of[record.network].append((record.container_id, record.ifname))
            continue
        reason = why.get(record.container_id)
        if reason is None and not include_foreign:
            netns = record_netns(record)
            owner = owner_of(record.container_id, netns, record.cni_args)
            whose = f"{owner.name}'s ({owner.evidence})" if owner.evidence else "not libcni_py's (no pod record)"
            reason = f"{whose}: pod gc leaves other runtimes' attachments alone"
        if reason is not None:
            kept.append(triple)
            kept_reasons.append((*triple, reason))
            if record.network in valid_of:
                valid_of[record.network].append((record.container_id, record.ifname))
    outcomes = yield from Batch(
        plans=[ops.gc(net, valid_of[net.name], opts, live_sandboxes=live_sandboxes) for net in networks],
        concurrent=concurrent,
    )
    plugin_gc: list[str] = []
    skipped: list[str] = []
    valid_triples = set(kept)
    for net, outcome in zip(networks, outcomes, strict=True):
        report = outcome.value
        if outcome.error is not None:
            errors.append(outcome.error)
            report = outcome.error.report if isinstance(outcome.error, MultiError) else None
        if not isinstance(report, GCReport):
            continue
        if report.skipped:
            skipped.append(net.name)
        if report.plugin_gc:
            plugin_gc.append(net.name)
        removed.extend((net.name, cid, ifname) for cid, ifname in report.removed)
        for cid, ifname, reason in report.kept_reasons:  # foreign attachments the network GC kept
            triple = (net.name, cid, ifname)
            if triple not in valid_triples and triple not in failed:
                kept.append(triple)
                kept_reasons.append((*triple, reason))
    gone = set(removed)
    for record in records:
        triple = (record.network, record.container_id, record.ifname)
        if record.container_id in dead and triple not in gone:
            failed.add(triple)

    # 5. dead pods with nothing left: namespace and record
    pods_removed: list[str] = []
    netns_removed: list[str] = []
    left = {cid for _, cid, _ in failed}
    by_id: dict[str, PodSandbox] = {s.container_id: s for s in sandboxes}
    for container_id in dead:
        pod = by_id.get(container_id)
        if pod is None or container_id in left:
            continue
        try:
            if pod.netns_owned and (yield from DeleteNetns(path=pod.netns)):
                netns_removed.append(pod.netns)
            yield from ForgetPod(container_id=container_id)
            yield from UnlockPod(container_id=container_id, forget=True)
            pods_removed.append(container_id)
        except CNIError as exc:
            errors.append(exc)

    report = PodGCReport(
        removed=tuple(removed),
        kept=tuple(kept),
        kept_reasons=tuple(kept_reasons),
        plugin_gc=tuple(plugin_gc),
        skipped=tuple(skipped),
        pods_removed=tuple(pods_removed),
        netns_removed=tuple(netns_removed),
        errors=tuple(errors),
    )
    if errors:
        raise MultiError(f"GC had {len(errors)} failure(s)", errors, report=report)
    return report
