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

import errno
import time

import trio

from ..core import plan
from ..core.plugin_call import ExecOutcome
from ..edges import spawn
from ..edges.recordstore import ATTACHMENT_LOCKS, GC_LOCK
from .base import DriverBase

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from ..core.plugin_call import ExecRequest
    from ..edges.recordstore import LockHandle

__all__ = ["TrioDriver", "run_plugin", "wait_for_lock"]

TEXT_BUSY_RETRIES = 5
TEXT_BUSY_DELAY = 1.0


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
    attempt = 0
    while True:
        held = spawn.hold_interrupts()  # until the child is in the try below
        try:
            child = spawn.start(req.path, req.stdin, req.env)
            break
        except OSError as exc:
            spawn.release_interrupts(held)
            if exc.errno == errno.ETXTBSY and attempt < TEXT_BUSY_RETRIES:
                attempt += 1
                await trio.sleep(TEXT_BUSY_DELAY)
                continue
            return ExecOutcome(returncode=-1, started=False, error=spawn.start_error(exc))
        except BaseException:
            spawn.release_interrupts(held)
            raise
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


class TrioDriver(DriverBase):
    """Runs plans in trio (see :class:`~libcni_py.drivers.base.DriverBase`).

    One driver runs one plan at a time (it tracks that plan's locks); the
    :class:`~libcni_py.api.AsyncCNI` makes one per call.
    """

    async def perform(self, effect: plan.Effect) -> Any:
        """Perform one effect and return its outcome."""
        if isinstance(effect, plan.Exec):
            outcome = await run_plugin(effect.request, self.timeout)
            self.after_exec(effect.request, outcome)
            return outcome
        if isinstance(effect, plan.Acquire | plan.AcquireGC):
            exclusive = self.gc_lock_needed(effect)
            if exclusive is not None:
                self.core_gc_lock = await wait_for_lock(
                    lambda: self.store.try_lock_gc(exclusive=exclusive),
                    self.timeout,
                    lambda waited: self.store.lock_timeout("lock", GC_LOCK, waited),
                )
            if isinstance(effect, plan.Acquire) and effect.key not in self.held:
                self.held[effect.key] = await self._lock(effect)
            return None
        if isinstance(effect, plan.WriteRecord) and effect.durable and self.store.durable:
            # fsync can take milliseconds (more on a busy disk): not on the loop.
            return await trio.to_thread.run_sync(self.perform_simple, effect)
        return self.perform_simple(effect)

    async def _lock(self, effect: plan.Acquire) -> Any:
        return await wait_for_lock(
            lambda: self.store.try_lock(effect.key),
            self.timeout,
            lambda waited: self.store.lock_timeout(effect.key.filename, ATTACHMENT_LOCKS, waited),
        )

    async def run(self, steps: plan.Plan) -> Any:
        """Drive a plan to its end and return its value (or raise its error)."""
        tracer = self.tracer
        try:
            effect = next(steps)
            while True:
                if tracer is not None:
                    tracer.before(effect)
                try:
                    outcome = await self.perform(effect)
                except Exception as exc:
                    if tracer is not None:
                        tracer.after(effect, None, exc)
                    effect = steps.throw(exc)
                    continue
                if tracer is not None:
                    tracer.after(effect, outcome, None)
                effect = steps.send(outcome)
        except StopIteration as stop:
            return stop.value
        finally:
            steps.close()
            self.release_all()
