"""Read a conf dir from disk and find the plugins its files name (nothing runs)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Sequence

from ...core import netconf as conf
from ...core import plugin_call as invoke
from ...errors import ConfigError, PluginNotFoundError
from .model import FileEntry, Listing, PluginStatus

__all__ = ["resolve_plugins", "scan"]


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
    """Find each plugin type's binary (a ``stat`` per directory; nothing runs).

    A plugin not on ``plugin_path`` is looked for where distributions install
    plugins too, so that the report can say where it is instead.
    """
    out: dict[str, PluginStatus] = {}
    for plugin_type in types:
        try:
            path = invoke.find_in_path(plugin_type, plugin_path)
        except PluginNotFoundError as exc:
            missing = exc.msg if exc.msg != f'plugin "{plugin_type}" not found in {":".join(plugin_path)}' else ""
            out[plugin_type] = PluginStatus(
                type=plugin_type,
                searched=tuple(plugin_path),
                missing=missing,
                elsewhere=() if missing else exc.elsewhere,
            )
            continue
        out[plugin_type] = PluginStatus(type=plugin_type, searched=tuple(plugin_path), path=path)
    return out
