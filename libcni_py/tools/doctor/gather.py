"""Read a node into :class:`~.facts.Facts` (the doctor's I/O; nothing is changed).

Sources: the conf dir (through :mod:`libcni_py.tools.confdir_report`, what
``cnitool ls`` reads), the cache dir (every runtime's records, libcni_py's
pod records), host-local's data dirs, the namespaces (files under the netns
dir and every process's), the node's links and addresses (``ip -j``), CNI's
iptables chains (``iptables-save``, ``ip6tables-save``) and Flannel's
subnet.env.  A source that cannot be read leaves its facts empty, and where
that would make something look dead (a namespace that cannot be entered),
says so in the facts (``namespaces_read``), so that nothing is proven dead
by what was not seen.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

from ... import netns as netns_mod
from ...core import args as cni_args
from ...core.ownership import owner_of
from ...core.record import record_netns
from .facts import Facts, FlannelFact, HostLink, IptRule, RecordFact, Reservation

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterable, Sequence

    from ...core.netconf import NetworkConfigList
    from ...core.version import PluginInfo

__all__ = [
    "DEFAULT_FLANNEL_DATA_DIR",
    "DEFAULT_IPAM_DIR",
    "DEFAULT_SUBNET_ENV",
    "gather",
    "read_conf",
    "read_iptables",
    "read_links",
    "read_namespaces",
    "read_records",
    "read_reservations",
]

DEFAULT_IPAM_DIR = "/var/lib/cni/networks"
DEFAULT_SUBNET_ENV = "/run/flannel/subnet.env"
DEFAULT_FLANNEL_DATA_DIR = "/var/lib/cni/flannel"
_TIMEOUT = 30.0


def _run(argv: Sequence[str]) -> str | None:
    """Run a read-only tool; its stdout, or None when it cannot run or fails."""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout if proc.returncode == 0 else None


# --------------------------------------------------------------------------
# conf dir


def read_conf(
    conf_dir: str, plugin_path: Sequence[str], version_info: Callable[[str], PluginInfo] | None
) -> tuple[list[str], list[NetworkConfigList], list[tuple[str, NetworkConfigList]]]:
    """The conf dir's problems as ``cnitool ls`` states them (VERSION probes
    when ``version_info`` is given), its loadable networks, and ``(file,
    network)`` of each."""
    from .. import confdir_report

    listing = confdir_report.scan(conf_dir)
    statuses = confdir_report.resolve_plugins(confdir_report.chain_types(listing), plugin_path)
    if version_info is not None:
        statuses = confdir_report.probe_versions(statuses, version_info)
    report = confdir_report.analyse(listing, statuses)
    problems = list(report.problems)  # the notes (not the default network, podman's lock file) are no problem
    loaded = [(e.name, e.conflist) for e in listing.files if e.conflist is not None]
    return problems, [n for _, n in loaded], loaded


# --------------------------------------------------------------------------
# records


def read_records(
    cache_dir: str, *, flannel_data_dirs: dict[str, str] | None = None
) -> tuple[list[RecordFact], list[tuple[str, str]], list[str]]:
    """Every runtime's records in ``cache_dir`` with their namespaces probed,
    the damaged files, and libcni_py's pod records (container IDs).

    Args:
        flannel_data_dirs: network name -> flannel's ``dataDir`` for the
            conf dir's flannel networks (records of others are read from
            their cached config).
    """
    from ...core.record import PODS_FOLDER, cached_attachments
    from ...edges.recordstore import CacheStore
    from ...errors import CacheError

    store = CacheStore(cache_dir)
    try:
        records, damaged = cached_attachments(store.iter_files())
    except CacheError as exc:
        return [], [("results/", exc.problem)], []
    try:
        pods = store.names(folder=PODS_FOLDER)
    except CacheError:
        pods = []
    pod_ids = set(pods)
    states: dict[str, str] = {}
    out = []
    for record in records:
        path = record_netns(record)
        found = states.get(path)
        if found is None:
            found = states[path] = netns_mod.state(path)
        saved = ""
        exists = True
        if b'"flannel"' in record.config:
            data_dir = (flannel_data_dirs or {}).get(record.network) or _flannel_data_dir(record.config)
            if data_dir:
                saved = os.path.join(data_dir, record.container_id)
                exists = os.path.exists(saved)
        out.append(
            RecordFact(
                file=f"{record.network}-{record.container_id}-{record.ifname}",
                record=record,
                netns=path,
                netns_state=found,
                owner=owner_of(record.container_id, path, record.cni_args, pod_ids),
                flannel_saved=saved,
                flannel_saved_exists=exists,
            )
        )
    return out, damaged, pods


def _flannel_data_dir(config: bytes) -> str:
    """flannel's ``dataDir`` when the cached config's first plugin is flannel."""
    try:
        doc = json.loads(config)
    except ValueError:
        return ""
    plugins = doc.get("plugins") if isinstance(doc, dict) else None
    first = plugins[0] if isinstance(plugins, list) and plugins else doc
    if not isinstance(first, dict) or first.get("type") != "flannel":
        return ""
    data_dir = first.get("dataDir")
    return data_dir if isinstance(data_dir, str) and data_dir else DEFAULT_FLANNEL_DATA_DIR


# --------------------------------------------------------------------------
# host-local


def read_reservations(dirs: Iterable[str], now: float | None = None) -> list[Reservation]:
    """host-local's reservation files under each data dir (``<dir>/<network>/<ip>``)."""
    now = time.time() if now is None else now
    out = []
    seen: set[str] = set()
    for base in dirs:
        real = os.path.realpath(base)
        if real in seen:
            continue
        seen.add(real)
        try:
            networks = sorted(e.name for e in os.scandir(base) if e.is_dir(follow_symlinks=False))
        except OSError:
            continue
        for network in networks:
            folder = os.path.join(base, network)
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError:
                continue
            for entry in entries:
                name = entry.name
                if name == "lock" or name.startswith("last_reserved_ip") or ("." not in name and ":" not in name):
                    continue
                try:
                    with open(entry.path, "rb") as handle:
                        data = handle.read(4096)
                    age = now - entry.stat(follow_symlinks=False).st_mtime
                except OSError:
                    continue
                text = data.decode("utf-8", "replace")
                cid, _, ifname = text.partition("\n")
                out.append(
                    Reservation(
                        network=network,
                        path=entry.path,
                        ip=name,
                        container_id=cid.strip(),
                        ifname=ifname.strip(),
                        age=age,
                    )
                )
    return out


