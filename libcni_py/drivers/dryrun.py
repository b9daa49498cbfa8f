"""Dry runs: what each plugin of an operation would be given, without running it.

:func:`explain` runs the real plan (:mod:`libcni_py.core.operations`) -- the same code
ADD, CHECK, DEL, GC and STATUS run -- with :class:`DryRunDriver`, a driver
that performs nothing: plugin runs are recorded and answered with a
placeholder success (an empty result for ADD), cache records are "read" as a
placeholder record, writes and locks are recorded and skipped.  So the stdin
and environment shown are exactly those the plan builds, and the order is
the plan's.  Nothing runs and nothing is written; the only reads are the
``stat`` calls that find the plugin binaries.

Where a plugin's ``prevResult`` would come from the previous plugin or from
the cache, the placeholder result is replaced by a text saying so
(:data:`PLACEHOLDER_KEY` marks the step).
"""

from __future__ import annotations

import os

from ..core import gojson
from ..core import operations as ops
from ..core import plugin_call as invoke
from ..core import plugin_input as request
from ..core import record as cache
from ..core.value import Value, fresh
from ..errors import DecodeError, PluginNotFoundError
from .base import Stepper, complete
from .describe import kind_of

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any, TypeVar

    from ..core.effects import (
        Acquire,
        AcquireGC,
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
    from ..core.inputs import Options, RuntimeConf
    from ..core.netconf import NetworkConfigList
    from ..edges.recordstore import CacheStore

    T = TypeVar("T")

__all__ = ["COMMANDS", "DryRunDriver", "Step", "explain"]

#: The operations that can be explained.
COMMANDS = ("ADD", "CHECK", "DEL", "GC", "STATUS")

#: Marks a binary that is not there (the step still shows what it would get).
MISSING = "(MISSING)"


def _on_disk(path: str) -> bool:
    """Whether something is at ``path`` now (the dry run's one kind of look)."""
    return os.path.lexists(path)


class Step(Value):
    """One thing an operation would do.

    Attributes:
        kind: ``exec`` (a plugin call), ``write-record``, ``remove-record``,
            ``read-record``, ``list-records``, ``lock``, ``unlock``, ``notice``.
        text: one line for a person.
        request: for ``exec``, the exact call (binary, command, stdin, env).
        prev_result: for ``exec``, where its ``prevResult`` comes from ("" when
            it gets none).
        passed: for ``exec``, the capability args it gets (its ``runtimeConfig``).
        dropped: for ``exec``, capability args it does not get because it does
            not declare them in ``capabilities``.
        missing: for ``exec``, why the binary would not be found ("" when it is).
    """

    kind: str
    text: str
    request: invoke.ExecRequest | None = None
    prev_result: str = ""
    passed: dict[str, Any] = fresh(dict)
    dropped: tuple[str, ...] = ()
    missing: str = ""

    def stdin_shown(self) -> str:
        """The stdin as it would be sent (compact, exact), with the placeholder
        ``prevResult`` replaced by a text saying where it comes from."""
        assert self.request is not None
        if not self.prev_result:
            return self.request.stdin.decode("utf-8", "replace")
        return gojson.dumps(self._with_placeholder())

    def stdin_pretty(self) -> str:
        """The stdin indented for reading (placeholder as in :meth:`stdin_shown`)."""
        assert self.request is not None
        try:
            doc = self._with_placeholder() if self.prev_result else gojson.loads(self.request.stdin)
        except DecodeError:
            return self.request.stdin.decode("utf-8", "replace")
        return gojson.dumps(doc, indent="  ")

    def _with_placeholder(self) -> Any:
        assert self.request is not None
        doc = gojson.loads(self.request.stdin)
        if isinstance(doc, dict) and "prevResult" in doc:
            # the top level is a plain map (sorted keys) in Go's encoding too,
            # so re-encoding changes nothing but this value
            doc["prevResult"] = f"PLACEHOLDER: {self.prev_result}"
        return doc


class DryRunDriver(Stepper):
    """Performs nothing: records what a plan would do (see the module).

    Args:
        store: the cache dir (only its paths are used).
        netlist: the network (for the placeholder answers).
        capability_args: the runtime's capability args (to tell which each
            plugin gets and which it does not).
        command: the operation explained (for what a missing record means).
    """

    def __init__(
        self, store: CacheStore, netlist: NetworkConfigList, capability_args: dict[str, Any], command: str = ""
    ) -> None:
        super().__init__()
        self.store = store
        self.netlist = netlist
        self.command = command
        self.capability_args = capability_args
        self.steps: list[Step] = []
        self._last_exec_index = -1
        self._prev_source = ""

    async def resolve(self, effect: Resolve) -> tuple[str, ...]:
        """The binaries, a missing one marked :data:`MISSING` (the step still shows what it would get)."""
        paths = []
        for plugin_type in effect.plugin_types:
            try:
                paths.append(invoke.find_in_path(plugin_type, effect.plugin_path))
            except PluginNotFoundError as exc:
                paths.append(f"{MISSING} {exc.one_line()}")
        return tuple(paths)

    async def exec(self, effect: Exec) -> invoke.ExecOutcome:
        """Record the call; a placeholder success."""
        return self._exec(effect.request, self.netlist.cni_version or "0.1.0")

    async def read_record(self, effect: ReadRecord) -> bytes | None:
        """Say where the record would be read; a placeholder record (none for ADD)."""
        version = self.netlist.cni_version or "0.1.0"
        path = self.store.path_for(effect.key)
        if self.command == "ADD":
            # ADD looks for a record only to refuse an attachment that is on record
            exists = "it exists now: an ADD now is refused" if _on_disk(path) else "there is none now"
            self.steps.append(
                Step(
                    kind=kind_of(effect),
                    text=f"look for the cache record {path}: ADD refuses an attachment on record ({exists})",
                )
            )
            return None
        if _on_disk(path):
            exists = "it exists now"
        elif self.command == "CHECK":
            exists = "there is none now: a CHECK now fails before running any plugin"
        else:
            exists = "there is none now: a DEL now runs the plugins without prevResult"
        self._prev_source = f"the cached ADD result, from {path} ({exists}), as version {version}"
        self.steps.append(Step(kind=kind_of(effect), text=f"read the cache record {path} ({exists})"))
        return cache.encode_record(
            container_id=effect.key.container_id,
            ifname=effect.key.ifname,
            network=effect.key.network,
            config=self.netlist.config_bytes,
            netns="",
            cni_args=(),
            capability_args=None,
            result={"cniVersion": version},
        )

    async def write_record(self, effect: WriteRecord) -> None:
        """Say which record would be written, and in which state."""
        record = cache.decode_record(effect.data, self.store.path_for(effect.key))
        state = "final: the last plugin's result" if record.progress is None else record.progress.describe()
        self.steps.append(
            Step(kind=kind_of(effect), text=f"write the cache record {self.store.path_for(effect.key)} ({state})")
        )

    async def remove_record(self, effect: RemoveRecord) -> bool:
        """Say which record would be removed."""
        self.steps.append(Step(kind=kind_of(effect), text=f"remove the cache record {self.store.path_for(effect.key)}"))
        return True

    async def list_records(self, effect: ListRecords) -> list[Listed]:
        """Say the cache would be listed; an empty listing."""
        self.steps.append(
            Step(
                kind=kind_of(effect),
                text="list the cache; every cached attachment of this network that is not valid gets a full DEL "
                "first (see explain --command DEL); none shown here",
            )
        )
        return []

    async def acquire(self, effect: Acquire) -> None:
        """Say the attachment would be locked."""
        self.steps.append(Step(kind=kind_of(effect), text="lock the attachment (one operation at a time)"))

    async def acquire_gc(self, effect: AcquireGC) -> None:
        """Say the cache dir would be locked for GC."""
        self.steps.append(
            Step(kind=kind_of(effect), text="lock the cache dir for GC (no ADD, CHECK or DEL runs meanwhile)")
        )

    async def release(self, effect: Release) -> None:
        """Say the attachment would be unlocked."""
        self.steps.append(Step(kind=kind_of(effect), text="unlock the attachment"))

    async def sweep(self, effect: Sweep) -> tuple[int, int]:
        """Say what would be swept; nothing."""
        self.steps.append(
            Step(
                kind=kind_of(effect),
                text="remove temporary files and unheld lock files that crashed writers left for this network",
            )
        )
        return (0, 0)

    async def probe_netns(self, effect: ProbeNetns) -> str:
        """Say the namespace would be probed; ``unknown``."""
        self.steps.append(
            Step(kind=kind_of(effect), text=f"check whether the namespace {effect.path or '(none)'} is alive")
        )
        return "unknown"

    async def probe_links(self, effect: ProbeLinks) -> tuple[str, ...] | None:
        """Say the namespace would be looked into; None (cannot tell)."""
        self.steps.append(
            Step(
                kind=kind_of(effect),
                text=f"check whether {', '.join(effect.names)} is still in the namespace {effect.path}",
            )
        )
        return None

    async def notice(self, effect: Notice) -> None:
        """Keep the note as a step."""
        self.steps.append(Step(kind=kind_of(effect), text=f"note: {effect.text}"))

    def run(self, steps: Plan[T]) -> T:
        """Drive a plan to its end (see :meth:`~libcni_py.drivers.base.Stepper.drive`)."""
        return complete(self.drive(steps))

    def _exec(self, req: invoke.ExecRequest, version: str) -> invoke.ExecOutcome:
        plugin = self.netlist.plugins[req.index] if 0 <= req.index < len(self.netlist.plugins) else None
        passed: dict[str, Any] = {}
        dropped = sorted(self.capability_args)
        if plugin is not None and req.command in ("ADD", "CHECK", "DEL"):
            passed, dropped = request.capability_split(plugin, self.capability_args)
        prev = ""
        if b'"prevResult"' in req.stdin:
            if req.command == "ADD":
                previous = self.netlist.plugins[self._last_exec_index] if self._last_exec_index >= 0 else None
                prev = (
                    f"the result of plugins[{self._last_exec_index}] ({previous.type}) ADD"
                    if previous is not None
                    else "the previous plugin's result"
                )
            else:
                prev = self._prev_source or "the cached ADD result"
        missing = req.path[len(MISSING) + 1 :] if req.path.startswith(MISSING) else ""
        where = f"plugins[{req.index}]" if req.index >= 0 else "probe"
        self.steps.append(
            Step(
                kind="exec",
                text=f"run {req.plugin_type} {req.command} ({where})",
                request=req,
                prev_result=prev,
                passed=passed,
                dropped=tuple(dropped),
                missing=missing,
            )
        )
        self._last_exec_index = req.index
        stdout = gojson.dumps_bytes({"cniVersion": version}) if req.command == "ADD" else b""
        return invoke.ExecOutcome(returncode=0, stdout=stdout)


def explain(
    netlist: NetworkConfigList,
    command: str,
    rt: RuntimeConf,
    opts: Options,
    store: CacheStore,
    *,
    valid_attachments: Sequence[tuple[str, str]] = (),
) -> list[Step]:
    """What ``command`` on ``netlist`` would do, step by step, without doing it.

    Args:
        netlist: the network.
        command: ADD, CHECK, DEL, GC or STATUS.
        rt: the attachment (ignored for GC and STATUS).
        opts: plugin path, environment and trace context, as for a real run.
        store: the cache dir (its paths are shown; nothing is read or written).
        valid_attachments: for GC, the attachments still in use.

    Returns:
        The steps, in order.

    Raises:
        ValueError: an unknown command.
        CNIError: what the real run would raise before running anything
            (an invalid name, CHECK below spec 0.4.0, ...).
    """
    driver = DryRunDriver(store, netlist, dict(rt.capability_args), command)
    if command == "ADD":
        driver.run(ops.add(netlist, rt, opts))
    elif command == "CHECK":
        driver.run(ops.check(netlist, rt, opts))
    elif command == "DEL":
        driver.run(ops.delete(netlist, rt, opts))
    elif command == "GC":
        driver.run(ops.gc(netlist, valid_attachments, opts))
    elif command == "STATUS":
        driver.run(ops.status(netlist, opts))
    else:
        raise ValueError(f"cannot explain {command!r}: one of {', '.join(COMMANDS)}")
    return driver.steps
