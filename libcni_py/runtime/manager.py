"""The pod network manager: what a container runtime embeds (go-cni, ocicni).

Two forms with the same methods, running the same plans:

* :class:`PodNetworks` -- blocking; a pod's networks are set up one after
  another (the one-shot CLI uses it and does not pay for importing trio);
* :class:`AsyncPodNetworks` -- for trio; a pod's networks are set up one
  after another by default, as the spec requires ("The container runtime
  must not invoke parallel operations for the same container [...]. This
  includes across multiple attachments."); ``concurrent=True`` attaches them concurrently, as
  go-cni does.  Many pods can be handled at once from different tasks.

Example::

    from libcni_py.runtime import PodNetworks, PodSpec, PortMapping

    pods = PodNetworks(conf_dir="/etc/cni/net.d", plugin_path=["/usr/lib/cni"])
    print(pods.status())                      # NetworkStatus(ready=True, ...)
    sandbox, res = pods.run_pod(PodSpec(namespace="default", name="web",
                                        port_mappings=[PortMapping(host_port=8080, container_port=80)]))
    print(res.address("eth0"))                # 10.22.0.5
    pods.stop_pod(sandbox.container_id)

:meth:`~PodNetworks.run_pod` / :meth:`~PodNetworks.stop_pod` handle the whole
sandbox (record, namespace, networks); :meth:`~PodNetworks.setup` /
:meth:`~PodNetworks.teardown` / :meth:`~PodNetworks.check` work on the
networks of a sandbox the caller manages, like go-cni's ``Setup``,
``Remove`` and ``Check``.  A setup that fails (or is cancelled, or
interrupted) is rolled back before the error propagates.
"""

from __future__ import annotations

import os
import time

from .. import netns as netns_mod
from ..api import CNI, DEFAULT_PLUGIN_PATH, DEFAULT_TIMEOUT, AsyncCNI
from ..core.effects import Notice
from ..drivers.base import stderr_to_terminal
from ..edges.recordstore import DEFAULT_CACHE_DIR
from ..errors import CNIError
from . import gc as gc_plans
from . import pod, readiness
from .confdir import DEFAULT_CONF_DIR, DEFAULT_MAX_NETWORKS, ConfDir
from .effects import ListAttachments, ListPods, ReadConfDir, SyncPodDriver
from .sandbox import PodSandbox, netns_name_for, new_container_id, pod_alive, process_start_time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterable, Mapping
    from typing import Any, TypeVar

    from ..core.effects import Plan
    from ..core.netconf import NetworkConfigList
    from ..core.plugin_call import ExecRequest
    from ..core.record import CacheRecord, NetworkIfname
    from ..drivers.base import Tracer
    from .confdir import ConfDirState
    from .gc import PodGCReport
    from .k8s import PodSpec
    from .pod import PodResult, PodTeardown
    from .readiness import NetworkStatus, ProbeCache

    T = TypeVar("T")

__all__ = ["ROLLBACK_TIMEOUT", "AsyncPodNetworks", "PodNetworks"]

#: Seconds a rollback after a cancelled setup may take (it runs shielded).
ROLLBACK_TIMEOUT = 60.0


def network_from_memory(value: NetworkConfigList | bytes | str, index: int) -> NetworkConfigList:
    """A network given as a value: as is, or parsed from the bytes of a
    conflist or of a single plugin's conf (go-cni's ``WithConfListBytes`` /
    ``WithConf``), named ``in_memory[<index>]`` in errors.

    Raises:
        ConfigError: not a valid configuration.
    """
    from ..core import netconf

    if isinstance(value, netconf.NetworkConfigList):
        return value
    data = value.encode() if isinstance(value, str) else value
    source = f"in_memory[{index}]"
    import json

    try:
        doc = json.loads(data)
    except ValueError:
        doc = None
    if isinstance(doc, dict) and "plugins" not in doc and "type" in doc:
        return netconf.conflist_from_plugin(netconf.parse_single(data, source))
    return netconf.parse_conflist(data, source)


