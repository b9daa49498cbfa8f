"""Read-only snapshots of what plugins change, and their differences.

Used by :mod:`libcni_py.tools.trace.tracer` before and after every plugin call (and every
cache write of the runtime itself):

* **files**: every file, folder and symbolic link under some roots (the
  cache dir, ``/var/lib/cni``, the ``dataDir`` of a plugin's config), with
  size, mode and a digest of the content;
* **network**: links, addresses and routes (main table) of the current
  network namespace, or of a container's, read with pyroute2 on a worker
  thread that enters the namespace (:func:`libcni_py.netns.run_in`);
* **iptables**: the rules and chains of the ``nat`` and ``filter`` tables,
  as ``iptables-save`` prints them.

Nothing here writes.  What the kernel does on its own, asynchronously, is
left out so that it is not blamed on a plugin: IPv6 link-local addresses
(``fe80::/10``) and the IPv6 link-local and multicast routes.  Importing
this module imports neither pyroute2 nor subprocess; the first network or
iptables snapshot does.

Snapshots are plain values; :func:`diff_files`, :func:`diff_net` and
:func:`diff_iptables` are pure and return :class:`Change` s.
"""

from __future__ import annotations

import hashlib
import os
import stat

from ..core.value import Value, fresh

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from typing import Any, TypeAlias

    FileInfo: TypeAlias = "tuple[str, int, int, str, bytes]"
    NetState: TypeAlias = (
        "tuple[dict[str, tuple[str, str, bool]], set[tuple[str, str]], set[tuple[int, str, str, str, str]]]"
    )

__all__ = [
    "Change",
    "diff_files",
    "diff_iptables",
    "diff_net",
    "net_snapshot",
    "iptables_snapshot",
    "snapshot_files",
    "watch_roots",
]

#: Files up to this size are hashed (larger ones are compared by size and mtime).
MAX_HASHED = 1024 * 1024
#: How much of a created or changed file's content a change carries.
CONTENT_KEPT = 512
#: Entries walked under one root, at most (a trace must not walk a whole disk).
MAX_ENTRIES = 200_000

_RTPROT = {0: "unspec", 1: "redirect", 2: "kernel", 3: "boot", 4: "static", 16: "dhcp", 186: "bgp", 188: "ospf"}


class Change(Value):
    """One thing that changed.

    Attributes:
        kind: ``file``, ``dir``, ``symlink``, ``link``, ``address``,
            ``route``, ``iptables-chain`` or ``iptables-rule``.
        change: ``created``/``changed``/``removed`` for files, folders and
            links on disk; ``added``/``removed``/``changed`` otherwise.
        where: a file's path; ``host`` or ``container`` for the network;
            the table (``nat``, ``filter``) for iptables.
        text: the thing itself, for a person (``eth0 10.22.0.2/24``).
        details: more, for tools (size, mode, content, link kind...).
    """

    kind: str
    change: str
    where: str
    text: str
    details: Mapping[str, Any] = fresh(dict)

    def _post_init(self) -> None:
        self._set(details=dict(self.details or {}))

    def to_json(self) -> dict[str, Any]:
        """As a JSON-ready dict (the ``changes`` of ``--trace-json``)."""
        return {"kind": self.kind, "change": self.change, "where": self.where, "text": self.text, **self.details}


# --------------------------------------------------------------------------
# files


