"""Network configuration: files on disk, their parsing, and look-up by name.

The rules are Go libcni's (``libcni/conf.go``, 1.2+):

* a conf dir holds ``.conflist`` files (lists) and ``.conf``/``.json`` files
  (one plugin each, up-converted into a one-plugin list); subdirectories are
  skipped; order is the byte order of the full path;
* a network is found **by its name**: first among the ``.conflist`` files,
  then the ``.conf``/``.json`` files.  Like Go, the search stops at the first
  file of a kind that cannot be parsed, even if it is not the network asked
  for -- the error then says so;
* ``cniVersions`` picks the highest version this runtime implements;
* unless ``loadOnlyInlinedPlugins`` is true, plugin objects from
  ``<confdir>/<name>/*.conf`` are appended to the inlined ones.

Every error names the file and the JSON path of the fault
(``10-flannel.conflist: plugins[1].type: expected a string``).

Parsing is pure (:func:`parse_conflist`, :func:`parse_plugin`); the few
functions that read the disk are at the bottom.
"""

from __future__ import annotations

import os
import stat

from ..errors import ConfigError, DecodeError, NetworkNotFoundError, VersionError, os_reason
from . import gojson, names, schema, version
from .value import Value, fresh

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence
    from typing import Any, TypeVar

    T = TypeVar("T")

__all__ = [
    "CONF_EXTENSIONS",
    "MAX_CONF_BYTES",
    "NetworkConfigList",
    "PluginConf",
    "conf_files",
    "conflist_from_plugin",
    "find_by_name",
    "load_conflist_file",
    "load_network",
    "load_plugin_file",
    "parse_conflist",
    "parse_plugin",
]

#: File name extensions a conf dir is read for, as runtimes read it.
CONF_EXTENSIONS = (".conf", ".conflist", ".json")

#: Largest configuration file read; real ones are a few KiB.
MAX_CONF_BYTES = 4 * 1024 * 1024

_SEARCH_HINT = (
    "networks are looked up by name and, as in Go libcni, the search stops at the "
    "first file it cannot parse; fix that file or move it out of the conf dir"
)


class PluginConf(Value):
    """One plugin object of a list.

    Attributes:
        type: the plugin binary's name.
        name: the object's own ``name`` key ("" when absent).
        cni_version: the object's own ``cniVersion`` ("" when absent).
        capabilities: the ``capabilities`` map (which runtime args it takes).
        raw: the decoded object, every key as written; plugins receive
            unknown keys unchanged.
        source: where it came from, for messages (``file: plugins[1]``).
    """

    type: str
    name: str = ""
    cni_version: str = ""
    capabilities: Mapping[str, bool] = fresh(dict)
    raw: Mapping[str, Any]
    source: str = ""

    def _post_init(self) -> None:
        self._set(capabilities=dict(self.capabilities or {}))

    def enabled_capabilities(self) -> tuple[str, ...]:
        """The capability keys set to true, sorted."""
        return tuple(sorted(k for k, on in self.capabilities.items() if on))


class NetworkConfigList(Value):
    """A network: a list of plugins run in order (DEL in reverse).

    Attributes:
        name: the network name.
        cni_version: the spec version the list runs at (after ``cniVersions``
            selection).
        declared_version: ``cniVersion`` as written ("" when absent).
        cni_versions: ``cniVersions`` as written, or None.
        disable_check, disable_gc, load_only_inlined_plugins: the list flags.
        plugins: the plugin objects, inlined first, then those from
            ``<confdir>/<name>/*.conf``.
        config_bytes: the bytes cached with each attachment (Go's ``Bytes``): the file as read for a
            ``.conflist``, Go's up-converted list for a ``.conf``.
        path: the file it was loaded from ("" when built in memory).
    """

    __slots__ = (
        "name",
        "cni_version",
        "declared_version",
        "cni_versions",
        "disable_check",
        "disable_gc",
        "load_only_inlined_plugins",
        "plugins",
        "config_bytes",
        "path",
    )
    name: str
    cni_version: str
    declared_version: str
    cni_versions: tuple[str, ...] | None
    disable_check: bool
    disable_gc: bool
    load_only_inlined_plugins: bool
    plugins: tuple[PluginConf, ...]
    config_bytes: bytes
    path: str

    def __init__(
        self,
        *,
        name: str,
        cni_version: str,
        plugins: Iterable[PluginConf],
        config_bytes: bytes,
        declared_version: str | None = None,
        cni_versions: Iterable[str] | None = None,
        disable_check: bool = False,
        disable_gc: bool = False,
        load_only_inlined_plugins: bool = False,
        path: str = "",
    ) -> None:
        self._set(
            name=name,
            cni_version=cni_version,
            declared_version=cni_version if declared_version is None else declared_version,
            cni_versions=None if cni_versions is None else tuple(cni_versions),
            disable_check=disable_check,
            disable_gc=disable_gc,
            load_only_inlined_plugins=load_only_inlined_plugins,
            plugins=tuple(plugins),
            config_bytes=config_bytes,
            path=path,
        )

    @property
    def source(self) -> str:
        """Where the list came from, for messages."""
        return self.path or f"network {self.name!r}"

    def capabilities(self) -> tuple[str, ...]:
        """The union of the plugins' enabled capabilities, sorted."""
        caps: set[str] = set()
        for plugin in self.plugins:
            caps.update(plugin.enabled_capabilities())
        return tuple(sorted(caps))


