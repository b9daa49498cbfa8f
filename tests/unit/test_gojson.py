"""Unit tests for libcni_py.core.gojson: Go-exact encoding and a strict decoder.

The expected strings in GO_MARSHAL were produced by Go 1.19.8's encoding/json:
``json.Unmarshal`` of the input into ``interface{}`` and then ``json.Marshal``
(and ``json.MarshalIndent(v, "", "    ")``) of the decoded value, run once in a
throw-away program under /tmp, and pasted here as literals.
"""

from __future__ import annotations

import json
import math
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from libcni_py.core import gojson
from libcni_py.core.gojson import MAX_DEPTH, Struct
from libcni_py.errors import CODE_DECODING_FAILURE, CNIError, DecodeError

# (input JSON, json.Marshal output, json.MarshalIndent(v, "", "    ") output), from Go 1.19 encoding/json
GO_MARSHAL = [
    (
        '{"b":1,"a":[true,false,null],"c":{"z":"<>&","y":"\\u2028\\u2029"}}',
        '{"a":[true,false,null],"b":1,"c":{"y":"\\u2028\\u2029","z":"\\u003c\\u003e\\u0026"}}',
        '{\n    "a": [\n        true,\n        false,\n        null\n    ],\n    "b": 1,\n    "c": {\n'
        '        "y": "\\u2028\\u2029",\n        "z": "\\u003c\\u003e\\u0026"\n    }\n}',
    ),
    (
        "[1e21,1e20,1e-7,0.000001,100,1.5,-0.0,12345678901234567890,9007199254740993,0.1,1e100,"
        "123456789e-20,-1.25e-10,5e-324,1.7976931348623157e308,2.5e-8,123456.789,1E2]",
        "[1e+21,100000000000000000000,1e-7,0.000001,100,1.5,-0,12345678901234567000,9007199254740992,0.1,"
        "1e+100,1.23456789e-12,-1.25e-10,5e-324,1.7976931348623157e+308,2.5e-8,123456.789,100]",
        None,
    ),
    (
        '"\\u0000\\u0001\\b\\f\\n\\r\\t\\u001f\\u007f\\"\\\\/"',
        '"\\u0000\\u0001\\u0008\\u000c\\n\\r\\t\\u001f\x7f\\"\\\\/"',
        '"\\u0000\\u0001\\u0008\\u000c\\n\\r\\t\\u001f\x7f\\"\\\\/"',
    ),
    (
        '["\\ud800","a\\udc00b","\\ud83d\\ude00","é€"]',
        '["\ufffd","a\ufffdb","\U0001f600","é€"]',
        '[\n    "\ufffd",\n    "a\ufffdb",\n    "\U0001f600",\n    "é€"\n]',
    ),
    (
        '{"é":1,"Z":2,"a":3,"_":4,"":5,"aa":6,"B":7}',
        '{"":5,"B":7,"Z":2,"_":4,"a":3,"aa":6,"é":1}',
        '{\n    "": 5,\n    "B": 7,\n    "Z": 2,\n    "_": 4,\n    "a": 3,\n    "aa": 6,\n    "é": 1\n}',
    ),
    (
        '{"a":{},"b":[],"c":[1,{"d":null,"e":"x"}],"f":"<tag>"}',
        '{"a":{},"b":[],"c":[1,{"d":null,"e":"x"}],"f":"\\u003ctag\\u003e"}',
        '{\n    "a": {},\n    "b": [],\n    "c": [\n        1,\n        {\n            "d": null,\n'
        '            "e": "x"\n        }\n    ],\n    "f": "\\u003ctag\\u003e"\n}',
    ),
    (
        '{"big":9007199254740993,"neg":-9007199254740993,"max":9007199254740992,"x":18446744073709551615}',
        '{"big":9007199254740992,"max":9007199254740992,"neg":-9007199254740992,"x":18446744073709552000}',
        '{\n    "big": 9007199254740992,\n    "max": 9007199254740992,\n    "neg": -9007199254740992,\n'
        '    "x": 18446744073709552000\n}',
    ),
]


