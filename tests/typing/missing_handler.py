"""A driver that forgets one effect's handler: ``mypy --strict`` must refuse it.

Not a test module (pytest does not collect it); tests/unit/test_effect_handlers.py
runs mypy on this file and checks the error names the forgotten effect's
handler, ``probe_netns`` (the effect :class:`~libcni_py.core.effects.ProbeNetns`).
"""

from __future__ import annotations

from libcni_py.core.effects import (
    Acquire,
    AcquireGC,
    Exec,
    ListRecords,
    Notice,
    ProbeLinks,
    ReadRecord,
    Release,
    RemoveRecord,
    Resolve,
    Sweep,
    WriteRecord,
)
from libcni_py.core.plugin_call import ExecOutcome
from libcni_py.drivers.base import Stepper

TYPE_CHECKING = False
if TYPE_CHECKING:
    from libcni_py.core.effects import Listed


class ForgetfulDriver(Stepper):
    """Answers every core effect but ProbeNetns."""

    async def resolve(self, effect: Resolve) -> tuple[str, ...]:
        return ()

    async def exec(self, effect: Exec) -> ExecOutcome:
        return ExecOutcome(returncode=0)

    async def read_record(self, effect: ReadRecord) -> bytes | None:
        return None

    async def write_record(self, effect: WriteRecord) -> None:
        return None

    async def remove_record(self, effect: RemoveRecord) -> bool:
        return False

    async def list_records(self, effect: ListRecords) -> list[Listed]:
        return []

    async def acquire(self, effect: Acquire) -> None:
        return None

    async def acquire_gc(self, effect: AcquireGC) -> None:
        return None

    async def release(self, effect: Release) -> None:
        return None

    async def sweep(self, effect: Sweep) -> tuple[int, int]:
        return (0, 0)

    async def probe_links(self, effect: ProbeLinks) -> tuple[str, ...] | None:
        return None

    async def notice(self, effect: Notice) -> None:
        return None


driver = ForgetfulDriver()
