"""The runtime layer's effects, and the driver that performs them.

The pod operations (:mod:`~libcni_py.runtime.pod`, :mod:`~libcni_py.runtime.gc`,
:mod:`~libcni_py.runtime.readiness`, and the manager's calls in
:mod:`~libcni_py.runtime.manager`) are plans in the style of
:mod:`libcni_py.core.operations`: generators that delegate to effects
(``x = yield from Eff(...)``, typed) and get their outcomes.  They yield the
core's effects (:mod:`libcni_py.core.effects`) and these:

* :class:`Batch` -- run several core plans (ADD, DEL, CHECK, GC, STATUS,
  VERSION of one network each) and return one :class:`Outcome` per plan.
  The trio driver runs them concurrently when asked; the blocking driver
  runs them in order.
* :class:`LockPod` / :class:`UnlockPod` -- the pod's cross-process lock
  (:meth:`~libcni_py.edges.recordstore.CacheStore.lock_pod`), and :class:`LockGC`,
  held shared by every pod operation and exclusively by the GC; drivers
  release what a plan still holds when it ends, however it ends.
* pod records (:class:`LoadPod`, :class:`SavePod`, :class:`ForgetPod`,
  :class:`ListPods`), the cached attachments (:class:`ListAttachments`),
  namespaces (:class:`CreateNetns`, :class:`DeleteNetns`), :class:`PodAlive`,
  :class:`Fingerprint` (has a plugin binary changed since it was probed?)
  and the conf dir's networks (:class:`ReadConfDir`).

:class:`PodHandlers` adds one abstract method per pod effect to the core's
:class:`~libcni_py.drivers.handlers.Handlers`; :class:`PodDriver` fills
them in once, over the driver's :class:`~libcni_py.drivers.base.IO` -- so the
blocking form (:class:`SyncPodDriver`) and the trio form
(:class:`libcni_py.runtime.run_trio.TrioPodDriver`) differ only in that.
"""

from __future__ import annotations

import os
from abc import abstractmethod

from .. import netns
from ..core.effects import Effect, handled_by
from ..core.record import cached_attachments
from ..core.value import Value
from ..drivers.base import Driver, complete
from ..drivers.blocking import BLOCKING
from ..drivers.handlers import Handlers
from ..drivers.scripted import ScriptedDriver
from ..edges.recordstore import POD_LOCKS
from ..errors import CacheError, CNIError, ConfigError
from .sandbox import PODS_FOLDER, PodSandbox, decode_sandbox, encode_sandbox, pod_alive

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any, TypeVar

    from ..core.effects import Plan
    from ..core.record import CacheRecord
    from ..drivers.base import IO
    from ..edges.recordstore import CacheStore, LockHandle
    from .confdir import ConfDir, ConfDirState

    T = TypeVar("T")

__all__ = [
    "POD_EFFECTS",
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
    "PodDriver",
    "PodHandlers",
    "ReadConfDir",
    "SavePod",
    "ScriptedPodDriver",
    "SyncPodDriver",
    "UnlockPod",
]


class Outcome(Value):
    """How one plan of a :class:`Batch` ended: its value, or its error."""

    value: Any = None
    error: CNIError | None = None


@handled_by("batch")
class Batch(Effect["tuple[Outcome, ...]"]):
    """Run these core plans -> ``tuple[Outcome, ...]`` in the same order.

    A plan's :class:`~libcni_py.errors.CNIError` becomes its outcome; other
    exceptions (bugs, cancellation, Ctrl-C) propagate.
    """

    __slots__ = ("plans", "concurrent")
    plans: tuple[Plan[Any], ...]
    concurrent: bool

    def __init__(self, *, plans: Iterable[Plan[Any]], concurrent: bool = False) -> None:
        self._set(plans=tuple(plans), concurrent=concurrent)


@handled_by("lock_pod")
class LockPod(Effect[None]):
    """Take the pod's cross-process lock (waits; re-entrant within a plan) -> None."""

    __slots__ = ("container_id",)
    container_id: str

    def __init__(self, *, container_id: str) -> None:
        self._set(container_id=container_id)


