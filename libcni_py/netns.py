"""Network namespaces: create, delete, list, test, and work inside them.

Named namespaces live where ``ip netns`` keeps them, ``/var/run/netns/<name>``
(a bind mount of the namespace's nsfs file), so namespaces made here and by
``ip netns add`` are the same thing to both tools.  Creation follows
iproute2: the directory is made a shared mount point, an empty file is
created, and a namespace made by ``unshare(CLONE_NEWNET)`` is bind-mounted
onto it.

Nothing here changes the namespace of the calling thread.  Work that must
happen inside a namespace (:func:`run_in`, :func:`spawn_in`) runs on a
short-lived worker thread that enters it with ``setns``; that thread dies
afterwards, so neither the caller's thread nor a trio event loop ever moves.
Processes started from such a thread (:func:`run_command`) are born inside
the namespace.  Netlink work uses pyroute2 on such a thread (a socket stays
bound to the namespace it was made in).

Blocking functions come with trio forms (``a``-prefixed) that run them in a
worker thread.  Errors are :class:`~libcni_py.errors.NetnsError`, with the
reason a person can act on (name taken, not root, not a namespace, busy).
"""

from __future__ import annotations

import errno
import os
import threading

from .errors import NetnsError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any, TypeVar

    T = TypeVar("T")

__all__ = [
    "NETNS_DIR",
    "acreate",
    "adelete",
    "arun_in",
    "create",
    "delete",
    "exists",
    "is_netns",
    "list_names",
    "path_for",
    "run_command",
    "run_in",
]

NETNS_DIR = "/var/run/netns"

_CLONE_NEWNET = 0x40000000
_MS_BIND = 4096
_MS_REC = 16384
_MS_SHARED = 1 << 20
_MNT_DETACH = 2
_NS_GET_NSTYPE = 0xB703

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


def is_netns(path: str) -> bool:
    """True if ``path`` is a network namespace file (an nsfs file of type net)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        import fcntl

        return fcntl.ioctl(fd, _NS_GET_NSTYPE) == _CLONE_NEWNET
    except OSError:
        return False
    finally:
        os.close(fd)


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


def _not_root(what: str) -> NetnsError:
    return NetnsError(f"{what}: permission denied", hint="creating and deleting namespaces needs root (CAP_SYS_ADMIN)")


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
        NetnsError: the name is taken (by a namespace, unless ``exist_ok``,
            or by something that is not one), not root, or the kernel refused.
    """
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
        raise NetnsError(f"{path} exists and is not a network namespace", hint="remove the stale file") from None
    except PermissionError:
        raise _not_root(f"cannot create {path}") from None
    os.close(fd)

    def make() -> None:
        libc = _c()
        if libc.unshare(_CLONE_NEWNET) != 0:
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


def delete(name_or_path: str, *, missing_ok: bool = True) -> bool:
    """Delete a named namespace (unmount and remove its file).

    Processes still inside keep the namespace alive until they exit, as with
    ``ip netns del``.  Returns True if there was one to delete.

    Raises:
        NetnsError: missing (unless ``missing_ok``), not a namespace, busy,
            or not root.
    """
    path = path_for(name_or_path)
    if not os.path.lexists(path):
        if missing_ok:
            return False
        raise NetnsError(f"network namespace {name_or_path!r} does not exist")
    if not is_netns(path):
        raise NetnsError(f"{path} is not a network namespace; not deleting it")
    libc = _c()
    if libc.umount2(path.encode(), _MNT_DETACH) != 0:
        err = _errno()
        if err == errno.EPERM:
            raise _not_root(f"cannot delete {path}")
        if err == errno.EBUSY:
            raise NetnsError(f"network namespace {path} is busy", hint="something holds a mount on it")
        if err != errno.EINVAL:
            raise NetnsError(f"cannot unmount {path}: {os.strerror(err)}")
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise NetnsError(f"cannot remove {path}: {exc.strerror}") from None
    return True


def _enter(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _c().setns(fd, _CLONE_NEWNET) != 0:
            raise NetnsError(f"cannot enter network namespace {path}: {os.strerror(_errno())}")
    finally:
        os.close(fd)


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


def run_command(
    name_or_path: str,
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    on_start: Callable[[int], None] | None = None,
) -> int:
    """Run a command inside the namespace with this process's stdin, stdout and
    stderr; returns its exit status (negative: killed by that signal).

    Args:
        argv: the program (looked up on PATH) and its arguments.
        env: its environment (default: ours).
        on_start: called with the child's pid once it runs (to forward signals).

    Raises:
        NetnsError: the namespace cannot be entered, or the program not run.
    """
    import shutil

    path = path_for(name_or_path)
    if not is_netns(path):
        raise NetnsError(f"network namespace {name_or_path!r} does not exist")
    if not argv:
        raise NetnsError("no command given")
    environment = dict(os.environ if env is None else env)
    program = argv[0] if "/" in argv[0] else shutil.which(argv[0], path=environment.get("PATH"))
    if program is None:
        raise NetnsError(f"command {argv[0]!r} not found on PATH")

    def start() -> int:
        _enter(path)
        try:
            return os.posix_spawn(program, list(argv), environment)
        except OSError as exc:
            raise NetnsError(f"cannot run {program}: {exc.strerror}") from None

    pid = _on_thread(start)
    if on_start is not None:
        on_start(pid)
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            return os.waitstatus_to_exitcode(status)
        except ChildProcessError:
            return -1
        except InterruptedError:
            continue


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
