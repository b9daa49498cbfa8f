"""``cnitool cache ls`` / ``cache show``: the result cache decoded, and whether
the conf file a record came from still matches."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import PLUGINS, run_cnitool, write_conf

from libcni_py.core.args import cnitool_container_id

NET = {
    "cniVersion": "1.0.0",
    "name": "recnet",
    "plugins": [{"type": "recorder"}, {"type": "recorder", "interfaceName": "r1"}],
}


@pytest.fixture
def env(conf_dir: Path, cache_dir: Path) -> dict[str, str]:
    write_conf(conf_dir, "10-rec.conflist", NET)
    write_conf(
        conf_dir, "20-other.conflist", {"cniVersion": "1.0.0", "name": "other", "plugins": [{"type": "recorder"}]}
    )
    return {"NETCONFPATH": str(conf_dir), "CNI_PATH": str(PLUGINS), "CNI_CACHE_DIR": str(cache_dir)}


def add(env: dict[str, str], tmp_path: Path, name: str, network: str = "recnet", *extra: str) -> str:
    netns = tmp_path / name
    netns.write_text("")
    proc = run_cnitool("add", network, str(netns), *extra, env=env)
    assert proc.returncode == 0, proc.stderr
    return cnitool_container_id(str(netns))


def test_cache_ls_filters_and_flags_damaged_files(env: dict[str, str], tmp_path: Path, cache_dir: Path) -> None:
    a = add(env, tmp_path, "a")
    b = add(env, tmp_path, "b", "other")
    (cache_dir / "results" / "recnet-broken-eth0").write_text("")
    (cache_dir / "results" / "recnet-legacy-eth0").write_text('{"cniVersion": "0.2.0", "ip4": {"ip": "10.1.1.2/24"}}')
    doc = json.loads(run_cnitool("cache", "ls", "--json", env=env).stdout)
    assert [(x["network"], x["containerId"], x["ifname"], x["state"]) for x in doc["attachments"]] == [
        ("other", b, "eth0", "complete"),
        ("recnet", a, "eth0", "complete"),
    ]
    assert doc["unusable"] == [
        {"file": "recnet-broken-eth0", "problem": "is empty (a crash while Go libcni wrote it leaves such files)"}
    ]
    assert [o["file"] for o in doc["other"]] == ["recnet-legacy-eth0"]
    only = json.loads(run_cnitool("cache", "ls", "--json", "--network", "other", env=env).stdout)
    assert [x["containerId"] for x in only["attachments"]] == [b] and only["unusable"] == [] and only["other"] == []
    mine = json.loads(run_cnitool("cache", "ls", "--json", "--container", a, env=env).stdout)
    assert [x["network"] for x in mine["attachments"]] == ["recnet"]
    text = run_cnitool("cache", "ls", env=env).stdout
    assert text.splitlines()[0].split() == ["NETWORK", "CONTAINER", "IFNAME", "NETNS", "OWNER", "LIVE", "STATE"]
    row = ["recnet", a, "eth0", str(tmp_path / "a"), "cnitool", "stale", "complete"]  # a plain file, no namespace
    assert row in [line.split() for line in text.splitlines()]
    assert "unusable: recnet-broken-eth0: is empty" in text


def test_cache_show_and_conf_file_state(env: dict[str, str], tmp_path: Path, conf_dir: Path, cache_dir: Path) -> None:
    cid = add(env, tmp_path, "a", "recnet", "--args", "K8S_POD_NAME=web", "--capability-args", '{"portMappings":[]}')
    doc = json.loads(run_cnitool("cache", "show", "recnet", cid, "eth0", "--json", env=env).stdout)
    assert doc["config"] == NET and doc["cniArgs"] == [["K8S_POD_NAME", "web"]]
    assert doc["capabilityArgs"] == {"portMappings": []} and doc["netns"] == str(tmp_path / "a")
    assert [i["name"] for i in doc["result"]["interfaces"]] == ["rec0", "r1"] and doc["progress"] is None
    assert doc["confFile"] == {"state": "matches", "file": str(conf_dir / "10-rec.conflist"), "detail": None}
    # the file changes after the ADD: show says so, with a diff
    write_conf(conf_dir, "10-rec.conflist", {**NET, "plugins": [{"type": "recorder", "interfaceName": "zz"}]})
    text = run_cnitool("cache", "show", "recnet", cid, "eth0", env=env).stdout
    assert f"  conf file    DIFFERS from {conf_dir / '10-rec.conflist'}" in text
    assert "cnitool del runs the cached copy" in text  # as plan.delete does since DEL prefers the record
    assert '+      "interfaceName": "zz",' in text and "  CNI_ARGS     K8S_POD_NAME=web" in text
    (conf_dir / "10-rec.conflist").unlink()
    doc = json.loads(run_cnitool("cache", "show", "recnet", cid, "eth0", "--json", env=env).stdout)
    assert doc["confFile"]["state"] == "gone" and "no network named 'recnet'" in doc["confFile"]["detail"]


def test_cache_show_an_incomplete_add_and_errors(env: dict[str, str], tmp_path: Path, conf_dir: Path) -> None:
    write_conf(
        conf_dir,
        "30-fail.conflist",
        {
            "cniVersion": "1.0.0",
            "name": "failnet",
            "plugins": [{"type": "recorder"}, {"type": "failer", "code": 7, "msg": "no"}],
        },
    )
    netns = tmp_path / "f"
    netns.write_text("")
    assert run_cnitool("add", "failnet", str(netns), env=env).returncode == 1
    cid = cnitool_container_id(str(netns))
    text = run_cnitool("cache", "show", "failnet", cid, "eth0", env=env).stdout
    assert "  state        ADD failed: 1 of 2 plugins done" in text
    listed = run_cnitool("cache", "ls", env=env).stdout
    assert "ADD failed: 1 of 2 plugins done" in listed
    missing = run_cnitool("cache", "show", "recnet", "nosuch", "eth0", env=env)
    assert missing.returncode == 3 and "no cache record" in missing.stderr and "cnitool cache ls" in missing.stderr
    bad = run_cnitool("cache", "show", "recnet", "../x", "eth0", env=env)
    assert bad.returncode == 3 and "container ID '../x'" in bad.stderr
    usage = run_cnitool("cache", "frob", env=env)
    assert usage.returncode == 2 and "expected 'cache ls' or 'cache show" in usage.stderr
