"""Network namespaces: create, delete, list, test, and work inside them.

Named namespaces live where ``ip netns`` keeps them, ``/var/run/netns/<name>``
(a bind mount of the namespace's nsfs file), so namespaces made here and by
``ip netns add`` are the same thing to both tools.  Creation follows
iproute2: the directory is made a shared mount point, an empty file is
created, and a namespace made by ``unshare(CLONE_NEWNET)`` is bind-mounted
onto it.

Nothing here changes the namespace of the calling thread.  Work that must
happen inside a namespace (:func:`run_in`, :func:`run_command`) runs on a
short-lived worker thread that enters it with ``setns``; that thread dies
afterwards, so neither the caller's thread nor a trio event loop ever moves.
Processes started from such a thread (:func:`run_command`) are born inside
the namespace.  Netlink work uses pyroute2 on such a thread (a socket stays
bound to the namespace it was made in).

:func:`opened` gives a file descriptor on a namespace named or found by
path (for ``setns``, or tools that take one).

Blocking functions come with trio forms (``a``-prefixed) that run them in a
worker thread.  Errors are :class:`~libcni_py.errors.NetnsError`, with the
reason a person can act on (name taken, not root, not a namespace, busy).
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading

from .edges.nsfs import ALIVE, CLONE_NEWNET, GONE, NS_GET_NSTYPE, STALE, UNKNOWN, is_netns, state
from .errors import NetnsError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
    from typing import Any, TypeVar

    T = TypeVar("T")

__all__ = [
    "ALIVE",
    "GONE",
    "NETNS_DIR",
    "STALE",
    "UNKNOWN",
    "acreate",
    "adelete",
    "arun_in",
    "create",
    "delete",
    "exists",
    "find_command",
    "is_netns",
    "is_stale_file",
    "list_names",
    "opened",
    "path_for",
    "state",
    "run_command",
    "run_in",
]

NETNS_DIR = "/var/run/netns"

_MS_BIND = 4096
_MS_REC = 16384
_MS_SHARED = 1 << 20
_MNT_DETACH = 2

_LIBC: list[Any] = []


def _c() -> Any:
    """The C library (loaded once, on first use: ctypes is not free to import)."""
    if not _LIBC:
        import ctypes

        _LIBC.append(ctypes.CDLL(None, use_errno=True))
    return _LIBC[0]


def _errno() -> int:
    import ctypes

    return ctypes.get_errno()


def _check_name(name: str) -> None:
    if not name or "/" in name or name in (".", "..") or len(name.encode()) > 255 or "\0" in name:
        raise NetnsError(f"invalid network namespace name {name!r}", hint="a file name: no '/', not '.' or '..'")


def path_for(name_or_path: str) -> str:
    """The path of a namespace given by name (``blue``) or by path."""
    if "/" in name_or_path:
        return name_or_path
    _check_name(name_or_path)
    return os.path.join(NETNS_DIR, name_or_path)


def exists(name_or_path: str) -> bool:
    """True if the namespace exists (and is one)."""
    return is_netns(path_for(name_or_path))


def list_names() -> list[str]:
    """The named namespaces under :data:`NETNS_DIR`, sorted (as ``ip netns list``
    shows them, without ids)."""
    try:
        names = os.listdir(NETNS_DIR)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise NetnsError(f"cannot list {NETNS_DIR}: {exc.strerror}") from None
    return sorted(n for n in names if is_netns(os.path.join(NETNS_DIR, n)))


def _not_root(what: str, doing: str = "creating and deleting namespaces") -> NetnsError:
    return NetnsError(f"{what}: permission denied", hint=f"{doing} needs root (CAP_SYS_ADMIN)")


def _prepare_dir() -> None:
    """Make :data:`NETNS_DIR` exist and be a shared mount point (as iproute2 does),
    so that deleting a namespace in one mount namespace frees it everywhere."""
    try:
        os.makedirs(NETNS_DIR, mode=0o755, exist_ok=True)
    except PermissionError:
        raise _not_root(f"cannot create {NETNS_DIR}") from None
    libc = _c()
    target = NETNS_DIR.encode()
    made_mount = False
    while libc.mount(b"", target, b"none", _MS_SHARED | _MS_REC, None) != 0:
        err = _errno()
        if err == errno.EPERM:
            raise _not_root(f"cannot prepare {NETNS_DIR}")
        if err != errno.EINVAL or made_mount:
            raise NetnsError(f"cannot make {NETNS_DIR} a shared mount: {os.strerror(err)}")
        if libc.mount(target, target, b"none", _MS_BIND | _MS_REC, None) != 0:
            raise NetnsError(f"cannot bind-mount {NETNS_DIR} onto itself: {os.strerror(_errno())}")
        made_mount = True


def _on_thread(func: Callable[[], T]) -> T:
    """Run ``func`` on a fresh thread and return its value (or raise its error)."""
    box: dict[str, Any] = {}

    def worker() -> None:
        try:
            box["value"] = func()
        except BaseException as exc:  # handed to the caller below
            box["error"] = exc

    thread = threading.Thread(target=worker, name="libcni_py-netns")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    value: T = box["value"]
    return value


def create(name: str, *, exist_ok: bool = False) -> str:
    """Create the named namespace ``name``; returns its path.

    Args:
        exist_ok: a namespace of that name already existing is fine.

    Raises:
        NetnsError: the name is not a plain file name, is taken (by a
            namespace, unless ``exist_ok``, or by something that is not
            one), not root, or the kernel refused.
    """
    _check_name(name)
    path = path_for(name)
    _prepare_dir()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0)
    except FileExistsError:
        if is_netns(path):
            if exist_ok:
                return path
            raise NetnsError(
                f"network namespace {name!r} already exists", hint="pick another name, or delete it first"
            ) from None
        hint = (
            f"it is the empty file a namespace whose mount went away left: 'cnitool netns del {name}' removes it"
            if is_stale_file(path)
            else "remove it, or pick another name"
        )
        raise NetnsError(f"{path} exists and is not a network namespace", hint=hint) from None
    except PermissionError:
        raise _not_root(f"cannot create {path}") from None
    os.close(fd)

    def make() -> None:
        libc = _c()
        if libc.unshare(CLONE_NEWNET) != 0:
            err = _errno()
            if err == errno.EPERM:
                raise _not_root(f"cannot create network namespace {name!r}")
            raise NetnsError(f"cannot create network namespace {name!r}: {os.strerror(err)}")
        source = f"/proc/self/task/{threading.get_native_id()}/ns/net".encode()
        if libc.mount(source, path.encode(), b"none", _MS_BIND, None) != 0:
            raise NetnsError(f"cannot bind-mount the new namespace on {path}: {os.strerror(_errno())}")

    try:
        _on_thread(make)
    except BaseException:
        try:
            os.unlink(path)
        except OSError:
            pass
        raise
    return path


def is_stale_file(path: str) -> bool:
    """True if ``path`` is what a named namespace leaves when its bind mount
    is gone: an empty regular file in :data:`NETNS_DIR` with nothing mounted
    on it (``ip netns add`` creates such a file and mounts the namespace on
    it; an ``umount``, or a reboot without the mount, leaves the file).

    Such a file holds nothing, and is removed by :func:`delete`.  Anything
    else that is not a namespace (a file with content, a directory, a file
    elsewhere, a namespace of another type mounted there) is left alone.
    """
    import stat

    folder = os.path.dirname(os.path.abspath(path))
    if os.path.realpath(folder) != os.path.realpath(NETNS_DIR):
        return False
    try:
        st = os.lstat(path)
        parent = os.stat(folder)
    except OSError:
        return False
    # a mount on the file (any nsfs file) shows another device than its folder
    return stat.S_ISREG(st.st_mode) and st.st_size == 0 and st.st_dev == parent.st_dev


def delete(name_or_path: str, *, missing_ok: bool = True) -> bool:
    """Delete a named namespace (unmount and remove its file).

    Processes still inside keep the namespace alive until they exit, as with
    ``ip netns del``.  A stale namespace file (:func:`is_stale_file`: the
    namespace's bind mount went away and left the empty file) is removed
    too, as ``ip netns del`` removes it.  Returns True if there was one to
    delete.

    Raises:
        NetnsError: missing (unless ``missing_ok``), not a namespace nor a
            stale namespace file, busy, or not root.
    """
    path = path_for(name_or_path)
    if not os.path.lexists(path):
        if missing_ok:
            return False
        raise NetnsError(f"network namespace {name_or_path!r} does not exist")
    if not is_netns(path):
        if is_stale_file(path):
            _unlink(path)
            return True
        raise NetnsError(
            f"{path} is not a network namespace nor the empty file one leaves behind; not deleting it",
            hint=f"if nothing needs it, remove it yourself (rm {path})",
        )
    libc = _c()
    if libc.umount2(path.encode(), _MNT_DETACH) != 0:
        err = _errno()
        if err == errno.EPERM:
            raise _not_root(f"cannot delete {path}")
        if err == errno.EBUSY:
            raise NetnsError(f"network namespace {path} is busy", hint="something holds a mount on it")
        if err != errno.EINVAL:
            raise NetnsError(f"cannot unmount {path}: {os.strerror(err)}")
    _unlink(path)
    return True


def _unlink(path: str) -> None:
    """Remove a namespace file, with the errors :func:`delete` documents."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        if exc.errno == errno.EBUSY:
            # Still a mount point here: something else was mounted on it too
            # (iproute2 fails the same way).
            raise NetnsError(
                f"network namespace {path} is busy: still mounted after one unmount",
                hint=f"something else is mounted on it; see 'findmnt {path}', unmount it and delete again",
            ) from None
        if exc.errno in (errno.EPERM, errno.EACCES):
            raise _not_root(f"cannot remove {path}") from None
        raise NetnsError(f"cannot remove {path}: {exc.strerror}") from None


@contextlib.contextmanager
def opened(name_or_path: str) -> Iterator[int]:
    """Open a namespace by name or path; yields a file descriptor on it (closed
    on exit), for ``setns`` or for pyroute2 and other tools that take one.

    Holding the descriptor keeps the namespace alive even if it is deleted
    meanwhile.

    Raises:
        NetnsError: it does not exist, cannot be opened, or is not a network
            namespace.
    """
    path = path_for(name_or_path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NetnsError(f"network namespace {name_or_path!r} does not exist") from None
    except OSError as exc:
        raise NetnsError(f"cannot open network namespace {path}: {exc.strerror}") from None
    try:
        import fcntl

        try:
            kind = fcntl.ioctl(fd, NS_GET_NSTYPE)
        except OSError:
            kind = -1
        if kind != CLONE_NEWNET:
            raise NetnsError(f"{path} is not a network namespace")
        yield fd
    finally:
        os.close(fd)


def _enter(path: str) -> None:
    """Move the calling thread into the namespace (worker threads only)."""
    with opened(path) as fd:
        if _c().setns(fd, CLONE_NEWNET) != 0:
            err = _errno()
            if err == errno.EPERM:
                raise _not_root(f"cannot enter network namespace {path}", "entering a namespace")
            raise NetnsError(f"cannot enter network namespace {path}: {os.strerror(err)}")


def run_in(name_or_path: str, func: Callable[..., T], *args: Any) -> T:
    """Call ``func(*args)`` inside the namespace, on a worker thread; returns
    its value.  The calling thread never changes namespace.

    Raises:
        NetnsError: the namespace does not exist or cannot be entered.
    """
    path = path_for(name_or_path)
    if not is_netns(path):
        raise NetnsError(f"network namespace {name_or_path!r} does not exist")

    def inside() -> T:
        _enter(path)
        return func(*args)

    return _on_thread(inside)


def _present(names: tuple[str, ...]) -> tuple[str, ...]:
    import socket

    found = []
    for name in names:
        try:
            socket.if_nametoindex(name)
        except OSError:
            continue
        found.append(name)
    return tuple(found)


def links_present(name_or_path: str, names: Iterable[str]) -> tuple[str, ...] | None:
    """Which of the interfaces ``names`` exist in the namespace; None when
    that cannot be told (no such namespace, or it cannot be entered: not
    root).  Never raises."""
    try:
        return run_in(name_or_path, _present, tuple(names))
    except (NetnsError, OSError):
        return None


def find_command(program: str, env: Mapping[str, str] | None = None) -> str:
    """The path :func:`run_command` would run for ``program``: as given if it
    has a ``/``, else found on ``PATH`` (of ``env``, default ours).

    Raises:
        NetnsError: not found, or not executable.
    """
    import shutil

    environment = os.environ if env is None else env
    found = shutil.which(program, path=environment.get("PATH", os.defpath)) if "/" not in program else program
    if found is not None and os.path.exists(found) and (not os.access(found, os.X_OK) or os.path.isdir(found)):
        raise NetnsError(f"command {program!r} is not an executable file")
    if found is None or not os.path.exists(found):
        where = "" if "/" in program else f" on PATH ({environment.get('PATH', os.defpath)})"
        raise NetnsError(f"command {program!r} not found{where}")
    return found


#: Signals :func:`run_command` relays to the command when asked to.
FORWARDED_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT")

_SI_KERNEL = 0x80


def run_command(
    name_or_path: str,
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    on_start: Callable[[int], None] | None = None,
    forward_signals: bool = False,
) -> int:
    """Run a command inside the namespace with this process's stdin, stdout and
    stderr; returns its exit status (negative: killed by that signal).

    The command starts with default signal handling and an empty signal mask
    (Python ignores SIGPIPE; a command must not inherit that), in this
    process's process group, so a Ctrl-C at the terminal reaches it directly.

    Args:
        argv: the program (looked up on PATH) and its arguments.
        env: its environment (default: ours).
        on_start: called with the child's pid once it runs.
        forward_signals: relay SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to
            this process (by ``kill``) to the command while it runs, as
            ``sudo`` does, instead of letting them interrupt the wait; those a
            terminal sends to the whole process group are not relayed, since
            the command gets them anyway.  The wait ends only when the command
            exits.  For a program's main thread with no other threads (a
            CLI): signals are blocked there and collected with ``sigtimedwait``.

    Raises:
        NetnsError: the namespace cannot be entered, or the program not run.
        KeyboardInterrupt: (without ``forward_signals``) the wait was
            interrupted; the command was killed and reaped first.
    """
    import signal

    from .edges.spawn import _RESET_SIGNALS

    path = path_for(name_or_path)
    if not is_netns(path):
        raise NetnsError(f"network namespace {name_or_path!r} does not exist")
    if not argv:
        raise NetnsError("no command given")
    environment = dict(os.environ if env is None else env)
    program = find_command(argv[0], environment)
    if forward_signals and threading.current_thread() is not threading.main_thread():
        raise NetnsError("run_command(forward_signals=True) must be called from the main thread")

    def start() -> int:
        _enter(path)
        try:
            return os.posix_spawn(program, list(argv), environment, setsigdef=_RESET_SIGNALS, setsigmask=())
        except OSError as exc:
            raise NetnsError(f"cannot run {program}: {exc.strerror}") from None

    watched = {signal.SIGCHLD, *(signal.Signals[name] for name in FORWARDED_SIGNALS)}
    # Blocked while the command starts, so that no interrupt falls between the
    # start and the wait (a command nobody waits for would be left running).
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, watched)
    try:
        pid = _on_thread(start)
        try:
            if not forward_signals:
                signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
            if on_start is not None:
                on_start(pid)
            if forward_signals:
                return _wait_forwarding(pid, watched)
            _, status = os.waitpid(pid, 0)
            return os.waitstatus_to_exitcode(status)
        except ChildProcessError:
            raise NetnsError(f"lost track of {program} (pid {pid}): is SIGCHLD ignored?") from None
        except BaseException:
            _kill(pid)
            raise
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)


