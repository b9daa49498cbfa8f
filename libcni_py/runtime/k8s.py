"""Kubernetes conventions: what kubelet and the CRI runtimes hand CNI for a pod.

* ``CNI_ARGS``: ``IgnoreUnknown=1;K8S_POD_NAMESPACE=..;K8S_POD_NAME=..;
  K8S_POD_INFRA_CONTAINER_ID=..;K8S_POD_UID=..`` (containerd's
  ``toCNILabels``; ``IgnoreUnknown`` first, as kubelet's dockershim wrote it,
  so that plugins built on Go's ``types.LoadArgs`` ignore the K8S_ keys).
* Capability arguments (CONVENTIONS.md), each reaching only the plugins that
  declare it: ``portMappings`` (the pod spec's ``hostPort`` entries; entries
  without a host port are dropped, the protocol is lower case),
  ``bandwidth`` (rates in bits/s; a rate without a burst gets the burst
  containerd gives it, 2^32-1 bits; also read from the
  ``kubernetes.io/ingress-bandwidth`` / ``egress-bandwidth`` annotations),
  ``dns``, ``cgroupPath``, ``io.kubernetes.cri.pod-annotations`` and
  ``aliases`` go to every network of the pod, as containerd passes them;
  ``mac``, ``ips`` and ``ipRanges`` belong to one interface and come from
  that network's :class:`NetworkSelection`.

:func:`runtime_conf` turns a :class:`PodSpec` into the
:class:`~libcni_py.core.inputs.RuntimeConf` of one of the pod's networks.  Pure code.
"""

from __future__ import annotations

from ..core.inputs import RuntimeConf
from ..core.value import Value, fresh
from ..errors import ArgsError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

__all__ = [
    "BANDWIDTH_BURST_UNLIMITED",
    "Bandwidth",
    "DNSConfig",
    "IPRange",
    "NetworkSelection",
    "PodSpec",
    "PortMapping",
    "bandwidth_from_annotations",
    "capability_args",
    "cni_args",
    "parse_quantity",
    "runtime_conf",
]

#: The burst containerd passes with a rate taken from a pod annotation (math.MaxUint32).
BANDWIDTH_BURST_UNLIMITED = 2**32 - 1

INGRESS_ANNOTATION = "kubernetes.io/ingress-bandwidth"
EGRESS_ANNOTATION = "kubernetes.io/egress-bandwidth"
POD_ANNOTATIONS_CAPABILITY = "io.kubernetes.cri.pod-annotations"

_PROTOCOLS = ("tcp", "udp", "sctp")


class PortMapping(Value):
    """A host port forwarded to a container port (a pod spec ``hostPort``)."""

    host_port: int
    container_port: int
    protocol: str = "tcp"
    host_ip: str = ""

    def _post_init(self) -> None:
        proto = self.protocol.lower()
        if proto not in _PROTOCOLS:
            raise ArgsError(f"port mapping: protocol {self.protocol!r} is not one of {', '.join(_PROTOCOLS)}")
        for what, port in (("host port", self.host_port), ("container port", self.container_port)):
            if not 0 <= port <= 65535:
                raise ArgsError(f"port mapping: {what} {port} is not between 0 and 65535")
        self._set(protocol=proto)

    @classmethod
    def parse(cls, text: str) -> PortMapping:
        """``[HOSTIP:]HOST:CONTAINER[/PROTO]``, e.g. ``8080:80`` or ``127.0.0.1:8080:80/udp``.

        Raises:
            ArgsError: not in that form.
        """
        spec, _, proto = text.partition("/")
        parts = spec.split(":")
        if len(parts) < 2:
            raise ArgsError(f"port {text!r}: expected [HOSTIP:]HOST:CONTAINER[/PROTO], e.g. 8080:80/tcp")
        host_ip = ":".join(parts[:-2]).strip("[]")
        if not all(p.isascii() and p.isdigit() and len(p) <= 5 for p in parts[-2:]):
            raise ArgsError(f"port {text!r}: ports must be numbers from 0 to 65535 ([HOSTIP:]HOST:CONTAINER[/PROTO])")
        host_port, container_port = int(parts[-2]), int(parts[-1])
        return cls(host_port=host_port, container_port=container_port, protocol=proto or "tcp", host_ip=host_ip)

    def to_json(self) -> dict[str, Any]:
        """The ``portMappings`` entry (CONVENTIONS.md; ``hostIP`` only when set)."""
        out: dict[str, Any] = {
            "hostPort": self.host_port,
            "containerPort": self.container_port,
            "protocol": self.protocol,
        }
        if self.host_ip:
            out["hostIP"] = self.host_ip
        return out


