"""The result cache on disk: atomic writes, safe reads, listing, locks.

Layout under the cache directory (default ``/var/lib/cni``)::

    results/<network>-<containerID>-<ifname>   records (Go's files, Go's names)
    libcni_py/tmp/                             where new records are written first
    libcni_py/locks/<network>-<containerID>-<ifname>
                                               one flock(2) file per attachment
    libcni_py/pod-locks/<containerID>          one flock(2) file per pod (the runtime layer)
    libcni_py/gc-lock/lock                     shared by pod operations, exclusive for their GC
    libcni_py/pods/<containerID>               pod records of the runtime layer

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
  removing lock files (after a DEL) is safe.  A wait ends at the caller's
  deadline with :class:`~libcni_py.errors.LockTimeoutError` naming the
  holder (``/proc/locks``), and saying so when it is stopped.  :meth:`CacheStore.lock_pod` is
  the same lock for a whole pod (:mod:`libcni_py.runtime`), in its own folder;
  :meth:`CacheStore.lock_gc` is CRI-O's ``gcLock`` across processes: ADD,
  CHECK and DEL (of the core and of pods) hold it shared, GC (``CNI.gc``,
  ``cnitool gc``, the runtime's) exclusively, as the spec requires ("The
  runtime must exclusively execute either gc or add and delete").  Who holds
  it in which mode is remembered per flow of control (a thread, a trio task
  and the tasks it starts: :func:`gc_lock_covers`), so that the DELs a GC
  runs, and the ADDs a pod operation runs, do not wait for themselves.

Files of other folders (the runtime layer's pod records) are read, written
and removed with the same helpers, given ``folder``.

Everything raises :class:`~libcni_py.errors.CacheError`, never ``OSError``.
"""

from __future__ import annotations

import contextvars
import errno
import fcntl
import os

from ..core import names as _names
from ..core.defaults import DEFAULT_CACHE_DIR
from ..core.record import (
    ATTACHMENT_LOCKS_FOLDER,
    GC_LOCK_FOLDER,
    POD_LOCKS_FOLDER,
    RESULTS_FOLDER,
    TMP_FOLDER,
    AttachmentKey,
    cache_path,
)
from ..errors import CacheError, LockTimeoutError, LockUnavailableError, os_reason

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["DEFAULT_CACHE_DIR", "CacheStore", "LockHandle", "gc_lock_covers"]

#: Largest cache record, for the writer and the reader alike: :meth:`CacheStore.write`
#: refuses a bigger one (nothing is written; the record before it stays), so
#: that every record written can be read back.  A record is a few KiB; this
#: leaves room for a plugin result as large as a plugin may print
#: (:data:`libcni_py.core.plugin_call.MAX_STDOUT`, 16 MiB) next to a configuration as large as
#: a conf file may be (:data:`libcni_py.core.netconf.MAX_CONF_BYTES`, base64: 5.4 MiB).
MAX_RECORD_BYTES = 64 * 1024 * 1024

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

#: Folders (below the cache dir) of the results, the attachment locks and the pod
#: locks: :mod:`libcni_py.core.record` owns the layout; these are its names here.
RESULTS = RESULTS_FOLDER
ATTACHMENT_LOCKS = ATTACHMENT_LOCKS_FOLDER
POD_LOCKS = POD_LOCKS_FOLDER
GC_LOCK = GC_LOCK_FOLDER

#: The GC lock this flow of control holds: "", "shared" or "exclusive".  A
#: context variable: a thread's own, a trio task's own, copied into the tasks
#: it starts.
_GC_HELD: contextvars.ContextVar[str] = contextvars.ContextVar("libcni_py_gc_lock", default="")


def gc_lock_covers(*, exclusive: bool) -> bool:
    """True when this flow of control already holds the GC lock in a mode
    that covers the one asked for (exclusive covers both)."""
    held = _GC_HELD.get()
    return held == "exclusive" or (held == "shared" and not exclusive)