# --------------------------------------------------------------------------
# namespaces


def _addresses_in(path: str) -> list[str] | None:
    """The addresses of every interface in the namespace at ``path``, or None
    if it cannot be entered."""
    out = _run(["nsenter", f"--net={path}", "ip", "-j", "addr", "show"])
    if out is None:
        return None
    try:
        links = json.loads(out or "[]")
    except ValueError:
        return None
    return [
        f"{a.get('local')}|{link.get('ifname')}"
        for link in links
        for a in link.get("addr_info") or ()
        if a.get("local") and a.get("scope") != "host"
    ]


#: The inode of the host's (initial) PID namespace: fixed by the kernel (``PROC_PID_INIT_INO``).
HOST_PID_NAMESPACE = "pid:[4026531836]"


def in_host_pid_namespace() -> bool:
    """Whether this process sees every process of the node (a container
    without ``hostPID`` does not, nor the namespaces only they hold)."""
    try:
        return os.readlink("/proc/self/ns/pid") == HOST_PID_NAMESPACE
    except OSError:
        return False


def read_namespaces(
    netns_dir: str = netns_mod.NETNS_DIR,
) -> tuple[dict[str, str], bool, dict[str, str], list[str], dict[int, str]]:
    """What is alive: ``(address -> "IFNAME in namespace X", every namespace
    read, cnitool's ID of each live named namespace -> path, stale files
    under ``netns_dir``, nsid -> live named namespace)``."""
    try:
        own = os.stat("/proc/self/ns/net").st_ino
    except OSError:
        own = -1
    found: dict[int, str] = {}
    cnitool_ids: dict[str, str] = {}
    stale: list[str] = []
    complete = True
    try:
        names = sorted(os.listdir(netns_dir))
    except OSError:
        names = []
    for name in names:
        path = os.path.join(netns_dir, name)
        state = netns_mod.state(path)
        if state == "stale":
            stale.append(path)
            continue
        if state != "alive":
            complete = complete and state != "unknown"
            continue
        cnitool_ids[cni_args.cnitool_container_id(path)] = path
        if netns_dir == "/var/run/netns":  # cnitool resolves NAME and /run/netns/NAME too
            cnitool_ids[cni_args.cnitool_container_id(os.path.join("/run/netns", name))] = path
        try:
            found.setdefault(os.stat(path).st_ino, path)
        except OSError:
            complete = False
    if not in_host_pid_namespace():
        complete = False  # processes outside our PID namespace, and the namespaces they hold, are not seen
    try:
        # PID 1 is skipped: the init process is in the node's initial namespace,
        # where no pod lives (and some sandboxes refuse even root a look at it)
        pids = [p for p in os.listdir("/proc") if p.isdigit() and p != "1"]
    except OSError:
        pids, complete = [], False
    for pid in pids:
        path = f"/proc/{pid}/ns/net"
        try:
            inode = os.stat(path).st_ino
        except FileNotFoundError:
            continue  # the process exited
        except OSError:
            complete = False
            continue
        found.setdefault(inode, path)
    addresses: dict[str, str] = {}
    for inode, path in found.items():
        if inode == own:
            continue
        got = _addresses_in(path)
        if got is None:
            if netns_mod.state(path) == "alive":
                complete = False
            continue
        where = path if not path.startswith("/proc/") else f"the namespace of pid {path.split('/')[2]}"
        for item in got:
            address, _, ifname = item.partition("|")
            addresses.setdefault(address, f"{ifname} in {where}")
    nsids: dict[int, str] = {}
    listed = _run(["ip", "-j", "netns", "list"]) if netns_dir == "/var/run/netns" else None
    try:
        for item in json.loads(listed or "[]"):
            if isinstance(item, dict) and isinstance(item.get("id"), int):
                nsids[item["id"]] = os.path.join(netns_dir, str(item.get("name")))
    except ValueError:
        pass
    return addresses, complete, cnitool_ids, stale, nsids


