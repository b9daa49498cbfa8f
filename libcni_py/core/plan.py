"""The names :mod:`libcni_py.core.plan` held before it was split, for imports
written against it.

The plan module held three things, now each in its own module:

* :mod:`libcni_py.core.inputs` -- what an operation is given
  (:class:`RuntimeConf`, :class:`Options`);
* :mod:`libcni_py.core.effects` -- the effects plans yield, typed;
* :mod:`libcni_py.core.operations` -- ADD, CHECK, DEL, GC, STATUS, validate
  and VERSION as plans;

and :class:`GCReport` is in :mod:`libcni_py.core.reports`.  New code
imports from those.
"""

from __future__ import annotations

from .effects import (
    Acquire,
    AcquireGC,
    Effect,
    Exec,
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
from .inputs import Options, RuntimeConf
from .operations import add, check, delete, gc, status, validate, version_info
from .record import cached_attachments
from .reports import GCReport

__all__ = [
    "Acquire",
    "AcquireGC",
    "Effect",
    "Exec",
    "GCReport",
    "ListRecords",
    "Notice",
    "Options",
    "ProbeLinks",
    "ProbeNetns",
    "ReadRecord",
    "Release",
    "RemoveRecord",
    "Resolve",
    "RuntimeConf",
    "Sweep",
    "WriteRecord",
    "add",
    "cached_attachments",
    "check",
    "delete",
    "gc",
    "status",
    "validate",
    "version_info",
]
