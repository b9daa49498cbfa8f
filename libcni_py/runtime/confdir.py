"""The conf dir as a container runtime reads it, and noticing when it changes.

Loading follows containerd's go-cni (``loadFromConfDir``): one sorted list of
every ``.conf``, ``.conflist`` and ``.json`` file (subdirectories skipped), the
first valid file is the **default network**, and at most ``max_networks``
files (containerd's ``max_conf_num``, default 1) make up the networks every
pod gets (``eth0``, ``eth1``, ...).  Unlike go-cni, one invalid file does not
fail the whole load: it is skipped and kept with its reason (what kubelet did
and CRI-O does), so that readiness can say which file is wrong and why.  A
file whose network name an earlier file already uses is skipped too (two
attachments of one pod would share cache keys otherwise).

**Change detection** polls: :class:`ConfDir` keeps a snapshot of ``(name,
inode, size, mtime_ns, ctime_ns)`` for every candidate file (and the
``.conf`` files of subdirectories, where spec 1.1 aggregates plugins) and
re-reads the directory whenever the snapshot differs.  A file replaced by
renaming a new one into place gets a new inode; a file deleted and recreated
(even on a reused inode) gets a new ``ctime``; both are missed by watches on
the old inode (CRI-O's inotify watch of a file, fsnotify users), never by a
snapshot.  An edit inside the clock's granularity cannot change any of those
numbers, so, as git does with "racily clean" index entries, files modified
less than :data:`RACY_WINDOW_NS` before the snapshot was taken are re-read on
the next look as well.
"""

from __future__ import annotations

import os
import time

from ..core import netconf as conf
from ..core.defaults import DEFAULT_CONF_DIR
from ..core.value import Value
from ..errors import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

    from ..core.netconf import NetworkConfigList

__all__ = [
    "DEFAULT_CONF_DIR",
    "DEFAULT_MAX_NETWORKS",
    "ConfDir",
    "ConfDirState",
    "InvalidFile",
    "load",
    "snapshot",
]

#: containerd's ``max_conf_num`` default: only the default network is attached.
DEFAULT_MAX_NETWORKS = 1

#: Files changed this recently (ns) are re-read even when their stat looks the same.
RACY_WINDOW_NS = 2_000_000_000

#: One file of a snapshot: (name relative to the conf dir, inode, size, mtime_ns, ctime_ns).
Entry = tuple[str, int, int, int, int]


class InvalidFile(Value):
    """A conf dir file that was skipped, and why (one line a person can act on)."""

    path: str
    reason: str


class ConfDirState(Value):
    """What a load of the conf dir found.

    Attributes:
        conf_dir: the directory.
        exists: whether it exists (a missing conf dir has no networks).
        networks: every valid network, in file order; the first is the
            default network.
        invalid: the files skipped, with their reasons, in file order.
        max_networks: how many of ``networks`` every pod gets (0: all).
        default_network: the name of the default network (ocicni's
            ``DefaultNetName``); "" for the first valid one.
        min_networks: readiness needs at least this many valid networks
            (go-cni's ``WithMinNetworkCount``, without the loopback).
    """

    conf_dir: str
    exists: bool
    networks: tuple[NetworkConfigList, ...] = ()
    invalid: tuple[InvalidFile, ...] = ()
    max_networks: int = DEFAULT_MAX_NETWORKS
    default_network: str = ""
    min_networks: int = 0

    @property
    def default(self) -> NetworkConfigList | None:
        """The default network: the one named ``default_network``, else the
        first valid one; None if there is none."""
        if self.default_network:
            return self.network(self.default_network)
        return self.networks[0] if self.networks else None

    @property
    def defaults(self) -> tuple[NetworkConfigList, ...]:
        """The networks every pod gets when it names none (go-cni: the first
        ``max_conf_num`` files; with ``default_network``, that one first)."""
        ordered = self.networks
        if self.default_network:
            named = self.network(self.default_network)
            ordered = ((named,) if named else ()) + tuple(n for n in self.networks if n is not named)
        if self.max_networks <= 0:
            return ordered
        return ordered[: self.max_networks]

    def network(self, name: str) -> NetworkConfigList | None:
        """The valid network called ``name``, or None."""
        for net in self.networks:
            if net.name == name:
                return net
        return None

    def problems(self) -> str:
        """The skipped files and their reasons, on one line (empty if none)."""
        return "; ".join(f"{item.reason}" for item in self.invalid)


