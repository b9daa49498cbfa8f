"""The library's entry points: one set of operations, two forms.

* :class:`CNI` -- blocking, for callers without an event loop (and the CLI);
* :class:`AsyncCNI` -- the same methods as ``async`` functions, for trio.

Both run the same plans (:mod:`libcni_py.core.operations`); only the driver differs.
Importing this module imports neither trio nor pyroute2; :class:`AsyncCNI`
imports trio when first used.

Example::

    from libcni_py import CNI, RuntimeConf, load_network

    net = load_network("/etc/cni/net.d", "mynet")
    cni = CNI(plugin_path=["/usr/lib/cni"])
    rt = RuntimeConf(container_id="abc123", netns="/var/run/netns/blue", ifname="eth0")
    result = cni.add(net, rt)
    cni.check(net, rt)
    cni.delete(net, rt)
"""

from __future__ import annotations

import os

from .core import operations as ops
from .core import record as cache
from .core import result
from .core.defaults import DEFAULT_PLUGIN_PATH, DEFAULT_TIMEOUT, MAX_TIMEOUT
from .core.inputs import Options
from .drivers.base import stderr_to_terminal
from .drivers.blocking import SyncDriver
from .edges.recordstore import DEFAULT_CACHE_DIR, CacheStore
from .errors import CacheError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
    from typing import Any, TypeVar

    from .core.effects import Plan
    from .core.inputs import DeleteWith, RuntimeConf
    from .core.netconf import NetworkConfigList
    from .core.plugin_call import ExecRequest
    from .core.plugin_input import TraceContext
    from .core.record import CacheRecord
    from .core.reports import GCReport
    from .core.result import AnyResult
    from .core.version import PluginInfo
    from .drivers.base import Tracer

    T = TypeVar("T")

__all__ = ["DEFAULT_PLUGIN_PATH", "DEFAULT_TIMEOUT", "MAX_TIMEOUT", "AsyncCNI", "CNI", "check_timeout"]


def check_timeout(timeout: float | None) -> float | None:
    """``timeout`` if it is a usable per-call deadline: None (no limit) or a
    number of seconds above 0 and at most :data:`MAX_TIMEOUT`.

    Checked when a :class:`CNI` is made, so that a bad value fails before any
    plugin runs (``inf`` or a huge number used to fail after the first plugin
    had started, leaving its record ``adding``).

    Raises:
        ValueError: anything else (``inf``, ``nan``, 0 or less, a bool, a string).
    """
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= MAX_TIMEOUT:
        raise ValueError(f"timeout: {timeout!r} is not None or a number of seconds above 0 and at most {MAX_TIMEOUT:g}")
    return float(timeout)


