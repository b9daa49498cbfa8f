"""Tracing: every step of an operation, and what each plugin call changed.

:class:`Tracer` implements the drivers' tracer hook (``before(effect)`` /
``after(effect, outcome, error)``, see :mod:`libcni_py.drivers.base`).  Give one to
:class:`~libcni_py.CNI` or :class:`~libcni_py.AsyncCNI` (``tracer=``), or run
``cnitool --trace`` / ``--trace-json FILE``.  For each step of the plan, in
order, it records an :class:`Event`:

* a plugin call: the binary, command, environment, stdin, stdout, stderr,
  exit status and duration; and what changed while it ran, measured before
  and after it: files created, changed or removed under the cache dir,
  ``/var/lib/cni`` and every ``dataDir`` of the plugin's config; links,
  addresses and routes added, removed or changed in the host's network
  namespace and in the container's; iptables chains and rules of the
  ``nat`` and ``filter`` tables added or removed;
* a cache record written or removed, or a lock taken, by the runtime
  itself, with the files that changed, attributed to ``libcni_py``;
* the other steps (binaries resolved, a record read, a notice).

Run as root, it also finds out *who* (:mod:`libcni_py.tools.trace.proc`): the
processes each plugin call started, nested as they ran (flannel -> bridge
-> host-local, the iptables a plugin runs), each with its program, argv,
``CNI_COMMAND`` and exit status; and, for every change to a file, link,
address or route, the process that made it: ``libcni_py`` for the
runtime's own records and locks, the plugin, or a program it ran (with the
chain of programs that ran it).
Without root, or where the kernel does not allow it, each change is
attributed to the step it appeared in (``libcni_py``, or the plugin during
whose call it appeared, with the plugins its config delegates to), and the
step says what could not be observed.

Probes only read (:mod:`libcni_py.edges.probes`).  Without a tracer none of this
is imported or paid for.  The probes block; with :class:`~libcni_py.AsyncCNI`
they run on the event loop's thread (network namespaces are entered from a
worker thread).  Operations that overlap in time share their changes:
trace one at a time for exact attribution.
"""

from __future__ import annotations

import os
import threading
import time

from ...core.effects import (
    Acquire,
    AcquireGC,
    Exec,
    Release,
    RemoveRecord,
    Sweep,
    WriteRecord,
)
from ...core.record import RESULTS_FOLDER, cache_path
from ...core.value import Value, fresh
from ...drivers.describe import delegates, describe
from ...edges import probes
from ...edges.recordstore import DEFAULT_CACHE_DIR
from ...errors import CNIError
from .text import format_event, terminal_safe

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence
    from typing import Any

    from ...core.effects import Effect
    from ...core.plugin_call import ExecRequest
    from ...edges.probes import Change
    from .proc import Observation, Observer

__all__ = ["SCHEMA", "Event", "Tracer", "format_event", "terminal_safe"]

#: The ``schema`` value of ``--trace-json`` documents.
SCHEMA = "libcni_py.trace/2"


class Event(Value):
    """One step of a traced operation.

    Attributes:
        seq: its number, from 1.
        at: seconds from the start of the trace to the start of the step.
        duration: seconds the step took (probes not counted).
        actor: ``plugin`` for a plugin call, ``libcni_py`` otherwise.
        effect: ``exec``, ``resolve``, ``lock``, ``unlock``, ``read-record``,
            ``write-record``, ``remove-record``, ``list-records``, ``sweep`` or
            ``notice``.
        summary: one line for a person.
        data: the rest, JSON-ready (see docs/tracing.md for the fields).
        changes: what changed during the step.
        unprobed: what could not be looked at, and why.
        error: the error the step raised, or "".
    """

    seq: int
    at: float
    duration: float
    actor: str
    effect: str
    summary: str
    data: dict[str, Any] = fresh(dict)
    changes: tuple[Change, ...] = ()
    unprobed: tuple[str, ...] = ()
    error: str = ""

    @property
    def writer(self) -> str:
        """Who made this step's changes as a whole: ``libcni_py``, or the
        plugin's type (a file change may name its own writer)."""
        if self.actor != "plugin":
            return self.actor
        plugin = self.data.get("plugin") or {}
        return str(plugin.get("type") or "plugin")

    def by(self, change: Change) -> str:
        """Who made ``change``: the program that wrote it when that was seen,
        else the step's :attr:`writer`."""
        writer = change.details.get("writer")
        if isinstance(writer, dict) and writer.get("program"):
            return str(writer["program"])
        return self.writer

    def to_json(self) -> dict[str, Any]:
        """As a JSON-ready dict (an element of ``events`` in ``--trace-json``)."""
        return {
            "seq": self.seq,
            "at": round(self.at, 6),
            "duration": round(self.duration, 6),
            "actor": self.actor,
            "effect": self.effect,
            "summary": self.summary,
            **self.data,
            "changes": [{**c.to_json(), "by": self.by(c)} for c in self.changes],
            "unprobed": list(self.unprobed),
            "error": self.error or None,
        }


