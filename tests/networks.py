"""The root tests' networks, built in one place: names, subnets, host ports
and the conflists of Debian's bridge + host-local (+ tuning, portmap, ...).

A test asks for what it needs and gets values no other test of the run has::

    net = networks.bridge_network(tmp_path / "ipam", prefix="tdn", portmap=True)
    net.write(conf_dir)                 # 10-<name>.conflist
    net.subnet.gateway                  # "10.200.7.1"
    port = networks.host_port()         # for portMappings

**Why nothing can clash.**  Every value comes from a counter of this process
(:func:`unique`, :func:`subnet`, :func:`host_port`), so two tests of one run
never get the same bridge, subnet or port, whatever order pytest runs them
in -- no comment has to say which test "owns" ``10.243.1-19`` any more.  Two
runs on one machine (two checkouts, two helpers, a CI job beside a
developer) reuse the same counters, and that is safe because of where the
values live:

* bridges, the veths' host ends, the routes of a subnet, iptables rules and
  portmap's host ports all live in the run's **node namespace**
  (``tests/sandbox.py``): each pytest process moves into a network namespace
  of its own before the first test, so another run's ``10.200.7.0/24`` on
  another bridge is in another kernel network stack and never meets ours;
* the only names that are machine-wide are the files under
  ``/var/run/netns`` (pod and node namespaces).  Those are made with
  :func:`unique`, whose names carry :data:`RUN_ID`, a random token drawn
  once per process -- not the pid, which another PID namespace (a container,
  a CI sandbox) or a later run can have too.

So the allocator is per process on purpose: a test must not hand one of
these values to a subprocess that allocates more from a fresh counter.

The pool is ``10.200.0.0/13`` (2,048 ``/24`` blocks; IPv6 ``fd00:200:<n>::/64``
per block), clear of the addresses that examples and Go fixtures spell out
(the Flannel walkthrough's ``10.244.0.0/16``).  Host ports come from
``20000`` up.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import secrets
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# --------------------------------------------------------------------------
# names


def _token(length: int = 5) -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


#: This process's run token: in every name :func:`unique` makes, so names made
#: by two runs differ even when their pids are equal.
RUN_ID = _token()

_names = itertools.count(1)


def unique(prefix: str) -> str:
    """A name unique to this run (up to 4 prefix characters fit a 15-byte
    interface name: prefix + 5-character run token + ``x`` + counter)."""
    return f"{prefix}{RUN_ID}x{next(_names)}"


# --------------------------------------------------------------------------
# subnets and ports

POOL = ipaddress.IPv4Network("10.200.0.0/13")
_blocks = itertools.count(1)  # block 0 stays unused: MACs and the like derived from it are never all zero
_ports = itertools.count(20000)


@dataclass(frozen=True)
class Subnet:
    """An IPv4 subnet handed to one test, and the IPv6 ``/64`` of its block.

    Attributes:
        index: the block's number in the pool (unique in the run).
        cidr: ``"10.200.7.0/24"``.
        v6: ``"fd00:200:7::/64"``.
    """

    index: int
    cidr: str
    v6: str

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.cidr)

    def host(self, n: int) -> str:
        """The ``n``-th address of the subnet, without a prefix length."""
        return str(self.network.network_address + n)

    def address(self, n: int) -> str:
        """The ``n``-th address with the subnet's prefix length (``10.200.7.2/24``)."""
        return f"{self.host(n)}/{self.network.prefixlen}"

    def contains(self, address: str) -> bool:
        """True if ``address`` (``10.200.7.2`` or ``10.200.7.2/24``) is in the subnet."""
        return ipaddress.ip_interface(address).ip in self.network

    @property
    def gateway(self) -> str:
        """The first address: what bridge's ``isGateway`` puts on the bridge."""
        return self.host(1)

    def host6(self, n: int) -> str:
        """The ``n``-th address of the IPv6 block with its ``/64``."""
        return f"{ipaddress.IPv6Network(self.v6).network_address + n}/64"


def subnet(prefixlen: int = 24) -> Subnet:
    """A subnet no other test of this run has (see the module docstring).

    ``/24`` or larger blocks are aligned in the pool; a smaller one
    (``/29``) takes a whole ``/24`` block and is its first part.
    """
    blocks = 1 << max(0, 24 - prefixlen)
    index = next(_blocks)
    while index % blocks:
        index = next(_blocks)
    for _ in range(blocks - 1):
        next(_blocks)
    base = POOL.network_address + (index << 8)
    if base + (blocks << 8) - 1 > POOL.broadcast_address:
        raise RuntimeError(f"tests/networks.py: the subnet pool {POOL} is used up; widen POOL")
    net = ipaddress.IPv4Network(f"{base}/{prefixlen}")
    return Subnet(index=index, cidr=str(net), v6=f"fd00:200:{index:x}::/64")


_new_subnet = subnet  # for the functions with a ``subnet`` parameter


def host_port() -> int:
    """A host port no other portmap attachment of this run uses."""
    return next(_ports)


def port_mappings(port: int, container_port: int = 80) -> dict[str, Any]:
    """The ``portMappings`` capability argument for one TCP port."""
    return {"portMappings": [{"hostPort": port, "containerPort": container_port, "protocol": "tcp"}]}


# --------------------------------------------------------------------------
# plugin sections


#: portmap, with its capability declared (a fresh dict each time it is used).
def portmap() -> dict[str, Any]:
    """The portmap plugin with the ``portMappings`` capability."""
    return {"type": "portmap", "capabilities": {"portMappings": True}}


