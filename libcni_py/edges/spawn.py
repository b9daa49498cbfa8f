"""Starting a plugin process and moving bytes through its pipes.

Shared by both drivers (:mod:`libcni_py.drivers.blocking`, :mod:`libcni_py.drivers.async_trio`),
which differ only in how they wait for readiness.

* The plugin starts with ``posix_spawn`` (glibc uses ``vfork``: cheap even
  from a large process) in **its own session**.  On a timeout or
  cancellation :meth:`Child.kill_tree` kills the plugin and *every
  descendant* -- also those that left its process group or session (a
  grandchild that called ``setsid()``): see "Killing the whole tree" below.
  Everything is killed *before* the plugin is reaped, so no ID can have been
  reused meanwhile.
* Signal dispositions are reset (Python ignores SIGPIPE; plugins should not
  inherit that) and the signal mask is cleared.
* Only stdin, stdout and stderr are inherited (everything else is
  close-on-exec).
* Output is bounded: stdout beyond :data:`~libcni_py.core.plugin_call.MAX_STDOUT` is an
  error (the plugin is killed); stderr beyond
  :data:`~libcni_py.core.plugin_call.MAX_STDERR_KEPT` is read and counted, not kept.
* A plugin that never reads its stdin, or closes it early, is fine: writes
  that would block wait for readiness, and a broken pipe ends the writing.
* Exit is observed through a pidfd, so no SIGCHLD handler is involved.

Killing the whole tree
----------------------
A process group is not a fence: any descendant can ``setsid()`` (or
``setpgid()``) and survive ``killpg``.  So at the deadline the tree is found
by walking ``/proc/*/stat`` parent links down from the plugin: each process
found is stopped (``SIGSTOP``, so that it cannot fork further while the walk
goes on), the walk repeats until it finds nothing new, then everything --
and the plugin's process group -- gets ``SIGKILL``.  The processes killed are
kept (:attr:`Child.killed_tree`: pid, command line, whether it had left the
plugin's session) for the error message.

The walk only sees descendants still linked to the plugin.  A process whose
parent exited (a double-``fork`` daemon) is re-parented to the nearest
*child subreaper*, or to init, where no walk can tell it came from a plugin.
:func:`become_subreaper` makes this process that subreaper
(``prctl(PR_SET_CHILD_SUBREAPER)``): such orphans then become *our*
children, and at a deadline those that started after the plugin did are
killed with its tree and reaped.  That setting is **process-wide** and
inherited by nothing (it is not passed on by ``fork``), but it means every
orphan of every descendant of this process -- not only of plugins -- is
re-parented here and must be reaped here; so the one-shot CLI turns it on
(it starts nothing else, and reaps at exit), and a library embedding
leaves it off unless the runtime calls :func:`become_subreaper` itself
(docs/reliability.md).  A cgroup per call would fence the tree without
either limit, but needs a delegated cgroup v2 subtree that a runtime's own
cgroup rarely grants; ``/proc`` and ``prctl`` work everywhere, unprivileged.
With several plugins running at once (the trio driver) adopted orphans
cannot be told apart, so they are only killed when one plugin runs.
"""

from __future__ import annotations

import errno
import os

from ..core.plugin_call import MAX_STDERR_KEPT, MAX_STDOUT, ExecOutcome
from ..errors import os_reason

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

__all__ = [
    "Child",
    "GRACE_AFTER_EXIT",
    "become_subreaper",
    "command_line",
    "hold_interrupts",
    "kill_live",
    "proc_stat",
    "release_interrupts",
    "start",
    "start_error",
]

#: After the plugin exits, how long to keep reading pipes that something it
#: left running still holds open.
GRACE_AFTER_EXIT = 1.0


def _signal_numbers() -> Any:
    """The C module behind :mod:`signal`: the same numbers, without the enums
    ``signal`` builds on import (with ``enum`` itself, ~4 ms of a one-shot CLI)."""
    try:
        return __import__("_signal")
    except ImportError:  # pragma: no cover - CPython always has it
        import signal

        return signal


