"""Runtime arguments: CNI_ARGS pairs, capability arguments, container IDs.

``CNI_ARGS`` is ``K=V;K=V``.  Go's upstream ``cnitool`` refuses a pair that is
not exactly one ``=`` between a non-empty key and value; so does this module,
naming the pair (``CNI_ARGS: pair 2 "FOO" has no '='``).  Plugins built on
Go's ``skel`` split values on ``=`` too, so a value containing ``=`` or ``;``
could never reach them intact.

Capability arguments (``CAP_ARGS``) are a JSON object.  Their values can hold
secrets, so messages about them never quote a value.
"""

from __future__ import annotations

import os

from ..errors import ArgsError, DecodeError
from . import gojson

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

__all__ = [
    "check_cni_args",
    "cnitool_container_id",
    "format_cni_args",
    "parse_capability_args",
    "parse_cni_args",
    "WELL_KNOWN_CAPABILITIES",
]

#: Capability keys of the CNI conventions document (CONVENTIONS.md).
WELL_KNOWN_CAPABILITIES = (
    "portMappings",
    "ipRanges",
    "bandwidth",
    "dns",
    "ips",
    "mac",
    "infinibandGUID",
    "deviceID",
    "aliases",
    "cgroupPath",
    "io.kubernetes.cri.pod-annotations",
)


def parse_cni_args(text: str, *, source: str = "CNI_ARGS") -> tuple[tuple[str, str], ...]:
    """``"A=1;B=2"`` -> ``(("A", "1"), ("B", "2"))``; ``""`` -> ``()``.

    Raises:
        ArgsError: a pair without exactly one ``=``, or an empty key or value.
    """
    if text == "":
        return ()
    pairs: list[tuple[str, str]] = []
    for index, pair in enumerate(text.split(";"), start=1):
        parts = pair.split("=")
        if len(parts) != 2:
            problem = "has no '='" if len(parts) == 1 else "has more than one '='"
            raise ArgsError(
                f"{source}: pair {index} {pair!r} {problem}",
                hint="write KEY=VALUE pairs separated by ';', e.g. K8S_POD_NAME=web;IgnoreUnknown=1",
            )
        pairs.append((parts[0], parts[1]))
    return check_cni_args(pairs, source=source)


def check_cni_args(pairs: Iterable[tuple[str, str]], *, source: str = "CNI_ARGS") -> tuple[tuple[str, str], ...]:
    """Check CNI_ARGS pairs given as pairs (by a library caller, or parsed).

    Each must survive the trip through ``K=V;K=V`` to a plugin: a non-empty
    key and value, neither holding ``=`` or ``;`` (plugins split on them),
    and no control character in the key or NUL in the value (an environment
    variable cannot hold one).

    Returns:
        The pairs, as a tuple.

    Raises:
        ArgsError: naming the pair (by position, and by its key when that is safe to show).
    """
    checked: list[tuple[str, str]] = []
    for index, (key, value) in enumerate(pairs, start=1):
        pair = f"{key}={value}"
        if not key or not value:
            raise ArgsError(
                f"{source}: pair {index} {pair!r} has an empty {'key' if not key else 'value'}",
                hint="write KEY=VALUE pairs separated by ';'",
            )
        if any(ch in "=;" for ch in key + value):
            raise ArgsError(
                f"{source}: pair {index} {pair!r} holds '=' or ';' in its key or value",
                hint="plugins split CNI_ARGS on ';' and '=': those cannot be part of a key or value",
            )
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in key):
            raise ArgsError(f"{source}: pair {index} has a control character in its key")
        if "\0" in value:
            raise ArgsError(f"{source}: pair {index} ({key}) has a NUL byte in its value")
        checked.append((key, value))
    return tuple(checked)


def format_cni_args(pairs: Iterable[tuple[str, str]]) -> str:
    """The ``CNI_ARGS`` value for ``pairs`` (Go's ``stringify``)."""
    return ";".join(f"{k}={v}" for k, v in pairs)


def parse_capability_args(text: str, *, source: str = "CAP_ARGS") -> dict[str, Any]:
    """Parse a JSON object of capability arguments; ``""`` -> ``{}``.

    Raises:
        ArgsError: not JSON, or not an object.  The message never quotes the
            text: capability arguments may carry secrets.
    """
    if text.strip() == "":
        return {}
    try:
        value = gojson.loads(text)
    except DecodeError as exc:
        # exc.msg says where (line/column) but never quotes the document.
        raise ArgsError(
            f"{source}: {exc.msg}",
            hint='give a JSON object, e.g. {"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]}',
        ) from None
    if not isinstance(value, dict):
        raise ArgsError(
            f"{source}: expected a JSON object of capability arguments, got a JSON {_kind(value)}",
            hint='e.g. {"portMappings":[...]}',
        )
    return value


def _kind(value: object) -> str:
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"


def cnitool_container_id(netns: str) -> str:
    """The container ID Go's ``cnitool`` derives from a netns path.

    ``cnitool-`` + hex of the first 10 bytes of SHA-512 of the absolute,
    cleaned path (Go's ``filepath.Abs``).
    """
    path = os.path.abspath(netns)
    if path.startswith("//"):
        path = "/" + path.lstrip("/")  # Go's Clean keeps one leading slash
    digest: str = _sha512(path.encode("utf-8", "surrogateescape")).hexdigest()
    return "cnitool-" + digest[:20]


def _sha512(data: bytes) -> Any:
    """SHA-512 from CPython's built-in module when there is one: ``hashlib``
    loads OpenSSL, ~3 ms of a one-shot CLI call, for one short hash."""
    for name in ("_sha512", "_sha2"):  # CPython <= 3.11, >= 3.12
        try:
            return __import__(name).sha512(data)
        except ImportError:
            continue
    import hashlib

    return hashlib.sha512(data)
