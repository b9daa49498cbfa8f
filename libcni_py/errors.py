"""The one error tree of libcni_py.

Every failure the package reports is a :class:`CNIError`.  Raw ``OSError``,
``json.JSONDecodeError`` and friends are translated at the edge where they
happen, so callers catch one root class, and the CLI maps the tree to exit
codes in one place (:mod:`libcni_py.cli.main`).

Where the CNI specification defines a well-known error code, the exception
carries it in :attr:`CNIError.code` (see ``CODE_*`` below); plugin errors keep
the code, ``msg`` and ``details`` the plugin returned, plus its stderr.

Messages are written for a person at a terminal: one line that says what went
wrong and where (file and JSON path, plugin, container), and ``hint`` says what
to do about it.
"""

from __future__ import annotations

import errno

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Literal

    OsUse = Literal["read", "start", "store"]

# Well-known error codes (SPEC.md, "Error" section).
CODE_INCOMPATIBLE_VERSION = 1
CODE_UNSUPPORTED_FIELD = 2
CODE_UNKNOWN_CONTAINER = 3
CODE_INVALID_ENVIRONMENT = 4
CODE_IO_FAILURE = 5
CODE_DECODING_FAILURE = 6
CODE_INVALID_NETWORK_CONFIG = 7
CODE_TRY_AGAIN_LATER = 11
CODE_PLUGIN_NOT_AVAILABLE = 50
CODE_PLUGIN_NOT_AVAILABLE_LIMITED = 51

__all__ = [
    "CODE_DECODING_FAILURE",
    "CODE_INCOMPATIBLE_VERSION",
    "CODE_INVALID_ENVIRONMENT",
    "CODE_INVALID_NETWORK_CONFIG",
    "CODE_IO_FAILURE",
    "CODE_PLUGIN_NOT_AVAILABLE",
    "CODE_PLUGIN_NOT_AVAILABLE_LIMITED",
    "CODE_TRY_AGAIN_LATER",
    "CODE_UNKNOWN_CONTAINER",
    "CODE_UNSUPPORTED_FIELD",
    "os_reason",
    "ArgsError",
    "CNIError",
    "CacheError",
    "CRIError",
    "ConfigError",
    "DecodeError",
    "InvalidNameError",
    "InvalidResultError",
    "LeftoverError",
    "LockTimeoutError",
    "LockUnavailableError",
    "MultiError",
    "NetnsError",
    "NetworkNotFoundError",
    "NetworkNotReadyError",
    "PluginError",
    "PluginExecError",
    "PluginNotFoundError",
    "PluginTimeoutError",
    "UnsupportedOperationError",
    "VersionError",
]


class _ErrorType(type):
    """The metaclass of the error tree: ``dir()`` of an error class lists what
    the tree defines, not the machinery every exception inherits from
    ``BaseException`` (``args``, ``with_traceback``, ``add_note``...), so
    that ``help()`` shows each error in a few lines, not a page.  Those
    attributes still work; they are only not listed."""

    def __dir__(cls) -> list[str]:
        names: set[str] = set()
        for klass in cls.__mro__:
            if klass not in (BaseException, Exception, object):
                names.update(vars(klass))
        return sorted(names - _NOT_LISTED)


#: Class bookkeeping every class has, not listed by ``dir()`` of an error class.
_NOT_LISTED = frozenset({"__annotations__", "__dict__", "__doc__", "__module__", "__qualname__", "__weakref__"})


class CNIError(Exception, metaclass=_ErrorType):
    """Root of every error raised by libcni_py.

    Attributes:
        msg: what went wrong, one line.
        code: the CNI well-known error code, where one applies, else None.
        details: extra detail (a plugin's ``details`` field, say).
        hint: what a person can do about it; may be empty.
    """

    default_code: int | None = None

    def __init__(
        self,
        msg: str,
        *,
        code: int | None = None,
        details: str = "",
        hint: str = "",
    ) -> None:
        super().__init__(msg)
        self.msg = msg
        self.code = self.default_code if code is None else code
        self.details = details
        self.hint = hint

    def __str__(self) -> str:
        if self.details:
            return f"{self.msg}: {self.details}"
        return self.msg

    def one_line(self) -> str:
        """The message and the hint, on one line, for a terminal."""
        text = " ".join(str(self).split())
        if self.hint:
            text = f"{text} ({self.hint})"
        return text


class DecodeError(CNIError):
    """Bytes that are not the JSON they should be (code 6).

    Raised by :mod:`libcni_py.core.gojson`; callers that know the context (a file,
    a plugin's stdout, a cache file) re-raise it as a more specific error.
    """

    default_code = CODE_DECODING_FAILURE


class ConfigError(CNIError):
    """A network configuration that cannot be used (code 7).

    Attributes:
        file: the file (or other source) the configuration came from.
        path: the JSON path of the fault inside it (``plugins[1].type``), or "".
    """

    default_code = CODE_INVALID_NETWORK_CONFIG

    def __init__(self, file: str, path: str, msg: str, *, hint: str = "") -> None:
        self.file = file
        self.path = path
        self.problem = msg
        where = f"{file}: {path}" if path else file
        super().__init__(f"{where}: {msg}", hint=hint)


