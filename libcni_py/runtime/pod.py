"""A pod's networks: which attachments it gets, and setting them up, checking
and tearing them down -- as plans (see :mod:`libcni_py.runtime.effects`).

What containerd's go-cni and CRI-O's ocicni do around libcni, and what this
module does the same way:

* every pod first gets the **loopback network** (go-cni's ``cni-loopback``,
  one ``loopback`` plugin, interface ``lo``), before its real networks;
* then the default network as ``eth0`` and further networks as ``eth1``,
  ``eth2``, ... (go-cni's interface prefix ``eth`` + index), or the names the
  caller gives (an unnamed network then gets the first free ``eth<N>``, as
  ocicni does); the networks are the first ``max_networks`` valid conf files
  unless the pod names its own (:class:`~libcni_py.runtime.k8s.PodSpec`);
* networks are attached concurrently (go-cni) or one by one, and the results
  are merged into one :class:`PodInterface` per interface of the pod;
* **teardown uses the pod's cached attachments**: each cache record holds the
  configuration the attachment was added with, so DEL still works after the
  conf file changed or vanished (ocicni); the current configuration is used
  instead when it is byte-identical (it then also has plugins aggregated from
  ``<confdir>/<name>/``).  A pod with no cache records has nothing left to
  delete, so a second teardown succeeds;
* a per-pod lock, held across processes, serialises setup, teardown and
  check of one pod; every pod operation also holds the GC lock shared
  (CRI-O's ``gcLock``), so the GC never sees a pod half set up.

Where this goes further: a failed setup is rolled back by the manager (every
attachment it started is deleted, from the cache records written before each
ADD), and a damaged cache file of a pod whose network is still configured is
deleted with the current configuration instead of blocking the teardown.
"""

from __future__ import annotations

from ..core import gojson, names
from ..core import netconf as conf
from ..core import operations as ops
from ..core import record as cache
from ..core.effects import Notice, ProbeNetns
from ..core.gojson import Struct
from ..core.inputs import Options, RuntimeConf
from ..core.result import DNS, Result, convert, to_json
from ..core.value import Value
from ..errors import ArgsError, CacheError, CNIError, ConfigError, MultiError, NetworkNotFoundError
from . import k8s
from .effects import (
    Batch,
    CreateNetns,
    DeleteNetns,
    ForgetPod,
    ListAttachments,
    LoadPod,
    LockGC,
    LockPod,
    SavePod,
    UnlockPod,
)
from .readiness import conf_dir_problem
from .sandbox import netns_name_for, same_pod

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Collection, Sequence
    from typing import Any

    from ..core.effects import Plan
    from ..core.netconf import NetworkConfigList
    from ..core.record import CacheRecord, NetworkIfname
    from ..core.result import AnyResult, IPConfig, Route
    from .confdir import ConfDirState
    from .effects import Outcome
    from .sandbox import PodSandbox

__all__ = [
    "DEFAULT_INTERFACE_PREFIX",
    "LOOPBACK_IFNAME",
    "LOOPBACK_NETWORK",
    "Attachment",
    "PodInterface",
    "PodResult",
    "PodTeardown",
    "check",
    "loopback_network",
    "merge_results",
    "network_for_record",
    "pod_attachments",
    "run_pod",
    "setup",
    "stop_pod",
    "teardown",
]

#: go-cni's names for the loopback network and its interface.
LOOPBACK_NETWORK = "cni-loopback"
LOOPBACK_IFNAME = "lo"

#: go-cni's ``DefaultPrefix``: pod interfaces are eth0, eth1, ...
DEFAULT_INTERFACE_PREFIX = "eth"

#: The loopback network's version: go-cni writes 0.3.1; 1.0.0 (which Debian's
#: loopback plugin supports) also allows CHECK, and passes prevResult on DEL.
LOOPBACK_VERSION = "1.0.0"