class Bandwidth(Value):
    """Traffic shaping for the pod, in bits per second (rates) and bits (bursts);
    0 means no limit in that direction."""

    ingress_rate: int = 0
    ingress_burst: int = 0
    egress_rate: int = 0
    egress_burst: int = 0

    def _post_init(self) -> None:
        for name, value in (
            ("ingress rate", self.ingress_rate),
            ("ingress burst", self.ingress_burst),
            ("egress rate", self.egress_rate),
            ("egress burst", self.egress_burst),
        ):
            if value < 0:
                raise ArgsError(f"bandwidth: {name} {value} is negative")

    @classmethod
    def from_rates(cls, ingress: int = 0, egress: int = 0) -> Bandwidth:
        """Rates only; each rate gets containerd's burst (:data:`BANDWIDTH_BURST_UNLIMITED`)."""
        return cls(
            ingress_rate=ingress,
            ingress_burst=BANDWIDTH_BURST_UNLIMITED if ingress else 0,
            egress_rate=egress,
            egress_burst=BANDWIDTH_BURST_UNLIMITED if egress else 0,
        )

    @classmethod
    def parse(cls, text: str) -> Bandwidth:
        """``INGRESS[:EGRESS]`` in bits/s with Kubernetes quantity suffixes
        (``10M``, ``1Gi``); ``:5M`` limits egress only.

        Raises:
            ArgsError: not in that form.
        """
        ingress_text, _, egress_text = text.partition(":")
        ingress = parse_quantity(ingress_text, what="--bandwidth ingress") if ingress_text else 0
        egress = parse_quantity(egress_text, what="--bandwidth egress") if egress_text else 0
        if not ingress and not egress:
            raise ArgsError(f"bandwidth {text!r}: give INGRESS[:EGRESS] in bits/s, e.g. 10M:5M")
        return cls.from_rates(ingress, egress)

    def to_json(self) -> dict[str, int]:
        """The ``bandwidth`` capability argument (all four keys, as containerd sends them)."""
        return {
            "ingressRate": self.ingress_rate,
            "ingressBurst": self.ingress_burst,
            "egressRate": self.egress_rate,
            "egressBurst": self.egress_burst,
        }


class DNSConfig(Value):
    """The pod's resolver settings (the ``dns`` capability)."""

    servers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[str, ...] = ()

    def to_json(self) -> dict[str, list[str]]:
        """The ``dns`` capability argument."""
        return {"servers": list(self.servers), "searches": list(self.searches), "options": list(self.options)}


class IPRange(Value):
    """One range of an ``ipRanges`` set (host-local's ``ranges`` entry)."""

    subnet: str
    range_start: str = ""
    range_end: str = ""
    gateway: str = ""

    def to_json(self) -> dict[str, str]:
        """The range as CONVENTIONS.md writes it (empty fields left out)."""
        out = {"subnet": self.subnet}
        for key, value in (("rangeStart", self.range_start), ("rangeEnd", self.range_end), ("gateway", self.gateway)):
            if value:
                out[key] = value
        return out