def _kill(pid: int) -> None:
    """Kill and reap a command whose wait was interrupted."""
    import signal

    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except OSError:
        pass


def _wait_forwarding(pid: int, watched: set[Any]) -> int:
    """Wait for ``pid`` with ``watched`` blocked, relaying signals sent by
    other processes; a signal generated by the kernel (the terminal's Ctrl-C,
    sent to the whole process group) already reached the command."""
    import signal

    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        info = signal.sigtimedwait(watched, 1.0)
        if info is None or info.si_signo == signal.SIGCHLD or info.si_code == _SI_KERNEL:
            continue
        try:
            os.kill(pid, info.si_signo)
        except ProcessLookupError:
            pass


async def acreate(name: str, *, exist_ok: bool = False) -> str:
    """:func:`create` for trio (in a worker thread)."""
    import trio

    return await trio.to_thread.run_sync(lambda: create(name, exist_ok=exist_ok))


async def adelete(name_or_path: str, *, missing_ok: bool = True) -> bool:
    """:func:`delete` for trio (in a worker thread)."""
    import trio

    return await trio.to_thread.run_sync(lambda: delete(name_or_path, missing_ok=missing_ok))


async def arun_in(name_or_path: str, func: Callable[..., T], *args: Any) -> T:
    """:func:`run_in` for trio (the work runs in a worker thread)."""
    import trio

    return await trio.to_thread.run_sync(lambda: run_in(name_or_path, func, *args))