class NetworkNotFoundError(ConfigError):
    """No configuration in the conf dir has the network name asked for."""

    def __init__(self, conf_dir: str, name: str, *, seen: Sequence[str] = ()) -> None:
        self.conf_dir = conf_dir
        self.name = name
        self.seen = tuple(seen)
        names = ", ".join(sorted(set(self.seen))) or "none"
        super().__init__(
            conf_dir,
            "",
            f'no network named "{name}" (networks found: {names})',
            hint='the name is the "name" field inside a .conflist/.conf/.json file, not the file name',
        )


class InvalidNameError(CNIError):
    """A container ID, network name or interface name that is not allowed.

    These names become parts of cache file paths, so they are checked before
    any plugin runs and before any path is built, on every operation.
    """

    def __init__(self, field: str, value: str, problem: str, *, code: int, where: str = "") -> None:
        self.field = field
        self.value = value
        prefix = f"{where}: " if where else ""
        super().__init__(
            f"{prefix}{field} {value!r}: {problem}",
            code=code,
            hint="allowed: letters, digits, '_', '.', '-', starting with a letter or digit"
            if field != "interface name"
            else "1 to 15 bytes, not '.' or '..', no '/', ':' or white space",
        )


class VersionError(CNIError):
    """A CNI spec version that is unknown, malformed or not supported (code 1)."""

    default_code = CODE_INCOMPATIBLE_VERSION


class UnsupportedOperationError(CNIError):
    """An operation the configuration's version does not have (CHECK < 0.4.0)."""

    default_code = CODE_INCOMPATIBLE_VERSION


class ArgsError(CNIError):
    """Malformed CNI_ARGS or capability arguments (code 4).

    Messages never quote capability-argument values: they may hold secrets.
    """

    default_code = CODE_INVALID_ENVIRONMENT


class PluginNotFoundError(CNIError):
    """The plugin binary named by ``type`` is in none of the plugin directories."""

    def __init__(
        self, plugin_type: str, dirs: Sequence[str], *, reason: str = "", elsewhere: Sequence[str] = ()
    ) -> None:
        self.plugin_type = plugin_type
        self.dirs = tuple(dirs)
        #: directories outside ``dirs`` where a binary of that name is installed
        self.elsewhere = tuple(elsewhere)
        searched = ":".join(self.dirs) if self.dirs else "(no directories)"
        msg = reason or f'plugin "{plugin_type}" not found in {searched}'
        if self.elsewhere:
            hint = (
                f"it is installed in {', '.join(self.elsewhere)}, which is not searched: "
                "point CNI_PATH / --plugin-path there, or install it into a searched directory"
            )
        else:
            hint = "install it there, or point CNI_PATH / --plugin-path at the directory that has it"
        super().__init__(msg, hint=hint)


class PluginError(CNIError):
    """A plugin ran and reported failure.

    Attributes:
        plugin_type: the plugin's ``type``.
        plugin_name: the plugin object's own ``name``, if it had one.
        command: ADD, CHECK, DEL, GC, STATUS or VERSION.
        code: the error code the plugin returned (0 when it gave none).
        stderr: what the plugin wrote on stderr (bounded; as written, while
            the message has capability-argument values blanked out).
        network: the network the call was for ("" for VERSION).
    """

    def __init__(
        self,
        msg: str,
        *,
        plugin_type: str,
        command: str,
        code: int | None = None,
        details: str = "",
        stderr: bytes = b"",
        plugin_name: str = "",
        hint: str = "",
        network: str = "",
    ) -> None:
        self.plugin_type = plugin_type
        self.plugin_name = plugin_name
        self.command = command
        self.stderr = stderr
        self.plugin_msg = msg
        self.network = network
        desc = f'type="{plugin_type}"'
        if plugin_name:
            desc += f' name="{plugin_name}"'
        prefix = f'network "{network}": ' if network else ""
        super().__init__(
            f"{prefix}plugin {desc} failed ({command.lower()}): {msg}",
            code=code,
            details=details,
            hint=hint,
        )

    @property
    def retryable(self) -> bool:
        """True when the plugin said "try again later" (code 11)."""
        return self.code == CODE_TRY_AGAIN_LATER

    @property
    def not_ready(self) -> bool:
        """True for the STATUS codes 50 and 51 ("plugin not available")."""
        return self.code in (CODE_PLUGIN_NOT_AVAILABLE, CODE_PLUGIN_NOT_AVAILABLE_LIMITED)


class PluginExecError(PluginError):
    """The plugin could not be run, or did not finish properly.

    Not started, killed by a signal, wrote too much, closed its output early
    and so on.  ``code`` is None: these errors come from the runtime, not from
    an error object the plugin wrote.
    """