def find_data_dirs(value: Any) -> list[str]:
    """Every string under a ``dataDir`` key anywhere in a decoded config."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "dataDir" and isinstance(item, str) and item:
                found.append(item)
            else:
                found.extend(find_data_dirs(item))
    elif isinstance(value, list):
        for item in value:
            found.extend(find_data_dirs(item))
    return found


def watch_roots(roots: Iterable[str]) -> tuple[str, ...]:
    """Absolute, normalised roots with those inside another root dropped."""
    clean = sorted({os.path.normpath(os.path.abspath(r)) for r in roots if r})
    out: list[str] = []
    for root in clean:
        if not any(root == o or root.startswith(o.rstrip("/") + "/") for o in out):
            out.append(root)
    return tuple(out)


def _file_info(path: str, st: os.stat_result) -> FileInfo:
    mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISLNK(st.st_mode):
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        return ("symlink", 0, mode, target, b"")
    if stat.S_ISDIR(st.st_mode):
        return ("dir", 0, mode, "", b"")
    if not stat.S_ISREG(st.st_mode):
        return ("other", st.st_size, mode, "", b"")
    if st.st_size > MAX_HASHED:
        return ("file", st.st_size, mode, f"mtime:{st.st_mtime_ns}", b"")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return ("file", st.st_size, mode, f"unreadable:{st.st_mtime_ns}", b"")
    try:
        chunks = []
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    except OSError:
        return ("file", st.st_size, mode, f"unreadable:{st.st_mtime_ns}", b"")
    finally:
        os.close(fd)
    data = b"".join(chunks)
    return ("file", len(data), mode, hashlib.blake2b(data, digest_size=16).hexdigest(), data[:CONTENT_KEPT])


def snapshot_files(roots: Sequence[str]) -> dict[str, FileInfo]:
    """Every entry under ``roots`` (the roots included; symbolic links not
    followed): ``path -> (kind, size, mode, digest, first bytes)``."""
    out: dict[str, FileInfo] = {}
    for root in roots:
        try:
            out[root] = _file_info(root, os.lstat(root))
        except OSError:
            continue
        if out[root][0] != "dir":
            continue
        stack = [root]
        walked = 0
        while stack and walked < MAX_ENTRIES:
            directory = stack.pop()
            try:
                entries = list(os.scandir(directory))
            except OSError:
                continue
            for entry in entries:
                walked += 1
                try:
                    info = _file_info(entry.path, entry.stat(follow_symlinks=False))
                except OSError:
                    continue
                out[entry.path] = info
                if info[0] == "dir":
                    stack.append(entry.path)
    return out


def _content(head: bytes, size: int) -> str | None:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text + ("..." if size > len(head) else "")


def diff_files(before: Mapping[str, FileInfo], after: Mapping[str, FileInfo]) -> list[Change]:
    """What was created, changed or removed between two snapshots (sorted by path)."""
    out: list[Change] = []
    for path in sorted(set(before) | set(after)):
        old, new = before.get(path), after.get(path)
        if old == new:
            continue
        if new is None:
            assert old is not None
            out.append(Change(kind=old[0], change="removed", where=path, text=path))
            continue
        if old is None:
            change = "created"
        elif old[0] != new[0]:
            out.append(Change(kind=old[0], change="removed", where=path, text=path))
            change = "created"
        elif old[1:4] == new[1:4]:
            continue  # same size, mode and content
        else:
            change = "changed"
        kind, size, mode, digest, head = new
        details: dict[str, Any] = {"path": path, "mode": f"{mode:04o}"}
        text = path
        if kind == "file":
            details["size"] = size
            details["content"] = _content(head, size)
            text += f" ({size} bytes, {mode:04o})"
        elif kind == "symlink":
            details["target"] = digest
            text += f" -> {digest}"
        out.append(Change(kind=kind, change=change, where=path, text=text, details=details))
    return out


# --------------------------------------------------------------------------
# network


def _read_net() -> NetState:
    from pyroute2 import IPRoute

    links: dict[str, tuple[str, str, bool]] = {}
    addresses: set[tuple[str, str]] = set()
    routes: set[tuple[int, str, str, str, str]] = set()
    with IPRoute() as ipr:
        raw = list(ipr.get_links())
        names = {link["index"]: link.get_attr("IFLA_IFNAME") for link in raw}
        for link in raw:
            info = link.get_attr("IFLA_LINKINFO")
            kind = (info.get_attr("IFLA_INFO_KIND") if info else None) or ""
            master = link.get_attr("IFLA_MASTER")
            links[names[link["index"]]] = (
                kind,
                names.get(master, str(master)) if master else "",
                bool(link["flags"] & 1),
            )
        for addr in ipr.get_addr():
            value = addr.get_attr("IFA_ADDRESS") or addr.get_attr("IFA_LOCAL")
            if not value or value.lower().startswith(("fe8", "fe9", "fea", "feb")):
                continue  # IPv6 link-local: the kernel's, asynchronously
            addresses.add((names.get(addr["index"], str(addr["index"])), f"{value}/{addr['prefixlen']}"))
        for family in (2, 10):
            for route in ipr.get_routes(family=family, table=254):
                dst = route.get_attr("RTA_DST") or ("0.0.0.0" if family == 2 else "::")  # noqa: S104 - a route, not a bind
                prefix = f"{dst}/{route['dst_len']}"
                if family == 10 and (prefix == "fe80::/64" or dst.lower().startswith("ff")):
                    continue  # the kernel's, when a link comes up
                gateway = route.get_attr("RTA_GATEWAY") or ""
                oif = route.get_attr("RTA_OIF")
                dev = names.get(oif, str(oif)) if oif else ""
                proto = _RTPROT.get(route["proto"], str(route["proto"]))
                routes.add((4 if family == 2 else 6, prefix, gateway, dev, proto))
    return links, addresses, routes


def net_snapshot(netns_path: str = "") -> NetState:
    """Links, addresses and routes of this namespace, or of the namespace at
    ``netns_path`` (read from a worker thread inside it).

    Raises:
        NetnsError: the namespace cannot be entered.
        OSError: netlink failed.
    """
    if not netns_path:
        return _read_net()
    from ..netns import run_in

    return run_in(netns_path, _read_net)


def diff_net(before: NetState, after: NetState, where: str) -> list[Change]:
    """Links, addresses and routes added, removed or changed."""
    out: list[Change] = []
    links_b, addr_b, routes_b = before
    links_a, addr_a, routes_a = after

    def link_text(name: str, value: tuple[str, str, bool]) -> str:
        kind, master, up = value
        parts = [kind or "device"]
        if master:
            parts.append(f"master {master}")
        parts.append("up" if up else "down")
        return f"{name} ({', '.join(parts)})"

    for name in sorted(set(links_b) | set(links_a)):
        old, new = links_b.get(name), links_a.get(name)
        if old == new:
            continue
        change = "added" if old is None else "removed" if new is None else "changed"
        value = new if new is not None else old
        assert value is not None
        details = {"name": name, "linkKind": value[0] or None, "master": value[1] or None, "up": value[2]}
        out.append(Change(kind="link", change=change, where=where, text=link_text(name, value), details=details))
    for ifname, address in sorted(addr_a - addr_b):
        out.append(
            Change(
                kind="address",
                change="added",
                where=where,
                text=f"{ifname} {address}",
                details={"ifname": ifname, "address": address},
            )
        )
    for ifname, address in sorted(addr_b - addr_a):
        out.append(
            Change(
                kind="address",
                change="removed",
                where=where,
                text=f"{ifname} {address}",
                details={"ifname": ifname, "address": address},
            )
        )
    for change, items in (("added", routes_a - routes_b), ("removed", routes_b - routes_a)):
        for family, dst, gateway, dev, proto in sorted(items):
            text = dst + (f" via {gateway}" if gateway else "") + (f" dev {dev}" if dev else "")
            if proto not in {"boot", "static"}:
                text += f" proto {proto}"
            out.append(
                Change(
                    kind="route",
                    change=change,
                    where=where,
                    text=text,
                    details={
                        "family": family,
                        "dst": dst,
                        "gateway": gateway or None,
                        "dev": dev or None,
                        "proto": proto,
                    },
                )
            )
    return out


# --------------------------------------------------------------------------
# iptables

IPTABLES_TABLES = ("nat", "filter")


def find_iptables_save(env: Mapping[str, str]) -> str | None:
    """``iptables-save`` as the plugins would find ``iptables`` (their PATH),
    else on the usual system directories."""
    import shutil

    path = env.get("PATH") or ""
    found = shutil.which("iptables-save", path=path) if path else None
    return found or shutil.which("iptables-save", path="/usr/sbin:/sbin:/usr/bin:/bin")


def iptables_snapshot(binary: str) -> dict[str, list[str]]:
    """The chains (``:NAME POLICY``, counters dropped) and rules (``-A ...``)
    of the ``nat`` and ``filter`` tables.

    Raises:
        OSError: it could not be run or failed.
    """
    import subprocess

    out: dict[str, list[str]] = {}
    for table in IPTABLES_TABLES:
        proc = subprocess.run([binary, "-t", table], capture_output=True, text=True, check=False, timeout=30)
        if proc.returncode != 0:
            raise OSError(f"{binary} -t {table}: exit status {proc.returncode}: {proc.stderr.strip()[:200]}")
        lines = []
        for line in proc.stdout.splitlines():
            if line.startswith(":"):
                lines.append(line.rsplit(" [", 1)[0])
            elif line.startswith("-A "):
                lines.append(line)
        out[table] = lines
    return out


def diff_iptables(before: Mapping[str, Sequence[str]], after: Mapping[str, Sequence[str]]) -> list[Change]:
    """Chains and rules added or removed, per table, in ``iptables-save`` order."""
    from collections import Counter

    out: list[Change] = []
    for table in IPTABLES_TABLES:
        old, new = Counter(before.get(table, ())), Counter(after.get(table, ()))
        for change, lines, counts in (
            ("removed", before.get(table, ()), old - new),
            ("added", after.get(table, ()), new - old),
        ):
            left = dict(counts)
            for line in lines:
                if left.get(line, 0) <= 0:
                    continue
                left[line] -= 1
                kind = "iptables-chain" if line.startswith(":") else "iptables-rule"
                text = line
                if kind == "iptables-chain":
                    name, _, policy = line[1:].partition(" ")
                    text = name if policy in ("", "-") else f"{name} (policy {policy})"
                out.append(
                    Change(kind=kind, change=change, where=table, text=text, details={"table": table, "line": line})
                )
    return out