class _Base:
    """Settings shared by :class:`CNI` and :class:`AsyncCNI`.

    Args:
        plugin_path: directories searched for plugin binaries, in order.
        cache_dir: the result cache (Go's ``CacheDir``).
        timeout: seconds a single plugin call may take, and the longest wait
            for a lock another operation holds (then
            :class:`~libcni_py.errors.LockTimeoutError` names the holder);
            None: unlimited; at most :data:`MAX_TIMEOUT`, else ``ValueError``.
        env: the environment plugins inherit (default: this process's, as
            Go libcni passes it).
        trace_context: a W3C trace context passed as TRACEPARENT/TRACESTATE.
        on_notice: receives notes worth a person's attention (a damaged cache
            file that DEL worked around, say).  Default: ignored.
        tracer: observes every step (see :mod:`libcni_py.tools.trace.tracer`).
        on_stderr: receives a successful plugin's stderr; the default copies
            it to this process's stderr as Go does; None drops it.
        durable: fsync cache records (and their directory) when written.
        delete_with: ``"recorded"`` (default): DEL runs the configuration the
            attachment was added with when it differs from the one given;
            ``"current"``: the one given, as Go libcni does.
    """

    def __init__(
        self,
        *,
        plugin_path: Iterable[str] = DEFAULT_PLUGIN_PATH,
        cache_dir: str = DEFAULT_CACHE_DIR,
        timeout: float | None = DEFAULT_TIMEOUT,
        env: Mapping[str, str] | None = None,
        trace_context: TraceContext | None = None,
        on_notice: Callable[[str], None] | None = None,
        tracer: Tracer | None = None,
        on_stderr: Callable[[ExecRequest, bytes], None] | None = stderr_to_terminal,
        durable: bool = True,
        delete_with: DeleteWith = "recorded",
    ) -> None:
        self.plugin_path = tuple(plugin_path)
        self.delete_with = delete_with
        self.store = CacheStore(cache_dir, durable=durable)
        self.timeout = check_timeout(timeout)
        self.env = dict(os.environ if env is None else env)
        self.trace_context = trace_context
        self.on_notice = on_notice
        self.tracer = tracer
        self.on_stderr = on_stderr

    @property
    def cache_dir(self) -> str:
        """The cache directory."""
        return self.store.cache_dir

    def options(self) -> Options:
        """The :class:`~libcni_py.core.inputs.Options` plans run with."""
        return Options(
            plugin_path=self.plugin_path, base_env=self.env, trace=self.trace_context, delete_with=self.delete_with
        )

    def _driver_kwargs(self) -> dict[str, Any]:
        return {
            "timeout": self.timeout,
            "on_notice": self.on_notice,
            "tracer": self.tracer,
            "on_stderr": self.on_stderr,
        }

    # -- cache reads (no plugin runs; the same in both forms) ----------------

    def cached_record(self, netlist: NetworkConfigList | str, rt: RuntimeConf) -> CacheRecord | None:
        """The attachment's cache record, or None (Go's ``GetNetworkListCachedConfig``).

        Args:
            netlist: the network, or just its name.

        Raises:
            InvalidNameError: a name that is not valid.
            CacheError: the record exists but is damaged, or is another
                attachment's (see :func:`libcni_py.core.record.owner`).
        """
        name = netlist if isinstance(netlist, str) else netlist.name
        key = cache.AttachmentKey(network=name, container_id=rt.container_id, ifname=rt.ifname)
        data = self.store.read(key)
        if data is None:
            return None
        record = cache.decode_record(data, self.store.path_for(key))
        other = cache.owner(record, key)
        if other:
            raise CacheError(self.store.path_for(key), f"holds the record of {other}, not of this attachment")
        return record

    def cached_result(self, netlist: NetworkConfigList, rt: RuntimeConf) -> AnyResult | None:
        """The attachment's cached result in the list's version, or None
        (Go's ``GetNetworkListCachedResult``)."""
        record = self.cached_record(netlist, rt)
        if record is None or record.result is None:
            return None
        parsed = result.parse(record.result, result.declared_version(record.result))
        return result.convert(parsed, netlist.cni_version)

    def cached_attachments(self, container_id: str = "") -> list[CacheRecord]:
        """Every usable cached attachment, optionally of one container (Go's
        ``GetCachedAttachments``: sorted by file, unusable files skipped)."""
        records, _ = cache.cached_attachments(self.store.iter_files(container_id), container_id)
        return records


