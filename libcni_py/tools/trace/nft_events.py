"""iptables changes as the kernel announces them: nf_tables notifications
(``NETLINK_NETFILTER``, group ``NFNLGRP_NFTABLES``) decoded from bytes.

Debian's ``iptables`` is ``iptables-nft``: each rule or chain it adds or
removes is an nf_tables object, and the kernel tells every listener, naming
the netlink port of the process that asked (for ``iptables``, its pid).  A
rule's text is not rebuilt from its expressions; its table, chain, handle
and comment (``-m comment``, kept in the rule's user data, where CNI plugins
put the container ID) say which it is.  Pure.
"""

from __future__ import annotations

import struct

from ...core.value import Value
from .net_events import _rtattrs
from .proc_events import _NLMSGHDR

NETLINK_NETFILTER = 12
NFNLGRP_NFTABLES = 7
NFNL_SUBSYS_NFTABLES = 10
_NEWTABLE, _DELTABLE, _NEWCHAIN, _DELCHAIN, _NEWRULE, _DELRULE, _NEWGEN = 0, 2, 3, 5, 6, 8, 15
_NLA = struct.Struct("=HH")
_FAMILIES = {1: "inet", 2: "ip", 7: "bridge", 10: "ip6"}

__all__ = ["NETLINK_NETFILTER", "NFNLGRP_NFTABLES", "NftEvent", "parse_nft"]


class NftEvent(Value):
    """One nf_tables notification about a table, chain or rule.

    Attributes:
        kind: ``iptables-table``, ``iptables-chain`` or ``iptables-rule``.
        change: ``added`` or ``removed``.
        table: ``ip nat``, ``ip6 filter``...
        text: one line (``rule in CNI-HOSTPORT-DNAT #12: dnat name: ...``).
        pid: the port of the process that asked (0 when not said).
    """

    kind: str
    change: str
    table: str
    text: str
    pid: int


def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def _comment(userdata: bytes) -> str:
    """The ``-m comment`` of a rule, from its user data (type 0 TLVs)."""
    at = 0
    while at + 2 <= len(userdata):
        kind, length = userdata[at], userdata[at + 1]
        if kind == 0:
            return _text(userdata[at + 2 : at + 2 + length])
        at += 2 + length
    return ""


def _match_comment(expressions: bytes) -> str:
    """The comment of an ``xt`` ``comment`` match among a rule's expressions
    (how iptables-nft keeps ``-m comment``), or ""."""
    for elem in _list(expressions):
        expr = _rtattrs(elem, 0, len(elem))
        if _text(expr.get(1, b"")) != "match":
            continue
        data = _rtattrs(expr.get(2, b""), 0, len(expr.get(2, b"")))
        if _text(data.get(1, b"")) == "comment":
            return _text(data.get(3, b""))
    return ""


def _list(data: bytes) -> list[bytes]:
    """The elements of a nested attribute list (``NFTA_LIST_ELEM``), in order."""
    out: list[bytes] = []
    start = 0
    while start + _NLA.size <= len(data):
        length, _kind = _NLA.unpack_from(data, start)
        if length < _NLA.size:
            break
        out.append(data[start + _NLA.size : start + length])
        start += (length + 3) & ~3
    return out


def parse_nft(data: bytes) -> list[NftEvent]:
    """The table, chain and rule notifications in one datagram.  A change
    whose message names no port takes the pid of the transaction's end
    (``NFT_MSG_NEWGEN``'s ``NFTA_GEN_PROC_PID``), when the datagram has it."""
    out: list[NftEvent] = []
    gen_pid = 0
    offset = 0
    while offset + _NLMSGHDR.size <= len(data):
        length, msg_type, _flags, _seq, port = _NLMSGHDR.unpack_from(data, offset)
        if length < _NLMSGHDR.size or offset + length > len(data):
            break
        end = offset + length
        body = offset + _NLMSGHDR.size
        if msg_type >> 8 == NFNL_SUBSYS_NFTABLES and body + 4 <= end:
            sub = msg_type & 0xFF
            family = _FAMILIES.get(data[body], str(data[body]))
            attrs = _rtattrs(data, body + 4, end)
            change = "added" if sub in (_NEWTABLE, _NEWCHAIN, _NEWRULE) else "removed"
            if sub == _NEWGEN and len(attrs.get(2, b"")) == 4:
                gen_pid = struct.unpack(">I", attrs[2])[0]
            elif sub in (_NEWRULE, _DELRULE):
                table = f"{family} {_text(attrs.get(1, b''))}"
                chain = _text(attrs.get(2, b""))
                handle = struct.unpack(">Q", attrs[3])[0] if len(attrs.get(3, b"")) == 8 else 0
                comment = _comment(attrs.get(7, b"")) or _match_comment(attrs.get(4, b""))
                text = f"rule in {chain} #{handle}" + (f": {comment}" if comment else "")
                out.append(NftEvent(kind="iptables-rule", change=change, table=table, text=text, pid=port))
            elif sub in (_NEWCHAIN, _DELCHAIN):
                table = f"{family} {_text(attrs.get(1, b''))}"
                text = f"chain {_text(attrs.get(3, b''))}"
                out.append(NftEvent(kind="iptables-chain", change=change, table=table, text=text, pid=port))
            elif sub in (_NEWTABLE, _DELTABLE):
                table = f"{family} {_text(attrs.get(1, b''))}"
                out.append(NftEvent(kind="iptables-table", change=change, table=table, text=f"table {table}", pid=port))
        offset += (length + 3) & ~3
    if gen_pid:
        out = [e if e.pid else e.replace(pid=gen_pid) for e in out]
    return out
