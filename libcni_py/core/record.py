"""Attachment records of the result cache: their format, pure.

A record lives in ``<cacheDir>/results/<network>-<containerID>-<ifname>`` and
is Go libcni's ``cniCacheV1`` JSON, written in Go's field order::

    {"kind":"cniCacheV1","containerId":...,"config":<base64 of the conflist>,
     "ifName":...,"networkName":...,"netns":...,"cniArgs":[[k,v],...],
     "capabilityArgs":{...},"result":{...}}

``netns`` is written as libcni >= 1.2 writes it (GC needs it to DEL a stale
attachment).  ``cniArgs``, ``capabilityArgs`` and ``result`` are left out
when empty, as Go's ``omitempty`` does.

libcni_py also writes the record **before** the first plugin of an ADD runs
and after each plugin, so that a crash at any point leaves something a DEL or
GC can find.  Such records carry one more key, ``libcniPy``::

    "libcniPy": {"state": "adding", "done": 1, "plugins": 3}

with ``state`` "adding" (or "failed" after a plugin error), ``done`` the
number of plugins that succeeded, and ``result`` the last of their results
(absent before the first).  Go ignores unknown keys, so Go libcni can read,
list, CHECK (and fail) and DEL such records; the record written after the
last plugin has no ``libcniPy`` key and is byte-identical to Go's.

A DEL that could not run every plugin's DEL (a plugin missing or failing)
keeps the record, marked with what is left to delete::

    "libcniPy": {"state": "deleting", "done": 1, "plugins": 2,
                 "remaining": [{"index": 1, "type": "portmap"}]}

``remaining`` names the plugins (by their index in the record's ``config``)
whose DEL has not succeeded yet; the next DEL (or GC) runs only those, as
long as it runs with that same configuration.

A retried DEL whose plugins all succeed, but after which an interface the
result put in the pod's namespace is still there (a plugin that forgot its
state when its first DEL failed -- Flannel's plugin from v1.2.0 does: it
removes its saved delegate configuration even when the delegate's DEL
failed, and then answers every later DEL with success), keeps the record
and says what is left::

    "libcniPy": {"state": "deleting", "done": 1, "plugins": 2,
                 "remaining": [{"index": 0, "type": "flannel"}],
                 "leftover": ["eth0"]}

Reading falls back to the oldest format (a bare result) as Go does.
"""

from __future__ import annotations

import binascii
import os.path

from ..errors import CacheError, DecodeError, InvalidNameError
from . import gojson, names, schema
from .gojson import Struct
from .value import Value, fresh

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from typing import Any, TypeAlias

    # -- Pair types: two (str, str) pairs with different meanings -------------
    #: ``(container ID, ifname)``: an attachment of one known network (GC's
    #: list of attachments in use, ``--valid CID/IFNAME``).
    ContainerIfname: TypeAlias = tuple[str, str]
    #: ``(network, ifname)``: one attachment of a pod (the runtime layer).
    NetworkIfname: TypeAlias = tuple[str, str]

    from .inputs import RuntimeConf

__all__ = [
    "ATTACHMENT_LOCKS_FOLDER",
    "GC_LOCK_FOLDER",
    "PODS_FOLDER",
    "POD_LOCKS_FOLDER",
    "RESULTS_FOLDER",
    "TMP_FOLDER",
    "cache_path",
    "CACHE_KIND",
    "AttachmentKey",
    "CacheRecord",
    "DELETING",
    "Progress",
    "decode_record",
    "encode_record",
    "cached_attachments",
    "key_from_filename",
    "keys_from_filename",
    "owner",
    "record_netns",
    "runtime_conf",
    "shares_file",
]

CACHE_KIND = "cniCacheV1"

#: ``libcniPy.state`` of a record whose DEL did not run every plugin.
DELETING = "deleting"


class AttachmentKey(Value):
    """Which attachment a record is for: (network, container ID, ifname).

    The constructor validates all three names, so a key can always be turned
    into a path safely.
    """

    network: str
    container_id: str
    ifname: str

    def _post_init(self) -> None:
        names.check_network_name(self.network)
        names.check_container_id(self.container_id)
        names.check_ifname(self.ifname)

    @property
    def filename(self) -> str:
        """``<network>-<containerID>-<ifname>``, Go's cache file name."""
        return f"{self.network}-{self.container_id}-{self.ifname}"