# --------------------------------------------------------------------------
# parsing (pure)


def _decode(data: bytes, source: str) -> Any:
    try:
        return gojson.loads(data, unique_keys=True)
    except DecodeError as exc:
        raise ConfigError(source, "", exc.msg, hint=exc.hint) from None


def _flexible_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return isinstance(value, str) and value.lower() == "true"


def _str_or_empty(value: Any) -> str:
    return value if isinstance(value, str) else ""


def parse_plugin(obj: Any, source: str, *, prefix: tuple[str | int, ...] = ()) -> PluginConf:
    """A plugin object, checked against the ``plugin`` schema.

    Args:
        obj: the decoded JSON object.
        source: file name for messages.
        prefix: JSON path of the object inside the file (``("plugins", 1)``).

    Raises:
        ConfigError: naming ``source`` and the JSON path of the fault.
    """
    view = _netconf_view(obj)
    fault = schema.first_error(view, "plugin", prefix=prefix)
    if fault is not None:
        raise ConfigError(source, fault[0], fault[1])
    where = f"{source}: {schema.format_path(list(prefix))}" if prefix else source
    return PluginConf(
        type=view["type"],
        name=_str_or_empty(view.get("name")),
        cni_version=_str_or_empty(view.get("cniVersion")),
        capabilities=view.get("capabilities") or {},
        raw=obj,
        source=where,
    )


_NETCONF_FIELDS = ("cniVersion", "name", "type", "capabilities", "ipam", "dns", "prevResult", "runtimeConfig", "args")


def _netconf_view(obj: Any) -> Any:
    """The plugin object as libcni reads it: Go decodes it into ``types.NetConf``,
    whose fields match keys case-insensitively (``"Type"`` is the type).  Only
    reading uses this view; plugins get the object as written."""
    if not isinstance(obj, dict):
        return obj
    view = gojson.struct_fields(obj, _NETCONF_FIELDS)
    for key, fields in (("ipam", ("type",)), ("dns", ("nameservers", "domain", "search", "options"))):
        if isinstance(view.get(key), dict):
            view[key] = gojson.struct_fields(view[key], fields)
    return view


def parse_conflist(data: bytes, source: str, *, strict: bool = True) -> NetworkConfigList:
    """Parse a ``.conflist`` document (Go's ``NetworkConfFromBytes``).

    Args:
        data: the file's bytes; they become :attr:`NetworkConfigList.bytes`.
        source: the file name, for messages.
        strict: also refuse what Go would load but no operation could use: a
            network name that is not a valid name, or a selected version
            this runtime does not implement.  Look-up by name parses with
            ``strict=False`` so that it skips exactly the files Go skips.

    Raises:
        ConfigError: with the file and JSON path of the fault.
    """
    doc = _decode(data, source)
    fault = schema.first_error(doc, "conflist")
    if fault is not None:
        raise ConfigError(source, fault[0], fault[1])
    name: str = doc["name"]
    declared = _str_or_empty(doc.get("cniVersion"))
    declared_list = doc.get("cniVersions")
    try:
        selected = version.select(declared, declared_list)
    except VersionError as exc:
        field = "cniVersions" if declared_list is not None else "cniVersion"
        raise ConfigError(source, field, exc.msg) from None
    plugins = [
        parse_plugin(obj, source, prefix=("plugins", index)) for index, obj in enumerate(doc.get("plugins") or ())
    ]
    load_only_inlined = _flexible_bool(doc.get("loadOnlyInlinedPlugins", False))
    if "plugins" not in doc and load_only_inlined:
        raise ConfigError(source, "plugins", "missing, and loadOnlyInlinedPlugins is true")
    conflist = NetworkConfigList(
        name=name,
        cni_version=selected,
        declared_version=declared,
        cni_versions=declared_list,
        disable_check=_flexible_bool(doc.get("disableCheck", False)),
        disable_gc=_flexible_bool(doc.get("disableGC", False)),
        load_only_inlined_plugins=load_only_inlined,
        plugins=plugins,
        config_bytes=data,
        path=source,
    )
    if strict:
        check_usable(conflist)
    return conflist


