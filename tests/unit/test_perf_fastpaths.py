"""The fast paths that keep the one-shot CLI from importing ``json``, ``re``,
``enum``, ``hashlib``, ``ipaddress`` and ``signal`` (issue 7) agree with the
standard-library code they replace, on crafted and generated inputs."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import signal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from libcni_py.core import args, gojson, names, result, schema
from libcni_py.edges import spawn
from libcni_py.errors import DecodeError

# Every code point, lone surrogates included (hypothesis leaves those out by default).
ANY_TEXT = st.text(alphabet=st.characters(exclude_categories=()))
SHORT_ASCII = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=127), max_size=12)


# -- gojson: string escaping, as the regular expression it replaces did --------------------------

_OLD_ESCAPE = re.compile('[\x00-\x1f"\\\\<>&\u2028\u2029\ud800-\udfff]')
_OLD_SHORT = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _old_escape_char(match: re.Match[str]) -> str:
    ch = match.group()
    if ch in _OLD_SHORT:
        return _OLD_SHORT[ch]
    code = ord(ch)
    if 0xD800 <= code <= 0xDFFF:
        return "\ufffd"
    return f"\\u{code:04x}"


def old_string(s: str) -> str:
    return '"' + _OLD_ESCAPE.sub(_old_escape_char, s) + '"'


@pytest.mark.parametrize(
    "text",
    [
        "",
        "plain",
        'q"uote',
        "back\\slash",
        "<a href='x'>&amp;</a>",
        "\x00\x01\x1f\x7f",
        "\b\f\n\r\t",
        "\u2028\u2029",
        "caf\u00e9 \u4e2d\u6587 \U0001f600",
        "\ud800x\udfff",
        "tab\there",
        "~!@#$%^*()",
    ],
)
def test_string_escaping_matches_the_old_regex(text: str) -> None:
    assert gojson._string(text) == old_string(text)


@settings(deadline=None)  # a loaded CI machine must not fail it
@given(ANY_TEXT)
def test_string_escaping_matches_the_old_regex_generated(text: str) -> None:
    assert gojson._string(text) == old_string(text)


# -- gojson: loads through the C scanner, as json.loads -------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | ANY_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ANY_TEXT, inner, max_size=4),
    max_leaves=12,
)


@settings(deadline=None)  # a loaded CI machine must not fail it
@given(JSON_VALUES, st.sampled_from(["", " ", "\n\t", " \r\n "]), st.booleans())
def test_loads_decodes_what_json_loads_decodes(value: object, space: str, ascii_only: bool) -> None:
    text = space + json.dumps(value, ensure_ascii=ascii_only) + space
    assert gojson.loads(text) == json.loads(text)
    if ascii_only:
        assert gojson.loads(text.encode()) == json.loads(text)


def _reference(text: str) -> object:
    """What gojson's slow path decodes: ``json.loads`` with Go's float64
    rules (a number out of float64's range is an error, as in Go)."""
    return json.loads(
        text, parse_constant=gojson._reject_constant, parse_float=gojson._go_float, parse_int=gojson._go_int
    )


def _reference_error(text: str) -> str:
    """The message gojson gave before it bypassed json.loads."""
    try:
        _reference(text)
    except json.JSONDecodeError as exc:
        return f"not valid JSON: {exc.msg} (line {exc.lineno} column {exc.colno})"
    except ValueError as exc:
        return f"not valid JSON: {exc}"
    raise AssertionError(f"{text!r} is valid JSON")


@pytest.mark.parametrize(
    "text",
    [
        "{",
        "[1,]",
        "[1 2]",
        "1 2",
        '{"a": 1} x',
        '{"a": 1}\n\x0b',
        "NaN",
        "[Infinity]",
        '{"a": -Infinity}',
        '"\x01"',
        "{'a': 1}",
        "tru",
        '{"a" 1}',
        "\u00a01",
        "1\u00a0",
        '["\\x"]',
        "[1]]",
        "1E310",  # out of float64's range: an error in Go, infinity for json.loads
        "1E310:",
        "[-1e400]",
    ],
)
def test_loads_errors_are_json_loads_errors(text: str) -> None:
    with pytest.raises(DecodeError) as info:
        gojson.loads(text)
    assert info.value.msg == _reference_error(text)


@settings(deadline=None)  # a loaded CI machine must not fail it
@given(st.text(alphabet='{}[]",:0123456789.eE+-tfnrual \n\\', max_size=30))
def test_loads_agrees_with_json_loads_on_noise(text: str) -> None:
    if not text.strip():
        return
    try:
        expected = _reference(text)
    except ValueError:
        with pytest.raises(DecodeError) as info:
            gojson.loads(text)
        assert info.value.msg == _reference_error(text)
    else:
        assert gojson.loads(text) == expected


# -- names: without re ------------------------------------------------------------------------------

_OLD_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.\-]*")


