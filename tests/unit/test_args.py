"""Unit tests for libcni_py.core.args: CNI_ARGS, capability arguments, cnitool IDs."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from libcni_py.core import args
from libcni_py.errors import CODE_INVALID_ENVIRONMENT, ArgsError

# --------------------------------------------------------------------------- CNI_ARGS


@pytest.mark.parametrize(
    ("text", "pairs"),
    [
        ("", ()),
        ("A=1", (("A", "1"),)),
        (
            "K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;IgnoreUnknown=1",
            (
                ("K8S_POD_NAMESPACE", "default"),
                ("K8S_POD_NAME", "web-0"),
                ("IgnoreUnknown", "1"),
            ),
        ),
        ("A=1;A=2", (("A", "1"), ("A", "2"))),
        ("a b=c d", (("a b", "c d"),)),
    ],
)
def test_parse_cni_args(text: str, pairs: tuple[tuple[str, str], ...]) -> None:
    assert args.parse_cni_args(text) == pairs


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("A", "CNI_ARGS: pair 1 'A' has no '='"),
        ("A=1;B", "CNI_ARGS: pair 2 'B' has no '='"),
        ("A=1;B=2=3", "CNI_ARGS: pair 2 'B=2=3' has more than one '='"),
        ("A=1;;B=2", "CNI_ARGS: pair 2 '' has no '='"),
        ("A=1;", "CNI_ARGS: pair 2 '' has no '='"),
        ("=1", "CNI_ARGS: pair 1 '=1' has an empty key"),
        ("A=", "CNI_ARGS: pair 1 'A=' has an empty value"),
        ("A\nB=1", "CNI_ARGS: pair 1 has a control character in its key"),
        ("A=1;\x00=2", "CNI_ARGS: pair 2 has a control character in its key"),
    ],
)
def test_parse_cni_args_errors(text: str, message: str) -> None:
    with pytest.raises(ArgsError) as info:
        args.parse_cni_args(text)
    assert str(info.value) == message
    assert info.value.code == CODE_INVALID_ENVIRONMENT


def test_parse_cni_args_source_in_message() -> None:
    with pytest.raises(ArgsError, match=r"^--args: pair 1 'x' has no '='$") as info:
        args.parse_cni_args("x", source="--args")
    assert "KEY=VALUE" in info.value.hint


_token = st.text(alphabet=st.characters(blacklist_characters="=;", blacklist_categories=("Cs", "Cc")), min_size=1)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_token, _token), max_size=5))
def test_cni_args_round_trip(pairs: list[tuple[str, str]]) -> None:
    text = args.format_cni_args(pairs)
    assert args.parse_cni_args(text) == tuple(pairs)


def test_format_cni_args() -> None:
    assert args.format_cni_args([("A", "1"), ("B", "2")]) == "A=1;B=2"
    assert args.format_cni_args([]) == ""


# --------------------------------------------------------------------------- capability args

SECRET = "hunter2-Sup3rS3cret-token"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", {}),
        ("  \n", {}),
        (
            '{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]}',
            {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]},
        ),
        ("{}", {}),
    ],
)
def test_parse_capability_args(text: str, expected: dict[str, object]) -> None:
    assert args.parse_capability_args(text) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (f'"{SECRET}"', "got a JSON string"),
        (f'["{SECRET}"]', "got a JSON list"),
        ("42", "got a JSON number"),
        ("true", "got a JSON boolean"),
        ("null", "got a JSON null"),
        (f'{{"token":"{SECRET}"', "not valid JSON"),
        (f'{{"token":"{SECRET}",}}', "not valid JSON"),
        (f'{{"token":{SECRET}}}', "not valid JSON"),
        (f"{{'token':'{SECRET}'}}", "not valid JSON"),
        (f'{{"token":"{SECRET}\\q"}}', "not valid JSON"),
        (f'{{"token":"{SECRET}\x01"}}', "not valid JSON"),
        (f'{{"token":NaN,"x":"{SECRET}"}}', "NaN is not valid JSON"),
        (f'{{"a":1}} {SECRET}', "not valid JSON"),
    ],
)
def test_capability_args_errors_never_quote_the_input(text: str, fragment: str) -> None:
    with pytest.raises(ArgsError) as info:
        args.parse_capability_args(text, source="CAP_ARGS")
    err = info.value
    assert fragment in str(err)
    assert str(err).startswith("CAP_ARGS: ")
    for shown in (str(err), err.one_line(), err.hint, err.details, repr(err.args)):
        assert "Sup3rS3cret" not in shown
        assert "hunter2" not in shown
    assert err.__cause__ is None
    assert err.__suppress_context__ or err.__context__ is None


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=30), st.sampled_from(['{"t":"%s"', '["%s"]', '"%s"', "{%s}", '{"t":"%s"}x', "%s"]))
def test_capability_args_errors_never_quote_generated_secrets(noise: str, template: str) -> None:
    text = template.replace("%s", noise + SECRET)
    try:
        value = args.parse_capability_args(text)
    except ArgsError as err:
        assert "Sup3rS3cret" not in str(err)
        assert "Sup3rS3cret" not in err.hint
    else:
        assert isinstance(value, dict)


# --------------------------------------------------------------------------- cnitool container IDs

# computed with Go 1.19: abs, _ := filepath.Abs(p); s := sha512.Sum512([]byte(abs)); fmt.Sprintf("cnitool-%x", s[:10])
GO_CNITOOL_IDS = [
    ("/var/run/netns/../netns/./fx1", "cnitool-31ce19681ea4b043eb6b"),
    ("/run/netns/ns1", "cnitool-ed499399ac115ce80a78"),
    ("//run//netns/ns1/.", "cnitool-ed499399ac115ce80a78"),
    ("/var/run/netns/fx2", "cnitool-112ddea72a314a851315"),
]


@pytest.mark.parametrize(("netns", "expected"), GO_CNITOOL_IDS)
def test_cnitool_container_id_equals_go(netns: str, expected: str) -> None:
    assert args.cnitool_container_id(netns) == expected


def test_cnitool_container_id_of_relative_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    absolute = os.path.join(str(tmp_path), "ns")
    expected = "cnitool-" + hashlib.sha512(absolute.encode()).hexdigest()[:20]
    assert args.cnitool_container_id("ns") == expected
    assert args.cnitool_container_id("./sub/../ns") == expected
    assert len(expected) == len("cnitool-") + 20


def test_well_known_capabilities() -> None:
    assert "portMappings" in args.WELL_KNOWN_CAPABILITIES
    assert "io.kubernetes.cri.pod-annotations" in args.WELL_KNOWN_CAPABILITIES
    assert len(set(args.WELL_KNOWN_CAPABILITIES)) == 11