class _Base:
    """Settings shared by both forms.

    Args:
        conf_dir: the network configuration directory.
        plugin_path: directories searched for plugins.
        cache_dir: the result cache (also holds pod records and locks).
        max_networks: how many conf files every pod gets when it names no
            network (containerd's ``max_conf_num``; 0: all).
        loopback: give every pod the loopback network first; a string names
            the plugin binary to use instead of ``loopback``.
        interface_prefix: pod interfaces are ``<prefix>0``, ``<prefix>1``, ...
        in_memory: network configurations given as values, ahead of the conf
            dir's (go-cni's ``WithConfListBytes`` and ``WithConf``): a
            :class:`~libcni_py.NetworkConfigList`, or the bytes (str) of a
            conflist or of a single plugin's conf; with no conf dir at all
            (``conf_dir=""``) they are the only networks.
        default_network: the default network's name (ocicni's
            ``DefaultNetName``): not ready until it is there; "" for the
            first valid one.
        min_networks: not ready with fewer valid networks (go-cni's
            ``WithMinNetworkCount``, which counts the loopback network too:
            containerd's 2 is 1 here).
        concurrent: attach a pod's networks concurrently (trio form only;
            default False: one after another, as the spec requires of
            operations on one container).
        timeout, env, on_notice, tracer, on_stderr, durable: as for
            :class:`libcni_py.CNI`.
    """

    _cni_class: type[CNI] | type[AsyncCNI]

    def __init__(
        self,
        *,
        conf_dir: str = DEFAULT_CONF_DIR,
        plugin_path: Iterable[str] = DEFAULT_PLUGIN_PATH,
        cache_dir: str = DEFAULT_CACHE_DIR,
        max_networks: int = DEFAULT_MAX_NETWORKS,
        loopback: bool | str = True,
        interface_prefix: str = pod.DEFAULT_INTERFACE_PREFIX,
        concurrent: bool = False,
        in_memory: Iterable[NetworkConfigList | bytes | str] = (),
        default_network: str = "",
        min_networks: int = 0,
        timeout: float | None = DEFAULT_TIMEOUT,
        env: Mapping[str, str] | None = None,
        on_notice: Callable[[str], None] | None = None,
        tracer: Tracer | None = None,
        on_stderr: Callable[[ExecRequest, bytes], None] | None = stderr_to_terminal,
        durable: bool = True,
    ) -> None:
        self.confdir = ConfDir(
            conf_dir,
            max_networks=max_networks,
            in_memory=[network_from_memory(net, index) for index, net in enumerate(in_memory)],
            default_network=default_network,
            min_networks=min_networks,
        )
        self.cni = self._cni_class(
            plugin_path=plugin_path,
            cache_dir=cache_dir,
            timeout=timeout,
            env=env,
            on_notice=on_notice,
            tracer=tracer,
            on_stderr=on_stderr,
            durable=durable,
        )
        self.loopback: NetworkConfigList | None = None
        if loopback:
            self.loopback = pod.loopback_network(loopback if isinstance(loopback, str) else "loopback")
        self.interface_prefix = interface_prefix
        self.concurrent = concurrent
        self.on_notice = on_notice
        self.probes: ProbeCache = {}

    @property
    def conf_dir(self) -> str:
        """The conf dir."""
        return self.confdir.conf_dir

    @property
    def cache_dir(self) -> str:
        """The cache dir."""
        return self.cni.cache_dir

    def networks(self) -> ConfDirState:
        """The conf dir's networks now (re-read if it changed).

        Raises:
            ConfigError: the conf dir exists but cannot be listed.
        """
        return self.confdir.current()

    def _notice(self, text: str) -> None:
        if self.on_notice is not None:
            self.on_notice(text)

    def new_sandbox(
        self,
        spec: PodSpec,
        *,
        netns: str | None = None,
        container_id: str | None = None,
        owner_pid: int = 0,
    ) -> PodSandbox:
        """A new sandbox for ``spec`` (nothing is created yet).

        Args:
            netns: the pod's namespace path; None: the runtime layer creates
                ``/var/run/netns/lcpy-<id>`` (see
                :func:`~libcni_py.runtime.sandbox.netns_name_for`) and deletes
                it with the pod.
            container_id: the sandbox ID (default: 64 random hex digits).
            owner_pid: the process that keeps the pod alive (0: none; the pod
                then lives until stopped, or until its namespace is gone).

        Raises:
            InvalidNameError: ``container_id`` is not valid.
            CNIError: ``owner_pid`` is not a running process.
        """
        from ..core import names

        cid = container_id or new_container_id()
        names.check_container_id(cid)
        start = 0
        if owner_pid:
            found = process_start_time(owner_pid)
            if found is None:
                raise CNIError(f"owner process {owner_pid} does not exist")
            start = found
        return PodSandbox(
            container_id=cid,
            netns=netns or netns_mod.path_for(netns_name_for(cid)),
            netns_owned=netns is None,
            namespace=spec.namespace,
            name=spec.name,
            uid=spec.uid,
            owner_pid=owner_pid,
            owner_start=start,
            created=time.time(),
        )

    def attachments_for(
        self, sandbox: PodSandbox, spec: PodSpec, state: ConfDirState | None = None
    ) -> tuple[pod.Attachment, ...]:
        """The attachments ``spec`` asks for (see :func:`libcni_py.runtime.pod.pod_attachments`)."""
        return pod.pod_attachments(
            state if state is not None else self.networks(),
            spec,
            container_id=sandbox.container_id,
            netns=sandbox.netns,
            loopback=self.loopback,
            prefix=self.interface_prefix,
        )

    @staticmethod
    def is_alive(sandbox: PodSandbox) -> bool:
        """Whether a recorded pod is alive: its owner process runs, or (for a
        pod without owner) its namespace still exists."""
        return pod_alive(sandbox)

    def _calls(self) -> _Calls:
        return _Calls(self)