class LockHandle:
    """A held lock; release with :meth:`CacheStore.unlock`."""

    __slots__ = ("fd", "folder", "name")

    def __init__(self, fd: int, name: str, folder: tuple[str, ...] = ATTACHMENT_LOCKS) -> None:
        self.fd = fd
        self.name = name
        self.folder = folder


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
        return cache_path(self.cache_dir, RESULTS_FOLDER)

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
            if create:  # a parent vanished while we made it
                raise CacheError(self.cache_dir, "cannot be created (a parent directory vanished)") from None
            raise
        except OSError as exc:
            raise CacheError(self.cache_dir, _why(exc, self.cache_dir)) from None
        try:
            for depth, part in enumerate(parts, start=1):
                where = os.path.join(self.cache_dir, *parts[:depth])
                try:
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
                except FileNotFoundError:
                    if create:
                        raise CacheError(where, "vanished while it was being created") from None
                    raise
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise CacheError(where, "is not a directory (a symbolic link?); refusing to use it") from None
                    # mkdir in a directory we may not write (owned by root, a
                    # read-only mount): name the directory that refused
                    raise CacheError(where, _why(exc, os.path.dirname(where))) from None
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

    def read_name(self, name: str, *, folder: tuple[str, ...] = RESULTS) -> bytes | None:
        """Like :meth:`read`, by file name inside ``folder`` (default ``results/``)."""
        try:
            dfd = self._open_dir(*folder, create=False)
        except FileNotFoundError:
            return None
        where = cache_path(self.cache_dir, folder, name)
        try:
            return self._read_at(dfd, name, where)
        finally:
            os.close(dfd)

    def _read_at(self, dfd: int, name: str, where: str = "") -> bytes | None:
        """Read ``name`` in the open directory ``dfd`` (``where``: its path,
        for messages; default ``results/<name>``)."""
        where = where or os.path.join(self.results_dir, name)
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=dfd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise CacheError(where, "is a symbolic link; refusing to read it") from None
            raise CacheError(where, _why(exc)) from None
        try:
            st = os.fstat(fd)
            if not _is_regular(st.st_mode):
                raise CacheError(where, "is not a regular file")
            if st.st_size > MAX_RECORD_BYTES:
                raise CacheError(where, f"is {st.st_size} bytes; not a cache record")
            chunks = []
            while True:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                chunks.append(chunk)
            return b"".join(chunks)
        except OSError as exc:
            raise CacheError(where, _why(exc)) from None
        finally:
            os.close(fd)

    def write(self, key: AttachmentKey, data: bytes, *, durable: bool = True) -> None:
        """Replace the record atomically (temporary file, fsync, rename).

        Args:
            durable: with the store's ``durable``, fsync the file and the
                directory; False skips both for this write (a checkpoint that
                replaces a durable record; still atomic).

        Raises:
            CacheError: the directories cannot be created or written, or the
                record is larger than :data:`MAX_RECORD_BYTES` (then nothing
                is written).
        """
        self.write_name(key.filename, data, durable=durable)

    def write_name(self, name: str, data: bytes, *, folder: tuple[str, ...] = RESULTS, durable: bool = True) -> None:
        """Like :meth:`write`, by file name inside ``folder`` (a valid name:
        letters, digits, ``_.-``)."""
        sync = self.durable and durable
        target = cache_path(self.cache_dir, folder, name)
        if len(data) > MAX_RECORD_BYTES:
            raise CacheError(
                target,
                f"not written: the record would be {len(data)} bytes, more than the {MAX_RECORD_BYTES} "
                "a cache record may hold (the record before it stays)",
            )
        rdfd = self._open_dir(*folder, create=True)
        try:
            tdfd = self._open_dir(*TMP_FOLDER, create=True)
            try:
                tmp = f"{name}.{os.getpid()}.{os.urandom(4).hex()}"
                try:
                    fd = os.open(
                        tmp,
                        os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                        0o600,
                        dir_fd=tdfd,
                    )
                except OSError as exc:
                    raise CacheError(cache_path(self.cache_dir, TMP_FOLDER, tmp), _why(exc)) from None
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
                    os.rename(tmp, name, src_dir_fd=tdfd, dst_dir_fd=rdfd)
                    if sync:
                        os.fsync(rdfd)
                except OSError as exc:
                    try:
                        os.unlink(tmp, dir_fd=tdfd)
                    except OSError:
                        pass
                    raise CacheError(target, f"cannot write: {_why(exc)}") from None
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

    def remove_name(self, name: str, *, folder: tuple[str, ...] = RESULTS) -> bool:
        """Like :meth:`remove`, by file name inside ``folder`` (default ``results/``)."""
        try:
            dfd = self._open_dir(*folder, create=False)
        except FileNotFoundError:
            return False
        try:
            os.unlink(name, dir_fd=dfd)
            return True
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise CacheError(cache_path(self.cache_dir, folder, name), f"cannot remove: {_why(exc)}") from None
        finally:
            os.close(dfd)

    def names(self, container_id: str = "", *, folder: tuple[str, ...] = RESULTS) -> list[str]:
        """File names in ``folder`` (default ``results/``), sorted, optionally
        only those that can belong to ``container_id`` (Go's ``-<id>-`` filter)."""
        try:
            dfd = self._open_dir(*folder, create=False)
        except FileNotFoundError:
            return []
        try:
            return self._names_at(dfd, container_id, cache_path(self.cache_dir, folder))
        finally:
            os.close(dfd)

    def _names_at(self, dfd: int, container_id: str, where: str = "") -> list[str]:
        """The sorted names in the open directory ``dfd`` (``where``: its path,
        for messages), optionally filtered for ``container_id``."""
        try:
            found = sorted(os.listdir(dfd))
        except OSError as exc:
            raise CacheError(where or self.results_dir, f"cannot list: {_why(exc)}") from None
        if container_id:
            part = f"-{container_id}-"
            found = [n for n in found if n.find(part) > 0 and n.find(part) + len(part) < len(n)]
        return found

    def iter_files(self, container_id: str = "") -> Iterator[tuple[str, bytes | None, CacheError | None]]:
        """Every file of ``results/`` (sorted) with its bytes, or the error
        that kept it from being read.  The directory is opened once for the
        whole listing (GC reads every record)."""
        try:
            dfd = self._open_dir(*RESULTS_FOLDER, create=False)
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

    def sweep(self, prefix: str, *, older_than: float = 600.0) -> tuple[int, int]:
        """Remove what interrupted operations left for names starting with
        ``prefix`` (``<network>-``): temporary files older than
        ``older_than`` seconds (a writer that crashed between creating and
        renaming one), and lock files of attachments that have no record
        and that nobody holds (taken first, so that removing one is as safe
        as :meth:`unlock` with ``remove``).

        Returns:
            ``(temporary files, lock files)`` removed.
        """
        import time

        removed_tmp = 0
        try:
            dfd = self._open_dir(*TMP_FOLDER, create=False)
        except FileNotFoundError:
            dfd = -1
        if dfd >= 0:
            try:
                now = time.time()
                for name in _listdir(dfd, cache_path(self.cache_dir, TMP_FOLDER)):
                    if not name.startswith(prefix):
                        continue
                    try:
                        st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
                        if now - st.st_mtime > older_than:
                            os.unlink(name, dir_fd=dfd)
                            removed_tmp += 1
                    except OSError:
                        continue
            finally:
                os.close(dfd)
        removed_locks = 0
        try:
            dfd = self._open_dir(*ATTACHMENT_LOCKS_FOLDER, create=False)
        except FileNotFoundError:
            return removed_tmp, 0
        try:
            candidates = [
                n for n in _listdir(dfd, cache_path(self.cache_dir, ATTACHMENT_LOCKS_FOLDER)) if n.startswith(prefix)
            ]
        finally:
            os.close(dfd)
        for name in candidates:
            if self._record_exists(name):
                continue
            handle = self._lock(name, blocking=False)
            if handle is None:
                continue  # in use
            if self._record_exists(name):
                self.unlock(handle)
                continue
            self.unlock(handle, remove=True)
            removed_locks += 1
        return removed_tmp, removed_locks

    def _record_exists(self, name: str) -> bool:
        """Whether ``results/<name>`` exists; True when that cannot be told
        (``results`` unusable), so that a sweep then keeps the lock file."""
        try:
            dfd = self._open_dir(*RESULTS_FOLDER, create=False)
        except FileNotFoundError:
            return False
        except CacheError:
            return True
        try:
            os.stat(name, dir_fd=dfd, follow_symlinks=False)
            return True
        except OSError:
            return False
        finally:
            os.close(dfd)

    # -- locks ---------------------------------------------------------------

    def try_lock(self, key: AttachmentKey) -> LockHandle | None:
        """Take the attachment's lock without waiting; None if it is held."""
        return self._lock(key.filename, blocking=False)

    def lock(self, key: AttachmentKey, *, timeout: float | None = None) -> LockHandle:
        """Take the attachment's lock, waiting for it at most ``timeout``
        seconds (None: as long as it takes).

        Raises:
            LockTimeoutError: still held at the end, naming the holder.
        """
        return self._wait(key.filename, ATTACHMENT_LOCKS, False, timeout)

    def try_lock_pod(self, container_id: str) -> LockHandle | None:
        """Take the lock of a whole pod without waiting; None if it is held.

        Raises:
            InvalidNameError: ``container_id`` is not a valid container ID.
        """
        _names.check_container_id(container_id)
        return self._lock(container_id, blocking=False, folder=POD_LOCKS)

    def lock_pod(self, container_id: str, *, timeout: float | None = None) -> LockHandle:
        """Take the lock of a whole pod, waiting at most ``timeout`` seconds
        (as :meth:`lock`)."""
        _names.check_container_id(container_id)
        return self._wait(container_id, POD_LOCKS, False, timeout)

    def try_lock_gc(self, *, exclusive: bool) -> LockHandle | None:
        """Take the GC lock without waiting (shared: a pod operation;
        exclusive: the GC); None if it is held in a conflicting mode."""
        return self._lock("lock", blocking=False, folder=GC_LOCK, shared=not exclusive)

    def lock_gc(self, *, exclusive: bool, timeout: float | None = None) -> LockHandle:
        """Take the GC lock, waiting at most ``timeout`` seconds (as :meth:`lock`)."""
        return self._wait("lock", GC_LOCK, not exclusive, timeout)

    def _wait(self, name: str, folder: tuple[str, ...], shared: bool, timeout: float | None) -> LockHandle:
        """Block in ``flock`` when there is no limit; else try with a short
        backoff until ``timeout`` (``flock`` itself cannot time out)."""
        if timeout is None:
            handle = self._lock(name, blocking=True, folder=folder, shared=shared)
            assert handle is not None
            return handle
        import time

        started = time.monotonic()
        delay = 0.001
        while True:
            handle = self._lock(name, blocking=False, folder=folder, shared=shared)
            if handle is not None:
                return handle
            left = started + timeout - time.monotonic()
            if left <= 0:
                raise self.lock_timeout(name, folder, time.monotonic() - started)
            time.sleep(min(delay, left))
            delay = min(delay * 2, 0.05)

    def lock_timeout(self, name: str, folder: tuple[str, ...], waited: float) -> LockTimeoutError:
        """The error for a lock still held after ``waited`` seconds: who holds
        it (from ``/proc/locks``: pid, command line, and whether it is
        stopped), and what to do."""
        path = cache_path(self.cache_dir, folder, name)
        holders = lock_holders(path)
        kinds: dict[tuple[str, ...], str] = {ATTACHMENT_LOCKS: "attachment", POD_LOCKS: "pod", GC_LOCK: "GC"}
        what = kinds.get(folder, "the")
        if not holders:
            who = "held by a process this system does not show (another PID namespace?)"
        else:
            who = "held by " + ", ".join(
                f"pid {pid} ({command or '?'}){' which is STOPPED' if state in 'Tt' else ''}"
                for pid, command, state in holders
            )
        stopped = [str(pid) for pid, _command, state in holders if state in "Tt"]
        if stopped:
            hint = (
                f"the holder is stopped (Ctrl-Z or SIGSTOP): resume it with 'kill -CONT {' '.join(stopped)}' "
                "(or end it), then run this again"
            )
        else:
            hint = "another operation on it is still running: try again when it ends, or raise --timeout"
        return LockTimeoutError(path, f"{what} lock still {who} after waiting {waited:.1f}s", hint=hint)

    def _lock(
        self, name: str, *, blocking: bool, folder: tuple[str, ...] = ATTACHMENT_LOCKS, shared: bool = False
    ) -> LockHandle | None:
        try:
            dfd = self._open_dir(*folder, create=True)
        except CacheError as exc:
            raise LockUnavailableError(exc.path, exc.problem) from None
        try:
            while True:
                fd = _open_lock_file(dfd, name, cache_path(self.cache_dir, folder, name))
                try:
                    mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
                    fcntl.flock(fd, mode | (0 if blocking else fcntl.LOCK_NB))
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
                        if folder == GC_LOCK:
                            _GC_HELD.set("shared" if shared else "exclusive")
                        return LockHandle(fd, name, folder)
                except FileNotFoundError:
                    pass
                os.close(fd)
        finally:
            os.close(dfd)

    def unlock(self, handle: LockHandle, *, remove: bool = False) -> None:
        """Release a lock; with ``remove``, also delete its file (after a DEL,
        so lock files do not pile up)."""
        if handle.folder == GC_LOCK:
            _GC_HELD.set("")
        try:
            if remove:
                try:
                    dfd = self._open_dir(*handle.folder, create=False)
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


