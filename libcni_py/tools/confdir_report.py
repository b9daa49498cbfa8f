"""What a conf dir holds, and which network each consumer of it would take.

The analysis behind ``cnitool ls``.  A conf dir is read by several programs
that each pick a network their own way; when it holds an old file, a copy or
a broken file, they quietly disagree.  This module reports, for every entry:
the network it defines, the version the list runs at, its plugin chain, its
verdict (with the file and JSON path of a fault), and what is ignored and
why; for every plugin, its binary (or MISSING, with the directories
searched) and the versions it supports; and the choice of each consumer,
as each makes it:

* **containerd** (go-cni ``loadFromConfDir``): ``.conf``, ``.conflist`` and
  ``.json`` in one sorted list; the first ``N`` files (``max_conf_num``,
  containerd's default 1) become networks ``eth0``, ``eth1``...; one of them
  that does not load fails the whole load.  Plugins are not checked.
* **CRI-O** (ocicni ``loadNetworks``): the same sorted list; a file that
  does not load, or whose plugins are missing or do not support its version
  (libcni's ``ValidateNetworkList``), is skipped; of two files with one
  name the first is kept; the default network is the configured name, else
  the first file kept.
* **kubelet** (the dockershim, up to Kubernetes 1.23): the first file that
  loads and validates; the others are skipped.
* **cnitool add NAME** (Go's ``LoadNetworkConf``): by name, ``.conflist``
  files first, stopping at the first ``.conflist`` that does not parse
  (computed by :func:`libcni_py.core.netconf.find_by_name`, the loop ``add`` runs).

Reading the disk (:func:`scan`, :func:`resolve_plugins`, :func:`probe_versions`)
is at the bottom; :func:`analyse` is pure.
"""

from __future__ import annotations

import os
import stat

from ..core import netconf as conf
from ..core import plugin_call as invoke
from ..core.value import Value
from ..errors import CNIError, ConfigError, PluginNotFoundError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence
    from typing import Any

    from ..core.netconf import NetworkConfigList, PluginConf
    from ..core.version import PluginInfo

__all__ = [
    "Consumer",
    "FileEntry",
    "Ignored",
    "Listing",
    "PluginStatus",
    "Report",
    "analyse",
    "chain_types",
    "probe_versions",
    "resolve_plugins",
    "scan",
]

#: How the consumers are called in messages.
LABELS = {"containerd": "containerd", "crio": "CRI-O", "kubelet": "kubelet"}

#: Keys under which a plugin names another plugin it runs itself (IPAM
#: plugins; flannel's delegate).
DELEGATE_KEYS = ("ipam", "delegate")


class FileEntry(Value):
    """One configuration file of the conf dir (a ``.conf``, ``.conflist`` or
    ``.json``), as loaded.

    Attributes:
        name: the file name.
        path: its path.
        conflist: the network, as Go loads it (``.conf`` up-converted;
            plugins from ``<name>/*.conf`` appended), or None.
        single: for ``.conf``/``.json``, the plugin object (what a look-up
            by name compares), or None.
        load_error: why it does not load (every consumer fails on it or
            skips it), or None.
        unusable: why libcni_py refuses to run it although it loads (a
            network name that is not one, an unimplemented version), or None.
    """

    name: str
    path: str
    conflist: NetworkConfigList | None = None
    single: PluginConf | None = None
    load_error: ConfigError | None = None
    unusable: ConfigError | None = None

    @property
    def is_conflist(self) -> bool:
        """True for a ``.conflist`` file."""
        return self.path.endswith(".conflist")

    def folder_plugins(self) -> tuple[str, ...]:
        """The plugin files appended from ``<name>/*.conf``."""
        if self.conflist is None or not self.is_conflist:
            return ()
        inline = self.path + ": "
        return tuple(p.source for p in self.conflist.plugins if not p.source.startswith(inline))


class Ignored(Value):
    """An entry of the conf dir that no consumer reads as a configuration.

    Attributes:
        name: the entry's name (folders end with ``/``).
        reason: why it is ignored.
        network: for a plugin folder, the network whose plugins it adds.
    """

    name: str
    reason: str
    network: str = ""


