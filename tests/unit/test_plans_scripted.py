"""Every operation's plan, stepped by the public scripted driver: what each
asks for, in which order, and what it makes of the answers -- no processes,
files or namespaces (issue 13)."""

from __future__ import annotations

import json

import pytest

from libcni_py.core import operations as ops
from libcni_py.core import record as cache
from libcni_py.core.effects import (
    AcquireGC,
    Exec,
    ListRecords,
    Notice,
    ProbeLinks,
    ProbeNetns,
    ReadRecord,
    Release,
    RemoveRecord,
    Resolve,
    Sweep,
    WriteRecord,
)
from libcni_py.core.inputs import Options, RuntimeConf
from libcni_py.core.netconf import parse_conflist
from libcni_py.core.plugin_call import ExecOutcome
from libcni_py.core.reports import GCReport
from libcni_py.drivers.scripted import NotScripted, ScriptedDriver, in_turn
from libcni_py.errors import (
    CODE_UNKNOWN_CONTAINER,
    ArgsError,
    CNIError,
    LeftoverError,
    LockUnavailableError,
    NetnsError,
    PluginError,
)
from libcni_py.runtime import pod
from libcni_py.runtime.effects import Batch, ForgetPod, ListAttachments, LoadPod, LockGC, LockPod, UnlockPod
from libcni_py.runtime.sandbox import PodSandbox

OPTS = Options(plugin_path=["/opt/cni/bin"], base_env={"PATH": "/bin"})
RT = RuntimeConf(container_id="c1", netns="/run/netns/blue", ifname="eth0")
OK = ExecOutcome(returncode=0, stdout=b'{"cniVersion": "1.0.0"}')


def _net(*types: str, version: str = "1.0.0", name: str = "net") -> object:
    doc = {"cniVersion": version, "name": name, "plugins": [{"type": t} for t in types]}
    return parse_conflist(json.dumps(doc).encode(), "mem")


BY_NAME: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        AcquireGC,
        Exec,
        ForgetPod,
        ListAttachments,
        ListRecords,
        LoadPod,
        ProbeLinks,
        ProbeNetns,
        ReadRecord,
        RemoveRecord,
        Sweep,
    )
}


def _found(effect: Resolve) -> tuple[str, ...]:
    return tuple(f"/opt/cni/bin/{t}" for t in effect.plugin_types)


def _script(**extra: object) -> dict[type, object]:
    script: dict[type, object] = {Resolve: _found, ProbeNetns: "alive", ReadRecord: None, Exec: OK}
    script.update({BY_NAME[k]: v for k, v in extra.items()})
    return script


def _added_record(netlist: object, rt: RuntimeConf = RT) -> bytes:
    return cache.encode_record(
        container_id=rt.container_id,
        ifname=rt.ifname,
        network=netlist.name,  # type: ignore[attr-defined]
        config=netlist.config_bytes,  # type: ignore[attr-defined]
        netns=rt.netns,
        cni_args=(),
        capability_args=None,
        result={"cniVersion": "1.0.0"},
    )


def test_add_probes_resolves_locks_records_then_runs_in_order() -> None:
    net = _net("a", "b")
    driver = ScriptedDriver(_script())
    driver.run(ops.add(net, RT, OPTS))  # type: ignore[arg-type]
    kinds = [type(e).__name__ for e in driver.asked]
    assert kinds == [
        "ProbeNetns",
        "Resolve",
        "Acquire",
        "ReadRecord",
        "WriteRecord",
        "Exec",
        "WriteRecord",
        "Exec",
        "WriteRecord",
        "Release",
    ]
    assert [(e.request.plugin_type, e.request.command) for e in driver.of(Exec)] == [("a", "ADD"), ("b", "ADD")]
    assert [e.request.env["CNI_NETNS"] for e in driver.of(Exec)] == [RT.netns, RT.netns]
    final = cache.decode_record(driver.of(WriteRecord)[-1].data, "x")
    assert final.progress is None and final.result == {"cniVersion": "1.0.0"}