def check_usable(conflist: NetworkConfigList) -> None:
    """Refuse a list that no operation could run: an invalid network name or an
    unimplemented version (including versions newer than 1.1.0).

    Raises:
        ConfigError: naming the file and field.
    """
    if not names.is_valid_name(conflist.name):
        raise ConfigError(
            conflist.source,
            "name",
            f"{conflist.name!r} is not a valid network name" if conflist.name else "must not be empty",
            hint="use letters, digits, '_', '.' and '-', starting with a letter or digit: "
            "the name becomes part of cache file names",
        )
    selected = conflist.cni_version
    if not selected and conflist.cni_versions:
        raise ConfigError(
            conflist.source,
            "cniVersions",
            f"lists no version this runtime implements (it implements {', '.join(version.SPEC_VERSIONS)})",
            hint='list one of those too, e.g. "cniVersions": ["1.0.0", ...]',
        )
    if selected and selected not in version.SPEC_VERSIONS:
        field = "cniVersions" if conflist.cni_versions is not None else "cniVersion"
        try:
            version.parse(selected)
        except VersionError:
            raise ConfigError(
                conflist.source, field, f'"{selected}" is not a CNI version (they look like "1.0.0")'
            ) from None
        raise ConfigError(
            conflist.source,
            field,
            f'version "{selected}" is not implemented by this runtime '
            f"(it implements {', '.join(version.SPEC_VERSIONS)})",
            hint='list an older version too, e.g. "cniVersions": ["1.0.0", "' + selected + '"]',
        )
    if not conflist.plugins:
        raise ConfigError(conflist.source, "plugins", "the network has no plugins")


def parse_single(data: bytes, source: str) -> PluginConf:
    """Parse a single-plugin ``.conf``/``.json`` file (Go's ``ConfFromBytes``)."""
    doc = _decode(data, source)
    if not isinstance(doc, dict):
        raise ConfigError(source, "", "expected a JSON object")
    return parse_plugin(doc, source)


def conflist_from_plugin(plugin: PluginConf, *, strict: bool = True) -> NetworkConfigList:
    """Up-convert a single-plugin configuration into a one-plugin list.

    As Go's ``ConfListFromConf``: the list's bytes are Go's marshalling of
    ``{"cniVersion", "name", "plugins": [object]}`` (sorted keys), and those
    bytes are what gets cached.
    """
    doc = {"name": plugin.name, "cniVersion": plugin.cni_version, "plugins": [dict(plugin.raw)]}
    data = gojson.dumps_bytes(doc)
    conflist = parse_conflist(data, plugin.source, strict=False)
    if strict:
        check_usable(conflist)
    return conflist


# --------------------------------------------------------------------------
# the disk


def read_conf_bytes(path: str) -> bytes:
    """Read a configuration file, refusing what cannot be one.

    Raises:
        ConfigError: unreadable, a directory, a FIFO or other special file
            (never waited on), a symlink loop, or larger than
            :data:`MAX_CONF_BYTES`.
    """
    try:
        # non-blocking: opening a FIFO must not wait for a writer
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        raise ConfigError(path, "", f"cannot read: {os_reason(exc, 'read')}") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise ConfigError(path, "", "cannot read: is a directory")
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(path, "", "is not a regular file (a FIFO, socket or device?)")
        os.set_blocking(fd, True)
        size = st.st_size
        if size > MAX_CONF_BYTES:
            raise ConfigError(path, "", f"is {size} bytes, larger than the {MAX_CONF_BYTES} allowed")
        chunks = []
        total = 0
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            total += len(chunk)
            if total > MAX_CONF_BYTES:
                raise ConfigError(path, "", f"is larger than the {MAX_CONF_BYTES} bytes allowed")
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise ConfigError(path, "", f"cannot read: {os_reason(exc, 'read')}") from None
    finally:
        os.close(fd)


def conf_files(conf_dir: str, extensions: Sequence[str]) -> list[str]:
    """Files of ``conf_dir`` whose extension is one of ``extensions``, sorted.

    As Go's ``ConfFiles``: entries that are directories are skipped (a
    symbolic link is not one, even to a directory); a missing directory is
    empty.

    Raises:
        ConfigError: the directory exists but cannot be listed.
    """
    try:
        entries = list(os.scandir(conf_dir))
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise ConfigError(conf_dir, "", f"cannot list: {os_reason(exc, 'read')}") from None
    found = [
        os.path.join(conf_dir, entry.name)
        for entry in entries
        if not is_real_dir(entry) and has_extension(entry.name, extensions)
    ]
    found.sort()
    return found


def is_real_dir(entry: os.DirEntry[str]) -> bool:
    """Whether a conf dir entry is a directory itself (Go's ``ConfFiles``
    skips those; a symbolic link to a directory is not one)."""
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False