class NetworkSelection(Value):
    """One network the pod asks for (Multus' "network selection element").

    Attributes:
        name: the network's name (the ``name`` inside its conf file).
        ifname: the interface inside the pod ("" = ``eth<index>``).
        mac, ips, ip_ranges: the per-interface capabilities ``mac``, ``ips``
            and ``ipRanges`` (one set of ranges per entry).
    """

    name: str
    ifname: str = ""
    mac: str = ""
    ips: tuple[str, ...] = ()
    ip_ranges: tuple[tuple[IPRange, ...], ...] = ()

    def _post_init(self) -> None:
        self._set(ip_ranges=tuple(tuple(s) for s in self.ip_ranges))

    @classmethod
    def parse(cls, text: str) -> NetworkSelection:
        """``NAME[:IFNAME]``, e.g. ``mynet`` or ``storage:eth1``.

        Raises:
            ArgsError: an empty name.
        """
        name, _, ifname = text.partition(":")
        if not name:
            raise ArgsError(f"network {text!r}: expected NAME[:IFNAME]")
        return cls(name=name, ifname=ifname)


class PodSpec(Value):
    """What the runtime knows about a pod that matters to its network.

    Attributes:
        namespace, name, uid: the pod's Kubernetes identity (CNI_ARGS).
        networks: the networks it asks for, in order; empty means the conf
            dir's default network(s).
        port_mappings, bandwidth, dns, cgroup_path, annotations, aliases: the
            pod-wide capability arguments (``bandwidth`` None: taken from the
            bandwidth annotations, if any).
        extra_args: more CNI_ARGS pairs, after the Kubernetes ones.
        extra_capabilities: more capability arguments (``infinibandGUID``,
            ``deviceID``, ...); they win over the ones above.
    """

    namespace: str = "default"
    name: str
    uid: str = ""
    networks: tuple[NetworkSelection, ...] = ()
    port_mappings: tuple[PortMapping, ...] = ()
    bandwidth: Bandwidth | None = None
    dns: DNSConfig | None = None
    cgroup_path: str = ""
    annotations: Mapping[str, str] = fresh(dict)
    aliases: tuple[str, ...] = ()
    extra_args: tuple[tuple[str, str], ...] = ()
    extra_capabilities: Mapping[str, Any] = fresh(dict)

    def _post_init(self) -> None:
        self._set(
            annotations=dict(self.annotations or {}),
            extra_args=tuple((k, v) for k, v in self.extra_args),
            extra_capabilities=dict(self.extra_capabilities or {}),
        )


# --------------------------------------------------------------------------
# conversions

# longest suffixes first, so that "Mi" is not read as "M"
_SUFFIXES = (
    ("Ki", 2**10),
    ("Mi", 2**20),
    ("Gi", 2**30),
    ("Ti", 2**40),
    ("Pi", 2**50),
    ("Ei", 2**60),
    ("k", 10**3),
    ("M", 10**6),
    ("G", 10**9),
    ("T", 10**12),
    ("P", 10**15),
    ("E", 10**18),
)


#: The largest quantity: Kubernetes quantities are int64 values.
MAX_QUANTITY = 2**63 - 1


def parse_quantity(text: str, *, what: str = "quantity") -> int:
    """A Kubernetes quantity as an integer: ``10M`` -> 10000000, ``1Ki`` -> 1024.

    Decimal (``k``, ``M``, ``G``, ``T``, ``P``, ``E``) and binary (``Ki`` ...
    ``Ei``) suffixes; a fraction is allowed where the result is whole
    (``1.5M``).

    Raises:
        ArgsError: anything else.
    """
    number, factor = text.strip(), 1
    for suffix, multiplier in _SUFFIXES:
        if number.endswith(suffix):
            number, factor = number[: -len(suffix)], multiplier
            break
    whole, dot, frac = number.partition(".")
    if not (whole.isascii() and whole.isdigit()) or (dot and not (frac.isascii() and frac.isdigit())):
        raise ArgsError(
            f"{what}: {text!r} is not a quantity", hint="e.g. 1000000, 10M, 1.5G or 512Ki (bits per second)"
        )
    if len(whole + frac) > 30:  # also keeps int() below its digit limit
        raise ArgsError(f"{what}: {text!r} is too large", hint=f"at most {MAX_QUANTITY} (bits per second)")
    scaled: int = int(whole + frac) * factor
    divisor: int = 10 ** len(frac)
    if scaled % divisor:
        raise ArgsError(f"{what}: {text!r} is not a whole number")
    if scaled // divisor > MAX_QUANTITY:
        raise ArgsError(f"{what}: {text!r} is too large", hint=f"at most {MAX_QUANTITY} (bits per second)")
    return scaled // divisor


