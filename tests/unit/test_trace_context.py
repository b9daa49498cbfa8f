"""W3C trace context: what the CLI accepts and what plugins then receive."""

from __future__ import annotations

import pytest

from libcni_py.core.plugin_input import TraceContext, parse_baggage, parse_trace_context, plugin_env
from libcni_py.errors import ArgsError

TP = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_valid_traceparent_passes_unchanged() -> None:
    assert parse_trace_context(TP) == TraceContext(traceparent=TP, tracestate="")


@pytest.mark.parametrize(
    ("given", "sent"),
    [
        # only the sampled flag survives Go's W3C propagator, and it writes version 00
        ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03", TP),
        ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00", TP[:-2] + "00"),
        ("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-future", TP),
        ("  " + TP + "\n", TP),
    ],
)
def test_traceparent_is_reencoded_as_go_does(given: str, sent: str) -> None:
    assert parse_trace_context(given).traceparent == sent


@pytest.mark.parametrize(
    ("bad", "needle"),
    [
        ("", "is not a W3C traceparent"),
        ("hello", "is not a W3C traceparent"),
        ("00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01", "trace id must be 32 lower-case hex digits"),
        ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333-01", "parent id must be 16 lower-case hex digits"),
        ("ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "version ff is invalid"),
        ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-x", "version 00 has exactly four fields"),
        ("00-00000000000000000000000000000000-b7ad6b7169203331-01", "all-zero"),
        ("00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01", "all-zero"),
        ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1", "flags must be 2"),
    ],
)
def test_bad_traceparent_is_a_clear_error(bad: str, needle: str) -> None:
    with pytest.raises(ArgsError) as info:
        parse_trace_context(bad, source="--traceparent")
    text = info.value.one_line()
    assert text.startswith("--traceparent: ") and needle in text
    assert "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" in text  # the hint shows the form


def test_tracestate_is_normalised_and_checked() -> None:
    ctx = parse_trace_context(TP, " rojo=00f067aa0ba902b7 ,, congo=t61rcWkgMzE,tenant@sys=x y")
    assert ctx.tracestate == "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE,tenant@sys=x y"
    for bad in ("novalue", "Upper=1", "k=v,k=w", "k=a,b=", "k=a=b"):
        with pytest.raises(ArgsError):
            parse_trace_context(TP, bad)
    with pytest.raises(ArgsError, match="at most 32"):
        parse_trace_context(TP, ",".join(f"k{i}=v" for i in range(33)))


def test_plugin_env_never_pairs_a_stale_tracestate_with_a_new_traceparent() -> None:
    base = {"TRACEPARENT": "00-" + "1" * 32 + "-" + "2" * 16 + "-01", "TRACESTATE": "old=1", "HOME": "/root"}
    common = {"container_id": "c", "netns": "/n", "ifname": "eth0", "cni_args": (), "plugin_path": ["/p"], "base": base}
    env = plugin_env("ADD", trace=TraceContext(traceparent=TP), **common)  # type: ignore[arg-type]
    assert env["TRACEPARENT"] == TP and "TRACESTATE" not in env and env["HOME"] == "/root"
    env = plugin_env("ADD", trace=TraceContext(traceparent=TP, tracestate="new=2"), **common)  # type: ignore[arg-type]
    assert env["TRACESTATE"] == "new=2"
    # without a trace context the runtime's environment passes through, as Go passes it
    env = plugin_env("ADD", **common)  # type: ignore[arg-type]
    assert env["TRACEPARENT"] == base["TRACEPARENT"] and env["TRACESTATE"] == "old=1"


def test_baggage_is_normalised_and_checked() -> None:
    ctx = parse_trace_context(TP, baggage=" userId = alice ,, serverNode=DF%2028 ; weight=1;flag ")
    assert ctx.baggage == "userId=alice,serverNode=DF%2028;weight=1;flag"
    assert parse_trace_context(TP).baggage == ""
    for bad in ("novalue", "=v", "k=a b", 'k="q"', "k=%zz", "k=v;=p", "bad key=v"):
        with pytest.raises(ArgsError, match="baggage"):
            parse_baggage(bad, source="--baggage")
    with pytest.raises(ArgsError, match="at most 64"):
        parse_baggage(",".join(f"k{i}=v" for i in range(65)))
    with pytest.raises(ArgsError, match="8202 bytes, at most 8192 allowed"):
        parse_baggage("k=" + "v" * 8200)


def test_plugin_env_passes_baggage_only_with_a_trace_context() -> None:
    base = {"BAGGAGE": "inherited=1", "HOME": "/root"}
    common = {"container_id": "c", "netns": "/n", "ifname": "eth0", "cni_args": (), "plugin_path": ["/p"], "base": base}
    env = plugin_env("ADD", trace=TraceContext(traceparent=TP, baggage="k=v"), **common)  # type: ignore[arg-type]
    assert env["BAGGAGE"] == "k=v" and env["TRACEPARENT"] == TP
    # without baggage of its own, the runtime's environment passes through, as Go passes it
    env = plugin_env("ADD", trace=TraceContext(traceparent=TP), **common)  # type: ignore[arg-type]
    assert env["BAGGAGE"] == "inherited=1"