@handled_by("lock_gc")
class LockGC(Effect[None]):
    """Take the GC lock -> None (waits; a plan takes it once, before any pod
    lock): shared for pod operations, exclusive for the GC, so that the GC
    never sees a pod half set up or half torn down (CRI-O's ``gcLock``)."""

    __slots__ = ("exclusive",)
    exclusive: bool

    def __init__(self, *, exclusive: bool) -> None:
        self._set(exclusive=exclusive)


@handled_by("unlock_pod")
class UnlockPod(Effect[None]):
    """Release the pod's lock -> None; ``forget`` also removes its lock file
    (the pod is gone)."""

    __slots__ = ("container_id", "forget")
    container_id: str
    forget: bool

    def __init__(self, *, container_id: str, forget: bool = False) -> None:
        self._set(container_id=container_id, forget=forget)


@handled_by("list_attachments")
class ListAttachments(Effect["tuple[list[CacheRecord], list[tuple[str, str]]]"]):
    """The cached attachments -> ``(records, damaged)`` as
    :func:`libcni_py.core.record.cached_attachments` returns them."""

    __slots__ = ("container_id",)
    container_id: str

    def __init__(self, *, container_id: str = "") -> None:
        self._set(container_id=container_id)


@handled_by("load_pod")
class LoadPod(Effect["PodSandbox | None"]):
    """The pod's record -> ``PodSandbox | None``; a damaged one raises CacheError."""

    __slots__ = ("container_id",)
    container_id: str

    def __init__(self, *, container_id: str) -> None:
        self._set(container_id=container_id)


@handled_by("save_pod")
class SavePod(Effect[None]):
    """Write the pod's record atomically -> None."""

    __slots__ = ("sandbox",)
    sandbox: PodSandbox

    def __init__(self, *, sandbox: PodSandbox) -> None:
        self._set(sandbox=sandbox)


@handled_by("forget_pod")
class ForgetPod(Effect[bool]):
    """Remove the pod's record -> bool (whether there was one)."""

    __slots__ = ("container_id",)
    container_id: str

    def __init__(self, *, container_id: str) -> None:
        self._set(container_id=container_id)


@handled_by("list_pods")
class ListPods(Effect["tuple[list[PodSandbox], list[tuple[str, str]]]"]):
    """Every pod record -> ``(sandboxes, damaged)``, ``damaged`` being
    ``(file name, problem)`` pairs."""

    __slots__ = ()

    def __init__(self) -> None:
        self._set()


@handled_by("create_netns")
class CreateNetns(Effect[str]):
    """Create the named namespace ``name`` (under /var/run/netns) -> its path."""

    __slots__ = ("name",)
    name: str

    def __init__(self, *, name: str) -> None:
        self._set(name=name)


@handled_by("delete_netns")
class DeleteNetns(Effect[bool]):
    """Delete the namespace at ``path`` -> bool (whether it existed)."""

    __slots__ = ("path",)
    path: str

    def __init__(self, *, path: str) -> None:
        self._set(path=path)


@handled_by("pod_alive")
class PodAlive(Effect[bool]):
    """Is this recorded pod alive (owner process running, or without owner,
    its namespace existing)? -> bool"""

    __slots__ = ("sandbox",)
    sandbox: PodSandbox

    def __init__(self, *, sandbox: PodSandbox) -> None:
        self._set(sandbox=sandbox)


@handled_by("fingerprint")
class Fingerprint(Effect["tuple[int, int, int, int] | None"]):
    """``(device, inode, size, mtime_ns)`` of a file -> tuple, or None if it is gone."""

    __slots__ = ("path",)
    path: str

    def __init__(self, *, path: str) -> None:
        self._set(path=path)


