"""fanotify's event format (``<linux/fanotify.h>``, ``FAN_REPORT_DFID_NAME``):
who created, wrote, renamed or deleted which entry, decoded from bytes.  Pure.

Part of :mod:`libcni_py.tools.trace.proc` (see there for the whole picture).
"""

from __future__ import annotations

import os
import struct

from ...core.value import Value

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TypeAlias

    #: (filesystem id, handle type, handle bytes) of a directory.
    HandleKey: TypeAlias = "tuple[int, int, bytes]"


FAN_CLOEXEC = 0x1
FAN_NONBLOCK = 0x2
FAN_CLASS_NOTIF = 0x0
FAN_UNLIMITED_QUEUE = 0x10
FAN_REPORT_DFID_NAME = 0xC00
FAN_MARK_ADD = 0x1
FAN_MARK_MOUNT = 0x10
FAN_MARK_FILESYSTEM = 0x100
FAN_ATTRIB = 0x4
FAN_CLOSE_WRITE = 0x8
FAN_MOVED_FROM = 0x40
FAN_MOVED_TO = 0x80
FAN_CREATE = 0x100
FAN_DELETE = 0x200
FAN_OPEN_EXEC = 0x1000
FAN_Q_OVERFLOW = 0x4000
FAN_ONDIR = 0x40000000
FAN_NOFD = -1
FAN_EVENT_INFO_TYPE_DFID_NAME = 2
FAN_EVENT_INFO_TYPE_DFID = 3
FANOTIFY_METADATA_VERSION = 3

#: What the DFID_NAME group asks for (``FAN_OPEN_EXEC`` names the programs of
#: processes gone before ``/proc`` could be read).
DFID_MASK = (
    FAN_CREATE | FAN_DELETE | FAN_MOVED_FROM | FAN_MOVED_TO | FAN_CLOSE_WRITE | FAN_ATTRIB | FAN_OPEN_EXEC | FAN_ONDIR
)

_METADATA = struct.Struct("=IBBHQii")  # event_len, vers, reserved, metadata_len, mask, fd, pid
_INFO_HEADER = struct.Struct("=BBH")  # info_type, pad, len
_FSID = struct.Struct("=II")
_HANDLE_HEADER = struct.Struct("=Ii")  # handle_bytes, handle_type


class FileEvent(Value):
    """One fanotify event.

    Attributes:
        mask: what happened (``FAN_*`` bits; the kernel merges consecutive
            events of one process on one entry into one).
        pid: the process that did it.
        dir_key: the directory's (filesystem id, handle type, handle), or None.
        name: the entry's name in that directory ("" if none).
        fd: in fd mode, the descriptor of the file (the reader closes it).
        path: in fd mode, the file's path (filled in by the reader).
    """

    mask: int
    pid: int
    dir_key: HandleKey | None = None
    name: str = ""
    fd: int = -1
    path: str = ""


def fsid_value(val0: int, val1: int) -> int:
    """A ``__kernel_fsid_t`` as the one number ``os.statvfs().f_fsid`` gives."""
    return (val0 & 0xFFFFFFFF) | ((val1 & 0xFFFFFFFF) << 32)


def parse_fanotify(data: bytes) -> tuple[list[FileEvent], bool]:
    """The events in a buffer read from a fanotify group, and whether the
    queue overflowed (events were lost)."""
    events: list[FileEvent] = []
    overflow = False
    offset = 0
    while offset + _METADATA.size <= len(data):
        length, version, _reserved, meta_len, mask, fd, pid = _METADATA.unpack_from(data, offset)
        if length < _METADATA.size or offset + length > len(data) or version != FANOTIFY_METADATA_VERSION:
            break
        end = offset + length
        if mask & FAN_Q_OVERFLOW:
            overflow = True
            offset = end
            continue
        dir_key: HandleKey | None = None
        name = ""
        info = offset + meta_len
        while info + _INFO_HEADER.size <= end:
            info_type, _pad, info_len = _INFO_HEADER.unpack_from(data, info)
            if info_len < _INFO_HEADER.size or info + info_len > end:
                break
            if info_type in (FAN_EVENT_INFO_TYPE_DFID_NAME, FAN_EVENT_INFO_TYPE_DFID):
                at = info + _INFO_HEADER.size
                val0, val1 = _FSID.unpack_from(data, at)
                at += _FSID.size
                size, handle_type = _HANDLE_HEADER.unpack_from(data, at)
                at += _HANDLE_HEADER.size
                handle = data[at : at + size]
                dir_key = (fsid_value(val0, val1), handle_type, handle)
                if info_type == FAN_EVENT_INFO_TYPE_DFID_NAME:
                    raw = data[at + size : info + info_len].split(b"\0", 1)[0]
                    name = os.fsdecode(raw)
            info += info_len
        events.append(FileEvent(mask=mask, pid=pid, dir_key=dir_key, name=name, fd=fd))
        offset = end
    return events, overflow
