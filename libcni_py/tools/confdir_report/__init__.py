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

The public entry point is :func:`build_report` (what ``cnitool ls`` shows);
its steps, for a caller that wants them apart: :func:`scan` reads the conf
dir, :func:`resolve_plugins` finds the binaries, :func:`probe_versions` asks
them VERSION, :func:`analyse` (pure) judges and decides.  The modules:
``model`` (the values), ``scan`` and ``probe`` (the disk and the plugins),
``chains`` (plugin types a file names), ``consumers`` (each runtime's
choice), ``analysis`` (verdicts and the report), ``report_json``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ...core.version import PluginInfo
from .analysis import analyse
from .chains import chain_types, delegates
from .model import LABELS, NOT_DEFAULT, Consumer, FileEntry, FileVerdict, Ignored, Listing, PluginStatus, Report
from .probe import probe_versions
from .scan import resolve_plugins, scan

__all__ = [
    "LABELS",
    "NOT_DEFAULT",
    "Consumer",
    "FileEntry",
    "FileVerdict",
    "Ignored",
    "Listing",
    "PluginStatus",
    "Report",
    "analyse",
    "build_report",
    "chain_types",
    "delegates",
    "probe_versions",
    "resolve_plugins",
    "scan",
]


def build_report(
    conf_dir: str,
    plugin_path: Sequence[str],
    version_info: Callable[[str], PluginInfo] | None = None,
    *,
    max_conf_num: int = 1,
    crio_default: str = "",
) -> Report:
    """Read ``conf_dir``, find (and, given ``version_info``, probe) its
    plugins, and judge it: what ``cnitool ls`` shows.

    Args:
        conf_dir: the directory to read.
        plugin_path: where plugins are looked for.
        version_info: runs one VERSION probe (``CNI(...).version_info``);
            None: nothing runs.
        max_conf_num: how many files containerd loads (0: all).
        crio_default: CRI-O's configured default network name.

    Raises:
        ConfigError: the directory exists but cannot be listed.
    """
    listing = scan(conf_dir)
    statuses = resolve_plugins(chain_types(listing), plugin_path)
    if version_info is not None:
        statuses = probe_versions(statuses, version_info)
    return analyse(listing, statuses, max_conf_num=max_conf_num, crio_default=crio_default)
