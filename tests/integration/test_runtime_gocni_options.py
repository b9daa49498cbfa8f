"""The go-cni / ocicni options of the runtime layer, on real plugin
processes (the recorder test plugin): networks given in memory (go-cni's
``WithConfListBytes`` / ``WithConf``), a configured default network name
(ocicni's ``DefaultNetName``), a minimum network count for readiness
(go-cni's ``WithMinNetworkCount``), ``pciID`` and ``socketPath`` on pod
interfaces, and CHECK of a pod with no cache record (refused: see
docs/runtime.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from podkit import make_pods
from support import read_calls, write_conf

from libcni_py import CNIError, ConfigError, NetworkNotReadyError, load_network
from libcni_py.runtime import PodSpec


def rec(name: str, **extra: object) -> dict[str, object]:
    return {"cniVersion": "1.1.0", "name": name, "plugins": [{"type": "recorder", "marker": name, **extra}]}


def markers(record_file: Path, command: str = "ADD") -> list[str]:
    stdins = [json.loads(str(c["stdin"])) for c in read_calls(record_file) if c["command"] == command]
    return [s["marker"] for s in stdins if "marker" in s]  # the loopback network's recorder has none


def test_networks_from_memory_with_and_without_a_conf_dir(
    conf_dir: Path, cache_dir: Path, plugin_dir: Path, record_file: Path, fake_netns: str
) -> None:
    write_conf(conf_dir, "10-disk.conflist", rec("disk"))
    write_conf(conf_dir, "20-mem.conflist", rec("mem", address="10.1.1.1/24"))  # shadowed by the memory one
    single = {"cniVersion": "1.0.0", "name": "single", "type": "recorder", "marker": "single"}
    pods = make_pods(
        conf_dir,
        cache_dir,
        plugin_dir,
        record_file,
        max_networks=0,
        in_memory=[json.dumps(rec("mem")).encode(), json.dumps(single), load_network(str(conf_dir), "disk")],
    )
    state = pods.networks()
    assert [n.name for n in state.networks] == ["mem", "single", "disk"]
    assert any("'mem' is already given in memory" in item.reason for item in state.invalid)
    assert pods.status().ready
    sandbox, res = pods.run_pod(PodSpec(name="web"), netns=fake_netns)
    assert [(i.ifname, i.network) for i in res.interfaces] == [
        ("lo", "cni-loopback"),
        ("eth0", "mem"),
        ("eth1", "single"),
        ("eth2", "disk"),
    ]
    assert markers(record_file) == ["mem", "single", "disk"]
    pods.stop_pod(sandbox.container_id)
    # memory only (go-cni without a conf dir): ready, and pods get them
    only = make_pods(cache_dir / "no-such-dir", cache_dir, plugin_dir, record_file, in_memory=[json.dumps(rec("mem"))])
    assert only.status().ready
    sandbox, res = only.run_pod(PodSpec(name="api"), netns=fake_netns)
    assert [i.network for i in res.interfaces] == ["cni-loopback", "mem"]
    only.stop_pod(sandbox.container_id)
    with pytest.raises(ConfigError, match=r"in_memory\[0\]"):
        make_pods(conf_dir, cache_dir, plugin_dir, record_file, in_memory=[b'{"name": "x", "plugins": []}'])


def test_a_configured_default_network(
    conf_dir: Path, cache_dir: Path, plugin_dir: Path, record_file: Path, fake_netns: str
) -> None:
    write_conf(conf_dir, "10-first.conflist", rec("first"))
    pods = make_pods(conf_dir, cache_dir, plugin_dir, record_file, default_network="chosen")
    status = pods.status()
    assert not status.ready and status.reason == "DefaultNetworkNotFound"
    assert "the default network 'chosen' is not among the valid networks (first)" in status.message
    with pytest.raises(NetworkNotReadyError, match="DefaultNetworkNotFound"):
        pods.run_pod(PodSpec(name="web"), netns=fake_netns)
    write_conf(conf_dir, "20-chosen.conflist", rec("chosen"))
    assert pods.status().ready  # the conf dir is watched: no restart
    sandbox, res = pods.run_pod(PodSpec(name="web"), netns=fake_netns)
    assert [(i.ifname, i.network) for i in res.interfaces][1:] == [("eth0", "chosen")]
    assert markers(record_file) == ["chosen"]
    pods.stop_pod(sandbox.container_id)


def test_a_minimum_network_count(
    conf_dir: Path, cache_dir: Path, plugin_dir: Path, record_file: Path, fake_netns: str
) -> None:
    write_conf(conf_dir, "10-a.conflist", rec("a"))
    pods = make_pods(conf_dir, cache_dir, plugin_dir, record_file, min_networks=2)
    status = pods.status()
    assert (status.ready, status.reason) == (False, "TooFewNetworks")
    assert "1 valid network(s)" in status.message and "at least 2 needed" in status.message
    with pytest.raises(NetworkNotReadyError, match="TooFewNetworks"):
        pods.run_pod(PodSpec(name="web"), netns=fake_netns)
    assert read_calls(record_file) == []
    write_conf(conf_dir, "20-b.conflist", rec("b"))
    assert pods.status().ready


def test_pci_id_and_socket_path_on_pod_interfaces(
    conf_dir: Path, cache_dir: Path, plugin_dir: Path, record_file: Path, fake_netns: str
) -> None:
    write_conf(conf_dir, "10-dev.conflist", rec("dev", pciID="0000:03:00.1", socketPath="/run/vhost/sock0"))
    pods = make_pods(conf_dir, cache_dir, plugin_dir, record_file)
    sandbox, res = pods.run_pod(PodSpec(name="web"), netns=fake_netns)
    eth0 = res.interface("eth0")
    assert eth0 is not None and (eth0.pci_id, eth0.socket_path) == ("0000:03:00.1", "/run/vhost/sock0")
    lo = res.interface("lo")
    assert lo is not None and (lo.pci_id, lo.socket_path) == ("", "")
    summary = res.to_json()["interfaces"]["eth0"]
    assert (summary["pciID"], summary["socketPath"]) == ("0000:03:00.1", "/run/vhost/sock0")
    pods.stop_pod(sandbox.container_id)


def test_check_of_a_pod_without_records_is_refused(
    conf_dir: Path, cache_dir: Path, plugin_dir: Path, record_file: Path, fake_netns: str
) -> None:
    """ocicni, with no cached result, builds CHECK's prevResult from what it
    reads in the namespace.  libcni_py refuses: a prevResult made up from
    the namespace is not what the plugins returned (no host-side interfaces,
    no routes outside it, nothing a meta plugin added), so CHECK would judge
    the pod against a guess; and a pod with no record is not one libcni_py
    set up."""
    write_conf(conf_dir, "10-a.conflist", rec("a"))
    pods = make_pods(conf_dir, cache_dir, plugin_dir, record_file)
    with pytest.raises(CNIError) as info:
        pods.check("f" * 64)
    assert "f" * 12 in str(info.value)
    assert read_calls(record_file) == []  # no plugin was asked to check against nothing
