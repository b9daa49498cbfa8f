"""W3C trace context: what the CLI accepts and what plugins then receive."""

from __future__ import annotations

from libcni_py.request import TraceContext, plugin_env

TP = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


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
