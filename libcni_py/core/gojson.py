"""JSON the way Go's ``encoding/json`` writes it, and a strict reader.

Plugins must receive byte-for-byte what Go libcni would hand them, and cache
files must be interchangeable with Go's, so encoding follows ``encoding/json``:

* maps (plain ``dict``) are written with their keys sorted; structs are
  written in field order -- use :class:`Struct` (an insertion-ordered dict)
  for those;
* strings escape ``<``, ``>``, ``&``, U+2028 and U+2029 (Go's HTML-safe
  default) and control characters as ``\\u00XX`` except ``\\n``, ``\\r``,
  ``\\t``; invalid UTF-16 surrogates become U+FFFD;
* every number is a float64 when it went through ``interface{}``: integers
  beyond 2**53 lose precision as in Go, and floats are formatted like
  ``strconv.FormatFloat(f, 'f'|'e', -1, 64)`` (``1e+21``, ``1e-7``, ``2``).

Reading is stricter than Go on purpose: a UTF-8 byte-order mark, bytes that
are not UTF-8, ``NaN``/``Infinity`` and absurd nesting are refused with a
:class:`~libcni_py.errors.DecodeError` that says where.
"""

from __future__ import annotations

from ..errors import DecodeError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

__all__ = ["Raw", "Struct", "dumps", "dumps_bytes", "loads", "struct_fields", "MAX_DEPTH"]

#: Deepest nesting accepted by :func:`loads` (Go's own limit is 10000).
MAX_DEPTH = 512


class Struct(dict):  # type: ignore[type-arg]
    """A dict written in insertion order, as Go writes a struct's fields."""

    __slots__ = ()


class Raw:
    """A value already encoded by :func:`dumps` (compact), written as is.

    For a large value that goes into several documents -- GC's list of valid
    attachments goes to every plugin of the list -- so that it is encoded
    once.
    """

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


