"""``cnitool pod ...`` and ``cnitool ready`` with the test plugins (the pod's
namespace given with --netns, so nothing here needs root)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from podkit import calls_of, two_networks
from support import REPO, read_calls, run_cnitool, write_conf


@pytest.fixture
def env(conf_dir: Path, cache_dir: Path, plugin_dir: Path, record_file: Path) -> dict[str, str]:
    return {
        "NETCONFPATH": str(conf_dir),
        "CNI_PATH": str(plugin_dir),
        "CNI_CACHE_DIR": str(cache_dir),
        "RECORD_FILE": str(record_file),
    }


def one_line_error(proc: object) -> str:
    stderr: str = proc.stderr  # type: ignore[attr-defined]
    assert "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    return stderr


def test_ready_says_why_not_then_ready_once_a_conflist_is_dropped_in(env: dict[str, str], conf_dir: Path) -> None:
    proc = run_cnitool("ready", env=env)
    assert proc.returncode == 1
    assert "network not ready (NoNetworkConfig): no network configuration in " + str(conf_dir) in one_line_error(proc)
    write_conf(conf_dir, "10-a.conflist", {"cniVersion": "1.0.0", "name": "neta", "plugins": [{"type": "nosuch"}]})
    proc = run_cnitool("ready", "--json", env=env)
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["reason"] == "PluginNotFound"
    assert 'plugin "nosuch" not found in' in one_line_error(proc)
    write_conf(conf_dir, "10-a.conflist", {"cniVersion": "1.0.0", "name": "neta", "plugins": [{"type": "recorder"}]})
    proc = run_cnitool("ready", env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "ready (default network 'neta')\n"


def test_pod_up_status_check_down(
    env: dict[str, str], conf_dir: Path, cache_dir: Path, fake_netns: str, record_file: Path
) -> None:
    two_networks(conf_dir)
    up = run_cnitool(
        "pod", "up", "--namespace", "prod", "--name", "web", "--uid", "u1", "--netns", fake_netns,
        "--network", "netb:net1", "--network", "neta", "--port", "8080:80/udp", "--bandwidth", "10M:5M",
        "--annotation", "team=blue", "--json",
        env=env,
    )  # fmt: skip
    assert up.returncode == 0, up.stderr
    doc = json.loads(up.stdout)
    cid = doc["containerId"]
    assert len(cid) == 64 and doc["pod"] == "prod/web" and doc["netns"] == fake_netns
    assert list(doc["interfaces"]) == ["lo", "net1", "eth0"]
    assert doc["interfaces"]["net1"]["ips"] == [{"address": "10.2.0.5/24"}]
    adds = [json.loads(str(c["stdin"])) for c in read_calls(record_file) if c["command"] == "ADD"]
    caps = [a["runtimeConfig"] for a in adds if "runtimeConfig" in a]
    assert caps == [{"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "udp"}]}]
    # every capability argument is cached with each attachment; plugins get those they declare
    record = json.loads((cache_dir / "results" / f"neta-{cid}-eth0").read_text())
    assert record["capabilityArgs"]["bandwidth"] == {
        "ingressRate": 10_000_000, "ingressBurst": 2**32 - 1, "egressRate": 5_000_000, "egressBurst": 2**32 - 1,
    }  # fmt: skip
    assert record["capabilityArgs"]["io.kubernetes.cri.pod-annotations"] == {"team": "blue"}
    env_args = read_calls(record_file)[0]["env"]["CNI_ARGS"]  # type: ignore[index]
    assert (
        env_args
        == f"IgnoreUnknown=1;K8S_POD_NAMESPACE=prod;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID={cid};K8S_POD_UID=u1"
    )

    ls = run_cnitool("pod", "ls", env=env)
    assert ls.returncode == 0
    assert cid[:12] in ls.stdout and "prod/web" in ls.stdout and "net1=10.2.0.5/24" in ls.stdout
    status = run_cnitool("pod", "status", "prod/web", "--json", env=env)
    assert status.returncode == 0, status.stderr
    info = json.loads(status.stdout)
    assert info["containerId"] == cid and info["alive"] is False  # a plain file is no live namespace
    assert {(a["network"], a["ifname"]) for a in info["attachments"]} == {
        ("cni-loopback", "lo"),
        ("netb", "net1"),
        ("neta", "eth0"),
    }

    check = run_cnitool("pod", "check", cid[:8], env=env)
    assert check.returncode == 0, check.stderr
    head, _, tail = check.stdout.strip().partition(": ")
    assert head == "pod prod/web" and sorted(tail.split(", ")) == ["eth0 ok", "lo ok", "net1 ok"]

    down = run_cnitool("pod", "down", "--namespace", "prod", "--name", "web", env=env)
    assert down.returncode == 0, down.stderr
    assert sorted(calls_of(record_file, "DEL")) == [
        ("cni-loopback", "lo"),
        ("neta", "eth0"),
        ("neta", "eth0"),
        ("netb", "net1"),
    ]
    again = run_cnitool("pod", "down", "prod/web", env=env)
    assert again.returncode == 0
    assert "nothing to do" in again.stderr
    assert run_cnitool("pod", "ls", "--json", env=env).stdout.strip() == "[]"


def test_pod_errors_are_one_line_with_exit_codes(env: dict[str, str], conf_dir: Path, fake_netns: str) -> None:
    two_networks(conf_dir)
    cases = [
        (("pod", "up", "--netns", fake_netns), 2, "needs --name"),
        (("pod", "up", "--name", "w", "--netns", fake_netns, "--port", "80"), 3, "expected [HOSTIP:]HOST:CONTAINER"),
        (("pod", "up", "--name", "w", "--netns", fake_netns, "--network", "nope"), 3, 'no network named "nope"'),
        (("pod", "up", "--name", "w", "--netns", "/nonexistent/ns"), 6, "does not exist"),
        (("pod", "check", "nosuch"), 1, "no pod 'nosuch'"),
        (("pod", "fly"), 2, "unknown pod action"),
    ]
    for argv, code, words in cases:
        proc = run_cnitool(*argv, env=env)
        assert proc.returncode == code, (argv, proc.stderr)
        assert words in proc.stderr.splitlines()[0], (argv, proc.stderr)
        assert "Traceback" not in proc.stderr


def test_pod_gc_keeps_live_pods_and_removes_the_rest(
    env: dict[str, str], conf_dir: Path, fake_netns: str, cache_dir: Path
) -> None:
    two_networks(conf_dir)
    ids = []
    for name, extra in (("keep", ()), ("drop", ("--concurrent", "--max-networks", "2"))):
        up = run_cnitool("pod", "up", "--name", name, "--netns", fake_netns, "--json", *extra, env=env)
        assert up.returncode == 0, up.stderr
        ids.append(json.loads(up.stdout)["containerId"])
    keep, drop = ids
    assert list(json.loads(up.stdout)["interfaces"]) == ["lo", "eth0", "eth1"]  # the trio form, two networks
    gc = run_cnitool("pod", "gc", "--live", keep, env=env)
    assert gc.returncode == 0, gc.stderr
    assert f"removed neta {drop} eth0" in gc.stdout and f"removed pod {drop}" in gc.stdout
    assert f"kept neta {keep} eth0" in gc.stdout
    assert sorted(p.name.split("-")[-2] for p in (cache_dir / "results").iterdir()) == [keep, keep]
    # without --live, a pod whose namespace is not a live namespace is garbage too
    gc = run_cnitool("pod", "gc", env=env)
    assert gc.returncode == 0
    assert list((cache_dir / "results").iterdir()) == []


def test_pod_commands_import_nothing_heavy() -> None:
    """The blocking pod commands stay one-shot friendly: trio only with --concurrent."""
    code = (
        "import sys; import libcni_py.cli.main, libcni_py.cli.pod, libcni_py.runtime.manager, libcni_py.runtime.gc; "
        "print(','.join(m for m in ('trio', 'pyroute2', 'jsonschema', 'subprocess', 'argparse') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert proc.stdout.strip() == ""
