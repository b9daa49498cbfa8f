"""The result cache on disk: atomic writes, safe reads, listing, locks.

Layout under the cache directory (default ``/var/lib/cni``)::

    results/<network>-<containerID>-<ifname>   records (Go's files, Go's names)
    libcni_py/tmp/                             where new records are written first
    libcni_py/locks/<network>-<containerID>-<ifname>
                                               one flock(2) file per attachment

Guarantees:

* **atomic** -- a record is written to a temporary file, fsynced (unless
  the write is a checkpoint, ``durable=False``), then renamed over the old
  one, so a reader (or a crash) sees the old record or the new one, never an
  empty or half-written file (Go writes in place);
* **no symlink games** -- directories are opened with ``O_NOFOLLOW`` and files
  are created ``O_EXCL|O_NOFOLLOW`` relative to them; a ``results`` directory
  that is a symbolic link, or a record that is one, is refused; ``rename``
  replaces a planted link instead of following it;
* **modes** -- directories 0700, files 0600, as Go creates them;
* **locks** -- :meth:`CacheStore.lock` takes an exclusive ``flock`` that works
  across processes; the lock file's identity is re-checked after locking, so
  removing lock files (after a DEL) is safe.

Everything raises :class:`~libcni_py.errors.CacheError`, never ``OSError``.
"""

from __future__ import annotations

import errno
import fcntl
import os

from .cache import AttachmentKey
from .errors import CacheError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["DEFAULT_CACHE_DIR", "CacheStore", "LockHandle"]

DEFAULT_CACHE_DIR = "/var/lib/cni"

#: Largest cache file read (a record is a few KiB).
MAX_RECORD_BYTES = 4 * 1024 * 1024

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class LockHandle:
    """A held attachment lock; release with :meth:`CacheStore.unlock`."""

    __slots__ = ("fd", "name")

    def __init__(self, fd: int, name: str) -> None:
        self.fd = fd
        self.name = name