class _Call:
    """One manager call, for both forms: ``prepare`` (a plan: the conf dir
    read, say; nothing is rolled back if it fails), then ``main(prepared)``
    (the plan that does the work; making it may refuse, before anything
    runs), and ``undo()``, the plan that rolls ``main`` back when it fails,
    is cancelled or interrupted."""

    __slots__ = ("prepare", "main", "undo")

    def __init__(
        self,
        main: Callable[[Any], Plan[Any]],
        *,
        prepare: Plan[Any] | None = None,
        undo: Callable[[], Plan[Any]] | None = None,
    ) -> None:
        self.prepare = prepare
        self.main = main
        self.undo = undo


class _Calls:
    """Every call of a manager as plans, with its settings filled in: the one
    place both forms take them from, so that they cannot drift (the forms
    differ only in how they run a :class:`_Call`)."""

    def __init__(self, manager: _Base) -> None:
        self.m = manager
        self.opts = manager.cni.options()

    def _state(self, *, required: bool) -> Plan[ConfDirState | None]:
        state = yield from ReadConfDir(confdir=self.m.confdir, required=required)
        return state

    def status(self) -> _Call:
        m, opts = self.m, self.opts

        def main(state: ConfDirState) -> Plan[NetworkStatus]:
            return readiness.status(state, m.loopback, opts, m.probes, concurrent=m.concurrent)

        return _Call(main, prepare=self._state(required=True))

    def setup(self, sandbox: PodSandbox, spec: PodSpec) -> _Call:
        m, opts = self.m, self.opts
        started: list[NetworkIfname] = []  # what the rollback may delete: only what this setup started

        def main(state: ConfDirState) -> Plan[PodResult]:
            attachments = m.attachments_for(sandbox, spec, state)
            return pod.setup(sandbox, attachments, opts, concurrent=m.concurrent, started=started)

        def undo() -> Plan[tuple[tuple[str, str], ...]]:
            return self._teardown(sandbox.container_id, sandbox.netns, only=started)

        return _Call(main, prepare=self._state(required=True), undo=undo)

    def run_pod(self, sandbox: PodSandbox, spec: PodSpec) -> _Call:
        m, opts = self.m, self.opts
        started: list[NetworkIfname] = []

        def main(state: ConfDirState) -> Plan[PodResult]:
            attachments = m.attachments_for(sandbox, spec, state)
            return pod.run_pod(_in_setup(sandbox), attachments, opts, concurrent=m.concurrent, started=started)

        def undo() -> Plan[PodTeardown]:
            return self._stop_pod(sandbox.container_id, only_if=sandbox, only=started)

        return _Call(main, prepare=self._state(required=True), undo=undo)

    def teardown(self, container_id: str) -> _Call:
        return _Call(lambda _: self._teardown(container_id, ""))

    def _teardown(
        self, container_id: str, netns_hint: str, only: Collection[NetworkIfname] | None = None
    ) -> Plan[tuple[tuple[str, str], ...]]:
        m = self.m
        state = yield from self._state(required=False)
        removed = yield from pod.teardown(
            container_id, state, m.loopback, self.opts, concurrent=m.concurrent, netns_hint=netns_hint, only=only
        )
        return removed

    def stop_pod(self, container_id: str) -> _Call:
        return _Call(lambda _: self._stop_pod(container_id))

    def _stop_pod(
        self,
        container_id: str,
        only_if: PodSandbox | None = None,
        only: Collection[NetworkIfname] | None = None,
    ) -> Plan[PodTeardown]:
        m = self.m
        state = yield from self._state(required=False)
        report = yield from pod.stop_pod(
            container_id, state, m.loopback, self.opts, concurrent=m.concurrent, only_if=only_if, only=only
        )
        return report

    def check(self, container_id: str) -> _Call:
        m, opts = self.m, self.opts

        def main(state: ConfDirState | None) -> Plan[tuple[tuple[str, str], ...]]:
            return pod.check(container_id, state, m.loopback, opts, concurrent=m.concurrent)

        return _Call(main, prepare=self._state(required=False))

    def gc(self, live: Iterable[str], judge_records: bool, **kw: Any) -> _Call:
        m, opts = self.m, self.opts

        def main(state: ConfDirState | None) -> Plan[PodGCReport]:
            return gc_plans.gc(
                live, state, m.loopback, opts, concurrent=m.concurrent, judge_records=judge_records, **kw
            )

        return _Call(main, prepare=self._state(required=False))

    def sandboxes(self) -> _Call:
        def main(_: None) -> Plan[list[PodSandbox]]:
            found, damaged = yield from ListPods()
            for name, problem in damaged:
                yield from Notice(text=f"pod record {name}: {problem}")
            return list(found)

        return _Call(main)

    def attachments(self, container_id: str) -> _Call:
        def main(_: None) -> Plan[list[CacheRecord]]:
            records, _damaged = yield from ListAttachments(container_id=container_id)
            return list(records)

        return _Call(main)