@pytest.mark.parametrize(("source", "marshal", "indent"), GO_MARSHAL)
def test_marshal_matches_go(source: str, marshal: str, indent: str | None) -> None:
    value = gojson.loads(source)
    assert gojson.dumps(value) == marshal
    assert gojson.dumps_bytes(value) == marshal.encode("utf-8")
    if indent is not None:
        assert gojson.dumps(value, indent="    ") == indent


def test_negative_zero_integer_like_go() -> None:
    assert gojson.dumps(gojson.loads("[-0]")) == "[-0]"


# --------------------------------------------------------------------------- numbers


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1e21, "1e+21"),
        (-1e21, "-1e+21"),
        (1e20, "100000000000000000000"),
        (999999999999999900000.0, "999999999999999900000"),
        (1e-7, "1e-7"),
        (1.5e-7, "1.5e-7"),
        (1e-6, "0.000001"),
        (0.0000012, "0.0000012"),
        (100.0, "100"),
        (100, "100"),
        (0, "0"),
        (0.0, "0"),
        (-0.0, "-0"),
        (-2, "-2"),
        (2.5, "2.5"),
        (0.1, "0.1"),
        (1e100, "1e+100"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (5e-324, "5e-324"),
        (12345678901234567890, "12345678901234567000"),
        (2**53, "9007199254740992"),
        (2**53 + 1, "9007199254740992"),
        (-(2**53) - 1, "-9007199254740992"),
        (2**53 - 1, "9007199254740991"),
        (2**64 - 1, "18446744073709552000"),
        (10**21, "1e+21"),
        (10**22 + 1, "1e+22"),
    ],
)
def test_number_formatting(value: float, expected: str) -> None:
    assert gojson.dumps(value) == expected


def test_bool_is_not_a_number() -> None:
    assert gojson.dumps([True, False, None]) == "[true,false,null]"


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_float_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="NaN or infinity"):
        gojson.dumps({"x": bad})


_GO_EXP = re.compile(r"-?[1-9](\.[0-9]*[1-9])?e(-[1-9][0-9]*|\+[0-9]{2,})")
_GO_PLAIN = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]*[1-9])?")


@settings(max_examples=300, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_float_format_round_trips_and_follows_go_rules(f: float) -> None:
    text = gojson.dumps(f)
    assert float(text) == f
    if f != 0 and (abs(f) < 1e-6 or abs(f) >= 1e21):
        assert _GO_EXP.fullmatch(text), text
    else:
        assert _GO_PLAIN.fullmatch(text), text
    # shortest representation, as strconv.FormatFloat(f, 'g'/-1) picks
    digits = re.sub(r"e.*", "", text).replace("-", "").replace(".", "").strip("0")
    assert len(digits) <= len(repr(abs(f)).split("e")[0].replace(".", "").strip("0"))


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=-(2**53), max_value=2**53))
def test_exact_integers_written_exactly(n: int) -> None:
    assert gojson.dumps(n) == str(n)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=2**53 + 1, max_value=2**80))
def test_large_integers_rounded_like_float64(n: int) -> None:
    text = gojson.dumps(n)
    assert float(text) == float(n)
    assert gojson.dumps(-n) == "-" + text


# --------------------------------------------------------------------------- strings


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<", '"\\u003c"'),
        (">", '"\\u003e"'),
        ("&", '"\\u0026"'),
        ("\u2028", '"\\u2028"'),
        ("\u2029", '"\\u2029"'),
        ("\n\r\t", '"\\n\\r\\t"'),
        ("\x00", '"\\u0000"'),
        ("\x08\x0c", '"\\u0008\\u000c"'),
        ("\x1f", '"\\u001f"'),
        ("\x7f", '"\x7f"'),
        ('"\\', '"\\"\\\\"'),
        ("/", '"/"'),
        ("é\u20ac\U0001f600", '"é\u20ac\U0001f600"'),
        ("\ud800", '"\ufffd"'),
        ("a\udfffb", '"a\ufffdb"'),
        ("", '""'),
    ],
)
def test_string_escaping(text: str, expected: str) -> None:
    assert gojson.dumps(text) == expected


