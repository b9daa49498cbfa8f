"""The plugin side: write a CNI plugin in Python (what Go's ``pkg/skel`` is).

A plugin is a program; :func:`run` reads the CNI environment and stdin,
dispatches to your functions, and speaks the protocol for you::

    from libcni_py import skel
    from libcni_py.core.result import Result, Interface

    def add(args: skel.CmdArgs) -> Result:
        return Result(cni_version=args.cni_version, interfaces=[Interface(name=args.ifname)])

    def delete(args: skel.CmdArgs) -> None:
        pass

    skel.run(add=add, delete=delete, about="my plugin")

What :func:`run` does, as Go's ``pkg/skel`` (v1.3.0) does -- the same checks
in the same order, with the same error codes and messages:

1. the environment: ``CNI_COMMAND`` always; ``CNI_CONTAINERID`` and
   ``CNI_IFNAME`` for ADD, CHECK and DEL, validated as Go's ``pkg/utils``
   does (a container ID is ``[a-zA-Z0-9][a-zA-Z0-9_.-]*``; an interface name
   1-15 bytes, not ``.``/``..``, without ``/``, ``:`` or white space; the
   first invalid one fails with code 4); ``CNI_NETNS`` for ADD and CHECK;
   ``CNI_PATH`` for every command but VERSION.  Missing ones fail together
   with code 4, ``required env variables [A,B] missing``.  With no
   ``CNI_COMMAND`` at all and an ``about`` text, the text and the supported
   versions go to stderr and the exit status is 0;
2. VERSION: answers ``{"cniVersion", "supportedVersions"}`` without reading
   stdin;
3. stdin: it must decode (code 6, ``error unmarshall network config: ...``)
   and carry a valid network ``name`` (code 7);
4. an unknown command fails with code 4 (only now, as in Go);
5. the configuration's ``cniVersion`` (missing means 0.1.0) must be one the
   plugin supports (code 1, ``incompatible CNI versions``); CHECK needs a
   configuration of 0.4.0 or newer, GC and STATUS 1.1.0 or newer (code 1,
   ``config version does not allow GC``), and a supported version at least
   as new (``plugin version does not allow GC``); a malformed version
   fails with code 6 there;
6. ADD and DEL refuse a ``CNI_NETNS`` that is the plugin's own network
   namespace (code 8), unless ``CNI_NETNS_OVERRIDE`` is ``1`` or ``true``.
   Go checks this *after* the command ran (its ADD has then done its work in
   the wrong namespace and printed a result before the error); this skel
   checks before, so nothing is done there -- the one ordering difference;
7. the command function runs: a raised :class:`PluginFailure` (or any
   :class:`~libcni_py.errors.CNIError`) becomes its error object; any other
   exception becomes code 999 with the exception's text (Go: ``err.Error()``),
   its traceback going to stderr.

Beyond Go's skel (after all of its checks): ``args.prev_result`` is parsed
(code 6 when it is not a result of the configuration's version) and
``CNI_ARGS`` is split into pairs (code 4 when malformed); ``add`` may return
a typed result, printed in the configuration's version.  Error objects carry
``cniVersion`` as the spec asks (Go's skel prints only code, msg and
details), and every answer ends with a newline.

:func:`delegate` runs another plugin found on ``CNI_PATH`` with the same
environment, as IPAM plugins are run (Go's ``invoke.DelegateAdd``).
"""

from __future__ import annotations

import os
import sys

from .core import gojson, names, result, version
from .core import plugin_call as invoke
from .core.args import parse_cni_args
from .core.value import Value
from .errors import CNIError, DecodeError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from typing import Any, NoReturn

__all__ = ["CmdArgs", "PluginFailure", "delegate", "run"]


class PluginFailure(CNIError):
    """Raise from a command function to fail with a CNI error object."""

    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(msg, code=code, details=details)


class CmdArgs(Value):
    """One invocation of the plugin.

    Attributes:
        command: ADD, CHECK, DEL, GC or STATUS.
        container_id, netns, ifname: from ``CNI_CONTAINERID``, ``CNI_NETNS``,
            ``CNI_IFNAME``.
        args: ``CNI_ARGS`` as pairs.
        path: ``CNI_PATH`` split on ``:``.
        stdin: the raw configuration bytes.
        conf: the decoded configuration.
        cni_version: the configuration's ``cniVersion`` (0.1.0 when it has none, as Go reads it).
        prev_result: the parsed ``prevResult``, or None.
    """

    command: str
    container_id: str
    netns: str
    ifname: str
    args: tuple[tuple[str, str], ...]
    path: tuple[str, ...]
    stdin: bytes
    conf: Mapping[str, Any]
    cni_version: str
    prev_result: result.AnyResult | None