class Listing(Value):
    """A conf dir as read: its configuration files in order and the rest.

    Attributes:
        conf_dir: the directory.
        exists: False when it does not exist (an empty conf dir to runtimes).
        files: the configuration files, in lexical order of their paths.
        others: ``(name, is_folder)`` of every other entry.
    """

    conf_dir: str
    exists: bool = True
    files: tuple[FileEntry, ...]
    others: tuple[tuple[str, bool], ...] = ()


class PluginStatus(Value):
    """A plugin type's binary and the spec versions it supports.

    Attributes:
        type: the plugin type.
        path: the binary found, or "" (MISSING).
        searched: the directories searched.
        missing: why it was not found ("" when found).
        info: its VERSION answer, or None (not probed, or the probe failed).
        probe_error: why VERSION failed ("" when it did not).
        probed: whether VERSION was asked.
    """

    type: str
    path: str = ""
    searched: tuple[str, ...]
    missing: str = ""
    info: PluginInfo | None = None
    probe_error: str = ""
    probed: bool = False

    def supports(self, cni_version: str) -> bool | None:
        """Whether it supports ``cni_version``: None when unknown (not probed)."""
        if not self.path:
            return False
        if self.info is not None:
            return self.info.supports(cni_version)
        if self.probe_error:
            return False
        return None

    def problem(self, cni_version: str) -> str:
        """Why a list at ``cni_version`` cannot run it ("" when it can or
        when that is unknown)."""
        if not self.path:
            return self.missing or f'plugin "{self.type}" MISSING (searched {":".join(self.searched) or "nothing"})'
        if self.probe_error:
            return f'plugin "{self.type}": VERSION failed: {self.probe_error}'
        if self.info is not None and not self.info.supports(cni_version):
            return (
                f'plugin "{self.type}" does not support cniVersion "{cni_version or "0.1.0"}" '
                f"(it supports {', '.join(self.info.supported_versions) or 'nothing'})"
            )
        return ""


class FileVerdict(Value):
    """The verdict on one configuration file.

    Attributes:
        status: ``valid``; ``unverified`` (loads, plugins found, versions not
            probed); ``invalid`` (does not load, or cannot run: runtimes that
            validate skip it).
        loads: whether Go's loaders load it.
        validates: whether libcni's ``ValidateNetworkList`` passes (plugins
            found and supporting the version): True, False, or None
            (unknown, not probed).
        problems: one line each, the first being the fault that makes it
            invalid; delegated plugins that are missing are listed too (they
            fail at ADD; no consumer checks them).
        json_path: the JSON path of the load fault, or "".
        fault_file: the file of the load fault (a plugin folder file, say).
    """

    status: str
    loads: bool
    validates: bool | None
    problems: tuple[str, ...] = ()
    json_path: str = ""
    fault_file: str = ""


class Consumer(Value):
    """Which network one consumer of the conf dir takes.

    Attributes:
        name: ``containerd``, ``crio``, ``kubelet``.
        rule: how it chooses, in a few words.
        networks: ``(network, file, ifname)`` taken, in order ("" ifname when
            the consumer does not assign one here).
        error: why it takes nothing (its load fails, nothing valid), or "".
        notes: what else a person should know (the network taken will fail
            at ADD, a file skipped...).
    """

    name: str
    rule: str
    networks: tuple[tuple[str, str, str], ...] = ()
    error: str = ""
    notes: tuple[str, ...] = ()


class Report(Value):
    """Everything ``cnitool ls`` shows.

    Attributes:
        listing: the conf dir as read.
        verdicts: one per file of ``listing.files``.
        ignored: entries no consumer reads, with the reason.
        plugins: the status of every plugin type named (chains and delegates),
            by type, sorted.
        consumers: containerd, CRI-O, kubelet.
        by_name: for each network name, what ``cnitool add NAME`` loads:
            ``(name, file or "", error or "", shadowed files)``.
        problems: every problem found, one line each, in a stable order.
    """

    listing: Listing
    verdicts: tuple[FileVerdict, ...]
    ignored: tuple[Ignored, ...]
    plugins: tuple[PluginStatus, ...]
    consumers: tuple[Consumer, ...]
    by_name: tuple[tuple[str, str, str, tuple[str, ...]], ...]
    problems: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """The report as a JSON-ready dict (``cnitool ls --json``)."""
        return _report_json(self)


