"""What both drivers share: performing the effects that are not plugin runs.

A driver steps a plan (:mod:`libcni_py.core.plan`), performs each effect it
yields and sends back the outcome.  Resolving binaries, cache records,
notices and the bookkeeping of held locks are the same for the blocking and
the trio driver and live here; running plugins and waiting for locks differ
and live in :mod:`libcni_py.drivers.blocking` and :mod:`libcni_py.drivers.async_trio`.
"""

from __future__ import annotations

import sys

from ..core import plan
from ..core import plugin_call as invoke
from ..edges.recordstore import CacheStore, gc_lock_covers

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, Protocol

    from ..core.record import AttachmentKey
    from ..edges.recordstore import LockHandle

    class Tracer(Protocol):
        """Observes every effect of a plan (see :mod:`libcni_py.tools.trace.tracer`)."""

        def before(self, effect: plan.Effect) -> None:
            """Called just before the effect is performed."""

        def after(self, effect: plan.Effect, outcome: Any, error: BaseException | None) -> None:
            """Called just after, with its outcome or the error it raised."""


__all__ = ["DriverBase", "stderr_to_terminal"]


def stderr_to_terminal(req: invoke.ExecRequest, data: bytes) -> None:
    """Copy a successful plugin's stderr to ours, as Go libcni does."""
    try:
        sys.stderr.flush()
        sys.stderr.buffer.write(data)
        sys.stderr.buffer.flush()
    except (OSError, ValueError, AttributeError):
        pass


class DriverBase:
    """State and effects common to both drivers.

    Args:
        store: the cache directory.
        timeout: seconds a single plugin call may take (None: no limit).
        on_notice: receives :class:`~libcni_py.core.plan.Notice` texts.
        tracer: receives every effect before and after it is performed.
        on_stderr: receives a successful plugin's stderr (default: copied to
            our stderr, as Go does); failing plugins' stderr is in the error.
    """

    def __init__(
        self,
        store: CacheStore,
        *,
        timeout: float | None,
        on_notice: Callable[[str], None] | None = None,
        tracer: Tracer | None = None,
        on_stderr: Callable[[invoke.ExecRequest, bytes], None] | None = stderr_to_terminal,
    ) -> None:
        self.store = store
        self.timeout = timeout
        self.on_notice = on_notice
        self.tracer = tracer
        self.on_stderr = on_stderr
        self.held: dict[AttachmentKey, LockHandle] = {}
        #: the cache dir's GC lock this plan took (shared with an Acquire,
        #: exclusive with an AcquireGC), unless its caller already held it
        self.core_gc_lock: LockHandle | None = None

    def perform_simple(self, effect: plan.Effect) -> Any:
        """Perform an effect that neither runs a plugin nor waits for a lock."""
        if isinstance(effect, plan.Resolve):
            return tuple(invoke.find_in_path(t, effect.plugin_path) for t in effect.plugin_types)
        if isinstance(effect, plan.ReadRecord):
            return self.store.read(effect.key)
        if isinstance(effect, plan.WriteRecord):
            self.store.write(effect.key, effect.data, durable=effect.durable)
            return None
        if isinstance(effect, plan.RemoveRecord):
            return self.store.remove(effect.key)
        if isinstance(effect, plan.ListRecords):
            return list(self.store.iter_files(effect.container_id))
        if isinstance(effect, plan.Sweep):
            return self.store.sweep(effect.network + "-", older_than=effect.older_than)
        if isinstance(effect, plan.Release):
            handle = self.held.pop(effect.key, None)
            if handle is not None:
                self.store.unlock(handle, remove=effect.forget)
            return None
        if isinstance(effect, plan.ProbeNetns):
            from .. import netns

            return netns.state(effect.path)
        if isinstance(effect, plan.ProbeLinks):
            from .. import netns

            return netns.links_present(effect.path, effect.names)
        if isinstance(effect, plan.Notice):
            if self.on_notice is not None:
                self.on_notice(effect.text)
            return None
        raise TypeError(f"not a simple effect: {effect!r}")

    def after_exec(self, req: invoke.ExecRequest, outcome: invoke.ExecOutcome) -> None:
        """Hand a successful plugin's stderr on."""
        if self.on_stderr is not None and outcome.stderr and outcome.returncode == 0:
            self.on_stderr(req, outcome.stderr)

    def gc_lock_needed(self, effect: plan.Acquire | plan.AcquireGC) -> bool | None:
        """For an Acquire (shared) or AcquireGC (exclusive): the mode of the
        GC lock to take (True: exclusive), or None when this plan, or the
        flow of control running it (a GC's DEL, a pod operation's ADD),
        already holds it so."""
        exclusive = isinstance(effect, plan.AcquireGC)
        if self.core_gc_lock is not None or gc_lock_covers(exclusive=exclusive):
            return None
        return exclusive

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