@handled_by("read_conf_dir")
class ReadConfDir(Effect["ConfDirState | None"]):
    """The conf dir's networks now (re-read if it changed) -> ``ConfDirState``.

    ``required=False`` (teardown, check and GC, which must work with a broken
    conf dir: cached configurations suffice): a conf dir that cannot be
    listed gives None, with a notice, instead of raising ConfigError.
    """

    __slots__ = ("confdir", "required")
    confdir: ConfDir
    required: bool

    def __init__(self, *, confdir: ConfDir, required: bool = True) -> None:
        self._set(confdir=confdir, required=required)


#: Every effect of the runtime layer, in the order :class:`PodHandlers` declares them.
POD_EFFECTS = (
    Batch,
    LockPod,
    LockGC,
    UnlockPod,
    ListAttachments,
    LoadPod,
    SavePod,
    ForgetPod,
    ListPods,
    CreateNetns,
    DeleteNetns,
    PodAlive,
    Fingerprint,
    ReadConfDir,
)


class PodHandlers(Handlers):
    """The core's handlers and one per pod effect (see each effect)."""

    @abstractmethod
    async def batch(self, effect: Batch) -> tuple[Outcome, ...]:
        """Run the plans; one outcome each, in order."""

    @abstractmethod
    async def lock_pod(self, effect: LockPod) -> None:
        """Take the pod's lock once per plan (waits)."""

    @abstractmethod
    async def lock_gc(self, effect: LockGC) -> None:
        """Take the GC lock once per plan (waits)."""

    @abstractmethod
    async def unlock_pod(self, effect: UnlockPod) -> None:
        """Release the pod's lock."""

    @abstractmethod
    async def list_attachments(self, effect: ListAttachments) -> tuple[list[CacheRecord], list[tuple[str, str]]]:
        """The cached attachments, decoded."""

    @abstractmethod
    async def load_pod(self, effect: LoadPod) -> PodSandbox | None:
        """The pod's record."""

    @abstractmethod
    async def save_pod(self, effect: SavePod) -> None:
        """Write the pod's record."""

    @abstractmethod
    async def forget_pod(self, effect: ForgetPod) -> bool:
        """Remove the pod's record."""

    @abstractmethod
    async def list_pods(self, effect: ListPods) -> tuple[list[PodSandbox], list[tuple[str, str]]]:
        """Every pod record."""

    @abstractmethod
    async def create_netns(self, effect: CreateNetns) -> str:
        """Create a named namespace."""

    @abstractmethod
    async def delete_netns(self, effect: DeleteNetns) -> bool:
        """Delete a namespace."""

    @abstractmethod
    async def pod_alive(self, effect: PodAlive) -> bool:
        """Whether a recorded pod is alive."""

    @abstractmethod
    async def fingerprint(self, effect: Fingerprint) -> tuple[int, int, int, int] | None:
        """A file's identity and version."""

    @abstractmethod
    async def read_conf_dir(self, effect: ReadConfDir) -> ConfDirState | None:
        """The conf dir's networks."""