def old_is_valid_name(text: str) -> bool:
    return _OLD_NAME.fullmatch(text) is not None and text.isascii()


@pytest.mark.parametrize(
    "text", ["", "a", "A-b_c.d", "-a", ".a", "_a", "a b", "a\n", "a/b", "\u00e9", "a\u00e9", "9", "a..", "a\x00"]
)
def test_valid_name_matches_the_old_regex(text: str) -> None:
    assert names.is_valid_name(text) == old_is_valid_name(text)


@settings(deadline=None)  # a loaded CI machine must not fail it
@given(st.one_of(SHORT_ASCII, ANY_TEXT))
def test_valid_name_matches_the_old_regex_generated(text: str) -> None:
    assert names.is_valid_name(text) == old_is_valid_name(text)


# -- schema: the shipped patterns and JSON paths without re ---------------------------------------


@pytest.mark.parametrize("pattern", sorted(schema._PLAIN_PATTERNS))
@pytest.mark.parametrize(
    "text",
    [
        "",
        "true",
        "True",
        "TRUE",
        "tRuE",
        "false",
        "FALSE",
        "true\n",
        "true\n\n",
        "\ntrue",
        "yes",
        "a/b",
        "/",
        "bridge",
        "a\nb",
        "a\n/",
        "tru\u0435",
        "\u212aa",
    ],
)
def test_plain_patterns_match_re_search(pattern: str, text: str) -> None:
    # JSON Schema patterns are ECMA-262: "$" is the end of the input
    assert schema._PLAIN_PATTERNS[pattern](text) == (re.search(schema.ecma_to_python(pattern), text) is not None)


@settings(deadline=None)  # a loaded CI machine must not fail it
@given(st.sampled_from(sorted(schema._PLAIN_PATTERNS)), st.one_of(SHORT_ASCII, ANY_TEXT))
def test_plain_patterns_match_re_search_generated(pattern: str, text: str) -> None:
    # JSON Schema patterns are ECMA-262: "$" is the end of the input
    assert schema._PLAIN_PATTERNS[pattern](text) == (re.search(schema.ecma_to_python(pattern), text) is not None)


