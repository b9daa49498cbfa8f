"""One description of every effect, shared by the tracer
(:mod:`libcni_py.tools.trace.tracer`) and the dry run
(:mod:`libcni_py.drivers.dryrun`): :func:`describe`.
"""

from __future__ import annotations

from ..core import gojson
from ..core.effects import (
    Acquire,
    AcquireGC,
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
from ..core.plugin_input import ENV_VARIABLES
from ..core.record import ATTACHMENT_LOCKS_FOLDER, GC_LOCK_FOLDER, RESULTS_FOLDER, cache_path
from ..edges import probes
from ..errors import CNIError, DecodeError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..core.effects import Effect
    from ..core.plugin_call import ExecOutcome, ExecRequest

__all__ = ["delegates", "describe", "kind_of"]


def kind_of(effect: object) -> str:
    """The effect's kind: its class name in kebab case (``WriteRecord`` ->
    ``write-record``), ``exec``, ``lock``, ``lock-gc`` and ``unlock`` for
    the core's ``Exec``, ``Acquire``, ``AcquireGC`` and ``Release``."""
    special = _KINDS.get(type(effect))
    if special is not None:
        return special
    name = type(effect).__name__
    return "".join("-" + c if c.isupper() and i and name[i - 1].islower() else c for i, c in enumerate(name)).lower()


_KINDS: dict[type, str] = {Exec: "exec", Acquire: "lock", AcquireGC: "lock-gc", Release: "unlock"}


def _record_path(cache_dir: str, filename: str) -> str:
    return cache_path(cache_dir, RESULTS_FOLDER, filename)


def describe(
    effect: Effect[Any], outcome: Any = None, *, cache_dir: str, existed: bool = False
) -> tuple[str, str, str, dict[str, Any]]:
    """What an effect is, for a person and for JSON: ``(actor, kind,
    summary, data)``.

    Args:
        effect: any effect, the core's or the runtime layer's (those are
            described from their plain fields).
        outcome: what performing it returned (None before, or if it failed).
        cache_dir: the cache directory (records and locks are shown with
            their paths).
        existed: for a record written, whether one was there before.

    ``actor`` is ``plugin`` for a plugin call, ``libcni_py`` otherwise;
    ``kind`` is the effect's name in kebab case (``exec``, ``write-record``,
    ``probe-netns``, ``lock-pod``...).
    """
    if isinstance(effect, Exec):
        return ("plugin", "exec", *_describe_exec(effect.request, outcome))
    if isinstance(effect, WriteRecord):
        key = effect.key
        from ..core.record import decode_record

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
        verb = "replaces" if existed else "writes"
        return (
            "libcni_py",
            "write-record",
            f"libcni_py {verb} the cache record of {key.network}/{key.container_id}/{key.ifname} ({state})",
            {
                "record": _record_json(key, _record_path(cache_dir, key.filename)),
                "progress": progress,
                "bytes": len(effect.data),
            },
        )
    if isinstance(effect, RemoveRecord):
        key = effect.key
        what = "removes" if outcome else "finds no"
        return (
            "libcni_py",
            "remove-record",
            f"libcni_py {what} the cache record of {key.network}/{key.container_id}/{key.ifname}",
            {"record": _record_json(key, _record_path(cache_dir, key.filename)), "removed": bool(outcome)},
        )
    if isinstance(effect, Acquire):
        path = cache_path(cache_dir, ATTACHMENT_LOCKS_FOLDER, effect.key.filename)
        return ("libcni_py", "lock", f"libcni_py locks the attachment ({path})", {"lockFile": path})
    if isinstance(effect, AcquireGC):
        path = cache_path(cache_dir, GC_LOCK_FOLDER, "lock")
        return (
            "libcni_py",
            "lock-gc",
            f"libcni_py locks the cache dir for GC: no ADD, CHECK or DEL meanwhile ({path})",
            {"lockFile": path},
        )
    if isinstance(effect, Release):
        path = cache_path(cache_dir, ATTACHMENT_LOCKS_FOLDER, effect.key.filename)
        extra = " and removes the lock file" if effect.forget else ""
        return ("libcni_py", "unlock", f"libcni_py unlocks the attachment{extra}", {"lockFile": path})
    if isinstance(effect, Resolve):
        found = list(outcome) if isinstance(outcome, tuple) else []
        pairs = ", ".join(f"{t} -> {p}" for t, p in zip(effect.plugin_types, found, strict=False))
        return (
            "libcni_py",
            "resolve",
            f"libcni_py finds the plugins: {pairs or ', '.join(effect.plugin_types)}",
            {"types": list(effect.plugin_types), "paths": found, "pluginPath": list(effect.plugin_path)},
        )
    if isinstance(effect, ReadRecord):
        key = effect.key
        found_text = "none" if outcome is None else f"{len(outcome)} bytes" if isinstance(outcome, bytes) else "?"
        return (
            "libcni_py",
            "read-record",
            f"libcni_py reads the cache record of {key.network}/{key.container_id}/{key.ifname} ({found_text})",
            {"record": _record_json(key, _record_path(cache_dir, key.filename))},
        )
    if isinstance(effect, ListRecords):
        count = len(outcome) if isinstance(outcome, list) else 0
        return ("libcni_py", "list-records", f"libcni_py lists the cache ({count} files)", {"files": count})
    if isinstance(effect, ProbeNetns):
        return (
            "libcni_py",
            "probe-netns",
            f"libcni_py checks the namespace {effect.path or '(none)'}: {outcome}",
            {"netns": effect.path, "state": outcome},
        )
    if isinstance(effect, ProbeLinks):
        seen = "cannot tell" if outcome is None else ", ".join(outcome) + " still there" if outcome else "gone"
        return (
            "libcni_py",
            "probe-links",
            f"libcni_py looks for {', '.join(effect.names)} in the namespace {effect.path}: {seen}",
            {"netns": effect.path, "names": list(effect.names), "present": outcome},
        )
    if isinstance(effect, Notice):
        return ("libcni_py", "notice", f"note: {effect.text}", {"text": effect.text})
    if isinstance(effect, Sweep):
        tmp, locks = outcome if isinstance(outcome, tuple) else (0, 0)
        return (
            "libcni_py",
            "sweep",
            f"libcni_py sweeps what crashed writers left for {effect.network} "
            f"({tmp} temporary file(s), {locks} lock file(s) removed)",
            {"network": effect.network, "temporaryFiles": tmp, "lockFiles": locks},
        )
    return ("libcni_py", *_describe_other(effect))


def _describe_other(effect: object) -> tuple[str, str, dict[str, Any]]:
    """A step the plan does not define (the runtime layer's, such as
    ``LockPod``): its name in kebab case and its plain fields, one line."""
    kind = kind_of(effect)
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


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def delegates(stdin: bytes) -> tuple[list[str], list[str]]:
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


def _record_json(key: Any, path: str) -> dict[str, str]:
    return {"network": key.network, "containerId": key.container_id, "ifname": key.ifname, "path": path}


def _describe_exec(req: ExecRequest, outcome: ExecOutcome | None) -> tuple[str, dict[str, Any]]:
    subs, data_dirs = delegates(req.stdin)
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
