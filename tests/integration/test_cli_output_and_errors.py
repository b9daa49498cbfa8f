"""cnitool as a person or a script meets it: output, errors, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import PLUGINS, read_calls, run_cnitool, write_conf

from libcni_py.core.args import cnitool_container_id


@pytest.fixture
def env(conf_dir: Path, cache_dir: Path, record_file: Path) -> dict[str, str]:
    write_conf(
        conf_dir,
        "10-rec.conflist",
        {
            "cniVersion": "1.0.0",
            "name": "recnet",
            "plugins": [
                {"type": "recorder"},
                {"type": "recorder", "interfaceName": "rec1", "capabilities": {"portMappings": True}},
            ],
        },
    )
    return {
        "NETCONFPATH": str(conf_dir),
        "CNI_PATH": str(PLUGINS),
        "CNI_CACHE_DIR": str(cache_dir),
        "RECORD_FILE": str(record_file),
    }


@pytest.fixture
def netns(tmp_path: Path) -> Path:
    path = tmp_path / "fake-netns"
    path.write_text("")
    return path


def no_traceback(proc: object) -> None:
    stderr = proc.stderr  # type: ignore[attr-defined]
    assert "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr


def test_add_check_del(env: dict[str, str], netns: Path, cache_dir: Path, record_file: Path) -> None:
    add = run_cnitool("add", "recnet", str(netns), env=env | {"CNI_ARGS": "A=1;B=2", "CAP_ARGS": '{"portMappings":[]}'})
    assert add.returncode == 0, add.stderr
    assert add.stdout.startswith('{\n    "cniVersion": "1.0.0",\n    "interfaces": [')
    assert json.loads(add.stdout)["interfaces"][1]["name"] == "rec1"
    cid = cnitool_container_id(str(netns))
    assert (cache_dir / "results" / f"recnet-{cid}-eth0").exists()
    assert run_cnitool("check", "recnet", str(netns), env=env).returncode == 0
    assert run_cnitool("del", "recnet", str(netns), env=env).returncode == 0
    assert not (cache_dir / "results" / f"recnet-{cid}-eth0").exists()
    calls = read_calls(record_file)
    assert calls[0]["env"]["CNI_ARGS"] == "A=1;B=2"  # type: ignore[index]
    assert calls[0]["env"]["CNI_CONTAINERID"] == cid  # type: ignore[index]


def test_flags_override_environment(
    env: dict[str, str], netns: Path, cache_dir: Path, record_file: Path, tmp_path: Path
) -> None:
    other_cache = tmp_path / "other-cache"
    proc = run_cnitool(
        "add",
        "recnet",
        str(netns),
        "--ifname",
        "net7",
        "--container-id",
        "abc",
        "--cache-dir",
        str(other_cache),
        "--args",
        "X=1",
        "--capability-args",
        '{"portMappings":[{"hostPort":1,"containerPort":2}]}',
        env=env | {"CNI_IFNAME": "eth9", "CNI_ARGS": "Y=2"},
    )
    assert proc.returncode == 0, proc.stderr
    assert (other_cache / "results" / "recnet-abc-net7").exists()
    calls = read_calls(record_file)
    assert calls[0]["env"]["CNI_IFNAME"] == "net7" and calls[0]["env"]["CNI_ARGS"] == "X=1"  # type: ignore[index]
    assert json.loads(str(calls[1]["stdin"]))["runtimeConfig"]["portMappings"][0]["hostPort"] == 1


@pytest.mark.parametrize(
    ("args", "extra_env", "code", "needle"),
    [
        (["add", "nonet", "NETNS"], {}, 3, 'no network named "nonet" (networks found: recnet)'),
        (["add", "recnet", "/no/such/netns"], {}, 6, "network namespace /no/such/netns does not exist"),
        (["add", "recnet", "NETNS"], {"CNI_ARGS": "A=1;B"}, 3, "CNI_ARGS: pair 2 'B' has no '='"),
        (["add", "recnet", "NETNS"], {"CNI_PATH": "/nowhere"}, 4, 'plugin "recorder" not found in /nowhere'),
        (["add", "recnet", "NETNS", "--ifname", "a/b"], {}, 3, "interface name 'a/b'"),
        (["add", "recnet", "NETNS", "--container-id", "../x"], {}, 3, "container ID '../x': invalid characters"),
        (["frobnicate"], {}, 2, "unknown command 'frobnicate'"),
        (["add", "recnet"], {}, 2, "expected NETWORK NETNS"),
        (["add", "recnet", "NETNS", "--bogus"], {}, 2, "unknown option --bogus"),
        (["check", "recnet", "NETNS"], {}, 3, "nothing to check"),  # not on record: bad arguments
        (["gc", "recnet"], {}, 2, "refusing to GC without a list of valid attachments"),
        (
            ["add", "recnet", "NETNS", "--timeout", "soon"],
            {},
            2,
            "--timeout: 'soon' is not a number of seconds from 0 to 86400",
        ),
    ],
)
def test_errors_are_one_clear_line(
    env: dict[str, str], netns: Path, args: list[str], extra_env: dict[str, str], code: int, needle: str
) -> None:
    proc = run_cnitool(*[str(netns) if a == "NETNS" else a for a in args], env=env | extra_env)
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert needle in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_bad_conf_file_is_named_with_its_json_path(env: dict[str, str], conf_dir: Path, netns: Path) -> None:
    write_conf(
        conf_dir,
        "05-broken.conflist",
        {"cniVersion": "1.0.0", "name": "other", "plugins": [{"type": "x"}, {"type": ["no"]}]},
    )
    proc = run_cnitool("add", "recnet", str(netns), env=env)
    assert proc.returncode == 3
    no_traceback(proc)
    assert f"{conf_dir}/05-broken.conflist: plugins[1].type: expected a string" in proc.stderr
    assert "stops at the first file it cannot parse" in proc.stderr


def test_failing_plugin(env: dict[str, str], conf_dir: Path, netns: Path) -> None:
    write_conf(
        conf_dir,
        "20-fail.conflist",
        {
            "cniVersion": "1.0.0",
            "name": "failnet",
            "plugins": [{"type": "failer", "code": 7, "msg": "bad subnet", "details": "10.0.0.0/33"}],
        },
    )
    proc = run_cnitool("add", "failnet", str(netns), env=env)
    assert proc.returncode == 1
    no_traceback(proc)
    assert 'plugin type="failer" failed (add): bad subnet: 10.0.0.0/33' in proc.stderr


def test_capability_args_errors_never_echo_values(env: dict[str, str], netns: Path) -> None:
    proc = run_cnitool("add", "recnet", str(netns), env=env | {"CAP_ARGS": '{"token": "s3cr3t-value",'})
    assert proc.returncode == 3
    no_traceback(proc)
    assert "CAP_ARGS" in proc.stderr and "s3cr3t" not in proc.stderr


def test_debug_shows_the_traceback(env: dict[str, str], netns: Path) -> None:
    proc = run_cnitool("--debug", "add", "nonet", str(netns), env=env)
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr and "NetworkNotFoundError" in proc.stderr


def test_gc_with_valid_list_and_all(env: dict[str, str], tmp_path: Path, cache_dir: Path) -> None:
    spaces = []
    for name in ("a", "b", "c"):
        path = tmp_path / name
        path.write_text("")
        spaces.append(path)
        assert run_cnitool("add", "recnet", str(path), env=env).returncode == 0
    keep = cnitool_container_id(str(spaces[0]))
    proc = run_cnitool("gc", "recnet", "--valid", f"{keep}/eth0", env=env)
    assert proc.returncode == 0, proc.stderr
    assert f"kept {keep}/eth0" in proc.stdout
    assert proc.stdout.count("removed ") == 2
    assert [p.name for p in (cache_dir / "results").iterdir()] == [f"recnet-{keep}-eth0"]
    proc = run_cnitool("gc", "recnet", "--all", env=env)
    assert proc.returncode == 0 and f"removed {keep}/eth0" in proc.stdout
    assert not list((cache_dir / "results").iterdir())


def test_version_validate_status_help(env: dict[str, str]) -> None:
    proc = run_cnitool("version", "recorder", env=env)
    assert proc.returncode == 0
    assert "1.1.0" in json.loads(proc.stdout)["supportedVersions"]
    proc = run_cnitool("validate", "recnet", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "capabilities: portMappings" in proc.stdout
    assert run_cnitool("status", "recnet", env=env).returncode == 0
    helped = run_cnitool("--help")
    assert helped.returncode == 0 and "commands:" in helped.stdout and "gc" in helped.stdout
    sub = run_cnitool("gc", "--help")
    assert sub.returncode == 0 and "--valid" in sub.stdout and "--all" in sub.stdout


def test_named_netns_resolves_under_var_run_netns(tmp_path: Path) -> None:
    from libcni_py.cli.ops import resolve_netns

    assert resolve_netns("/abs/path") == "/abs/path"
    assert resolve_netns("surely-not-a-netns-name-xyz").endswith("/surely-not-a-netns-name-xyz")
    assert resolve_netns("surely-not-a-netns-name-xyz").startswith("/")


def test_del_uses_recorded_config_unless_told_current(env: dict[str, str], conf_dir: Path, netns: Path) -> None:
    stuck = {
        "cniVersion": "1.0.0",
        "name": "stucknet",
        "plugins": [{"type": "recorder"}, {"type": "failer", "failOn": ["DEL"], "msg": "cannot let go"}],
    }
    write_conf(conf_dir, "30-stuck.conflist", stuck)
    assert run_cnitool("add", "stucknet", str(netns), env=env).returncode == 0
    stuck["plugins"] = stuck["plugins"][:1]  # the admin takes the broken plugin out
    write_conf(conf_dir, "30-stuck.conflist", stuck)
    recorded = run_cnitool("del", "stucknet", str(netns), env=env)
    assert recorded.returncode == 1 and "cannot let go" in recorded.stderr
    assert "deleting with the configuration it was added with" in recorded.stderr
    current = run_cnitool("del", "stucknet", str(netns), "--current-config", env=env)
    assert current.returncode == 0, current.stderr
    assert "deleting with the current configuration, as asked" in current.stderr


def test_check_and_del_reuse_recorded_args_when_given_none(env: dict[str, str], netns: Path, record_file: Path) -> None:
    caps = '{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]}'
    added = run_cnitool("add", "recnet", str(netns), env=env | {"CNI_ARGS": "K8S_POD_NAME=web", "CAP_ARGS": caps})
    assert added.returncode == 0, added.stderr
    for command in ("check", "del"):
        proc = run_cnitool(command, "recnet", str(netns), env=env)
        assert proc.returncode == 0, proc.stderr
        assert "using the CNI_ARGS and capability args recorded when the attachment was added" in proc.stderr
    calls = [c for c in read_calls(record_file) if c["command"] in ("CHECK", "DEL")]
    assert len(calls) == 4
    for call in calls:
        assert call["env"]["CNI_ARGS"] == "K8S_POD_NAME=web"  # type: ignore[index]
    portmap_like = [json.loads(str(c["stdin"])) for c in calls if "interfaceName" in json.loads(str(c["stdin"]))]
    assert all(d["runtimeConfig"]["portMappings"][0]["hostPort"] == 8080 for d in portmap_like)


def test_given_args_win_over_recorded_ones(env: dict[str, str], netns: Path, record_file: Path) -> None:
    assert run_cnitool("add", "recnet", str(netns), env=env | {"CNI_ARGS": "A=1"}).returncode == 0
    proc = run_cnitool("del", "recnet", str(netns), env=env | {"CNI_ARGS": "B=2"})
    assert proc.returncode == 0 and "recorded when" not in proc.stderr
    assert [c["env"]["CNI_ARGS"] for c in read_calls(record_file) if c["command"] == "DEL"] == ["B=2", "B=2"]  # type: ignore[index]
