"""``cnitool explain``: the dry run shows exactly what a real run hands each
plugin (checked against what the recorder plugin received), and runs and
writes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import PLUGINS, read_calls, run_cnitool, write_conf

from libcni_py.core import gojson

CAPS = {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}], "bandwidth": {"ingressRate": 1}}


@pytest.fixture
def env(conf_dir: Path, cache_dir: Path, record_file: Path) -> dict[str, str]:
    write_conf(
        conf_dir,
        "10-rec.conflist",
        {
            "cniVersion": "1.1.0",
            "name": "recnet",
            "plugins": [
                {"type": "recorder"},
                {"type": "recorder", "interfaceName": "rec1", "capabilities": {"portMappings": True}},
                {"type": "recorder", "interfaceName": "rec2", "capabilities": {"bandwidth": True, "dns": True}},
            ],
        },
    )
    return {
        "NETCONFPATH": str(conf_dir),
        "CNI_PATH": str(PLUGINS),
        "CNI_CACHE_DIR": str(cache_dir),
        "RECORD_FILE": str(record_file),
        "CAP_ARGS": json.dumps(CAPS),
        "CNI_ARGS": "K8S_POD_NAME=web",
    }


def explain(env: dict[str, str], *args: str) -> dict[str, object]:
    proc = run_cnitool("explain", *args, "--json", "--full-env", env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def with_placeholder(stdin: str, text: str) -> str:
    doc = json.loads(stdin)
    doc["prevResult"] = f"PLACEHOLDER: {text}"
    return gojson.dumps(doc)


def test_explain_add_is_what_add_sends(env: dict[str, str], tmp_path: Path, cache_dir: Path, record_file: Path) -> None:
    netns = tmp_path / "ns"
    netns.write_text("")
    doc = explain(env, "recnet", str(netns))
    assert read_calls(record_file) == [] and not any(cache_dir.iterdir()), "explain ran or wrote something"
    steps = doc["steps"]
    assert [s["kind"] for s in steps] == [
        "probe-netns",
        "lock",
        "read-record",
        "write-record",
        "exec",
        "write-record",
        "exec",
        "write-record",
        "exec",
        "write-record",
        "unlock",
    ]
    execs = [s for s in steps if s["kind"] == "exec"]
    assert [(e["plugin"]["index"], e["prevResult"]) for e in execs] == [
        (0, None),
        (1, "the result of plugins[0] (recorder) ADD"),
        (2, "the result of plugins[1] (recorder) ADD"),
    ]
    assert [e["capabilityArgs"] for e in execs] == [
        {"passed": {}, "dropped": ["bandwidth", "portMappings"]},
        {"passed": {"portMappings": CAPS["portMappings"]}, "dropped": ["bandwidth"]},
        {"passed": {"bandwidth": CAPS["bandwidth"]}, "dropped": ["portMappings"]},
    ]
    assert run_cnitool("add", "recnet", str(netns), env=env).returncode == 0
    calls = read_calls(record_file)
    assert len(calls) == 3
    assert execs[0]["stdin"] == calls[0]["stdin"]  # byte for byte
    for index in (1, 2):
        assert execs[index]["stdin"] == with_placeholder(str(calls[index]["stdin"]), execs[index]["prevResult"])
    # the plugin's own interpreter start (pyenv shims) changes PATH and adds PYENV_*; the rest is exact
    for call, step in zip(calls, execs, strict=True):

        def stable(env: object) -> dict[str, str]:
            return {k: v for k, v in dict(env).items() if k not in ("PATH", "_") and "PYENV" not in k}  # type: ignore[call-overload]

        seen, shown = stable(call["env"]), stable(step["env"])
        assert shown == seen
        assert {k: v for k, v in shown.items() if k.startswith("CNI_")} == {
            "CNI_COMMAND": "ADD",
            "CNI_CONTAINERID": step["env"]["CNI_CONTAINERID"],
            "CNI_NETNS": str(netns),
            "CNI_ARGS": "K8S_POD_NAME=web",
            "CNI_IFNAME": "eth0",
            "CNI_PATH": str(PLUGINS),
            "CNI_CACHE_DIR": str(cache_dir),
        }


def test_explain_del_check_and_old_versions(env: dict[str, str], conf_dir: Path, tmp_path: Path) -> None:
    doc = explain(env, "recnet", "--command", "DEL")
    execs = [s for s in doc["steps"] if s["kind"] == "exec"]
    assert [e["plugin"]["index"] for e in execs] == [2, 1, 0]
    assert all("the cached ADD result" in e["prevResult"] for e in execs)
    assert "a DEL now runs the plugins without prevResult" in execs[0]["prevResult"]
    assert [s["kind"] for s in doc["steps"]][-2:] == ["remove-record", "unlock"]
    assert all(e["env"]["CNI_NETNS"] == "/var/run/netns/NETNS" for e in execs)
    doc = explain(env, "recnet", "--command", "check")
    assert "a CHECK now fails before running any plugin" in doc["steps"][1]["text"]
    write_conf(
        conf_dir, "20-old.conflist", {"cniVersion": "0.3.1", "name": "oldnet", "plugins": [{"type": "recorder"}]}
    )
    doc = explain(env, "oldnet", "--command", "DEL")
    assert [s["prevResult"] for s in doc["steps"] if s["kind"] == "exec"] == [None]  # no prevResult below 0.4.0
    proc = run_cnitool("explain", "oldnet", "--command", "CHECK", env=env)
    assert proc.returncode == 3 and "does not support the CHECK command" in proc.stderr


def test_explain_gc_status_and_missing_plugins(env: dict[str, str], conf_dir: Path) -> None:
    doc = explain(env, "recnet", "--command", "GC", "--valid", "abc/eth0")
    execs = [s for s in doc["steps"] if s["kind"] == "exec"]
    assert [e["command"] for e in execs] == ["GC", "GC", "GC"]
    stdin = json.loads(execs[0]["stdin"])
    assert stdin["cni.dev/valid-attachments"] == [{"containerID": "abc", "ifname": "eth0"}]
    assert execs[0]["env"]["CNI_CONTAINERID"] == "" and execs[1]["capabilityArgs"]["passed"] == {}
    doc = explain(env, "recnet", "--command", "STATUS")
    assert [s["command"] for s in doc["steps"]] == ["STATUS", "STATUS", "STATUS"]
    write_conf(conf_dir, "30-missing.conflist", {"cniVersion": "1.0.0", "name": "gone", "plugins": [{"type": "nope"}]})
    proc = run_cnitool("explain", "gone", env=env)
    assert proc.returncode == 0, proc.stderr
    assert f'binary   plugin "nope" not found in {PLUGINS}' in proc.stdout
    assert "gets none; not passed (not declared in its capabilities): bandwidth, portMappings" in proc.stdout
    bad = run_cnitool("explain", "recnet", "--command", "FROB", env=env)
    assert bad.returncode == 2 and "--command: 'FROB' is not one of ADD, CHECK, DEL, GC, STATUS" in bad.stderr


def test_explain_text_shows_the_stdin_and_env(env: dict[str, str]) -> None:
    proc = run_cnitool("explain", "recnet", "/var/run/netns/blue", env=env)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith("explain ADD of network 'recnet' (") and "nothing runs, nothing is written" in out
    assert "5. run recorder ADD (plugins[0])" in out
    assert "     env      CNI_COMMAND=ADD CNI_CONTAINERID=cnitool-" in out
    assert "CNI_NETNS=/var/run/netns/blue CNI_ARGS=K8S_POD_NAME=web CNI_IFNAME=eth0 CNI_PATH=" in out
    assert "     prevResult: the result of plugins[0] (recorder) ADD" in out
    assert '         "prevResult": "PLACEHOLDER: the result of plugins[0] (recorder) ADD",' in out
    assert "capability args: gets portMappings; not passed (not declared in its capabilities): bandwidth" in out


def test_explain_del_uses_the_recorded_arguments_like_del(env: dict[str, str], tmp_path: Path) -> None:
    """explain shows what `cnitool del` would send: with no CAP_ARGS given,
    the capability args recorded at ADD."""
    from support import run_cnitool

    netns = tmp_path / "ns-recorded"
    netns.write_text("")
    added = run_cnitool("add", "recnet", str(netns), env=env)
    assert added.returncode == 0, added.stderr
    bare = env | {"CAP_ARGS": "", "CNI_ARGS": ""}
    proc = run_cnitool("explain", "recnet", str(netns), "--command", "DEL", "--json", env=bare)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # no note: the attachment shown says which arguments are used
    attachment = json.loads(proc.stdout)["attachment"]
    assert attachment["capabilityArgs"] == CAPS
    assert attachment["cniArgs"] == [["K8S_POD_NAME", "web"]]