def loopback_network(plugin_type: str = "loopback") -> NetworkConfigList:
    """The loopback network every pod gets (``plugin_type`` may name another binary)."""
    doc = Struct(cniVersion=LOOPBACK_VERSION, name=LOOPBACK_NETWORK, plugins=[Struct(type=plugin_type)])
    return conf.parse_conflist(gojson.dumps_bytes(doc), "the built-in loopback network")


class Attachment(Value):
    """One network of a pod: the network and its runtime configuration."""

    network: NetworkConfigList
    rt: RuntimeConf

    @property
    def loopback(self) -> bool:
        """True for the loopback network."""
        return self.network.name == LOOPBACK_NETWORK


class PodInterface(Value):
    """One interface of the pod and what its network's result says of it.

    Attributes:
        ifname: the interface inside the pod (``lo``, ``eth0``, ...).
        network: the network that made it.
        mac, sandbox: from the result's entry for the interface ("" if none).
        pci_id, socket_path: that entry's ``pciID`` and ``socketPath`` (spec
            1.1.0; go-cni's ``Config.PciID``/``SocketPath``), "" if none.
        ips: the addresses of the interface (those the result assigns to it,
            or to no interface).
        routes, dns: the network's routes and DNS settings.
        result: the network's whole result.
    """

    ifname: str
    network: str
    mac: str = ""
    sandbox: str = ""
    ips: tuple[IPConfig, ...] = ()
    routes: tuple[Route, ...] = ()
    dns: DNS = DNS()
    result: AnyResult
    pci_id: str = ""
    socket_path: str = ""

    def _post_init(self) -> None:
        self._set(dns=self.dns if self.dns is not None else DNS())

    @property
    def addresses(self) -> tuple[str, ...]:
        """The interface's addresses without prefix length (``10.22.0.5``)."""
        return tuple(ip.address.split("/")[0] for ip in self.ips)


