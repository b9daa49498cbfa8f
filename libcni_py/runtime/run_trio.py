"""The trio form of the runtime layer's driver (see :mod:`libcni_py.runtime.effects`).

:class:`~libcni_py.runtime.effects.PodDriver` with the trio form of the
operations that wait (:class:`~libcni_py.drivers.async_trio.TrioIO`): a
:class:`~libcni_py.runtime.effects.Batch` marked ``concurrent`` runs its
plans in one nursery, waiting for a pod lock polls (so it stays
cancellable), file and namespace work runs in worker threads.  Kept apart
so that the blocking form does not import trio.
"""

from __future__ import annotations

from ..drivers.async_trio import TRIO
from .effects import PodDriver

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TypeVar

    from ..core.effects import Plan

    T = TypeVar("T")

__all__ = ["TrioPodDriver"]


class TrioPodDriver(PodDriver):
    """Runs runtime-layer plans in trio."""

    default_io = TRIO

    async def run(self, steps: Plan[T]) -> T:
        """Drive a runtime-layer plan to its end (see :meth:`~libcni_py.drivers.base.Stepper.drive`)."""
        return await self.drive(steps)
