"""Typed CNI results, their conversions between versions, and their JSON.

Two shapes exist:

* :class:`Result` -- spec 0.3.0 to 1.1.0 (``interfaces``, ``ips``,
  ``routes``, ``dns``; 0.3.x/0.4.0 IPs carry ``version`` "4"/"6");
* :class:`LegacyResult` -- spec 0.1.0/0.2.0 (``ip4``, ``ip6``, each with its
  own routes).

Parsing (:func:`parse`) and writing (:func:`to_json`) follow Go libcni's
types packages exactly, because the JSON of a result travels on: into the
next plugin's ``prevResult`` and into the cache file, both of which must be
byte-identical to Go's.  That means: unknown keys are dropped, keys match
case-insensitively as Go's decoder matches struct fields, addresses are
re-printed canonically, and fields are written in Go's struct order with
Go's ``omitempty`` rules (``dns`` is always written, ``{}`` when empty) --
except 1.0.0/1.1.0 results, which Go libcni 1.3.0 writes through a map:
sorted keys, and no ``dns`` when it is empty (1.1.2 wrote ``"dns": {}``).
Spec 1.1.0 adds route ``mtu``/``advmss``/``priority``/``table``/``scope`` and
interface ``mtu``/``socketPath``/``pciID``.  They are kept as the newest Go
libcni release (1.3.0) keeps them: the route fields at every version (Go's one
``types.Route`` serves all of them; only a conversion down to 0.1.0/0.2.0
drops them), the interface fields in 1.0.0 and 1.1.0 results (a 0.3.x/0.4.0
interface has no such fields, so a conversion to those drops them).  Go
libcni 1.1.2 dropped them all before 1.1.0; records it wrote simply lack them.

:func:`convert` reproduces Go's converter graph, including its errors ("no
converter ...", "cannot convert: no valid IP addresses").
"""

from __future__ import annotations

from ..errors import DecodeError, VersionError
from . import gojson, schema, version
from .gojson import Struct
from .value import Value

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any, TypeAlias

__all__ = [
    "DNS",
    "AnyResult",
    "IPConfig",
    "Interface",
    "LegacyIPConfig",
    "LegacyResult",
    "Result",
    "ResultError",
    "Route",
    "convert",
    "parse",
    "declared_version",
    "parse_bytes",
    "to_json",
    "to_json_bytes",
]


class ResultError(DecodeError):
    """A result that cannot be parsed or converted (code 6).

    Attributes:
        path: JSON path of the fault inside the result, or "".
    """

    def __init__(self, msg: str, *, path: str = "") -> None:
        self.path = path
        super().__init__(f"{path}: {msg}" if path else msg)


# --------------------------------------------------------------------------
# addresses, as Go's net package parses and prints them


def _ipaddress() -> Any:
    import ipaddress  # deferred: only results with addresses need it

    return ipaddress


def _plain_ipv4(text: str) -> bool:
    """True if ``text`` is an IPv4 address already in canonical form: four
    decimal parts 0-255 without leading zeros -- exactly the dotted quads
    that :mod:`ipaddress` accepts and prints back unchanged.  Results carry
    such addresses nearly always; recognising them here spares a one-shot
    CLI call the import of :mod:`ipaddress` (~3 ms)."""
    parts = text.split(".")
    if len(parts) != 4:
        return False
    for part in parts:
        if not (part.isascii() and part.isdigit() and len(part) <= 3) or (part[0] == "0" and part != "0"):
            return False
        if int(part) > 255:
            return False
    return True


def canonical_ip(text: str) -> str:
    """Parse an IP as Go's ``net.ParseIP`` and print it as ``IP.String()``.

    Raises:
        ValueError: not an IP address.
    """
    if "%" in text or "/" in text or not text.isascii():
        raise ValueError(f"invalid IP address {text!r}")
    if _plain_ipv4(text):
        return text
    ip = _ipaddress().ip_address(text)
    mapped = getattr(ip, "ipv4_mapped", None)
    return str(mapped if mapped is not None else ip)


