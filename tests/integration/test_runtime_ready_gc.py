"""Readiness with its reasons (conf dir, files, binaries, versions, STATUS),
noticing conf dir changes without a restart, and the runtime GC."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from podkit import make_pods, two_networks
from support import CNITOOL, REPO, read_calls, write_conf

from libcni_py import MultiError
from libcni_py.edges.recordstore import CacheStore
from libcni_py.runtime import PodSpec


def old_plugin(directory: Path, versions: tuple[str, ...], counter: Path) -> None:
    """A plugin that supports only ``versions`` and counts VERSION probes."""
    script = directory / "oldie"
    script.write_text(
        textwrap.dedent(
            f"""\
            #!{sys.executable}
            import os, sys
            sys.path.insert(0, {str(REPO)!r})
            if os.environ.get("CNI_COMMAND") == "VERSION":
                with open({str(counter)!r}, "a") as fh:
                    fh.write("probe\\n")
            from libcni_py import skel
            skel.run(add=lambda a: {{"cniVersion": a.conf["cniVersion"]}}, delete=lambda a: None, versions={versions!r})
            """
        )
    )
    script.chmod(0o755)


@pytest.mark.parametrize(
    ("setup", "reason", "words"),
    [
        ("missing", "NoConfDir", "does not exist"),
        ("empty", "NoNetworkConfig", "no network configuration"),
        ("invalid", "NoValidNetwork", "05-x.conflist: plugins[0].type"),
        ("no-plugin", "PluginNotFound", 'plugin "nosuch" not found in'),
        (
            "no-loopback",
            "PluginNotFound",
            "network 'cni-loopback' (the built-in loopback network): plugin \"loopback\"",
        ),
        ("status-50", "PluginNotReady", "waiting for the overlay"),
        ("status-51", "PluginNotReady", "limited"),
        ("status-other", "StatusFailed", "broken"),
    ],
)
def test_not_ready_says_why(
    setup: str, reason: str, words: str, tmp_path: Path, cache_dir: Path, plugin_dir: Path, record_file: Path
) -> None:
    conf_dir = tmp_path / "net.d"
    if setup != "missing":
        conf_dir.mkdir()
    if setup == "invalid":
        write_conf(conf_dir, "05-x.conflist", {"cniVersion": "1.0.0", "name": "x", "plugins": [{"type": 1}]})
    if setup in ("no-plugin", "no-loopback"):
        write_conf(
            conf_dir,
            "10-a.conflist",
            {
                "cniVersion": "1.0.0",
                "name": "a",
                "plugins": [{"type": "nosuch" if setup == "no-plugin" else "recorder"}],
            },
        )
    if setup == "no-loopback":
        (plugin_dir / "loopback").unlink()
    if setup.startswith("status-"):
        code, msg = {
            "status-50": (50, "waiting for the overlay"),
            "status-51": (51, "limited"),
            "status-other": (100, "broken"),
        }[setup]
        write_conf(
            conf_dir,
            "10-a.conflist",
            {
                "cniVersion": "1.1.0",
                "name": "a",
                "plugins": [{"type": "failer", "failOn": ["STATUS"], "code": code, "msg": msg}],
            },
        )
    pods = make_pods(conf_dir, cache_dir, plugin_dir, record_file)
    status = pods.status()
    assert not status.ready
    assert status.reason == reason
    assert words in status.message
    assert status.to_cri() == {"type": "NetworkReady", "status": False, "reason": reason, "message": status.message}


def test_unsupported_version_is_found_by_version_probe_remembered_per_binary(
    conf_dir: Path, cache_dir: Path, plugin_dir: Path, record_file: Path, tmp_path: Path
) -> None:
    counter = tmp_path / "probes"
    old_plugin(plugin_dir, ("0.3.1", "0.4.0"), counter)
    write_conf(conf_dir, "10-a.conflist", {"cniVersion": "1.0.0", "name": "a", "plugins": [{"type": "oldie"}]})
    pods = make_pods(conf_dir, cache_dir, plugin_dir, record_file, loopback=False)

    status = pods.status()
    assert (status.ready, status.reason) == (False, "PluginVersionUnsupported")
    assert 'cniVersion "1.0.0"' in status.message and "supports only 0.3.1, 0.4.0" in status.message
    assert pods.status().reason == "PluginVersionUnsupported"
    assert counter.read_text().count("probe") == 1  # remembered

    write_conf(conf_dir, "10-a.conflist", {"cniVersion": "0.4.0", "name": "a", "plugins": [{"type": "oldie"}]})
    assert pods.status().ready  # the conf dir change is noticed without a restart
    st = (plugin_dir / "oldie").stat()
    os.utime(plugin_dir / "oldie", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert pods.status().ready
    assert counter.read_text().count("probe") == 2  # the binary changed: asked again


def test_dropping_a_conflist_in_makes_the_same_manager_ready(
    conf_dir: Path, cache_dir: Path, plugin_dir: Path, record_file: Path
) -> None:
    pods = make_pods(conf_dir, cache_dir, plugin_dir, record_file)
    assert pods.status().reason == "NoNetworkConfig"
    staged = conf_dir / ".staging"
    staged.write_text(json.dumps({"cniVersion": "1.0.0", "name": "a", "plugins": [{"type": "recorder"}]}))
    os.replace(staged, conf_dir / "10-a.conflist")  # written as tools write files
    status = pods.status()
    assert status.ready and status.default_network == "a"
    (conf_dir / "10-a.conflist").unlink()
    assert pods.status().reason == "NoNetworkConfig"


def test_gc_removes_everything_of_dead_pods_and_keeps_live_ones(
    conf_dir: Path, cache_dir: Path, plugin_dir: Path, record_file: Path, fake_netns: str
) -> None:
    two_networks(conf_dir)
    pods = make_pods(conf_dir, cache_dir, plugin_dir, record_file, max_networks=2)
    pods.run_pod(PodSpec(name="alive"), netns=fake_netns, container_id="live1")
    pods.run_pod(PodSpec(name="dead"), netns=fake_netns, container_id="dead1")
    (conf_dir / "20-b.conflist").unlink()  # netb's conf is gone: its cached config must do

    report = pods.gc(["live1"])

    assert sorted(report.removed) == [
        ("cni-loopback", "dead1", "lo"),
        ("neta", "dead1", "eth0"),
        ("netb", "dead1", "eth1"),
    ]
    assert sorted(report.kept) == [
        ("cni-loopback", "live1", "lo"),
        ("neta", "live1", "eth0"),
        ("netb", "live1", "eth1"),
    ]
    assert report.pods_removed == ("dead1",)
    assert report.plugin_gc == ("netb",)  # the only 1.1.0 network, known from the cache alone
    gc_calls = [json.loads(str(c["stdin"])) for c in read_calls(record_file) if c["command"] == "GC"]
    assert [c["marker"] for c in gc_calls] == ["b-v1"]
    assert gc_calls[0]["cni.dev/valid-attachments"] == [{"containerID": "live1", "ifname": "eth1"}]
    dels = [json.loads(str(c["stdin"])).get("marker") for c in read_calls(record_file) if c["command"] == "DEL"]
    assert "b-v1" in dels
    assert {r.container_id for r in pods.attachments()} == {"live1"}
    assert [s.container_id for s in pods.sandboxes()] == ["live1"]


def test_gc_collects_failures_and_keeps_what_it_could_not_remove(
    conf_dir: Path, cache_dir: Path, plugin_dir: Path, record_file: Path, fake_netns: str
) -> None:
    write_conf(
        conf_dir,
        "10-a.conflist",
        {
            "cniVersion": "1.0.0",
            "name": "neta",
            "plugins": [{"type": "recorder"}, {"type": "failer", "failOn": ["DEL"], "msg": "stuck"}],
        },
    )
    pods = make_pods(conf_dir, cache_dir, plugin_dir, record_file)
    pods.run_pod(PodSpec(name="dead"), netns=fake_netns, container_id="dead1")
    with pytest.raises(MultiError, match="stuck") as info:
        pods.gc([])
    report = info.value.report
    assert report.removed == (("cni-loopback", "dead1", "lo"),)  # type: ignore[attr-defined]
    assert report.pods_removed == ()  # type: ignore[attr-defined]
    assert [(r.network, r.ifname) for r in pods.attachments()] == [("neta", "eth0")]
    assert [s.container_id for s in pods.sandboxes()] == ["dead1"]  # kept for the next GC


def test_gc_keeps_recorded_pods_whose_owner_runs_unless_told_to_trust_the_list_alone(
    conf_dir: Path, cache_dir: Path, plugin_dir: Path, record_file: Path, fake_netns: str
) -> None:
    two_networks(conf_dir)
    pods = make_pods(conf_dir, cache_dir, plugin_dir, record_file)
    pods.run_pod(PodSpec(name="mine"), netns=fake_netns, container_id="owned1", owner_pid=os.getpid())
    assert pods.live_pods() == {"owned1"}
    assert pods.gc([]).removed == ()  # its owner (this process) runs
    report = pods.gc([], judge_records=False)
    assert sorted(report.removed) == [("cni-loopback", "owned1", "lo"), ("neta", "owned1", "eth0")]
    assert pods.sandboxes() == []


def test_gc_waits_for_pod_operations_in_flight(
    conf_dir: Path, cache_dir: Path, plugin_dir: Path, record_file: Path, fake_netns: str
) -> None:
    two_networks(conf_dir)
    pods = make_pods(conf_dir, cache_dir, plugin_dir, record_file)
    pods.run_pod(PodSpec(name="dead"), netns=fake_netns, container_id="dead1")
    store = CacheStore(str(cache_dir))
    in_flight = store.lock_gc(exclusive=False)  # what every pod operation holds
    env = {"PATH": "/usr/bin:/bin", "RECORD_FILE": str(record_file), "CNI_PATH": str(plugin_dir)}
    argv = [sys.executable, str(CNITOOL), "--conf-dir", str(conf_dir), "--cache-dir", str(cache_dir), "pod", "gc"]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=2)  # it may not decide while a pod operation is under way
        assert [c for c in read_calls(record_file) if c["command"] == "DEL"] == []
        second = store.try_lock_gc(exclusive=False)
        assert second is not None  # pod operations do not exclude each other
        store.unlock(second)
    finally:
        store.unlock(in_flight)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "removed pod dead1" in out
    assert pods.sandboxes() == []