def test_keys_are_escaped_too() -> None:
    assert gojson.dumps({"<k>": 1}) == '{"\\u003ck\\u003e":1}'


# --------------------------------------------------------------------------- structs and maps


def test_dict_keys_sorted_struct_keeps_order() -> None:
    assert gojson.dumps({"b": 1, "a": 2}) == '{"a":2,"b":1}'
    assert gojson.dumps(Struct(b=1, a=2)) == '{"b":1,"a":2}'


def test_nesting_struct_and_map() -> None:
    value = Struct(z={"y": 1, "x": Struct(q=1, p=2)}, a=[Struct(k=1, j=2), {"k": 1, "j": 2}])
    assert gojson.dumps(value) == '{"z":{"x":{"q":1,"p":2},"y":1},"a":[{"k":1,"j":2},{"j":2,"k":1}]}'


def test_struct_is_a_dict_and_compares_as_one() -> None:
    s = Struct(a=1)
    assert isinstance(s, dict)
    assert s == {"a": 1}


def test_tuple_encodes_as_list() -> None:
    assert gojson.dumps(("a", (1, 2))) == '["a",[1,2]]'


def test_indent_form_like_marshal_indent() -> None:
    value = Struct(name="n", plugins=[Struct(type="a")], empty={}, none=[], nested={"b": [1], "a": None})
    assert gojson.dumps(value, indent="    ") == (
        '{\n    "name": "n",\n    "plugins": [\n        {\n            "type": "a"\n        }\n    ],\n'
        '    "empty": {},\n    "none": [],\n    "nested": {\n        "a": null,\n        "b": [\n'
        "            1\n        ]\n    }\n}"
    )


def test_indent_scalar() -> None:
    assert gojson.dumps(5, indent="    ") == "5"


@pytest.mark.parametrize("bad", [{1: "x"}, {("a",): 1}, {None: 1}])
def test_non_string_keys_refused(bad: dict[object, object]) -> None:
    with pytest.raises(TypeError, match="keys must be strings"):
        gojson.dumps(bad)


@pytest.mark.parametrize("bad", [{1, 2}, object(), b"bytes", 1j])
def test_unencodable_types_refused(bad: object) -> None:
    with pytest.raises(TypeError, match="cannot encode"):
        gojson.dumps({"x": bad})


def test_dumps_bytes_is_utf8() -> None:
    assert gojson.dumps_bytes({"k": "é"}) == '{"k":"é"}'.encode()
    assert gojson.dumps_bytes([1], indent="  ") == b"[\n  1\n]"


# --------------------------------------------------------------------------- decoding


def test_loads_accepts_bytes_and_str() -> None:
    assert gojson.loads(b' {"a": [1, 2.5, "x"]} \n') == {"a": [1, 2.5, "x"]}
    assert gojson.loads('{"a": null}') == {"a": None}


def test_loads_duplicate_keys_last_wins_like_go_maps() -> None:
    assert gojson.loads('{"a":1,"a":2}') == {"a": 2}


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"\xef\xbb\xbf{}", "byte-order mark"),
        (b'{"a":"\xff"}', "not valid UTF-8 (bad byte at offset 6)"),
        (b"\xc3", "not valid UTF-8"),
        (b"NaN", "NaN is not valid JSON"),
        (b"[Infinity]", "Infinity is not valid JSON"),
        (b'{"a":-Infinity}', "-Infinity is not valid JSON"),
        (b"", "empty"),
        (b"   \n\t", "empty"),
        ("", "empty"),
        (b"{", "not valid JSON"),
        (b'{"a":1}x', "not valid JSON: Extra data (line 1 column 8)"),
        (b"{'a':1}", "not valid JSON"),
        (b"[1,]", "not valid JSON"),
        (b'"\x01"', "not valid JSON"),
        (b"01", "not valid JSON"),
    ],
)
def test_loads_errors(data: bytes | str, fragment: str) -> None:
    with pytest.raises(DecodeError) as info:
        gojson.loads(data)
    assert fragment in str(info.value)
    assert info.value.code == CODE_DECODING_FAILURE
    assert isinstance(info.value, CNIError)