_signals = _signal_numbers()
_SIGKILL: int = _signals.SIGKILL
_SIGSTOP: int = _signals.SIGSTOP
#: The signals a runtime or a person interrupts an operation with.
INTERRUPTS: tuple[int, ...] = (_signals.SIGINT, _signals.SIGTERM, _signals.SIGHUP)
_RESET_SIGNALS: tuple[int, ...] = (
    _signals.SIGPIPE,
    _signals.SIGXFSZ,
    _signals.SIGINT,
    _signals.SIGTERM,
    _signals.SIGHUP,
)


#: pid -> Child, for every plugin started and not yet reaped (see :func:`kill_live`).
_live: dict[int, Child] = {}
#: process-wide settings: "subreaper" once :func:`become_subreaper` worked
_process = {"subreaper": False}


def become_subreaper() -> bool:
    """Make this process a child subreaper (``PR_SET_CHILD_SUBREAPER``), so
    that orphans of plugins' descendants are re-parented here, where a
    deadline can find and kill them (see the module docstring for what this
    changes process-wide).  Returns whether it worked (Linux >= 3.4)."""
    if not _process["subreaper"]:
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            _process["subreaper"] = libc.prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
        except (OSError, AttributeError):  # pragma: no cover - not Linux, or no prctl
            pass
    return _process["subreaper"]


def hold_interrupts() -> object:
    """Block SIGINT, SIGTERM and SIGHUP in this thread (they stay pending)
    until :func:`release_interrupts`: a plugin started in between is known to
    its caller before an interrupt can unwind past it.  Returns the old mask."""
    return _signals.pthread_sigmask(_signals.SIG_BLOCK, INTERRUPTS)


def release_interrupts(old: object) -> None:
    """Restore the mask :func:`hold_interrupts` returned (pending signals are
    delivered now)."""
    _signals.pthread_sigmask(_signals.SIG_SETMASK, old)


def kill_live() -> int:
    """Kill (tree and all) and reap every plugin this process started and has
    not reaped: the last line of defence of a process about to exit.
    Returns how many there were."""
    children = list(_live.values())
    for child in children:
        child.kill_tree()
        child.reap(block=True)
        child.close()
    return len(children)