@pytest.mark.parametrize("state", ["gone"])
def test_add_into_a_namespace_that_does_not_exist_runs_nothing(state: str) -> None:
    driver = ScriptedDriver(_script(ProbeNetns=state))
    with pytest.raises(NetnsError, match="network namespace /run/netns/blue does not exist"):
        driver.run(ops.add(_net("bridge"), RT, OPTS))  # type: ignore[arg-type]
    assert [type(e) for e in driver.asked] == [ProbeNetns]


@pytest.mark.parametrize("state", ["alive", "stale", "unknown"])
def test_add_goes_on_when_the_namespace_path_exists_or_cannot_be_told(state: str) -> None:
    driver = ScriptedDriver(_script(ProbeNetns=state))
    driver.run(ops.add(_net("bridge"), RT, OPTS))  # type: ignore[arg-type]
    assert len(driver.of(Exec)) == 1


def test_add_of_an_attachment_on_record_is_refused_before_any_plugin() -> None:
    net = _net("a")
    driver = ScriptedDriver(_script(ReadRecord=_added_record(net)))
    with pytest.raises(CNIError, match="exists"):
        driver.run(ops.add(net, RT, OPTS))  # type: ignore[arg-type]
    assert driver.of(Exec) == [] and driver.of(WriteRecord) == []


def test_a_failed_add_records_how_far_it_got() -> None:
    failed = ExecOutcome(returncode=1, stdout=b'{"code": 100, "msg": "no"}')
    driver = ScriptedDriver(_script(Exec=in_turn(OK, failed)))
    with pytest.raises(PluginError, match="no"):
        driver.run(ops.add(_net("a", "b", "c"), RT, OPTS))  # type: ignore[arg-type]
    last = cache.decode_record(driver.of(WriteRecord)[-1].data, "x")
    assert last.progress is not None and (last.progress.state, last.progress.done) == ("failed", 1)
    assert len(driver.of(Exec)) == 2


def test_check_without_a_record_fails_and_forgets_its_lock() -> None:
    driver = ScriptedDriver(_script())
    with pytest.raises(ArgsError, match="nothing to check") as info:
        driver.run(ops.check(_net("a"), RT, OPTS))  # type: ignore[arg-type]
    assert info.value.code == CODE_UNKNOWN_CONTAINER
    assert driver.of(Release)[-1].forget and driver.of(Exec) == []


def test_check_runs_every_plugin_with_the_cached_result() -> None:
    net = _net("a", "b")
    driver = ScriptedDriver(_script(ReadRecord=_added_record(net)))
    driver.run(ops.check(net, RT, OPTS))  # type: ignore[arg-type]
    execs = driver.of(Exec)
    assert [(e.request.plugin_type, e.request.command) for e in execs] == [("a", "CHECK"), ("b", "CHECK")]
    assert all(json.loads(e.request.stdin)["prevResult"] == {"cniVersion": "1.0.0"} for e in execs)


def test_del_runs_in_reverse_and_removes_the_record() -> None:
    net = _net("a", "b")
    driver = ScriptedDriver(_script(ReadRecord=_added_record(net), RemoveRecord=True))
    driver.run(ops.delete(net, RT, OPTS))  # type: ignore[arg-type]
    assert [(e.request.plugin_type, e.request.command) for e in driver.of(Exec)] == [("b", "DEL"), ("a", "DEL")]
    assert len(driver.of(RemoveRecord)) == 1 and driver.of(Release)[-1].forget


def test_del_of_a_gone_namespace_runs_without_one() -> None:
    net = _net("a")
    driver = ScriptedDriver(_script(ReadRecord=_added_record(net), RemoveRecord=True, ProbeNetns="gone"))
    driver.run(ops.delete(net, RT, OPTS))  # type: ignore[arg-type]
    assert driver.of(Exec)[0].request.env["CNI_NETNS"] == ""
    assert any("is gone" in n.text for n in driver.of(Notice))