# --------------------------------------------------------------------------
# analysis (pure)


def delegates(plugin: PluginConf) -> tuple[str, ...]:
    """Plugin types a plugin object names for running itself (``ipam.type``,
    ``delegate.type``)."""
    found = []
    for key in DELEGATE_KEYS:
        sub = plugin.raw.get(key)
        if isinstance(sub, dict) and isinstance(sub.get("type"), str) and sub["type"]:
            found.append(sub["type"])
    return tuple(found)


def chain_types(listing: Listing) -> list[str]:
    """Every plugin type the loaded files name (chains and delegates), in
    order of first appearance."""
    seen: dict[str, None] = {}
    for entry in listing.files:
        if entry.conflist is None:
            continue
        for plugin in entry.conflist.plugins:
            seen.setdefault(plugin.type)
            for sub in delegates(plugin):
                seen.setdefault(sub)
    return list(seen)


def _verdict(entry: FileEntry, plugins: Mapping[str, PluginStatus]) -> FileVerdict:
    if entry.load_error is not None or entry.conflist is None:
        error = entry.load_error
        problem = error.problem if error is not None else "does not load"
        where = f"{error.path}: " if error is not None and error.path else ""
        fault_file = error.file if error is not None else entry.path
        prefix = "" if fault_file == entry.path else f"{fault_file}: "
        return FileVerdict(
            status="invalid",
            loads=False,
            validates=False,
            problems=(f"{prefix}{where}{problem}",),
            json_path=error.path if error is not None else "",
            fault_file=fault_file,
        )
    netlist = entry.conflist
    problems: list[str] = []
    validates: bool | None = True
    for plugin in netlist.plugins:
        status = plugins.get(plugin.type)
        text = status.problem(netlist.cni_version) if status is not None else ""
        if text:
            problems.append(text)
            validates = False
        elif (status is None or status.supports(netlist.cni_version) is None) and validates is True:
            validates = None
    if entry.unusable is not None:
        field = f"{entry.unusable.path}: " if entry.unusable.path else ""
        problems.insert(0, f"{field}{entry.unusable.problem} (libcni_py refuses to run it)")
    for plugin in netlist.plugins:
        for sub in delegates(plugin):
            status = plugins.get(sub)
            if status is not None and not status.path:
                problems.append(
                    f'plugin "{sub}" (run by {plugin.type}) MISSING (searched {":".join(status.searched)}): '
                    f"{plugin.type} fails at ADD"
                )
    runnable = entry.unusable is None
    if validates is False or not runnable:
        status_word = "invalid"
    elif validates is None:
        status_word = "unverified"
    else:
        status_word = "valid"
    return FileVerdict(status=status_word, loads=True, validates=validates, problems=tuple(problems))


def _ignored(listing: Listing) -> list[Ignored]:
    by_network: dict[str, list[FileEntry]] = {}
    for entry in listing.files:
        if entry.conflist is not None:
            by_network.setdefault(entry.conflist.name, []).append(entry)
    out: list[Ignored] = []
    for name, is_folder in listing.others:
        if not is_folder:
            ext = os.path.splitext(name)[1]
            what = f'extension "{ext}"' if ext else "no extension"
            out.append(
                Ignored(name=name, reason=f"{what}: only .conf, .conflist and .json files are read (by every consumer)")
            )
            continue
        owners = by_network.get(name, [])
        lists = [e for e in owners if e.is_conflist]
        aggregating = [e for e in lists if e.conflist is not None and not e.conflist.load_only_inlined_plugins]
        if aggregating:
            files = ", ".join(e.name for e in aggregating)
            out.append(
                Ignored(
                    name=name + "/",
                    network=name,
                    reason=f"plugin folder of network {name!r}: its *.conf files are appended to the plugins "
                    f"of {files} (spec 1.1; a runtime reads no configuration from it otherwise)",
                )
            )
        elif lists:
            out.append(
                Ignored(
                    name=name + "/",
                    network=name,
                    reason=f"folder named like network {name!r}, but {lists[0].name} sets loadOnlyInlinedPlugins: "
                    "its files are not used",
                )
            )
        elif owners:
            out.append(
                Ignored(
                    name=name + "/",
                    network=name,
                    reason=f"folder named like network {name!r}, which is a single-plugin file "
                    f"({owners[0].name}); only .conflist networks take plugins from a folder",
                )
            )
        else:
            out.append(Ignored(name=name + "/", reason="folder: configurations are not read from folders"))
    return out