def load(conf_dir: str, *, max_networks: int = DEFAULT_MAX_NETWORKS) -> ConfDirState:
    """Read the conf dir once, as a runtime does (see the module docstring).

    Raises:
        ConfigError: the directory exists but cannot be listed.
    """
    exists = os.path.isdir(conf_dir)
    networks: list[NetworkConfigList] = []
    invalid: list[InvalidFile] = []
    owner: dict[str, str] = {}
    for path in conf.conf_files(conf_dir, conf.CONF_EXTENSIONS):
        try:
            net = conf.load_any_file(path, strict=True)
        except ConfigError as exc:
            invalid.append(InvalidFile(path=path, reason=exc.one_line()))
            continue
        if net.name in owner:
            invalid.append(
                InvalidFile(
                    path=path,
                    reason=f"{path}: name: network {net.name!r} is already defined by {owner[net.name]} "
                    "(the first file in lexical order wins; rename one of them)",
                )
            )
            continue
        owner[net.name] = path
        networks.append(net)
    return ConfDirState(
        conf_dir=conf_dir, exists=exists, networks=tuple(networks), invalid=tuple(invalid), max_networks=max_networks
    )


def with_options(
    state: ConfDirState, in_memory: Iterable[NetworkConfigList], *, default_network: str = "", min_networks: int = 0
) -> ConfDirState:
    """``state`` with networks given in memory put first (a file defining a
    network of the same name is skipped, and reported), a configured default
    network name and a minimum network count."""
    memory = tuple(in_memory)
    names = {net.name for net in memory}
    invalid = list(state.invalid)
    for net in state.networks:
        if net.name in names:
            invalid.append(
                InvalidFile(
                    path=net.source,
                    reason=f"{net.source}: name: network {net.name!r} is already given in memory (that one is used)",
                )
            )
    return state.replace(
        networks=memory + tuple(n for n in state.networks if n.name not in names),
        invalid=invalid,
        default_network=default_network,
        min_networks=min_networks,
    )


def _stat_entry(path: str, name: str) -> Entry | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError:
        try:
            st = os.lstat(path)  # a dangling or looping link: still a change when it appears
        except OSError:
            return None
    return (name, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def snapshot(conf_dir: str) -> tuple[Entry, ...] | None:
    """The stat snapshot of the conf dir's candidate files (None: no directory).

    Covers ``*.conf``, ``*.conflist``, ``*.json`` and ``<subdir>/*.conf``, sorted.
    """
    try:
        entries = list(os.scandir(conf_dir))
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError:
        return ()
    found: list[Entry] = []
    for entry in entries:
        if conf.is_real_dir(entry):
            try:
                inner = list(os.scandir(entry.path))
            except OSError:
                continue
            for sub in inner:
                if conf.has_extension(sub.name, (".conf",)):
                    item = _stat_entry(sub.path, f"{entry.name}/{sub.name}")
                    if item is not None:
                        found.append(item)
        elif conf.has_extension(entry.name, conf.CONF_EXTENSIONS):
            item = _stat_entry(entry.path, entry.name)
            if item is not None:
                found.append(item)
    found.sort()
    return tuple(found)


class ConfDir:
    """A conf dir that is re-read when it changes (no restart needed).

    Args:
        conf_dir: the directory.
        max_networks: containerd's ``max_conf_num`` (0: every valid file).

    :meth:`current` is cheap when nothing changed: one ``scandir`` and a
    ``stat`` per file.  Not thread-safe; one event loop or thread uses it.
    """

    def __init__(
        self,
        conf_dir: str = DEFAULT_CONF_DIR,
        *,
        max_networks: int = DEFAULT_MAX_NETWORKS,
        in_memory: Iterable[NetworkConfigList] = (),
        default_network: str = "",
        min_networks: int = 0,
    ) -> None:
        self.conf_dir = conf_dir
        self.max_networks = max_networks
        #: networks given as values (go-cni's ``WithConfListBytes``/``WithConf``):
        #: ahead of the conf dir's, in the order given; a file of the same name is skipped
        self.in_memory = tuple(in_memory)
        self.default_network = default_network
        self.min_networks = min_networks
        self._snapshot: tuple[Entry, ...] | None = None
        self._state: ConfDirState | None = None
        self._racy = False
        self.generation = 0
        """Counts the loads that found something different (starts at 1 after the first)."""

    def current(self) -> ConfDirState:
        """The conf dir's networks now, re-read if any file changed.

        Raises:
            ConfigError: the directory exists but cannot be listed.
        """
        taken = time.time_ns()
        snap = snapshot(self.conf_dir)
        if self._state is not None and snap == self._snapshot and not self._racy:
            return self._state
        state = load(self.conf_dir, max_networks=self.max_networks)
        if self.in_memory or self.default_network or self.min_networks:
            state = with_options(
                state, self.in_memory, default_network=self.default_network, min_networks=self.min_networks
            )
        if state != self._state:
            self.generation += 1
        self._state = state
        self._snapshot = snap
        self._racy = any(taken - entry[3] < RACY_WINDOW_NS or taken - entry[4] < RACY_WINDOW_NS for entry in snap or ())
        return state