# --------------------------------------------------------------------------
# links


def read_links() -> tuple[list[HostLink], dict[str, list[str]], set[str]]:
    """``(ports of bridges, IPv4 addresses of each link, bridges)`` of the
    node's namespace."""
    out = _run(["ip", "-j", "-d", "link", "show"])
    try:
        links = json.loads(out or "[]")
    except ValueError:
        links = []
    ports = []
    bridges = set()
    for link in links:
        kind = (link.get("linkinfo") or {}).get("info_kind", "")
        if kind == "bridge":
            bridges.add(link.get("ifname", ""))
        if link.get("master"):
            nsid = link.get("link_netnsid")
            ports.append(
                HostLink(
                    name=link.get("ifname", ""),
                    kind=kind,
                    master=link["master"],
                    peer_netnsid=nsid if isinstance(nsid, int) else -1,
                )
            )
    addrs: dict[str, list[str]] = {}
    out = _run(["ip", "-j", "-4", "addr", "show"])
    try:
        for link in json.loads(out or "[]"):
            for a in link.get("addr_info") or ():
                addrs.setdefault(link.get("ifname", ""), []).append(f"{a.get('local')}/{a.get('prefixlen')}")
    except ValueError:
        pass
    return ports, addrs, bridges


# --------------------------------------------------------------------------
# iptables


def parse_iptables_save(text: str, family: str) -> list[IptRule]:
    """CNI's chains and the rules that belong to containers (a comment CNI's
    plugins write, or a jump to a CNI chain) from ``iptables-save`` output."""
    import shlex

    out = []
    table = ""
    for line in text.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
        elif line.startswith(":CNI-"):
            out.append(IptRule(family=family, table=table, chain=line[1:].split()[0], chain_only=True))
        elif line.startswith("-A ") and ("CNI-" in line or 'name: \\"' in line or "name: " in line):
            try:
                words = shlex.split(line)
            except ValueError:
                continue
            out.append(IptRule(family=family, table=table, chain=words[1], spec=tuple(words[2:])))
    return out


def read_iptables() -> list[IptRule]:
    """CNI's chains and rules of IPv4 and IPv6 (an IPv6 tool that is missing: none)."""
    out = []
    for family, tool in (("4", "iptables-save"), ("6", "ip6tables-save")):
        if shutil.which(tool) is None:
            continue
        text = _run([tool])
        if text:
            out.extend(parse_iptables_save(text, family))
    return out


# --------------------------------------------------------------------------
# flannel and the whole


