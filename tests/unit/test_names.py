"""Unit tests for libcni_py.core.names (Go's pkg/utils validation rules)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from libcni_py.core import names
from libcni_py.errors import (
    CODE_INVALID_ENVIRONMENT,
    CODE_INVALID_NETWORK_CONFIG,
    CODE_UNKNOWN_CONTAINER,
    ArgsError,
    InvalidNameError,
)

GO_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$")  # pkg/utils cniValidNameChars, Go's $ = end of text


@pytest.mark.parametrize("good", ["a", "0", "abc", "A-1_2.3", "cnitool-31ce19681ea4b043eb6b", "x" * 300, "9..--__"])
def test_valid_names(good: str) -> None:
    assert names.is_valid_name(good)
    names.check_container_id(good)
    names.check_network_name(good)


@pytest.mark.parametrize(
    "bad",
    ["-abc", ".abc", "_a", "a b", "a/b", "../x", "é", "a\n", "\na", "a:b", "a\x00", "\uff41", "a+b", "a@b", " a"],
)
def test_invalid_names(bad: str) -> None:
    assert not names.is_valid_name(bad)
    with pytest.raises(InvalidNameError) as info:
        names.check_container_id(bad)
    assert info.value.code == CODE_INVALID_ENVIRONMENT
    assert info.value.field == "container ID"
    assert info.value.value == bad
    assert str(info.value) == f"container ID {bad!r}: invalid characters"
    with pytest.raises(InvalidNameError) as info:
        names.check_network_name(bad)
    assert info.value.code == CODE_INVALID_NETWORK_CONFIG
    assert str(info.value) == f"network name {bad!r}: invalid characters"


def test_missing_names_codes_as_go() -> None:
    with pytest.raises(InvalidNameError) as info:
        names.check_container_id("")
    assert info.value.code == CODE_UNKNOWN_CONTAINER  # Go: ErrUnknownContainer "missing containerID"
    assert str(info.value) == "container ID '': missing"
    with pytest.raises(InvalidNameError) as info:
        names.check_network_name("")
    assert info.value.code == CODE_INVALID_NETWORK_CONFIG
    assert str(info.value) == "network name '': missing"


def test_where_prefix_and_hint() -> None:
    with pytest.raises(InvalidNameError) as info:
        names.check_container_id("a/b", where="cache file x")
    assert str(info.value) == "cache file x: container ID 'a/b': invalid characters"
    assert "starting with a letter or digit" in info.value.hint


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("aZ09_.-/ :\n\té"), max_size=8) | st.text(max_size=6))
def test_is_valid_name_matches_go_regexp(text: str) -> None:
    assert names.is_valid_name(text) == bool(GO_NAME.fullmatch(text) and "\n" not in text)


# --------------------------------------------------------------------------- interface names


@pytest.mark.parametrize(
    "good", ["eth0", "a", "a" * 15, "net1", "eth0.100", "veth-x_y", "ä" * 7, "é" * 7 + "x", "-", "..."]
)
def test_valid_ifnames(good: str) -> None:
    names.check_ifname(good)


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        ("", "is empty"),
        ("a" * 16, "is too long (16 bytes, at most 15)"),
        ("ä" * 8, "is too long (16 bytes, at most 15)"),
        ("\U0001f600" * 4, "is too long (16 bytes, at most 15)"),
        (".", "must not be . or .."),
        ("..", "must not be . or .."),
        ("a/b", "contains '/', ':' or white space"),
        ("eth0:1", "contains '/', ':' or white space"),
        ("a b", "contains '/', ':' or white space"),
        ("a\tb", "contains '/', ':' or white space"),
        ("a\nb", "contains '/', ':' or white space"),
        ("a\x0bb", "contains '/', ':' or white space"),
        ("a\u00a0b", "contains '/', ':' or white space"),  # Go: unicode.IsSpace(U+00A0) is true
        ("a\u0085b", "contains '/', ':' or white space"),
        ("a\u2028b", "contains '/', ':' or white space"),
        ("a\u3000b", "contains '/', ':' or white space"),
    ],
)
def test_invalid_ifnames(bad: str, problem: str) -> None:
    with pytest.raises(InvalidNameError) as info:
        names.check_ifname(bad, where="w")
    assert info.value.code == CODE_INVALID_ENVIRONMENT
    assert info.value.field == "interface name"
    assert str(info.value) == f"w: interface name {bad!r}: {problem}"
    assert "15 bytes" in info.value.hint


@pytest.mark.parametrize("ifname", ["a\udcff", "e\ud800"])
def test_ifname_that_is_not_utf8_is_refused(ifname: str) -> None:
    # os.fsdecode of undecodable bytes gives surrogate escapes; the record (JSON,
    # as Go writes it) would hold U+FFFD instead, so a later DEL would get another name
    with pytest.raises(InvalidNameError, match="not valid UTF-8"):
        names.check_ifname(ifname)


def test_printable_escapes_bytes_that_are_not_utf8() -> None:
    assert names.printable("/run/ns\udcff") == "/run/ns\\xff"
    assert names.printable("x\ud800") == "x\\ud800"
    assert names.printable("blé") == "blé"


def test_check_utf8_names_the_byte_offset() -> None:
    names.check_utf8("netns", "/var/run/netns/blé")
    with pytest.raises(ArgsError, match=r"netns '/run/ns\\xff' is not valid UTF-8 \(at byte 7\)"):
        names.check_utf8("netns", "/run/ns\udcff")


def test_ifname_control_characters_refused() -> None:
    # Go's ValidateInterfaceName accepts "a\x1cb" (unicode.IsSpace is false for
    # U+001C); libcni_py refuses every control character in a name on purpose
    with pytest.raises(InvalidNameError, match="control character"):
        names.check_ifname("a\x1cb")