def test_a_failing_del_keeps_what_remains_on_record() -> None:
    net = _net("a", "b")
    failed = ExecOutcome(returncode=1, stdout=b'{"code": 100, "msg": "stuck"}')
    driver = ScriptedDriver(_script(ReadRecord=_added_record(net), Exec=in_turn(failed, OK)))
    with pytest.raises(PluginError, match="stuck"):
        driver.run(ops.delete(net, RT, OPTS))  # type: ignore[arg-type]
    kept = cache.decode_record(driver.of(WriteRecord)[-1].data, "x")
    assert kept.progress is not None and kept.progress.remaining == ((1, "b"),)
    assert driver.of(RemoveRecord) == []


def _deleting_record(netlist: object, leftover: tuple[str, ...] = ()) -> bytes:
    """The record of an attachment whose earlier DEL did not finish; its
    result puts ``eth0`` in the pod's namespace."""
    return cache.encode_record(
        container_id=RT.container_id,
        ifname=RT.ifname,
        network=netlist.name,  # type: ignore[attr-defined]
        config=netlist.config_bytes,  # type: ignore[attr-defined]
        netns=RT.netns,
        cni_args=(),
        capability_args=None,
        result={"cniVersion": "1.0.0", "interfaces": [{"name": "eth0", "sandbox": RT.netns}], "ips": []},
        progress=cache.Progress(state=cache.DELETING, done=0, plugins=1, remaining=((0, "a"),), leftover=leftover),
    )


def test_a_retried_del_that_leaves_the_interface_behind_keeps_the_record() -> None:
    net = _net("a")
    driver = ScriptedDriver(_script(ReadRecord=_deleting_record(net), ProbeLinks=("eth0",)))
    with pytest.raises(LeftoverError, match="eth0 is still in /run/netns/blue"):
        driver.run(ops.delete(net, RT, OPTS))  # type: ignore[arg-type]
    assert [(e.path, e.names) for e in driver.of(ProbeLinks)] == [(RT.netns, ("eth0",))]
    kept = cache.decode_record(driver.of(WriteRecord)[-1].data, "x")
    assert kept.progress is not None and (kept.progress.state, kept.progress.leftover) == (cache.DELETING, ("eth0",))
    assert driver.of(RemoveRecord) == []


@pytest.mark.parametrize("present", [(), None])
def test_a_retried_del_whose_interface_is_gone_or_cannot_be_told_removes_the_record(
    present: tuple[str, ...] | None,
) -> None:
    net = _net("a")
    driver = ScriptedDriver(_script(ReadRecord=_deleting_record(net), ProbeLinks=present, RemoveRecord=True))
    driver.run(ops.delete(net, RT, OPTS))  # type: ignore[arg-type]
    assert len(driver.of(ProbeLinks)) == 1 and len(driver.of(RemoveRecord)) == 1


def test_gc_takes_the_gc_lock_before_listing_and_goes_on_without_it_when_it_cannot() -> None:
    net = _net("a")
    driver = ScriptedDriver(_script(ListRecords=[], Sweep=(0, 0)))
    driver.run(ops.gc(net, [], OPTS))  # type: ignore[arg-type]
    kinds = [type(e) for e in driver.asked]
    assert kinds.index(AcquireGC) < kinds.index(ListRecords)
    readonly = LockUnavailableError("/ro/libcni_py/gc-lock/lock", "cannot be created (read-only file system)")
    driver = ScriptedDriver(_script(AcquireGC=readonly, ListRecords=[], Sweep=(0, 0)))
    driver.run(ops.gc(net, [], OPTS))  # type: ignore[arg-type]
    assert any("collecting without the GC lock" in n.text for n in driver.of(Notice))
    assert len(driver.of(ListRecords)) == 1


