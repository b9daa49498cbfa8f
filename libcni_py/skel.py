"""The plugin side: write a CNI plugin in Python (what Go's ``pkg/skel`` is).

A plugin is a program; :func:`run` reads the CNI environment and stdin,
dispatches to your functions, and speaks the protocol for you::

    from libcni_py import skel
    from libcni_py.result import Result, Interface

    def add(args: skel.CmdArgs) -> Result:
        return Result(cni_version=args.cni_version, interfaces=[Interface(name=args.ifname)])

    def delete(args: skel.CmdArgs) -> None:
        pass

    skel.run(add=add, delete=delete, about="my plugin")

What :func:`run` does, as Go's skel does:

* VERSION: answers ``{"cniVersion", "supportedVersions"}`` by itself;
* checks the required variables (``CNI_CONTAINERID``, ``CNI_NETNS`` (not for
  DEL), ``CNI_IFNAME``, ``CNI_PATH``) and that the configuration's version is
  one the plugin supports (error code 4 or 1 otherwise);
* parses the configuration (``args.conf``) and its ``prevResult``
  (``args.prev_result``, typed, in the configuration's version);
* prints what ``add`` returns (converted to the configuration's version);
* turns a raised :class:`PluginFailure` (or any :class:`~libcni_py.errors.CNIError`)
  into an error object on stdout and exit status 1; an unexpected exception
  becomes code 999 with its text.

:func:`delegate` runs another plugin found on ``CNI_PATH`` with the same
environment, as IPAM plugins are run (Go's ``invoke.DelegateAdd``).
"""

from __future__ import annotations

import os
import sys

from . import gojson, invoke, result, version
from ._values import Value
from .args import parse_cni_args
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
        cni_version: the configuration's ``cniVersion``.
        prev_result: the parsed ``prevResult``, or None.
    """

    __slots__ = (
        "command",
        "container_id",
        "netns",
        "ifname",
        "args",
        "path",
        "stdin",
        "conf",
        "cni_version",
        "prev_result",
    )
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

    def __init__(
        self,
        *,
        command: str,
        container_id: str,
        netns: str,
        ifname: str,
        args: Iterable[tuple[str, str]],
        path: Iterable[str],
        stdin: bytes,
        conf: Mapping[str, Any],
        cni_version: str,
        prev_result: result.AnyResult | None,
    ) -> None:
        self._set(
            command=command,
            container_id=container_id,
            netns=netns,
            ifname=ifname,
            args=tuple(args),
            path=tuple(path),
            stdin=stdin,
            conf=conf,
            cni_version=cni_version,
            prev_result=prev_result,
        )


def _emit_error(cni_version: str, code: int, msg: str, details: str = "") -> NoReturn:
    doc: dict[str, Any] = {"cniVersion": cni_version or version.CURRENT, "code": code, "msg": msg}
    if details:
        doc["details"] = details
    sys.stdout.write(gojson.dumps(doc, indent="    ") + "\n")
    sys.stdout.flush()
    raise SystemExit(1)


def _required(env: Mapping[str, str], command: str) -> None:
    needed = ["CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"]
    if command in ("ADD", "CHECK"):
        needed.insert(1, "CNI_NETNS")
    missing = [name for name in needed if not env.get(name)]
    if missing:
        _emit_error("", 4, f"required env variables [{' '.join(missing)}] missing")


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
    if command == "VERSION":
        sys.stdout.write(gojson.dumps({"cniVersion": version.CURRENT, "supportedVersions": list(supported)}) + "\n")
        raise SystemExit(0)
    if not command:
        if about:
            sys.stderr.write(about + "\n")
            raise SystemExit(0)
        _emit_error("", 4, "required env variables [CNI_COMMAND] missing")
    if command not in ("ADD", "CHECK", "DEL", "GC", "STATUS"):
        _emit_error("", 4, f"unknown CNI_COMMAND: {command}")
    data = sys.stdin.buffer.read() if stdin is None else stdin
    try:
        conf = gojson.loads(data)
    except DecodeError as exc:
        _emit_error("", 6, "decoding the network configuration", exc.msg)
    if not isinstance(conf, dict):
        _emit_error("", 6, "decoding the network configuration", "expected a JSON object")
    declared = conf.get("cniVersion")
    cni_version: str = declared if isinstance(declared, str) else ""
    if command in ("ADD", "CHECK", "DEL"):
        _required(env, command)
    if (cni_version or "0.1.0") not in supported:
        _emit_error(
            cni_version,
            1,
            "incompatible CNI versions",
            f'config is "{cni_version}", plugin supports {list(supported)}',
        )
    if command == "CHECK" and not version.gte(cni_version, "0.4.0"):
        _emit_error(cni_version, 1, f'config version "{cni_version}" does not allow CHECK')
    prev = None
    raw_prev = conf.get("prevResult")
    if isinstance(raw_prev, dict):
        try:
            prev = result.parse(raw_prev, cni_version or "0.1.0")
        except DecodeError as exc:
            _emit_error(cni_version, 6, "could not parse prevResult", exc.msg)
    try:
        cni_args = parse_cni_args(env.get("CNI_ARGS", ""))
    except CNIError as exc:
        _emit_error(cni_version, 4, exc.msg)
    cmd = CmdArgs(
        command=command,
        container_id=env.get("CNI_CONTAINERID", ""),
        netns=env.get("CNI_NETNS", ""),
        ifname=env.get("CNI_IFNAME", ""),
        args=cni_args,
        path=[p for p in env.get("CNI_PATH", "").split(":") if p],
        stdin=data,
        conf=conf,
        cni_version=cni_version,
        prev_result=prev,
    )
    try:
        if command == "ADD":
            answer = add(cmd)
            if isinstance(answer, (result.Result, result.LegacyResult)):
                answer = result.to_json(result.convert(answer, cni_version or "0.1.0"))
            sys.stdout.write(gojson.dumps(answer, indent="    ") + "\n")
        elif command == "DEL":
            delete(cmd)
        else:
            func = {"CHECK": check, "GC": gc, "STATUS": status}[command]
            if func is not None:
                func(cmd)
    except CNIError as exc:
        _emit_error(cni_version, exc.code if exc.code is not None else 999, exc.msg, exc.details)
    except Exception as exc:  # a bug in the plugin: still answer in protocol
        _emit_error(cni_version, 999, f"{type(exc).__name__}: {exc}")
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
    from .exec_sync import run_plugin

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