def _containerd(listing: Listing, verdicts: Sequence[FileVerdict], max_conf_num: int) -> Consumer:
    rule = (
        f"go-cni: one sorted list of .conf/.conflist/.json, the first {max_conf_num} file(s); "
        "one of them that does not load fails the load"
        if max_conf_num > 0
        else "go-cni: one sorted list of .conf/.conflist/.json, every file; one that does not load fails the load"
    )
    if not listing.files:
        return Consumer(name="containerd", rule=rule, error=f"no network config found in {listing.conf_dir}")
    networks: list[tuple[str, str, str]] = []
    notes: list[str] = []
    for entry, verdict in zip(listing.files, verdicts, strict=True):
        if not verdict.loads or entry.conflist is None:
            return Consumer(
                name="containerd",
                rule=rule,
                error=f"the load fails on {entry.name}: {verdict.problems[0]} (no network at all: "
                "'cni plugin not initialized')",
            )
        networks.append((entry.conflist.name, entry.name, f"eth{len(networks)}"))
        if verdict.validates is False or entry.unusable is not None:
            notes.append(f"{entry.name} is taken although it cannot run: {verdict.problems[0]}; every pod ADD fails")
        if len(networks) == max_conf_num:
            break
    return Consumer(name="containerd", rule=rule, networks=tuple(networks), notes=tuple(notes))


def _skipping_consumer(
    name: str, rule: str, listing: Listing, verdicts: Sequence[FileVerdict], *, first_only: bool, default: str = ""
) -> Consumer:
    kept: list[tuple[str, str, str]] = []
    names: set[str] = set()
    notes: list[str] = []
    for entry, verdict in zip(listing.files, verdicts, strict=True):
        if not verdict.loads or entry.conflist is None:
            notes.append(f"skips {entry.name}: {verdict.problems[0]}")
            continue
        if verdict.validates is False:
            notes.append(f"skips {entry.name}: {verdict.problems[0]}")
            continue
        net = entry.conflist.name
        if net in names:
            first = next(k[1] for k in kept if k[0] == net)
            notes.append(f"ignores {entry.name}: network {net!r} already comes from {first}")
            continue
        if verdict.validates is None:
            notes.append(f"{entry.name}: plugin versions not probed; assumed to validate")
        names.add(net)
        kept.append((net, entry.name, ""))
        if entry.unusable is not None:
            notes.append(f"{entry.name} is taken although it cannot run: {verdict.problems[0]}; every pod ADD fails")
        if first_only:
            break
    if not kept:
        return Consumer(
            name=name, rule=rule, error="no valid network: 'network plugin is not ready'", notes=tuple(notes)
        )
    if default:
        chosen = [k for k in kept if k[0] == default]
        if not chosen:
            return Consumer(
                name=name,
                rule=rule,
                error=f"the configured default network {default!r} is not among the valid networks "
                f"({', '.join(k[0] for k in kept)}): pods cannot start",
                notes=tuple(notes),
            )
        taken = chosen[0]
    else:
        taken = kept[0]
    return Consumer(name=name, rule=rule, networks=((taken[0], taken[1], "eth0"),), notes=tuple(notes))


def _by_name(listing: Listing) -> list[tuple[str, str, str, tuple[str, ...]]]:
    conflists: list[tuple[str, NetworkConfigList | ConfigError]] = []
    singles: list[tuple[str, PluginConf | ConfigError]] = []
    defined: dict[str, list[str]] = {}
    for entry in listing.files:
        if entry.is_conflist:
            loaded: Any = entry.conflist if entry.conflist is not None else entry.load_error
            conflists.append((entry.path, loaded))
        else:
            loaded = entry.single if entry.single is not None else entry.load_error
            singles.append((entry.path, loaded))
        if entry.conflist is not None:
            defined.setdefault(entry.conflist.name, []).append(entry.name)
    out: list[tuple[str, str, str, tuple[str, ...]]] = []
    for name in sorted(defined):
        try:
            found = conf.find_by_name(name, conflists, singles, conf_dir=listing.conf_dir)
        except ConfigError as exc:
            out.append((name, "", exc.one_line(), ()))
            continue
        file = os.path.basename(found.path)
        out.append((name, file, "", tuple(f for f in defined[name] if f != file)))
    return out