class PodResult(Value):
    """The pod's networks after setup: one :class:`PodInterface` per interface,
    in setup order (``lo`` first)."""

    container_id: str
    netns: str
    interfaces: tuple[PodInterface, ...]

    def interface(self, ifname: str) -> PodInterface | None:
        """The interface called ``ifname``, or None."""
        for item in self.interfaces:
            if item.ifname == ifname:
                return item
        return None

    def address(self, ifname: str = "eth0") -> str | None:
        """The first address of ``ifname`` without prefix length, or None."""
        item = self.interface(ifname)
        return item.addresses[0] if item is not None and item.addresses else None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready summary (what ``cnitool pod up --json`` prints), its
        maps in order (interfaces in setup order)."""
        interfaces = Struct()
        for item in self.interfaces:
            entry = Struct(network=item.network)
            if item.mac:
                entry["mac"] = item.mac
            if item.pci_id:
                entry["pciID"] = item.pci_id
            if item.socket_path:
                entry["socketPath"] = item.socket_path
            entry["ips"] = [
                Struct(address=ip.address, **({"gateway": ip.gateway} if ip.gateway else {})) for ip in item.ips
            ]
            if item.routes:
                entry["routes"] = [Struct(dst=r.dst, **({"gw": r.gw} if r.gw else {})) for r in item.routes]
            entry["result"] = to_json(item.result)
            interfaces[item.ifname] = entry
        return Struct(containerId=self.container_id, netns=self.netns, interfaces=interfaces)


class PodTeardown(Value):
    """What a teardown removed.

    Attributes:
        container_id: the pod.
        removed: ``(network, ifname)`` of each attachment deleted.
        netns_removed: the namespace deleted with the pod ("" if none).
        forgotten: whether the pod's record was removed.
    """

    container_id: str
    removed: tuple[tuple[str, str], ...] = ()
    netns_removed: str = ""
    forgotten: bool = False


# --------------------------------------------------------------------------
# pure helpers


def pod_attachments(
    state: ConfDirState,
    spec: k8s.PodSpec,
    *,
    container_id: str,
    netns: str,
    loopback: NetworkConfigList | None,
    prefix: str = DEFAULT_INTERFACE_PREFIX,
) -> tuple[Attachment, ...]:
    """The attachments of a pod, in setup order: loopback, then its networks.

    Raises:
        NetworkNotReadyError: the pod names no network and the conf dir has
            no valid one.
        NetworkNotFoundError: the pod names a network the conf dir lacks.
        ArgsError, InvalidNameError: two networks on one interface, a bad
            interface name, or pod data that cannot be passed to plugins.
    """
    names.check_container_id(container_id)
    selections = spec.networks
    if not selections:
        problem = conf_dir_problem(state)
        if problem is not None:
            raise problem.error()
        selections = tuple(k8s.NetworkSelection(name=net.name) for net in state.defaults)
    found: list[Attachment] = []
    if loopback is not None:
        rt = RuntimeConf(
            container_id=container_id, netns=netns, ifname=LOOPBACK_IFNAME, args=k8s.cni_args(spec, container_id)
        )
        found.append(Attachment(network=loopback, rt=rt))
    taken = {s.ifname for s in selections if s.ifname} | ({LOOPBACK_IFNAME} if loopback is not None else set())
    counter = 0
    for selection in selections:
        network = state.network(selection.name)
        if network is None:
            missing = NetworkNotFoundError(state.conf_dir, selection.name, seen=[n.name for n in state.networks])
            if state.invalid:
                raise ConfigError(
                    missing.file, missing.path, missing.problem, hint=f"files skipped as invalid: {state.problems()}"
                )
            raise missing
        ifname = selection.ifname
        if not ifname:
            # the first free <prefix><N>: go-cni's eth0, eth1, ... when no
            # network names its interface, and no clash when some do (ocicni)
            while f"{prefix}{counter}" in taken:
                counter += 1
            ifname = f"{prefix}{counter}"
            taken.add(ifname)
        names.check_ifname(ifname, where=f"network {selection.name!r}")
        rt = k8s.runtime_conf(spec, container_id=container_id, netns=netns, ifname=ifname, selection=selection)
        found.append(Attachment(network=network, rt=rt))
    ifnames = [a.rt.ifname for a in found]
    for ifname in ifnames:
        if ifnames.count(ifname) > 1:
            both = " and ".join(repr(a.network.name) for a in found if a.rt.ifname == ifname)
            raise ArgsError(
                f"interface {ifname!r} is asked for twice (networks {both})",
                hint="give each network its own interface name (NAME:IFNAME)",
            )
    return tuple(found)


def network_for_record(
    record: CacheRecord, state: ConfDirState | None, loopback: NetworkConfigList | None
) -> NetworkConfigList:
    """The configuration to DEL/CHECK a cached attachment with: the current
    one when its bytes are those the attachment was added with, else the
    cached one (the conf file changed or vanished since).

    Raises:
        CacheError: the record has no usable configuration.
    """
    current = None
    if loopback is not None and record.network == loopback.name:
        current = loopback
    elif state is not None:
        current = state.network(record.network)
    if current is not None and (current.config_bytes == record.config or not record.config):
        return current
    where = f"cache record {record.network}-{record.container_id}-{record.ifname}"
    if not record.config:
        raise CacheError(where, "holds no network configuration, and the network is not in the conf dir")
    try:
        cached = conf.parse_conflist(record.config, f"{where} (cached configuration)", strict=False)
    except ConfigError as exc:
        raise CacheError(where, f"holds a configuration that cannot be used: {exc.one_line()}") from None
    if cached.name != record.network:
        raise CacheError(where, f"holds the configuration of network {cached.name!r}, not {record.network!r}")
    return cached


def merge_results(container_id: str, netns: str, attachments: Sequence[Attachment], values: Sequence[Any]) -> PodResult:
    """One :class:`PodInterface` per attachment, from the networks' results
    (go-cni's ``createResult``, keyed by the pod's interface)."""
    interfaces = []
    for att, value in zip(attachments, values, strict=True):
        res = value if isinstance(value, Result) else convert(value, "1.0.0")
        assert isinstance(res, Result)
        # the result's entries for the pod's interface: by name (in the sandbox
        # if any say so); a plugin that named it otherwise: its sandbox entries
        mine = [i for i, iface in enumerate(res.interfaces) if iface.name == att.rt.ifname]
        sandboxed = [i for i, iface in enumerate(res.interfaces) if iface.sandbox]
        inside = [i for i in mine if i in sandboxed] or mine or sandboxed
        iface = res.interfaces[inside[0]] if inside else None
        interfaces.append(
            PodInterface(
                ifname=att.rt.ifname,
                network=att.network.name,
                mac=iface.mac if iface else "",
                sandbox=iface.sandbox if iface else "",
                ips=tuple([ip for ip in res.ips if ip.interface is None or ip.interface in inside]),
                routes=res.routes,
                dns=res.dns,
                result=value,
                pci_id=iface.pci_id if iface else "",
                socket_path=iface.socket_path if iface else "",
            )
        )
    return PodResult(container_id=container_id, netns=netns, interfaces=tuple(interfaces))


def _raise_failures(what: str, attachments: Sequence[Attachment], outcomes: Sequence[Outcome]) -> None:
    errors = [o.error for o in outcomes if o.error is not None]
    if len(errors) == 1:
        raise errors[0]
    if errors:
        failed = ", ".join(
            f"{a.network.name} ({a.rt.ifname})" for a, o in zip(attachments, outcomes, strict=True) if o.error
        )
        raise MultiError(f"{what}: {len(errors)} networks failed: {failed}", errors)


# --------------------------------------------------------------------------
# plans


def setup(
    sandbox: PodSandbox,
    attachments: Sequence[Attachment],
    opts: Options,
    *,
    concurrent: bool,
    started: list[NetworkIfname] | None = None,
) -> Plan[PodResult]:
    """ADD the pod's attachments: loopback first, then the others
    (concurrently if asked), under the pod's lock.

    Args:
        started: receives ``(network, ifname)`` of each attachment whose ADD
            this call started, before it starts: exactly what a rollback may
            delete.  An attachment already on record is refused before any
            ADD, so a rollback never deletes what was there before (another
            runtime's, with the same sandbox ID; or an earlier setup's).

    Returns:
        :class:`PodResult`.

    Raises:
        ArgsError: one of the attachments is on record already (nothing ran).
        CNIError: the failure (one network), or MultiError (several).  What
            was added stays; the manager rolls it back.
    """
    yield from LockGC(exclusive=False)
    yield from LockPod(container_id=sandbox.container_id)
    records, damaged = yield from ListAttachments(container_id=sandbox.container_id)
    on_record = {(r.network, r.ifname) for r in records}
    for filename, _problem in damaged:
        key = cache.key_from_filename(filename, container_id=sandbox.container_id)
        if key is not None:
            on_record.add((key.network, key.ifname))
    taken = [f"{a.network.name} ({a.rt.ifname})" for a in attachments if (a.network.name, a.rt.ifname) in on_record]
    if taken:
        raise ArgsError(
            f"pod {sandbox.label}: {', '.join(taken)} {'is' if len(taken) == 1 else 'are'} on record already "
            f"for container {sandbox.container_id}; nothing was run",
            hint="tear the pod down first, or give another pod ID",
        )
    values: list[Any] = []
    ordered: list[Attachment] = []
    for group, together in (
        ([a for a in attachments if a.loopback], False),
        ([a for a in attachments if not a.loopback], concurrent),
    ):
        if not group:
            continue
        if started is not None:
            started.extend((a.network.name, a.rt.ifname) for a in group)
        outcomes = yield from Batch(plans=[ops.add(a.network, a.rt, opts) for a in group], concurrent=together)
        _raise_failures(f"pod {sandbox.label}: setup", group, outcomes)
        values.extend(o.value for o in outcomes)
        ordered.extend(group)
    return merge_results(sandbox.container_id, sandbox.netns, ordered, values)


def run_pod(
    sandbox: PodSandbox,
    attachments: Sequence[Attachment],
    opts: Options,
    *,
    concurrent: bool,
    started: list[NetworkIfname] | None = None,
) -> Plan[PodResult]:
    """Record the pod, create its namespace if it owns one, then :func:`setup`.

    The record is written first (``sandbox`` names the process setting it
    up, see :mod:`libcni_py.runtime.sandbox`), so that a crash at any later
    point leaves something GC finds; it is written again without that once
    setup has finished.  A namespace the pod is to create that exists
    already is refused before anything is touched: it is not this pod's,
    and a rollback must never delete it.

    Raises:
        CNIError: a pod with this ID exists already, its namespace exists
            already, or setup failed.
    """
    yield from LockGC(exclusive=False)
    yield from LockPod(container_id=sandbox.container_id)
    existing = yield from LoadPod(container_id=sandbox.container_id)
    if existing is not None:
        raise CNIError(
            f"pod {sandbox.container_id} already exists ({existing.label})",
            hint="stop it first, or give another ID",
        )
    if sandbox.netns_owned and (found := (yield from ProbeNetns(path=sandbox.netns))) != "gone":
        raise CNIError(
            f"pod {sandbox.container_id}: its namespace {sandbox.netns} exists already ({found}); "
            "it is not this pod's, so it is left alone",
            hint="give another pod ID, or remove that namespace if you know it is unused",
        )
    yield from SavePod(sandbox=sandbox)
    if sandbox.netns_owned:
        try:
            yield from CreateNetns(name=netns_name_for(sandbox.container_id))
        except CNIError:
            # made by someone else meanwhile: nothing of ours to undo but the record
            yield from ForgetPod(container_id=sandbox.container_id)
            yield from UnlockPod(container_id=sandbox.container_id, forget=True)
            raise
    value = yield from setup(sandbox, attachments, opts, concurrent=concurrent, started=started)
    if sandbox.setup_pid:
        yield from SavePod(sandbox=sandbox.replace(setup_pid=0, setup_start=0))
    return value


def _cached_attachments(
    container_id: str, state: ConfDirState | None, loopback: NetworkConfigList | None, netns_hint: str
) -> Plan[tuple[list[Attachment], list[CNIError]]]:
    """The pod's attachments from its cache records -> ``(attachments, errors)``."""
    records, damaged = yield from ListAttachments(container_id=container_id)
    found: list[Attachment] = []
    errors: list[CNIError] = []
    for record in records:
        try:
            network = network_for_record(record, state, loopback)
        except CacheError as exc:
            errors.append(exc)
            continue
        rt = cache.runtime_conf(record, netns=cache.record_netns(record) or netns_hint)
        found.append(Attachment(network=network, rt=rt))
    for filename, problem in damaged:
        parts = cache.key_from_filename(filename, container_id=container_id)
        known: NetworkConfigList | None = None
        if parts is not None:
            if loopback is not None and parts.network == loopback.name:
                known = loopback
            elif state is not None:
                known = state.network(parts.network)
        if parts is None or known is None:
            errors.append(
                CacheError(
                    filename,
                    f"{problem}; its network is not in the conf dir, so it cannot be deleted",
                    hint="restore the network's conf file, or remove the cache file by hand",
                )
            )
            continue
        yield from Notice(
            text=f"cache file {filename}: {problem}; deleting it with the current configuration of "
            f"network {known.name!r}"
        )
        rt = RuntimeConf(container_id=container_id, netns=netns_hint, ifname=parts.ifname)
        found.append(Attachment(network=known, rt=rt))
    return found, errors