def canonical_cidr(text: str) -> str:
    """Parse ``addr/prefix`` as Go's ``types.ParseCIDR`` (the host part is kept)
    and print it as ``net.IPNet.String()``.

    Raises:
        ValueError: not ``IP/prefix`` with a prefix that fits the address.
    """
    host, sep, prefix = text.partition("/")
    if not sep or not prefix.isascii() or not prefix.isdigit():
        raise ValueError(f"invalid CIDR address {text!r}")
    if "%" in host or not host.isascii():
        raise ValueError(f"invalid CIDR address {text!r}")
    bits = int(prefix)
    if _plain_ipv4(host):
        if bits > 32:
            raise ValueError(f"invalid CIDR address {text!r}")
        return f"{host}/{bits}"
    ip = _ipaddress().ip_address(host)
    if bits > ip.max_prefixlen:
        raise ValueError(f"invalid CIDR address {text!r}")
    mapped = getattr(ip, "ipv4_mapped", None)
    if mapped is not None:
        return f"{mapped}/{max(0, bits - 96)}"
    return f"{ip}/{bits}"


def is_ipv4(text: str) -> bool:
    """True if a canonical IP or CIDR string is IPv4 (Go's ``To4() != nil``)."""
    return ":" not in text


# --------------------------------------------------------------------------
# value types


class Interface(Value):
    """An interface a plugin created or configured."""

    name: str
    mac: str = ""
    sandbox: str = ""
    mtu: int = 0
    socket_path: str = ""
    pci_id: str = ""


class IPConfig(Value):
    """An address assigned by a plugin.

    ``address`` is ``IP/prefix`` with the host part kept; ``interface`` is an
    index into :attr:`Result.interfaces`; ``version`` ("4"/"6") exists in
    0.3.x/0.4.0 results only and is "" otherwise.
    """

    address: str
    gateway: str | None = None
    interface: int | None = None
    version: str = ""


class Route(Value):
    """A route; the fields after ``gw`` are spec 1.1 additions (0 / None = unset)."""

    dst: str
    gw: str | None = None
    mtu: int = 0
    advmss: int = 0
    priority: int = 0
    table: int | None = None
    scope: int | None = None


class DNS(Value):
    """Resolver settings."""

    nameservers: tuple[str, ...] = ()
    domain: str = ""
    search: tuple[str, ...] = ()
    options: tuple[str, ...] = ()


class Result(Value):
    """A result of spec 0.3.0 to 1.1.0."""

    cni_version: str
    interfaces: tuple[Interface, ...] = ()
    ips: tuple[IPConfig, ...] = ()
    routes: tuple[Route, ...] = ()
    dns: DNS = DNS()

    def _post_init(self) -> None:
        self._set(dns=self.dns if self.dns is not None else DNS())


class LegacyIPConfig(Value):
    """``ip4``/``ip6`` of a 0.1.0/0.2.0 result."""

    ip: str
    gateway: str | None = None
    routes: tuple[Route, ...] = ()


class LegacyResult(Value):
    """A result of spec 0.1.0/0.2.0."""

    cni_version: str
    ip4: LegacyIPConfig | None = None
    ip6: LegacyIPConfig | None = None
    dns: DNS = DNS()

    def _post_init(self) -> None:
        self._set(dns=self.dns if self.dns is not None else DNS())


AnyResult: TypeAlias = "Result | LegacyResult"

_FAMILY_VERSIONS = {
    "020": ("0.1.0", "0.2.0"),
    "040": ("0.3.0", "0.3.1", "0.4.0"),
    "100": ("1.0.0", "1.1.0"),
}


# --------------------------------------------------------------------------
# decoding, as Go's encoding/json fills the types' structs


_go_fields = gojson.struct_fields


_ROUTE = ("dst", "gw", "mtu", "advmss", "priority", "table", "scope")
_DNS = ("nameservers", "domain", "search", "options")
_IFACE = ("name", "mac", "sandbox", "mtu", "socketPath", "pciID")
_IFACE_040 = ("name", "mac", "sandbox")
_IP = ("version", "interface", "address", "gateway")


def _norm(value: Any, names: tuple[str, ...], nested: Mapping[str, tuple[str, ...]] = {}) -> Any:
    """``value`` with Go's field matching applied (non-objects unchanged, so
    that the schema check reports them)."""
    if not isinstance(value, dict):
        return value
    out = _go_fields(value, names)
    for key, sub in nested.items():
        item = out.get(key)
        if isinstance(item, list):
            out[key] = [_norm(x, sub) for x in item]
        elif key == "dns":
            out[key] = _norm(item, sub)
    return out


def _normalize(doc: Mapping[str, Any], fam: str) -> dict[str, Any]:
    if fam == "020":
        out = _go_fields(doc, ("cniVersion", "ip4", "ip6", "dns"))
        for key in ("ip4", "ip6"):
            if key in out:
                out[key] = _norm(out[key], ("ip", "gateway", "routes"), {"routes": _ROUTE})
        if "dns" in out:
            out["dns"] = _norm(out["dns"], _DNS)
        return out
    return _norm(  # type: ignore[no-any-return]
        doc,
        ("cniVersion", "interfaces", "ips", "routes", "dns"),
        {"interfaces": _IFACE if fam == "100" else _IFACE_040, "ips": _IP, "routes": _ROUTE, "dns": _DNS},
    )


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _int(value: Any) -> int:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