def test_gc_deletes_the_dead_keeps_the_alive_and_sends_plugins_gc() -> None:
    net = _net("a", version="1.1.0")
    dead = RT.replace(container_id="dead", netns="/run/netns/dead")
    alive = RT.replace(container_id="alive", netns="/run/netns/alive")
    listing = [(f"net-{rt.container_id}-eth0", _added_record(net, rt), None) for rt in (dead, alive)]
    records = {f"net-{rt.container_id}-eth0": _added_record(net, rt) for rt in (dead, alive)}
    script = _script(
        ListRecords=listing,
        ProbeNetns=lambda e: "gone" if e.path == dead.netns else "alive",
        ReadRecord=lambda e: records[e.key.filename],
        RemoveRecord=True,
        Sweep=(0, 0),
    )
    driver = ScriptedDriver(script)
    report = driver.run(ops.gc(net, [], OPTS))  # type: ignore[arg-type]
    assert isinstance(report, GCReport)
    assert report.removed == (("dead", "eth0"),) and report.kept == (("alive", "eth0"),) and report.plugin_gc
    commands = [(e.request.command, e.request.env.get("CNI_CONTAINERID")) for e in driver.of(Exec)]
    assert commands == [("DEL", "dead"), ("GC", "")]
    assert json.loads(driver.of(Exec)[-1].request.stdin)["cni.dev/valid-attachments"] == [
        {"containerID": "alive", "ifname": "eth0"}
    ]


def test_gc_of_a_damaged_file_reads_the_attachment_from_its_name() -> None:
    net = _net("a")
    script = _script(ListRecords=[("net-xa-eth0", b"{", None)], Sweep=(0, 0))
    driver = ScriptedDriver(script)
    report = driver.run(ops.gc(net, [], OPTS))  # type: ignore[arg-type]
    assert report.kept == (("xa", "eth0"),)
    assert driver.of(Exec) == []


@pytest.mark.parametrize("force", [False, True])
def test_gc_never_acts_on_a_guess_about_a_damaged_files_name(force: bool) -> None:
    """``net-x-a-eth0`` is x-a/eth0 or x/a-eth0: both are kept, and both
    are listed as valid to the plugins (else host-local's GC would release
    the address of whichever one it really is); even ``force`` deletes
    neither."""
    net = _net("a", version="1.1.0")
    script = _script(ListRecords=[("net-x-a-eth0", b"{", None)], Sweep=(0, 0))
    driver = ScriptedDriver(script)
    report = driver.run(ops.gc(net, [], OPTS, force=force))  # type: ignore[arg-type]
    assert set(report.kept) == {("x-a", "eth0"), ("x", "a-eth0")} and report.removed == ()
    assert [e.request.command for e in driver.of(Exec)] == ["GC"]
    valid = json.loads(driver.of(Exec)[0].request.stdin)["cni.dev/valid-attachments"]
    assert {(v["containerID"], v["ifname"]) for v in valid} == {("x-a", "eth0"), ("x", "a-eth0")}
    assert any("cannot tell which attachment it is (x-a/eth0 or x/a-eth0), left alone" in n.text
               for n in driver.of(Notice))  # fmt: skip


@pytest.mark.parametrize(
    ("filename", "known", "expected"),
    [
        ("net-x-a-eth0", {"network": "net"}, ("net", "x-a", "eth0")),
        ("my-net-c1-eth0", {"network": "my-net"}, ("my-net", "c1", "eth0")),
        ("my-net-c1-veth-a", {"container_id": "c1"}, ("my-net", "c1", "veth-a")),
        ("a-b-c-d", {"network": "a-b", "container_id": "c"}, ("a-b", "c", "d")),
        ("net-c1-eth0", {"network": "other"}, None),
        ("net-c1-eth0", {"container_id": "c2"}, None),
        ("net--eth0", {"network": "net"}, None),
    ],
)
def test_one_parser_for_cache_file_names(
    filename: str, known: dict[str, str], expected: tuple[str, ...] | None
) -> None:
    key = cache.key_from_filename(filename, **known)
    assert (None if key is None else (key.network, key.container_id, key.ifname)) == expected
    if key is not None:
        assert key.filename == filename


