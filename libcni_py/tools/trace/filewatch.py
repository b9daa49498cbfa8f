"""The fanotify side of the kernel I/O: ctypes bindings, directory handles and
the fanotify group that marks the watched filesystems.

Part of :mod:`libcni_py.tools.trace.proc` (see there for the whole picture).
"""

from __future__ import annotations

import os

from ...errors import CNIError
from .fanotify_events import (
    _HANDLE_HEADER,
    DFID_MASK,
    FAN_CLASS_NOTIF,
    FAN_CLOEXEC,
    FAN_CLOSE_WRITE,
    FAN_MARK_ADD,
    FAN_MARK_FILESYSTEM,
    FAN_MARK_MOUNT,
    FAN_NONBLOCK,
    FAN_REPORT_DFID_NAME,
    FAN_UNLIMITED_QUEUE,
    FileEvent,
    parse_fanotify,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any, TypeAlias

    #: (filesystem id, handle type, handle bytes) of a directory.
    HandleKey: TypeAlias = "tuple[int, int, bytes]"

_FILE_KINDS = ("file", "dir", "symlink", "other")
_AT_FDCWD = -100
_AT_HANDLE_FID = 0x200
_MAX_HANDLE_SZ = 128
_SO_RCVBUFFORCE = 33
_RCVBUF = 8 * 1024 * 1024
#: Directories under the watched roots whose handles are noted at the start
#: (so that a change under a directory removed meanwhile can still be matched).
MAX_DIRS_NOTED = 10_000

_LIBC: list[Any] = []

#: Why a plugin call's processes and writers are not watched without root.
NEEDS_ROOT = "processes and who made each change: need root (the kernel's process events connector, fanotify, netlink)"


class _Unavailable(CNIError):
    """This observation cannot be made here (the reason is reported, never raised out)."""


def _libc() -> Any:
    if not _LIBC:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.fanotify_init.argtypes = [ctypes.c_uint, ctypes.c_uint]
        libc.fanotify_mark.argtypes = [ctypes.c_int, ctypes.c_uint, ctypes.c_uint64, ctypes.c_int, ctypes.c_char_p]
        libc.name_to_handle_at.argtypes = [
            ctypes.c_int,
            ctypes.c_char_p,
            ctypes.c_void_p,
            ctypes.POINTER(ctypes.c_int),
            ctypes.c_int,
        ]
        _LIBC.append(libc)
    return _LIBC[0]


def _errno() -> int:
    import ctypes

    return ctypes.get_errno()


def handle_key(path: str) -> HandleKey | None:
    """The (filesystem id, handle type, handle) fanotify reports for the
    directory ``path``, or None if it cannot be had (gone, not supported)."""
    import ctypes

    libc = _libc()
    buf = ctypes.create_string_buffer(_HANDLE_HEADER.size + _MAX_HANDLE_SZ)
    mount_id = ctypes.c_int()
    encoded = os.fsencode(path)
    for flags in (_AT_HANDLE_FID, 0):
        _HANDLE_HEADER.pack_into(buf, 0, _MAX_HANDLE_SZ, 0)
        if libc.name_to_handle_at(_AT_FDCWD, encoded, buf, ctypes.byref(mount_id), flags) == 0:
            size, handle_type = _HANDLE_HEADER.unpack_from(buf.raw)
            try:
                fsid = os.statvfs(path).f_fsid
            except OSError:
                return None
            return (fsid, handle_type, buf.raw[_HANDLE_HEADER.size : _HANDLE_HEADER.size + size])
        if _errno() != 22:  # EINVAL: a kernel without AT_HANDLE_FID; try without
            return None
    return None


def _existing(path: str) -> str:
    """``path``, or its nearest ancestor that exists."""
    path = os.path.abspath(path)
    while not os.path.exists(path) and path != "/":
        path = os.path.dirname(path)
    return path


class _FileWatch:
    """A fanotify group marking the filesystems (or, in fd mode, the mounts)
    of some directories."""

    def __init__(self, roots: Sequence[str], *, mode: str, unlimited: bool) -> None:
        libc = _libc()
        queue = FAN_UNLIMITED_QUEUE if unlimited else 0
        base = FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_NONBLOCK | queue
        self.mode = ""
        self.fd = -1
        modes = ("dfid", "fd") if mode == "auto" else (mode,)
        problem = ""
        for candidate in modes:
            flags = base | (FAN_REPORT_DFID_NAME if candidate == "dfid" else 0)
            fd = libc.fanotify_init(flags, os.O_RDONLY | os.O_CLOEXEC | os.O_LARGEFILE)
            if fd < 0:
                problem = f"fanotify_init: {os.strerror(_errno())}"
                continue
            try:
                self._mark(fd, roots, candidate)
            except _Unavailable as exc:
                os.close(fd)
                problem = exc.msg
                continue
            self.fd, self.mode = fd, candidate
            break
        if self.fd < 0:
            raise _Unavailable(problem or "fanotify is not available")

    @staticmethod
    def _mark(fd: int, roots: Sequence[str], mode: str) -> None:
        libc = _libc()
        seen: set[int] = set()
        for root in roots:
            target = _existing(root)
            try:
                device = os.stat(target).st_dev
            except OSError:
                continue
            if device in seen:
                continue
            seen.add(device)
            if mode == "dfid":
                flags, mask = FAN_MARK_ADD | FAN_MARK_FILESYSTEM, DFID_MASK
            else:
                flags, mask = FAN_MARK_ADD | FAN_MARK_MOUNT, FAN_CLOSE_WRITE
            if libc.fanotify_mark(fd, flags, mask, _AT_FDCWD, os.fsencode(target)) != 0:
                raise _Unavailable(f"fanotify_mark({target}): {os.strerror(_errno())}")

    def drain(self) -> tuple[list[FileEvent], bool]:
        """Every event queued so far, and whether some were lost."""
        chunks: list[bytes] = []
        while True:
            try:
                chunk = os.read(self.fd, 1 << 18)
            except BlockingIOError:
                break
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        events: list[FileEvent] = []
        overflow = False
        for chunk in chunks:
            got, lost = parse_fanotify(chunk)
            overflow = overflow or lost
            events.extend(got)
        if self.mode == "fd":
            resolved = []
            for event in events:
                if event.fd >= 0:
                    try:
                        path = os.readlink(f"/proc/self/fd/{event.fd}")
                    except OSError:
                        path = ""
                    finally:
                        os.close(event.fd)
                    resolved.append(event.replace(fd=-1, path=path))
            events = resolved
        return events, overflow

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
