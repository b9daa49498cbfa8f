"""The trio driver: runs plans inside a trio event loop.

Used by :class:`libcni_py.AsyncCNI`.  Operations started in different tasks
run concurrently (plugins of one chain still run one after another, as the
spec requires); nothing here starts a second plugin on its own.

Cancellation belongs to the caller: wrap a call in ``trio.fail_after`` or
cancel its nursery.  When a call is cancelled while a plugin runs, the
plugin's process group is killed and reaped inside a shielded scope before
the cancellation goes on, so no process outlives it.  The per-call
``timeout`` of the :class:`~libcni_py.api.AsyncCNI` is the same deadline
applied to each plugin run.

Cache records that are fsynced are written in a worker thread (``fsync``
would otherwise stall every other task); checkpoints that are not, reads
and removals are quick and run on the loop, where a thread hop would cost
more than they do.  Waiting for an attachment lock polls with a short
backoff so that it stays cancellable.
"""

from __future__ import annotations

import time

import trio

from ..core.plugin_call import ExecOutcome
from ..edges import spawn
from .base import IO, Driver, start_plugin

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence
    from typing import Any, TypeVar

    from ..core.effects import Plan
    from ..core.plugin_call import ExecRequest
    from ..edges.recordstore import LockHandle

    T = TypeVar("T")

__all__ = ["TRIO", "TrioDriver", "TrioIO", "run_plugin", "wait_for_lock"]


async def _pump(fd_of: Callable[[], int], step: Callable[[], bool], done: trio.Event | None = None) -> None:
    """Wait for readiness and call ``step`` until it reports completion."""
    try:
        while True:
            fd = fd_of()
            if fd < 0:
                return
            await trio.lowlevel.wait_readable(fd)
            if step():
                return
    finally:
        if done is not None:
            done.set()


async def _feed(child: spawn.Child) -> None:
    while child.stdin_fd >= 0:
        await trio.lowlevel.wait_writable(child.stdin_fd)
        if child.write_stdin():
            return


async def _wait_exit(child: spawn.Child) -> None:
    if child.pidfd >= 0:
        await trio.lowlevel.wait_readable(child.pidfd)
        child.reap(block=True)
        return
    while not child.reap(block=False):  # noqa: ASYNC110 - no pidfd (Linux < 5.3): poll
        await trio.sleep(0.01)


async def run_plugin(req: ExecRequest, timeout: float | None) -> ExecOutcome:  # noqa: ASYNC109
    """Run one plugin to completion without blocking the event loop.

    ``timeout`` is the per-plugin deadline of the :class:`~libcni_py.api.AsyncCNI`
    settings; callers limit whole operations with trio's own scopes.  Never
    raises for a failing plugin; cancellation propagates after the plugin's
    process group is killed and reaped.
    """
    started = time.monotonic()
    starting = start_plugin(req)  # interrupts held until the child is in the try below
    try:
        while True:  # noqa: ASYNC110 - a binary being replaced: wait, then start it afresh
            await trio.sleep(next(starting))
    except StopIteration as stop:
        begun: tuple[spawn.Child, object] | ExecOutcome = stop.value
    if isinstance(begun, ExecOutcome):
        return begun
    child, held = begun
    timed_out = False
    try:
        spawn.release_interrupts(held)
        deadline = trio.current_time() + timeout if timeout is not None else float("inf")
        with trio.CancelScope(deadline=deadline) as scope:
            async with trio.open_nursery() as nursery:
                if child.stdin_fd >= 0:
                    nursery.start_soon(_feed, child)

                def stdout_step() -> bool:
                    finished = child.read_stdout()
                    if child.overflow:
                        child.kill_tree()
                    return finished

                stdout_done, stderr_done = trio.Event(), trio.Event()
                nursery.start_soon(_pump, lambda: child.stdout_fd, stdout_step, stdout_done)
                nursery.start_soon(_pump, lambda: child.stderr_fd, child.read_stderr, stderr_done)
                await _wait_exit(child)
                # Let the pipes drain; something the plugin left running may hold them.
                with trio.move_on_after(spawn.GRACE_AFTER_EXIT):
                    await stdout_done.wait()
                    await stderr_done.wait()
                nursery.cancel_scope.cancel()
        if scope.cancelled_caught and child.returncode is None:
            timed_out = True
    finally:
        # Synchronous on purpose: nothing here can be cancelled half-way.
        if child.returncode is None:
            child.kill_tree()
            child.reap(block=True)
        child.close()
    return child.outcome(duration=time.monotonic() - started, timed_out=timed_out)


