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

from ...core import gojson, plan
from ...core.plugin_input import ENV_VARIABLES
from ...core.record import ATTACHMENT_LOCKS_FOLDER, RESULTS_FOLDER, cache_path
from ...core.value import Value, fresh
from ...edges import probes
from ...edges.recordstore import DEFAULT_CACHE_DIR
from ...errors import CNIError, DecodeError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence
    from typing import Any

    from ...core.plugin_call import ExecOutcome, ExecRequest
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


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _delegates(stdin: bytes) -> tuple[list[str], list[str]]:
    """The plugins a plugin's config delegates to, and its data dirs."""
    try:
        doc = gojson.loads(stdin)
    except DecodeError:
        return [], []
    if not isinstance(doc, dict):
        return [], []
    subs = []
    for key in ("ipam", "delegate"):
        sub = doc.get(key)
        if isinstance(sub, dict) and isinstance(sub.get("type"), str) and sub["type"]:
            subs.append(sub["type"])
    return subs, probes.find_data_dirs(doc)


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

    def before(self, effect: plan.Effect) -> None:
        """Take the snapshots the effect will be compared against."""
        pending = _Pending()
        if self.probe:
            if isinstance(effect, plan.Exec):
                pending.roots = self._roots_for(effect.request)
            elif isinstance(effect, (plan.WriteRecord, plan.RemoveRecord, plan.Acquire, plan.Release, plan.Sweep)):
                pending.roots = probes.watch_roots([self.cache_dir])
            if self.who and pending.roots:
                if os.geteuid() == 0:
                    # before the snapshots, so that nothing that changes
                    # between them and the step goes unseen
                    pending.observer = self._observer(effect, pending.roots)
                elif isinstance(effect, plan.Exec):
                    from .proc import NEEDS_ROOT

                    pending.unprobed.append(NEEDS_ROOT)
            if isinstance(effect, plan.Exec):
                self._snapshot_exec(effect.request, pending)
            elif pending.roots:
                pending.files = probes.snapshot_files(pending.roots)
        if isinstance(effect, (plan.WriteRecord, plan.RemoveRecord)):
            pending.existed = os.path.lexists(self._record_path(effect.key.filename))
        pending.started = time.monotonic()
        with self._lock:
            self._pending[id(effect)] = pending

    def after(self, effect: plan.Effect, outcome: Any, error: BaseException | None) -> None:
        """Measure what changed and record the event."""
        ended = time.monotonic()
        with self._lock:
            pending = self._pending.pop(id(effect), None) or _Pending()
        changes: list[Change] = []
        unprobed = list(pending.unprobed)
        if pending.files is not None:
            changes += probes.diff_files(pending.files, probes.snapshot_files(pending.roots))
        if isinstance(effect, plan.Exec):
            changes += self._diff_exec(effect.request, pending, unprobed)
        observed = pending.observer.stop() if pending.observer is not None else None
        actor, kind, summary, data = self._describe(effect, outcome, pending)
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
        effect: plan.Effect,
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
        if isinstance(effect, plan.Exec) and outcome is not None and outcome.started:
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
        _, data_dirs = _delegates(req.stdin)
        for directory in data_dirs:
            if directory not in self._data_dirs:
                self._data_dirs.append(directory)
        return probes.watch_roots([self.cache_dir, DEFAULT_CACHE_DIR, *self.watch, *self._data_dirs])

    def _iptables(self, req: ExecRequest) -> str | None:
        if self._iptables_binary is False:
            self._iptables_binary = probes.find_iptables_save(req.env)
        return self._iptables_binary or None  # type: ignore[return-value]

    def _observer(self, effect: plan.Effect, roots: Sequence[str]) -> Observer:
        """Start watching who does what during ``effect`` (see :mod:`libcni_py.tools.trace.proc`)."""
        from ...netns import is_netns
        from .proc import Observer

        if not isinstance(effect, plan.Exec):
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

    def _describe(self, effect: plan.Effect, outcome: Any, pending: _Pending) -> tuple[str, str, str, dict[str, Any]]:
        if isinstance(effect, plan.Exec):
            return ("plugin", "exec", *_describe_exec(effect.request, outcome))
        if isinstance(effect, plan.WriteRecord):
            key = effect.key
            from ...core.record import decode_record

            state = "final"
            progress = None
            try:
                record = decode_record(effect.data, key.filename)
                if record.progress is not None:
                    progress = {
                        "state": record.progress.state,
                        "done": record.progress.done,
                        "plugins": record.progress.plugins,
                    }
                    state = record.progress.describe()
            except CNIError:
                state = "unreadable"
            verb = "replaces" if pending.existed else "writes"
            return (
                "libcni_py",
                "write-record",
                f"libcni_py {verb} the cache record of {key.network}/{key.container_id}/{key.ifname} ({state})",
                {
                    "record": _record_json(key, self._record_path(key.filename)),
                    "progress": progress,
                    "bytes": len(effect.data),
                },
            )
        if isinstance(effect, plan.RemoveRecord):
            key = effect.key
            what = "removes" if outcome else "finds no"
            return (
                "libcni_py",
                "remove-record",
                f"libcni_py {what} the cache record of {key.network}/{key.container_id}/{key.ifname}",
                {"record": _record_json(key, self._record_path(key.filename)), "removed": bool(outcome)},
            )
        if isinstance(effect, plan.Acquire):
            path = cache_path(self.cache_dir, ATTACHMENT_LOCKS_FOLDER, effect.key.filename)
            return ("libcni_py", "lock", f"libcni_py locks the attachment ({path})", {"lockFile": path})
        if isinstance(effect, plan.Release):
            path = cache_path(self.cache_dir, ATTACHMENT_LOCKS_FOLDER, effect.key.filename)
            extra = " and removes the lock file" if effect.forget else ""
            return ("libcni_py", "unlock", f"libcni_py unlocks the attachment{extra}", {"lockFile": path})
        if isinstance(effect, plan.Resolve):
            found = list(outcome) if isinstance(outcome, tuple) else []
            pairs = ", ".join(f"{t} -> {p}" for t, p in zip(effect.plugin_types, found, strict=False))
            return (
                "libcni_py",
                "resolve",
                f"libcni_py finds the plugins: {pairs or ', '.join(effect.plugin_types)}",
                {"types": list(effect.plugin_types), "paths": found, "pluginPath": list(effect.plugin_path)},
            )
        if isinstance(effect, plan.ReadRecord):
            key = effect.key
            found_text = "none" if outcome is None else f"{len(outcome)} bytes" if isinstance(outcome, bytes) else "?"
            return (
                "libcni_py",
                "read-record",
                f"libcni_py reads the cache record of {key.network}/{key.container_id}/{key.ifname} ({found_text})",
                {"record": _record_json(key, self._record_path(key.filename))},
            )
        if isinstance(effect, plan.ListRecords):
            count = len(outcome) if isinstance(outcome, list) else 0
            return ("libcni_py", "list-records", f"libcni_py lists the cache ({count} files)", {"files": count})
        if isinstance(effect, plan.ProbeNetns):
            return (
                "libcni_py",
                "probe-netns",
                f"libcni_py checks the namespace {effect.path or '(none)'}: {outcome}",
                {"netns": effect.path, "state": outcome},
            )
        if isinstance(effect, plan.Notice):
            return ("libcni_py", "notice", f"note: {effect.text}", {"text": effect.text})
        if isinstance(effect, plan.Sweep):
            tmp, locks = outcome if isinstance(outcome, tuple) else (0, 0)
            return (
                "libcni_py",
                "sweep",
                f"libcni_py sweeps what crashed writers left for {effect.network} "
                f"({tmp} temporary file(s), {locks} lock file(s) removed)",
                {"network": effect.network, "temporaryFiles": tmp, "lockFiles": locks},
            )
        return ("libcni_py", *_describe_other(effect))

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