def _emit_error(cni_version: str, code: int, msg: str, details: str = "") -> NoReturn:
    doc: dict[str, Any] = {"cniVersion": cni_version or version.CURRENT, "code": code, "msg": msg}
    if details:
        doc["details"] = details
    sys.stdout.write(gojson.dumps(doc, indent="    ") + "\n")
    sys.stdout.flush()
    raise SystemExit(1)


_COMMANDS = ("ADD", "CHECK", "DEL", "GC", "STATUS")
_ACTIONS = ("ADD", "CHECK", "DEL")
#: Go skel's table, in its order: variable, the commands that need it, and
#: whether it is validated (for those commands) as Go's ``pkg/utils`` does.
_VARIABLES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("CNI_COMMAND", _COMMANDS),
    ("CNI_CONTAINERID", _ACTIONS),
    ("CNI_NETNS", ("ADD", "CHECK")),
    ("CNI_IFNAME", _ACTIONS),
    ("CNI_ARGS", ()),
    ("CNI_PATH", _COMMANDS),
    ("CNI_NETNS_OVERRIDE", ()),
)
#: What Go names the anonymous structs skel decodes stdin into.
_NAME_STRUCT = 'struct { Name string "json:\\"name\\"" }'
_VERSION_STRUCT = 'struct { CNIVersion string "json:\\"cniVersion\\"" }'
_GO_TYPES = ((bool, "bool"), (str, "string"), (int, "number"), (float, "number"), (list, "array"), (dict, "object"))
_MIN_VERSION = {"CHECK": "0.4.0", "GC": "1.1.0", "STATUS": "1.1.0"}


def _go_quote(text: str) -> str:
    """``%q`` of a plain string (enough for the names and versions quoted here)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _validate_container_id(value: str) -> None:
    if not names.is_valid_name(value):
        raise PluginFailure(4, "invalid characters in containerID", value)


def _validate_ifname(value: str) -> None:
    """Go's ``utils.ValidateInterfaceName`` (it counts bytes, and checks no
    control characters)."""
    if len(value.encode("utf-8", "surrogateescape")) > 15:
        raise PluginFailure(4, "interface name is too long", "interface name should be less than 16 characters")
    if value in (".", ".."):
        raise PluginFailure(4, "interface name is . or ..", "")
    if any(ch in "/:" or ch in names.GO_SPACE for ch in value):
        raise PluginFailure(4, "interface name contains / or : or whitespace characters", "")


_VALIDATORS: dict[str, Callable[[str], None]] = {
    "CNI_CONTAINERID": _validate_container_id,
    "CNI_IFNAME": _validate_ifname,
}


def _environment(env: Mapping[str, str], command: str) -> None:
    """Go skel's ``getCmdArgsFromEnv``: the first invalid value fails at
    once; the missing ones fail together."""
    missing: list[str] = []
    for name, needed_by in _VARIABLES:
        value = env.get(name, "")
        if not value:
            if command in needed_by or name == "CNI_COMMAND":
                missing.append(name)
        elif command in needed_by and name in _VALIDATORS:
            _VALIDATORS[name](value)
    if missing:
        raise PluginFailure(4, f"required env variables [{','.join(missing)}] missing")


def _go_type(value: Any) -> str:
    return next((name for kind, name in _GO_TYPES if isinstance(value, kind)), "null")


def _string_field(doc: Any, field: str, struct: str) -> str:
    """A string field of ``doc`` as Go's ``json.Unmarshal`` into ``struct``
    fills it (``null`` or absent: empty; the key matched case-insensitively).

    Raises:
        ValueError: Go's message for a value of the wrong JSON type.
    """
    if doc is None:
        return ""
    if not isinstance(doc, dict):
        raise ValueError(f"json: cannot unmarshal {_go_type(doc)} into Go value of type {struct}")
    value = gojson.struct_fields(doc, (field,)).get(field)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"json: cannot unmarshal {_go_type(value)} into Go struct field .{field} of type string")
    return value


def _decode_config(data: bytes) -> Any:
    """Go skel's ``validateConfig``: stdin decodes, and names a valid network."""
    try:
        doc = gojson.loads(data)
        name = _string_field(doc, "name", _NAME_STRUCT)
    except DecodeError as exc:
        # Go's encoding/json words syntax errors its own way; only "empty" is worded as Go's
        text = "unexpected end of JSON input" if not data.strip() else exc.msg
        raise PluginFailure(6, f"error unmarshall network config: {text}") from None
    except ValueError as exc:
        raise PluginFailure(6, f"error unmarshall network config: {exc}") from None
    if not name:
        raise PluginFailure(7, "missing network name")
    if not names.is_valid_name(name):
        raise PluginFailure(7, "invalid characters found in network name", name)
    return doc