class PodNetworks(_Base):
    """The blocking pod network manager (see :class:`_Base` for the settings).

    Networks of a pod are set up one after another, whatever ``concurrent``
    says; Ctrl-C during a setup rolls it back before ``KeyboardInterrupt``
    propagates.
    """

    _cni_class = CNI

    def _run(self, steps: Plan[T]) -> T:
        return SyncPodDriver(self.cni.store, **self.cni._driver_kwargs()).run(steps)

    def _call(self, call: _Call) -> Any:
        prepared = self._run(call.prepare) if call.prepare is not None else None
        steps = call.main(prepared)  # may refuse (a network not found): nothing to roll back yet
        try:
            return self._run(steps)
        except BaseException:
            if call.undo is not None:
                try:
                    self._run(call.undo())
                except CNIError as exc:
                    self._notice(f"rolling back: {exc.one_line()}")
            raise

    def status(self) -> NetworkStatus:
        """Is the pod network ready?  See :mod:`libcni_py.runtime.readiness`.

        Raises:
            ConfigError: the conf dir exists but cannot be listed.
        """
        status: NetworkStatus = self._call(self._calls().status())
        return status

    def setup(self, sandbox: PodSandbox, spec: PodSpec) -> PodResult:
        """Set up the pod's networks in its (existing) namespace.

        Returns:
            One :class:`~libcni_py.runtime.pod.PodInterface` per interface.

        Raises:
            NetworkNotReadyError, NetworkNotFoundError, ArgsError: before
                anything runs.
            CNIError: a network failed (MultiError: several); every
                attachment was deleted again first.
        """
        result: PodResult = self._call(self._calls().setup(sandbox, spec))
        return result

    def teardown(self, container_id: str) -> tuple[tuple[str, str], ...]:
        """Delete every cached attachment of the pod (go-cni's ``Remove``).

        Returns:
            ``(network, ifname)`` of each attachment deleted.

        Raises:
            CNIError: some DEL failed (MultiError: several); run it again.
        """
        removed: tuple[tuple[str, str], ...] = self._call(self._calls().teardown(container_id))
        return removed

    def check(self, container_id: str) -> tuple[tuple[str, str], ...]:
        """CHECK every cached attachment of the pod.

        Returns:
            ``(network, ifname)`` of each attachment checked.
        """
        checked: tuple[tuple[str, str], ...] = self._call(self._calls().check(container_id))
        return checked

    def run_pod(
        self, spec: PodSpec, *, netns: str | None = None, container_id: str | None = None, owner_pid: int = 0
    ) -> tuple[PodSandbox, PodResult]:
        """Start a pod's networking: record it, create its namespace (unless
        ``netns`` is given) and set up its networks.  See :meth:`new_sandbox`
        for the arguments.

        Raises:
            NetnsError: the namespace cannot be created.
            CNIError: as :meth:`setup`; everything made is removed again.
        """
        sandbox = self.new_sandbox(spec, netns=netns, container_id=container_id, owner_pid=owner_pid)
        result: PodResult = self._call(self._calls().run_pod(sandbox, spec))
        return sandbox, result

    def stop_pod(self, container_id: str) -> PodTeardown:
        """Tear down the pod's networks, then delete its namespace (if the
        runtime layer made it) and its record.  A pod already gone is fine."""
        report: PodTeardown = self._call(self._calls().stop_pod(container_id))
        return report

    def gc(
        self,
        live: Iterable[str] = (),
        *,
        judge_records: bool = True,
        include_foreign: bool = False,
        live_sandboxes: Collection[str] | None = None,
    ) -> PodGCReport:
        """Remove libcni_py's dead pods and what they left (see
        :mod:`libcni_py.runtime.gc`); other runtimes' attachments are left
        alone.  Waits until no pod operation runs, and blocks them while it
        works.

        Args:
            live: the container IDs of the pods that are alive.
            judge_records: also keep the pods recorded by :meth:`run_pod`
                whose owner runs or (without owner) whose namespace exists,
                judged while the GC holds its lock; False: ``live`` alone.
            include_foreign: also delete attachments without a pod record
                (other runtimes', cnitool's), but only those proven dead.
            live_sandboxes: the sandboxes a CRI runtime lists
                (:func:`libcni_py.runtime.cri.live_sandboxes`): kept; CRI
                sandboxes it does not list are dead.

        Raises:
            MultiError: some removals failed; ``.report`` says what was done.
        """
        call = self._calls().gc(live, judge_records, include_foreign=include_foreign, live_sandboxes=live_sandboxes)
        report: PodGCReport = self._call(call)
        return report

    def sandboxes(self) -> list[PodSandbox]:
        """Every recorded pod (damaged records are skipped, with a notice)."""
        found: list[PodSandbox] = self._call(self._calls().sandboxes())
        return found

    def live_pods(self) -> set[str]:
        """The container IDs of the recorded pods that are alive (:meth:`is_alive`)."""
        return {s.container_id for s in self.sandboxes() if self.is_alive(s)}

    def attachments(self, container_id: str = "") -> list[CacheRecord]:
        """The cached attachments, of one pod or of all."""
        records: list[CacheRecord] = self._call(self._calls().attachments(container_id))
        return records