class CacheStore:
    """The cache directory of one runtime.

    Args:
        cache_dir: the directory (Go's ``CacheDir``, default ``/var/lib/cni``).
        durable: fsync each new record and the directory after renaming it,
            so records survive a power loss too, not only a crash.
    """

    def __init__(self, cache_dir: str = DEFAULT_CACHE_DIR, *, durable: bool = True) -> None:
        self.cache_dir = cache_dir
        self.durable = durable

    # -- paths ---------------------------------------------------------------

    @property
    def results_dir(self) -> str:
        """``<cacheDir>/results``."""
        return os.path.join(self.cache_dir, "results")

    def path_for(self, key: AttachmentKey) -> str:
        """The record's path (the key's names are already validated)."""
        return os.path.join(self.results_dir, key.filename)

    def _open_dir(self, *parts: str, create: bool) -> int:
        """Open ``<cacheDir>/<parts...>`` without following symlinks below the
        cache directory, creating missing levels with mode 0700."""
        try:
            if create:
                os.makedirs(self.cache_dir, mode=0o700, exist_ok=True)
            fd = os.open(self.cache_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise CacheError(self.cache_dir, _why(exc)) from None
        try:
            for part in parts:
                try:
                    sub = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    try:
                        os.mkdir(part, 0o700, dir_fd=fd)
                    except FileExistsError:
                        pass
                    sub = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    where = os.path.join(self.cache_dir, *parts[: parts.index(part) + 1])
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise CacheError(where, "is not a directory (a symbolic link?); refusing to use it") from None
                    raise CacheError(where, _why(exc)) from None
                os.close(fd)
                fd = sub
            return fd
        except BaseException:
            os.close(fd)
            raise

    # -- records -------------------------------------------------------------

    def read(self, key: AttachmentKey) -> bytes | None:
        """The record's bytes, or None when there is none.

        Raises:
            CacheError: it exists but cannot be read, is a symbolic link, or
                is absurdly large.
        """
        return self.read_name(key.filename)

    def read_name(self, name: str) -> bytes | None:
        """Like :meth:`read`, by file name inside ``results/``."""
        try:
            dfd = self._open_dir("results", create=False)
        except FileNotFoundError:
            return None
        try:
            return self._read_at(dfd, name)
        finally:
            os.close(dfd)

    def _read_at(self, dfd: int, name: str) -> bytes | None:
        """Read ``name`` in the open ``results/`` directory ``dfd``."""
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=dfd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise CacheError(
                    os.path.join(self.results_dir, name), "is a symbolic link; refusing to read it"
                ) from None
            raise CacheError(os.path.join(self.results_dir, name), _why(exc)) from None
        try:
            st = os.fstat(fd)
            if not _is_regular(st.st_mode):
                raise CacheError(os.path.join(self.results_dir, name), "is not a regular file")
            if st.st_size > MAX_RECORD_BYTES:
                raise CacheError(os.path.join(self.results_dir, name), f"is {st.st_size} bytes; not a cache record")
            chunks = []
            while True:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                chunks.append(chunk)
            return b"".join(chunks)
        except OSError as exc:
            raise CacheError(os.path.join(self.results_dir, name), _why(exc)) from None
        finally:
            os.close(fd)

    def write(self, key: AttachmentKey, data: bytes, *, durable: bool = True) -> None:
        """Replace the record atomically (temporary file, fsync, rename).

        Args:
            durable: with the store's ``durable``, fsync the file and the
                directory; False skips both for this write (a checkpoint that
                replaces a durable record; still atomic).

        Raises:
            CacheError: the directories cannot be created or written.
        """
        sync = self.durable and durable
        rdfd = self._open_dir("results", create=True)
        try:
            tdfd = self._open_dir("libcni_py", "tmp", create=True)
            try:
                tmp = f"{key.filename}.{os.getpid()}.{os.urandom(4).hex()}"
                try:
                    fd = os.open(
                        tmp,
                        os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                        0o600,
                        dir_fd=tdfd,
                    )
                except OSError as exc:
                    raise CacheError(os.path.join(self.cache_dir, "libcni_py", "tmp", tmp), _why(exc)) from None
                try:
                    try:
                        view = memoryview(data)
                        while view:
                            written = os.write(fd, view)
                            view = view[written:]
                        if sync:
                            os.fsync(fd)
                    finally:
                        os.close(fd)
                    os.rename(tmp, key.filename, src_dir_fd=tdfd, dst_dir_fd=rdfd)
                    if sync:
                        os.fsync(rdfd)
                except OSError as exc:
                    try:
                        os.unlink(tmp, dir_fd=tdfd)
                    except OSError:
                        pass
                    raise CacheError(self.path_for(key), f"cannot write: {_why(exc)}") from None
            finally:
                os.close(tdfd)
        finally:
            os.close(rdfd)

    def remove(self, key: AttachmentKey) -> bool:
        """Remove the record; True if there was one.

        Raises:
            CacheError: it exists but cannot be removed.
        """
        return self.remove_name(key.filename)

    def remove_name(self, name: str) -> bool:
        """Like :meth:`remove`, by file name inside ``results/``."""
        try:
            dfd = self._open_dir("results", create=False)
        except FileNotFoundError:
            return False
        try:
            os.unlink(name, dir_fd=dfd)
            return True
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise CacheError(os.path.join(self.results_dir, name), f"cannot remove: {_why(exc)}") from None
        finally:
            os.close(dfd)

    def names(self, container_id: str = "") -> list[str]:
        """File names in ``results/``, sorted, optionally only those that can
        belong to ``container_id`` (Go's ``-<id>-`` filter)."""
        try:
            dfd = self._open_dir("results", create=False)
        except FileNotFoundError:
            return []
        try:
            return self._names_at(dfd, container_id)
        finally:
            os.close(dfd)

    def _names_at(self, dfd: int, container_id: str) -> list[str]:
        try:
            found = sorted(os.listdir(dfd))
        except OSError as exc:
            raise CacheError(self.results_dir, f"cannot list: {_why(exc)}") from None
        if container_id:
            part = f"-{container_id}-"
            found = [n for n in found if n.find(part) > 0 and n.find(part) + len(part) < len(n)]
        return found

    def iter_files(self, container_id: str = "") -> Iterator[tuple[str, bytes | None, CacheError | None]]:
        """Every file of ``results/`` (sorted) with its bytes, or the error
        that kept it from being read.  The directory is opened once for the
        whole listing (GC reads every record)."""
        try:
            dfd = self._open_dir("results", create=False)
        except FileNotFoundError:
            return
        try:
            for name in self._names_at(dfd, container_id):
                try:
                    yield name, self._read_at(dfd, name), None
                except CacheError as exc:
                    yield name, None, exc
        finally:
            os.close(dfd)

    def clean_tmp(self, older_than: float = 3600.0) -> int:
        """Remove temporary files left by writers that crashed; returns how many."""
        import time

        try:
            dfd = self._open_dir("libcni_py", "tmp", create=False)
        except (FileNotFoundError, CacheError):
            return 0
        removed = 0
        try:
            now = time.time()
            for name in os.listdir(dfd):
                try:
                    st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
                    if now - st.st_mtime > older_than:
                        os.unlink(name, dir_fd=dfd)
                        removed += 1
                except OSError:
                    continue
        finally:
            os.close(dfd)
        return removed

    # -- locks ---------------------------------------------------------------

    def try_lock(self, key: AttachmentKey) -> LockHandle | None:
        """Take the attachment's lock without waiting; None if it is held."""
        return self._lock(key.filename, blocking=False)

    def lock(self, key: AttachmentKey) -> LockHandle:
        """Take the attachment's lock, waiting for it (blocking)."""
        handle = self._lock(key.filename, blocking=True)
        assert handle is not None
        return handle

    def _lock(self, name: str, *, blocking: bool) -> LockHandle | None:
        dfd = self._open_dir("libcni_py", "locks", create=True)
        try:
            while True:
                try:
                    fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dfd)
                except OSError as exc:
                    raise CacheError(os.path.join(self.cache_dir, "libcni_py", "locks", name), _why(exc)) from None
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
                except BlockingIOError:
                    os.close(fd)
                    return None
                except BaseException:
                    os.close(fd)
                    raise
                # The file may have been unlinked (by unlock(remove=True)) between
                # our open and our flock: then the lock guards nothing; retry.
                try:
                    current = os.stat(name, dir_fd=dfd, follow_symlinks=False)
                    mine = os.fstat(fd)
                    if (current.st_dev, current.st_ino) == (mine.st_dev, mine.st_ino):
                        return LockHandle(fd, name)
                except FileNotFoundError:
                    pass
                os.close(fd)
        finally:
            os.close(dfd)

    def unlock(self, handle: LockHandle, *, remove: bool = False) -> None:
        """Release a lock; with ``remove``, also delete its file (after a DEL,
        so lock files do not pile up)."""
        try:
            if remove:
                try:
                    dfd = self._open_dir("libcni_py", "locks", create=False)
                except (FileNotFoundError, CacheError):
                    dfd = -1
                if dfd >= 0:
                    try:
                        os.unlink(handle.name, dir_fd=dfd)
                    except OSError:
                        pass
                    finally:
                        os.close(dfd)
        finally:
            os.close(handle.fd)


def _is_regular(mode: int) -> bool:
    import stat

    return stat.S_ISREG(mode)


def _why(exc: OSError) -> str:
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied (run as root, or give --cache-dir a directory you own)"
    if exc.errno == errno.ENOSPC:
        return "no space left on device"
    if exc.errno == errno.EROFS:
        return "read-only file system"
    return exc.strerror or str(exc)
