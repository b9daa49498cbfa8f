"""Go libcni and libcni_py side by side on one host.

The Go side is ``tests/gopeer`` -- a small cnitool on Go libcni -- built by
the ``any_gopeer`` fixture (``tests/conftest.py``) on both releases: Debian's
golang-github-appc-cni-dev (1.1.2) and the newest release, 1.3.0
(``../shared/thirdparty/cni``).
For ADD, CHECK and DEL, across spec versions, conflists and single confs,
capability arguments and CNI_ARGS, both must hand the plugins the same stdin
and environment and leave the same cache file.  Each must delete what the
other added.

libcni_py follows 1.3.0: against it, everything is byte for byte the same
(but for ``add`` ending its output with a newline).  Against 1.1.2 the
differences are 1.3.0's changes, asserted here (``like_112``) and explained
in the README:
* our cache records carry ``netns`` (as libcni >= 1.2 writes them) -- GC
  needs it to DEL a stale attachment;
* 1.x results (``add``'s output, prevResults, cached results) keep spec
  1.1.0's interface ``mtu``/``socketPath``/``pciID`` and route
  ``mtu``/``advmss``/``priority``/``table``/``scope``, which 1.1.2 drops;
* 1.x results are written through a map (sorted keys) without an empty
  ``dns``, where 1.1.2 wrote ``"dns": {}`` (and struct order).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from support import PLUGINS, GoPeer, live_netns, read_calls, run_cnitool, write_conf

from libcni_py.core.args import cnitool_container_id

CASES = {
    "list-0.3.1": (
        "10-x.conflist",
        {
            "cniVersion": "0.3.1",
            "name": "cmpnet",
            "plugins": [
                {"type": "recorder", "address": "10.1.0.5/24", "gateway": "10.1.0.1"},
                {
                    "type": "recorder",
                    "interfaceName": "rec1",
                    "address": "fd00::5/64",
                    "capabilities": {"portMappings": True},
                },
            ],
        },
    ),
    "list-0.4.0": (
        "10-x.conflist",
        {
            "cniVersion": "0.4.0",
            "name": "cmpnet",
            "plugins": [
                {
                    "type": "recorder",
                    "address": "10.1.0.5/24",
                    "mtu": 1450,
                    "html<&>": "a\u2028b",
                    "nested": {"z": 1, "a": [1.5, 2e21]},
                },
                {
                    "type": "recorder",
                    "interfaceName": "rec1",
                    "capabilities": {"portMappings": True, "bandwidth": False},
                },
            ],
        },
    ),
    "list-1.0.0": (
        "10-x.conflist",
        {
            "cniVersion": "1.0.0",
            "name": "cmpnet",
            "plugins": [
                {"type": "recorder", "address": "10.1.0.5/24", "gateway": "10.1.0.1"},
                {
                    "type": "delegator",
                    "ipam": {"type": "fakeipam", "addresses": [{"address": "fd00::7/64"}], "routes": [{"dst": "::/0"}]},
                },
                {"type": "recorder", "interfaceName": "rec2", "capabilities": {"portMappings": True, "dns": True}},
            ],
        },
    ),
    "conf-0.4.0": (
        "10-x.conf",
        {
            "cniVersion": "0.4.0",
            "name": "cmpnet",
            "type": "recorder",
            "capabilities": {"portMappings": True},
            "b": 1,
            "a": 2,
        },
    ),
    "conf-1.0.0": ("10-x.json", {"cniVersion": "1.0.0", "name": "cmpnet", "type": "recorder"}),
    # the first plugin returns a 1.0.0 result with spec 1.1.0's fields
    "list-1.0.0-11fields": (
        "10-x.conflist",
        {
            "cniVersion": "1.0.0",
            "name": "cmpnet",
            "plugins": [
                {
                    "type": "recorder",
                    "interfaceMtu": 1450,
                    "socketPath": "/run/vhost-user/sock0",
                    "routes": [{"dst": "10.50.0.0/16", "gw": "10.1.0.1", "priority": 100, "table": 0}],
                },
                {"type": "recorder", "interfaceName": "rec1", "address": "10.2.0.5/24"},
            ],
        },
    ),
}
_IFACE_11 = ("mtu", "socketPath", "pciID")
_ROUTE_11 = ("mtu", "advmss", "priority", "table", "scope")


def like_112(doc: object) -> object:
    """A 1.x result as Go libcni 1.1.2 writes what 1.3.0 (and libcni_py)
    write: without spec 1.1.0's fields, with ``"dns": {}`` (compare decoded:
    1.1.2's key order differs too)."""
    if not isinstance(doc, dict) or doc.get("cniVersion") not in ("1.0.0", "1.1.0"):
        return doc
    out = dict(doc)
    if "interfaces" in out:
        out["interfaces"] = [{k: v for k, v in i.items() if k not in _IFACE_11} for i in out["interfaces"]]
    if "routes" in out:
        out["routes"] = [{k: v for k, v in r.items() if k not in _ROUTE_11} for r in out["routes"]]
    out.setdefault("dns", {})
    return out