class Progress(Value):
    """How far an ADD got -- ``done`` of ``plugins`` succeeded -- or, with
    ``state`` "deleting", which plugins a DEL has still to run.

    Attributes:
        state: "adding", "failed" (an ADD's plugin failed) or "deleting".
        done: plugins whose ADD (or, deleting, whose DEL) succeeded.
        plugins: the number of plugins in the chain.
        remaining: deleting: ``(index, type)`` of each plugin whose DEL has
            not succeeded yet (index into the record's configuration).
        leftover: deleting: interfaces of the pod's namespace that were
            still there after every plugin's DEL had succeeded.
    """

    state: str
    done: int
    plugins: int
    remaining: tuple[tuple[int, str], ...] = ()
    leftover: tuple[str, ...] = ()

    def _post_init(self) -> None:
        self._set(remaining=tuple((i, t) for i, t in self.remaining))

    def describe(self) -> str:
        """For a person: ``ADD under way: 1 of 3 plugins done``, or ``DEL
        unfinished: still to delete: portmap``."""
        if self.state == DELETING:
            left = ", ".join(t for _, t in self.remaining) or "nothing"
            if self.leftover:
                return f"DEL unfinished: still to delete: {left}; left in the namespace: {', '.join(self.leftover)}"
            return f"DEL unfinished: still to delete: {left}"
        how = "under way" if self.state == "adding" else self.state
        return f"ADD {how}: {self.done} of {self.plugins} plugins done"

    def to_json(self) -> dict[str, Any]:
        """The ``libcniPy`` marker as written (``remaining`` only when deleting)."""
        marker: dict[str, Any] = Struct(state=self.state, done=self.done, plugins=self.plugins)
        if self.state == DELETING:
            marker["remaining"] = [Struct(index=i, type=t) for i, t in self.remaining]
            if self.leftover:
                marker["leftover"] = list(self.leftover)
        return marker


class CacheRecord(Value):
    """A decoded attachment record.

    Attributes:
        container_id, ifname, network, netns: the attachment.
        config: the network configuration bytes it was added with.
        cni_args: the CNI_ARGS pairs it was added with.
        capability_args: the capability arguments it was added with.
        result: the cached result as a JSON map (None if there is none).
        progress: set while (or if) an ADD did not complete.
        legacy: the file held only a bare result (the pre-cniCacheV1 format).
    """

    container_id: str
    ifname: str
    network: str
    netns: str = ""
    config: bytes = b""
    cni_args: tuple[tuple[str, str], ...] = ()
    capability_args: Mapping[str, Any] = fresh(dict)
    result: Mapping[str, Any] | None = None
    progress: Progress | None = None
    legacy: bool = False

    def _post_init(self) -> None:
        self._set(cni_args=tuple((k, v) for k, v in self.cni_args), capability_args=dict(self.capability_args or {}))

    @property
    def complete(self) -> bool:
        """True when the ADD that wrote it finished (no progress marker)."""
        return self.progress is None

    def key(self) -> AttachmentKey:
        """The record's key.

        Raises:
            InvalidNameError: the record holds names that are not valid (a
                hostile or corrupted file): never build a path from them.
        """
        return AttachmentKey(network=self.network, container_id=self.container_id, ifname=self.ifname)