def _flannel_facts(
    loaded: Iterable[tuple[str, NetworkConfigList]],
    subnet_env: str,
    addrs: dict[str, list[str]],
    bridges: set[str],
    ports: Iterable[HostLink],
) -> list[FlannelFact]:
    out = []
    port_count: dict[str, int] = {}
    for link in ports:
        port_count[link.master] = port_count.get(link.master, 0) + 1
    for file, net in loaded:
        if not net.plugins or net.plugins[0].type != "flannel":
            continue
        raw = net.plugins[0].raw
        path = subnet_env or str(raw.get("subnetFile") or DEFAULT_SUBNET_ENV)
        env: dict[str, str] = {}
        error = ""
        try:
            with open(path, encoding="utf-8") as handle:
                for line in handle:
                    key, sep, value = line.strip().partition("=")
                    if sep:
                        env[key] = value
        except FileNotFoundError:
            error = "does not exist"
        except OSError as exc:
            error = f"cannot be read ({exc.strerror})"
        delegate = raw.get("delegate")
        bridge = str((delegate or {}).get("bridge") or "cni0") if isinstance(delegate, dict) else "cni0"
        out.append(
            FlannelFact(
                conf_file=file,
                network=net.name,
                subnet_file=path,
                subnet_env=env,
                subnet_error=error,
                bridge=bridge,
                bridge_exists=bridge in bridges,
                bridge_addrs=tuple(addrs.get(bridge, ())),
                bridge_ports=port_count.get(bridge, 0),
            )
        )
    return out


def _ipam_dirs(networks: Iterable[NetworkConfigList]) -> tuple[list[str], set[str], dict[str, str]]:
    """host-local data dirs, bridge names, and flannel data dirs the conf dir's networks name."""
    dirs: list[str] = []
    bridges: set[str] = set()
    flannel: dict[str, str] = {}
    for net in networks:
        for plugin in net.plugins:
            raw = plugin.raw
            if plugin.type == "bridge":
                bridges.add(str(raw.get("bridge") or "cni0"))
            if plugin.type == "flannel":
                flannel[net.name] = str(raw.get("dataDir") or DEFAULT_FLANNEL_DATA_DIR)
                delegate = raw.get("delegate")
                bridges.add(str(delegate.get("bridge") or "cni0") if isinstance(delegate, dict) else "cni0")
            for key in ("ipam",):
                ipam = raw.get(key)
                if isinstance(ipam, dict) and isinstance(ipam.get("dataDir"), str):
                    dirs.append(ipam["dataDir"])
    return dirs, bridges, flannel


def gather(
    *,
    conf_dir: str,
    plugin_path: Sequence[str],
    cache_dir: str,
    ipam_dirs: Sequence[str] = (),
    subnet_env: str = "",
    version_info: Callable[[str], PluginInfo] | None = None,
    live_sandboxes: Collection[str] | None = None,
    netns_dir: str = netns_mod.NETNS_DIR,
    kernel: bool = True,
    grace: float = 60.0,
) -> Facts:
    """Read the node.

    Args:
        ipam_dirs: host-local data dirs to read (default: /var/lib/cni/networks
            and every ``ipam.dataDir`` the conf dir names).
        subnet_env: Flannel's subnet.env (default: each flannel conf's
            ``subnetFile``, else /run/flannel/subnet.env).
        version_info: asks a plugin VERSION (None: not asked).
        kernel: read namespaces, links and iptables (False: files only,
            for benchmarks of the files' part).
    """
    problems, networks, loaded = read_conf(conf_dir, plugin_path, version_info)
    conf_dirs, bridges, flannel_dirs = _ipam_dirs(networks)
    records, damaged, pods = read_records(cache_dir, flannel_data_dirs=flannel_dirs)
    for fact in records:
        result = fact.record.result
        for iface in (result.get("interfaces") or ()) if isinstance(result, dict) else ():
            name = iface.get("name") if isinstance(iface, dict) else None
            if isinstance(name, str) and not iface.get("sandbox") and not name.startswith("veth"):
                bridges.add(name)
    dirs = list(ipam_dirs) or [DEFAULT_IPAM_DIR, *conf_dirs]
    reservations = read_reservations(dirs)
    if kernel:
        addresses, complete, ids, stale, nsids = read_namespaces(netns_dir)
        ports, addrs, node_bridges = read_links()
        rules = read_iptables()
    else:
        addresses, complete, ids, stale, nsids = {}, True, {}, [], {}
        ports, addrs, node_bridges, rules = [], {}, set(), []
    return Facts(
        conf_problems=tuple(problems),
        records=tuple(records),
        damaged=tuple(damaged),
        pods=frozenset(pods),
        reservations=tuple(reservations),
        live_addresses=addresses,
        namespaces_read=complete,
        live_cnitool_ids=ids,
        stale_netns_files=tuple(stale),
        host_links=tuple(ports),
        cni_bridges=frozenset(bridges),
        live_nsids=nsids,
        iptables=tuple(rules),
        flannel=tuple(_flannel_facts(loaded, subnet_env, addrs, node_bridges, ports)),
        live_sandboxes=None if live_sandboxes is None else frozenset(live_sandboxes),
        grace=grace,
    )
