"""The runtime layer's effects, and the blocking driver that performs them.

The pod operations (:mod:`~libcni_py.runtime.pod`, :mod:`~libcni_py.runtime.gc`,
:mod:`~libcni_py.runtime.readiness`) are plans in the style of
:mod:`libcni_py.core.plan`: generators that yield effects and receive outcomes.
They yield the core's effects (a readiness check resolves binaries itself)
and these:

* :class:`Batch` -- run several core plans (ADD, DEL, CHECK, GC, STATUS,
  VERSION of one network each) and return one :class:`Outcome` per plan.
  The trio driver runs them concurrently when asked; the blocking driver
  runs them in order.  This is the only place the two forms differ.
* :class:`LockPod` / :class:`UnlockPod` -- the pod's cross-process lock
  (:meth:`~libcni_py.edges.recordstore.CacheStore.lock_pod`), and :class:`LockGC`,
  held shared by every pod operation and exclusively by the GC; drivers
  release what a plan still holds when it ends, however it ends.
* pod records (:class:`LoadPod`, :class:`SavePod`, :class:`ForgetPod`,
  :class:`ListPods`), the cached attachments (:class:`ListAttachments`),
  namespaces (:class:`CreateNetns`, :class:`DeleteNetns`), :class:`PodAlive`
  and :class:`Fingerprint` (has a plugin binary changed since it was probed?).

:class:`SyncPodDriver` extends the core's blocking driver; the trio one is in
:mod:`libcni_py.runtime.run_trio`.
"""

from __future__ import annotations

import os

from .. import netns
from ..core import plan
from ..core.value import Value
from ..drivers.blocking import SyncDriver
from ..errors import CacheError, CNIError
from .sandbox import PODS_FOLDER, PodSandbox, decode_sandbox, encode_sandbox, pod_alive

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Generator
    from typing import Any, TypeAlias

    from ..edges.recordstore import CacheStore, LockHandle

__all__ = [
    "Batch",
    "CreateNetns",
    "DeleteNetns",
    "Fingerprint",
    "ForgetPod",
    "ListAttachments",
    "ListPods",
    "LoadPod",
    "LockGC",
    "LockPod",
    "Outcome",
    "PodAlive",
    "PodEffects",
    "PodPlan",
    "SavePod",
    "SyncPodDriver",
    "UnlockPod",
]


class Outcome(Value):
    """How one plan of a :class:`Batch` ended: its value, or its error."""

    value: Any = None
    error: CNIError | None = None


class Batch(Value):
    """Run these core plans -> ``tuple[Outcome, ...]`` in the same order.

    A plan's :class:`~libcni_py.errors.CNIError` becomes its outcome; other
    exceptions (bugs, cancellation, Ctrl-C) propagate.
    """

    plans: tuple[plan.Plan, ...]
    concurrent: bool = False


class LockPod(Value):
    """Take the pod's cross-process lock (waits; re-entrant within a plan) -> None."""

    container_id: str


class LockGC(Value):
    """Take the GC lock -> None (waits; a plan takes it once, before any pod
    lock): shared for pod operations, exclusive for the GC, so that the GC
    never sees a pod half set up or half torn down (CRI-O's ``gcLock``)."""

    exclusive: bool


class UnlockPod(Value):
    """Release the pod's lock -> None; ``forget`` also removes its lock file
    (the pod is gone)."""

    container_id: str
    forget: bool = False


class ListAttachments(Value):
    """The cached attachments -> ``(records, damaged)`` as
    :func:`libcni_py.core.plan.cached_attachments` returns them."""

    container_id: str = ""


class LoadPod(Value):
    """The pod's record -> ``PodSandbox | None``; a damaged one raises CacheError."""

    container_id: str


class SavePod(Value):
    """Write the pod's record atomically -> None."""

    sandbox: PodSandbox


class ForgetPod(Value):
    """Remove the pod's record -> bool (whether there was one)."""

    container_id: str


class ListPods(Value):
    """Every pod record -> ``(sandboxes, damaged)``, ``damaged`` being
    ``(file name, problem)`` pairs."""


class CreateNetns(Value):
    """Create the named namespace ``name`` (under /var/run/netns) -> its path."""

    name: str


class DeleteNetns(Value):
    """Delete the namespace at ``path`` -> bool (whether it existed)."""

    path: str


class PodAlive(Value):
    """Is this recorded pod alive (owner process running, or without owner,
    its namespace existing)? -> bool"""

    sandbox: PodSandbox


class Fingerprint(Value):
    """``(device, inode, size, mtime_ns)`` of a file -> tuple, or None if it is gone."""

    path: str


PodEffect = (
    LockPod
    | LockGC
    | UnlockPod
    | ListAttachments
    | LoadPod
    | SavePod
    | ForgetPod
    | ListPods
    | CreateNetns
    | DeleteNetns
    | PodAlive
    | Fingerprint
)