def _config_version(doc: Any) -> str:
    """Go's ``create.DecodeVersion`` (an empty version means 0.1.0)."""
    try:
        return _string_field(doc, "cniVersion", _VERSION_STRUCT) or "0.1.0"
    except ValueError as exc:
        raise PluginFailure(6, f"decoding version from network config: {exc}") from None


def _go_version(text: str) -> tuple[int, int, int]:
    """Go's ``version.ParseVersion``, failing with code 6 and Go's message."""
    if text == "":
        return (0, 1, 0)
    parts = text.split(".")
    if len(parts) >= 4:
        raise PluginFailure(6, f"invalid version {_go_quote(text)}: too many parts")
    numbers = [0, 0, 0]
    for index, part in enumerate(parts):
        digits = part[1:] if part[:1] in "+-" else part
        if not digits.isascii() or not digits.isdigit():
            problem = "invalid syntax"
        elif abs(int(part)) > 2**63 - 1:
            problem = "value out of range"
        else:
            numbers[index] = int(part)
            continue
        which = ("major", "minor", "micro")[index]
        raise PluginFailure(
            6,
            f"failed to convert {which} version part {_go_quote(part)}: "
            f"strconv.Atoi: parsing {_go_quote(part)}: {problem}",
        )
    return (numbers[0], numbers[1], numbers[2])


def _reconcile(config_version: str, supported: tuple[str, ...]) -> None:
    """Go's ``version.Reconciler``: the exact version must be supported."""
    if config_version not in supported:
        listed = " ".join(_go_quote(v) for v in supported)
        raise PluginFailure(
            1, "incompatible CNI versions", f"config is {_go_quote(config_version)}, plugin supports [{listed}]"
        )


def _version_gate(command: str, config_version: str, supported: tuple[str, ...]) -> None:
    """The version checks Go skel makes before calling the command."""
    minimum = _MIN_VERSION.get(command)
    if minimum is None:
        _reconcile(config_version, supported)
        return
    if _go_version(config_version) < _go_version(minimum):
        raise PluginFailure(1, f"config version does not allow {command}")
    for plugin_version in supported:
        if _go_version(plugin_version) >= _go_version(config_version):
            _reconcile(config_version, supported)
            return
    raise PluginFailure(1, f"plugin version does not allow {command}")


