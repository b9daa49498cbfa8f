"""``--trace`` / ``--trace-json`` and the library's tracer hook, with real
test-plugin processes: every step in order, and which program wrote each file
(a delegating plugin whose IPAM writes nothing vs one whose IPAM writes under
its dataDir).  Also the W3C trace context handed to plugins."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import PLUGINS, REPO, live_netns, read_calls, run_cnitool, write_conf

from libcni_py import CNI, AsyncCNI, RuntimeConf, load_network
from libcni_py.core.args import cnitool_container_id
from libcni_py.tools.trace.tracer import SCHEMA, Tracer

ROOT = os.geteuid() == 0


@pytest.fixture
def env(conf_dir: Path, cache_dir: Path, record_file: Path, tmp_path: Path) -> dict[str, str]:
    write_conf(
        conf_dir,
        "10-quiet.conflist",
        {
            "cniVersion": "1.0.0",
            "name": "quiet",
            "plugins": [
                {"type": "delegator", "ipam": {"type": "fakeipam"}},
                {"type": "recorder", "interfaceName": "r1"},
            ],
        },
    )
    write_conf(
        conf_dir,
        "20-disk.conflist",
        {
            "cniVersion": "1.0.0",
            "name": "disk",
            "plugins": [
                {"type": "delegator", "ipam": {"type": "diskipam", "dataDir": str(tmp_path / "ipam")}},
                {"type": "recorder", "interfaceName": "r1"},
            ],
        },
    )
    return {
        "NETCONFPATH": str(conf_dir),
        "CNI_PATH": str(PLUGINS),
        "CNI_CACHE_DIR": str(cache_dir),
        "RECORD_FILE": str(record_file),
    }


def changes(event: dict[str, object]) -> set[tuple[str, str, str]]:
    return {(c["change"], c["kind"], c["where"]) for c in event["changes"]}  # type: ignore[attr-defined, index]


def traced(env: dict[str, str], tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict]:
    out = tmp_path / "trace.json"
    proc = run_cnitool("--trace", "--trace-json", str(out), *args, env=env)
    return proc, json.loads(out.read_text())


def test_trace_attributes_every_file_to_its_writer(env: dict[str, str], tmp_path: Path, cache_dir: Path) -> None:
    netns = tmp_path / "ns"
    netns.write_text("")
    cid = cnitool_container_id(str(netns))
    record = str(cache_dir / "results" / f"disk-{cid}-eth0")
    lock = str(cache_dir / "libcni_py" / "locks" / f"disk-{cid}-eth0")
    ipam = tmp_path / "ipam"

    proc, doc = traced(env, tmp_path, "add", "disk", str(netns))
    assert proc.returncode == 0, proc.stderr
    assert doc["schema"] == SCHEMA and doc["error"] is None and doc["command"][-3:] == ["add", "disk", str(netns)]
    events = doc["events"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    # ADD first checks the namespace exists (an empty file: stale, but there)
    assert (events[0]["effect"], events[0]["state"], changes(events[0])) == ("probe-netns", "stale", set())
    events = events[1:]
    assert [(e["actor"], e["effect"]) for e in events] == [
        ("libcni_py", "resolve"),
        ("libcni_py", "lock"),
        ("libcni_py", "read-record"),
        ("libcni_py", "write-record"),
        ("plugin", "exec"),
        ("libcni_py", "write-record"),
        ("plugin", "exec"),
        ("libcni_py", "write-record"),
        ("libcni_py", "unlock"),
    ]
    # the runtime's own files, attributed to libcni_py (the GC lock: taken shared with the attachment's)
    assert changes(events[1]) == {
        ("created", "dir", str(cache_dir / "libcni_py")),
        ("created", "dir", str(cache_dir / "libcni_py" / "gc-lock")),
        ("created", "file", str(cache_dir / "libcni_py" / "gc-lock" / "lock")),
        ("created", "dir", str(cache_dir / "libcni_py" / "locks")),
        ("created", "file", lock),
    }
    assert changes(events[2]) == set()  # ADD looks for a record of the attachment: there is none
    assert changes(events[3]) == {
        ("created", "dir", str(cache_dir / "libcni_py" / "tmp")),
        ("created", "dir", str(cache_dir / "results")),
        ("created", "file", record),
    }
    assert events[3]["progress"] == {"state": "adding", "done": 0, "plugins": 2}
    assert changes(events[5]) == changes(events[7]) == {("changed", "file", record)}
    assert {c["by"] for e in (events[1], events[3], events[5], events[7]) for c in e["changes"]} == {"libcni_py"}
    # the delegating plugin's call: what its IPAM plugin wrote shows under it
    delegator = events[4]
    assert delegator["plugin"]["type"] == "delegator" and delegator["plugin"]["delegates"] == ["diskipam"]
    assert delegator["plugin"]["dataDirs"] == [str(ipam)]
    assert changes(delegator) == {
        ("created", "dir", str(ipam)),
        ("created", "dir", str(ipam / "disk")),
        ("created", "file", str(ipam / "disk" / "10.77.0.2")),
        ("created", "file", str(ipam / "disk" / "last_reserved_ip.0")),
    }
    reservation = next(c for c in delegator["changes"] if c["where"].endswith("10.77.0.2"))
    # as root the trace sees the process that wrote it (tests/root/test_trace_who.py has the details);
    # without root, the plugin during whose call it appeared
    assert reservation["content"] == f"{cid}\neth0" and reservation["by"] == ("diskipam" if ROOT else "delegator")
    assert (
        delegator["exitStatus"] == 0
        and delegator["command"] == "ADD"
        and delegator["cniEnv"]["CNI_NETNS"] == str(netns)
    )
    assert json.loads(delegator["stdout"])["ips"][0]["address"] == "10.77.0.2/24"
    assert json.loads(delegator["stdin"])["ipam"]["type"] == "diskipam"
    assert changes(events[6]) == set()  # the recorder writes nothing there
    # the readable timeline says the same
    assert "trace #5 " in proc.stderr and "plugin delegator ADD (plugins[0] of network disk)" in proc.stderr
    assert f"changed during this step (by delegator or a {'program' if ROOT else 'plugin'} it ran):" in proc.stderr
    written = f"  (written by diskipam, pid {reservation['writer']['pid']}, run by delegator)" if ROOT else ""
    assert f'+ file           {ipam / "disk" / "10.77.0.2"} (33 bytes, 0644){written}  "{cid}\\neth0"' in proc.stderr
    assert "(its config delegates to: diskipam)" in proc.stderr

    # DEL: the reservation removed during the delegator's call, the record and lock by libcni_py
    proc, doc = traced(env, tmp_path, "del", "disk", str(netns))
    assert proc.returncode == 0, proc.stderr
    by_effect = {(e["effect"], e.get("plugin", {}).get("type")): e for e in doc["events"]}
    assert changes(by_effect[("exec", "delegator")]) == {("removed", "file", str(ipam / "disk" / "10.77.0.2"))}
    assert changes(by_effect[("remove-record", None)]) == {("removed", "file", record)}
    assert changes(by_effect[("unlock", None)]) == {("removed", "file", lock)}


def test_trace_of_a_delegator_whose_ipam_writes_nothing(env: dict[str, str], tmp_path: Path) -> None:
    netns = tmp_path / "ns"
    netns.write_text("")
    proc, doc = traced(env, tmp_path, "add", "quiet", str(netns))
    assert proc.returncode == 0, proc.stderr
    execs = [e for e in doc["events"] if e["effect"] == "exec"]
    assert [e["plugin"]["delegates"] for e in execs] == [["fakeipam"], []]
    assert [e["changes"] for e in execs] == [[], []]
    assert proc.stderr.count("changed during this step: nothing seen") == 2


def test_trace_json_on_failure(env: dict[str, str], conf_dir: Path, tmp_path: Path) -> None:
    write_conf(
        conf_dir,
        "30-fail.conflist",
        {"cniVersion": "1.0.0", "name": "failnet", "plugins": [{"type": "failer", "code": 7, "msg": "bad subnet"}]},
    )
    netns = tmp_path / "ns"
    netns.write_text("")
    proc, doc = traced(env, tmp_path, "add", "failnet", str(netns))
    assert proc.returncode == 1
    assert doc["error"].startswith('network "failnet": plugin type="failer" failed (add): bad subnet')
    failed = next(e for e in doc["events"] if e["effect"] == "exec")
    assert failed["exitStatus"] == 1 and json.loads(failed["stdout"])["code"] == 7
    assert doc["events"][-1]["effect"] == "write-record" and doc["events"][-1]["progress"]["state"] == "failed"
    bad = run_cnitool("--trace-json", str(tmp_path / "no" / "such" / "dir.json"), "add", "quiet", str(netns), env=env)
    assert bad.returncode == 2 and "--trace-json: cannot write" in bad.stderr


def test_tracing_off_pays_nothing(env: dict[str, str], tmp_path: Path) -> None:
    netns = tmp_path / "ns"
    netns.write_text("")
    code = f"""