class PodDriver(Driver, PodHandlers):
    """Performs the core's and the pod effects (see the module); a
    :class:`Batch` runs each plan with a fresh core :class:`Driver` of the
    same settings (so each holds its own attachment locks), as
    :class:`~libcni_py.api.CNI` runs one operation."""

    def __init__(self, store: CacheStore, *, io: IO | None = None, timeout: float | None, **settings: Any) -> None:
        super().__init__(store, io=io, timeout=timeout, **settings)
        self.pod_locks: dict[str, LockHandle] = {}
        self.gc_lock: LockHandle | None = None

    async def batch(self, effect: Batch) -> tuple[Outcome, ...]:
        """Run the plans, concurrently if asked and the form can."""
        thunks = [_Runner(Driver(self.store, **self.settings()), steps) for steps in effect.plans]
        return tuple(await self.io.each(thunks, effect.concurrent))

    async def lock_gc(self, effect: LockGC) -> None:
        """Take the GC lock, shared or exclusive, once per plan."""
        if self.gc_lock is None:
            self.gc_lock = await self.take_gc_lock(exclusive=effect.exclusive)

    async def lock_pod(self, effect: LockPod) -> None:
        """Take the pod's lock once per plan."""
        cid = effect.container_id
        if cid not in self.pod_locks:
            store = self.store
            self.pod_locks[cid] = await self.io.lock(
                lambda limit: store.lock_pod(cid, timeout=limit),
                lambda: store.try_lock_pod(cid),
                lambda waited: store.lock_timeout(cid, POD_LOCKS, waited),
                self.timeout,
            )

    async def unlock_pod(self, effect: UnlockPod) -> None:
        """Release the pod's lock if this plan holds it."""
        handle = self.pod_locks.pop(effect.container_id, None)
        if handle is not None:
            await self.io.slow(self._unlock, handle, effect.forget)

    async def list_attachments(self, effect: ListAttachments) -> tuple[list[CacheRecord], list[tuple[str, str]]]:
        """:func:`~libcni_py.core.record.cached_attachments` of the store's listing."""
        return await self.io.slow(self._list_attachments, effect.container_id)

    def _list_attachments(self, container_id: str) -> tuple[list[CacheRecord], list[tuple[str, str]]]:
        return cached_attachments(self.store.iter_files(container_id), container_id)

    async def load_pod(self, effect: LoadPod) -> PodSandbox | None:
        """Read and decode the pod's record."""
        return await self.io.slow(self._load_pod, effect.container_id)

    def _load_pod(self, container_id: str) -> PodSandbox | None:
        data = self.store.read_name(container_id, folder=PODS_FOLDER)
        return None if data is None else decode_sandbox(data, self._pod_path(container_id))

    async def save_pod(self, effect: SavePod) -> None:
        """Write the pod's record."""
        await self.io.slow(self._save_pod, effect.sandbox)

    def _save_pod(self, sandbox: PodSandbox) -> None:
        self.store.write_name(sandbox.container_id, encode_sandbox(sandbox), folder=PODS_FOLDER)

    async def forget_pod(self, effect: ForgetPod) -> bool:
        """Remove the pod's record."""
        return await self.io.slow(self._forget_pod, effect.container_id)

    def _forget_pod(self, container_id: str) -> bool:
        return self.store.remove_name(container_id, folder=PODS_FOLDER)

    async def list_pods(self, effect: ListPods) -> tuple[list[PodSandbox], list[tuple[str, str]]]:
        """Every pod record, and the damaged ones."""
        return await self.io.slow(self._list_pods)

    async def create_netns(self, effect: CreateNetns) -> str:
        """:func:`libcni_py.netns.create`."""
        return await self.io.slow(netns.create, effect.name)

    async def delete_netns(self, effect: DeleteNetns) -> bool:
        """:func:`libcni_py.netns.delete`."""
        return await self.io.slow(netns.delete, effect.path)

    async def pod_alive(self, effect: PodAlive) -> bool:
        """:func:`libcni_py.runtime.sandbox.pod_alive`."""
        return await self.io.slow(pod_alive, effect.sandbox)

    async def fingerprint(self, effect: Fingerprint) -> tuple[int, int, int, int] | None:
        """``stat`` the file."""
        return await self.io.slow(_fingerprint, effect.path)

    async def read_conf_dir(self, effect: ReadConfDir) -> ConfDirState | None:
        """The conf dir's state (files are read: off the event loop)."""
        try:
            return await self.io.slow(effect.confdir.current)
        except ConfigError as exc:
            if effect.required:
                raise
            if self.on_notice is not None:
                self.on_notice(f"{exc.one_line()}; using cached configurations only")
            return None

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

    def release_all(self) -> None:
        """Release every pod lock still held, then the GC lock, then the
        attachment locks."""
        try:
            while self.pod_locks:
                _, handle = self.pod_locks.popitem()
                self.store.unlock(handle)
        finally:
            gc_lock, self.gc_lock = self.gc_lock, None
            try:
                if gc_lock is not None:
                    self.store.unlock(gc_lock)
            finally:
                super().release_all()