def analyse(
    listing: Listing,
    plugins: Mapping[str, PluginStatus],
    *,
    max_conf_num: int = 1,
    crio_default: str = "",
) -> Report:
    """Judge every file and work out each consumer's choice.

    Args:
        listing: the conf dir, from :func:`scan`.
        plugins: the status of every plugin type (:func:`resolve_plugins`,
            optionally :func:`probe_versions`).
        max_conf_num: how many files containerd loads (its
            ``max_conf_num``; 0: all).
        crio_default: CRI-O's configured default network name ("" for the
            first valid file).

    Returns:
        The :class:`Report`.
    """
    verdicts = [_verdict(entry, plugins) for entry in listing.files]
    ignored = _ignored(listing)
    consumers = [
        _containerd(listing, verdicts, max_conf_num),
        _skipping_consumer(
            "crio",
            f"ocicni: files that load and validate, first of each name; default network {crio_default!r}"
            if crio_default
            else "ocicni: files that load and validate, first of each name; the first is the default",
            listing,
            verdicts,
            first_only=False,
            default=crio_default,
        ),
        _skipping_consumer(
            "kubelet",
            "dockershim (Kubernetes <= 1.23): the first file that loads and validates",
            listing,
            verdicts,
            first_only=True,
        ),
    ]
    by_name = _by_name(listing)
    problems = _problems(listing, verdicts, ignored, consumers, by_name)
    used = {
        t for e in listing.files if e.conflist is not None for p in e.conflist.plugins for t in (p.type, *delegates(p))
    }
    return Report(
        listing=listing,
        verdicts=tuple(verdicts),
        ignored=tuple(ignored),
        plugins=tuple([plugins[t] for t in sorted(plugins) if t in used]),
        consumers=tuple(consumers),
        by_name=tuple(by_name),
        problems=tuple(problems),
    )