def has_extension(name: str, extensions: Sequence[str]) -> bool:
    """Whether ``name``'s extension, as Go's ``filepath.Ext`` gives it
    (from the last dot, leading dot included: ``.conflist`` itself has one),
    is one of ``extensions``."""
    dot = name.rfind(".")
    return dot >= 0 and name[dot:] in extensions


def load_plugin_file(path: str) -> PluginConf:
    """A single-plugin configuration file."""
    return parse_single(read_conf_bytes(path), path)


def _aggregate(conflist: NetworkConfigList) -> NetworkConfigList:
    """Append plugin objects from ``<dir>/<name>/*.conf`` (spec 1.1)."""
    if conflist.load_only_inlined_plugins or not conflist.path:
        return conflist
    if not names.is_valid_name(conflist.name):
        # never build a path from a name such as "../../etc"
        return conflist
    plugin_dir = os.path.join(os.path.dirname(conflist.path), conflist.name)
    extra = [load_plugin_file(path) for path in conf_files(plugin_dir, (".conf",))]
    if not extra:
        return conflist
    return conflist.replace(plugins=conflist.plugins + tuple(extra))


def load_conflist_file(path: str, *, strict: bool = True) -> NetworkConfigList:
    """Load a ``.conflist`` file, with plugins aggregated from its folder.

    Raises:
        ConfigError: naming the file and JSON path of the fault.
    """
    conflist = _aggregate(parse_conflist(read_conf_bytes(path), path, strict=False))
    if not conflist.plugins:
        raise ConfigError(
            path,
            "plugins",
            "the network has no plugins (none inline, none in "
            f"{os.path.join(os.path.dirname(path), conflist.name)}/*.conf)",
        )
    if strict:
        check_usable(conflist)
    return conflist


def load_any_file(path: str, *, strict: bool = True) -> NetworkConfigList:
    """Load a ``.conflist``, or a ``.conf``/``.json`` up-converted to a list."""
    if path.endswith(".conflist"):
        return load_conflist_file(path, strict=strict)
    return conflist_from_plugin(load_plugin_file(path), strict=strict)


def _loaded_or_error(load: Callable[[str], T], path: str) -> T | ConfigError:
    try:
        return load(path)
    except ConfigError as exc:
        return exc


def find_by_name(
    name: str,
    conflists: Iterable[tuple[str, NetworkConfigList | ConfigError]],
    singles: Iterable[tuple[str, PluginConf | ConfigError]],
    *,
    conf_dir: str,
) -> NetworkConfigList:
    """Go's look-up by name over files already loaded (or loaded lazily).

    ``conflists`` are the ``.conflist`` files in order, each loaded with
    ``strict=False`` (or the error loading it raised); ``singles`` the
    ``.conf``/``.json`` files in order.  The first list named ``name`` wins;
    then the first single-plugin file.  As in Go, a file of the kind being
    searched that could not be loaded ends the search with its error.
    :func:`load_network` runs this over the disk; ``cnitool ls`` runs it over
    a conf dir it has read once, so both answer the same.

    Raises:
        ConfigError: the file that stopped the search, or the found network
            is unusable.
        NetworkNotFoundError: no file has that name.
    """
    seen: list[str] = []
    for _path, conflist in conflists:
        if isinstance(conflist, ConfigError):
            raise ConfigError(conflist.file, conflist.path, conflist.problem, hint=conflist.hint or _SEARCH_HINT)
        if conflist.name == name:
            check_usable(conflist)
            return conflist
        seen.append(conflist.name)
    for _path, plugin in singles:
        if isinstance(plugin, ConfigError):
            raise ConfigError(plugin.file, plugin.path, plugin.problem, hint=plugin.hint or _SEARCH_HINT)
        if plugin.name == name:
            return conflist_from_plugin(plugin)
        seen.append(plugin.name)
    raise NetworkNotFoundError(conf_dir, name, seen=seen)


def load_network(conf_dir: str, name: str) -> NetworkConfigList:
    """Find network ``name`` in ``conf_dir`` as Go's ``LoadNetworkConf`` does.

    ``.conflist`` files first, then ``.conf``/``.json``; within each kind, the
    first file (in byte order) whose ``name`` matches.  As in Go, a file of
    the kind being searched that cannot be parsed ends the search with its
    error, whatever network it holds.  Files are read only as far as the
    search goes.

    Raises:
        ConfigError: the file that stopped the search, or the found network
            is unusable.
        NetworkNotFoundError: no file has that name.
    """
    conflists = ((path, _loaded_or_error(_load_conflist_loose, path)) for path in conf_files(conf_dir, (".conflist",)))
    singles = ((path, _loaded_or_error(load_plugin_file, path)) for path in conf_files(conf_dir, (".conf", ".json")))
    return find_by_name(name, conflists, singles, conf_dir=conf_dir)


def _load_conflist_loose(path: str) -> NetworkConfigList:
    return load_conflist_file(path, strict=False)