def teardown(
    container_id: str,
    state: ConfDirState | None,
    loopback: NetworkConfigList | None,
    opts: Options,
    *,
    concurrent: bool,
    netns_hint: str = "",
    only: Collection[NetworkIfname] | None = None,
) -> Plan[tuple[tuple[str, str], ...]]:
    """DEL every cached attachment of the pod (loopback last), under its lock.

    Args:
        only: DEL just these ``(network, ifname)`` (a rollback: what its
            setup started), and leave every other record alone.

    Returns:
        ``(network, ifname)`` of the attachments deleted.

    Raises:
        CNIError: the failure, or MultiError; failed attachments keep their
            cache records, so teardown (or GC) can be run again.
    """
    yield from LockGC(exclusive=False)
    yield from LockPod(container_id=container_id)
    if only is not None and not only:
        return ()  # a rollback of a setup that started nothing
    attachments, errors = yield from _cached_attachments(container_id, state, loopback, netns_hint)
    if only is not None:
        attachments = [a for a in attachments if (a.network.name, a.rt.ifname) in only]
    removed: list[tuple[str, str]] = []
    for group, together in (
        ([a for a in attachments if not a.loopback], concurrent),
        ([a for a in attachments if a.loopback], False),
    ):
        if not group:
            continue
        outcomes = yield from Batch(plans=[ops.delete(a.network, a.rt, opts) for a in group], concurrent=together)
        for att, outcome in zip(group, outcomes, strict=True):
            if outcome.error is None:
                removed.append((att.network.name, att.rt.ifname))
            else:
                errors.append(outcome.error)
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise MultiError(f"pod {container_id}: teardown had {len(errors)} failures", errors, report=removed)
    return tuple(removed)