def tuning(data_dir: Path, *, mtu: int | None = 1400, **extra: Any) -> dict[str, Any]:
    """Debian's tuning (``mtu``: it saves the old one in ``data_dir``, which
    a leak check can see)."""
    doc: dict[str, Any] = {"type": "tuning"}
    if mtu is not None:
        doc["mtu"] = mtu
    return doc | {"dataDir": str(data_dir)} | extra


def host_local(
    *subnets: str,
    data_dir: Path | None,
    routes: list[dict[str, str]] | None = None,
    ranges: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    """host-local IPAM: one ``subnet`` (or with ``ranges``, a range set per
    subnet), the test's ``dataDir`` (None: the plugin's default, for a node
    of its own), optional ``routes`` and other keys (``rangeStart``...)."""
    ipam: dict[str, Any] = {"type": "host-local"}
    if ranges:
        ipam["ranges"] = [[{"subnet": s}] for s in subnets]
    else:
        (only,) = subnets
        ipam["subnet"] = only
    if data_dir is not None:
        ipam["dataDir"] = str(data_dir)
    if routes is not None:
        ipam["routes"] = [dict(route) for route in routes]  # never the caller's (or DEFAULT_ROUTE) itself
    return ipam | extra


#: The route host-local hands out to make the bridge the pod's gateway.
DEFAULT_ROUTE = [{"dst": "0.0.0.0/0"}]


def bridge(
    name: str, ipam: dict[str, Any], *, gateway: bool = True, masq: bool = False, **extra: Any
) -> dict[str, Any]:
    """Debian's bridge plugin on bridge ``name`` (``isGateway``, ``ipMasq``
    written only when true, as the tests have always spelled them)."""
    doc: dict[str, Any] = {"type": "bridge", "bridge": name}
    if gateway:
        doc["isGateway"] = True
    if masq:
        doc["ipMasq"] = True
    return doc | {"ipam": ipam} | extra


def conflist(name: str, plugins: list[dict[str, Any]], version: str = "1.0.0") -> dict[str, Any]:
    """A network configuration list."""
    return {"cniVersion": version, "name": name, "plugins": plugins}


# --------------------------------------------------------------------------
# the bridge network


@dataclass
class BridgeNet:
    """A bridge + host-local network of one test, and what it is made of.

    Build one with :func:`bridge_network`; :meth:`conflist` returns a fresh
    document each time (tests change and rewrite it).
    """

    name: str
    bridge: str
    subnet: Subnet
    data_dir: Path | None
    gateway: bool = True
    masq: bool = False
    default_route: bool = False
    portmap: bool = False
    tuning_dir: Path | None = None
    ranges: bool = False
    extra: list[dict[str, Any]] = field(default_factory=list)
    ipam_extra: dict[str, Any] = field(default_factory=dict)
    version: str = "1.0.0"

    def conflist(self) -> dict[str, Any]:
        """bridge (+ host-local), then tuning, portmap and ``extra`` as asked."""
        ipam = host_local(
            self.subnet.cidr,
            data_dir=self.data_dir,
            routes=DEFAULT_ROUTE if self.default_route else None,
            ranges=self.ranges,
            **self.ipam_extra,
        )
        plugins = [bridge(self.bridge, ipam, gateway=self.gateway, masq=self.masq)]
        if self.tuning_dir is not None:
            plugins.append(tuning(self.tuning_dir))
        if self.portmap:
            plugins.append(portmap())
        plugins.extend(json.loads(json.dumps(self.extra)))
        return conflist(self.name, plugins, self.version)

    def write(self, conf_dir: Path, filename: str | None = None) -> Path:
        """Write :meth:`conflist` into ``conf_dir`` (``10-<name>.conflist``)."""
        conf_dir.mkdir(parents=True, exist_ok=True)
        path = conf_dir / (filename or f"10-{self.name}.conflist")
        path.write_text(json.dumps(self.conflist()))
        return path


def bridge_network(
    data_dir: Path | None,
    *,
    prefix: str = "net",
    bridge_prefix: str = "br",
    prefixlen: int = 24,
    subnet: Subnet | None = None,
    **options: Any,
) -> BridgeNet:
    """A bridge + host-local network with a name, a bridge and a subnet of
    its own (a ``/prefixlen`` from :func:`subnet`, or ``subnet`` when the
    test took one first to spell its addresses).  ``options``: the other
    fields of :class:`BridgeNet`, such as ``masq=True, default_route=True,
    portmap=True, tuning_dir=..., extra=[...], ipam_extra={...}``."""
    return BridgeNet(
        name=unique(prefix),
        bridge=unique(bridge_prefix),
        subnet=subnet or _new_subnet(prefixlen),
        data_dir=data_dir,
        **options,
    )


def bridge_portmap(data_dir: Path, **options: Any) -> BridgeNet:
    """The network most root tests use: bridge as gateway with ipMasq,
    host-local with a default route, then portmap (``options`` override)."""
    return bridge_network(data_dir, **({"masq": True, "default_route": True, "portmap": True} | options))


def faults_chain(data_dir: Path, tuning_dir: Path, **options: Any) -> BridgeNet:
    """:func:`bridge_portmap` with tuning in between (``mtu`` 1400): each
    plugin leaves something a leak check can see (``tests/faults.py``)."""
    return bridge_portmap(data_dir, tuning_dir=tuning_dir, **options)
