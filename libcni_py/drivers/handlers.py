"""The handler table every driver fills in: one abstract method per effect.

A driver performs an effect by calling the method the effect names
(:func:`libcni_py.core.effects.handled_by`), in one place: the stepping
loop of :class:`libcni_py.drivers.base.Stepper`.  Because each method here
is abstract, a driver that forgets one cannot be instantiated, and
``mypy --strict`` says so where it is made::

    error: Cannot instantiate abstract class "MyDriver" with abstract attribute "probe_netns"  [abstract]

(``tests/typing/missing_handler.py`` is that example, checked by a test.)
Handlers are coroutines in every driver: the trio driver's suspend, the
blocking driver's never do (it runs the loop without an event loop, see
:func:`libcni_py.drivers.base.complete`).  The runtime layer adds its pod
effects' methods in :class:`libcni_py.runtime.effects.PodHandlers`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..core.effects import (
        Acquire,
        AcquireGC,
        Exec,
        Listed,
        ListRecords,
        Notice,
        ProbeLinks,
        ProbeNetns,
        ReadRecord,
        Release,
        RemoveRecord,
        Resolve,
        Sweep,
        WriteRecord,
    )
    from ..core.plugin_call import ExecOutcome

__all__ = ["Handlers"]


class Handlers(ABC):
    """One method per effect of :mod:`libcni_py.core.effects`, each returning
    what that effect's type says (see each effect for its meaning)."""

    @abstractmethod
    async def resolve(self, effect: Resolve) -> tuple[str, ...]:
        """The paths of the plugin binaries (raises PluginNotFoundError)."""

    @abstractmethod
    async def exec(self, effect: Exec) -> ExecOutcome:
        """Run one plugin; never raises for a failing plugin."""

    @abstractmethod
    async def read_record(self, effect: ReadRecord) -> bytes | None:
        """An attachment record's bytes, or None."""

    @abstractmethod
    async def write_record(self, effect: WriteRecord) -> None:
        """Replace an attachment record atomically."""

    @abstractmethod
    async def remove_record(self, effect: RemoveRecord) -> bool:
        """Remove an attachment record; whether there was one."""

    @abstractmethod
    async def list_records(self, effect: ListRecords) -> list[Listed]:
        """Every file of ``results/``."""

    @abstractmethod
    async def acquire(self, effect: Acquire) -> None:
        """Take the attachment's lock (waits)."""

    @abstractmethod
    async def acquire_gc(self, effect: AcquireGC) -> None:
        """Take the cache dir's GC lock exclusively (waits)."""

    @abstractmethod
    async def release(self, effect: Release) -> None:
        """Release the attachment's lock."""

    @abstractmethod
    async def sweep(self, effect: Sweep) -> tuple[int, int]:
        """Remove what crashed writers left for a network."""

    @abstractmethod
    async def probe_netns(self, effect: ProbeNetns) -> str:
        """Whether a namespace is alive (``alive``/``gone``/``stale``/``unknown``)."""

    @abstractmethod
    async def probe_links(self, effect: ProbeLinks) -> tuple[str, ...] | None:
        """Which of the interfaces are still in a namespace (None: cannot tell)."""

    @abstractmethod
    async def notice(self, effect: Notice) -> None:
        """Hand a note to the person."""