def stop_pod(
    container_id: str,
    state: ConfDirState | None,
    loopback: NetworkConfigList | None,
    opts: Options,
    *,
    concurrent: bool,
    only_if: PodSandbox | None = None,
    only: Collection[NetworkIfname] | None = None,
) -> Plan[PodTeardown]:
    """:func:`teardown`, then delete the pod's namespace if the runtime layer
    made it, and its record.  A pod that is already gone is fine.

    Args:
        only_if: do nothing unless the pod's record is this one (a rollback
            must not stop another pod that has the same ID).
        only: DEL just these attachments (see :func:`teardown`).

    Returns:
        :class:`PodTeardown`.
    """
    yield from LockGC(exclusive=False)
    yield from LockPod(container_id=container_id)
    sandbox: PodSandbox | None = None
    try:
        sandbox = yield from LoadPod(container_id=container_id)
    except CacheError as exc:
        yield from Notice(text=f"{exc.one_line()}; tearing the pod down from its cache records alone")
    if only_if is not None and not same_pod(sandbox, only_if):
        return PodTeardown(container_id=container_id)
    hint = sandbox.netns if sandbox is not None else ""
    removed = yield from teardown(
        container_id, state, loopback, opts, concurrent=concurrent, netns_hint=hint, only=only
    )
    netns_removed = ""
    if sandbox is not None and sandbox.netns_owned and (yield from DeleteNetns(path=sandbox.netns)):
        netns_removed = sandbox.netns
    forgotten = yield from ForgetPod(container_id=container_id)
    yield from UnlockPod(container_id=container_id, forget=True)
    return PodTeardown(container_id=container_id, removed=removed, netns_removed=netns_removed, forgotten=forgotten)


def check(
    container_id: str,
    state: ConfDirState | None,
    loopback: NetworkConfigList | None,
    opts: Options,
    *,
    concurrent: bool,
) -> Plan[tuple[tuple[str, str], ...]]:
    """CHECK every cached attachment of the pod, under its lock.

    Returns:
        ``(network, ifname)`` of the attachments checked.

    Raises:
        CNIError: the pod has no cached attachment, a record is damaged, or
            a plugin reported a problem (MultiError: several).
    """
    yield from LockGC(exclusive=False)
    yield from LockPod(container_id=container_id)
    attachments, errors = yield from _cached_attachments(container_id, state, loopback, "")
    if not attachments and not errors:
        raise CNIError(
            f"pod {container_id} has no cached attachments to check",
            hint="was it set up with this cache dir (--cache-dir)?",
        )
    outcomes = yield from Batch(plans=[ops.check(a.network, a.rt, opts) for a in attachments], concurrent=concurrent)
    _raise_failures(f"pod {container_id}: check", attachments, outcomes)
    if errors:
        raise errors[0] if len(errors) == 1 else MultiError(f"pod {container_id}: check", errors)
    return tuple((a.network.name, a.rt.ifname) for a in attachments)