# What Go escapes in a string: control characters (short forms for \n, \r,
# \t), the quote and backslash, <, >, & (HTML-safe), U+2028 and U+2029; lone
# UTF-16 surrogates (invalid UTF-8 to Go) become U+FFFD.  A translate table
# rather than a regular expression: ``re`` costs the one-shot CLI ~7 ms.
_ESCAPES: dict[int, str] = {code: f"\\u{code:04x}" for code in (*range(0x20), *map(ord, "<>&"), 0x2028, 0x2029)}
_ESCAPES.update({ord('"'): '\\"', ord("\\"): "\\\\", ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"})
_ESCAPES.update(dict.fromkeys(range(0xD800, 0xE000), "\ufffd"))


def _string(s: str) -> str:
    # The common case -- printable ASCII with nothing to escape -- as is.
    if s.isascii() and s.isprintable() and not ('"' in s or "\\" in s or "<" in s or ">" in s or "&" in s):
        return '"' + s + '"'
    return '"' + s.translate(_ESCAPES) + '"'


def _float(f: float) -> str:
    if f - f != 0:  # NaN or an infinity (math.isfinite without importing math)
        raise ValueError("JSON cannot represent NaN or infinity")
    text = repr(f)  # shortest round-tripping digits: Python and Go agree on those
    sign = ""
    if text.startswith("-"):
        sign, text = "-", text[1:]
    if f == 0:
        return sign + "0"
    mantissa, _, exp_text = text.partition("e")
    whole, _, frac = mantissa.partition(".")
    all_digits = whole + frac
    digits = all_digits.lstrip("0")
    # number of digits before the decimal point, counted from `digits`
    point = len(whole) - (len(all_digits) - len(digits)) + (int(exp_text) if exp_text else 0)
    digits = digits.rstrip("0")
    if abs(f) < 1e-6 or abs(f) >= 1e21:
        exp = point - 1
        body = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        # strconv writes at least two exponent digits; encoding/json then
        # shortens "e-07" to "e-7" (but leaves "e+21").
        return f"{sign}{body}e-{-exp}" if exp < 0 else f"{sign}{body}e+{exp:02d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"


def _number(n: int | float) -> str:
    if isinstance(n, int):
        if -(2**53) <= n <= 2**53:
            return str(n)
        return _float(float(n))
    return _float(n)


def _encode(value: Any, out: list[str], indent: str | None, level: int) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(_string(value))
    elif isinstance(value, (int, float)):
        out.append(_number(value))
    elif isinstance(value, dict):
        if not value:
            out.append("{}")
            return
        keys = list(value) if isinstance(value, Struct) else sorted(value)
        out.append("{")
        for i, key in enumerate(keys):
            if not isinstance(key, str):
                raise TypeError(f"JSON object keys must be strings, not {type(key).__name__}")
            if i:
                out.append(",")
            if indent is not None:
                out.append("\n" + indent * (level + 1))
            out.append(_string(key))
            out.append(": " if indent is not None else ":")
            _encode(value[key], out, indent, level + 1)
        if indent is not None:
            out.append("\n" + indent * level)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        if not value:
            out.append("[]")
            return
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            if indent is not None:
                out.append("\n" + indent * (level + 1))
            _encode(item, out, indent, level + 1)
        if indent is not None:
            out.append("\n" + indent * level)
        out.append("]")
    elif isinstance(value, Raw):
        if indent is not None:
            raise ValueError("a Raw value cannot be indented")
        out.append(value.text)
    else:
        raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def dumps(value: Any, *, indent: str | None = None) -> str:
    """Encode like Go's ``json.Marshal`` (or ``json.MarshalIndent(v, "", indent)``).

    Plain dicts are written with sorted keys, :class:`Struct` in order.
    """
    out: list[str] = []
    _encode(value, out, indent, 0)
    return "".join(out)


def dumps_bytes(value: Any, *, indent: str | None = None) -> bytes:
    """:func:`dumps` as UTF-8 bytes."""
    return dumps(value, indent=indent).encode("utf-8")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _go_float(text: str) -> float:
    """A JSON number as Go's float64: out of range is an error, not infinity."""
    value = float(text)
    if value - value != 0:  # out of float64's range: infinity
        raise ValueError(f"number {text} is out of range")
    return value


def _go_int(text: str) -> int | float:
    """``-0`` is float64 negative zero in Go and is written back as ``-0``."""
    return -0.0 if text == "-0" else int(text)


class _DecoderSettings:
    """What ``json.loads`` hands its C scanner; the same scanner, so the same
    values.  ``go_numbers`` adds Go's float64 rules (out of range is an error,
    ``-0`` stays negative zero); ``unique`` refuses a key given twice."""

    strict = True
    object_hook = None
    parse_constant = staticmethod(_reject_constant)

    def __init__(self, *, go_numbers: bool, unique: bool) -> None:
        self.parse_float: Callable[[str], Any] = _go_float if go_numbers else float
        self.parse_int: Callable[[str], Any] = _go_int if go_numbers else int
        self.object_pairs_hook: Callable[[list[tuple[str, Any]]], Any] | None = _unique_pairs if unique else None


_scanners: dict[tuple[bool, bool], Callable[[str, int], tuple[Any, int]]] = {}
_JSON_SPACE = " \t\n\r"


def _c_scanner(*, go_numbers: bool, unique: bool) -> Callable[[str, int], tuple[Any, int]] | None:
    """The C scanner behind ``json.loads``, without importing :mod:`json`
    (which imports ``re``, which imports ``enum``: ~8 ms for a one-shot CLI)."""
    scanner = _scanners.get((go_numbers, unique))
    if scanner is None:
        try:
            from _json import make_scanner
        except ImportError:  # pragma: no cover - CPython always has it
            return None
        settings = _DecoderSettings(go_numbers=go_numbers, unique=unique)
        scanner = _scanners[(go_numbers, unique)] = make_scanner(settings)  # type: ignore[arg-type]
    return scanner


def _scan_document(scan: Callable[[str, int], tuple[Any, int]], text: str) -> Any:
    """Decode a whole document as ``json.loads`` does (leading and trailing
    JSON white space allowed, nothing else); raises on anything else."""
    start = len(text) - len(text.lstrip(_JSON_SPACE))
    value, end = scan(text, start)
    if end != len(text) and text[end:].strip(_JSON_SPACE):
        raise ValueError("extra data")
    return value


def _depth_ok(data: str) -> bool:
    """Cheap pre-check so pathological nesting fails cleanly, not by recursion."""
    if data.count("[") + data.count("{") <= MAX_DEPTH:
        return True
    depth = deepest = 0
    in_string = escaped = False
    for ch in data:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_DEPTH:
                return False
        elif ch in "]}":
            depth -= 1
    return True


class _DuplicateKey(ValueError):
    pass


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def loads(data: bytes | str, *, unique_keys: bool = False) -> Any:
    """Decode JSON strictly.

    Args:
        unique_keys: refuse an object that has the same key twice.  Go keeps
            the last one silently; configuration files are read with this
            on, since two readers of such a file may disagree about what it
            says (a ``"type"`` given twice, say).

    Raises:
        DecodeError: not UTF-8, a byte-order mark, not JSON, NaN/Infinity,
            nested deeper than :data:`MAX_DEPTH`, or (``unique_keys``) a key
            given twice.  The message says where.
    """
    if isinstance(data, bytes):
        if data.startswith(b"\xef\xbb\xbf"):
            raise DecodeError(
                "starts with a UTF-8 byte-order mark, which JSON does not allow",
                hint="save the file as UTF-8 without BOM",
            )
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeError(f"not valid UTF-8 (bad byte at offset {exc.start})") from None
    else:
        text = data
    if not text.strip():
        raise DecodeError("empty, expected a JSON document")
    if not _depth_ok(text):
        raise DecodeError(f"nested more than {MAX_DEPTH} levels deep")
    # Go's float64 rules need the (slower) number hooks only where they can matter
    go_numbers = "-0" in text or "e" in text or "E" in text
    scan = _c_scanner(go_numbers=go_numbers, unique=unique_keys)
    if scan is not None:
        try:
            return _scan_document(scan, text)
        except Exception:  # noqa: S110 - the reference decoder below says what is wrong
            pass
    import json  # only for documents that are not JSON: its errors say where

    try:
        numbers = {"parse_float": _go_float, "parse_int": _go_int} if go_numbers else {}
        return json.loads(
            text,
            parse_constant=_reject_constant,
            object_pairs_hook=_unique_pairs if unique_keys else None,
            **numbers,  # type: ignore[arg-type]
        )
    except _DuplicateKey as exc:
        raise DecodeError(f"the key {json.dumps(exc.args[0])} appears twice in one object") from None
    except json.JSONDecodeError as exc:
        raise DecodeError(f"not valid JSON: {exc.msg} (line {exc.lineno} column {exc.colno})") from None
    except ValueError as exc:
        raise DecodeError(f"not valid JSON: {exc}") from None
    except RecursionError:
        raise DecodeError("nested too deeply to decode") from None


def struct_fields(obj: Mapping[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """The members of a JSON object that Go's decoder would put into a struct
    with fields ``names``: an exact key match first, else a case-insensitive
    one; when several keys match a field, the last one wins; others dropped."""
    folded = {name.lower(): name for name in names}
    out: dict[str, Any] = {}
    for key, value in obj.items():
        field = key if key in names else folded.get(key.lower())
        if field is not None:
            out[field] = value
    return out