class _Pending:
    __slots__ = ("files", "host", "container", "iptables", "unprobed", "started", "roots", "existed", "observer")

    def __init__(self) -> None:
        self.files: dict[str, Any] | None = None
        self.host: Any = None
        self.container: Any = None
        self.iptables: Any = None
        self.unprobed: list[str] = []
        self.started = 0.0
        self.roots: tuple[str, ...] = ()
        self.existed = False
        self.observer: Observer | None = None


class Tracer:
    """Records every step of the operations it is given to, with the changes
    each made (see the module documentation).

    Args:
        cache_dir: the runtime's cache dir (watched, and where its records
            and locks live).
        watch: more directories to watch during plugin calls (plugins' data
            outside ``/var/lib/cni`` and their ``dataDir``).
        probe: measure changes (files, network, iptables); False records the
            steps only.
        who: with ``probe``, as root, also observe which processes each
            plugin call started and who made each change to a file, link,
            address or route (:mod:`libcni_py.tools.trace.proc`).
        on_event: called with each :class:`Event` as it completes (the CLI
            prints the timeline from it).
    """

    def __init__(
        self,
        *,
        cache_dir: str = DEFAULT_CACHE_DIR,
        watch: Iterable[str] = (),
        probe: bool = True,
        who: bool = True,
        on_event: Callable[[Event], None] | None = None,
    ) -> None:
        self.cache_dir = os.path.abspath(cache_dir)
        self.watch = tuple(watch)
        self.probe = probe
        self.who = who
        self.on_event = on_event
        self.events: list[Event] = []
        self.started_wall = time.time()
        self._t0 = time.monotonic()
        self._lock = threading.Lock()
        self._pending: dict[int, _Pending] = {}
        self._data_dirs: list[str] = []
        self._iptables_binary: str | bool | None = False

    # -- the driver hook -------------------------------------------------------

    def before(self, effect: Effect[Any]) -> None:
        """Take the snapshots the effect will be compared against."""
        pending = _Pending()
        if self.probe:
            if isinstance(effect, Exec):
                pending.roots = self._roots_for(effect.request)
            elif isinstance(effect, (WriteRecord, RemoveRecord, Acquire, AcquireGC, Release, Sweep)):
                pending.roots = probes.watch_roots([self.cache_dir])
            if self.who and pending.roots:
                if os.geteuid() == 0:
                    # before the snapshots, so that nothing that changes
                    # between them and the step goes unseen
                    pending.observer = self._observer(effect, pending.roots)
                elif isinstance(effect, Exec):
                    from .proc import NEEDS_ROOT

                    pending.unprobed.append(NEEDS_ROOT)
            if isinstance(effect, Exec):
                self._snapshot_exec(effect.request, pending)
            elif pending.roots:
                pending.files = probes.snapshot_files(pending.roots)
        if isinstance(effect, (WriteRecord, RemoveRecord)):
            pending.existed = os.path.lexists(self._record_path(effect.key.filename))
        pending.started = time.monotonic()
        with self._lock:
            self._pending[id(effect)] = pending

    def after(self, effect: Effect[Any], outcome: Any, error: BaseException | None) -> None:
        """Measure what changed and record the event."""
        ended = time.monotonic()
        with self._lock:
            pending = self._pending.pop(id(effect), None) or _Pending()
        changes: list[Change] = []
        unprobed = list(pending.unprobed)
        if pending.files is not None:
            changes += probes.diff_files(pending.files, probes.snapshot_files(pending.roots))
        if isinstance(effect, Exec):
            changes += self._diff_exec(effect.request, pending, unprobed)
        observed = pending.observer.stop() if pending.observer is not None else None
        actor, kind, summary, data = describe(effect, outcome, cache_dir=self.cache_dir, existed=pending.existed)
        if observed is not None:
            changes = self._who(
                effect, outcome=outcome, observed=observed, changes=changes, data=data, unprobed=unprobed
            )
        err = ""
        if error is not None:
            err = error.one_line() if isinstance(error, CNIError) else f"{type(error).__name__}: {error}"
        with self._lock:
            event = Event(
                seq=len(self.events) + 1,
                at=pending.started - self._t0 if pending.started else ended - self._t0,
                duration=max(0.0, ended - pending.started) if pending.started else 0.0,
                actor=actor,
                effect=kind,
                summary=summary,
                data=data,
                changes=tuple(changes),
                unprobed=tuple(unprobed),
                error=err,
            )
            self.events.append(event)
        if self.on_event is not None:
            self.on_event(event)

    def _who(
        self,
        effect: Effect[Any],
        *,
        outcome: Any,
        observed: Observation,
        changes: list[Change],
        data: dict[str, Any],
        unprobed: list[str],
    ) -> list[Change]:
        """Name who made each change (files, links, addresses, routes), and
        list the processes a plugin call started."""
        unprobed += observed.unprobed
        pid, name = 0, ""
        if isinstance(effect, Exec) and outcome is not None and outcome.started:
            pid, name = outcome.pid, effect.request.plugin_type
            if observed.watching_processes:
                processes = observed.processes(pid, name, self._t0)
                if processes is None:
                    unprobed.append(
                        f"processes: no event of the plugin's process (pid {pid}) arrived "
                        "(the kernel reports the processes of the initial PID namespace only)"
                    )
                else:
                    data["processes"] = processes
        return observed.annotate(changes, top_pid=pid, top_name=name)

    # -- snapshots -------------------------------------------------------------

    def _roots_for(self, req: ExecRequest) -> tuple[str, ...]:
        _, data_dirs = delegates(req.stdin)
        for directory in data_dirs:
            if directory not in self._data_dirs:
                self._data_dirs.append(directory)
        return probes.watch_roots([self.cache_dir, DEFAULT_CACHE_DIR, *self.watch, *self._data_dirs])

    def _iptables(self, req: ExecRequest) -> str | None:
        if self._iptables_binary is False:
            self._iptables_binary = probes.find_iptables_save(req.env)
        return self._iptables_binary or None  # type: ignore[return-value]

    def _observer(self, effect: Effect[Any], roots: Sequence[str]) -> Observer:
        """Start watching who does what during ``effect`` (see :mod:`libcni_py.tools.trace.proc`)."""
        from ...netns import is_netns
        from .proc import Observer

        if not isinstance(effect, Exec):
            return Observer(roots, processes=False)
        env = effect.request.env
        netns = {"host": ""}
        if env.get("CNI_NETNS") and is_netns(env["CNI_NETNS"]):
            netns["container"] = env["CNI_NETNS"]
        plugin_dirs = [d for d in env.get("CNI_PATH", "").split(":") if d]
        return Observer(roots, processes=True, plugin_dirs=plugin_dirs, netns=netns)

    def _snapshot_exec(self, req: ExecRequest, pending: _Pending) -> None:
        pending.files = probes.snapshot_files(pending.roots)
        try:
            pending.host = probes.net_snapshot()
        except (OSError, CNIError, ImportError) as exc:
            pending.unprobed.append(f"host network: {exc}")
        netns = req.env.get("CNI_NETNS", "")
        if netns:
            try:
                pending.container = probes.net_snapshot(netns)
            except (OSError, CNIError, ImportError) as exc:
                pending.unprobed.append(f"container network ({netns}): {_one_line(exc)}")
        binary = self._iptables(req)
        if binary is None:
            pending.unprobed.append("iptables: iptables-save not found on the plugins' PATH or in /usr/sbin")
        else:
            try:
                pending.iptables = probes.iptables_snapshot(binary)
            except (OSError, ValueError) as exc:
                pending.unprobed.append(f"iptables: {exc}")

    def _diff_exec(self, req: ExecRequest, pending: _Pending, unprobed: list[str]) -> list[Change]:
        changes: list[Change] = []
        if pending.host is not None:
            try:
                changes += probes.diff_net(pending.host, probes.net_snapshot(), "host")
            except (OSError, CNIError) as exc:
                unprobed.append(f"host network: {exc}")
        if pending.container is not None:
            netns = req.env.get("CNI_NETNS", "")
            try:
                changes += probes.diff_net(pending.container, probes.net_snapshot(netns), "container")
            except (OSError, CNIError) as exc:
                unprobed.append(f"container network ({netns}) after the call: {_one_line(exc)}")
        if pending.iptables is not None:
            binary = self._iptables(req)
            assert binary is not None
            try:
                changes += probes.diff_iptables(pending.iptables, probes.iptables_snapshot(binary))
            except (OSError, ValueError) as exc:
                unprobed.append(f"iptables after the call: {exc}")
        return changes

    # -- descriptions ----------------------------------------------------------

    def _record_path(self, filename: str) -> str:
        return cache_path(self.cache_dir, RESULTS_FOLDER, filename)

    # -- output ----------------------------------------------------------------

    def to_json(self, *, command: Sequence[str] | None = None, error: str = "") -> dict[str, Any]:
        """The whole trace as a JSON-ready dict (the ``--trace-json`` document)."""
        with self._lock:
            events = [e.to_json() for e in self.events]
        return {
            "schema": SCHEMA,
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started_wall)),
            "command": list(command) if command is not None else None,
            "cacheDir": self.cache_dir,
            "events": events,
            "error": error or None,
        }


def _one_line(exc: BaseException) -> str:
    return exc.one_line() if isinstance(exc, CNIError) else str(exc)