class PluginTimeoutError(PluginExecError):
    """The plugin did not finish within the per-call deadline; it and every
    process it started were killed."""


class InvalidResultError(PluginError):
    """The plugin exited 0 but its output is not a valid result (code 6)."""

    default_code = CODE_DECODING_FAILURE


class CacheError(CNIError):
    """A cache file that cannot be read, written or trusted (code 5)."""

    default_code = CODE_IO_FAILURE

    def __init__(self, path: str, problem: str, *, hint: str = "") -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}", hint=hint)


class LockTimeoutError(CacheError):
    """A lock another process holds was not released by the operation's
    deadline (``--timeout``); the message names the holder (CLI exit 75:
    try again later)."""


class LockUnavailableError(CacheError):
    """An attachment's lock file neither exists nor can be created (a
    read-only cache directory, one of another user, something planted in
    its place): there is no lock to take, for anyone who sees the same
    directory.  DEL and GC go on without it; ADD and CHECK stop."""


class LeftoverError(CNIError):
    """A DEL whose plugins all reported success, but after which the pod's
    interface is still in its namespace: a plugin answered success without
    undoing anything (Flannel's plugin from v1.2.0 does when a DEL is
    retried after its delegate's DEL failed).  The attachment's record is
    kept, state "deleting", with what is left (``libcniPy.leftover``)."""


class NetnsError(CNIError):
    """A network namespace that cannot be created, opened, used or deleted."""


class NetworkNotReadyError(CNIError):
    """The pod network is not ready (CRI's ``NetworkReady`` condition is false).

    Attributes:
        reason: one CamelCase word a program can test (``NoConfDir``,
            ``NoValidNetwork``, ``PluginNotFound``, ``PluginVersionUnsupported``,
            ``PluginNotReady``, ...); see :mod:`libcni_py.runtime.readiness`.
    """

    default_code = CODE_PLUGIN_NOT_AVAILABLE

    def __init__(self, reason: str, msg: str, *, hint: str = "") -> None:
        self.reason = reason
        super().__init__(f"network not ready ({reason}): {msg}", hint=hint)


class CRIError(CNIError):
    """A container runtime's CRI endpoint that cannot answer (socket missing
    or refused, permission denied, not a CRI runtime, timeout, grpcio not
    installed); see :mod:`libcni_py.runtime.cri`.

    Attributes:
        endpoint: the endpoint as given (``unix:///run/containerd/containerd.sock``).
    """

    def __init__(self, endpoint: str, msg: str, *, hint: str = "") -> None:
        self.endpoint = endpoint
        super().__init__(f"CRI endpoint {endpoint}: {msg}", hint=hint)


class MultiError(CNIError):
    """Several independent failures of one operation (GC and validate collect
    them); ``report`` holds what the operation did manage, if anything."""

    def __init__(self, msg: str, errors: Sequence[CNIError], *, report: object = None) -> None:
        self.errors = tuple(errors)
        self.report = report
        parts = "; ".join(e.one_line() for e in self.errors)
        super().__init__(f"{msg}: {parts}" if parts else msg)


# -- errno -> words, once ------------------------------------------------------
# What a failed system call means, for a person; each use names the errnos it
# explains (others keep the system's own words) and adds what to do.
_OS_WORDS = {
    errno.ELOOP: "symbolic link loop",
    errno.EISDIR: "is a directory",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENOENT: "no such file",
    errno.ENOEXEC: "not an executable this machine can run",
    errno.ETXTBSY: "the binary is being written (text file busy)",
    errno.ENOSPC: "no space left on device",
    errno.EROFS: "read-only file system",
}
_STORE_ACCESS = " (run as root, or give --cache-dir a directory you own)"
_OS_HINTS: dict[str, dict[int, str]] = {
    # reading a conf file or listing the conf dir
    "read": {errno.ELOOP: "", errno.EISDIR: "", errno.EACCES: "", errno.ENOENT: ""},
    # starting a plugin
    "start": {
        errno.EACCES: " (is the file executable? chmod +x it)",
        errno.ENOEXEC: " (wrong architecture, or a script without #!)",
        errno.ENOENT: " (or its #! interpreter is missing)",
        errno.ETXTBSY: "; gave up after retrying",
    },
    # the record store (cache dir)
    "store": {errno.EACCES: _STORE_ACCESS, errno.EPERM: _STORE_ACCESS, errno.ENOSPC: "", errno.EROFS: ""},
}


def os_reason(exc: OSError, use: OsUse, detail: str = "") -> str:
    """Why a system call failed, in words, for ``use``.

    Args:
        exc: the error.
        use: what was being done: ``"read"`` (a conf file), ``"start"`` (a
            plugin), ``"store"`` (the cache dir).
        detail: put after the words, before the hint (who owns the directory
            that refused, say).
    """
    hints = _OS_HINTS[use]
    if exc.errno in hints:
        return _OS_WORDS[exc.errno] + detail + hints[exc.errno]
    return exc.strerror or str(exc)
