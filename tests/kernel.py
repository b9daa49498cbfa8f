"""Reading kernel network state for assertions (pyroute2, iptables-save).

Read-only helpers: links, addresses and routes of the current ("node")
namespace or of a named one, iptables rules of a table, host-local
reservations.  Named namespaces are opened with ``flags=0`` so that a typo
never creates one (pyroute2's default does).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pyroute2 import IPRoute, NetNS


@contextmanager
def _ipr(netns: str | None) -> Iterator[Any]:
    ipr = NetNS(netns, flags=0) if netns else IPRoute()
    try:
        yield ipr
    finally:
        ipr.close()


def links(netns: str | None = None) -> dict[str, dict[str, Any]]:
    """``{name: {"index", "kind", "master", "up", "mac", "mtu"}}``."""
    out: dict[str, dict[str, Any]] = {}
    with _ipr(netns) as ipr:
        for link in ipr.get_links():
            name = link.get_attr("IFLA_IFNAME")
            info = link.get_attr("IFLA_LINKINFO")
            kind = info.get_attr("IFLA_INFO_KIND") if info else None
            out[name] = {
                "index": link["index"],
                "kind": kind,
                "master": link.get_attr("IFLA_MASTER"),
                "up": bool(link["flags"] & 1),
                "mac": link.get_attr("IFLA_ADDRESS"),
                "mtu": link.get_attr("IFLA_MTU"),
            }
    return out


def addresses(netns: str | None = None) -> set[tuple[str, str]]:
    """``{(ifname, "addr/prefix")}`` (IPv6 link-local addresses left out)."""
    out: set[tuple[str, str]] = set()
    with _ipr(netns) as ipr:
        names = {link["index"]: link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}
        for addr in ipr.get_addr():
            value = addr.get_attr("IFA_ADDRESS")
            if value.startswith("fe80:"):
                continue
            out.add((names.get(addr["index"], "?"), f"{value}/{addr['prefixlen']}"))
    return out


def routes(netns: str | None = None, family: int = 2) -> set[tuple[str, str | None, str]]:
    """``{(dst/prefix, gateway, ifname)}`` of the main table."""
    out: set[tuple[str, str | None, str]] = set()
    with _ipr(netns) as ipr:
        names = {link["index"]: link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}
        for route in ipr.get_routes(family=family, table=254):
            dst = route.get_attr("RTA_DST") or ("0.0.0.0" if family == 2 else "::")
            out.add(
                (f"{dst}/{route['dst_len']}", route.get_attr("RTA_GATEWAY"), names.get(route.get_attr("RTA_OIF"), "?"))
            )
    return out


def iptables(table: str, binary: str = "iptables-save") -> list[str]:
    """The rules and chains of an iptables table, as iptables-save prints them."""
    proc = subprocess.run([binary, "-t", table], capture_output=True, text=True, check=True)
    return [line for line in proc.stdout.splitlines() if line.startswith(("-A", ":"))]


def reservations(data_dir: Path, network: str) -> list[str]:
    """host-local's reserved addresses for a network (one file per address)."""
    directory = data_dir / network
    if not directory.is_dir():
        return []
    return sorted(p.name for p in directory.iterdir() if p.name != "lock" and not p.name.startswith("last_reserved_ip"))


def table_routes(netns: str | None, table: int, family: int = 2) -> set[tuple[str, str | None, str]]:
    """``{(dst/prefix, gateway, ifname)}`` of routing table ``table`` (as
    :func:`routes` for the main table)."""
    out: set[tuple[str, str | None, str]] = set()
    with _ipr(netns) as ipr:
        names = {link["index"]: link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}
        for route in ipr.get_routes(family=family, table=table):
            if (route.get_attr("RTA_TABLE") or route["table"]) != table:
                continue
            dst = route.get_attr("RTA_DST") or ("0.0.0.0" if family == 2 else "::")
            gateway = route.get_attr("RTA_GATEWAY")
            out.add((f"{dst}/{route['dst_len']}", gateway, names.get(route.get_attr("RTA_OIF"), "?")))
    return out


def rules(netns: str | None = None, family: int = 2) -> set[tuple[int, str | None, int]]:
    """Policy routing rules: ``{(priority, "src/prefix" or None, table)}``."""
    out: set[tuple[int, str | None, int]] = set()
    with _ipr(netns) as ipr:
        for rule in ipr.get_rules(family=family):
            src = rule.get_attr("FRA_SRC")
            table = rule.get_attr("FRA_TABLE") or rule["table"]
            out.add((rule.get_attr("FRA_PRIORITY") or 0, f"{src}/{rule['src_len']}" if src else None, table))
    return out


def qdiscs(netns: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """Queueing disciplines per interface: ``{ifname: [{"kind", "handle",
    "parent", "rate", "burst"}]}`` (rate in bytes/s and burst in bytes for tbf)."""
    out: dict[str, list[dict[str, Any]]] = {}
    with _ipr(netns) as ipr:
        names = {link["index"]: link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}
        for qdisc in ipr.get_qdiscs():
            kind = qdisc.get_attr("TCA_KIND")
            entry: dict[str, Any] = {"kind": kind, "handle": qdisc["handle"], "parent": qdisc["parent"]}
            if kind == "tbf":
                params = qdisc.get_attr("TCA_OPTIONS").get_attr("TCA_TBF_PARMS")
                entry["rate"] = params["rate"]
                entry["burst"] = params["buffer"]
            out.setdefault(names.get(qdisc["index"], "?"), []).append(entry)
    return out


def sysctl(netns: str, key: str) -> str:
    """A sysctl's value as seen inside a named namespace (``net.ipv4...``)."""
    from libcni_py import netns as ns

    path = "/proc/sys/" + key.replace(".", "/")
    return ns.run_in(netns, lambda: Path(path).read_text().strip())


def all_iptables() -> list[str]:
    """Every rule and chain of the nat, filter and mangle tables, IPv4 and
    IPv6, each line prefixed with its binary and table."""
    out: list[str] = []
    for binary in ("iptables-save", "ip6tables-save"):
        for table in ("nat", "filter", "mangle"):
            out += [f"{binary} {table}: {line}" for line in iptables(table, binary)]
    return out