def _describe_other(effect: object) -> tuple[str, str, dict[str, Any]]:
    """A step the plan does not define (the runtime layer's, such as
    ``LockPod``): its name in kebab case and its plain fields, one line."""
    name = type(effect).__name__
    kind = "".join("-" + c if c.isupper() and i and name[i - 1].islower() else c for i, c in enumerate(name)).lower()
    fields: dict[str, Any] = {}
    for slot in getattr(type(effect), "__slots__", ()):
        value = getattr(effect, slot, None)
        if isinstance(value, bool):
            if value:
                fields[slot] = True
        elif isinstance(value, str | int | float) and value != "":
            fields[slot] = value
    words = ", ".join(slot if value is True else f"{slot} {value}" for slot, value in fields.items())
    return kind, f"libcni_py {kind}" + (f": {words}" if words else ""), {"fields": fields}


def _one_line(exc: BaseException) -> str:
    return exc.one_line() if isinstance(exc, CNIError) else str(exc)


def _record_json(key: Any, path: str) -> dict[str, str]:
    return {"network": key.network, "containerId": key.container_id, "ifname": key.ifname, "path": path}


def _describe_exec(req: ExecRequest, outcome: ExecOutcome | None) -> tuple[str, dict[str, Any]]:
    subs, data_dirs = _delegates(req.stdin)
    where = f"plugins[{req.index}] of network {req.network}" if req.index >= 0 else "probe"
    summary = f"plugin {req.plugin_type} {req.command} ({where})"
    data: dict[str, Any] = {
        "plugin": {
            "type": req.plugin_type,
            "name": req.plugin_name or None,
            "index": req.index,
            "network": req.network or None,
            "path": req.path,
            "delegates": subs,
            "dataDirs": data_dirs,
        },
        "command": req.command,
        "env": dict(req.env),
        "cniEnv": {k: req.env[k] for k in ENV_VARIABLES if k in req.env},
        "stdin": _text(req.stdin),
    }
    if outcome is not None:
        data.update(
            {
                "stdout": _text(outcome.stdout),
                "stderr": _text(outcome.stderr),
                "stderrDropped": outcome.stderr_dropped,
                "exitStatus": outcome.returncode if outcome.started else None,
                "startError": outcome.error or None,
                "timedOut": outcome.timed_out,
                "pid": outcome.pid or None,
                "pluginDuration": round(outcome.duration, 6),
            }
        )
    return summary, data


