"""What an operation reports back beyond a plugin's result: :class:`GCReport`.

A public value, in a module of its own so that the runtime layer and the
CLI can name it without importing the operations
(:mod:`libcni_py.core.operations`).
"""

from __future__ import annotations

from .value import Value

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..errors import CNIError

__all__ = ["GCReport"]


class GCReport(Value):
    """What a GC did.

    Attributes:
        removed: ``(container_id, ifname)`` of the stale attachments deleted.
        kept: ``(container_id, ifname)`` of the cached attachments kept.
        kept_reasons: ``(container_id, ifname, reason)`` for each of them:
            why it was kept ("namespace /x is alive", ...).
        plugin_gc: whether plugins were sent GC (spec >= 1.1.0).
        errors: what failed (GC goes on past failures).
        skipped: ``disableGC`` was set; nothing was done.
    """

    removed: tuple[tuple[str, str], ...] = ()
    kept: tuple[tuple[str, str], ...] = ()
    kept_reasons: tuple[tuple[str, str, str], ...] = ()
    plugin_gc: bool = False
    errors: tuple[CNIError, ...] = ()
    skipped: bool = False
