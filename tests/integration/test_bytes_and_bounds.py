"""Bytes and bounds (issue 12): every numeric option is bounded before anything
runs, names and paths that are not UTF-8 are refused before an ADD runs (and
passed byte for byte by DEL), the record reader reads every record the
writer writes, file names that are not UTF-8 never crash the output, and
DEL and GC go on when no lock can be taken."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from support import NO_NETNS, PLUGINS, live_netns, live_netns_path, read_calls, run_cnitool, write_conf

from libcni_py import CNI, AsyncCNI, RuntimeConf, load_network
from libcni_py.api import MAX_TIMEOUT
from libcni_py.core.plugin_call import MAX_STDOUT
from libcni_py.core.record import AttachmentKey
from libcni_py.core.reports import GCReport
from libcni_py.edges.recordstore import MAX_RECORD_BYTES, CacheStore
from libcni_py.errors import ArgsError, CacheError, InvalidNameError

NETWORK = "bbnet"


@pytest.fixture
def env(conf_dir: Path, cache_dir: Path, record_file: Path) -> dict[str, str]:
    write_conf(
        conf_dir,
        "10-bb.conflist",
        {"cniVersion": "1.0.0", "name": NETWORK, "plugins": [{"type": "recorder", "record": str(record_file)}]},
    )
    return {"NETCONFPATH": str(conf_dir), "CNI_PATH": str(PLUGINS), "CNI_CACHE_DIR": str(cache_dir)}


@pytest.fixture
def netns(tmp_path: Path) -> Path:
    # alive: an empty file would be a stale namespace, and DEL would run without it
    return live_netns(tmp_path / "ns")


def one_error_line(proc: object) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.startswith("cnitool")]  # type: ignore[attr-defined]
    assert lines, proc.stderr  # type: ignore[attr-defined]
    return lines[0]


# --------------------------------------------------------------------------
# numeric options


@pytest.mark.parametrize("value", ["2147484", "86401", "inf", "-inf", "nan", "-1", "1e400", "", "٣", "0x10", "5s"])
def test_timeout_out_of_bounds_is_a_usage_error_before_anything_runs(
    value: str, env: dict[str, str], netns: Path, cache_dir: Path, record_file: Path
) -> None:
    proc = run_cnitool("--timeout", value, "add", NETWORK, str(netns), env=env)
    assert proc.returncode == 2, proc.stderr
    assert "--timeout:" in one_error_line(proc) and "from 0 to 86400" in proc.stderr
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr
    assert read_calls(record_file) == [], "no plugin ran"
    assert not any(cache_dir.iterdir()), "no record was written"


def test_timeout_at_the_bounds_is_accepted(env: dict[str, str], netns: Path, record_file: Path) -> None:
    for index, value in enumerate(("86400", "0", "0.5")):
        proc = run_cnitool("--timeout", value, "add", NETWORK, str(netns), "--container-id", f"t{index}", env=env)
        assert proc.returncode == 0, proc.stderr
    assert len(read_calls(record_file)) == 3


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["ls", "--no-probe", "--max-conf-num", "99999999999999999999999"], "--max-conf-num"),
        (["ls", "--no-probe", "--max-conf-num", "-1"], "--max-conf-num"),
        (["ls", "--no-probe", "--max-conf-num", "1001"], "--max-conf-num"),
        (["pod", "ls", "--max-networks", "²"], "--max-networks"),
        (["ready", "--max-networks", "1" * 5000], "--max-networks"),
    ],
)
def test_integer_options_are_bounded(argv: list[str], option: str, env: dict[str, str]) -> None:
    proc = run_cnitool(*argv, env=env)
    assert proc.returncode == 2, proc.stderr
    assert f"{option}:" in one_error_line(proc) and "internal error" not in proc.stderr


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--port", "99999999999999999999999:80"], "ports must be numbers from 0 to 65535"),
        (["--port", "٨٠:80"], "ports must be numbers from 0 to 65535"),
        (["--port", "8080:65536"], "container port 65536 is not between 0 and 65535"),
        (["--bandwidth", "9" * 5000], "is too large"),
        (["--bandwidth", "10E:100E"], "is too large"),
    ],
)
def test_pod_port_and_bandwidth_values_are_bounded(
    argv: list[str], expected: str, env: dict[str, str], cache_dir: Path, record_file: Path
) -> None:
    proc = run_cnitool("pod", "up", "--name", "web", "--netns", "/nonexistent", *argv, env=env)
    assert proc.returncode == 3, proc.stderr
    assert expected in one_error_line(proc) and "internal error" not in proc.stderr
    assert read_calls(record_file) == []


@pytest.mark.parametrize("timeout", [float("inf"), float("nan"), 0, -1, MAX_TIMEOUT + 1, 2147484, True, "300"])
def test_the_library_refuses_bad_timeouts_at_construction(timeout: object, cache_dir: Path) -> None:
    from libcni_py.runtime import PodNetworks

    for cls in (CNI, AsyncCNI):
        with pytest.raises(ValueError, match="timeout"):
            cls(cache_dir=str(cache_dir), timeout=timeout)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout"):
        PodNetworks(cache_dir=str(cache_dir), timeout=timeout)  # type: ignore[arg-type]
    assert CNI(cache_dir=str(cache_dir), timeout=MAX_TIMEOUT).timeout == MAX_TIMEOUT
    assert CNI(cache_dir=str(cache_dir), timeout=None).timeout is None


# --------------------------------------------------------------------------
# names and paths that are not UTF-8


def test_a_netns_path_that_is_not_utf8_is_refused_before_add_runs(
    env: dict[str, str], tmp_path: Path, cache_dir: Path, record_file: Path
) -> None:
    raw = os.fsencode(tmp_path) + b"/ns\xff"
    Path(os.fsdecode(raw)).write_text("")
    proc = run_cnitool("add", NETWORK, os.fsdecode(raw), env=env)
    assert proc.returncode == 3, proc.stderr
    line = one_error_line(proc)
    assert "netns: the path" in line and "ns\\xff' is not valid UTF-8" in line, line
    assert read_calls(record_file) == [] and not any(cache_dir.iterdir())


@pytest.mark.parametrize(
    ("flag", "value", "expected"),
    [
        ("--ifname", "e\udcff", "interface name 'e\\udcff': is not valid UTF-8"),
        ("--args", "K8S_POD_NAME=w\udcfeb", "CNI_ARGS: pair 1 'K8S_POD_NAME=w\\xfeb' is not valid UTF-8"),
        ("--capability-args", '{"portMappings":[{"hostIP":"\udcff"}]}', "capability args: a string is not valid"),
    ],
)
def test_names_and_arguments_that_are_not_utf8_are_refused(
    flag: str, value: str, expected: str, env: dict[str, str], netns: Path, cache_dir: Path, record_file: Path
) -> None:
    proc = run_cnitool("add", NETWORK, str(netns), flag, value, env=env)
    assert proc.returncode == 3, proc.stderr
    assert expected in one_error_line(proc)
    assert read_calls(record_file) == [] and not any(cache_dir.iterdir())


def test_the_library_refuses_them_too(conf_dir: Path, cache_dir: Path, env: dict[str, str], record_file: Path) -> None:
    net = load_network(str(conf_dir), NETWORK)
    cni = CNI(plugin_path=[str(PLUGINS)], cache_dir=str(cache_dir), on_stderr=None)
    bad = [
        (RuntimeConf(container_id="c1", netns="/run/netns/x\udcff"), ArgsError),
        (RuntimeConf(container_id="c1", netns="/run/netns/x\ud800"), ArgsError),  # a lone surrogate
        (RuntimeConf(container_id="c1", netns="/n", ifname="e\ud800"), InvalidNameError),
        (RuntimeConf(container_id="c1", netns="/n", args=[("A", "b\udcff")]), ArgsError),
        (RuntimeConf(container_id="c1", netns="/n", capability_args={"k\udcff": 1}), ArgsError),
    ]
    for rt, error in bad:
        with pytest.raises(error, match="not valid UTF-8"):
            cni.add(net, rt)
    assert read_calls(record_file) == [] and not any(cache_dir.iterdir())


def test_del_passes_a_netns_path_that_is_not_utf8_byte_for_byte(
    env: dict[str, str], tmp_path: Path, record_file: Path
) -> None:
    # DEL records nothing, so an attachment Go added with such a path can be deleted
    raw = os.fsencode(tmp_path) + b"/ns\xff"
    os.symlink(live_netns_path(), raw)  # alive, so DEL hands it to the plugins
    proc = run_cnitool("del", NETWORK, os.fsdecode(raw), "--container-id", "c1", env=env)
    assert proc.returncode == 0, proc.stderr
    (call,) = read_calls(record_file)
    assert call["command"] == "DEL"
    assert os.fsencode(call["env"]["CNI_NETNS"]) == raw  # type: ignore[index]


# --------------------------------------------------------------------------
# the record reader reads what the writer writes


def test_a_6_mib_result_is_cached_and_read_back_by_del_and_gc(
    conf_dir: Path, cache_dir: Path, netns: Path, record_file: Path
) -> None:
    write_conf(
        conf_dir,
        "20-big.conflist",
        {
            "cniVersion": "1.0.0",
            "name": "bignet",
            "plugins": [{"type": "misbehave", "mode": "big-result", "megabytes": 6}, {"type": "recorder"}],
        },
    )
    env = {
        "NETCONFPATH": str(conf_dir),
        "CNI_PATH": str(PLUGINS),
        "CNI_CACHE_DIR": str(cache_dir),
        "RECORD_FILE": str(record_file),
    }
    add = run_cnitool("add", "bignet", str(netns), env=env)
    assert add.returncode == 0, add.stderr
    (record,) = (cache_dir / "results").iterdir()
    assert 6 * 1024 * 1024 < record.stat().st_size < MAX_RECORD_BYTES
    cache_ls = run_cnitool("cache", "ls", env=env)
    assert cache_ls.returncode == 0 and "complete" in cache_ls.stdout, cache_ls.stdout + cache_ls.stderr
    delete = run_cnitool("del", "bignet", str(netns), env=env)
    assert delete.returncode == 0, delete.stderr
    assert "note" not in delete.stderr, "the record was read, not worked around"
    dels = [json.loads(str(c["stdin"])) for c in read_calls(record_file) if c["command"] == "DEL"]
    assert len(dels[0]["prevResult"]["dns"]["search"]) == 6 * 16384
    assert not record.exists()
    # GC reads every record of the network: the same record is read there too
    assert run_cnitool("add", "bignet", str(netns), env=env).returncode == 0
    gc = run_cnitool("gc", "bignet", "--all", "--force", env=env)  # its namespace is alive
    assert gc.returncode == 0 and "removed " in gc.stdout, gc.stdout + gc.stderr
    assert "cache file" not in gc.stderr, gc.stderr
    assert not list((cache_dir / "results").iterdir())


def test_one_limit_for_the_writer_and_the_reader(cache_dir: Path) -> None:
    # the limit leaves room for the largest result a plugin may print
    assert MAX_RECORD_BYTES >= 2 * MAX_STDOUT
    store = CacheStore(str(cache_dir), durable=False)
    key = AttachmentKey(network="n", container_id="c", ifname="eth0")
    largest = b"x" * MAX_RECORD_BYTES
    store.write(key, largest)
    assert store.read(key) == largest
    with pytest.raises(CacheError, match=f"more than the {MAX_RECORD_BYTES}"):
        store.write(key, largest + b"x")
    assert store.read(key) == largest, "the record before it stays"
    assert list((cache_dir / "libcni_py" / "tmp").iterdir()) == [], "no temporary file left"


# --------------------------------------------------------------------------
# output of names that are not UTF-8


@pytest.mark.parametrize("locale_env", [{"PYTHONIOENCODING": "utf-8:strict"}, {"LC_ALL": "C.UTF-8"}])
def test_conf_file_names_that_are_not_utf8_are_printed_escaped(
    locale_env: dict[str, str], conf_dir: Path, env: dict[str, str], netns: Path
) -> None:
    doc = {"cniVersion": "1.0.0", "name": "oddnet", "plugins": [{"type": "recorder"}]}
    raw = os.fsencode(conf_dir) + b"/20-\xfe.conflist"
    Path(os.fsdecode(raw)).write_text(json.dumps(doc))
    full = {**env, **locale_env}
    for argv in (["ls", "--no-probe"], ["explain", "oddnet", str(netns)], ["validate", "oddnet"]):
        proc = run_cnitool(*argv, env=full)
        assert proc.returncode == 0, (argv, proc.stderr)
        assert "20-\\xfe.conflist" in proc.stdout, (argv, proc.stdout)
        assert "internal error" not in proc.stderr


# --------------------------------------------------------------------------
# a lock that cannot be taken at all


@pytest.mark.parametrize("driver", ["sync", "trio"])
def test_del_and_gc_go_on_when_no_lock_can_be_taken(
    driver: str, conf_dir: Path, cache_dir: Path, env: dict[str, str], record_file: Path, tmp_path: Path
) -> None:
    """``libcni_py/locks`` replaced by a symbolic link (never followed): no
    lock file can be opened.  ADD refuses before any plugin runs; DEL and GC
    run the plugins with the recorded prevResult, without the lock, say so,
    and remove the record."""
    import trio

    net = load_network(str(conf_dir), NETWORK)
    notes: list[str] = []
    settings = {
        "plugin_path": [str(PLUGINS)],
        "cache_dir": str(cache_dir),
        "on_stderr": None,
        "on_notice": notes.append,
    }
    rt = RuntimeConf(container_id="c1", netns=NO_NETNS, ifname="eth0")
    CNI(**settings).add(net, rt)  # type: ignore[arg-type]
    CNI(**settings).add(net, rt.replace(container_id="c2"))  # type: ignore[arg-type]
    locks = cache_dir / "libcni_py" / "locks"
    shutil.rmtree(locks)
    (tmp_path / "elsewhere").mkdir()
    locks.symlink_to(tmp_path / "elsewhere")

    with pytest.raises(CacheError, match="symbolic link"):
        CNI(**settings).add(net, rt.replace(container_id="c3"))  # type: ignore[arg-type]
    if driver == "sync":
        CNI(**settings).delete(net, rt)  # type: ignore[arg-type]
        report = CNI(**settings).gc(net, [])  # type: ignore[arg-type]
    else:

        async def teardown() -> GCReport:
            await AsyncCNI(**settings).delete(net, rt)  # type: ignore[arg-type]
            return await AsyncCNI(**settings).gc(net, [])  # type: ignore[arg-type]

        report = trio.run(teardown)
    assert report.removed == (("c2", "eth0"),)
    assert len([n for n in notes if "deleting without the attachment's lock" in n]) == 2, notes
    dels = [json.loads(str(c["stdin"])) for c in read_calls(record_file) if c["command"] == "DEL"]
    assert [d["prevResult"]["interfaces"][0]["name"] for d in dels] == ["rec0", "rec0"], "prevResult was read"
    assert list((cache_dir / "results").iterdir()) == []
    assert list((tmp_path / "elsewhere").iterdir()) == [], "nothing written through the link"