def _in_setup(sandbox: PodSandbox) -> PodSandbox:
    """``sandbox`` as recorded while this process sets it up: if the process
    dies before setup finishes, GC knows the pod for a half-made one."""
    pid = os.getpid()
    return sandbox.replace(setup_pid=pid, setup_start=process_start_time(pid) or 0)


class AsyncPodNetworks(_Base):
    """The pod network manager for trio: the same methods as
    :class:`PodNetworks`, as coroutines, running the same calls (:class:`_Calls`).

    A pod's networks are attached one after another, unless
    ``concurrent=True`` (go-cni's default; the spec forbids parallel
    operations for one container, across attachments too).
    Cancel a call with trio's scopes: the running plugins' process groups are
    killed, and a cancelled setup is rolled back (shielded, at most
    :data:`ROLLBACK_TIMEOUT` seconds) before the cancellation goes on; the
    conf dir is read in a worker thread, the rollback's too.
    """

    _cni_class = AsyncCNI

    async def _run(self, steps: Plan[T]) -> T:
        from .run_trio import TrioPodDriver

        return await TrioPodDriver(self.cni.store, **self.cni._driver_kwargs()).run(steps)

    async def _call(self, call: _Call) -> Any:
        import trio

        prepared = await self._run(call.prepare) if call.prepare is not None else None
        steps = call.main(prepared)  # may refuse (a network not found): nothing to roll back yet
        try:
            return await self._run(steps)
        except BaseException:
            if call.undo is not None:
                with trio.CancelScope(shield=True), trio.move_on_after(ROLLBACK_TIMEOUT):
                    try:
                        await self._run(call.undo())
                    except CNIError as exc:
                        self._notice(f"rolling back: {exc.one_line()}")
            raise

    async def status(self) -> NetworkStatus:
        """See :meth:`PodNetworks.status`."""
        status: NetworkStatus = await self._call(self._calls().status())
        return status

    async def setup(self, sandbox: PodSandbox, spec: PodSpec) -> PodResult:
        """See :meth:`PodNetworks.setup`."""
        result: PodResult = await self._call(self._calls().setup(sandbox, spec))
        return result

    async def teardown(self, container_id: str) -> tuple[tuple[str, str], ...]:
        """See :meth:`PodNetworks.teardown`."""
        removed: tuple[tuple[str, str], ...] = await self._call(self._calls().teardown(container_id))
        return removed

    async def check(self, container_id: str) -> tuple[tuple[str, str], ...]:
        """See :meth:`PodNetworks.check`."""
        checked: tuple[tuple[str, str], ...] = await self._call(self._calls().check(container_id))
        return checked

    async def run_pod(
        self, spec: PodSpec, *, netns: str | None = None, container_id: str | None = None, owner_pid: int = 0
    ) -> tuple[PodSandbox, PodResult]:
        """See :meth:`PodNetworks.run_pod`."""
        sandbox = self.new_sandbox(spec, netns=netns, container_id=container_id, owner_pid=owner_pid)
        result: PodResult = await self._call(self._calls().run_pod(sandbox, spec))
        return sandbox, result

    async def stop_pod(self, container_id: str) -> PodTeardown:
        """See :meth:`PodNetworks.stop_pod`."""
        report: PodTeardown = await self._call(self._calls().stop_pod(container_id))
        return report

    async def gc(
        self,
        live: Iterable[str] = (),
        *,
        judge_records: bool = True,
        include_foreign: bool = False,
        live_sandboxes: Collection[str] | None = None,
    ) -> PodGCReport:
        """See :meth:`PodNetworks.gc`."""
        call = self._calls().gc(live, judge_records, include_foreign=include_foreign, live_sandboxes=live_sandboxes)
        report: PodGCReport = await self._call(call)
        return report

    async def sandboxes(self) -> list[PodSandbox]:
        """See :meth:`PodNetworks.sandboxes`."""
        found: list[PodSandbox] = await self._call(self._calls().sandboxes())
        return found

    async def live_pods(self) -> set[str]:
        """See :meth:`PodNetworks.live_pods`."""
        return {s.container_id for s in await self.sandboxes() if self.is_alive(s)}

    async def attachments(self, container_id: str = "") -> list[CacheRecord]:
        """See :meth:`PodNetworks.attachments`."""
        records: list[CacheRecord] = await self._call(self._calls().attachments(container_id))
        return records