def proc_stat(pid: str) -> tuple[int, int, int, str] | None:
    """(ppid, session, start time, state) from ``/proc/PID/stat``, or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2 :].split()
    try:
        return int(fields[1]), int(fields[3]), int(fields[19]), fields[0].decode()
    except (IndexError, ValueError):
        return None


def command_line(pid: int, limit: int = 200) -> str:
    """A process's command line for messages, cut at ``limit`` characters
    ("" if it is gone)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            raw = fh.read(4096)
    except OSError:
        return ""
    text = raw.rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _tree(roots: set[int], table: dict[int, tuple[int, int, int, str]]) -> set[int]:
    """``roots`` and every process below them by parent links."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, *_rest) in table.items():
        children.setdefault(ppid, []).append(pid)
    found: set[int] = set()
    todo = [r for r in roots if r in table]
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, ()))
    return found


def _process_table() -> dict[int, tuple[int, int, int, str]]:
    table = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            stat = proc_stat(name)
            if stat is not None:
                table[int(name)] = stat
    return table


def _pipe() -> tuple[int, int]:
    r, w = os.pipe2(os.O_CLOEXEC)
    return _above_stdio(r), _above_stdio(w)


def _above_stdio(fd: int) -> int:
    """Keep pipe ends clear of 0-2, in case our own stdio was closed."""
    if fd > 2:
        return fd
    import fcntl

    new = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
    os.close(fd)
    return new


class Child:
    """A started plugin process and its three pipes (our ends non-blocking).

    Attributes:
        pid: the process ID (also its process group and session ID).
        pidfd: a pidfd that becomes readable when it exits, or -1.
        stdin_fd, stdout_fd, stderr_fd: our ends of the pipes (-1 once closed).
        returncode: exit status once reaped (negative: killed by that signal).
        overflow: stdout went over the limit.
    """

    def __init__(self, pid: int, stdin_fd: int, stdout_fd: int, stderr_fd: int, stdin_data: bytes) -> None:
        self.pid = pid
        try:
            self.pidfd = os.pidfd_open(pid)
        except (OSError, AttributeError):
            self.pidfd = -1
        self.stdin_fd = stdin_fd
        self.stdout_fd = stdout_fd
        self.stderr_fd = stderr_fd
        self._stdin = memoryview(stdin_data)
        self._stdout: list[bytes] = []
        self._stdout_len = 0
        self._stderr: list[bytes] = []
        self._stderr_len = 0
        self.stderr_dropped = 0
        self.returncode: int | None = None
        self.overflow = False
        self.killed = False
        #: what :meth:`kill_tree` killed: (pid, command line, left the session)
        self.killed_tree: list[tuple[int, str, bool]] = []
        _live[pid] = self
        for fd in (stdin_fd, stdout_fd, stderr_fd):
            os.set_blocking(fd, False)
        if not stdin_data:
            self.close_stdin()

    # -- pipes ---------------------------------------------------------------

    def close_stdin(self) -> None:
        """Close our end of stdin (EOF for the plugin)."""
        if self.stdin_fd >= 0:
            os.close(self.stdin_fd)
            self.stdin_fd = -1

    def write_stdin(self) -> bool:
        """Write what the pipe takes; True once everything is written or the
        plugin closed its end (stdin is then closed)."""
        if self.stdin_fd < 0:
            return True
        try:
            while self._stdin:
                written = os.write(self.stdin_fd, self._stdin[:65536])
                self._stdin = self._stdin[written:]
        except BlockingIOError:
            return False
        except OSError as exc:
            if exc.errno not in (errno.EPIPE, errno.ECONNRESET):
                raise
        self.close_stdin()
        return True

    def read_stdout(self) -> bool:
        """Read what is there; True at end of file (or overflow)."""
        if self.stdout_fd < 0:
            return True
        while True:
            try:
                chunk = os.read(self.stdout_fd, 65536)
            except BlockingIOError:
                return False
            if not chunk:
                os.close(self.stdout_fd)
                self.stdout_fd = -1
                return True
            self._stdout_len += len(chunk)
            if self._stdout_len > MAX_STDOUT:
                self.overflow = True
                os.close(self.stdout_fd)
                self.stdout_fd = -1
                return True
            self._stdout.append(chunk)

    def read_stderr(self) -> bool:
        """Read what is there, keeping only the first bytes; True at EOF."""
        if self.stderr_fd < 0:
            return True
        while True:
            try:
                chunk = os.read(self.stderr_fd, 65536)
            except BlockingIOError:
                return False
            if not chunk:
                os.close(self.stderr_fd)
                self.stderr_fd = -1
                return True
            room = MAX_STDERR_KEPT - self._stderr_len
            if room > 0:
                self._stderr.append(chunk[:room])
                self._stderr_len += min(room, len(chunk))
            self.stderr_dropped += max(0, len(chunk) - max(room, 0))

    @property
    def stdout(self) -> bytes:
        """What was read from stdout."""
        return b"".join(self._stdout)

    @property
    def stderr(self) -> bytes:
        """What was kept of stderr."""
        return b"".join(self._stderr)

    @property
    def pipes_open(self) -> bool:
        """True while stdout or stderr may still deliver data."""
        return self.stdout_fd >= 0 or self.stderr_fd >= 0

    # -- the process ---------------------------------------------------------

    def kill_group(self) -> None:
        """SIGKILL the plugin and everything in its process group (only
        before it is reaped, so that the ID is still ours)."""
        if self.returncode is None:
            self.killed = True
            try:
                os.killpg(self.pid, _SIGKILL)
            except ProcessLookupError:
                pass
            except PermissionError:
                os.kill(self.pid, _SIGKILL)

    def kill_tree(self) -> None:
        """SIGKILL the plugin, its process group and every descendant, also
        those that left the group or session (module docstring); only before
        the plugin is reaped.  :meth:`reap` then also reaps the orphans that
        were re-parented to us."""
        if self.returncode is not None:
            return
        me = os.getpid()
        found: dict[int, tuple[int, int, int, str]] = {}
        for _ in range(100):  # each round stops what it finds; a fork bomb ends too
            table = _process_table()
            own = table.get(self.pid)
            roots = {self.pid}
            if _process["subreaper"] and own is not None and len(_live) == 1:
                # orphans re-parented to us that started after this plugin did
                roots |= {pid for pid, st in table.items() if st[0] == me and pid != self.pid and st[2] >= own[2]}
            new = {pid: table[pid] for pid in _tree(roots, table) if pid not in found and pid != me}
            if not new:
                break
            for pid in new:
                try:
                    os.kill(pid, _SIGSTOP)
                except OSError:
                    pass
            found.update(new)
        session = found[self.pid][1] if self.pid in found else self.pid
        self.killed_tree = [(pid, command_line(pid), st[1] != session) for pid, st in sorted(found.items())]
        self.kill_group()
        for pid in found:
            try:
                os.kill(pid, _SIGKILL)
            except OSError:
                pass

    def reap(self, *, block: bool) -> bool:
        """Collect the exit status; True once reaped."""
        if self.returncode is not None:
            return True
        try:
            pid, status = os.waitpid(self.pid, 0 if block else os.WNOHANG)
        except ChildProcessError:
            self.returncode = -_SIGKILL if self.killed else 255
            _live.pop(self.pid, None)
            return True
        if pid == 0:
            return False
        self.returncode = os.waitstatus_to_exitcode(status)
        _live.pop(self.pid, None)
        if self.pidfd >= 0:
            os.close(self.pidfd)
            self.pidfd = -1
        for other, _command, _left in self.killed_tree:
            if other != self.pid:  # adopted by us (subreaper) once the plugin died: reap
                try:
                    os.waitpid(other, 0)
                except ChildProcessError:
                    pass
        return True

    def outcome(self, *, duration: float, timed_out: bool) -> ExecOutcome:
        """What the run did, once the process is reaped and the pipes drained."""
        return ExecOutcome(
            returncode=self.returncode if self.returncode is not None else -9,
            stdout=self.stdout,
            stderr=self.stderr,
            stderr_dropped=self.stderr_dropped,
            duration=duration,
            timed_out=timed_out,
            overflow=self.overflow,
            pid=self.pid,
            killed=tuple(
                f"{pid} ({command or '?'}{', had left its session' if left else ''})"
                for pid, command, left in self.killed_tree
                if pid != self.pid
            ),
        )

    def close(self) -> None:
        """Close every descriptor still open (the process must be reaped)."""
        for name in ("stdin_fd", "stdout_fd", "stderr_fd", "pidfd"):
            fd = getattr(self, name)
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
                setattr(self, name, -1)


def start(path: str, stdin_data: bytes, env: Mapping[str, str]) -> Child:
    """Start ``path`` with ``env``, its stdio on new pipes, in a new session.

    Raises:
        OSError: it could not be started (``ETXTBSY`` while the binary is
            being replaced, ``EACCES`` not executable, ``ENOEXEC``, ``EINVAL``
            for a NUL byte in the path or environment...).
    """
    in_r, in_w = _pipe()
    out_r, out_w = _pipe()
    err_r, err_w = _pipe()
    try:
        pid = os.posix_spawn(
            path,
            [path],
            env,
            file_actions=[
                (os.POSIX_SPAWN_DUP2, in_r, 0),
                (os.POSIX_SPAWN_DUP2, out_w, 1),
                (os.POSIX_SPAWN_DUP2, err_w, 2),
            ],
            setsid=True,
            setsigdef=_RESET_SIGNALS,
            setsigmask=(),
        )
    except BaseException as exc:
        for fd in (in_w, out_r, err_r):
            os.close(fd)
        if isinstance(exc, ValueError):  # a NUL byte in the path or the environment
            raise OSError(errno.EINVAL, f"cannot be started: {exc}") from None
        raise
    finally:
        for fd in (in_r, out_w, err_w):
            os.close(fd)
    return Child(pid, in_w, out_r, err_r, stdin_data)


def start_error(exc: OSError) -> str:
    """A person's explanation of why a plugin could not be started."""
    return os_reason(exc, "start")
