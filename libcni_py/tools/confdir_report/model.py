"""The values of a conf dir report: the files as read, the plugins, each
file's verdict, each consumer's choice, the whole report."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...core.value import Value

if TYPE_CHECKING:
    from ...core.netconf import NetworkConfigList, PluginConf
    from ...core.version import PluginInfo
    from ...errors import ConfigError

__all__ = [
    "DELEGATE_KEYS",
    "LABELS",
    "NOT_DEFAULT",
    "Consumer",
    "FileEntry",
    "FileVerdict",
    "Ignored",
    "Listing",
    "PluginStatus",
    "Report",
]

#: How the consumers are called in messages.
LABELS = {"containerd": "containerd", "crio": "CRI-O", "kubelet": "kubelet"}

#: How the note on the files that are not the default network ends.
NOT_DEFAULT = "not the default network"

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
        expected: another program's file that belongs there (podman's
            ``cni.lock``): a note, never a problem, and never to be removed.
    """

    name: str
    reason: str
    network: str = ""
    expected: bool = False


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
        elsewhere: directories outside ``searched`` where a binary of that
            name is installed (a plugin path that misses the distribution's
            plugin directory is a common cause of "MISSING").
        info: its VERSION answer, or None (not probed, or the probe failed).
        probe_error: why VERSION failed ("" when it did not).
        probed: whether VERSION was asked.
    """

    type: str
    path: str = ""
    searched: tuple[str, ...]
    missing: str = ""
    elsewhere: tuple[str, ...] = ()
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

    def not_found(self) -> str:
        """``MISSING (searched …)``, and where the binary is instead when it is
        installed in a directory that was not searched."""
        text = f"MISSING (searched {':'.join(self.searched) or 'nothing'}"
        if self.elsewhere:
            text += f"; it is in {', '.join(self.elsewhere)}, which is not searched"
        return text + ")"

    def problem(self, cni_version: str) -> str:
        """Why a list at ``cni_version`` cannot run it ("" when it can or
        when that is unknown)."""
        if not self.path:
            return self.missing or f'plugin "{self.type}" {self.not_found()}'
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
        notes: what is worth knowing but is no problem (which files are
            not the default network).
    """

    listing: Listing
    verdicts: tuple[FileVerdict, ...]
    ignored: tuple[Ignored, ...]
    plugins: tuple[PluginStatus, ...]
    consumers: tuple[Consumer, ...]
    by_name: tuple[tuple[str, str, str, tuple[str, ...]], ...]
    problems: tuple[str, ...]
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The report as a JSON-ready dict (``cnitool ls --json``)."""
        from .report_json import report_json

        return report_json(self)