#: A runtime-layer plan: yields core and pod effects, returns its value.
PodPlan: TypeAlias = "Generator[plan.Effect | PodEffect | Batch, Any, Any]"


class PodEffects:
    """Performs the effects that are the same in both drivers (all but
    :class:`Batch` and waiting for :class:`LockPod`).  Mixed into a core driver."""

    store: CacheStore
    pod_locks: dict[str, LockHandle]
    gc_lock: LockHandle | None

    def perform_pod(self, effect: Any) -> Any:
        """Perform a pod effect other than :class:`Batch` and :class:`LockPod`."""
        if isinstance(effect, UnlockPod):
            handle = self.pod_locks.pop(effect.container_id, None)
            if handle is not None:
                self.store.unlock(handle, remove=effect.forget)
            return None
        if isinstance(effect, ListAttachments):
            return plan.cached_attachments(self.store.iter_files(effect.container_id), effect.container_id)
        if isinstance(effect, LoadPod):
            data = self.store.read_name(effect.container_id, folder=PODS_FOLDER)
            return None if data is None else decode_sandbox(data, self._pod_path(effect.container_id))
        if isinstance(effect, SavePod):
            self.store.write_name(effect.sandbox.container_id, encode_sandbox(effect.sandbox), folder=PODS_FOLDER)
            return None
        if isinstance(effect, ForgetPod):
            return self.store.remove_name(effect.container_id, folder=PODS_FOLDER)
        if isinstance(effect, ListPods):
            return self._list_pods()
        if isinstance(effect, CreateNetns):
            return netns.create(effect.name)
        if isinstance(effect, DeleteNetns):
            return netns.delete(effect.path)
        if isinstance(effect, PodAlive):
            return pod_alive(effect.sandbox)
        if isinstance(effect, Fingerprint):
            try:
                st = os.stat(effect.path)
            except OSError:
                return None
            return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        raise TypeError(f"not a pod effect: {effect!r}")

    def _pod_path(self, name: str) -> str:
        return os.path.join(self.store.cache_dir, *PODS_FOLDER, name)

    def _list_pods(self) -> tuple[list[PodSandbox], list[tuple[str, str]]]:
        sandboxes: list[PodSandbox] = []
        damaged: list[tuple[str, str]] = []
        for name in self.store.names(folder=PODS_FOLDER):
            try:
                data = self.store.read_name(name, folder=PODS_FOLDER)
                if data is not None:
                    sandboxes.append(decode_sandbox(data, self._pod_path(name)))
            except CacheError as exc:
                damaged.append((name, exc.msg))
        return sandboxes, damaged

    def release_pods(self) -> None:
        """Release every pod lock still held, then the GC lock."""
        try:
            while self.pod_locks:
                _, handle = self.pod_locks.popitem()
                self.store.unlock(handle)
        finally:
            gc_lock, self.gc_lock = self.gc_lock, None
            if gc_lock is not None:
                self.store.unlock(gc_lock)


class SyncPodDriver(PodEffects, SyncDriver):
    """Runs runtime-layer plans with blocking calls; a :class:`Batch` runs its
    plans one after another, each with a fresh core driver (as
    :class:`~libcni_py.api.CNI` runs one operation)."""

    def __init__(self, store: CacheStore, **driver_kwargs: Any) -> None:
        super().__init__(store, **driver_kwargs)
        self.driver_kwargs = driver_kwargs
        self.pod_locks = {}
        self.gc_lock = None

    def perform(self, effect: plan.Effect | PodEffect | Batch) -> Any:
        """Perform one effect and return its outcome."""
        if isinstance(effect, Batch):
            return tuple(self._run_one(steps) for steps in effect.plans)
        if isinstance(effect, LockGC):
            if self.gc_lock is None:
                self.gc_lock = self.store.lock_gc(exclusive=effect.exclusive, timeout=self.timeout)
            return None
        if isinstance(effect, LockPod):
            if effect.container_id not in self.pod_locks:
                self.pod_locks[effect.container_id] = self.store.lock_pod(effect.container_id, timeout=self.timeout)
            return None
        if isinstance(effect, PodEffect):
            return self.perform_pod(effect)
        return super().perform(effect)

    def run(self, steps: PodPlan) -> Any:
        """Drive a runtime-layer plan to its end (see :meth:`SyncDriver.run`)."""
        return super().run(steps)  # type: ignore[arg-type]

    def _run_one(self, steps: plan.Plan) -> Outcome:
        try:
            return Outcome(value=SyncDriver(self.store, **self.driver_kwargs).run(steps))
        except CNIError as exc:
            return Outcome(error=exc)

    def release_all(self) -> None:
        """Release pod locks and attachment locks the plan still holds."""
        try:
            self.release_pods()
        finally:
            super().release_all()
