"""Who did it, for real (libcni_py.tools.trace.proc): the processes a plugin call
started and the writer of each file, as root, with a delegating test plugin
over Debian's host-local; a process outside the call writing in a watched
folder meanwhile; lost events; the fallback for kernels without
FAN_REPORT_DFID_NAME; and what a trace says without root.

The session runs in its own node network namespace (tests/conftest.py), so
every test here also shows that process events reach a runtime outside the
initial network namespace."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import networks
import pytest
from support import CNITOOL, DEBIAN_PLUGINS, NO_NETNS, PLUGINS, REPO, run_cnitool, write_conf

from libcni_py.core.args import cnitool_container_id
from libcni_py.edges.probes import Change
from libcni_py.tools.trace import proc as proctrace

pytestmark = pytest.mark.root

NOBODY = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")


def traced(env: dict[str, str], out: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict]:
    proc = run_cnitool("--trace", "--trace-json", str(out), *args, env=env)
    return proc, json.loads(out.read_text())


def test_a_delegating_plugin_over_debian_host_local(node: str, tmp_path: Path, conf_dir: Path, cache_dir: Path) -> None:
    assert os.readlink("/proc/self/ns/net") != os.readlink("/proc/2/ns/net")  # not the initial namespace
    data = tmp_path / "ipam"
    block = networks.subnet()
    write_conf(
        conf_dir,
        "10-deleg.conflist",
        {
            "cniVersion": "1.0.0",
            "name": "deleg",
            "plugins": [
                {
                    "type": "delegator",
                    "ipam": networks.host_local(block.cidr, data_dir=data),
                }
            ],
        },
    )
    env = {
        "NETCONFPATH": str(conf_dir),
        "CNI_PATH": f"{PLUGINS}:{DEBIAN_PLUGINS}",
        "CNI_CACHE_DIR": str(cache_dir),
    }
    netns = tmp_path / "ns"
    netns.write_text("")
    cid = cnitool_container_id(str(netns))
    proc, doc = traced(env, tmp_path / "add.json", "add", "deleg", str(netns))
    assert proc.returncode == 0, proc.stderr
    assert doc["schema"] == "libcni_py.trace/2"
    call = next(e for e in doc["events"] if e["effect"] == "exec")
    assert not [u for u in call["unprobed"] if not u.startswith("container network")], call["unprobed"]
    # the processes: the delegator ran Debian's host-local (and, here, whatever its #! line runs)
    top, *rest = call["processes"]
    assert (top["program"], top["pid"], top["depth"], top["cniCommand"]) == ("delegator", call["pid"], 0, "ADD")
    assert top["path"] == str(PLUGINS / "delegator") and top["exitStatus"] == 0
    plugins = [p for p in rest if p["plugin"]]
    assert [(p["program"], p["ppid"], p["depth"], p["cniCommand"]) for p in plugins] == [
        ("host-local", top["pid"], 1, "ADD")
    ]
    host_local = plugins[0]
    assert host_local["exe"] == str(DEBIAN_PLUGINS / "host-local") and host_local["exitStatus"] == 0
    assert host_local["cniEnv"]["CNI_CONTAINERID"] == cid and host_local["at"] > top["at"]
    # the files: the reservation by host-local, run by the delegator; the record by libcni_py
    files = {c["where"]: c for c in call["changes"]}
    reservation = files[str(data / "deleg" / block.host(2))]
    assert reservation["by"] == "host-local"
    assert reservation["writer"] == {
        "pid": host_local["pid"],
        "program": "host-local",
        "scope": "call",
        "runBy": ["delegator"],
        "action": "created",
        "exe": str(DEBIAN_PLUGINS / "host-local"),
        "cniCommand": "ADD",
        "basis": "event",
    }
    assert {c["by"] for c in call["changes"]} == {"host-local"}  # the dirs, the lock, last_reserved_ip too
    records = [c for e in doc["events"] if e["effect"] == "write-record" for c in e["changes"]]
    assert records and {(c["by"], c["writer"]["pid"]) for c in records} == {("libcni_py", top["ppid"])}
    # the timeline says the same
    assert f"        host-local ADD ({DEBIAN_PLUGINS / 'host-local'})  [pid {host_local['pid']}, exit 0]" in proc.stderr
    assert f"(written by host-local, pid {host_local['pid']}, run by delegator)" in proc.stderr

    proc, doc = traced(env, tmp_path / "del.json", "del", "deleg", str(netns))
    assert proc.returncode == 0, proc.stderr
    call = next(e for e in doc["events"] if e["effect"] == "exec")
    [freed] = [c for c in call["changes"] if c["kind"] == "file"]
    assert freed["where"] == str(data / "deleg" / block.host(2)) and freed["change"] == "removed"
    assert (freed["by"], freed["writer"]["action"], freed["writer"]["cniCommand"]) == ("host-local", "deleted", "DEL")


def test_a_file_written_by_another_process_during_the_call_is_not_the_plugins(
    node: str, tmp_path: Path, conf_dir: Path, cache_dir: Path
) -> None:
    data = tmp_path / "scribe"
    intruder = data / "intruder"
    write_conf(
        conf_dir,
        "10-scribe.conflist",
        {
            "cniVersion": "1.0.0",
            "name": "scribe",
            "plugins": [{"type": "scribe", "dataDir": str(data), "waitFor": str(intruder)}],
        },
    )
    env = {"NETCONFPATH": str(conf_dir), "CNI_PATH": str(PLUGINS), "CNI_CACHE_DIR": str(cache_dir)}
    netns = tmp_path / "ns"
    netns.write_text("")
    own = data / cnitool_container_id(str(netns))

    def intrude() -> None:
        # this test process (not started by the plugin) writes in the plugin's dataDir while it waits
        for _ in range(3000):
            if own.exists():
                break
            threading.Event().wait(0.01)
        intruder.write_text("not the plugin's")

    writer = threading.Thread(target=intrude)
    writer.start()
    proc, doc = traced(env, tmp_path / "add.json", "add", "scribe", str(netns))
    writer.join()
    assert proc.returncode == 0, proc.stderr
    call = next(e for e in doc["events"] if e["effect"] == "exec")
    changes = {c["where"]: c for c in call["changes"]}
    assert set(changes) == {str(data), str(own), str(intruder)}
    assert changes[str(own)]["by"] == "scribe" and changes[str(own)]["writer"]["scope"] == "call"
    other = changes[str(intruder)]
    assert other["by"] != "scribe" and other["writer"]["scope"] == "other" and other["writer"]["pid"] == os.getpid()
    line = next(line for line in proc.stderr.splitlines() if line.startswith(f"      + file           {intruder}"))
    assert f"pid {os.getpid()}, which this step did not start)" in line


def test_lost_events_are_reported(tmp_path: Path) -> None:
    """With the kernel's default queue (16384 events), more changes than that
    during one step overflow it: the observation says so."""
    folder = tmp_path / "many"
    folder.mkdir()
    observer = proctrace.Observer([str(folder)], processes=False, unlimited_queue=False)
    for index in range(17000):
        (folder / str(index)).touch()
    observed = observer.stop()
    assert observed.overflow
    assert "file writers: the fanotify queue overflowed, some events were lost" in observed.unprobed
    # the unlimited queue (what traces use) loses nothing
    observer = proctrace.Observer([str(folder)], processes=False)
    for index in range(17000):
        (folder / str(index)).unlink()
    observed = observer.stop()
    assert not observed.overflow and observed.unprobed == []
    gone = observed.annotate([Change(kind="file", change="removed", where=str(folder / "16999"), text="")])
    assert gone[0].details["writer"]["program"] == "libcni_py"


def test_fd_mode_names_the_writers_of_files_only(tmp_path: Path) -> None:
    """What a kernel without FAN_REPORT_DFID_NAME (before 5.9) gets."""
    folder = tmp_path / "fd"
    folder.mkdir()
    observer = proctrace.Observer([str(folder)], processes=False, file_mode="fd")
    (folder / "sub").mkdir()
    (folder / "sub" / "f").write_text("x")
    subprocess.run(["sh", "-c", f"echo y > {folder / 'g'}"], check=True)
    observed = observer.stop()
    assert any("lacks FAN_REPORT_DFID_NAME" in u for u in observed.unprobed)
    out = observed.annotate(
        [
            Change(kind="dir", change="created", where=str(folder / "sub"), text=""),
            Change(kind="file", change="created", where=str(folder / "sub" / "f"), text=""),
            Change(kind="file", change="created", where=str(folder / "g"), text=""),
        ]
    )
    writers = [c.details["writer"] for c in out]
    assert writers[0] is None  # folders: not seen in this mode
    assert writers[1]["program"] == "libcni_py" and writers[1]["action"] == "wrote"
    assert writers[2]["scope"] == "other" and writers[2]["pid"] != os.getpid()


def test_without_root_the_trace_says_what_it_could_not_see(tmp_path: Path) -> None:
    work = Path(tempfile.mkdtemp(prefix="lcpy-who-"))  # ours alone: removed by exact path below
    try:
        os.chmod(work, 0o777)
        conf = work / "net.d"
        conf.mkdir()
        write_conf(
            conf,
            "20-disk.conflist",
            {
                "cniVersion": "1.0.0",
                "name": "disk",
                "plugins": [{"type": "delegator", "ipam": {"type": "diskipam", "dataDir": str(work / "ipam")}}],
            },
        )
        (work / "ns").write_text("")
        for path in (conf, conf / "20-disk.conflist", work / "ns"):
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        env = dict(os.environ, NETCONFPATH=str(conf), CNI_PATH=str(PLUGINS), CNI_CACHE_DIR=str(work / "cache"))
        env["PATH"] = "/usr/bin:/bin"  # the plugins' #! python3, readable by nobody
        out = work / "trace.json"
        proc = subprocess.run(
            [
                *NOBODY,
                "/usr/bin/python3",
                str(CNITOOL),
                "--trace",
                "--trace-json",
                str(out),
                "add",
                "disk",
                str(work / "ns"),
            ],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            cwd=REPO,
        )
        assert proc.returncode == 0, proc.stderr
        doc = json.loads(out.read_text())
        events = {e["effect"]: e for e in doc["events"]}
        call = events["exec"]
        assert "processes" not in call
        assert proctrace.NEEDS_ROOT in call["unprobed"]
        assert proctrace.NEEDS_ROOT.startswith("processes and who made each change: need root")
        assert proc.stderr.count(f"    not probed: {proctrace.NEEDS_ROOT}") == 1
        # said once per plugin call, not on each of the runtime's own steps
        assert [e["effect"] for e in doc["events"] if proctrace.NEEDS_ROOT in e["unprobed"]] == ["exec"]
        # the changes are still there, attributed to the step that made them, without a writer
        reservation = next(c for c in call["changes"] if c["where"].endswith("10.77.0.2"))
        assert reservation["by"] == "delegator" and "writer" not in reservation
    finally:
        subprocess.run(["rm", "-rf", str(work)], check=False)


def test_tracing_off_starts_no_observer(tmp_path: Path, conf_dir: Path, cache_dir: Path) -> None:
    write_conf(
        conf_dir,
        "10-quiet.conflist",
        {"cniVersion": "1.0.0", "name": "quiet", "plugins": [{"type": "delegator", "ipam": {"type": "fakeipam"}}]},
    )
    netns = tmp_path / "ns"
    netns.write_text("")
    code = f"""
