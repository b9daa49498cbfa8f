"""Starting a plugin process and moving bytes through its pipes.

Shared by both drivers (:mod:`libcni_py.exec_sync`, :mod:`libcni_py.exec_trio`),
which differ only in how they wait for readiness.

* The plugin starts with ``posix_spawn`` (glibc uses ``vfork``: cheap even
  from a large process) in **its own session**, so that on a timeout or
  cancellation the whole process group -- the plugin and everything it
  started -- is killed with one ``killpg``.  The group is killed *before* the
  plugin is reaped, so its ID cannot have been reused.
* Signal dispositions are reset (Python ignores SIGPIPE; plugins should not
  inherit that) and the signal mask is cleared.
* Only stdin, stdout and stderr are inherited (everything else is
  close-on-exec).
* Output is bounded: stdout beyond :data:`~libcni_py.invoke.MAX_STDOUT` is an
  error (the plugin is killed); stderr beyond
  :data:`~libcni_py.invoke.MAX_STDERR_KEPT` is read and counted, not kept.
* A plugin that never reads its stdin, or closes it early, is fine: writes
  that would block wait for readiness, and a broken pipe ends the writing.
* Exit is observed through a pidfd, so no SIGCHLD handler is involved.
"""

from __future__ import annotations

import errno
import os

from .invoke import MAX_STDERR_KEPT, MAX_STDOUT, ExecOutcome

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

__all__ = ["Child", "GRACE_AFTER_EXIT", "start", "start_error"]

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
_RESET_SIGNALS: tuple[int, ...] = (
    _signals.SIGPIPE,
    _signals.SIGXFSZ,
    _signals.SIGINT,
    _signals.SIGTERM,
    _signals.SIGHUP,
)


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

    def reap(self, *, block: bool) -> bool:
        """Collect the exit status; True once reaped."""
        if self.returncode is not None:
            return True
        try:
            pid, status = os.waitpid(self.pid, 0 if block else os.WNOHANG)
        except ChildProcessError:
            self.returncode = -_SIGKILL if self.killed else 255
            return True
        if pid == 0:
            return False
        self.returncode = os.waitstatus_to_exitcode(status)
        if self.pidfd >= 0:
            os.close(self.pidfd)
            self.pidfd = -1
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
    if exc.errno == errno.EACCES:
        return "permission denied (is the file executable? chmod +x it)"
    if exc.errno == errno.ENOEXEC:
        return "not an executable this machine can run (wrong architecture, or a script without #!)"
    if exc.errno == errno.ENOENT:
        return "no such file (or its #! interpreter is missing)"
    if exc.errno == errno.ETXTBSY:
        return "the binary is being written (text file busy); gave up after retrying"
    return exc.strerror or str(exc)