def encode_record(
    *,
    container_id: str,
    ifname: str,
    network: str,
    config: bytes,
    netns: str,
    cni_args: Sequence[tuple[str, str]],
    capability_args: Mapping[str, Any] | None,
    result: Mapping[str, Any] | None,
    progress: Progress | None = None,
) -> bytes:
    """The record's bytes, as Go's ``cacheAdd`` writes them.

    Args:
        result: the result as Go marshals it (a typed result through
            :func:`libcni_py.core.result.to_json`); written with sorted keys, as Go
            writes it after its map round trip.
        progress: for a record written while an ADD is under way.
    """
    record = Struct(
        kind=CACHE_KIND,
        containerId=container_id,
        config=binascii.b2a_base64(config, newline=False).decode("ascii"),
        ifName=ifname,
        networkName=network,
    )
    if netns:
        record["netns"] = netns
    if cni_args:
        record["cniArgs"] = [[k, v] for k, v in cni_args]
    if capability_args:
        record["capabilityArgs"] = dict(capability_args)
    if result:
        record["result"] = _plain(result)
    if progress is not None:
        record["libcniPy"] = progress.to_json()
    return gojson.dumps_bytes(record)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _go_base64(text: str) -> bytes | None:
    """Decode as Go decodes a ``[]byte`` field (StdEncoding; CR/LF ignored;
    padding exactly as long as needed), or None."""
    text = text.replace("\n", "").replace("\r", "")
    if len(text) % 4 or "=" in text.rstrip("="):
        return None
    if len(text) - len(text.rstrip("=")) > 2:
        return None
    try:
        return binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError):
        return None


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def decode_record(data: bytes, path: str) -> CacheRecord:
    """Decode a cache file.

    Args:
        data: the file's bytes.
        path: the file's path, for messages.

    Raises:
        CacheError: empty, truncated, not JSON, or neither a ``cniCacheV1``
            record nor a bare result.
    """
    if not data.strip():
        raise CacheError(path, "is empty (a crash while Go libcni wrote it leaves such files)")
    try:
        doc = gojson.loads(data)
    except DecodeError as exc:
        raise CacheError(path, f"is damaged: {exc.msg}") from None
    if not isinstance(doc, dict):
        raise CacheError(path, "is damaged: expected a JSON object")
    if doc.get("kind") != CACHE_KIND:
        if "cniVersion" in doc or "ips" in doc or "ip4" in doc or "interfaces" in doc:
            # the oldest format: the file is the bare result
            return CacheRecord(container_id="", ifname="", network="", result=doc, legacy=True)
        raise CacheError(path, f"is not a {CACHE_KIND} record (kind {doc.get('kind')!r})")
    fault = schema.first_error(doc, "cache")
    if fault is not None:
        raise CacheError(path, f"is damaged: {fault[0]}: {fault[1]}")
    config = _go_base64(doc.get("config") or "")
    if config is None:
        raise CacheError(path, "is damaged: config: not valid base64")
    progress = None
    marker = doc.get("libcniPy")
    if isinstance(marker, dict):
        progress = Progress(
            state=_str(marker.get("state")) or "adding",
            done=int(marker.get("done") or 0),
            plugins=int(marker.get("plugins") or 0),
            remaining=tuple([(int(r["index"]), r["type"]) for r in marker.get("remaining") or ()]),
            leftover=tuple([str(n) for n in marker.get("leftover") or () if isinstance(n, str)]),
        )
    return CacheRecord(
        container_id=_str(doc.get("containerId")),
        ifname=_str(doc.get("ifName")),
        network=_str(doc.get("networkName")),
        netns=_str(doc.get("netns")),
        config=config,
        cni_args=tuple([(k, v) for k, v in doc.get("cniArgs") or ()]),
        capability_args=doc.get("capabilityArgs") or {},
        result=doc.get("result") or None,
        progress=progress,
    )


def record_netns(record: CacheRecord) -> str:
    """The namespace path of a record's attachment, or "".

    The record's ``netns`` (libcni >= 1.2 and libcni_py write it); for
    records without one (Go libcni 1.1.2, so podman's and older containerd's)
    the first ``interfaces[].sandbox`` of the cached result, where the
    plugins reported the container side.
    """
    if record.netns:
        return record.netns
    result = record.result
    if not isinstance(result, dict):
        return ""
    for iface in result.get("interfaces") or ():
        if isinstance(iface, dict):
            sandbox = iface.get("sandbox")
            if isinstance(sandbox, str) and sandbox:
                return sandbox
    return ""


def owner(record: CacheRecord, key: AttachmentKey) -> str:
    """Whose record this is, when it is not ``key``'s: "" when it belongs to
    the attachment ``key`` names (or cannot tell: the oldest format holds no
    names), else a description of the attachment it holds.

    Cache file names are ``<network>-<containerID>-<ifname>`` and names may
    hold ``-``: container ``x`` with interface ``a-b`` and container ``x-a``
    with interface ``b`` share a file.  Reading a record therefore checks
    whose it is before using, replacing or removing it.
    """
    if record.legacy:
        return ""
    if (record.network, record.container_id, record.ifname) == (key.network, key.container_id, key.ifname):
        return ""
    return f"network {record.network!r}, container {record.container_id!r}, interface {record.ifname!r}"


def shares_file(record: CacheRecord, key: AttachmentKey) -> bool:
    """True when the record is another attachment's whose names make the
    same file name as ``key``'s (a real collision, not a misplaced file)."""
    return bool(owner(record, key)) and (f"{record.network}-{record.container_id}-{record.ifname}" == key.filename)


def key_or_none(record: CacheRecord) -> AttachmentKey | None:
    """The record's key, or None if its names are not valid."""
    try:
        return record.key()
    except InvalidNameError:
        return None


def runtime_conf(record: CacheRecord, *, netns: str | None = None) -> RuntimeConf:
    """The :class:`~libcni_py.core.inputs.RuntimeConf` an attachment was added
    with, from its record: what DEL (and GC's DEL) of it runs with.

    Args:
        netns: the namespace path to use instead of the recorded one (GC
            passes "" for a namespace that is no longer one; a pod teardown
            its own path when the record holds none).
    """
    from .inputs import RuntimeConf

    return RuntimeConf(
        container_id=record.container_id,
        netns=record.netns if netns is None else netns,
        ifname=record.ifname,
        args=record.cni_args,
        capability_args=record.capability_args,
    )


