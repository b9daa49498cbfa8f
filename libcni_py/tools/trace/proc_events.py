"""The kernel's process events (the proc connector, ``<linux/cn_proc.h>``):
the control message that subscribes, and the FORK, EXEC and EXIT events
decoded from bytes.  Pure.

Part of :mod:`libcni_py.tools.trace.proc` (see there for the whole picture).
"""

from __future__ import annotations

import struct

from ...core.value import Value

NETLINK_CONNECTOR = 11
CN_IDX_PROC = 1
CN_VAL_PROC = 1
PROC_CN_MCAST_LISTEN = 1
PROC_CN_MCAST_IGNORE = 2
PROC_EVENT_FORK = 0x1
PROC_EVENT_EXEC = 0x2
PROC_EVENT_EXIT = 0x80000000
NLMSG_DONE = 3

_NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
_CN_MSG = struct.Struct("=IIIIHH")  # idx, val, seq, ack, len, flags
_PROC_EVENT = struct.Struct("=IIQ")  # what, cpu, timestamp_ns (CLOCK_MONOTONIC)
_FORK = struct.Struct("=IIII")  # parent pid, parent tgid, child pid, child tgid
_EXEC = struct.Struct("=II")  # pid, tgid
_EXIT = struct.Struct("=IIIIII")  # pid, tgid, exit code, exit signal, parent pid, parent tgid
_HEADERS = _NLMSGHDR.size + _CN_MSG.size + _PROC_EVENT.size


class ProcEvent(Value):
    """One process event of the kernel's connector.

    Attributes:
        kind: ``fork``, ``exec`` or ``exit``.
        pid: the thread (for a fork: the new one).
        tgid: its process (thread group).
        parent: for a fork, the process that forked; for an exit, its parent.
        status: for an exit, the wait status (as ``waitpid`` gives it).
        ns: when, in nanoseconds of ``CLOCK_MONOTONIC`` (``time.monotonic``).
    """

    kind: str
    pid: int
    tgid: int
    parent: int = 0
    status: int = 0
    ns: int = 0


def control_message(op: int, port: int = 0) -> bytes:
    """The netlink message that subscribes to (``PROC_CN_MCAST_LISTEN``) or
    leaves (``PROC_CN_MCAST_IGNORE``) the process events."""
    payload = struct.pack("=I", op)
    cn = _CN_MSG.pack(CN_IDX_PROC, CN_VAL_PROC, 0, 0, len(payload), 0) + payload
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(cn), NLMSG_DONE, 0, 0, port) + cn


def parse_proc_events(data: bytes) -> list[ProcEvent]:
    """The FORK, EXEC and EXIT events in one datagram of the connector (other
    events, and messages that are not process events, are skipped)."""
    out: list[ProcEvent] = []
    offset = 0
    while offset + _NLMSGHDR.size <= len(data):
        length = _NLMSGHDR.unpack_from(data, offset)[0]
        if length < _NLMSGHDR.size or offset + length > len(data):
            break
        end = offset + length
        body = offset + _NLMSGHDR.size
        if end - offset >= _HEADERS:
            idx, val = _CN_MSG.unpack_from(data, body)[:2]
            if idx == CN_IDX_PROC and val == CN_VAL_PROC:
                what, _cpu, ns = _PROC_EVENT.unpack_from(data, body + _CN_MSG.size)
                at = offset + _HEADERS
                if what == PROC_EVENT_FORK and at + _FORK.size <= end:
                    _ppid, ptgid, cpid, ctgid = _FORK.unpack_from(data, at)
                    out.append(ProcEvent(kind="fork", pid=cpid, tgid=ctgid, parent=ptgid, ns=ns))
                elif what == PROC_EVENT_EXEC and at + _EXEC.size <= end:
                    pid, tgid = _EXEC.unpack_from(data, at)
                    out.append(ProcEvent(kind="exec", pid=pid, tgid=tgid, ns=ns))
                elif what == PROC_EVENT_EXIT and at + _EXIT.size <= end:
                    pid, tgid, code, _signal, _ppid, ptgid = _EXIT.unpack_from(data, at)
                    out.append(ProcEvent(kind="exit", pid=pid, tgid=tgid, parent=ptgid, status=code, ns=ns))
        offset += (length + 3) & ~3
    return out


#: Where, in a datagram holding one process event, the process it is about
#: is: the parent's tgid for a fork, the process's own for an exec or exit.
SUBJECT_OFFSET = _HEADERS + 4


def subject(data: bytes) -> int:
    """The process a datagram of one FORK, EXEC or EXIT event is about (see
    :data:`SUBJECT_OFFSET`), or -1 when it may hold more (parse it then).
    Lets the reader skip the events of the machine's other processes
    without decoding them."""
    if len(data) < SUBJECT_OFFSET + 4 or _NLMSGHDR.unpack_from(data)[0] != len(data):
        return -1
    return int(struct.unpack_from("=I", data, SUBJECT_OFFSET)[0])


def wait_status(status: int) -> int:
    """A wait status as an exit status: the code, or minus the signal."""
    signal = status & 0x7F
    return (status >> 8) & 0xFF if signal == 0 else -signal
