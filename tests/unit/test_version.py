"""Unit tests for libcni_py.core.version (Go's pkg/version semantics)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from libcni_py.core import version
from libcni_py.core.version import PluginInfo
from libcni_py.errors import CODE_INCOMPATIBLE_VERSION, VersionError


def test_implemented_versions() -> None:
    assert version.SPEC_VERSIONS == ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
    assert version.CURRENT == "1.1.0"


# --------------------------------------------------------------------------- parse (Go's ParseVersion)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", (0, 1, 0)),  # Go: "no version declared == v0.1.0"
        ("1.0.0", (1, 0, 0)),
        ("0.4.0", (0, 4, 0)),
        ("0.3.1", (0, 3, 1)),
        ("1", (1, 0, 0)),
        ("1.2", (1, 2, 0)),
        ("01.002.3", (1, 2, 3)),  # strconv.Atoi accepts leading zeros
        ("+1.0.0", (1, 0, 0)),  # ... and a sign
        ("-1.0.0", (-1, 0, 0)),
        ("10.20.30", (10, 20, 30)),
    ],
)
def test_parse(text: str, expected: tuple[int, int, int]) -> None:
    assert version.parse(text) == expected


def test_parse_too_many_parts() -> None:
    with pytest.raises(VersionError) as info:
        version.parse("1.0.0.0")
    assert str(info.value) == 'invalid version "1.0.0.0": too many parts'
    assert info.value.code == CODE_INCOMPATIBLE_VERSION


@pytest.mark.parametrize(
    "text",
    ["a.b.c", "1..0", "1.0.", ".1", " 1.0.0", "1.0.0 ", "1.0.0-rc1", "v1.0.0", "1.\u0663.0", "1.+.0", "1_0.0.0", "0x1"],
)
def test_parse_not_a_number(text: str) -> None:
    with pytest.raises(VersionError, match="is not a number"):
        version.parse(text)


def test_parse_out_of_int64_range_refused() -> None:
    with pytest.raises(VersionError):
        version.parse("99999999999999999999.0.0")


@settings(max_examples=200, deadline=None)
@given(st.tuples(*[st.integers(min_value=0, max_value=10**6)] * 3))
def test_parse_round_trip(parts: tuple[int, int, int]) -> None:
    assert version.parse(".".join(map(str, parts))) == parts


# --------------------------------------------------------------------------- gte


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("1.0.0", "0.4.0", True),
        ("0.4.0", "0.4.0", True),
        ("0.3.1", "0.4.0", False),
        ("0.10.0", "0.9.0", True),  # numeric, not lexical
        ("", "0.1.0", True),
        ("", "0.2.0", False),
        ("1.1.0", "1.1", True),
        ("1", "1.0.1", False),
        ("0.4.0", "1.0.0", False),
    ],
)
def test_gte(a: str, b: str, expected: bool) -> None:
    assert version.gte(a, b) is expected


def test_gte_propagates_parse_errors() -> None:
    with pytest.raises(VersionError):
        version.gte("1.0.0", "x")
    with pytest.raises(VersionError):
        version.gte("x", "1.0.0")


# --------------------------------------------------------------------------- family


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "020"),
        ("0.1.0", "020"),
        ("0.2.0", "020"),
        ("0.3.0", "040"),
        ("0.3.1", "040"),
        ("0.4.0", "040"),
        ("1.0.0", "100"),
        ("1.1.0", "100"),
    ],
)
def test_family(text: str, expected: str) -> None:
    assert version.family(text) == expected


@pytest.mark.parametrize("text", ["2.0.0", "1.0", "0.3.2", "1.2.0", "x", "1.0.0 "])
def test_family_unknown(text: str) -> None:
    with pytest.raises(VersionError) as info:
        version.family(text)
    assert f'unsupported CNI version "{text}"' in str(info.value)
    assert "1.1.0" in info.value.hint
    assert info.value.code == CODE_INCOMPATIBLE_VERSION


# --------------------------------------------------------------------------- select


@pytest.mark.parametrize(
    ("cni_version", "cni_versions", "expected"),
    [
        ("1.0.0", None, "1.0.0"),
        ("banana", None, "banana"),  # without cniVersions, as written (Go does not parse it)
        ("", None, ""),
        ("0.4.0", ["1.0.0", "0.3.1"], "1.0.0"),
        ("1.1.0", ["0.4.0"], "1.1.0"),
        ("", ["1.1.0", "1.0.0"], "1.1.0"),
        ("1.0.0", ["2.0.0"], "1.0.0"),  # newer entries are ignored
        ("2.0.0", ["1.0.0"], "1.0.0"),
        ("2.0.0", ["3.0.0", "1.2.0"], "2.0.0"),  # all newer: cniVersion as written
        ("", ["2.0.0"], ""),
        ("0.3.1", [], "0.3.1"),
        ("", [], ""),
        ("0.2.0", ["0.10.0"], "0.10.0"),  # compared numerically, then "not newer than 1.1.0"
        ("1.0.0", ["1.1.0", "1.1.1"], "1.1.0"),
    ],
)
def test_select(cni_version: str, cni_versions: list[str] | None, expected: str) -> None:
    assert version.select(cni_version, cni_versions) == expected


def test_select_accepts_any_iterable() -> None:
    assert version.select("0.4.0", iter(["1.0.0"])) == "1.0.0"
    assert version.select("0.4.0", ("0.3.0",)) == "0.4.0"


@pytest.mark.parametrize(("cni_version", "cni_versions"), [("1.0.0", ["1.0.0", "x"]), ("x", ["1.0.0"])])
def test_select_invalid_entry(cni_version: str, cni_versions: list[str]) -> None:
    with pytest.raises(VersionError, match='invalid version "x"'):
        version.select(cni_version, cni_versions)


_versions = st.sampled_from([*version.SPEC_VERSIONS, "1.2.0", "2.0.0", "0.5.0", "10.0.0", "1", "0.3"])


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.just(""), _versions), st.lists(_versions, max_size=5))
def test_select_picks_highest_not_newer_than_current(cni_version: str, cni_versions: list[str]) -> None:
    chosen = version.select(cni_version, cni_versions)
    candidates = [v for v in [*cni_versions, cni_version] if v and version.gte(version.CURRENT, v)]
    if not candidates:
        assert chosen == cni_version
    else:
        assert chosen in candidates
        assert all(version.gte(chosen, v) for v in candidates)


# --------------------------------------------------------------------------- PluginInfo


def test_plugin_info_supports() -> None:
    info = PluginInfo(cni_version="1.0.0", supported_versions=["0.3.1", "0.4.0", "1.0.0"])
    assert info.supports("0.4.0")
    assert not info.supports("1.1.0")
    assert not info.supports("")  # "" means 0.1.0, not listed
    assert info.supported_versions == ("0.3.1", "0.4.0", "1.0.0")


def test_plugin_info_empty_version_means_010() -> None:
    assert version.LEGACY_INFO.supports("")
    assert version.LEGACY_INFO.supports("0.1.0")
    assert not version.LEGACY_INFO.supports("0.2.0")
    assert version.LEGACY_INFO.supported_versions == ("0.1.0",)


def test_plugin_info_to_json_and_value_semantics() -> None:
    info = PluginInfo(cni_version="1.1.0", supported_versions=iter(["1.0.0", "1.1.0"]))
    assert info.to_json() == {"cniVersion": "1.1.0", "supportedVersions": ["1.0.0", "1.1.0"]}
    assert info == PluginInfo(cni_version="1.1.0", supported_versions=("1.0.0", "1.1.0"))
    assert hash(info) == hash(PluginInfo(cni_version="1.1.0", supported_versions=["1.0.0", "1.1.0"]))
    assert info != PluginInfo(cni_version="1.1.0", supported_versions=("1.1.0",))
    with pytest.raises(AttributeError):
        info.cni_version = "0.1.0"  # type: ignore[misc]
    assert info.replace(cni_version="1.0.0").cni_version == "1.0.0"
    with pytest.raises(TypeError):
        info.replace(bogus=1)
