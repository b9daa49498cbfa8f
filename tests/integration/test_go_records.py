"""Cache records across Go libcni (``tests/gopeer``, on 1.1.2 and 1.3.0) and libcni_py
beyond the complete ones: Go DELs an attachment from our record of an
interrupted ADD (using the partial result it holds), our GC finds and
deletes what Go added, and our DEL and GC get past the empty file a crash
during Go's in-place write leaves (which stops 1.1.2's DEL; 1.3.0's gets past
it as well)."""

from __future__ import annotations

import json
from pathlib import Path

from support import PLUGINS, GoPeer, read_calls, run_cnitool, write_conf
from test_go_compat import CASES, ENV_EXTRA, run_tool

from libcni_py.core import record as cache
from libcni_py.core.args import cnitool_container_id


def setup(tmp_path: Path) -> tuple[Path, Path, Path, dict[str, str]]:
    conf_dir = tmp_path / "net.d"
    conf_dir.mkdir()
    write_conf(conf_dir, *CASES["list-1.0.0"])
    netns = tmp_path / "netns"
    netns.write_text("")
    record = tmp_path / "calls.jsonl"
    env = {
        "NETCONFPATH": str(conf_dir),
        "CNI_PATH": str(PLUGINS),
        "CNI_CACHE_DIR": str(tmp_path / "cache"),
        "RECORD_FILE": str(record),
    } | ENV_EXTRA
    return conf_dir, netns, record, env


def test_go_deletes_from_our_partial_record(any_gopeer: GoPeer, tmp_path: Path) -> None:
    conf_dir, netns, record_file, env = setup(tmp_path)
    cid = cnitool_container_id(str(netns))
    partial = {
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "rec0", "sandbox": str(netns)}],
        "ips": [{"address": "10.1.0.5/24", "interface": 0}],
        "dns": {},
    }
    results = tmp_path / "cache" / "results"
    results.mkdir(parents=True)
    (results / f"cmpnet-{cid}-eth0").write_bytes(
        cache.encode_record(
            container_id=cid,
            ifname="eth0",
            network="cmpnet",
            config=(conf_dir / "10-x.conflist").read_bytes(),
            netns=str(netns),
            cni_args=[],
            capability_args={},
            result=partial,
            progress=cache.Progress(state="adding", done=1, plugins=3),
        )
    )
    proc = run_tool("go", any_gopeer.path, "del", netns, env)
    assert proc.returncode == 0, proc.stderr
    dels = [json.loads(str(c["stdin"])) for c in read_calls(record_file) if c["command"] == "DEL" and "env" in c]
    assert dels and all(d["prevResult"]["ips"] == [{"address": "10.1.0.5/24", "interface": 0}] for d in dels)
    assert not list(results.iterdir())


def test_our_gc_deletes_what_go_added(any_gopeer: GoPeer, tmp_path: Path) -> None:
    _, netns, record_file, env = setup(tmp_path)
    cid = cnitool_container_id(str(netns))
    assert run_tool("go", any_gopeer.path, "add", netns, env).returncode == 0
    gc = run_cnitool("gc", "cmpnet", "--all", env=env)
    assert gc.returncode == 0, gc.stderr
    assert f"removed {cid}/eth0" in gc.stdout
    dels = [c for c in read_calls(record_file) if c["command"] == "DEL" and "env" in c]
    assert dels and {c["env"]["CNI_CONTAINERID"] for c in dels} == {cid}  # type: ignore[index]
    # the namespace is an empty file, so stale: GC found the attachment dead
    # (through the record's netns with 1.3.0, the result's sandbox with 1.1.2)
    # and runs its DEL without one, as the spec allows
    assert {c["env"]["CNI_NETNS"] for c in dels} == {""}  # type: ignore[index]
    assert not list((tmp_path / "cache" / "results").iterdir())


def test_the_empty_file_of_a_crashed_go_write(any_gopeer: GoPeer, tmp_path: Path) -> None:
    _, netns, _, env = setup(tmp_path)
    cid = cnitool_container_id(str(netns))
    record = tmp_path / "cache" / "results" / f"cmpnet-{cid}-eth0"
    for how in ("del", "gc"):
        assert run_tool("go", any_gopeer.path, "add", netns, env).returncode == 0
        record.write_bytes(b"")  # Go writes in place: a crash leaves this
        go_del = run_tool("go", any_gopeer.path, "del", netns, env)
        if any_gopeer.release == "1.3.0":
            # libcni 1.3.0 gets past it: it deletes an unreadable record first, then DELs without prevResult
            assert go_del.returncode == 0, go_del.stderr
            assert not record.exists()
            continue
        assert go_del.returncode != 0 and "unexpected end of JSON input" in go_del.stderr, "Go 1.1.2 is stuck on it"
        proc = (
            run_cnitool("del", "cmpnet", str(netns), env=env)
            if how == "del"
            else run_cnitool("gc", "cmpnet", "--all", "--force", env=env)  # its namespace cannot be read from it
        )
        assert proc.returncode == 0, proc.stderr
        assert "is empty" in proc.stderr
        assert not record.exists()


def test_go_deletes_from_our_unfinished_del_record(gopeer: Path, tmp_path: Path) -> None:
    """Our DEL with a plugin missing keeps the record, marked "deleting"; Go
    ignores the marker and DELs the whole chain from it, with its prevResult."""
    _, netns, record_file, env = setup(tmp_path)
    plugins = tmp_path / "bin"
    plugins.mkdir()
    for name in ("recorder", "delegator", "fakeipam", "_common.py"):
        (plugins / name).symlink_to(PLUGINS / name)
    env["CNI_PATH"] = str(plugins)
    cid = cnitool_container_id(str(netns))
    record = tmp_path / "cache" / "results" / f"cmpnet-{cid}-eth0"
    assert run_cnitool("add", "cmpnet", str(netns), env=env).returncode == 0
    (plugins / "delegator").unlink()
    assert run_cnitool("del", "cmpnet", str(netns), env=env).returncode == 4
    marker = json.loads(record.read_text())["libcniPy"]
    assert marker["state"] == "deleting" and marker["remaining"] == [{"index": 1, "type": "delegator"}]
    before = len([c for c in read_calls(record_file) if c["command"] == "DEL"])
    (plugins / "delegator").symlink_to(PLUGINS / "delegator")

    proc = run_tool("go", gopeer, "del", netns, env)

    assert proc.returncode == 0, proc.stderr
    dels = [json.loads(str(c["stdin"])) for c in read_calls(record_file) if c["command"] == "DEL"][before:]
    chain = [d for d in dels if d["type"] in ("recorder", "delegator")]
    assert [d["type"] for d in chain] == ["recorder", "delegator", "recorder"]  # the whole chain, last first
    assert all("prevResult" in d for d in chain)
    assert not record.exists()