class _Runner:
    """One plan of a :class:`Batch`, as a thunk: its value or its CNIError."""

    __slots__ = ("driver", "steps")

    def __init__(self, driver: Driver, steps: Plan[Any]) -> None:
        self.driver = driver
        self.steps = steps

    async def __call__(self) -> Outcome:
        try:
            return Outcome(value=await self.driver.drive(self.steps))
        except CNIError as exc:
            return Outcome(error=exc)


def _fingerprint(path: str) -> tuple[int, int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class SyncPodDriver(PodDriver):
    """Runs runtime-layer plans with blocking calls; a :class:`Batch` runs its
    plans one after another."""

    default_io = BLOCKING

    def run(self, steps: Plan[T]) -> T:
        """Drive a runtime-layer plan to its end (see :meth:`~libcni_py.drivers.base.Stepper.drive`)."""
        return complete(self.drive(steps))


class ScriptedPodDriver(ScriptedDriver, PodHandlers):
    """:class:`~libcni_py.drivers.scripted.ScriptedDriver` for pod plans: pod
    effects are answered from the script too, except :class:`Batch`, whose
    plans are run here, one after another, against the same script (their
    effects are recorded in :attr:`asked` as well); a plan's CNIError
    becomes its :class:`Outcome`."""

    async def batch(self, effect: Batch) -> tuple[Outcome, ...]:
        """Run each plan against the script."""
        self.asked.append(effect)
        outcomes = []
        for steps in effect.plans:
            try:
                outcomes.append(Outcome(value=await self.drive(steps)))
            except CNIError as exc:
                outcomes.append(Outcome(error=exc))
        return tuple(outcomes)

    async def lock_pod(self, effect: LockPod) -> None:
        """The scripted answer (None unless scripted)."""
        self._silent(effect)

    async def lock_gc(self, effect: LockGC) -> None:
        """The scripted answer (None unless scripted)."""
        self._silent(effect)

    async def unlock_pod(self, effect: UnlockPod) -> None:
        """The scripted answer (None unless scripted)."""
        self._silent(effect)

    async def list_attachments(self, effect: ListAttachments) -> tuple[list[CacheRecord], list[tuple[str, str]]]:
        """The scripted answer."""
        found: tuple[list[CacheRecord], list[tuple[str, str]]] = self.answer(effect)
        return found

    async def load_pod(self, effect: LoadPod) -> PodSandbox | None:
        """The scripted answer."""
        sandbox: PodSandbox | None = self.answer(effect)
        return sandbox

    async def save_pod(self, effect: SavePod) -> None:
        """The scripted answer (None unless scripted)."""
        self._silent(effect)

    async def forget_pod(self, effect: ForgetPod) -> bool:
        """The scripted answer."""
        forgotten: bool = self.answer(effect)
        return forgotten

    async def list_pods(self, effect: ListPods) -> tuple[list[PodSandbox], list[tuple[str, str]]]:
        """The scripted answer."""
        found: tuple[list[PodSandbox], list[tuple[str, str]]] = self.answer(effect)
        return found

    async def create_netns(self, effect: CreateNetns) -> str:
        """The scripted answer."""
        path: str = self.answer(effect)
        return path

    async def delete_netns(self, effect: DeleteNetns) -> bool:
        """The scripted answer."""
        deleted: bool = self.answer(effect)
        return deleted

    async def pod_alive(self, effect: PodAlive) -> bool:
        """The scripted answer."""
        alive: bool = self.answer(effect)
        return alive

    async def fingerprint(self, effect: Fingerprint) -> tuple[int, int, int, int] | None:
        """The scripted answer."""
        found: tuple[int, int, int, int] | None = self.answer(effect)
        return found

    async def read_conf_dir(self, effect: ReadConfDir) -> ConfDirState | None:
        """The scripted answer."""
        state: ConfDirState | None = self.answer(effect)
        return state

    def _silent(self, effect: Effect[None]) -> None:
        if type(effect) in self.script:
            self.answer(effect)
        else:
            self.asked.append(effect)