def _problems(
    listing: Listing,
    verdicts: Sequence[FileVerdict],
    ignored: Sequence[Ignored],
    consumers: Sequence[Consumer],
    by_name: Sequence[tuple[str, str, str, tuple[str, ...]]],
) -> list[str]:
    out: list[str] = []
    if not listing.exists:
        out.append(f"{listing.conf_dir} does not exist: every runtime reports the network as not ready")
    elif not listing.files:
        out.append(
            f"{listing.conf_dir} has no .conf, .conflist or .json file: every runtime reports the network as not ready"
        )
    for entry, verdict in zip(listing.files, verdicts, strict=True):
        for text in verdict.problems:
            out.append(f"{entry.name}: {text}")
    files_by_name = {e.name: e for e in listing.files}
    runtime_takes: dict[str, list[tuple[str, str]]] = {}
    for consumer in consumers:
        for net, file, _ in consumer.networks:
            runtime_takes.setdefault(net, []).append((consumer.name, file))
    verdict_of = {e.name: v for e, v in zip(listing.files, verdicts, strict=True)}
    for name, file, error, shadowed in by_name:
        if error:
            out.append(f"cnitool add {name}: fails: {error}")
            continue
        if verdict_of[file].status == "invalid" and verdict_of[file].problems:
            out.append(f"cnitool add {name} loads {file}, which cannot run: {verdict_of[file].problems[0]}")
        if not shadowed:
            continue
        winner = files_by_name[file]
        why = (
            ".conflist files are searched before .conf/.json"
            if winner.is_conflist and any(not files_by_name[o].is_conflist for o in shadowed)
            else "the first file in order wins"
        )
        text = (
            f"network {name!r} is defined in {len(shadowed) + 1} files ({', '.join(sorted([file, *shadowed]))}): "
            f"cnitool add {name} loads {file} ({why})"
        )
        elsewhere: dict[str, list[str]] = {}
        for who, where in runtime_takes.get(name, []):
            if where != file:
                elsewhere.setdefault(where, []).append(LABELS.get(who, who))
        if elsewhere:
            text += "; but " + "; ".join(
                f"{', '.join(who)} take{'s' if len(who) == 1 else ''} {where}" for where, who in elsewhere.items()
            )
        unused = [o for o in shadowed if o not in {w for _, w in runtime_takes.get(name, [])}]
        if unused:
            text += f"; {', '.join(unused)} {'is' if len(unused) == 1 else 'are'} shadowed"
        out.append(text)
    stopper = next((e for e in listing.files if e.is_conflist and e.load_error is not None), None)
    if stopper is not None:
        out.append(
            f"{stopper.name} stops every look-up by name that reaches it (as Go's does): cnitool add fails for "
            "networks defined only after it or only in .conf/.json files"
        )
    loadable = [e for e in listing.files if e.conflist is not None]
    default = next((c.networks[0] for c in consumers if c.name == "kubelet" and c.networks), None)
    if default is not None and len(loadable) > 1:
        rest = [e for e in loadable if e.name != default[1]]
        names = ", ".join(f"{e.name} ({e.conflist.name!r})" for e in rest[:3] if e.conflist is not None)
        more = f" and {len(rest) - 3} more" if len(rest) > 3 else ""
        default_takers = [LABELS[c.name] for c in consumers if c.networks and c.networks[0][:2] == default[:2]]
        out.append(
            f"the default network of {', '.join(default_takers)} is {default[0]!r} from {default[1]} "
            f"(the first valid file in order); {names}{more} {'is' if len(rest) == 1 else 'are'} "
            "not the default network"
        )
    for item in ignored:
        if not item.network and not item.name.endswith("/"):
            out.append(f"{item.name} is ignored ({item.reason.split(':')[0]})")
    for consumer in consumers:
        if consumer.error:
            out.append(f"{LABELS[consumer.name]}: {consumer.error}")
        out.extend(f"{LABELS[consumer.name]}: {note}" for note in consumer.notes if " is taken although " in note)
    # where the consumers disagree about a network name
    takers: dict[str, list[str]] = {}
    for consumer in consumers:
        for net, file, _ in consumer.networks[:1]:
            takers.setdefault(f"network {net!r} from {file}", []).append(consumer.name)
    if len(takers) > 1:
        parts = "; ".join(f"{', '.join(LABELS[w] for w in who)} take {what}" for what, who in takers.items())
        out.append(f"the runtimes disagree: {parts}")
    return out


# --------------------------------------------------------------------------
# JSON


def _problem_json(error: ConfigError | None) -> dict[str, str] | None:
    if error is None:
        return None
    return {"file": error.file, "jsonPath": error.path, "reason": error.problem}


def _report_json(report: Report) -> dict[str, Any]:
    files = []
    for entry, verdict in zip(report.listing.files, report.verdicts, strict=True):
        netlist = entry.conflist
        files.append(
            {
                "file": entry.name,
                "path": entry.path,
                "network": netlist.name if netlist is not None else None,
                "cniVersion": netlist.cni_version if netlist is not None else None,
                "plugins": [
                    {
                        "type": p.type,
                        "name": p.name or None,
                        "source": p.source,
                        "delegates": list(delegates(p)),
                        "capabilities": list(p.enabled_capabilities()),
                    }
                    for p in (netlist.plugins if netlist is not None else ())
                ],
                "pluginFolderFiles": list(entry.folder_plugins()),
                "verdict": verdict.status,
                "loads": verdict.loads,
                "validates": verdict.validates,
                "problems": list(verdict.problems),
                "loadError": _problem_json(entry.load_error),
                "unusable": _problem_json(entry.unusable),
            }
        )
    return {
        "confDir": report.listing.conf_dir,
        "exists": report.listing.exists,
        "files": files,
        "ignored": [{"name": i.name, "reason": i.reason, "network": i.network or None} for i in report.ignored],
        "plugins": [
            {
                "type": p.type,
                "path": p.path or None,
                "searched": list(p.searched),
                "missing": p.missing or None,
                "probed": p.probed,
                "supportedVersions": list(p.info.supported_versions) if p.info is not None else None,
                "probeError": p.probe_error or None,
            }
            for p in report.plugins
        ],
        "consumers": {
            c.name: {
                "rule": c.rule,
                "networks": [{"network": n, "file": f, "ifname": i or None} for n, f, i in c.networks],
                "error": c.error or None,
                "notes": list(c.notes),
            }
            for c in report.consumers
        },
        "cnitoolAdd": [
            {"network": n, "file": f or None, "error": e or None, "shadowed": list(s)} for n, f, e, s in report.by_name
        ],
        "problems": list(report.problems),
    }


