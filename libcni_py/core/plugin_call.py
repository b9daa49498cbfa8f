"""One plugin call, minus the running: finding the binary, and turning what
the process did (exit status, stdout, stderr) into a result or a typed error.

:func:`find_in_path` touches the disk (a ``stat`` per directory); everything
else here is pure.  The drivers in :mod:`libcni_py.drivers.blocking` and
:mod:`libcni_py.drivers.async_trio` do the running.
"""

from __future__ import annotations

import os
import stat

from ..errors import (
    CODE_TRY_AGAIN_LATER,
    ConfigError,
    DecodeError,
    InvalidResultError,
    PluginError,
    PluginExecError,
    PluginNotFoundError,
    PluginTimeoutError,
)
from . import gojson, result, schema, version
from .defaults import KNOWN_PLUGIN_DIRS
from .value import Value

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from .result import AnyResult

__all__ = [
    "ExecOutcome",
    "ExecRequest",
    "check_plugin_path",
    "decode_error",
    "decode_result",
    "decode_version_info",
    "find_in_path",
    "raise_for_outcome",
]

#: How much of a plugin's stdout is accepted (a result is a few KiB).
MAX_STDOUT = 16 * 1024 * 1024
#: How much of a plugin's stderr is kept for messages and traces.
MAX_STDERR_KEPT = 64 * 1024


class ExecRequest(Value):
    """Everything needed to run one plugin once.

    Attributes:
        plugin_type: the ``type`` (binary name).
        plugin_name: the plugin object's own ``name``, for messages.
        path: the resolved binary.
        command: ADD, CHECK, DEL, GC, STATUS or VERSION.
        stdin: the request configuration.
        env: the complete environment.
        network: the network name ("" for VERSION), for traces.
        index: position of the plugin in its list (-1 for VERSION).
        result_version: for ADD, the version to parse a result without
            ``cniVersion`` as (the config's).
        redact: texts never to show in an error message (the values of the
            capability arguments the plugin was given: they may be secrets,
            and a plugin may echo its stdin).
    """

    plugin_type: str
    plugin_name: str = ""
    path: str
    command: str
    stdin: bytes
    env: Mapping[str, str]
    network: str = ""
    index: int = -1
    result_version: str = ""
    redact: tuple[str, ...] = ()


class ExecOutcome(Value):
    """What one run of a plugin did.

    Attributes:
        returncode: exit status; negative for a signal (as ``subprocess``).
        stdout: everything it wrote on stdout.
        stderr: the first :data:`MAX_STDERR_KEPT` bytes of its stderr.
        stderr_dropped: how many stderr bytes were not kept.
        duration: seconds from start to exit.
        timed_out: it was killed at the per-call deadline.
        overflow: it was killed for writing more than :data:`MAX_STDOUT`.
        started: False when it could not even be started (``error`` says why).
        error: why it could not be started, or "".
        pid: its process ID (0: not started).
        killed: the processes it started that were killed with it at the
            deadline (each "PID (command line)").
    """

    returncode: int
    stdout: bytes = b""
    stderr: bytes = b""
    stderr_dropped: int = 0
    duration: float = 0.0
    timed_out: bool = False
    overflow: bool = False
    started: bool = True
    error: str = ""
    pid: int = 0
    killed: tuple[str, ...] = ()


def check_plugin_path(dirs: Sequence[str]) -> None:
    """Refuse plugin directories that would let someone else choose what runs.

    Plugins run with the runtime's privileges (root, on a node), and each
    gets the same directories (``CNI_PATH``) to find its delegates in.  So:

    * a **relative** directory is refused: what it names depends on the
      current directory of whoever runs the runtime or the plugin;
    * a **world-writable** directory is refused, sticky bit or not: anyone
      could put a file named like a plugin there.

    Directories that do not exist are skipped, as by the search itself.  Go
    libcni checks neither.

    Raises:
        ConfigError: naming the directory and what is wrong with it.
    """
    for directory in dirs:
        if not os.path.isabs(directory):
            raise ConfigError(
                "plugin path",
                "",
                f"{directory!r} is a relative directory: plugins would be looked up from the current directory",
                hint="give absolute directories in CNI_PATH / --plugin-path",
            )
        try:
            st = os.stat(directory)
        except OSError:
            continue
        if st.st_mode & stat.S_IWOTH:
            raise ConfigError(
                "plugin path",
                "",
                f"{directory} is writable by every user: anyone could put a plugin there",
                hint=f"chmod o-w {directory}, or keep plugins in a directory only root can write",
            )


