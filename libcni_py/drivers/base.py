"""What every driver shares: the one stepping loop, the core effects'
handlers, and the retry of a plugin binary that is being replaced.

A driver steps a plan (:mod:`libcni_py.core.operations`), performs each
effect it yields with the handler the effect names
(:class:`~libcni_py.drivers.handlers.Handlers`) and sends back the outcome,
or throws the error into the plan.  :class:`Stepper` is that loop, written
once for every driver: the blocking one runs it without an event loop
(:func:`complete`), the trio one awaits it, the dry run and the scripted
driver reuse it with handlers of their own.

:class:`Driver` performs the core's effects for real.  Where the blocking
and the trio forms differ -- running a plugin, waiting for a lock, doing
quick and slow file work, running several plans -- it asks its :class:`IO`
(:class:`~libcni_py.drivers.blocking.BlockingIO`,
:class:`~libcni_py.drivers.async_trio.TrioIO`); everything else, the
bookkeeping of held locks included, is written here once.
"""

from __future__ import annotations

import errno
import sys
from abc import ABC, abstractmethod

from ..core import plugin_call as invoke
from ..edges import nsfs, spawn
from ..edges.recordstore import ATTACHMENT_LOCKS, GC_LOCK, gc_lock_covers
from .handlers import Handlers

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine, Generator, Sequence
    from typing import Any, ClassVar, Protocol, TypeVar

    from ..core.effects import (
        Acquire,
        AcquireGC,
        Effect,
        Exec,
        Listed,
        ListRecords,
        Notice,
        Plan,
        ProbeLinks,
        ProbeNetns,
        ReadRecord,
        Release,
        RemoveRecord,
        Resolve,
        Sweep,
        WriteRecord,
    )
    from ..core.record import AttachmentKey
    from ..edges.recordstore import CacheStore, LockHandle

    T = TypeVar("T")

    class Tracer(Protocol):
        """Observes every effect of a plan (see :mod:`libcni_py.tools.trace.tracer`)."""

        def before(self, effect: Effect[Any]) -> None:
            """Called just before the effect is performed."""

        def after(self, effect: Effect[Any], outcome: Any, error: BaseException | None) -> None:
            """Called just after, with its outcome or the error it raised."""


__all__ = ["IO", "Driver", "Stepper", "complete", "start_plugin", "stderr_to_terminal"]

#: Attempts to start a binary that is busy being written (Go: 6 in total).
TEXT_BUSY_RETRIES = 5
TEXT_BUSY_DELAY = 1.0


def stderr_to_terminal(req: invoke.ExecRequest, data: bytes) -> None:
    """Copy a successful plugin's stderr to ours, as Go libcni does."""
    try:
        sys.stderr.flush()
        sys.stderr.buffer.write(data)
        sys.stderr.buffer.flush()
    except (OSError, ValueError, AttributeError):
        pass


