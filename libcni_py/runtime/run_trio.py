"""The trio driver of the runtime layer's plans (see :mod:`libcni_py.runtime.effects`).

A :class:`~libcni_py.runtime.effects.Batch` marked ``concurrent`` runs its
plans in one nursery, each with a fresh :class:`~libcni_py.drivers.async_trio.TrioDriver`
(so each holds its own attachment locks); waiting for a pod lock polls, so it
stays cancellable; file and namespace work runs in worker threads.
"""

from __future__ import annotations

import trio

from ..drivers.async_trio import TrioDriver, wait_for_lock
from ..edges.recordstore import GC_LOCK, POD_LOCKS
from ..errors import CNIError
from .effects import Batch, LockGC, LockPod, Outcome, PodEffect, PodEffects

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..core import plan
    from ..edges.recordstore import CacheStore
    from .effects import PodPlan

__all__ = ["TrioPodDriver"]


class TrioPodDriver(PodEffects, TrioDriver):
    """Runs runtime-layer plans in trio."""

    def __init__(self, store: CacheStore, **driver_kwargs: Any) -> None:
        super().__init__(store, **driver_kwargs)
        self.driver_kwargs = driver_kwargs
        self.pod_locks = {}
        self.gc_lock = None

    async def perform(self, effect: plan.Effect | PodEffect | Batch) -> Any:
        """Perform one effect and return its outcome."""
        if isinstance(effect, Batch):
            outcomes: list[Outcome] = [Outcome()] * len(effect.plans)
            if not effect.concurrent:
                for index, steps in enumerate(effect.plans):
                    outcomes[index] = await self._run_one(steps)
                return tuple(outcomes)

            async def one(index: int, steps: plan.Plan) -> None:
                outcomes[index] = await self._run_one(steps)

            async with trio.open_nursery() as nursery:
                for index, steps in enumerate(effect.plans):
                    nursery.start_soon(one, index, steps)
            return tuple(outcomes)
        if isinstance(effect, LockGC):
            if self.gc_lock is None:
                exclusive = effect.exclusive
                self.gc_lock = await wait_for_lock(
                    lambda: self.store.try_lock_gc(exclusive=exclusive),
                    self.timeout,
                    lambda waited: self.store.lock_timeout("lock", GC_LOCK, waited),
                )
            return None
        if isinstance(effect, LockPod):
            if effect.container_id not in self.pod_locks:
                cid = effect.container_id
                self.pod_locks[cid] = await wait_for_lock(
                    lambda: self.store.try_lock_pod(cid),
                    self.timeout,
                    lambda waited: self.store.lock_timeout(cid, POD_LOCKS, waited),
                )
            return None
        if isinstance(effect, PodEffect):
            return await trio.to_thread.run_sync(self.perform_pod, effect)
        return await super().perform(effect)

    async def run(self, steps: PodPlan) -> Any:
        """Drive a runtime-layer plan to its end (see :meth:`TrioDriver.run`)."""
        return await super().run(steps)  # type: ignore[arg-type]

    async def _run_one(self, steps: plan.Plan) -> Outcome:
        try:
            return Outcome(value=await TrioDriver(self.store, **self.driver_kwargs).run(steps))
        except CNIError as exc:
            return Outcome(error=exc)

    def release_all(self) -> None:
        """Release pod locks and attachment locks the plan still holds."""
        try:
            self.release_pods()
        finally:
            super().release_all()