class CNI(_Base):
    """Blocking CNI operations (Go's ``CNIConfig``).  See :class:`_Base` for the
    settings.  Each call runs to completion in the calling thread; Ctrl-C
    (``KeyboardInterrupt``) while a plugin runs gives it a few seconds to
    finish (:data:`~libcni_py.drivers.blocking.INTERRUPT_GRACE`; a second Ctrl-C
    ends that), then kills it and every process it started, before the
    interrupt goes on; the record then says how far the operation got.
    Plugins' descendants that daemonized are only found if this process is
    a child subreaper (:func:`libcni_py.edges.spawn.become_subreaper`, off by
    default as it is process-wide; docs/reliability.md section 7).
    """

    def _run(self, steps: Plan[T]) -> T:
        return SyncDriver(self.store, **self._driver_kwargs()).run(steps)

    def add(self, netlist: NetworkConfigList, rt: RuntimeConf) -> AnyResult:
        """ADD the attachment: run the list's plugins in order; cache and
        return the final result.

        Raises:
            InvalidNameError, PluginNotFoundError: before any plugin runs.
            ArgsError: the attachment is on record already (DEL it first), or
                its cache file name is another attachment's; nothing runs.
            PluginError: the plugin that failed; the attachment's record is
                kept (marked failed) so that DEL or GC can undo what was made.
        """
        return self._run(ops.add(netlist, rt, self.options()))

    def check(self, netlist: NetworkConfigList, rt: RuntimeConf) -> None:
        """CHECK the attachment against its cached result (spec >= 0.4.0)."""
        self._run(ops.check(netlist, rt, self.options()))

    def delete(self, netlist: NetworkConfigList | str, rt: RuntimeConf) -> None:
        """DEL the attachment: plugins in reverse order, then the record.

        The plugins run with the configuration the attachment was added with
        when its cache record holds one that differs from ``netlist`` (the
        conf file changed since); ``netlist`` may be just the network's name
        when its file is gone.  Notices say when either happens.  A namespace
        that is gone or stale is not passed to the plugins (``CNI_NETNS``
        empty).  A plugin that is missing or fails does not stop the others;
        the record then stays, marked with the plugins still to delete, and
        the next DEL or GC runs only those.

        Raises:
            InvalidNameError: before anything runs.
            PluginNotFoundError: a plugin of the configuration used is
                missing (the others ran).
            PluginError: the plugin that failed (the others ran).
            MultiError: several of these.
            CNIError: only a name was given and no configuration is cached.
        """
        self._run(ops.delete(netlist, rt, self.options()))

    def gc(
        self,
        netlist: NetworkConfigList | str,
        valid_attachments: Sequence[tuple[str, str]],
        *,
        force: bool = False,
        live_sandboxes: Collection[str] | None = None,
    ) -> GCReport:
        """GC: delete every cached attachment of the network that is not in
        ``valid_attachments`` (``(container_id, ifname)`` pairs) and is proven
        dead, then send plugins GC (spec >= 1.1.0) with the attachments kept.

        Proven dead: its namespace is gone or no longer a namespace, or it
        looks like a CRI sandbox and ``live_sandboxes`` (the sandboxes a CRI
        runtime lists, see :func:`libcni_py.runtime.cri.live_sandboxes`) is
        given and lacks it.  Attachments whose namespace is alive or cannot
        be told are kept (``report.kept_reasons`` says why): the cache dir
        is shared with other runtimes.  ``force=True`` is Go's GC: everything
        not valid (nor listed in ``live_sandboxes``) is deleted.

        Stale attachments are deleted as :meth:`delete` deletes them (with the
        configuration they were added with); damaged cache files of the
        network are handled by their file names, and files that interrupted
        operations left behind are removed.  ``netlist`` may be just the
        network's name when its file is gone (plugins are then not sent GC).

        Raises:
            MultiError: some deletions or plugin GCs failed; ``.report`` says
                what was done.
        """
        steps = ops.gc(netlist, valid_attachments, self.options(), force=force, live_sandboxes=live_sandboxes)
        return self._run(steps)

    def status(self, netlist: NetworkConfigList) -> None:
        """STATUS (spec >= 1.1.0); raises the first plugin's error."""
        self._run(ops.status(netlist, self.options()))

    def validate(self, netlist: NetworkConfigList) -> tuple[str, ...]:
        """Check every plugin exists and supports the version; returns the
        union of capabilities."""
        return self._run(ops.validate(netlist, self.options()))

    def version_info(self, plugin_type: str) -> PluginInfo:
        """Ask a plugin which spec versions it supports (VERSION)."""
        return self._run(ops.version_info(plugin_type, self.options()))


class AsyncCNI(_Base):
    """The same operations as :class:`CNI`, for trio.

    Calls started from different tasks run concurrently; the plugins of one
    call run in order.  Cancel a call with trio's cancel scopes (for example
    ``with trio.fail_after(10): await cni.add(...)``): the running plugin's
    process group is killed and reaped before the cancellation propagates.
    """

    async def _run(self, steps: Plan[T]) -> T:
        from .drivers.async_trio import TrioDriver

        return await TrioDriver(self.store, **self._driver_kwargs()).run(steps)

    async def add(self, netlist: NetworkConfigList, rt: RuntimeConf) -> AnyResult:
        """See :meth:`CNI.add`."""
        return await self._run(ops.add(netlist, rt, self.options()))

    async def check(self, netlist: NetworkConfigList, rt: RuntimeConf) -> None:
        """See :meth:`CNI.check`."""
        await self._run(ops.check(netlist, rt, self.options()))

    async def delete(self, netlist: NetworkConfigList | str, rt: RuntimeConf) -> None:
        """See :meth:`CNI.delete`."""
        await self._run(ops.delete(netlist, rt, self.options()))

    async def gc(
        self,
        netlist: NetworkConfigList | str,
        valid_attachments: Sequence[tuple[str, str]],
        *,
        force: bool = False,
        live_sandboxes: Collection[str] | None = None,
    ) -> GCReport:
        """See :meth:`CNI.gc`."""
        steps = ops.gc(netlist, valid_attachments, self.options(), force=force, live_sandboxes=live_sandboxes)
        return await self._run(steps)

    async def status(self, netlist: NetworkConfigList) -> None:
        """See :meth:`CNI.status`."""
        await self._run(ops.status(netlist, self.options()))

    async def validate(self, netlist: NetworkConfigList) -> tuple[str, ...]:
        """See :meth:`CNI.validate`."""
        return await self._run(ops.validate(netlist, self.options()))

    async def version_info(self, plugin_type: str) -> PluginInfo:
        """See :meth:`CNI.version_info`."""
        return await self._run(ops.version_info(plugin_type, self.options()))