def stdin_like_112(text: str) -> object:
    doc = json.loads(text)
    if "prevResult" in doc:
        doc["prevResult"] = like_112(doc["prevResult"])
    return doc


ENV_EXTRA = {
    "CNI_ARGS": "K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;IgnoreUnknown=1",
    "CAP_ARGS": json.dumps(
        {
            "portMappings": [{"hostPort": 18080, "containerPort": 80, "protocol": "tcp"}],
            "dns": {"servers": ["10.96.0.10"]},
            "bandwidth": {"ingressRate": 1000},
        }
    ),
}


def run_tool(
    tool: str, gopeer: Path, command: str, netns: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    if tool == "go":
        return subprocess.run(
            [str(gopeer), command, "cmpnet", str(netns)],
            env=dict(os.environ) | env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    return run_cnitool(command, "cmpnet", str(netns), env=env)


@pytest.mark.parametrize("case", sorted(CASES))
def test_same_stdin_env_and_cache(case: str, any_gopeer: GoPeer, tmp_path: Path) -> None:
    filename, doc = CASES[case]
    conf_dir = tmp_path / "net.d"
    conf_dir.mkdir()
    write_conf(conf_dir, filename, doc)
    netns = live_netns(tmp_path / "netns")
    cid = cnitool_container_id(str(netns))
    seen: dict[str, dict[str, object]] = {}
    for tool in ("go", "py"):
        cache = tmp_path / f"cache-{tool}"
        record = tmp_path / f"calls-{tool}.jsonl"
        env = {
            "NETCONFPATH": str(conf_dir),
            "CNI_PATH": str(PLUGINS),
            "CNI_CACHE_DIR": str(cache),
            "RECORD_FILE": str(record),
            "CNI_IFNAME": "eth0",
        } | ENV_EXTRA
        add = run_tool(tool, any_gopeer.path, "add", netns, env)
        assert add.returncode == 0, (tool, add.stderr)
        cache_file = cache / "results" / f"cmpnet-{cid}-eth0"
        cached = cache_file.read_bytes()
        commands = ["check", "del"] if doc["cniVersion"] >= "0.4.0" else ["del"]
        for command in commands:
            proc = run_tool(tool, any_gopeer.path, command, netns, env)
            assert proc.returncode == 0, (tool, command, proc.stderr)
        assert not cache_file.exists(), tool
        seen[tool] = {"add": add.stdout, "cache": cached, "calls": read_calls(record)}

    go, py = seen["go"], seen["py"]
    go_calls, py_calls = go["calls"], py["calls"]
    assert isinstance(go_calls, list) and isinstance(py_calls, list)
    assert len(go_calls) == len(py_calls) > 0
    for g, p in zip(go_calls, py_calls, strict=True):
        assert p["command"] == g["command"]
        if "env" in g:
            genv = {k: v for k, v in g["env"].items() if k not in ("RECORD_FILE", "CNI_CACHE_DIR")}
            penv = {k: v for k, v in p["env"].items() if k not in ("RECORD_FILE", "CNI_CACHE_DIR")}
            assert penv == genv, f"{g['command']} environment differs"
    go_record = json.loads(go["cache"])  # type: ignore[arg-type]
    py_record = json.loads(py["cache"])  # type: ignore[arg-type]
    assert py_record["netns"] == str(netns)
    if any_gopeer.release == "1.3.0":
        # the newest release, which libcni_py follows: byte for byte
        assert py["add"] == go["add"] + "\n"
        for g, p in zip(go_calls, py_calls, strict=True):
            assert p["stdin"] == g["stdin"], f"{g['command']} stdin differs"
        assert py["cache"] == go["cache"]
    else:
        # 1.1.2: the same but for 1.3.0's changes (module docstring), which must show
        assert json.loads(go["add"]) == like_112(json.loads(py["add"]))  # type: ignore[arg-type]
        for g, p in zip(go_calls, py_calls, strict=True):
            assert stdin_like_112(p["stdin"]) == json.loads(g["stdin"]), f"{g['command']} stdin differs"
        assert "netns" not in go_record
        py_record.pop("netns")
        py_record["result"] = like_112(py_record["result"])
        assert py_record == go_record
        if doc["cniVersion"] == "1.0.0":
            assert go["add"] != py["add"].rstrip("\n")  # type: ignore[union-attr]
    if case == "list-1.0.0-11fields":
        # the first plugin's 1.1.0 fields reach the second plugin and the cache (1.1.2: dropped)
        second_add = [c for c in py_calls if c["command"] == "ADD" and "env" in c][1]
        prev = json.loads(str(second_add["stdin"]))["prevResult"]
        assert prev["interfaces"][0]["socketPath"] == "/run/vhost-user/sock0"
        assert prev["interfaces"][0]["mtu"] == 1450
        assert prev["routes"][0]["priority"] == 100
        assert json.loads(py["cache"])["result"]["interfaces"][0]["socketPath"] == "/run/vhost-user/sock0"  # type: ignore[arg-type]
        go_second = [c for c in go_calls if c["command"] == "ADD" and "env" in c][1]
        go_prev = json.loads(str(go_second["stdin"]))["prevResult"]
        assert ("socketPath" in go_prev["interfaces"][0]) == (any_gopeer.release == "1.3.0")


@pytest.mark.parametrize("first", ["go", "py"])
def test_each_deletes_what_the_other_added(first: str, any_gopeer: GoPeer, tmp_path: Path) -> None:
    conf_dir = tmp_path / "net.d"
    conf_dir.mkdir()
    write_conf(conf_dir, *CASES["list-1.0.0"])
    netns = live_netns(tmp_path / "netns")
    cache = tmp_path / "cache"
    record = tmp_path / "calls.jsonl"
    env = {
        "NETCONFPATH": str(conf_dir),
        "CNI_PATH": str(PLUGINS),
        "CNI_CACHE_DIR": str(cache),
        "RECORD_FILE": str(record),
    } | ENV_EXTRA
    second = "py" if first == "go" else "go"
    assert run_tool(first, any_gopeer.path, "add", netns, env).returncode == 0
    check = run_tool(second, any_gopeer.path, "check", netns, env)
    assert check.returncode == 0, check.stderr
    proc = run_tool(second, any_gopeer.path, "del", netns, env)
    assert proc.returncode == 0, proc.stderr
    assert not list((cache / "results").iterdir())
    dels = [json.loads(str(c["stdin"])) for c in read_calls(record) if c["command"] == "DEL" and "env" in c]
    assert dels and all("prevResult" in d for d in dels), "the DEL used the other tool's cached result"


def test_go_reads_our_in_progress_record(any_gopeer: GoPeer, tmp_path: Path) -> None:
    """A record we write before/while ADD runs is one Go libcni can DEL."""
    from libcni_py.core import record as cachemod

    conf_dir = tmp_path / "net.d"
    conf_dir.mkdir()
    write_conf(conf_dir, *CASES["list-1.0.0"])
    netns = live_netns(tmp_path / "netns")
    cid = cnitool_container_id(str(netns))
    results = tmp_path / "cache" / "results"
    results.mkdir(parents=True)
    data = cachemod.encode_record(
        container_id=cid,
        ifname="eth0",
        network="cmpnet",
        config=(conf_dir / "10-x.conflist").read_bytes(),
        netns=str(netns),
        cni_args=[],
        capability_args={},
        result=None,
        progress=cachemod.Progress(state="adding", done=0, plugins=3),
    )
    (results / f"cmpnet-{cid}-eth0").write_bytes(data)
    env = {
        "NETCONFPATH": str(conf_dir),
        "CNI_PATH": str(PLUGINS),
        "CNI_CACHE_DIR": str(tmp_path / "cache"),
        "RECORD_FILE": str(tmp_path / "calls.jsonl"),
    }
    proc = run_tool("go", any_gopeer.path, "del", netns, env)
    assert proc.returncode == 0, proc.stderr
    assert not (results / f"cmpnet-{cid}-eth0").exists()