def test_bom_error_has_hint() -> None:
    with pytest.raises(DecodeError) as info:
        gojson.loads(b"\xef\xbb\xbf{}")
    assert "BOM" in info.value.hint


def test_error_position_reported() -> None:
    with pytest.raises(DecodeError, match="line 2 column 5"):
        gojson.loads(b'{"a":\n  1 2}')


@pytest.mark.parametrize("opener", ["[", '{"a":'])
def test_nesting_limit(opener: str) -> None:
    closer = "]" if opener == "[" else "}"
    ok = opener * MAX_DEPTH + "1" + closer * MAX_DEPTH
    assert gojson.loads(ok) is not None
    too_deep = opener * (MAX_DEPTH + 1) + "1" + closer * (MAX_DEPTH + 1)
    with pytest.raises(DecodeError, match=f"nested more than {MAX_DEPTH} levels"):
        gojson.loads(too_deep)


def test_very_deep_nesting_is_a_decode_error_not_recursion() -> None:
    with pytest.raises(DecodeError):
        gojson.loads(b"[" * 100_000)


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    text = json.dumps({"a": "[" * 5000 + "{" * 5000, "b": ['\\"[[[' * 300]})
    assert gojson.loads(text)["a"].startswith("[[[")


def test_many_siblings_are_not_nesting() -> None:
    text = "[" + ",".join(["[]"] * 5000) + "]"
    assert len(gojson.loads(text)) == 5000


def test_number_out_of_float64_range_refused() -> None:
    with pytest.raises(DecodeError):
        gojson.loads(b'{"mtu":1e400}')


# --------------------------------------------------------------------------- round trips

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    _scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=25,
)


def _surrogate_free(value: object) -> object:
    """Strings without lone surrogates (those become U+FFFD by design), and no
    float -0.0 (its known defect is covered by test_negative_zero_integer_like_go)."""
    if isinstance(value, float) and value == 0:
        return 0.0
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, list):
        return [_surrogate_free(v) for v in value]
    if isinstance(value, dict):
        return {_surrogate_free(k): _surrogate_free(v) for k, v in value.items()}
    return value


def _as_float64(value: object) -> object:
    """What Go sees after decoding into interface{}: every number a float64."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, list):
        return [_as_float64(v) for v in value]
    assert isinstance(value, dict)
    return {k: _as_float64(v) for k, v in value.items()}


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_round_trip(value: object) -> None:
    value = _surrogate_free(value)
    text = gojson.dumps(value)
    assert _as_float64(gojson.loads(text)) == _as_float64(value)
    assert _as_float64(gojson.loads(gojson.dumps(value, indent="    "))) == _as_float64(value)
    # the standard library reads what we write
    assert _as_float64(json.loads(text)) == _as_float64(value)
    # writing is stable: decode + encode gives the same bytes
    assert gojson.dumps(gojson.loads(text)) == text
    # and nothing HTML-sensitive or raw control character is ever written
    assert not re.search(r"[<>&\u2028\u2029\x00-\x1f]", text)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=6), st.integers(), max_size=8))
def test_map_keys_sorted_by_code_point(value: dict[str, int]) -> None:
    value = {k.encode("utf-8", "replace").decode(): v for k, v in value.items()}
    decoded_keys = list(json.loads(gojson.dumps(value), object_pairs_hook=lambda pairs: [k for k, _ in pairs]))
    assert decoded_keys == sorted(value, key=lambda k: k.encode("utf-8"))