def find_in_path(plugin_type: str, dirs: Sequence[str]) -> str:
    """The binary for ``plugin_type``: the first ``<dir>/<type>`` that is a
    regular file (Go's ``FindInPath``: the execute bit is not checked here;
    running a non-executable file fails with its own clear error).

    The directories are checked first (:func:`check_plugin_path`), and a
    binary that every user may write to is refused like its directory.

    Raises:
        ConfigError: a plugin directory or the binary is not safe to use.
        PluginNotFoundError: empty type, a ``/`` in it, no directories, or not
            found; the message lists the directories searched.
    """
    if not plugin_type:
        raise PluginNotFoundError(plugin_type, dirs, reason="no plugin type given")
    if "/" in plugin_type or plugin_type in (".", ".."):
        raise PluginNotFoundError(
            plugin_type, dirs, reason=f'invalid plugin type "{plugin_type}": it must be a file name, not a path'
        )
    if not dirs:
        raise PluginNotFoundError(plugin_type, dirs, reason=f'plugin "{plugin_type}": no plugin directories given')
    check_plugin_path(dirs)
    for directory in dirs:
        candidate = os.path.join(directory, plugin_type)
        try:
            st = os.stat(candidate)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            if st.st_mode & stat.S_IWOTH:
                raise ConfigError(
                    "plugin path",
                    "",
                    f"{candidate} is writable by every user: anyone could change what runs",
                    hint=f"chmod o-w {candidate}",
                )
            return candidate
    raise PluginNotFoundError(plugin_type, dirs, elsewhere=installed_elsewhere(plugin_type, dirs))


def installed_elsewhere(
    plugin_type: str, searched: Sequence[str], known_dirs: Sequence[str] = KNOWN_PLUGIN_DIRS
) -> tuple[str, ...]:
    """The directories of ``known_dirs`` (where distributions install
    plugins) outside ``searched`` that hold a regular file named
    ``plugin_type``: a plugin path that misses the distribution's directory
    is the usual reason a plugin is "not found".  Only asked once a search
    has failed."""
    seen = {os.path.realpath(d) for d in searched}
    out = []
    for directory in known_dirs:
        if os.path.realpath(directory) in seen:
            continue
        try:
            st = os.stat(os.path.join(directory, plugin_type))
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            out.append(directory)
    return tuple(out)


def _quote(data: bytes, limit: int = 400) -> str:
    text = data.decode("utf-8", "replace").strip()
    if len(text) > limit:
        text = text[:limit] + f"... ({len(text) - limit} more characters)"
    return repr(text)


def _signal_name(number: int) -> str:
    import signal

    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _redact(text: str, secrets: Sequence[str]) -> str:
    """``text`` with every secret (and its JSON-escaped form) blanked out."""
    for secret in secrets:
        for form in {secret, gojson.dumps(secret)[1:-1]}:
            text = text.replace(form, "<redacted>")
    return text


def _error(
    cls: type[PluginError],
    request: ExecRequest,
    outcome: ExecOutcome,
    msg: str,
    *,
    code: int | None = None,
    details: str = "",
    hint: str = "",
) -> PluginError:
    if code == CODE_TRY_AGAIN_LATER and not hint:
        hint = "retryable: try again later"
    elif "no IP addresses available" in msg or "no IP addresses available" in details:
        hint = (
            f'the address range of network "{request.network}" is used up: delete attachments that are gone '
            "(cnitool gc NETWORK --valid ...; 'cnitool doctor' finds reservations leaked without a record) "
            "or give the network a larger range"
        )
    elif request.plugin_type == "portmap" and request.command == "CHECK" and "could not check ipv6 dnat" in msg:
        hint = (
            "a known bug of portmap 1.1.1 (Debian's): its CHECK looks for IPv4 rules in ip6tables whenever "
            "ip6tables exists, so it fails for every IPv4-only attachment; the attachment may well be fine "
            "(containernetworking/plugins issue #819; run CHECK with a PATH on which ip6tables is not found)"
        )
    return cls(
        _redact(msg, request.redact),
        plugin_type=request.plugin_type,
        plugin_name=request.plugin_name,
        command=request.command,
        stderr=outcome.stderr,
        code=code,
        details=_redact(details, request.redact),
        hint=hint,
        network=request.network,
    )