def key_from_filename(filename: str, *, network: str = "", container_id: str = "") -> AttachmentKey | None:
    """The attachment a cache file's name stands for, or None.

    The name is ``<network>-<containerID>-<ifname>`` and all three may hold
    ``-``, so a name alone can be split several ways; what the caller knows
    (``network``, ``container_id``) pins the split down.  Of the splits that
    give three valid names, the one taken is: the known parts where given;
    else the shortest network name (networks rarely hold ``-``) and the
    longest container ID (cnitool's IDs do; interface names rarely do).
    Used only for files whose content cannot be trusted (a damaged record):
    a usable record says whose it is itself.  What must not act on a guess
    (GC) asks :func:`keys_from_filename` for every split.
    """
    keys = keys_from_filename(filename, network=network, container_id=container_id, first_only=True)
    return keys[0] if keys else None


def keys_from_filename(
    filename: str, *, network: str = "", container_id: str = "", first_only: bool = False
) -> list[AttachmentKey]:
    """Every attachment a cache file's name can stand for, in the order
    :func:`key_from_filename` prefers them (``first_only``: stop at the first)."""
    found: list[AttachmentKey] = []
    dashes = [i for i, ch in enumerate(filename) if ch == "-"]
    firsts = dashes
    if network:
        firsts = [len(network)] if filename.startswith(network + "-") else []
    for first in firsts:
        if container_id:
            second = first + 1 + len(container_id)
            if filename[first + 1 : second] != container_id or filename[second : second + 1] != "-":
                continue
            seconds = [second]
        else:
            seconds = [i for i in reversed(dashes) if i > first + 1]
        for second in seconds:
            try:
                key = AttachmentKey(
                    network=filename[:first], container_id=filename[first + 1 : second], ifname=filename[second + 1 :]
                )
            except InvalidNameError:
                continue
            found.append(key)
            if first_only:
                return found
    return found


def cached_attachments(
    listing: Iterable[tuple[str, bytes | None, CacheError | None]], container_id: str = ""
) -> tuple[list[CacheRecord], list[tuple[str, str]]]:
    """Decode a listing of ``results/`` (Go's ``GetCachedAttachments``).

    Returns:
        ``(records, damaged)``: the usable ``cniCacheV1`` records (Go's
        filters: right kind, right container, ``ifName`` and ``networkName``
        present; and, stricter than Go, names that are valid and match the
        file's name, since DEL and GC build paths from them) and ``(file
        name, problem)`` for the files that could not be used.
    """
    records: list[CacheRecord] = []
    damaged: list[tuple[str, str]] = []
    for name, data, error in listing:
        if error is not None or data is None:
            damaged.append((name, error.problem if error else "is unreadable"))
            continue
        try:
            record = decode_record(data, name)
        except CacheError as exc:
            damaged.append((name, exc.problem))
            continue
        if record.legacy:
            continue
        if container_id and record.container_id != container_id:
            continue
        if not record.ifname or not record.network:
            damaged.append((name, "has no ifName or networkName"))
            continue
        key = key_or_none(record)
        if key is None:
            damaged.append((name, "holds names that are not valid"))
            continue
        if key.filename != name:
            damaged.append((name, f"holds the record of {key.filename}"))
            continue
        records.append(record)
    return records, damaged


# -- The cache dir layout ----------------------------------------------------
# The one owner of where things live below the cache dir (Go's ``CacheDir``,
# default /var/lib/cni).  Folders are path parts; the record store opens them
# part by part (never following a symbolic link), the rest only names them.

#: ``results/<network>-<containerID>-<ifname>``: records (Go's files, Go's names).
RESULTS_FOLDER = ("results",)
#: ``libcni_py/tmp/``: where new records are written before the rename.
TMP_FOLDER = ("libcni_py", "tmp")
#: ``libcni_py/locks/<network>-<containerID>-<ifname>``: one flock file per attachment.
ATTACHMENT_LOCKS_FOLDER = ("libcni_py", "locks")
#: ``libcni_py/pod-locks/<containerID>``: one flock file per pod (the runtime layer).
POD_LOCKS_FOLDER = ("libcni_py", "pod-locks")
#: ``libcni_py/gc-lock/lock``: shared by pod operations, exclusive for their GC.
GC_LOCK_FOLDER = ("libcni_py", "gc-lock")
#: ``libcni_py/pods/<containerID>``: pod records of the runtime layer.
PODS_FOLDER = ("libcni_py", "pods")


def cache_path(cache_dir: str, folder: tuple[str, ...], name: str = "") -> str:
    """``<cache_dir>/<folder...>/<name>`` (the folder itself when ``name`` is "")."""
    return os.path.join(cache_dir, *folder, name) if name else os.path.join(cache_dir, *folder)