import contextlib, os, sys
os.environ.update({env!r})
from libcni_py.cli.main import main
with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
    rc = main(["add", "quiet", {str(netns)!r}])
print(rc, [m for m in ("pyroute2", "libcni_py.tools.trace.tracer", "libcni_py.edges.probes", "subprocess") if m in sys.modules])
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert proc.stdout.strip() == "0 []"


def test_library_hook_sync_and_trio(env: dict[str, str], conf_dir: Path, cache_dir: Path, tmp_path: Path) -> None:
    import trio

    net = load_network(str(conf_dir), "disk")
    seen: list[str] = []
    tracer = Tracer(cache_dir=str(cache_dir), on_event=lambda e: seen.append(e.effect))
    cni = CNI(plugin_path=[str(PLUGINS)], cache_dir=str(cache_dir), tracer=tracer)
    rt = RuntimeConf(container_id="lib1", netns=str(live_netns(tmp_path / "x")))
    cni.add(net, rt)
    assert (
        seen
        == [e.effect for e in tracer.events]
        == [
            "probe-netns",
            "resolve",
            "lock",
            "read-record",
            "write-record",
            "exec",
            "write-record",
            "exec",
            "write-record",
            "unlock",
        ]
    )
    assert {c.where for c in tracer.events[5].changes} >= {str(tmp_path / "ipam" / "disk" / "10.77.0.2")}

    async_tracer = Tracer(cache_dir=str(cache_dir), probe=False)
    acni = AsyncCNI(plugin_path=[str(PLUGINS)], cache_dir=str(cache_dir), tracer=async_tracer)
    trio.run(acni.delete, net, rt)
    # DEL reads the record before resolving: it may run the recorded configuration;
    # it checks the namespace is alive (a gone or stale one is not passed to plugins)
    assert [e.effect for e in async_tracer.events] == [
        "lock",
        "read-record",
        "probe-netns",
        "resolve",
        "exec",
        "exec",
        "remove-record",
        "unlock",
    ]
    assert all(not e.changes for e in async_tracer.events)  # probe=False: steps only
    assert async_tracer.events[2].data["state"] == "alive"
    assert async_tracer.to_json()["events"][4]["plugin"]["type"] == "recorder"