def lock_holders(path: str) -> list[tuple[int, str, str]]:
    """Who holds a ``flock`` on ``path``: (pid, command line, state letter
    of ``/proc/PID/stat``), from ``/proc/locks`` (empty when unknown)."""
    from .spawn import command_line, proc_stat

    try:
        st = os.stat(path)
        with open("/proc/locks", encoding="ascii", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return []
    wanted = (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)
    holders: list[tuple[int, str, str]] = []
    for line in lines:
        fields = line.split()
        if len(fields) < 6 or fields[1] == "->" or fields[1] != "FLOCK":
            continue
        try:
            major, minor, inode = fields[5].split(":")
            key = (int(major, 16), int(minor, 16), int(inode))
            pid = int(fields[4])
        except ValueError:
            continue
        if key == wanted and pid > 0 and all(pid != h[0] for h in holders):
            stat = proc_stat(str(pid))
            holders.append((pid, command_line(pid), stat[3] if stat else "?"))
    return holders


def _open_lock_file(dfd: int, name: str, where: str) -> int:
    """Open (creating it if need be) the lock file ``name`` in ``dfd``.

    A lock file that cannot be opened for writing -- on a read-only mount, in
    a directory of another user, or a directory planted in its place -- is
    opened read-only instead: ``flock`` needs no write access, so the lock
    still works, and every process that opens the same file the same way is
    kept out.  Only when the file neither exists nor can be created (or is a
    symbolic link) is there no lock to take.

    Raises:
        LockUnavailableError: no lock file can be opened or created, or a
            symbolic link stands in its place (never followed).
        CacheError: anything else (out of file descriptors, say).
    """
    try:
        return os.open(name, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dfd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise LockUnavailableError(where, "is a symbolic link; refusing to follow it") from None
        if exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM, errno.EISDIR):
            raise CacheError(where, _why(exc)) from None
        first = exc
    try:
        return os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
    except OSError:
        raise LockUnavailableError(where, f"cannot be created: {_why(first, os.path.dirname(where))}") from None


def _listdir(dfd: int, where: str) -> list[str]:
    try:
        return os.listdir(dfd)
    except OSError as exc:
        raise CacheError(where, f"cannot list: {_why(exc)}") from None


def _is_regular(mode: int) -> bool:
    import stat

    return stat.S_ISREG(mode)


def _why(exc: OSError, directory: str = "") -> str:
    """What went wrong, for a person: ``directory`` is the one that refused
    (named when it is not the path the message is about)."""
    owner = ""
    if directory and exc.errno in (errno.EACCES, errno.EPERM):
        try:
            uid = os.stat(directory).st_uid
            owner = f" ({directory} belongs to uid {uid}, this process runs as uid {os.geteuid()})"
        except OSError:
            pass
    return os_reason(exc, "store", owner)