# --------------------------------------------------------------------------
# the disk


def _load(path: str) -> FileEntry:
    name = os.path.basename(path)
    try:
        st = os.stat(path)
    except OSError:
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode) and not stat.S_ISDIR(st.st_mode):
        error = ConfigError(
            path, "", "is not a regular file (a FIFO, socket or device); a runtime reading it would hang or fail"
        )
        return FileEntry(name=name, path=path, load_error=error)
    single = None
    try:
        if path.endswith(".conflist"):
            conflist = conf.load_conflist_file(path, strict=False)
        else:
            single = conf.load_plugin_file(path)
            conflist = conf.conflist_from_plugin(single, strict=False)
    except ConfigError as exc:
        return FileEntry(name=name, path=path, single=single, load_error=exc)
    unusable = None
    try:
        conf.check_usable(conflist)
    except ConfigError as exc:
        unusable = exc
    return FileEntry(name=name, path=path, conflist=conflist, single=single, unusable=unusable)


def scan(conf_dir: str) -> Listing:
    """Read a conf dir: load every configuration file once (as
    :func:`libcni_py.core.netconf.conf_files` finds them) and list the other entries.

    Raises:
        ConfigError: the directory exists but cannot be listed.
    """
    paths = conf.conf_files(conf_dir, conf.CONF_EXTENSIONS)
    try:
        names = sorted(os.listdir(conf_dir))
    except FileNotFoundError:
        return Listing(conf_dir=conf_dir, files=(), exists=False)
    except OSError as exc:
        raise ConfigError(conf_dir, "", f"cannot list: {exc.strerror or exc}") from None
    taken = {os.path.basename(p) for p in paths}
    others = []
    for name in names:
        if name in taken:
            continue
        full = os.path.join(conf_dir, name)
        others.append((name, os.path.isdir(full) and not os.path.islink(full)))
    return Listing(conf_dir=conf_dir, files=tuple([_load(p) for p in paths]), others=tuple(others))


def resolve_plugins(types: Iterable[str], plugin_path: Sequence[str]) -> dict[str, PluginStatus]:
    """Find each plugin type's binary (a ``stat`` per directory; nothing runs)."""
    out: dict[str, PluginStatus] = {}
    for plugin_type in types:
        try:
            path = invoke.find_in_path(plugin_type, plugin_path)
        except PluginNotFoundError as exc:
            missing = exc.msg if exc.msg != f'plugin "{plugin_type}" not found in {":".join(plugin_path)}' else ""
            out[plugin_type] = PluginStatus(type=plugin_type, searched=tuple(plugin_path), missing=missing)
            continue
        out[plugin_type] = PluginStatus(type=plugin_type, searched=tuple(plugin_path), path=path)
    return out


def probe_versions(
    statuses: Mapping[str, PluginStatus],
    version_info: Callable[[str], PluginInfo],
    *,
    workers: int = 8,
) -> dict[str, PluginStatus]:
    """Ask every found plugin VERSION, each distinct binary once, a few at a time.

    Args:
        statuses: from :func:`resolve_plugins`.
        version_info: runs the probe (``CNI(...).version_info``).
        workers: probes run at once.

    Returns:
        The statuses with ``info`` or ``probe_error`` filled in.
    """
    by_binary: dict[str, list[str]] = {}
    for status in statuses.values():
        if status.path:
            by_binary.setdefault(status.path, []).append(status.type)
    if not by_binary:
        return dict(statuses)

    def ask(plugin_type: str) -> tuple[PluginInfo | None, str]:
        try:
            return version_info(plugin_type), ""
        except CNIError as exc:
            return None, exc.one_line()

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(by_binary)))) as pool:
        answers = dict(zip(by_binary, pool.map(ask, [types[0] for types in by_binary.values()]), strict=True))
    out = dict(statuses)
    for binary, types in by_binary.items():
        info, error = answers[binary]
        for plugin_type in types:
            out[plugin_type] = out[plugin_type].replace(info=info, probe_error=error, probed=True)
    return out
