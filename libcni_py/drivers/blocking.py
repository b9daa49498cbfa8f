"""The blocking driver: runs plans with plain system calls.

Used by the one-shot CLI and by :class:`libcni_py.CNI`.  It imports nothing
heavy (no trio, no subprocess module): a CLI call pays for Python's start and
the plugins, little else.

Plugins run one at a time, in the order the plan asks.  Each runs under a
deadline (``timeout``); at the deadline, or on any exception while it runs,
the plugin and every process it started (its whole tree,
:meth:`libcni_py.edges.spawn.Child.kill_tree`) are killed and reaped before the
exception goes on, so no plugin outlives the call.  On ``KeyboardInterrupt``
the running plugin first gets :data:`INTERRUPT_GRACE` seconds to finish by
itself: a plugin killed half-way can leave state that its own DEL cannot
undo (Debian's bridge killed between its iptables rule and chain fails
every DEL after); a second interrupt meanwhile kills it at once.  Either
way the interrupt then goes on: no further plugin starts, and the ADD's
record (written before each plugin) describes everything that may exist.  Waiting for a
lock ends at the same deadline with :class:`~libcni_py.errors.LockTimeoutError`
naming the holder.  A
plugin binary that is being replaced (``ETXTBSY``) is started again
(:func:`libcni_py.drivers.base.start_plugin`).

Everything else is :class:`~libcni_py.drivers.base.Driver`'s: this module
gives it :class:`BlockingIO`, the blocking form of the operations that wait.
"""

from __future__ import annotations

import select
import time

from ..core.plugin_call import ExecOutcome
from ..edges import spawn
from .base import IO, Driver, complete, start_plugin

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence
    from typing import Any, TypeVar

    from ..core.effects import Plan
    from ..core.plugin_call import ExecRequest
    from ..edges.recordstore import LockHandle

    T = TypeVar("T")

__all__ = ["BLOCKING", "BlockingIO", "SyncDriver", "run_plugin"]

#: On ``KeyboardInterrupt`` (SIGINT; the CLI's SIGTERM and SIGHUP too) the
#: running plugin gets this long (within its deadline) to finish on its own
#: before its tree is killed; then the interrupt goes on.
INTERRUPT_GRACE = 5.0


def run_plugin(req: ExecRequest, timeout: float | None) -> ExecOutcome:
    """Run one plugin to completion; never raises for a failing plugin.

    Args:
        req: what to run and with which stdin and environment.
        timeout: seconds before the plugin and its process group are killed.

    Returns:
        What happened, including "could not be started" and "timed out".
    """
    started = time.monotonic()
    # Interrupts wait until the child is in the try below (its finally kills it).
    starting = start_plugin(req)
    try:
        while True:
            time.sleep(next(starting))
    except StopIteration as stop:
        begun: tuple[spawn.Child, object] | ExecOutcome = stop.value
    if isinstance(begun, ExecOutcome):
        return begun
    child, held = begun
    deadline = None if timeout is None else started + timeout
    timed_out = False
    interrupted: KeyboardInterrupt | None = None
    try:
        poller = select.poll()
        watched: dict[int, str] = {}

        def watch(fd: int, what: str, events: int) -> None:
            if fd >= 0:
                poller.register(fd, events)
                watched[fd] = what

        def unwatch(fd: int) -> None:
            poller.unregister(fd)
            del watched[fd]

        watch(child.stdin_fd, "stdin", select.POLLOUT)
        watch(child.stdout_fd, "stdout", select.POLLIN)
        watch(child.stderr_fd, "stderr", select.POLLIN)
        watch(child.pidfd, "exit", select.POLLIN)
        exited_at: float | None = None
        while True:
            try:
                if held is not None:  # a pending interrupt arrives here, inside the try
                    spawn.release_interrupts(held)
                    held = None
                if exited_at is None and child.pidfd < 0 and child.reap(block=False):
                    exited_at = time.monotonic()  # no pidfd: polled below
                if exited_at is not None and not child.pipes_open:
                    break
                now = time.monotonic()
                limits = []
                if deadline is not None and exited_at is None:
                    limits.append(deadline - now)
                if exited_at is not None:
                    limits.append(exited_at + spawn.GRACE_AFTER_EXIT - now)
                if child.pidfd < 0 and exited_at is None:
                    limits.append(0.01)
                wait = min(limits) if limits else None
                if wait is not None and wait <= 0:
                    if exited_at is None and deadline is not None and now >= deadline:
                        timed_out = interrupted is None
                        child.kill_tree()
                        child.reap(block=True)
                    break
                for fd, _events in poller.poll(None if wait is None else max(1, int(wait * 1000))):
                    what = watched.get(fd)
                    if what == "stdin":
                        if child.write_stdin():
                            unwatch(fd)
                    elif what == "stdout":
                        if child.read_stdout():
                            unwatch(fd)
                            if child.overflow:
                                child.kill_tree()
                                child.reap(block=True)
                                exited_at = exited_at or time.monotonic()
                    elif what == "stderr":
                        if child.read_stderr():
                            unwatch(fd)
                    elif what == "exit":
                        unwatch(fd)
                        child.reap(block=True)
                        exited_at = time.monotonic()
                        if child.stdin_fd >= 0:
                            unwatch(child.stdin_fd)
                            child.close_stdin()
            except KeyboardInterrupt as exc:
                if interrupted is not None:
                    raise
                # A plugin killed half-way can leave what its own DEL cannot
                # undo (bridge: an iptables rule pointing to a chain not made
                # yet); so the running one may finish, for a short while.
                interrupted = exc
                grace = time.monotonic() + INTERRUPT_GRACE
                deadline = grace if deadline is None else min(deadline, grace)
    finally:
        if held is not None:
            spawn.release_interrupts(held)
        if child.returncode is None:
            child.kill_tree()
            child.reap(block=True)
        child.close()
    if interrupted is not None:
        raise interrupted
    return child.outcome(duration=time.monotonic() - started, timed_out=timed_out)


class BlockingIO(IO):
    """The operations that wait, as blocking calls.  File work holds
    interrupts until it is done: an interrupt waits for the end of a record
    write, read or removal (no temporary file left, no record half-replaced)."""

    async def run_plugin(self, req: ExecRequest, limit: float | None) -> ExecOutcome:
        """:func:`run_plugin`."""
        return run_plugin(req, limit)

    async def lock(
        self,
        wait: Callable[[float | None], LockHandle],
        attempt: Callable[[], LockHandle | None],
        on_timeout: Callable[[float], BaseException],
        limit: float | None,
    ) -> LockHandle:
        """``wait(limit)``: ``flock`` with a deadline."""
        return wait(limit)

    async def quick(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` with interrupts held."""
        held = spawn.hold_interrupts()
        try:
            return fn(*args)
        finally:
            spawn.release_interrupts(held)

    slow = quick

    async def each(self, thunks: Sequence[Callable[[], Awaitable[T]]], concurrent: bool) -> list[T]:
        """One after another, whatever ``concurrent`` says."""
        return [await thunk() for thunk in thunks]


#: The one :class:`BlockingIO` (it holds no state).
BLOCKING = BlockingIO()


class SyncDriver(Driver):
    """Runs plans with blocking calls (see :class:`~libcni_py.drivers.base.Driver`
    for the arguments)."""

    default_io = BLOCKING

    def run(self, steps: Plan[T]) -> T:
        """Drive a plan to its end and return its value (or raise its error).

        Locks the plan still holds when it ends -- by error, interrupt or
        success -- are released.
        """
        return complete(self.drive(steps))