# --------------------------------------------------------------------------
# the timeline


#: Control characters other than tab and newline, made visible in the timeline.
_CONTROLS = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0)) if c not in (0x09, 0x0A)}


_ONE_LINE = {**_CONTROLS, 0x0A: "\\x0a"}


def terminal_safe(text: str, *, one_line: bool = False) -> str:
    """``text`` with ``\\r\\n`` as a newline and every other control character
    shown as ``\\xNN`` (with ``one_line``, newlines too): what a plugin
    printed, or a file name it made, cannot move the cursor, clear the line
    or pass for one of the trace's own lines."""
    return text.replace("\r\n", "\n").translate(_ONE_LINE if one_line else _CONTROLS)


def _indent_block(label: str, text: str, width: int = 9) -> list[str]:
    """A plugin's text as a block of its own lines, indented under ``label``
    (it need not end with a newline; it cannot glue itself to a header)."""
    text = terminal_safe(text)
    lines = text.rstrip("\n").split("\n") if text.strip() else ["(empty)"]
    out = [f"    {label:<{width}}{lines[0]}".rstrip()]
    out += [f"    {'':<{width}}{line}" for line in lines[1:]]
    return out


def _change_line(change: Change) -> str:
    sign = {"created": "+", "added": "+", "removed": "-", "changed": "~"}.get(change.change, "?")
    where = ""
    if change.kind in ("link", "address", "route") or change.kind.startswith("iptables"):
        where = f"{change.where} "
    line = f"      {sign} {change.kind:<15}{where}{change.text}"
    if "writer" in change.details:
        writer = change.details["writer"]
        if isinstance(writer, dict):
            from .proc import describe_writer

            line += f"  ({describe_writer(writer, change.change == 'removed', change.kind)})"
        else:
            line += "  (writer not seen)"
    content = change.details.get("content")
    if isinstance(content, str) and content:
        shown = content if len(content) <= 80 else content[:77] + "..."
        line += "  " + gojson.dumps(shown)
    return line


def _process_label(proc: dict[str, Any]) -> str:
    if proc.get("plugin"):
        label = f"{proc.get('program')} {proc.get('cniCommand') or '(CNI_COMMAND not read)'}"
        if proc.get("depth") and proc.get("path"):
            label += f" ({proc['path']})"
        return label
    argv = [str(a) for a in proc.get("argv") or []]
    if not argv:
        return f"{proc.get('program')} ({proc.get('unread') or 'its command line was not read'})"
    path = proc.get("path")
    args = argv[argv.index(path) + 1 :] if path in argv else argv[1:]  # after the script, for interpreters
    text = " ".join([str(proc.get("program")), *args])
    return text if len(text) <= 100 else text[:97] + "..."


def _process_status(proc: dict[str, Any]) -> str:
    status = proc.get("exitStatus")
    if status is None:
        return "exit not seen"
    return f"exit {status}" if status >= 0 else f"killed by signal {-status}"