def complete(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends (a blocking driver's) to its end.

    Raises:
        RuntimeError: it suspended (a handler awaited something real).
    """
    try:
        coro.send(None)
    except StopIteration as stop:
        value: T = stop.value
        return value
    coro.close()
    raise RuntimeError("a blocking driver's handler suspended")


def start_plugin(req: invoke.ExecRequest) -> Generator[float, None, tuple[spawn.Child, object] | invoke.ExecOutcome]:
    """Start a plugin's process, again while its binary is being replaced.

    A binary that is being written (``ETXTBSY``) is started again, up to
    :data:`TEXT_BUSY_RETRIES` times: this generator yields the seconds to
    wait before each new attempt (the driver sleeps its own way) -- a fresh
    start each time (Go's retry reuses a spent command object and can never
    succeed).

    Returns:
        ``(child, held)``: the child, with interrupts held (pass ``held`` to
        :func:`~libcni_py.edges.spawn.release_interrupts` once the child is
        in the ``try`` whose ``finally`` kills it); or the outcome of a start
        that failed.
    """
    attempt = 0
    while True:
        held = spawn.hold_interrupts()
        try:
            return spawn.start(req.path, req.stdin, req.env), held
        except OSError as exc:
            spawn.release_interrupts(held)
            if exc.errno == errno.ETXTBSY and attempt < TEXT_BUSY_RETRIES:
                attempt += 1
                yield TEXT_BUSY_DELAY
                continue
            return invoke.ExecOutcome(returncode=-1, started=False, error=spawn.start_error(exc))
        except BaseException:
            spawn.release_interrupts(held)
            raise


class Stepper(Handlers):
    """The stepping loop (:meth:`drive`); subclasses fill in the handlers.

    Args:
        tracer: receives every effect before and after it is performed.
    """

    def __init__(self, *, tracer: Tracer | None = None) -> None:
        self.tracer = tracer

    async def drive(self, steps: Plan[T]) -> T:
        """Drive a plan to its end and return its value (or raise its error).

        Each effect is performed by the handler it names; an ``Exception``
        the handler raises is thrown into the plan.  Whatever the plan still
        holds when it ends -- by error, cancellation, interrupt or success --
        is released (:meth:`release_all`).
        """
        tracer = self.tracer
        try:
            effect = steps.send(None)
            while True:
                if tracer is not None:
                    tracer.before(effect)
                try:
                    outcome = await getattr(self, effect.handler)(effect)
                except Exception as exc:
                    if tracer is not None:
                        tracer.after(effect, None, exc)
                    effect = steps.throw(exc)
                    continue
                if tracer is not None:
                    tracer.after(effect, outcome, None)
                effect = steps.send(outcome)
        except StopIteration as stop:
            value: T = stop.value
            return value
        finally:
            steps.close()
            self.release_all()

    def release_all(self) -> None:
        """Release what a plan left held (nothing, unless a driver holds things)."""


class IO(ABC):
    """What differs between performing effects with blocking calls and in
    trio: the few operations that wait.  Stateless; one per form."""

    @abstractmethod
    async def run_plugin(self, req: invoke.ExecRequest, limit: float | None) -> invoke.ExecOutcome:
        """Run one plugin to completion within ``limit`` seconds (None: no
        limit); never raises for a failing plugin."""

    @abstractmethod
    async def lock(
        self,
        wait: Callable[[float | None], LockHandle],
        attempt: Callable[[], LockHandle | None],
        on_timeout: Callable[[float], BaseException],
        limit: float | None,
    ) -> LockHandle:
        """Take a cross-process lock: ``wait(limit)`` blocks for it,
        ``attempt()`` tries once (None: held), ``on_timeout(waited)`` is the
        error when ``limit`` seconds (None: no limit) run out."""

    @abstractmethod
    async def quick(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)``: short file work (a record read, a lock released)."""

    @abstractmethod
    async def slow(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)``: file work that may take milliseconds (``fsync``,
        namespaces): off the event loop where there is one."""

    @abstractmethod
    async def each(self, thunks: Sequence[Callable[[], Awaitable[T]]], concurrent: bool) -> list[T]:
        """Await every thunk's result, in order or (if ``concurrent`` and the
        form can) at once; the results in the thunks' order."""


class Driver(Stepper):
    """Performs the core's effects for real (see the module).

    Args:
        store: the cache directory.
        io: the blocking or the trio form of the waiting operations (default:
            the class's :attr:`default_io`; the blocking and trio drivers
            each name theirs, and differ in nothing else).
        timeout: seconds a single plugin call may take, and the longest wait
            for a lock (None: no limit).
        on_notice: receives :class:`~libcni_py.core.effects.Notice` texts.
        tracer: receives every effect before and after it is performed.
        on_stderr: receives a successful plugin's stderr (default: copied to
            our stderr, as Go does); failing plugins' stderr is in the error.
    """

    #: the waiting operations' form when ``io`` is not given
    default_io: ClassVar[IO | None] = None

    def __init__(
        self,
        store: CacheStore,
        *,
        io: IO | None = None,
        timeout: float | None,
        on_notice: Callable[[str], None] | None = None,
        tracer: Tracer | None = None,
        on_stderr: Callable[[invoke.ExecRequest, bytes], None] | None = stderr_to_terminal,
    ) -> None:
        super().__init__(tracer=tracer)
        chosen = io if io is not None else self.default_io
        if chosen is None:
            raise TypeError(f"{type(self).__name__} needs io= (BLOCKING or TRIO)")
        self.store = store
        self.io = chosen
        self.timeout = timeout
        self.on_notice = on_notice
        self.on_stderr = on_stderr
        self.held: dict[AttachmentKey, LockHandle] = {}
        #: the cache dir's GC lock this plan took (shared with an Acquire,
        #: exclusive with an AcquireGC), unless its caller already held it
        self.core_gc_lock: LockHandle | None = None

    def settings(self) -> dict[str, Any]:
        """The keyword arguments that make another driver like this one
        (a pod driver runs each plan of a batch with one)."""
        return {
            "io": self.io,
            "timeout": self.timeout,
            "on_notice": self.on_notice,
            "tracer": self.tracer,
            "on_stderr": self.on_stderr,
        }

    async def resolve(self, effect: Resolve) -> tuple[str, ...]:
        """Look every plugin type up in the plugin path."""
        return await self.io.quick(_find_all, effect.plugin_types, effect.plugin_path)

    async def exec(self, effect: Exec) -> invoke.ExecOutcome:
        """Run the plugin; hand a successful one's stderr on."""
        outcome = await self.io.run_plugin(effect.request, self.timeout)
        if self.on_stderr is not None and outcome.stderr and outcome.returncode == 0:
            self.on_stderr(effect.request, outcome.stderr)
        return outcome

    async def read_record(self, effect: ReadRecord) -> bytes | None:
        """Read the record from the store."""
        return await self.io.quick(self.store.read, effect.key)

    async def write_record(self, effect: WriteRecord) -> None:
        """Write the record; an fsynced one off the event loop."""
        run = self.io.slow if effect.durable and self.store.durable else self.io.quick
        await run(self._write, effect)

    def _write(self, effect: WriteRecord) -> None:
        self.store.write(effect.key, effect.data, durable=effect.durable)

    async def remove_record(self, effect: RemoveRecord) -> bool:
        """Remove the record from the store."""
        return await self.io.quick(self.store.remove, effect.key)

    async def list_records(self, effect: ListRecords) -> list[Listed]:
        """List ``results/``."""
        return await self.io.quick(_listing, self.store, effect.container_id)

    async def acquire(self, effect: Acquire) -> None:
        """Take the cache dir's GC lock shared, then the attachment's lock,
        each once per plan (waits)."""
        await self._lock_gc(exclusive=False)
        key = effect.key
        if key not in self.held:
            store = self.store
            self.held[key] = await self.io.lock(
                lambda timeout: store.lock(key, timeout=timeout),
                lambda: store.try_lock(key),
                lambda waited: store.lock_timeout(key.filename, ATTACHMENT_LOCKS, waited),
                self.timeout,
            )

    async def acquire_gc(self, effect: AcquireGC) -> None:
        """Take the cache dir's GC lock exclusively (waits)."""
        await self._lock_gc(exclusive=True)

    def gc_lock_needed(self, *, exclusive: bool) -> bool:
        """Whether this plan must take the GC lock in that mode: not when it,
        or the flow of control running it (a GC's DEL, a pod operation's
        ADD), already holds it so."""
        return self.core_gc_lock is None and not gc_lock_covers(exclusive=exclusive)

    async def _lock_gc(self, *, exclusive: bool) -> None:
        if not self.gc_lock_needed(exclusive=exclusive):
            return
        self.core_gc_lock = await self.take_gc_lock(exclusive=exclusive)

    async def take_gc_lock(self, *, exclusive: bool) -> LockHandle:
        """Take the cache dir's GC lock, shared (ADD, CHECK, DEL) or
        exclusive (GC), waiting at most the driver's timeout."""
        store = self.store
        return await self.io.lock(
            lambda limit: store.lock_gc(exclusive=exclusive, timeout=limit),
            lambda: store.try_lock_gc(exclusive=exclusive),
            lambda waited: store.lock_timeout("lock", GC_LOCK, waited),
            self.timeout,
        )

    async def release(self, effect: Release) -> None:
        """Release the lock if this plan holds it."""
        handle = self.held.pop(effect.key, None)
        if handle is not None:
            await self.io.quick(self._unlock, handle, effect.forget)

    def _unlock(self, handle: LockHandle, remove: bool) -> None:
        self.store.unlock(handle, remove=remove)

    async def sweep(self, effect: Sweep) -> tuple[int, int]:
        """Sweep the network's leftovers from the store."""
        return await self.io.quick(self._sweep, effect)

    def _sweep(self, effect: Sweep) -> tuple[int, int]:
        return self.store.sweep(effect.network + "-", older_than=effect.older_than)

    async def probe_netns(self, effect: ProbeNetns) -> str:
        """Ask the kernel (:func:`libcni_py.edges.nsfs.state`)."""
        return await self.io.quick(nsfs.state, effect.path)

    async def probe_links(self, effect: ProbeLinks) -> tuple[str, ...] | None:
        """Ask the kernel (:func:`libcni_py.netns.links_present`); entering
        the namespace takes a thread, so off the event loop."""
        from .. import netns

        return await self.io.slow(netns.links_present, effect.path, effect.names)

    async def notice(self, effect: Notice) -> None:
        """Hand the text to the caller's callback."""
        if self.on_notice is not None:
            await self.io.quick(self.on_notice, effect.text)

    def release_all(self) -> None:
        """Release every lock a plan left held (it failed or was cancelled),
        the GC lock last."""
        try:
            while self.held:
                _, handle = self.held.popitem()
                self.store.unlock(handle)
        finally:
            gc_lock, self.core_gc_lock = self.core_gc_lock, None
            if gc_lock is not None:
                self.store.unlock(gc_lock)


def _find_all(plugin_types: Sequence[str], plugin_path: Sequence[str]) -> tuple[str, ...]:
    return tuple(invoke.find_in_path(t, plugin_path) for t in plugin_types)


def _listing(store: CacheStore, container_id: str) -> list[Listed]:
    return list(store.iter_files(container_id))