def _opt_int(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _ip(value: Any, path: str) -> str | None:
    if not isinstance(value, str) or value == "":
        return None
    try:
        return canonical_ip(value)
    except ValueError:
        raise ResultError(f"invalid IP address {value!r}", path=path) from None


def _cidr(value: Any, path: str) -> str:
    try:
        return canonical_cidr(value)
    except ValueError:
        raise ResultError(f"invalid CIDR address {value!r}", path=path) from None


def _dns(f: Any) -> DNS:
    if not isinstance(f, dict):
        return DNS()
    return DNS(
        nameservers=f.get("nameservers") or (),
        domain=_str(f.get("domain")),
        search=f.get("search") or (),
        options=f.get("options") or (),
    )


def _routes(value: Any, path: str) -> tuple[Route, ...]:
    return tuple(
        Route(
            dst=_cidr(f["dst"], f"{path}[{i}].dst"),
            gw=_ip(f.get("gw"), f"{path}[{i}].gw"),
            mtu=_int(f.get("mtu")),
            advmss=_int(f.get("advmss")),
            priority=_int(f.get("priority")),
            table=_opt_int(f.get("table")),
            scope=_opt_int(f.get("scope")),
        )
        for i, f in enumerate(value or ())
    )


def _build(f: Mapping[str, Any], fam: str) -> AnyResult:
    """Typed result from a normalised, schema-checked document."""
    if fam == "020":
        legacy: dict[str, LegacyIPConfig | None] = {"ip4": None, "ip6": None}
        for key in legacy:
            g = f.get(key)
            if isinstance(g, dict):
                legacy[key] = LegacyIPConfig(
                    ip=_cidr(g["ip"], key + ".ip"),
                    gateway=_ip(g.get("gateway"), key + ".gateway"),
                    routes=_routes(g.get("routes"), key + ".routes"),
                )
        return LegacyResult(
            cni_version=_str(f.get("cniVersion")),
            ip4=legacy["ip4"],
            ip6=legacy["ip6"],
            dns=_dns(f.get("dns")),
        )
    return Result(
        cni_version=_str(f.get("cniVersion")),
        interfaces=tuple(
            [
                Interface(
                    name=_str(g.get("name")),
                    mac=_str(g.get("mac")),
                    sandbox=_str(g.get("sandbox")),
                    # a 0.3.x/0.4.0 interface has no 1.1.0 fields in Go: dropped
                    mtu=_int(g.get("mtu")) if fam == "100" else 0,
                    socket_path=_str(g.get("socketPath")) if fam == "100" else "",
                    pci_id=_str(g.get("pciID")) if fam == "100" else "",
                )
                for g in f.get("interfaces") or ()
            ]
        ),
        ips=tuple(
            [
                IPConfig(
                    address=_cidr(g["address"], f"ips[{i}].address"),
                    gateway=_ip(g.get("gateway"), f"ips[{i}].gateway"),
                    interface=_opt_int(g.get("interface")),
                    version=_str(g.get("version")) if fam == "040" else "",
                )
                for i, g in enumerate(f.get("ips") or ())
            ]
        ),
        routes=_routes(f.get("routes"), "routes"),
        dns=_dns(f.get("dns")),
    )


def parse(doc: Any, result_version: str) -> AnyResult:
    """Parse a decoded result as Go's ``create.Create(version, bytes)`` does.

    Args:
        doc: the decoded JSON object.
        result_version: the version to parse it as (normally its own
            ``cniVersion``, or the config's when the result has none).

    Raises:
        ResultError: an unsupported version, a type error (with its JSON
            path), an invalid address, or a ``cniVersion`` inside the document
            that the version's type does not accept.
    """
    try:
        fam = version.family(result_version)
    except VersionError:
        raise ResultError(f'unsupported CNI result version "{result_version}"') from None
    if not isinstance(doc, dict):
        raise ResultError("expected a JSON object")
    normalized = _normalize(doc, fam)
    fault = schema.first_error(normalized, "result-" + fam)
    if fault is not None:
        raise ResultError(fault[1], path=fault[0])
    result = _build(normalized, fam)
    supported = _FAMILY_VERSIONS[fam]
    own = result.cni_version
    if fam == "020" and own == "":
        return result.replace(cni_version="0.1.0")
    if own not in supported:
        listed = " ".join(supported)
        raise ResultError(f'result type supports [{listed}] but unmarshalled CNIVersion is "{own}"')
    return result


def parse_bytes(data: bytes, result_version: str | None = None) -> AnyResult:
    """Decode and parse result JSON; the version defaults to its ``cniVersion``
    (Go's ``CreateFromBytes``: a missing version means 0.1.0)."""
    doc = gojson.loads(data)
    if not isinstance(doc, dict):
        raise ResultError("expected a JSON object")
    return parse(doc, declared_version(doc) if result_version is None else result_version)


def declared_version(doc: Mapping[str, Any]) -> str:
    """A result's own version as Go's ``create.DecodeVersion`` reads it (the key
    matched case-insensitively; missing or empty means 0.1.0)."""
    own = _go_fields(doc, ("cniVersion",)).get("cniVersion")
    return own if isinstance(own, str) and own else "0.1.0"


# --------------------------------------------------------------------------
# conversion between versions (Go's converter graph)


def _100_to_040(result: Result, to_version: str) -> Result:
    """Go's ``convertTo04x``: the interfaces lose their 1.1.0 fields, the
    routes keep theirs (``Route.Copy``)."""
    ips = [
        IPConfig(
            address=ip.address,
            gateway=ip.gateway,
            interface=ip.interface,
            version="4" if is_ipv4(ip.address) else "6",
        )
        for ip in result.ips
    ]
    return Result(
        cni_version=to_version,
        interfaces=tuple([Interface(name=i.name, mac=i.mac, sandbox=i.sandbox) for i in result.interfaces]),
        ips=tuple(ips),
        routes=result.routes,
        dns=result.dns,
    )


def _040_to_100(result: Result, to_version: str) -> Result:
    return Result(
        cni_version=to_version,
        interfaces=tuple([Interface(name=i.name, mac=i.mac, sandbox=i.sandbox) for i in result.interfaces]),
        ips=tuple([IPConfig(address=ip.address, gateway=ip.gateway, interface=ip.interface) for ip in result.ips]),
        routes=result.routes,
        dns=result.dns,
    )


def _020_to_040(result: LegacyResult, to_version: str) -> Result:
    ips: list[IPConfig] = []
    routes: list[Route] = []
    for ver, conf in (("4", result.ip4), ("6", result.ip6)):
        if conf is not None:
            ips.append(IPConfig(address=conf.ip, gateway=conf.gateway, version=ver))
            routes.extend(conf.routes)
    return Result(cni_version=to_version, ips=tuple(ips), routes=tuple(routes), dns=result.dns)


def _040_to_020(result: Result, to_version: str) -> LegacyResult:
    ip4: LegacyIPConfig | None = None
    ip6: LegacyIPConfig | None = None
    for ip in result.ips:
        if ip.version == "4" and ip4 is None:
            ip4 = LegacyIPConfig(ip=ip.address, gateway=ip.gateway)
        elif ip.version == "6" and ip6 is None:
            ip6 = LegacyIPConfig(ip=ip.address, gateway=ip.gateway)
        if ip4 is not None and ip6 is not None:
            break
    for route in result.routes:
        plain = Route(dst=route.dst, gw=route.gw)
        if is_ipv4(route.dst) and ip4 is not None:
            ip4 = ip4.replace(routes=(*ip4.routes, plain))
        elif not is_ipv4(route.dst) and ip6 is not None:
            ip6 = ip6.replace(routes=(*ip6.routes, plain))
    if ip4 is None and ip6 is None:
        raise ResultError("cannot convert: no valid IP addresses")
    return LegacyResult(cni_version=to_version, ip4=ip4, ip6=ip6, dns=result.dns)


def convert(result: AnyResult, to_version: str) -> AnyResult:
    """The result in another spec version, as Go's ``GetAsVersion``.

    Raises:
        ResultError: no conversion exists, or 0.1.0/0.2.0 was asked for a
            result without any IP address.
    """
    to_version = to_version or "0.1.0"
    from_version = result.cni_version
    if from_version == to_version:
        return result
    try:
        src, dst = version.family(from_version), version.family(to_version)
    except VersionError:
        raise ResultError(f"no converter for CNI result version {from_version} to {to_version}") from None
    if isinstance(result, LegacyResult):
        if dst == "020":
            return result.replace(cni_version=to_version)
        r040 = _020_to_040(result, "0.4.0" if dst == "100" else to_version)
        return r040 if dst == "040" else _040_to_100(r040, to_version)
    if src == "040":
        if dst == "040":
            return result.replace(cni_version=to_version)
        if dst == "100":
            return _040_to_100(result, to_version)
        return _040_to_020(result, to_version)
    # src == "100"
    if dst == "100":
        return result.replace(cni_version=to_version)
    r040 = _100_to_040(result, "0.4.0" if dst == "020" else to_version)
    return r040 if dst == "040" else _040_to_020(r040, to_version)


# --------------------------------------------------------------------------
# encoding, in Go's struct order with its omitempty rules


def _route_json(route: Route) -> Struct:
    """Go's ``types.Route`` marshalling (the same at every version in 1.3.0)."""
    out = Struct(dst=route.dst)
    if route.gw:
        out["gw"] = route.gw
    if route.mtu:
        out["mtu"] = route.mtu
    if route.advmss:
        out["advmss"] = route.advmss
    if route.priority:
        out["priority"] = route.priority
    if route.table is not None:
        out["table"] = route.table
    if route.scope is not None:
        out["scope"] = route.scope
    return out


def _dns_json(dns: DNS) -> Struct:
    out = Struct()
    if dns.nameservers:
        out["nameservers"] = list(dns.nameservers)
    if dns.domain:
        out["domain"] = dns.domain
    if dns.search:
        out["search"] = list(dns.search)
    if dns.options:
        out["options"] = list(dns.options)
    return out


def to_json(result: AnyResult) -> dict[str, Any]:
    """The result as Go libcni 1.3.0 marshals it: 0.x results as structs
    (field order, omitempty, ``"dns": {}`` always); 1.x results as a map
    (sorted keys, no ``dns`` when empty)."""
    out = Struct()
    if result.cni_version:
        out["cniVersion"] = result.cni_version
    if isinstance(result, LegacyResult):
        for key, conf in (("ip4", result.ip4), ("ip6", result.ip6)):
            if conf is not None:
                item = Struct(ip=conf.ip)
                if conf.gateway:
                    item["gateway"] = conf.gateway
                if conf.routes:
                    item["routes"] = [_route_json(r) for r in conf.routes]
                out[key] = item
        out["dns"] = _dns_json(result.dns)
        return out
    fam100 = result.cni_version in _FAMILY_VERSIONS["100"]
    fam040 = result.cni_version in _FAMILY_VERSIONS["040"]
    if result.interfaces:
        interfaces = []
        for iface in result.interfaces:
            # Go's 1.x Interface struct order: name, mac, mtu, sandbox, socketPath, pciID
            item = Struct(name=iface.name)
            if iface.mac:
                item["mac"] = iface.mac
            if fam100 and iface.mtu:
                item["mtu"] = iface.mtu
            if iface.sandbox:
                item["sandbox"] = iface.sandbox
            if fam100:
                if iface.socket_path:
                    item["socketPath"] = iface.socket_path
                if iface.pci_id:
                    item["pciID"] = iface.pci_id
            interfaces.append(item)
        out["interfaces"] = interfaces
    if result.ips:
        ips = []
        for ip in result.ips:
            item = Struct()
            if fam040:
                item["version"] = ip.version
            if ip.interface is not None:
                item["interface"] = ip.interface
            item["address"] = ip.address
            if ip.gateway:
                item["gateway"] = ip.gateway
            ips.append(item)
        out["ips"] = ips
    if result.routes:
        out["routes"] = [_route_json(r) for r in result.routes]
    dns = _dns_json(result.dns)
    if not fam100:
        out["dns"] = dns
        return out
    # Go libcni 1.3's 1.x Result.MarshalJSON goes through a map: every key
    # sorted, and "dns" left out when empty (1.1.2 wrote structs and "dns": {})
    if dns:
        out["dns"] = dns
    mapped: dict[str, Any] = _as_map(out)
    return mapped


def _as_map(value: Any) -> Any:
    """``value`` with every :class:`Struct` made a plain dict, which
    :mod:`gojson` writes with sorted keys, as Go writes a map."""
    if isinstance(value, dict):
        return {key: _as_map(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_as_map(item) for item in value]
    return value


def to_json_bytes(result: AnyResult, *, indent: str | None = None) -> bytes:
    """:func:`to_json` encoded as Go would (``indent="    "`` is ``Print()``)."""
    return gojson.dumps_bytes(to_json(result), indent=indent)


def as_dict(result: AnyResult) -> dict[str, Any]:
    """A plain-dict copy of :func:`to_json` (key order irrelevant)."""
    loaded: dict[str, Any] = gojson.loads(to_json_bytes(result))
    return loaded
