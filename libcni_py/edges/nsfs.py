"""Whether a file is a live network namespace: one ``ioctl`` on nsfs.

Kept apart from :mod:`libcni_py.netns` (which creates, enters and deletes
namespaces) because every ADD and DEL asks it first: this module imports
nothing beyond ``os`` and ``fcntl``, so the one-shot CLI does not pay for the
rest (``contextlib``, ``ctypes``, threads) on each call.
:mod:`libcni_py.netns` re-exports both functions.
"""

from __future__ import annotations

import fcntl
import os

__all__ = ["ALIVE", "CLONE_NEWNET", "GONE", "NS_GET_NSTYPE", "STALE", "UNKNOWN", "is_netns", "state"]

#: ``<linux/sched.h>``: the namespace type of a network namespace.
CLONE_NEWNET = 0x40000000
#: ``<linux/nsfs.h>``: the ioctl that tells an nsfs file's namespace type.
NS_GET_NSTYPE = 0xB703


def is_netns(path: str) -> bool:
    """True if ``path`` is a network namespace file (an nsfs file of type net)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return fcntl.ioctl(fd, NS_GET_NSTYPE) == CLONE_NEWNET
    except OSError:
        return False
    finally:
        os.close(fd)


#: What :func:`state` says of a namespace path.
ALIVE, GONE, STALE, UNKNOWN = "alive", "gone", "stale", "unknown"


def state(path: str) -> str:
    """Whether the namespace at ``path`` still lives: proof for GC and DEL.

    Returns:
        ``"alive"``: a network namespace file (nsfs, type net);
        ``"gone"``: no such file (the namespace and its file were removed, or
        ``/proc/<pid>/ns/net`` of a process that exited);
        ``"stale"``: a file that is not a network namespace any more (the
        bind mount behind ``/var/run/netns/NAME`` went away, leaving the
        empty file; or some other kind of file);
        ``"unknown"``: no path, or it cannot be opened for another reason
        (permission denied, say): nothing is proven either way.

    Only ``gone`` and ``stale`` prove an attachment dead.
    """
    if not path:
        return UNKNOWN
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except (FileNotFoundError, NotADirectoryError):
        return GONE
    except OSError:
        return UNKNOWN
    try:
        return ALIVE if fcntl.ioctl(fd, NS_GET_NSTYPE) == CLONE_NEWNET else STALE
    except OSError:
        return STALE
    finally:
        os.close(fd)
