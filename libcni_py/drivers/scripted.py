"""A driver that answers effects from a script: for testing plans without
processes, files or namespaces (in the spirit of Go libcni's ``invoke``
fakes and httpcore's mock backend).

Example::

    from libcni_py.core import operations
    from libcni_py.core.effects import Exec, ReadRecord, Resolve
    from libcni_py.core.plugin_call import ExecOutcome
    from libcni_py.drivers.scripted import ScriptedDriver

    driver = ScriptedDriver({
        Resolve: lambda e: tuple(f"/opt/cni/bin/{t}" for t in e.plugin_types),
        ReadRecord: None,                 # no record on file
        ProbeNetns: "alive",
        Exec: ExecOutcome(returncode=0, stdout=b'{"cniVersion": "1.0.0"}'),
    })
    result = driver.run(operations.add(netlist, rt, opts))
    [e.request.command for e in driver.of(Exec)]      # ['ADD', ...]

Each effect type maps to its answer: a value (returned every time), an
exception instance (raised: the plan gets it thrown in, as a real driver's
failure), or a callable taking the effect and returning (or raising) the
answer; :func:`in_turn` answers from a list, one per call.  Effects whose
outcome is None (``WriteRecord``, ``Acquire``, ``AcquireGC``, ``Release``,
``Notice``) need
no entry; any other effect that the script lacks raises
:class:`NotScripted`, which no plan catches.  Every effect asked is kept,
in order, in :attr:`ScriptedDriver.asked`.
"""

from __future__ import annotations

from ..core.effects import Acquire, AcquireGC, Notice, Release, WriteRecord
from .base import Stepper, complete

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any, TypeVar

    from ..core.effects import (
        Effect,
        Exec,
        Listed,
        ListRecords,
        Plan,
        ProbeLinks,
        ProbeNetns,
        ReadRecord,
        RemoveRecord,
        Resolve,
        Sweep,
    )
    from ..core.plugin_call import ExecOutcome
    from .base import Tracer

    T = TypeVar("T")
    E = TypeVar("E", bound="Effect[Any]")

__all__ = ["NotScripted", "ScriptedDriver", "in_turn"]

#: Effects answered with None when the script does not mention them.
SILENT = (WriteRecord, Acquire, AcquireGC, Release, Notice)


class NotScripted(LookupError):
    """The plan asked for an effect the script has no answer for."""


def in_turn(*answers: Any) -> Callable[[Any], Any]:
    """An answer that is each of ``answers`` in turn (an exception instance
    is raised); asking once more than there are answers raises
    :class:`NotScripted`."""
    pending = list(answers)

    def answer(effect: Any) -> Any:
        if not pending:
            raise NotScripted(f"no answer left for {effect!r}")
        value = pending.pop(0)
        if isinstance(value, BaseException):
            raise value
        return value

    return answer


class ScriptedDriver(Stepper):
    """Performs nothing: answers each effect from ``script`` and records it.

    Args:
        script: effect type -> answer (see the module).
        tracer: receives every effect before and after, as with a real driver.
    """

    def __init__(self, script: Mapping[type, Any], *, tracer: Tracer | None = None) -> None:
        super().__init__(tracer=tracer)
        self.script = dict(script)
        self.asked: list[Effect[Any]] = []

    def run(self, steps: Plan[T]) -> T:
        """Drive a plan to its end and return its value (or raise its error)."""
        return complete(self.drive(steps))

    def of(self, kind: type[E]) -> list[E]:
        """The effects of one type that were asked, in order."""
        return [effect for effect in self.asked if isinstance(effect, kind)]

    def answer(self, effect: Effect[Any]) -> Any:
        """Record ``effect`` and return (or raise) its scripted answer."""
        self.asked.append(effect)
        kind = type(effect)
        if kind not in self.script:
            if isinstance(effect, SILENT):
                return None
            raise NotScripted(f"the script has no answer for {kind.__name__}: {effect!r}")
        value = self.script[kind]
        if isinstance(value, BaseException):
            raise value
        if callable(value) and not isinstance(value, type):
            return value(effect)
        return value

    async def resolve(self, effect: Resolve) -> tuple[str, ...]:
        """The scripted answer."""
        found: tuple[str, ...] = self.answer(effect)
        return found

    async def exec(self, effect: Exec) -> ExecOutcome:
        """The scripted answer."""
        outcome: ExecOutcome = self.answer(effect)
        return outcome

    async def read_record(self, effect: ReadRecord) -> bytes | None:
        """The scripted answer."""
        data: bytes | None = self.answer(effect)
        return data

    async def write_record(self, effect: WriteRecord) -> None:
        """The scripted answer (None unless scripted)."""
        self.answer(effect)

    async def remove_record(self, effect: RemoveRecord) -> bool:
        """The scripted answer."""
        removed: bool = self.answer(effect)
        return removed

    async def list_records(self, effect: ListRecords) -> list[Listed]:
        """The scripted answer."""
        listing: list[Listed] = self.answer(effect)
        return listing

    async def acquire(self, effect: Acquire) -> None:
        """The scripted answer (None unless scripted)."""
        self.answer(effect)

    async def acquire_gc(self, effect: AcquireGC) -> None:
        """The scripted answer (None unless scripted)."""
        self.answer(effect)

    async def release(self, effect: Release) -> None:
        """The scripted answer (None unless scripted)."""
        self.answer(effect)

    async def sweep(self, effect: Sweep) -> tuple[int, int]:
        """The scripted answer."""
        swept: tuple[int, int] = self.answer(effect)
        return swept

    async def probe_netns(self, effect: ProbeNetns) -> str:
        """The scripted answer."""
        state: str = self.answer(effect)
        return state

    async def probe_links(self, effect: ProbeLinks) -> tuple[str, ...] | None:
        """The scripted answer."""
        present: tuple[str, ...] | None = self.answer(effect)
        return present

    async def notice(self, effect: Notice) -> None:
        """The scripted answer (None unless scripted)."""
        self.answer(effect)