async def wait_for_lock(
    try_lock: Callable[[], LockHandle | None],
    timeout: float | None = None,  # noqa: ASYNC109 - the per-call deadline of the settings
    on_timeout: Callable[[float], BaseException] | None = None,
) -> LockHandle:
    """Take a cross-process ``flock`` without blocking the event loop: try,
    then sleep with a short backoff (so that waiting stays cancellable).

    Args:
        try_lock: takes the lock without waiting, or returns None if it is held
            (:meth:`~libcni_py.edges.recordstore.CacheStore.try_lock` and friends).
        timeout: give up after this many seconds (None: wait as long as the
            caller's scopes let it).
        on_timeout: builds the error raised then, given the seconds waited
            (:meth:`~libcni_py.edges.recordstore.CacheStore.lock_timeout`).
    """
    started = time.monotonic()
    delay = 0.001
    while True:
        handle = try_lock()
        if handle is not None:
            return handle
        if timeout is not None:
            waited = time.monotonic() - started
            if waited >= timeout:
                raise on_timeout(waited) if on_timeout is not None else TimeoutError("lock wait")
            delay = min(delay, timeout - waited)
        await trio.sleep(delay)
        delay = min(delay * 2, 0.05)


class TrioIO(IO):
    """The operations that wait, in trio: plugins run without blocking the
    loop, locks are polled (so waiting stays cancellable), slow file work
    runs in a worker thread, batches of plans run in one nursery."""

    async def run_plugin(self, req: ExecRequest, limit: float | None) -> ExecOutcome:
        """:func:`run_plugin`."""
        return await run_plugin(req, limit)

    async def lock(
        self,
        wait: Callable[[float | None], LockHandle],
        attempt: Callable[[], LockHandle | None],
        on_timeout: Callable[[float], BaseException],
        limit: float | None,
    ) -> LockHandle:
        """:func:`wait_for_lock` with ``attempt``."""
        return await wait_for_lock(attempt, limit, on_timeout)

    async def quick(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the loop: a thread hop would cost more than it does."""
        return fn(*args)

    async def slow(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a worker thread (``fsync`` would stall every other task)."""
        return await trio.to_thread.run_sync(fn, *args)

    async def each(self, thunks: Sequence[Callable[[], Awaitable[T]]], concurrent: bool) -> list[T]:
        """In one nursery when ``concurrent``, else one after another."""
        if not concurrent:
            return [await thunk() for thunk in thunks]
        results: dict[int, T] = {}

        async def one(index: int, thunk: Callable[[], Awaitable[T]]) -> None:
            results[index] = await thunk()

        async with trio.open_nursery() as nursery:
            for index, thunk in enumerate(thunks):
                nursery.start_soon(one, index, thunk)
        return [results[index] for index in range(len(thunks))]


#: The one :class:`TrioIO` (it holds no state).
TRIO = TrioIO()


class TrioDriver(Driver):
    """Runs plans in trio (see :class:`~libcni_py.drivers.base.Driver` for
    the arguments).

    One driver runs one plan at a time (it tracks that plan's locks); the
    :class:`~libcni_py.api.AsyncCNI` makes one per call.
    """

    default_io = TRIO

    async def run(self, steps: Plan[T]) -> T:
        """Drive a plan to its end and return its value (or raise its error)."""
        return await self.drive(steps)
