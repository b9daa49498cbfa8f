"""Network changes: rtnetlink notifications (``<linux/rtnetlink.h>``) of links,
addresses and routes decoded from bytes, and the key that matches them to a
probed change.  Pure.

Part of :mod:`libcni_py.tools.trace.proc` (see there for the whole picture).
"""

from __future__ import annotations

import os
import struct

from ...core.value import Value
from .proc_events import _NLMSGHDR

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ...edges.probes import Change


NETLINK_ROUTE = 0
RTM_NEWLINK, RTM_DELLINK = 16, 17
RTM_NEWADDR, RTM_DELADDR = 20, 21
RTM_NEWROUTE, RTM_DELROUTE = 24, 25
RTMGRP_LINK = 0x1
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV4_ROUTE = 0x40
RTMGRP_IPV6_IFADDR = 0x100
RTMGRP_IPV6_ROUTE = 0x400
#: The groups a trace listens to: links, addresses and routes, both families.
NET_GROUPS = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_IFADDR | RTMGRP_IPV6_ROUTE
IFLA_IFNAME = 3
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_DST, RTA_GATEWAY, RTA_TABLE = 1, 5, 15
RT_TABLE_MAIN = 254

_IFINFOMSG = struct.Struct("=BxHiII")  # family, type, index, flags, change
_IFADDRMSG = struct.Struct("=BBBBI")  # family, prefixlen, flags, scope, index
_RTMSG = struct.Struct("=BBBBBBBBI")  # family, dst_len, src_len, tos, table, protocol, scope, type, flags
_RTATTR = struct.Struct("=HH")  # len, type


class NetEvent(Value):
    """One rtnetlink notification: a link, address or route added or removed.

    Attributes:
        where: ``host`` or ``container``.
        kind: ``link``, ``address`` or ``route``.
        change: ``added`` (links: added or changed) or ``removed``.
        key: what :func:`net_key` gives for the matching change.
        pid: the netlink port of the request that caused it (the pid of the
            requesting process for its first netlink socket; 0 when the
            kernel does not say, as for links).
        ns: when it was received (``CLOCK_MONOTONIC`` ns).
    """

    where: str
    kind: str
    change: str
    key: str
    pid: int = 0
    ns: int = 0


def _rtattrs(data: bytes, start: int, end: int) -> dict[int, bytes]:
    attrs: dict[int, bytes] = {}
    while start + _RTATTR.size <= end:
        length, kind = _RTATTR.unpack_from(data, start)
        if length < _RTATTR.size or start + length > end:
            break
        attrs[kind & 0x3FFF] = data[start + _RTATTR.size : start + length]
        start += (length + 3) & ~3
    return attrs


def _ip(family: int, raw: bytes) -> str:
    import socket as socketlib

    return socketlib.inet_ntop(socketlib.AF_INET if family == 2 else socketlib.AF_INET6, raw)


def parse_rtnetlink(data: bytes, where: str, ns: int) -> list[NetEvent]:
    """The link, address and route notifications in one datagram of an
    rtnetlink socket (routes of the main table only, as the probes read)."""
    out: list[NetEvent] = []
    offset = 0
    while offset + _NLMSGHDR.size <= len(data):
        length, msg_type, _flags, _seq, port = _NLMSGHDR.unpack_from(data, offset)
        if length < _NLMSGHDR.size or offset + length > len(data):
            break
        end = offset + length
        body = offset + _NLMSGHDR.size
        try:
            if msg_type in (RTM_NEWLINK, RTM_DELLINK) and body + _IFINFOMSG.size <= end:
                name = _rtattrs(data, body + _IFINFOMSG.size, end).get(IFLA_IFNAME, b"").split(b"\0", 1)[0]
                if name:
                    change = "added" if msg_type == RTM_NEWLINK else "removed"
                    key = os.fsdecode(name)
                    out.append(NetEvent(where=where, kind="link", change=change, key=key, pid=port, ns=ns))
            elif msg_type in (RTM_NEWADDR, RTM_DELADDR) and body + _IFADDRMSG.size <= end:
                family, prefixlen = _IFADDRMSG.unpack_from(data, body)[:2]
                attrs = _rtattrs(data, body + _IFADDRMSG.size, end)
                raw = attrs.get(IFA_ADDRESS) or attrs.get(IFA_LOCAL)
                if raw and family in (2, 10):
                    change = "added" if msg_type == RTM_NEWADDR else "removed"
                    key = f"{_ip(family, raw)}/{prefixlen}"
                    out.append(NetEvent(where=where, kind="address", change=change, key=key, pid=port, ns=ns))
            elif msg_type in (RTM_NEWROUTE, RTM_DELROUTE) and body + _RTMSG.size <= end:
                family, dst_len, _src, _tos, table = _RTMSG.unpack_from(data, body)[:5]
                attrs = _rtattrs(data, body + _RTMSG.size, end)
                if RTA_TABLE in attrs and len(attrs[RTA_TABLE]) == 4:
                    table = struct.unpack("=I", attrs[RTA_TABLE])[0]
                if table == RT_TABLE_MAIN and family in (2, 10):
                    dst = _ip(family, attrs[RTA_DST]) if RTA_DST in attrs else ("0.0.0.0" if family == 2 else "::")  # noqa: S104
                    gateway = _ip(family, attrs[RTA_GATEWAY]) if RTA_GATEWAY in attrs else ""
                    change = "added" if msg_type == RTM_NEWROUTE else "removed"
                    key = f"{dst}/{dst_len} via {gateway}"
                    out.append(NetEvent(where=where, kind="route", change=change, key=key, pid=port, ns=ns))
        except (ValueError, OSError):
            pass  # an address of the wrong length: not a notification to use
        offset += (length + 3) & ~3
    return out


def net_key(change: Change) -> str | None:
    """The :attr:`NetEvent.key` of the notifications behind a network change
    of :mod:`libcni_py.edges.probes`, or None for other changes."""
    details = change.details
    if change.kind == "link":
        return str(details.get("name") or "") or None
    if change.kind == "address":
        return str(details.get("address") or "") or None
    if change.kind == "route":
        return f"{details.get('dst')} via {details.get('gateway') or ''}"
    return None