def test_status_asks_each_plugin_only_from_1_1_0() -> None:
    old = ScriptedDriver({})
    assert old.run(ops.status(_net("a"), OPTS)) is None  # type: ignore[arg-type]
    assert old.asked == []
    new = ScriptedDriver(_script())
    new.run(ops.status(_net("a", "b", version="1.1.0"), OPTS))  # type: ignore[arg-type]
    assert [e.request.command for e in new.of(Exec)] == ["STATUS", "STATUS"]


def test_version_info_and_validate() -> None:
    answer = ExecOutcome(returncode=0, stdout=b'{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0"]}')
    driver = ScriptedDriver(_script(Exec=answer))
    info = driver.run(ops.version_info("a", OPTS))
    assert info.supports("1.0.0") and not info.supports("1.1.0")
    with pytest.raises(CNIError, match="is not valid"):
        ScriptedDriver(_script(Exec=answer)).run(ops.validate(_net("a", version="1.1.0"), OPTS))  # type: ignore[arg-type]


def test_an_effect_the_script_lacks_is_not_swallowed_by_the_plan() -> None:
    with pytest.raises(NotScripted, match="Resolve"):
        ScriptedDriver({ProbeNetns: "alive"}).run(ops.add(_net("a"), RT, OPTS))  # type: ignore[arg-type]


def _sandbox() -> PodSandbox:
    return PodSandbox(container_id="pod1", netns="/run/netns/pod1")


def test_pod_setup_locks_then_adds_loopback_before_the_others() -> None:
    from libcni_py.runtime.effects import ScriptedPodDriver

    sandbox = _sandbox()
    attachments = [
        pod.Attachment(network=pod.loopback_network(), rt=RT.replace(container_id="pod1", ifname="lo")),
        pod.Attachment(network=_net("a", name="n1"), rt=RT.replace(container_id="pod1", ifname="eth0")),  # type: ignore[arg-type]
    ]
    driver = ScriptedPodDriver(_script(ListAttachments=([], [])))
    started: list[tuple[str, str]] = []
    result = driver.run(pod.setup(sandbox, attachments, OPTS, concurrent=True, started=started))
    assert [type(e) for e in driver.asked[:2]] == [LockGC, LockPod]
    assert started == [("cni-loopback", "lo"), ("n1", "eth0")]
    assert [b.concurrent for b in driver.of(Batch)] == [False, True]
    assert [e.request.plugin_type for e in driver.of(Exec)] == ["loopback", "a"]
    assert [i.ifname for i in result.interfaces] == ["lo", "eth0"]


def test_pod_teardown_deletes_each_cached_attachment_and_stop_forgets_the_pod() -> None:
    from libcni_py.runtime.effects import ScriptedPodDriver

    net = _net("a", name="n1")
    rt = RT.replace(container_id="pod1")
    record = cache.decode_record(_added_record(net, rt), "x")

    class State:
        conf_dir = "/etc/cni/net.d"
        networks = (net,)
        defaults = (net,)
        invalid = ()

        def network(self, name: str) -> object:
            return net if name == "n1" else None

    script = _script(
        ListAttachments=([record], []),
        ReadRecord=_added_record(net, rt),
        RemoveRecord=True,
        LoadPod=_sandbox(),
        ForgetPod=True,
    )
    driver = ScriptedPodDriver(script)
    report = driver.run(pod.stop_pod("pod1", State(), None, OPTS, concurrent=False))  # type: ignore[arg-type]
    assert report.removed == (("n1", "eth0"),) and report.forgotten
    assert [e.request.command for e in driver.of(Exec)] == ["DEL"]
    assert driver.of(UnlockPod)[-1].forget and len(driver.of(ForgetPod)) == 1
    assert driver.of(LoadPod)[0].container_id == "pod1" and driver.of(ListAttachments)[0].container_id == "pod1"