def decode_error(request: ExecRequest, outcome: ExecOutcome) -> PluginError:
    """The typed error for a call that did not succeed (Go's ``pluginErr``,
    with clearer words where Go's are cryptic)."""
    if not outcome.started:
        return _error(PluginExecError, request, outcome, f"could not run {request.path}: {outcome.error}")
    if outcome.timed_out:
        return _error(
            PluginTimeoutError,
            request,
            outcome,
            f"did not finish within {outcome.duration:.1f}s and was killed"
            + (
                f" with the {len(outcome.killed)} process(es) it started: {', '.join(outcome.killed)}"
                if outcome.killed
                else " (it had started no other process)"
            ),
            hint="raise the per-call timeout (--timeout) if the plugin is just slow",
        )
    if outcome.overflow:
        return _error(
            PluginExecError,
            request,
            outcome,
            f"wrote more than {MAX_STDOUT} bytes on stdout and was killed (a result is a few KiB)",
        )
    how = (
        f"was killed by {_signal_name(-outcome.returncode)}"
        if outcome.returncode < 0
        else f"exit status {outcome.returncode}"
    )
    if not outcome.stdout.strip():
        if outcome.stderr.strip():
            return _error(PluginError, request, outcome, f"netplugin failed ({how}): {_quote(outcome.stderr)}")
        return _error(PluginError, request, outcome, f"netplugin failed with no error message: {how}")
    try:
        doc = gojson.loads(outcome.stdout)
    except DecodeError as exc:
        return _error(
            PluginError,
            request,
            outcome,
            f"netplugin failed ({how}) and its stdout is not an error object ({exc.msg}): {_quote(outcome.stdout)}",
        )
    fault = schema.first_error(doc, "error")
    if fault is not None:
        where = f"{fault[0]}: " if fault[0] else ""
        return _error(
            PluginError,
            request,
            outcome,
            f"netplugin failed ({how}) and its error object is invalid ({where}{fault[1]}): {_quote(outcome.stdout)}",
        )
    code = doc.get("code")
    msg = doc.get("msg") or ""
    details = doc.get("details") or ""
    if not msg and not details:
        msg = f"netplugin failed with an empty error message ({how})"
    return _error(PluginError, request, outcome, msg, code=int(code) if code is not None else 0, details=details)


def raise_for_outcome(request: ExecRequest, outcome: ExecOutcome) -> None:
    """Raise the call's :class:`PluginError` unless it exited 0 in time."""
    if not outcome.started or outcome.timed_out or outcome.overflow or outcome.returncode != 0:
        raise decode_error(request, outcome)


def decode_result(request: ExecRequest, outcome: ExecOutcome) -> AnyResult:
    """The result of a successful ADD call.

    As Go's ``ExecPluginWithResult``: a result without (or with an empty)
    ``cniVersion`` is taken to be in the config's version.

    Raises:
        PluginError: the call failed.
        InvalidResultError: exit 0 but the output is not a valid result; the
            message has the JSON path of the fault and quotes the output.
    """
    raise_for_outcome(request, outcome)
    try:
        doc = gojson.loads(outcome.stdout) if outcome.stdout.strip() != b"null" else {}
    except DecodeError as exc:
        raise _error(
            InvalidResultError,
            request,
            outcome,
            f"exited 0 but its output is not a result: {exc.msg}: {_quote(outcome.stdout)}",
        ) from None
    if not isinstance(doc, dict):
        raise _error(
            InvalidResultError,
            request,
            outcome,
            f"exited 0 but its output is not a result object: {_quote(outcome.stdout)}",
        )
    own = doc.get("cniVersion")
    if isinstance(own, str) and own:
        result_version = own
    else:
        # Go's fixupResultVersion: a result without a version is in the config's
        result_version = request.result_version or "0.1.0"
        doc = {**doc, "cniVersion": result_version}
    try:
        return result.parse(doc, result_version)
    except DecodeError as exc:
        raise _error(
            InvalidResultError, request, outcome, f"exited 0 but returned an invalid result: {exc.msg}"
        ) from None


def decode_version_info(request: ExecRequest, outcome: ExecOutcome) -> version.PluginInfo:
    """A plugin's VERSION answer, with Go's legacy fallbacks: an error
    "unknown CNI_COMMAND: VERSION" means 0.1.0 only; an answer of 0.2.0
    without a list means 0.1.0 and 0.2.0.

    Raises:
        PluginError: the probe failed, or the answer is malformed.
    """
    if outcome.started and not outcome.timed_out and outcome.returncode != 0:
        error = decode_error(request, outcome)
        if str(error.plugin_msg) == "unknown CNI_COMMAND: VERSION" and not error.details:
            return version.LEGACY_INFO
        raise error
    raise_for_outcome(request, outcome)
    try:
        doc = gojson.loads(outcome.stdout)
    except DecodeError as exc:
        raise _error(InvalidResultError, request, outcome, f"decoding version info: {exc.msg}") from None
    fault = schema.first_error(doc, "version")
    if fault is not None:
        where = f"{fault[0]}: " if fault[0] else ""
        raise _error(InvalidResultError, request, outcome, f"decoding version info: {where}{fault[1]}")
    listed = doc.get("supportedVersions") or []
    if not listed:
        if doc["cniVersion"] == "0.2.0":
            listed = ["0.1.0", "0.2.0"]
        else:
            raise _error(InvalidResultError, request, outcome, "decoding version info: missing field supportedVersions")
    return version.PluginInfo(cni_version=doc["cniVersion"], supported_versions=tuple(listed))