def bandwidth_from_annotations(annotations: Mapping[str, str]) -> Bandwidth | None:
    """The bandwidth the ``kubernetes.io/ingress-bandwidth`` and
    ``kubernetes.io/egress-bandwidth`` annotations ask for (containerd's
    ``toCNIBandWidth``), or None when neither is set.

    Raises:
        ArgsError: an annotation that is not a quantity.
    """
    ingress_text = annotations.get(INGRESS_ANNOTATION)
    egress_text = annotations.get(EGRESS_ANNOTATION)
    if ingress_text is None and egress_text is None:
        return None
    ingress = parse_quantity(ingress_text, what=INGRESS_ANNOTATION) if ingress_text is not None else 0
    egress = parse_quantity(egress_text, what=EGRESS_ANNOTATION) if egress_text is not None else 0
    return Bandwidth.from_rates(ingress, egress)


def _arg_value(key: str, value: str) -> str:
    if any(ch in value for ch in ";=\0\n"):
        raise ArgsError(
            f"CNI_ARGS: {key} {value!r} contains ';', '=' or a control character",
            hint="such a value cannot be passed in CNI_ARGS",
        )
    return value


def cni_args(spec: PodSpec, container_id: str) -> tuple[tuple[str, str], ...]:
    """The pod's CNI_ARGS pairs (empty values are left out).

    Raises:
        ArgsError: a value that cannot travel in CNI_ARGS.
    """
    pairs: list[tuple[str, str]] = [("IgnoreUnknown", "1")]
    for key, value in (
        ("K8S_POD_NAMESPACE", spec.namespace),
        ("K8S_POD_NAME", spec.name),
        ("K8S_POD_INFRA_CONTAINER_ID", container_id),
        ("K8S_POD_UID", spec.uid),
        *spec.extra_args,
    ):
        if value:
            pairs.append((key, _arg_value(key, value)))
    return tuple(pairs)


def capability_args(spec: PodSpec, selection: NetworkSelection | None = None) -> dict[str, Any]:
    """The capability arguments of one of the pod's networks.

    Only what is set is included; each plugin later receives only the keys it
    declares (:func:`libcni_py.core.plugin_input.capability_split`).

    Raises:
        ArgsError: a bandwidth annotation that is not a quantity.
    """
    caps: dict[str, Any] = {}
    mappings = [m.to_json() for m in spec.port_mappings if m.host_port > 0]
    if mappings:
        caps["portMappings"] = mappings
    bandwidth = spec.bandwidth if spec.bandwidth is not None else bandwidth_from_annotations(spec.annotations)
    if bandwidth is not None:
        caps["bandwidth"] = bandwidth.to_json()
    if spec.dns is not None:
        caps["dns"] = spec.dns.to_json()
    if spec.cgroup_path:
        caps["cgroupPath"] = spec.cgroup_path
    if spec.annotations:
        caps[POD_ANNOTATIONS_CAPABILITY] = dict(spec.annotations)
    if spec.aliases:
        caps["aliases"] = list(spec.aliases)
    if selection is not None:
        if selection.mac:
            caps["mac"] = selection.mac
        if selection.ips:
            caps["ips"] = list(selection.ips)
        if selection.ip_ranges:
            caps["ipRanges"] = [[r.to_json() for r in ranges] for ranges in selection.ip_ranges]
    caps.update(spec.extra_capabilities)
    return caps


def runtime_conf(
    spec: PodSpec,
    *,
    container_id: str,
    netns: str,
    ifname: str,
    selection: NetworkSelection | None = None,
) -> RuntimeConf:
    """The :class:`~libcni_py.core.inputs.RuntimeConf` of one network of the pod.

    Raises:
        ArgsError: a value that cannot be passed (see :func:`cni_args`).
    """
    return RuntimeConf(
        container_id=container_id,
        netns=netns,
        ifname=ifname,
        args=cni_args(spec, container_id),
        capability_args=capability_args(spec, selection),
    )
