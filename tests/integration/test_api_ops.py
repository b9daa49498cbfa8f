"""ADD, CHECK, DEL, GC, STATUS, validate and VERSION through the blocking
library API, with real plugin processes (the test plugins)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import NO_NETNS, PLUGINS, live_netns, read_calls, write_conf

from libcni_py import (
    CNI,
    AsyncCNI,
    ConfigError,
    InvalidNameError,
    MultiError,
    NetnsError,
    PluginError,
    PluginNotFoundError,
    RuntimeConf,
    UnsupportedOperationError,
    load_network,
)
from libcni_py.core import result as results


def make_cni(cache_dir: Path, record_file: Path, **kw: object) -> CNI:
    env = {"PATH": "/usr/bin:/bin", "RECORD_FILE": str(record_file)}
    return CNI(plugin_path=[str(PLUGINS)], cache_dir=str(cache_dir), env=env, on_stderr=None, **kw)  # type: ignore[arg-type]


def two_recorders(version: str = "1.0.0", **extra: object) -> dict[str, object]:
    return {
        "cniVersion": version,
        "name": "recnet",
        "plugins": [
            {"type": "recorder", "address": "10.1.0.5/24"},
            {
                "type": "recorder",
                "interfaceName": "rec1",
                "address": "10.2.0.5/24",
                "capabilities": {"portMappings": True},
            },
        ],
        **extra,
    }


RT = RuntimeConf(
    container_id="ctr1",
    netns=NO_NETNS,
    ifname="eth0",
    args=[("K8S_POD_NAME", "web")],
    capability_args={"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}], "bandwidth": {}},
)


@pytest.mark.parametrize("form", ["sync", "trio"])
def test_add_into_a_namespace_that_does_not_exist_runs_no_plugin(
    conf_dir: Path, cache_dir: Path, record_file: Path, tmp_path: Path, form: str
) -> None:
    write_conf(conf_dir, "10-rec.conflist", two_recorders())
    net = load_network(str(conf_dir), "recnet")
    rt = RT.replace(netns=str(tmp_path / "no-such-netns"))
    with pytest.raises(NetnsError, match=f"network namespace {tmp_path}/no-such-netns does not exist") as caught:
        if form == "sync":
            make_cni(cache_dir, record_file).add(net, rt)
        else:
            import trio

            cni = AsyncCNI(plugin_path=[str(PLUGINS)], cache_dir=str(cache_dir), env={"RECORD_FILE": str(record_file)})
            trio.run(cni.add, net, rt)
    assert "no plugin was run" in caught.value.one_line()
    assert read_calls(record_file) == [] and not (cache_dir / "results").exists()


def test_add_check_del_cycle(conf_dir: Path, cache_dir: Path, record_file: Path) -> None:
    write_conf(conf_dir, "10-rec.conflist", two_recorders())
    net = load_network(str(conf_dir), "recnet")
    cni = make_cni(cache_dir, record_file)

    res = cni.add(net, RT)
    assert isinstance(res, results.Result)
    assert [i.name for i in res.interfaces] == ["rec0", "rec1"]
    assert [ip.address for ip in res.ips] == ["10.1.0.5/24", "10.2.0.5/24"]
    cache_file = cache_dir / "results" / "recnet-ctr1-eth0"
    record = json.loads(cache_file.read_text())
    assert record["kind"] == "cniCacheV1"
    assert "libcniPy" not in record, "a completed ADD leaves Go's exact record"
    assert record["netns"] == NO_NETNS
    assert record["cniArgs"] == [["K8S_POD_NAME", "web"]]
    assert oct(cache_file.stat().st_mode & 0o777) == "0o600"
    assert oct((cache_dir / "results").stat().st_mode & 0o777) == "0o700"

    cni.check(net, RT)
    cni.delete(net, RT)
    assert not cache_file.exists()

    calls = read_calls(record_file)
    assert [c["command"] for c in calls] == ["ADD", "ADD", "CHECK", "CHECK", "DEL", "DEL"]
    stdins = [json.loads(str(c["stdin"])) for c in calls]
    # ADD: the second plugin gets the first one's result; the first gets none
    assert "prevResult" not in stdins[0]
    assert [i["name"] for i in stdins[1]["prevResult"]["interfaces"]] == ["rec0"]
    # only the plugin declaring portMappings gets it, and never bandwidth
    assert "runtimeConfig" not in stdins[0]
    assert stdins[1]["runtimeConfig"] == {"portMappings": RT.capability_args["portMappings"]}
    # CHECK and DEL get the cached final result; DEL runs in reverse order
    assert [i["name"] for i in stdins[2]["prevResult"]["interfaces"]] == ["rec0", "rec1"]
    assert stdins[4]["interfaceName"] == "rec1" and "interfaceName" not in stdins[5]
    env = calls[0]["env"]
    assert isinstance(env, dict)
    assert env["CNI_COMMAND"] == "ADD" and env["CNI_CONTAINERID"] == "ctr1"
    assert env["CNI_ARGS"] == "K8S_POD_NAME=web" and env["CNI_IFNAME"] == "eth0"
    assert env["CNI_PATH"] == str(PLUGINS) and env["PATH"] == "/usr/bin:/bin"


def test_add_failure_keeps_a_record_that_del_removes(conf_dir: Path, cache_dir: Path, record_file: Path) -> None:
    doc = two_recorders()
    doc["plugins"].append({"type": "failer", "failOn": ["ADD"], "code": 123, "msg": "nope", "details": "because"})  # type: ignore[attr-defined]
    write_conf(conf_dir, "10-rec.conflist", doc)
    net = load_network(str(conf_dir), "recnet")
    cni = make_cni(cache_dir, record_file)
    with pytest.raises(PluginError) as info:
        cni.add(net, RT)
    assert info.value.code == 123
    assert info.value.plugin_type == "failer"
    assert "nope" in str(info.value) and "because" in str(info.value)
    record = json.loads((cache_dir / "results" / "recnet-ctr1-eth0").read_text())
    assert record["libcniPy"] == {"state": "failed", "done": 2, "plugins": 3}
    assert [i["name"] for i in record["result"]["interfaces"]] == ["rec0", "rec1"]
    with pytest.raises(Exception, match="did not complete"):
        cni.check(net, RT)
    # the failer fails ADD only: DEL goes through, with the partial result
    cni.delete(net, RT)
    assert not (cache_dir / "results" / "recnet-ctr1-eth0").exists()
    dels = [json.loads(str(c["stdin"])) for c in read_calls(record_file) if c["command"] == "DEL"]
    assert len(dels) == 2
    assert [i["name"] for i in dels[0]["prevResult"]["interfaces"]] == ["rec0", "rec1"]


def test_failing_del_keeps_the_record(conf_dir: Path, cache_dir: Path, record_file: Path) -> None:
    doc = two_recorders()
    doc["plugins"].append({"type": "failer", "failOn": ["DEL"], "code": 11, "msg": "busy"})  # type: ignore[attr-defined]
    write_conf(conf_dir, "10-rec.conflist", doc)
    net = load_network(str(conf_dir), "recnet")
    cni = make_cni(cache_dir, record_file)
    cni.add(net, RT)
    with pytest.raises(PluginError) as info:
        cni.delete(net, RT)
    assert info.value.retryable
    assert (cache_dir / "results" / "recnet-ctr1-eth0").exists()


def test_check_needs_0_4_0_and_honours_disable_check(conf_dir: Path, cache_dir: Path, record_file: Path) -> None:
    write_conf(conf_dir, "10-old.conflist", two_recorders("0.3.1"))
    cni = make_cni(cache_dir, record_file)
    old = load_network(str(conf_dir), "recnet")
    with pytest.raises(UnsupportedOperationError, match="does not support the CHECK command"):
        cni.check(old, RT)
    write_conf(conf_dir, "10-old.conflist", two_recorders("1.0.0", disableCheck="true"))
    off = load_network(str(conf_dir), "recnet")
    cni.check(off, RT)  # no cached result, yet fine: CHECK is disabled
    assert read_calls(record_file) == []


def test_check_without_cached_result_is_a_clear_error(conf_dir: Path, cache_dir: Path, record_file: Path) -> None:
    write_conf(conf_dir, "10-rec.conflist", two_recorders())
    cni = make_cni(cache_dir, record_file)
    with pytest.raises(Exception, match="nothing to check"):
        cni.check(load_network(str(conf_dir), "recnet"), RT)
    assert read_calls(record_file) == [], "no plugin ran"


def test_names_are_validated_before_anything_runs(conf_dir: Path, cache_dir: Path, record_file: Path) -> None:
    write_conf(conf_dir, "10-rec.conflist", two_recorders())
    net = load_network(str(conf_dir), "recnet")
    cni = make_cni(cache_dir, record_file)
    for bad in (RT.replace(container_id="../../etc"), RT.replace(ifname="eth0/../x"), RT.replace(ifname="")):
        for op in (cni.add, cni.check, cni.delete):
            with pytest.raises(InvalidNameError):
                op(net, bad)
    assert read_calls(record_file) == []
    assert not (cache_dir / "results").exists()


def test_missing_plugin_is_found_before_any_plugin_runs(conf_dir: Path, cache_dir: Path, record_file: Path) -> None:
    doc = two_recorders()
    doc["plugins"].append({"type": "no-such-plugin"})  # type: ignore[attr-defined]
    write_conf(conf_dir, "10-rec.conflist", doc)
    cni = make_cni(cache_dir, record_file)
    with pytest.raises(PluginNotFoundError) as info:
        cni.add(load_network(str(conf_dir), "recnet"), RT)
    assert "no-such-plugin" in str(info.value) and str(PLUGINS) in str(info.value)
    assert read_calls(record_file) == []


def test_del_with_damaged_cache_goes_on_and_says_so(conf_dir: Path, cache_dir: Path, record_file: Path) -> None:
    write_conf(conf_dir, "10-rec.conflist", two_recorders())
    net = load_network(str(conf_dir), "recnet")
    notes: list[str] = []
    cni = make_cni(cache_dir, record_file, on_notice=notes.append)
    cni.add(net, RT)
    cache_file = cache_dir / "results" / "recnet-ctr1-eth0"
    cache_file.write_bytes(b"")  # what a crash during Go's in-place write leaves
    cni.delete(net, RT)
    assert not cache_file.exists()
    assert any("empty" in n for n in notes), notes
    dels = [json.loads(str(c["stdin"])) for c in read_calls(record_file) if c["command"] == "DEL"]
    assert all("prevResult" not in d for d in dels)


def test_gc_deletes_only_stale_attachments(conf_dir: Path, cache_dir: Path, record_file: Path, tmp_path: Path) -> None:
    write_conf(conf_dir, "10-rec.conflist", two_recorders("1.1.0"))
    net = load_network(str(conf_dir), "recnet")
    cni = make_cni(cache_dir, record_file)
    for cid in ("live1", "dead1", "dead2"):
        cni.add(net, RT.replace(container_id=cid, netns=str(live_netns(tmp_path / cid))))
    report = cni.gc(net, [("live1", "eth0")], force=True)  # all three namespaces live: Go's GC
    assert sorted(report.removed) == [("dead1", "eth0"), ("dead2", "eth0")]
    assert report.kept == (("live1", "eth0"),)
    assert report.plugin_gc
    assert sorted(p.name for p in (cache_dir / "results").iterdir()) == ["recnet-live1-eth0"]
    calls = read_calls(record_file)
    dels = [c for c in calls if c["command"] == "DEL"]
    assert {c["env"]["CNI_CONTAINERID"] for c in dels} == {"dead1", "dead2"}  # type: ignore[index]
    assert {c["env"]["CNI_NETNS"] for c in dels} == {str(tmp_path / "dead1"), str(tmp_path / "dead2")}  # type: ignore[index]
    gcs = [c for c in calls if c["command"] == "GC"]
    assert len(gcs) == 2
    gc_stdin = json.loads(str(gcs[0]["stdin"]))
    assert gc_stdin["cni.dev/valid-attachments"] == [{"containerID": "live1", "ifname": "eth0"}]
    assert gc_stdin["cni.dev/attachments"] == gc_stdin["cni.dev/valid-attachments"]
    assert gcs[0]["env"]["CNI_CONTAINERID"] == "" and gcs[0]["env"]["CNI_NETNS"] == ""  # type: ignore[index]


def test_gc_below_1_1_0_sends_no_plugin_gc_and_disable_gc_skips(
    conf_dir: Path, cache_dir: Path, record_file: Path
) -> None:
    write_conf(conf_dir, "10-rec.conflist", two_recorders("1.0.0"))
    net = load_network(str(conf_dir), "recnet")
    cni = make_cni(cache_dir, record_file)
    cni.add(net, RT)
    report = cni.gc(net, [])
    assert report.removed == (("ctr1", "eth0"),) and not report.plugin_gc
    assert "GC" not in [c["command"] for c in read_calls(record_file)]
    write_conf(conf_dir, "10-rec.conflist", two_recorders("1.1.0", disableGC=True))
    net2 = load_network(str(conf_dir), "recnet")
    cni.add(net2, RT)
    assert cni.gc(net2, []).skipped
    assert (cache_dir / "results" / "recnet-ctr1-eth0").exists()


def test_gc_collects_failures(conf_dir: Path, cache_dir: Path, record_file: Path) -> None:
    doc = two_recorders("1.1.0")
    doc["plugins"].append({"type": "failer", "failOn": ["DEL", "GC"], "msg": "stuck"})  # type: ignore[attr-defined]
    write_conf(conf_dir, "10-rec.conflist", doc)
    net = load_network(str(conf_dir), "recnet")
    cni = make_cni(cache_dir, record_file)
    cni.add(net, RT)
    with pytest.raises(MultiError) as info:
        cni.gc(net, [])
    assert len(info.value.errors) == 2  # the stale DEL and the plugin GC
    assert "stuck" in str(info.value)


def test_status(conf_dir: Path, cache_dir: Path, record_file: Path) -> None:
    write_conf(conf_dir, "10-rec.conflist", two_recorders("1.1.0"))
    cni = make_cni(cache_dir, record_file)
    cni.status(load_network(str(conf_dir), "recnet"))
    assert [c["command"] for c in read_calls(record_file)] == ["STATUS", "STATUS"]
    write_conf(
        conf_dir,
        "20-bad.conflist",
        {
            "cniVersion": "1.1.0",
            "name": "sick",
            "plugins": [{"type": "failer", "code": 50, "msg": "no network yet"}, {"type": "recorder"}],
        },
    )
    with pytest.raises(PluginError) as info:
        cni.status(load_network(str(conf_dir), "sick"))
    assert info.value.code == 50 and info.value.not_ready
    # below 1.1.0 there is nothing to ask
    write_conf(conf_dir, "30-old.conflist", two_recorders("1.0.0") | {"name": "old"})
    before = len(read_calls(record_file))
    cni.status(load_network(str(conf_dir), "old"))
    assert len(read_calls(record_file)) == before


def test_validate_and_version_info(conf_dir: Path, cache_dir: Path, record_file: Path) -> None:
    cni = make_cni(cache_dir, record_file)
    info = cni.version_info("recorder")
    assert info.supports("1.1.0") and info.supports("0.1.0")
    write_conf(conf_dir, "10-rec.conflist", two_recorders())
    assert cni.validate(load_network(str(conf_dir), "recnet")) == ("portMappings",)
    doc = two_recorders()
    doc["plugins"] += [{"type": "missing-one"}, {"type": "missing-two"}]  # type: ignore[operator]
    write_conf(conf_dir, "10-rec.conflist", doc)
    with pytest.raises(MultiError) as multi:
        cni.validate(load_network(str(conf_dir), "recnet"))
    assert len(multi.value.errors) == 2
    assert "missing-one" in str(multi.value) and "missing-two" in str(multi.value)


def test_single_conf_is_up_converted(conf_dir: Path, cache_dir: Path, record_file: Path) -> None:
    write_conf(conf_dir, "10-single.conf", {"cniVersion": "0.4.0", "name": "solo", "type": "recorder", "z": 1, "a": 2})
    net = load_network(str(conf_dir), "solo")
    assert (
        net.config_bytes
        == b'{"cniVersion":"0.4.0","name":"solo","plugins":[{"a":2,"cniVersion":"0.4.0","name":"solo","type":"recorder","z":1}]}'
    )
    cni = make_cni(cache_dir, record_file)
    res = cni.add(net, RT)
    assert res.cni_version == "0.4.0"
    assert [ip.version for ip in res.ips] == ["4"]  # type: ignore[union-attr]


def test_delegation_through_cni_path(conf_dir: Path, cache_dir: Path, record_file: Path) -> None:
    write_conf(
        conf_dir,
        "10-del.conflist",
        {
            "cniVersion": "1.0.0",
            "name": "delnet",
            "plugins": [
                {
                    "type": "delegator",
                    "ipam": {"type": "fakeipam", "addresses": [{"address": "10.7.0.9/16", "gateway": "10.7.0.1"}]},
                }
            ],
        },
    )
    cni = make_cni(cache_dir, record_file)
    net = load_network(str(conf_dir), "delnet")
    res = cni.add(net, RT)
    assert isinstance(res, results.Result)
    assert res.ips[0].address == "10.7.0.9/16" and res.ips[0].gateway == "10.7.0.1"
    assert res.interfaces[0].name == "eth0"
    cni.delete(net, RT)
    ipam_calls = [c["command"] for c in read_calls(record_file) if c.get("plugin") == "fakeipam"]
    assert ipam_calls == ["ADD", "DEL"]


def test_cached_views(conf_dir: Path, cache_dir: Path, record_file: Path) -> None:
    write_conf(conf_dir, "10-rec.conflist", two_recorders())
    net = load_network(str(conf_dir), "recnet")
    cni = make_cni(cache_dir, record_file)
    assert cni.cached_result(net, RT) is None
    cni.add(net, RT)
    cni.add(net, RT.replace(container_id="ctr2", ifname="net1"))
    cached = cni.cached_result(net, RT)
    assert cached is not None and len(cached.ips) == 2  # type: ignore[union-attr]
    record = cni.cached_record(net, RT)
    assert record is not None and record.config == net.config_bytes
    assert {(r.container_id, r.ifname) for r in cni.cached_attachments()} == {("ctr1", "eth0"), ("ctr2", "net1")}
    assert [r.ifname for r in cni.cached_attachments("ctr2")] == ["net1"]


def test_bad_conf_names_file_and_path(conf_dir: Path) -> None:
    write_conf(
        conf_dir,
        "10-flannel.conflist",
        {"cniVersion": "1.0.0", "name": "cbr0", "plugins": [{"type": "flannel"}, {"type": 7}]},
    )
    with pytest.raises(ConfigError) as info:
        load_network(str(conf_dir), "cbr0")
    assert str(info.value).endswith("10-flannel.conflist: plugins[1].type: expected a string")
