"""The pod network manager with real plugin processes (the test plugins):
loopback first, eth0/eth1, Kubernetes arguments, merged results, teardown
from the cache, rollback, CHECK, the per-pod lock and the trio form."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import trio
from podkit import calls_of, make_pods, two_networks
from support import CNITOOL, REPO, read_calls, write_conf

from libcni_py import CNIError, ConfigError, NetworkNotReadyError, PluginError, RuntimeConf
from libcni_py.core import netconf
from libcni_py.edges.recordstore import CacheStore
from libcni_py.errors import ArgsError
from libcni_py.runtime import AsyncPodNetworks, NetworkSelection, PodSpec, PortMapping


def test_loopback_first_then_eth0_eth1_with_kubernetes_args(
    conf_dir: Path, cache_dir: Path, plugin_dir: Path, record_file: Path, fake_netns: str
) -> None:
    two_networks(conf_dir)
    pods = make_pods(conf_dir, cache_dir, plugin_dir, record_file, max_networks=2)
    spec = PodSpec(
        namespace="prod", name="web", uid="u-1", port_mappings=[PortMapping(host_port=8080, container_port=80)]
    )

    sandbox, res = pods.run_pod(spec, netns=fake_netns, container_id="pod1")

    assert sandbox.netns == fake_netns and not sandbox.netns_owned
    adds = calls_of(record_file, "ADD")
    assert adds[0] == ("cni-loopback", "lo")
    assert sorted(adds[1:]) == [("neta", "eth0"), ("neta", "eth0"), ("netb", "eth1")]
    first = read_calls(record_file)[0]
    assert first["env"]["CNI_ARGS"] == (  # type: ignore[index]
        "IgnoreUnknown=1;K8S_POD_NAMESPACE=prod;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=pod1;K8S_POD_UID=u-1"
    )
    # portMappings reaches only the plugin that declares it
    runtime_configs = [json.loads(str(c["stdin"])).get("runtimeConfig") for c in read_calls(record_file)]
    assert runtime_configs.count(None) == len(runtime_configs) - 1
    assert {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]} in runtime_configs
    # one merged entry per pod interface
    assert [(i.ifname, i.network) for i in res.interfaces] == [
        ("lo", "cni-loopback"),
        ("eth0", "neta"),
        ("eth1", "netb"),
    ]
    assert res.interface("eth0").addresses == ("10.1.0.5", "10.1.0.6")  # type: ignore[union-attr]
    assert res.address("eth1") == "10.2.0.5"
    assert res.interface("eth1").mac == "02:00:00:00:00:01"  # type: ignore[union-attr]
    assert sorted((r.network, r.ifname) for r in pods.attachments("pod1")) == [
        ("cni-loopback", "lo"),
        ("neta", "eth0"),
        ("netb", "eth1"),
    ]

    assert pods.check("pod1") == (("cni-loopback", "lo"), ("neta", "eth0"), ("netb", "eth1"))
    report = pods.stop_pod("pod1")
    assert sorted(report.removed) == [("cni-loopback", "lo"), ("neta", "eth0"), ("netb", "eth1")]
    assert report.forgotten and report.netns_removed == ""
    assert calls_of(record_file, "DEL")[-1] == ("cni-loopback", "lo")  # loopback last
    assert pods.attachments() == [] and pods.sandboxes() == []
    assert not list((cache_dir / "libcni_py" / "pod-locks").iterdir())


def test_default_is_one_network_and_callers_name_their_own(
    conf_dir: Path, cache_dir: Path, plugin_dir: Path, record_file: Path, fake_netns: str
) -> None:
    two_networks(conf_dir)
    pods = make_pods(conf_dir, cache_dir, plugin_dir, record_file, loopback=False)
    _, res = pods.run_pod(PodSpec(name="a"), netns=fake_netns, container_id="poda")
    assert [(i.ifname, i.network) for i in res.interfaces] == [("eth0", "neta")]  # containerd's max_conf_num = 1

    spec = PodSpec(name="b", networks=[NetworkSelection(name="netb", ifname="net1"), NetworkSelection(name="neta")])
    _, res = pods.run_pod(spec, netns=fake_netns, container_id="podb")
    assert [(i.ifname, i.network) for i in res.interfaces] == [("net1", "netb"), ("eth0", "neta")]

    spec = PodSpec(name="c", networks=[NetworkSelection(name="neta"), NetworkSelection(name="netb", ifname="eth0")])
    _, res = pods.run_pod(spec, netns=fake_netns, container_id="podc")
    assert [(i.ifname, i.network) for i in res.interfaces] == [("eth1", "neta"), ("eth0", "netb")]  # first free name
    twice = [NetworkSelection(name="neta", ifname="net5"), NetworkSelection(name="netb", ifname="net5")]
    with pytest.raises(ArgsError, match="asked for twice"):
        pods.run_pod(PodSpec(name="c2", networks=twice), netns=fake_netns)
    write_conf(conf_dir, "30-bad.conflist", {"cniVersion": "1.0.0", "name": "netc", "plugins": []})
    with pytest.raises(ConfigError, match='no network named "netc"') as info:
        pods.run_pod(PodSpec(name="d", networks=[NetworkSelection(name="netc")]), netns=fake_netns)
    assert "30-bad.conflist" in info.value.hint
    assert {s.container_id for s in pods.sandboxes()} == {"poda", "podb", "podc"}  # nothing of the refused ones


def test_teardown_uses_the_cached_config_after_the_conf_changed_or_vanished(
    conf_dir: Path, cache_dir: Path, plugin_dir: Path, record_file: Path, fake_netns: str
) -> None:
    two_networks(conf_dir)
    pods = make_pods(conf_dir, cache_dir, plugin_dir, record_file, max_networks=2)
    pods.run_pod(PodSpec(name="web"), netns=fake_netns, container_id="pod1")
    text = (conf_dir / "10-a.conflist").read_text().replace("a-v1", "a-v2")
    (conf_dir / "10-a.conflist").write_text(text)
    (conf_dir / "20-b.conflist").unlink()

    report = pods.stop_pod("pod1")

    assert sorted(report.removed) == [("cni-loopback", "lo"), ("neta", "eth0"), ("netb", "eth1")]
    markers = [json.loads(str(c["stdin"])).get("marker") for c in read_calls(record_file) if c["command"] == "DEL"]
    assert sorted(m for m in markers if m) == ["a-v1", "b-v1"]  # what they were added with
    assert pods.attachments() == []
    assert pods.stop_pod("pod1").removed == ()  # already gone: fine


def test_teardown_uses_the_current_config_when_unchanged_with_aggregated_plugins(
    conf_dir: Path, cache_dir: Path, plugin_dir: Path, record_file: Path, fake_netns: str
) -> None:
    write_conf(conf_dir, "10-a.conflist", {"cniVersion": "1.1.0", "name": "neta", "plugins": [{"type": "recorder"}]})
    (conf_dir / "neta").mkdir()
    write_conf(conf_dir / "neta", "50-ipam.conf", {"type": "fakeipam"})
    pods = make_pods(conf_dir, cache_dir, plugin_dir, record_file, loopback=False)
    pods.run_pod(PodSpec(name="web"), netns=fake_netns, container_id="pod1")
    pods.stop_pod("pod1")
    dels = [c.get("plugin", "recorder") for c in read_calls(record_file) if c["command"] == "DEL"]
    assert dels == ["fakeipam", "recorder"]  # the folder's plugin is not in the cached bytes


def test_failed_setup_is_rolled_back_completely(
    conf_dir: Path, cache_dir: Path, plugin_dir: Path, record_file: Path, fake_netns: str
) -> None:
    two_networks(conf_dir)
    write_conf(
        conf_dir,
        "20-b.conflist",
        {
            "cniVersion": "1.0.0",
            "name": "netb",
            "plugins": [{"type": "recorder"}, {"type": "failer", "failOn": ["ADD"], "msg": "no room"}],
        },
    )
    notes: list[str] = []
    pods = make_pods(conf_dir, cache_dir, plugin_dir, record_file, max_networks=2, on_notice=notes.append)
    with pytest.raises(PluginError, match="no room"):
        pods.run_pod(PodSpec(name="web"), netns=fake_netns, container_id="pod1")
    # every attachment started was deleted again, the failed one included
    assert sorted(calls_of(record_file, "DEL")) == [
        ("cni-loopback", "lo"),
        ("neta", "eth0"),
        ("neta", "eth0"),
        ("netb", "eth1"),
    ]
    assert pods.attachments() == [] and pods.sandboxes() == []


@pytest.mark.parametrize("form", ["blocking", "trio"])
def test_a_failed_setup_never_deletes_what_was_on_record_before(
    conf_dir: Path, cache_dir: Path, plugin_dir: Path, record_file: Path, fake_netns: str, form: str
) -> None:
    """Another runtime (here a plain ADD) has neta/eth0 on record for the
    sandbox ID a pod is then set up with: the setup is refused before any
    plugin runs, and its rollback deletes nothing of what was there."""
    two_networks(conf_dir)
    pods = make_pods(conf_dir, cache_dir, plugin_dir, record_file, max_networks=2)
    theirs = RuntimeConf(container_id="shared1", netns=fake_netns, ifname="eth0")
    pods.cni.add(netconf.load_network(str(conf_dir), "neta"), theirs)
    before = (cache_dir / "results" / "neta-shared1-eth0").read_bytes()
    adds = len(calls_of(record_file, "ADD"))

    with pytest.raises(ArgsError, match=r"neta \(eth0\) is on record already for container shared1; nothing was run"):
        if form == "blocking":
            pods.run_pod(PodSpec(name="web"), netns=fake_netns, container_id="shared1")
        else:
            apods = make_pods(conf_dir, cache_dir, plugin_dir, record_file, cls=AsyncPodNetworks, max_networks=2)
            trio.run(lambda: apods.run_pod(PodSpec(name="web"), netns=fake_netns, container_id="shared1"))

    assert len(calls_of(record_file, "ADD")) == adds, "a plugin ran"
    assert calls_of(record_file, "DEL") == [], "the rollback deleted an attachment it did not make"
    assert (cache_dir / "results" / "neta-shared1-eth0").read_bytes() == before
    assert pods.sandboxes() == []


def test_check_reports_the_plugin_that_failed(
    conf_dir: Path, cache_dir: Path, plugin_dir: Path, record_file: Path, fake_netns: str
) -> None:
    write_conf(
        conf_dir,
        "10-a.conflist",
        {
            "cniVersion": "1.0.0",
            "name": "neta",
            "plugins": [{"type": "recorder"}, {"type": "failer", "failOn": ["CHECK"], "msg": "eth0 is down"}],
        },
    )
    pods = make_pods(conf_dir, cache_dir, plugin_dir, record_file)
    pods.run_pod(PodSpec(name="web"), netns=fake_netns, container_id="pod1")
    with pytest.raises(PluginError, match=r'type="failer".*eth0 is down'):
        pods.check("pod1")
    with pytest.raises(CNIError, match="no cached attachments"):
        pods.check("nosuchpod")
    pods.stop_pod("pod1")


def test_no_valid_network_means_not_ready_for_setup(
    conf_dir: Path, cache_dir: Path, plugin_dir: Path, record_file: Path, fake_netns: str
) -> None:
    pods = make_pods(conf_dir, cache_dir, plugin_dir, record_file)
    with pytest.raises(NetworkNotReadyError, match="NoNetworkConfig"):
        pods.run_pod(PodSpec(name="web"), netns=fake_netns)
    assert pods.sandboxes() == [] and read_calls(record_file) == []


def barrier_plugin(directory: Path) -> None:
    """A plugin whose ADD waits until the ADDs of the other interfaces have
    started: it can only succeed when the runtime runs them concurrently."""
    script = directory / "barrier"
    script.write_text(
        textwrap.dedent(
            f"""\
            #!{sys.executable}
            import os, sys, time
            sys.path.insert(0, {str(REPO)!r})
            from libcni_py import skel
            from libcni_py.core import result

            def add(args):
                folder = args.conf["barrier"]
                open(os.path.join(folder, args.ifname), "w").close()
                deadline = time.monotonic() + 30
                while sorted(os.listdir(folder)) != sorted(args.conf["expect"]):
                    if time.monotonic() > deadline:
                        raise skel.PluginFailure(100, "the other ADDs never started: not concurrent")
                    time.sleep(0.02)
                return result.Result(cni_version="1.0.0")

            skel.run(add=add, delete=lambda args: None)
            """
        )
    )
    script.chmod(0o755)


def test_trio_form_attaches_a_pods_networks_concurrently_when_asked(
    conf_dir: Path, cache_dir: Path, plugin_dir: Path, record_file: Path, fake_netns: str, tmp_path: Path
) -> None:
    barrier_plugin(plugin_dir)
    folder = tmp_path / "barrier"
    folder.mkdir()
    for index, name in enumerate(("n1", "n2", "n3")):
        write_conf(
            conf_dir,
            f"{index}-{name}.conflist",
            {
                "cniVersion": "1.0.0",
                "name": name,
                "plugins": [{"type": "barrier", "barrier": str(folder), "expect": ["eth0", "eth1", "eth2"]}],
            },
        )
    pods = make_pods(
        conf_dir, cache_dir, plugin_dir, record_file, cls=AsyncPodNetworks, max_networks=0, concurrent=True
    )

    async def main() -> None:
        sandbox, res = await pods.run_pod(PodSpec(name="web"), netns=fake_netns)
        assert [i.ifname for i in res.interfaces] == ["lo", "eth0", "eth1", "eth2"]
        assert len(await pods.attachments(sandbox.container_id)) == 4
        assert sorted(await pods.check(sandbox.container_id)) == [
            ("cni-loopback", "lo"),
            ("n1", "eth0"),
            ("n2", "eth1"),
            ("n3", "eth2"),
        ]
        await pods.stop_pod(sandbox.container_id)
        assert await pods.attachments() == [] and await pods.sandboxes() == []

    trio.run(main)


def solo_plugin(directory: Path) -> None:
    """A plugin that fails when another call of it for the same pod is under
    way (a marker file per call, looked for by the others)."""
    script = directory / "solo"
    script.write_text(
        textwrap.dedent(
            f"""\
            #!{sys.executable}
            import os, sys, time
            sys.path.insert(0, {str(REPO)!r})
            from libcni_py import skel
            from libcni_py.core import result

            def once(args):
                folder = args.conf["folder"]
                mine = os.path.join(folder, args.ifname)
                open(mine, "w").close()
                with open(os.path.join(folder, "log"), "a") as log:
                    log.write(os.environ["CNI_COMMAND"] + " " + args.ifname + "\\n")
                time.sleep(0.2)
                others = [n for n in os.listdir(folder) if n not in ("log", args.ifname)]
                os.unlink(mine)
                if others:
                    raise skel.PluginFailure(100, "ran beside " + ", ".join(others) + " for the same container")
                return result.Result(cni_version="1.0.0")

            skel.run(add=once, delete=lambda args: once(args) and None, check=lambda args: once(args) and None)
            """
        )
    )
    script.chmod(0o755)


def test_trio_form_attaches_a_pods_networks_one_after_another_by_default(
    conf_dir: Path, cache_dir: Path, plugin_dir: Path, record_file: Path, fake_netns: str, tmp_path: Path
) -> None:
    """The spec: "the runtime must not invoke parallel operations for the
    same container, including across multiple attachments"."""
    solo_plugin(plugin_dir)
    folder = tmp_path / "solo"
    folder.mkdir()
    for index, name in enumerate(("n1", "n2", "n3")):
        write_conf(
            conf_dir,
            f"{index}-{name}.conflist",
            {"cniVersion": "1.0.0", "name": name, "plugins": [{"type": "solo", "folder": str(folder)}]},
        )
    pods = make_pods(conf_dir, cache_dir, plugin_dir, record_file, cls=AsyncPodNetworks, max_networks=0)
    assert pods.concurrent is False

    async def main() -> None:
        sandbox, res = await pods.run_pod(PodSpec(name="web"), netns=fake_netns)
        assert [i.ifname for i in res.interfaces] == ["lo", "eth0", "eth1", "eth2"]
        await pods.check(sandbox.container_id)
        await pods.stop_pod(sandbox.container_id)

    trio.run(main)
    log = (folder / "log").read_text().split("\n")[:-1]
    assert log[:3] == ["ADD eth0", "ADD eth1", "ADD eth2"]
    assert sorted(log[3:6]) == ["CHECK eth0", "CHECK eth1", "CHECK eth2"] and len(log) == 9