import contextlib, os, sys, threading
os.environ.update({{"NETCONFPATH": {str(conf_dir)!r}, "CNI_PATH": {str(PLUGINS)!r}, "CNI_CACHE_DIR": {str(cache_dir)!r}}})
from libcni_py.cli.main import main
with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
    rc = main(["add", "quiet", {str(netns)!r}])
print(rc, "libcni_py.tools.trace.proc" in sys.modules, "socket" in sys.modules)
"""
    # (ctypes is loaded now anyway: cnitool becomes a child subreaper, spawn.become_subreaper)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert proc.stdout.split() == ["0", "False", "False"]


def test_the_library_hook_sees_the_same_with_trio(node: str, tmp_path: Path, conf_dir: Path, cache_dir: Path) -> None:
    import trio

    from libcni_py import AsyncCNI, RuntimeConf, load_network
    from libcni_py.tools.trace.tracer import Tracer

    data = tmp_path / "ipam"
    write_conf(
        conf_dir,
        "20-disk.conflist",
        {
            "cniVersion": "1.0.0",
            "name": "disk",
            "plugins": [{"type": "delegator", "ipam": {"type": "diskipam", "dataDir": str(data)}}],
        },
    )
    tracer = Tracer(cache_dir=str(cache_dir))
    cni = AsyncCNI(plugin_path=[str(PLUGINS)], cache_dir=str(cache_dir), tracer=tracer)
    trio.run(cni.add, load_network(str(conf_dir), "disk"), RuntimeConf(container_id="lib1", netns=NO_NETNS))
    call = next(e.to_json() for e in tracer.events if e.effect == "exec")
    assert [(p["program"], p["depth"]) for p in call["processes"] if p["plugin"]] == [("delegator", 0), ("diskipam", 1)]
    reservation = next(c for c in call["changes"] if c["where"] == str(data / "disk" / "10.77.0.2"))
    assert reservation["by"] == "diskipam" and reservation["writer"]["runBy"] == ["delegator"]
    records = [c for e in tracer.events if e.effect == "write-record" for c in e.changes]
    assert records and {c.details["writer"]["program"] for c in records} == {"libcni_py"}