TP = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_trace_context_reaches_plugins(env: dict[str, str], tmp_path: Path, record_file: Path) -> None:
    netns = tmp_path / "ns"
    netns.write_text("")
    proc = run_cnitool("add", "quiet", str(netns), "--traceparent", TP[:-2] + "03", "--tracestate", "a=1, b=2", env=env)
    assert proc.returncode == 0, proc.stderr
    call = read_calls(record_file)[-1]["env"]
    assert call["TRACEPARENT"] == TP and call["TRACESTATE"] == "a=1,b=2"  # type: ignore[index]
    # from the environment, when no flag is given; a stale TRACESTATE does not ride along with a flag
    proc = run_cnitool("del", "quiet", str(netns), env=env | {"TRACEPARENT": TP})
    assert proc.returncode == 0, proc.stderr
    recorded = [c for c in read_calls(record_file) if "env" in c]  # fakeipam records no env
    assert recorded[-1]["env"]["TRACEPARENT"] == TP  # type: ignore[index]
    proc = run_cnitool("add", "quiet", str(netns), "--traceparent", TP, env=env | {"TRACESTATE": "old=1"})
    recorded = [c for c in read_calls(record_file) if "env" in c]
    assert proc.returncode == 0 and "TRACESTATE" not in recorded[-1]["env"]  # type: ignore[operator]
    before = len(read_calls(record_file))
    bad = run_cnitool("add", "quiet", str(netns), env=env | {"TRACEPARENT": TP.upper()})
    assert bad.returncode == 3 and len(bad.stderr.strip().splitlines()) == 1
    assert "TRACEPARENT: " in bad.stderr and "trace id must be 32 lower-case hex digits" in bad.stderr
    lone = run_cnitool("add", "quiet", str(netns), "--tracestate", "a=1", env=env)
    assert lone.returncode == 2 and "--tracestate needs --traceparent" in lone.stderr
    assert len(read_calls(record_file)) == before  # refused before any plugin ran


def test_baggage_reaches_plugins_with_the_trace_context(env: dict[str, str], tmp_path: Path, record_file: Path) -> None:
    """BAGGAGE goes with TRACEPARENT, as Go libcni's pkg/invoke (main branch,
    PR #1173) passes it: from --baggage, else from the environment."""
    netns = tmp_path / "ns"
    netns.write_text("")
    given = "userId=alice , serverNode=DF%2028;weight = 1"
    proc = run_cnitool("add", "quiet", str(netns), "--traceparent", TP, "--baggage", given, env=env)
    assert proc.returncode == 0, proc.stderr
    assert read_calls(record_file)[-1]["env"]["BAGGAGE"] == "userId=alice,serverNode=DF%2028;weight=1"  # type: ignore[index]
    proc = run_cnitool("del", "quiet", str(netns), env=env | {"TRACEPARENT": TP, "BAGGAGE": "k=v"})
    assert proc.returncode == 0, proc.stderr
    recorded = [c for c in read_calls(record_file) if "env" in c]
    assert recorded[-1]["env"]["BAGGAGE"] == "k=v"  # type: ignore[index]
    before = len(read_calls(record_file))
    bad = run_cnitool("add", "quiet", str(netns), "--traceparent", TP, "--baggage", "no value", env=env)
    assert bad.returncode == 3 and len(bad.stderr.strip().splitlines()) == 1
    assert "--traceparent: baggage member 'no value' is not key=value in W3C form" in bad.stderr
    lone = run_cnitool("add", "quiet", str(netns), "--baggage", "k=v", env=env)
    assert lone.returncode == 2 and "--baggage needs --traceparent" in lone.stderr
    assert len(read_calls(record_file)) == before  # refused before any plugin ran