def test_the_pod_lock_is_held_across_processes(
    conf_dir: Path, cache_dir: Path, plugin_dir: Path, record_file: Path, fake_netns: str
) -> None:
    two_networks(conf_dir)
    pods = make_pods(conf_dir, cache_dir, plugin_dir, record_file)
    pods.run_pod(PodSpec(name="web"), netns=fake_netns, container_id="pod1")
    store = CacheStore(str(cache_dir))
    handle = store.lock_pod("pod1")
    env = {"PATH": "/usr/bin:/bin", "RECORD_FILE": str(record_file), "CNI_PATH": str(plugin_dir)}
    proc = subprocess.Popen(
        [
            sys.executable,
            str(CNITOOL),
            "--conf-dir",
            str(conf_dir),
            "--cache-dir",
            str(cache_dir),
            "pod",
            "down",
            "pod1",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=2)  # waits for our lock: it may not run meanwhile
        assert calls_of(record_file, "DEL") == []
    finally:
        store.unlock(handle)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert sorted(calls_of(record_file, "DEL")) == [("cni-loopback", "lo"), ("neta", "eth0"), ("neta", "eth0")]
    assert pods.sandboxes() == []


def sleeper_plugin(directory: Path) -> None:
    """A plugin whose ADD writes its pid to "pidFile" and sleeps; DEL returns at once."""
    script = directory / "sleeper"
    script.write_text(
        textwrap.dedent(
            f"""\
            #!{sys.executable}
            import os, sys, time
            sys.path.insert(0, {str(REPO)!r})
            from libcni_py import skel
            from libcni_py.core import result

            def add(args):
                with open(args.conf["pidFile"], "w") as fh:
                    fh.write(str(os.getpid()))
                time.sleep(3600)
                return result.Result(cni_version="1.0.0")

            skel.run(add=add, delete=lambda args: None)
            """
        )
    )
    script.chmod(0o755)


def test_a_cancelled_setup_is_rolled_back_before_the_cancellation_goes_on(
    conf_dir: Path, cache_dir: Path, plugin_dir: Path, record_file: Path, fake_netns: str, tmp_path: Path
) -> None:
    sleeper_plugin(plugin_dir)
    pid_file = tmp_path / "sleeper.pid"
    write_conf(
        conf_dir,
        "10-a.conflist",
        {
            "cniVersion": "1.0.0",
            "name": "neta",
            "plugins": [{"type": "recorder"}, {"type": "sleeper", "pidFile": str(pid_file)}],
        },
    )
    pods = make_pods(conf_dir, cache_dir, plugin_dir, record_file, cls=AsyncPodNetworks)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lambda: pods.run_pod(PodSpec(name="web"), netns=fake_netns, container_id="pod1"))
            while not pid_file.exists() or not pid_file.read_text():
                await trio.sleep(0.02)
            nursery.cancel_scope.cancel()
        # the cancellation went on only after the rollback
        assert await pods.attachments() == [] and await pods.sandboxes() == []

    trio.run(main)
    sleeper = int(pid_file.read_text())
    assert not Path(f"/proc/{sleeper}").exists() or "zombie" in Path(f"/proc/{sleeper}/status").read_text()
    assert sorted(calls_of(record_file, "DEL")) == [("cni-loopback", "lo"), ("neta", "eth0")]
