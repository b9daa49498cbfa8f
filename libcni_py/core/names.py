"""Validation of the names that become parts of cache paths.

Container IDs and network names must match ``[a-zA-Z0-9][a-zA-Z0-9_.-]*``;
interface names must be 1-15 bytes, not ``.`` or ``..``, without ``/``, ``:``,
white space (the kernel's rules, as Go's ``utils`` package checks them) or
control characters (a NUL cannot even be passed to a plugin).
Go libcni checks these on ADD only; libcni_py checks them before every
operation, before any plugin runs and before any path is built, so that a DEL
or GC can never be steered outside the cache directory.
"""

from __future__ import annotations

from ..errors import (
    CODE_INVALID_ENVIRONMENT,
    CODE_INVALID_NETWORK_CONFIG,
    CODE_UNKNOWN_CONTAINER,
    ArgsError,
    InvalidNameError,
)

__all__ = [
    "check_container_id",
    "check_ifname",
    "check_network_name",
    "check_utf8",
    "is_valid_name",
    "non_utf8_string",
    "printable",
]

_MAX_IFNAME = 15
#: Go's unicode.IsSpace (Python's str.isspace also counts U+001C-U+001F)
GO_SPACE = frozenset("\t\n\v\f\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000") | frozenset(
    chr(c) for c in range(0x2000, 0x200B)
)
_PUNCTUATION = str.maketrans("", "", "_.-")


def is_valid_name(text: str) -> bool:
    """True if ``text`` is a valid container ID or network name
    (``[a-zA-Z0-9][a-zA-Z0-9_.-]*``, checked without ``re``: importing it
    costs a one-shot CLI call ~7 ms)."""
    if not text or not text.isascii() or not text[0].isalnum():
        return False
    rest = text[1:].translate(_PUNCTUATION)
    return not rest or rest.isalnum()


def check_container_id(container_id: str, *, where: str = "") -> None:
    """Raise :class:`InvalidNameError` unless ``container_id`` is valid."""
    if not container_id:
        raise InvalidNameError("container ID", container_id, "missing", code=CODE_UNKNOWN_CONTAINER, where=where)
    if not is_valid_name(container_id):
        raise InvalidNameError(
            "container ID",
            container_id,
            "invalid characters",
            code=CODE_INVALID_ENVIRONMENT,
            where=where,
        )


def check_network_name(name: str, *, where: str = "") -> None:
    """Raise :class:`InvalidNameError` unless ``name`` is a valid network name."""
    if not name:
        raise InvalidNameError("network name", name, "missing", code=CODE_INVALID_NETWORK_CONFIG, where=where)
    if not is_valid_name(name):
        raise InvalidNameError(
            "network name", name, "invalid characters", code=CODE_INVALID_NETWORK_CONFIG, where=where
        )


def printable(text: str) -> str:
    """``text`` with the bytes that are not UTF-8 (the surrogates Python
    decodes them to, from argv, the environment or a file name) written as
    ``\\xNN``, so that it can be printed on any terminal."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that stands for no byte
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def check_utf8(what: str, text: str) -> None:
    """Raise :class:`~libcni_py.errors.ArgsError` if ``text`` is not valid
    UTF-8 (holds a surrogate: a byte that is not UTF-8, from argv, the
    environment or a file name, or a lone surrogate given by a caller).

    The cache record is JSON, written as Go writes it: a string that is not
    UTF-8 becomes U+FFFD there (in Go's records too), so a netns path, an
    interface name or a CNI_ARGS value with such a byte would come back as
    another string, and a later DEL or GC would be given the wrong one.
    Refused before any plugin runs or any file is written.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        offset = len(text[: exc.start].encode("utf-8"))
        raise ArgsError(
            f"{what} '{printable(text)}' is not valid UTF-8 (at byte {offset})",
            hint="the cache record (JSON, shared with Go libcni) cannot keep it byte for byte, so a later DEL "
            "or GC would be given another value; use a name that is valid UTF-8",
        ) from None


def non_utf8_string(value: object) -> str | None:
    """The first string (key or value) in a JSON-like ``value`` that is not
    valid UTF-8, or None."""
    if isinstance(value, str):
        return None if not any("\ud800" <= ch <= "\udfff" for ch in value) else value
    if isinstance(value, dict):
        value = [*value.keys(), *value.values()]
    if isinstance(value, list | tuple):
        for item in value:
            found = non_utf8_string(item)
            if found is not None:
                return found
    return None


def check_ifname(ifname: str, *, where: str = "") -> None:
    """Raise :class:`InvalidNameError` unless ``ifname`` is a valid interface name."""
    if any("\ud800" <= ch <= "\udfff" for ch in ifname):
        raise InvalidNameError(
            "interface name", ifname, "is not valid UTF-8", code=CODE_INVALID_ENVIRONMENT, where=where
        )
    size = len(ifname.encode("utf-8"))
    problem = ""
    if size == 0:
        problem = "is empty"
    elif size > _MAX_IFNAME:
        problem = f"is too long ({size} bytes, at most {_MAX_IFNAME})"
    elif ifname in (".", ".."):
        problem = "must not be . or .."
    elif any(ch in "/:" or ch in GO_SPACE for ch in ifname):
        problem = "contains '/', ':' or white space"
    elif any(ord(ch) < 32 or ord(ch) == 127 for ch in ifname):
        problem = "contains a control character"
    if problem:
        raise InvalidNameError("interface name", ifname, problem, code=CODE_INVALID_ENVIRONMENT, where=where)