def test_every_pattern_of_the_shipped_schemas_has_a_plain_form() -> None:
    """A new pattern in a schema works (through ``re``) but makes every CLI
    call import ``re`` again: add its plain form to ``_PLAIN_PATTERNS``."""
    found: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("pattern"), str):
                found.add(node["pattern"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for name in schema.SCHEMA_NAMES:
        walk(schema.load(name))
    assert found <= set(schema._PLAIN_PATTERNS)


@settings(deadline=None)  # a loaded CI machine must not fail it
@given(st.lists(st.one_of(st.integers(min_value=0, max_value=99), SHORT_ASCII, ANY_TEXT), max_size=4))
def test_format_path_matches_the_old_regex(parts: list[str | int]) -> None:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", part):
            out += ("." if out else "") + part
        else:
            out += "[" + json.dumps(part) + "]"
    assert schema.format_path(parts) == out


# -- args: SHA-512 without hashlib ---------------------------------------------------------------


@settings(deadline=None)  # a loaded CI machine must not fail it
@given(st.text(alphabet=st.characters(exclude_categories=("Cs",)), min_size=1, max_size=40))
def test_container_id_matches_hashlib(tail: str) -> None:
    path = "/var/run/netns/" + tail.replace("\x00", "")
    expected = (
        "cnitool-"
        + hashlib.sha512(__import__("os").path.abspath(path).encode("utf-8", "surrogateescape")).hexdigest()[:20]
    )
    if path.startswith("//"):
        return
    assert args.cnitool_container_id(path) == expected


def test_container_id_is_go_cnitools() -> None:
    # Go: fmt.Sprintf("cnitool-%x", sha512.Sum512([]byte("/var/run/netns/blue"))[:10])
    assert (
        args.cnitool_container_id("/var/run/netns/blue")
        == "cnitool-" + hashlib.sha512(b"/var/run/netns/blue").hexdigest()[:20]
    )


# -- result: IPv4 addresses without ipaddress ------------------------------------------------------


def old_canonical_ip(text: str) -> str:
    if "%" in text or "/" in text or not text.isascii():
        raise ValueError(text)
    ip = ipaddress.ip_address(text)
    mapped = getattr(ip, "ipv4_mapped", None)
    return str(mapped if mapped is not None else ip)


def old_canonical_cidr(text: str) -> str:
    host, sep, prefix = text.partition("/")
    if not sep or not prefix.isascii() or not prefix.isdigit():
        raise ValueError(text)
    if "%" in host or not host.isascii():
        raise ValueError(text)
    ip = ipaddress.ip_address(host)
    bits = int(prefix)
    if bits > ip.max_prefixlen:
        raise ValueError(text)
    mapped = getattr(ip, "ipv4_mapped", None)
    if mapped is not None:
        return f"{mapped}/{max(0, bits - 96)}"
    return f"{ip}/{bits}"


def _outcome(func: object, text: str) -> str:
    try:
        return func(text)  # type: ignore[operator, no-any-return]
    except ValueError:
        return "ValueError"


OCTET = st.one_of(
    st.integers(min_value=0, max_value=300).map(str),
    st.sampled_from(["00", "01", "001", "010", "0255", "", "+1", "-1", " 1", "1 ", "\u0661", "0x1", "1e2", "\u00b9"]),
)
DOTTED = st.lists(OCTET, min_size=1, max_size=5).map(".".join)


@pytest.mark.parametrize(
    "text",
    [
        "10.0.0.1",
        "0.0.0.0",
        "255.255.255.255",
        "256.0.0.1",
        "01.2.3.4",
        "1.2.3",
        "1.2.3.4.5",
        "1..2.3",
        "",
        "::1",
        "::ffff:10.0.0.1",
        "fe80::1%eth0",
        "2001:DB8::1",
        "1.2.3.4 ",
        "\u0661.2.3.4",
        "a.b.c.d",
    ],
)
def test_canonical_ip_matches_ipaddress(text: str) -> None:
    assert _outcome(result.canonical_ip, text) == _outcome(old_canonical_ip, text)


@settings(deadline=None)  # a loaded CI machine must not fail it
@given(DOTTED)
def test_canonical_ip_matches_ipaddress_generated(text: str) -> None:
    assert _outcome(result.canonical_ip, text) == _outcome(old_canonical_ip, text)


@settings(deadline=None)  # a loaded CI machine must not fail it
@given(DOTTED, st.one_of(st.integers(min_value=0, max_value=140).map(str), st.sampled_from(["", "032", "x", "-1"])))
def test_canonical_cidr_matches_ipaddress_generated(host: str, prefix: str) -> None:
    text = f"{host}/{prefix}"
    assert _outcome(result.canonical_cidr, text) == _outcome(old_canonical_cidr, text)


@pytest.mark.parametrize(
    "text", ["10.1.2.3/24", "10.1.2.3/33", "10.1.2.3/032", "::ffff:10.1.2.3/120", "fd00::1/64", "1.2.3.4"]
)
def test_canonical_cidr_matches_ipaddress(text: str) -> None:
    assert _outcome(result.canonical_cidr, text) == _outcome(old_canonical_cidr, text)


# -- spawn: signal numbers without the signal module ---------------------------------------------


def test_spawn_uses_the_signal_modules_numbers() -> None:
    assert spawn._SIGKILL == signal.SIGKILL
    assert spawn._RESET_SIGNALS == (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