def _process_lines(processes: Sequence[dict[str, Any]]) -> list[str]:
    """The process tree of a plugin call, for a person: every plugin, nested
    under the process that ran it; of the other programs, those a plugin ran
    itself (iptables...), consecutive runs of one program folded into one
    line; what those programs ran in turn is only counted (``--trace-json``
    has every process)."""
    from collections import Counter

    if not processes:
        return []
    children: dict[int, list[dict[str, Any]]] = {}
    for proc in processes[1:]:
        children.setdefault(int(proc.get("ppid") or 0), []).append(proc)

    def below(proc: dict[str, Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for kid in children.get(int(proc["pid"]), []):
            out += [kid, *below(kid)]
        return out

    lines: list[str] = []

    def show(proc: dict[str, Any], extra: str = "") -> None:
        indent = "      " + "  " * int(proc.get("depth") or 0)
        lines.append(f"{indent}{_process_label(proc)}  [pid {proc.get('pid')}, {_process_status(proc)}]{extra}")

    def walk(plugin: dict[str, Any]) -> None:
        show(plugin)
        kids = children.get(int(plugin["pid"]), [])
        index = 0
        while index < len(kids):
            kid = kids[index]
            if kid.get("plugin"):
                walk(kid)
                index += 1
                continue
            run = [kid]
            while (
                index + len(run) < len(kids)
                and not kids[index + len(run)].get("plugin")
                and kids[index + len(run)].get("program") == kid.get("program")
            ):
                run.append(kids[index + len(run)])
            index += len(run)
            hidden = [p for member in run for p in below(member)]
            extra = ""
            if len(run) > 1:
                statuses = Counter(_process_status(p) for p in run)
                summary = ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items()))
                more = len(run) - 1
                extra += f"  + {more} more run{'s' if more > 1 else ''} of {kid.get('program')} ({summary})"
            inner = [p for p in hidden if not p.get("plugin")]
            if inner:
                extra += f"  ({len(inner)} more processes below)"
            show(kid, extra)
            for proc in hidden:
                if proc.get("plugin") and not any(p.get("plugin") for p in hidden if p["pid"] == proc.get("ppid")):
                    walk(proc)

    walk(processes[0])
    return lines


def format_event(event: Event) -> str:
    """An event as lines of the readable timeline (``cnitool --trace``)."""
    head = f"trace #{event.seq} +{event.at:.3f}s {event.summary}"
    if event.duration >= 0.0005 and event.effect != "exec":
        head += f" [{event.duration * 1000:.1f} ms]"
    lines = [head]
    data = event.data
    if event.effect == "exec":
        plugin = data.get("plugin", {})
        binary = str(plugin.get("path", ""))
        if plugin.get("delegates"):
            binary += f"   (its config delegates to: {', '.join(plugin['delegates'])})"
        lines.append(f"    {'binary':<9}{binary}")
        env = data.get("env", {})
        shown = [f"{k}={env[k]}" for k in ENV_VARIABLES if k in env]
        inherited = len(env) - len(shown)
        lines.append(f"    {'env':<9}{' '.join(shown)}")
        lines.append(f"    {'':<9}+ {inherited} variables inherited from the runtime's environment")
        lines += _indent_block("stdin", str(data.get("stdin", "")))
        if "exitStatus" in data:
            if data.get("startError"):
                status = f"could not start: {data['startError']}"
            elif data.get("timedOut"):
                status = "killed at the deadline"
            else:
                status = f"exit status {data['exitStatus']}"
            lines.append(
                f"    {'result':<9}{status} after {data.get('pluginDuration', 0.0):.3f}s (pid {data.get('pid')})"
            )
            lines += _indent_block("stdout", str(data.get("stdout", "")))
            lines += _indent_block("stderr", str(data.get("stderr", "")))
            if data.get("stderrDropped"):
                lines.append(f"    {'':<9}({data['stderrDropped']} more bytes of stderr were not kept)")
    processes = data.get("processes")
    if processes:
        lines.append("    processes (in the order they started):")
        lines += _process_lines(processes)
    if event.error:
        lines.append(f"    {'error':<9}{event.error}")
    if event.changes:
        who = event.actor if event.actor == "libcni_py" else f"{data.get('plugin', {}).get('type', 'the plugin')}"
        if processes is not None and event.actor == "plugin":
            if len(processes) > 1:
                who += " or a program it ran"
        elif event.actor == "plugin" and data.get("plugin", {}).get("delegates"):
            who += " or a plugin it ran"
        lines.append(f"    changed during this step (by {who}):")
        lines += [_change_line(c) for c in event.changes]
    elif event.effect == "exec" and "exitStatus" in data:
        lines.append("    changed during this step: nothing seen")
    lines += [f"    not probed: {text}" for text in event.unprobed]
    # each line is one line: a newline in a file name or a summary is shown, not followed
    return "\n".join(terminal_safe(line, one_line=True) for line in lines)