def _is_own_netns(path: str) -> bool:
    """Go's ``ns.CheckNetNS``: is ``path`` this thread's network namespace?
    A path that cannot be opened is not (a DEL may name one already gone)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except (OSError, ValueError):
        return False
    try:
        theirs = os.fstat(fd)
    finally:
        os.close(fd)
    try:
        ours = os.stat("/proc/thread-self/ns/net")
    except OSError:
        raise PluginFailure(8, "get plugin's netns failed") from None
    return (theirs.st_dev, theirs.st_ino) == (ours.st_dev, ours.st_ino)


def _check_netns(env: Mapping[str, str]) -> None:
    override = env.get("CNI_NETNS_OVERRIDE", "")
    if override.upper() == "TRUE" or override == "1":
        return
    if _is_own_netns(env.get("CNI_NETNS", "")):
        raise PluginFailure(8, "plugin's netns and netns from CNI_NETNS should not be the same")


def run(
    *,
    add: Callable[[CmdArgs], result.AnyResult | Mapping[str, Any]],
    delete: Callable[[CmdArgs], None],
    check: Callable[[CmdArgs], None] | None = None,
    gc: Callable[[CmdArgs], None] | None = None,
    status: Callable[[CmdArgs], None] | None = None,
    versions: Iterable[str] = version.SPEC_VERSIONS,
    about: str = "",
    env: Mapping[str, str] | None = None,
    stdin: bytes | None = None,
) -> NoReturn:
    """Run the plugin: read the environment and stdin, call the function for
    ``CNI_COMMAND``, print its result or error, and exit.

    Args:
        add, delete, check, gc, status: the command functions.  ``add``
            returns a typed result (or a JSON-ready dict); the others return
            nothing.  A missing ``check``/``gc``/``status`` succeeds.
        versions: the spec versions this plugin supports.
        about: printed when run with no ``CNI_COMMAND`` (by a person).
        env, stdin: for tests; default ``os.environ`` and ``sys.stdin``.
    """
    env = os.environ if env is None else env
    supported = tuple(versions)
    command = env.get("CNI_COMMAND", "")
    cni_version = ""
    try:
        try:
            _environment(env, command)
        except PluginFailure:
            if not command and about:
                sys.stderr.write(f"{about}\nCNI protocol versions supported: {', '.join(supported)}\n")
                raise SystemExit(0) from None
            raise
        if command == "VERSION":
            sys.stdout.write(gojson.dumps({"cniVersion": version.CURRENT, "supportedVersions": list(supported)}) + "\n")
            raise SystemExit(0)
        data = sys.stdin.buffer.read() if stdin is None else stdin
        conf = _decode_config(data)
        if command not in _COMMANDS:
            raise PluginFailure(4, f"unknown CNI_COMMAND: {command}")
        cni_version = _config_version(conf)
        _version_gate(command, cni_version, supported)
        if command in ("ADD", "DEL"):
            _check_netns(env)
        cmd = _command_args(command, env, data, conf, cni_version)
    except CNIError as exc:
        _emit_error(cni_version, exc.code if exc.code is not None else 999, exc.msg, exc.details)
    _call(cmd, add=add, delete=delete, others={"CHECK": check, "GC": gc, "STATUS": status})


def _command_args(command: str, env: Mapping[str, str], data: bytes, conf: Any, cni_version: str) -> CmdArgs:
    """What libcni_py's skel adds to Go's: the parsed ``prevResult`` and
    ``CNI_ARGS`` (after all of Go's checks passed)."""
    prev = None
    raw_prev = conf.get("prevResult")
    if isinstance(raw_prev, dict):
        try:
            prev = result.parse(raw_prev, cni_version)
        except DecodeError as exc:
            raise PluginFailure(6, "could not parse prevResult", exc.msg) from None
    try:
        cni_args = parse_cni_args(env.get("CNI_ARGS", ""))
    except CNIError as exc:
        raise PluginFailure(4, exc.msg) from None
    return CmdArgs(
        command=command,
        container_id=env.get("CNI_CONTAINERID", ""),
        netns=env.get("CNI_NETNS", ""),
        ifname=env.get("CNI_IFNAME", ""),
        args=cni_args,
        path=tuple([p for p in env.get("CNI_PATH", "").split(":") if p]),
        stdin=data,
        conf=conf,
        cni_version=cni_version,
        prev_result=prev,
    )


def _call(
    cmd: CmdArgs,
    *,
    add: Callable[[CmdArgs], result.AnyResult | Mapping[str, Any]],
    delete: Callable[[CmdArgs], None],
    others: Mapping[str, Callable[[CmdArgs], None] | None],
) -> NoReturn:
    """Run the command function and answer as Go's skel does."""
    try:
        if cmd.command == "ADD":
            answer = add(cmd)
            if isinstance(answer, (result.Result, result.LegacyResult)):
                answer = result.to_json(result.convert(answer, cmd.cni_version))
            sys.stdout.write(gojson.dumps(answer, indent="    ") + "\n")
        elif cmd.command == "DEL":
            delete(cmd)
        else:
            func = others[cmd.command]
            if func is not None:
                func(cmd)
    except CNIError as exc:
        _emit_error(cmd.cni_version, exc.code if exc.code is not None else 999, exc.msg, exc.details)
    except Exception as exc:  # a bug in the plugin: still answer in protocol, as Go's err.Error()
        import traceback

        traceback.print_exc(file=sys.stderr)
        _emit_error(cmd.cni_version, 999, str(exc) or type(exc).__name__)
    sys.stdout.flush()
    raise SystemExit(0)


def delegate(
    plugin_type: str,
    cmd: CmdArgs,
    *,
    command: str | None = None,
    stdin: bytes | None = None,
    timeout: float | None = 60.0,
) -> result.AnyResult | None:
    """Run another plugin (an IPAM plugin, say) found on ``CNI_PATH`` with this
    plugin's environment, as Go's ``invoke.DelegateAdd``/``DelegateDel`` do.

    Args:
        plugin_type: the binary to run.
        cmd: this invocation (its environment and path are passed on).
        command: the command to run it with (default: this one).
        stdin: its configuration (default: this plugin's stdin).

    Returns:
        Its result for ADD, else None.

    Raises:
        PluginNotFoundError, PluginError: as for any plugin call.
    """
    from .drivers.blocking import run_plugin

    command = command or cmd.command
    path = invoke.find_in_path(plugin_type, cmd.path)
    env = dict(os.environ)
    env["CNI_COMMAND"] = command
    req = invoke.ExecRequest(
        plugin_type=plugin_type,
        path=path,
        command=command,
        stdin=cmd.stdin if stdin is None else stdin,
        env=env,
        result_version=cmd.cni_version or "0.1.0",
    )
    outcome = run_plugin(req, timeout)
    if command == "ADD":
        return invoke.decode_result(req, outcome)
    invoke.raise_for_outcome(req, outcome)
    return None
