"""Unit tests for libcni_py.cli._argv, the small command-line parser."""

from __future__ import annotations

import pytest

from libcni_py.cli._argv import Command, Opt, UsageError, format_opt, parse

OPTIONS = [
    Opt("-i", "--ifname", dest="ifname", metavar="NAME", help="interface name", env="CNI_IFNAME"),
    Opt("--args", dest="args", metavar="K=V", help="CNI_ARGS pair", repeat=True),
    Opt("--debug", dest="debug", help="show tracebacks"),
    Opt("-h", "--help", dest="help", help="show help"),
]


def test_positionals_and_options_anywhere() -> None:
    values, positionals = parse(["add", "--ifname", "eth1", "mynet", "--debug", "/run/netns/x"], OPTIONS)
    assert values == {"ifname": "eth1", "debug": True}
    assert positionals == ["add", "mynet", "/run/netns/x"]


def test_equals_form_and_short_alias() -> None:
    values, _ = parse(["--ifname=net1"], OPTIONS)
    assert values == {"ifname": "net1"}
    values, _ = parse(["-i", "net2"], OPTIONS)
    assert values == {"ifname": "net2"}
    values, _ = parse(["-i=net3"], OPTIONS)
    assert values == {"ifname": "net3"}


def test_equals_keeps_everything_after_the_first_equals() -> None:
    values, _ = parse(["--args=A=1", "--args", "B=2=x", "--ifname="], OPTIONS)
    assert values == {"args": ["A=1", "B=2=x"], "ifname": ""}


def test_later_value_wins_for_single_options() -> None:
    values, _ = parse(["--ifname", "a", "--ifname=b"], OPTIONS)
    assert values == {"ifname": "b"}


def test_repeatable_collects_in_order() -> None:
    values, positionals = parse(["--args", "A=1", "x", "--args=B=2"], OPTIONS)
    assert values == {"args": ["A=1", "B=2"]}
    assert positionals == ["x"]


def test_value_may_start_with_a_dash() -> None:
    values, positionals = parse(["--ifname", "-weird", "--args", "--debug"], OPTIONS)
    assert values == {"ifname": "-weird", "args": ["--debug"]}
    assert positionals == []


def test_double_dash_takes_the_rest() -> None:
    values, positionals = parse(["run", "--debug", "--", "--ifname", "x", "--"], OPTIONS)
    assert values == {"debug": True, "--": ["--ifname", "x", "--"]}
    assert positionals == ["run"]
    values, _ = parse(["--"], OPTIONS)
    assert values == {"--": []}


def test_single_dash_is_positional() -> None:
    values, positionals = parse(["-", "a"], OPTIONS)
    assert values == {}
    assert positionals == ["-", "a"]


def test_absent_options_are_missing() -> None:
    values, positionals = parse([], OPTIONS)
    assert values == {}
    assert positionals == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--nope"], "unknown option --nope"),
        (["--nope=1"], "unknown option --nope"),
        (["-x"], "unknown option -x"),
        (["--debug=yes"], "option --debug takes no value"),
        (["--ifname"], "option --ifname needs a value (NAME)"),
        (["a", "-i"], "option -i needs a value (NAME)"),
        (["--args"], "option --args needs a value (K=V)"),
        (["--IFNAME", "x"], "unknown option --IFNAME"),
    ],
)
def test_usage_errors(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError) as info:
        parse(argv, OPTIONS)
    assert str(info.value) == message


def test_argv_not_modified() -> None:
    argv = ["--args", "A=1", "x"]
    parse(argv, OPTIONS)
    assert argv == ["--args", "A=1", "x"]


# --------------------------------------------------------------------------- help text


def test_command_usage() -> None:
    cmd = Command("add", ("NETWORK", "NETNS"), "add a network", OPTIONS)
    assert cmd.usage() == "usage: cnitool add [options] NETWORK NETNS"
    assert cmd.usage("tool") == "usage: tool add [options] NETWORK NETNS"
    bare = Command("version", (), "print the version")
    assert bare.usage() == "usage: cnitool version"


def test_command_help() -> None:
    cmd = Command("add", ("NETWORK",), "add a network", OPTIONS[:1], description="More words.")
    assert cmd.help() == (
        "usage: cnitool add [options] NETWORK\n\nadd a network\n\nMore words.\n\noptions:\n"
        + format_opt(OPTIONS[0])
        + "\n"
    )
    assert Command("x", (), "summary").help() == "usage: cnitool x\n\nsummary\n"


def test_format_opt() -> None:
    assert format_opt(OPTIONS[0]) == f"  {'-i, --ifname NAME':<30} interface name [env CNI_IFNAME]"
    assert format_opt(OPTIONS[1]) == f"  {'--args K=V':<30} CNI_ARGS pair (repeatable)"
    assert format_opt(OPTIONS[2]) == f"  {'--debug':<30} show tracebacks"
