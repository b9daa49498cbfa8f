"""What the doctor reads from a node, and what it finds: value types only."""

from __future__ import annotations

from ...core.value import Value, fresh

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ...core.ownership import Owner
    from ...core.record import CacheRecord

__all__ = [
    "Facts",
    "Finding",
    "FlannelFact",
    "HostLink",
    "IptRule",
    "RecordFact",
    "Reservation",
]


class RecordFact(Value):
    """One cached attachment of any runtime, with what was probed about it.

    Attributes:
        file: the cache file's name (under ``results/``).
        record: the decoded record.
        netns: its namespace path (:func:`libcni_py.core.record.record_netns`).
        netns_state: :func:`libcni_py.netns.state` of it.
        owner: whose it looks like (:func:`libcni_py.core.ownership.owner_of`).
        flannel_saved: for a network whose first plugin is flannel, the file
            in which flannel saved its delegate's config ("" otherwise).
        flannel_saved_exists: whether that file exists.
    """

    file: str
    record: CacheRecord
    netns: str
    netns_state: str
    owner: Owner
    flannel_saved: str = ""
    flannel_saved_exists: bool = True


class Reservation(Value):
    """A host-local reservation file ``<dataDir>/<network>/<ip>``.

    Attributes:
        network: the network folder's name.
        path: the file.
        ip: the address reserved.
        container_id: the first line of the file.
        ifname: the second line ("" in host-local's older one-line form).
        age: seconds since the file was written.
    """

    network: str
    path: str
    ip: str
    container_id: str
    ifname: str
    age: float


class HostLink(Value):
    """A link of the node's namespace that is a port of a bridge.

    Attributes:
        name: its name.
        kind: ``veth`` and so on.
        master: the bridge it is a port of.
        peer_netnsid: the namespace id (in the node's namespace) of its veth
            peer, or -1 when its peer is in the node's namespace or unknown.
    """

    name: str
    kind: str
    master: str
    peer_netnsid: int = -1


class IptRule(Value):
    """One rule of ``iptables-save`` (``-A CHAIN ...``), or a chain (``spec`` empty, ``chain_only``).

    Attributes:
        family: ``"4"`` or ``"6"``.
        table: ``nat``, ``filter``...
        chain: the chain it is in (or the chain itself).
        spec: the rule's arguments after ``-A CHAIN``.
        chain_only: this stands for a chain declaration (``:CHAIN``).
    """

    family: str
    table: str
    chain: str
    spec: tuple[str, ...] = ()
    chain_only: bool = False

    def option(self, name: str) -> str:
        """The value after option ``name`` (``--comment``, ``-j``, ``-s``), or ""."""
        spec = self.spec
        for index, word in enumerate(spec[:-1]):
            if word == name:
                return spec[index + 1]
        return ""


class FlannelFact(Value):
    """A conf file whose chain starts with flannel, and the node state it relies on.

    Attributes:
        conf_file: the conf file's name.
        network: its network name.
        subnet_file: the subnet.env it reads.
        subnet_env: its variables (empty when missing).
        subnet_error: why it could not be read ("" when it could).
        bridge: the bridge its delegate uses (``cni0`` by default).
        bridge_exists: whether that bridge exists on the node.
        bridge_addrs: the bridge's IPv4 addresses, ``"a.b.c.d/n"``.
        bridge_ports: how many links are ports of it.
    """

    conf_file: str
    network: str
    subnet_file: str
    subnet_env: dict[str, str]
    subnet_error: str
    bridge: str
    bridge_exists: bool
    bridge_addrs: tuple[str, ...]
    bridge_ports: int


class Facts(Value):
    """Everything the doctor read from a node.

    Attributes:
        conf_problems: ``cnitool ls``'s problems of the conf dir.
        records: every usable cached attachment.
        damaged: ``(file, problem)`` of cache files that cannot be used.
        pods: container IDs of libcni_py's pod records.
        reservations: every host-local reservation found.
        live_addresses: address -> the live namespace that holds it.
        namespaces_read: whether every live namespace could be read (else
            an address not seen proves nothing).
        live_cnitool_ids: cnitool's container ID of each live named
            namespace -> its path (cnitool derives IDs from the path).
        stale_netns_files: files under the netns dir that are no longer namespaces.
        host_links: ports of bridges in the node's namespace.
        cni_bridges: bridges the conf dir and the records name.
        live_nsids: namespace ids (in the node's namespace) of live namespace files -> path.
        iptables: rules and chains of CNI's iptables chains.
        flannel: one per flannel conf file.
        live_sandboxes: what a CRI runtime lists (None: not asked).
        grace: seconds a reservation without a record must be old before it
            counts as leaked (an ADD may be between host-local and its record).
    """

    conf_problems: tuple[str, ...] = ()
    records: tuple[RecordFact, ...] = ()
    damaged: tuple[tuple[str, str], ...] = ()
    pods: frozenset[str] = frozenset()
    reservations: tuple[Reservation, ...] = ()
    live_addresses: dict[str, str] = fresh(dict)
    namespaces_read: bool = True
    live_cnitool_ids: dict[str, str] = fresh(dict)
    stale_netns_files: tuple[str, ...] = ()
    host_links: tuple[HostLink, ...] = ()
    cni_bridges: frozenset[str] = frozenset()
    live_nsids: dict[int, str] = fresh(dict)
    iptables: tuple[IptRule, ...] = ()
    flannel: tuple[FlannelFact, ...] = ()
    live_sandboxes: frozenset[str] | None = None
    grace: float = 60.0

    def _post_init(self) -> None:
        self._set(
            pods=frozenset(self.pods),
            cni_bridges=frozenset(self.cni_bridges),
            live_sandboxes=None if self.live_sandboxes is None else frozenset(self.live_sandboxes),
        )


class Finding(Value):
    """One problem on the node.

    Attributes:
        kind: ``conf``, ``record``, ``damaged-record``, ``reservation``,
            ``orphan-address``, ``veth``, ``iptables``, ``flannel-bridge``,
            ``flannel-subnet``, ``flannel-saved``, ``netns-file``.
        subject: what it is about (a file, an attachment, a link, a chain).
        cause: what is wrong and why, in a sentence.
        made_by: the program that made the leftover, as far as it can be
            told ("" when it cannot).
        fix: what to do, for a person.
        dead: proven dead by GC's rules: ``--fix`` carries out ``actions``.
        actions: what ``--fix`` does, in order: ``("gc", network,
            container_id, ifname)``, ``("unlink", path, container_id)``,
            ``("run", argv...)``, ``("netns-del", path)``.
    """

    kind: str
    subject: str
    cause: str
    made_by: str = ""
    fix: str
    dead: bool = False
    actions: tuple[tuple[str, ...], ...] = ()

    def _post_init(self) -> None:
        self._set(actions=tuple(tuple(a) for a in self.actions))

    def to_json(self) -> dict[str, object]:
        """The finding as JSON (keys in a stable order)."""
        return {
            "kind": self.kind,
            "subject": self.subject,
            "cause": self.cause,
            "madeBy": self.made_by or None,
            "fix": self.fix,
            "provenDead": self.dead,
            "actions": [list(a) for a in self.actions],
        }
