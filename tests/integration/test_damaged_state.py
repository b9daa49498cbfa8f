"""DEL and GC when the state they rely on is gone or damaged: the conf file
removed, changed or broken since ADD, cache files that are empty, truncated,
symbolic links or hold hostile names, a ``results`` directory that is a
symbolic link, temporary and lock files left by interrupted writers.  Each
time the operation succeeds, cleans up, and says what it found."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from support import PLUGINS, live_netns, live_netns_path, read_calls, run_cnitool, write_conf

from libcni_py import CNI, CNIError, RuntimeConf, load_network
from libcni_py.core.args import cnitool_container_id
from libcni_py.core.record import AttachmentKey
from libcni_py.edges.recordstore import CacheStore

RT = RuntimeConf(container_id="ctr1", netns=live_netns_path(), ifname="eth0")  # alive for every process


def chain(*types: str, version: str = "1.0.0", name: str = "recnet") -> dict[str, object]:
    """A list of recorder-like plugins, each with its own interface name."""
    return {
        "cniVersion": version,
        "name": name,
        "plugins": [{"type": t, "interfaceName": f"if{i}", "address": f"10.9.{i}.5/24"} for i, t in enumerate(types)],
    }


def make_cni(cache_dir: Path, record_file: Path, plugin_dir: Path = PLUGINS) -> tuple[CNI, list[str]]:
    notes: list[str] = []
    cni = CNI(
        plugin_path=[str(plugin_dir)],
        cache_dir=str(cache_dir),
        env={"PATH": "/usr/bin:/bin", "RECORD_FILE": str(record_file)},
        on_stderr=None,
        on_notice=notes.append,
    )
    return cni, notes


def del_types(record_file: Path) -> list[str]:
    """The plugin types that got DEL, in order."""
    return [json.loads(str(c["stdin"]))["type"] for c in read_calls(record_file) if c["command"] == "DEL"]


def dels(record_file: Path) -> list[dict[str, object]]:
    return [json.loads(str(c["stdin"])) for c in read_calls(record_file) if c["command"] == "DEL"]


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Path:
    """A private plugin directory: the recorder under three names."""
    path = tmp_path / "bin"
    path.mkdir()
    for name in ("recorder", "second", "third"):
        (path / name).symlink_to(PLUGINS / "recorder")
    return path


@pytest.fixture
def cli_env(conf_dir: Path, cache_dir: Path, record_file: Path, plugin_dir: Path) -> dict[str, str]:
    return {
        "NETCONFPATH": str(conf_dir),
        "CNI_PATH": str(plugin_dir),
        "CNI_CACHE_DIR": str(cache_dir),
        "RECORD_FILE": str(record_file),
    }


def notes_of(stderr: str) -> list[str]:
    lines = stderr.strip().splitlines()
    assert all(line.startswith("cnitool: note: ") for line in lines), stderr
    return lines


# --------------------------------------------------------------------------
# the configuration is gone, broken or changed


def test_del_after_the_conf_file_is_removed(
    cli_env: dict[str, str], conf_dir: Path, tmp_path: Path, record_file: Path, cache_dir: Path
) -> None:
    conf = write_conf(conf_dir, "10-rec.conflist", chain("recorder", "second"))
    netns = live_netns(tmp_path / "ns")
    assert run_cnitool("add", "recnet", str(netns), env=cli_env).returncode == 0
    conf.unlink()
    proc = run_cnitool("del", "recnet", str(netns), env=cli_env)
    assert proc.returncode == 0, proc.stderr
    (note,) = notes_of(proc.stderr)
    assert 'no network named "recnet"' in note and "using the configuration cached with the attachment" in note
    assert del_types(record_file) == ["second", "recorder"]
    assert all("prevResult" in d for d in dels(record_file))
    assert not list((cache_dir / "results").iterdir())


def test_del_when_another_file_stops_the_lookup(
    cli_env: dict[str, str], conf_dir: Path, tmp_path: Path, record_file: Path, cache_dir: Path
) -> None:
    write_conf(conf_dir, "10-rec.conflist", chain("recorder"))
    netns = live_netns(tmp_path / "ns")
    assert run_cnitool("add", "recnet", str(netns), env=cli_env).returncode == 0
    (conf_dir / "05-broken.conflist").write_text("{")
    proc = run_cnitool("del", "recnet", str(netns), env=cli_env)
    assert proc.returncode == 0, proc.stderr
    (note,) = notes_of(proc.stderr)
    assert "05-broken.conflist" in note and "using the configuration cached" in note
    assert del_types(record_file) == ["recorder"]
    assert not list((cache_dir / "results").iterdir())


def test_del_without_conf_or_record_reports_the_lookup_error(
    cli_env: dict[str, str], tmp_path: Path, record_file: Path
) -> None:
    netns = live_netns(tmp_path / "ns")
    proc = run_cnitool("del", "recnet", str(netns), env=cli_env)
    assert proc.returncode == 3
    assert proc.stderr.startswith("cnitool: error: ") and 'no network named "recnet"' in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert read_calls(record_file) == []


def test_del_runs_the_plugins_the_attachment_was_added_with(
    conf_dir: Path, cache_dir: Path, record_file: Path, plugin_dir: Path
) -> None:
    write_conf(conf_dir, "10-rec.conflist", chain("recorder", "second"))
    cni, notes = make_cni(cache_dir, record_file, plugin_dir)
    cni.add(load_network(str(conf_dir), "recnet"), RT)
    # "second" is taken out of the list while the container runs
    write_conf(conf_dir, "10-rec.conflist", chain("recorder", "third"))
    cni.delete(load_network(str(conf_dir), "recnet"), RT)
    assert del_types(record_file) == ["second", "recorder"], "DEL undoes what ADD did"
    assert any(
        "changed since recnet-ctr1-eth0 was added" in n and "then: recorder, second; now: recorder, third" in n
        for n in notes
    ), notes
    assert not (cache_dir / "results" / "recnet-ctr1-eth0").exists()


def test_del_falls_back_to_the_current_list_when_a_recorded_plugin_is_gone(
    conf_dir: Path, cache_dir: Path, record_file: Path, plugin_dir: Path
) -> None:
    write_conf(conf_dir, "10-rec.conflist", chain("recorder", "second"))
    cni, notes = make_cni(cache_dir, record_file, plugin_dir)
    cni.add(load_network(str(conf_dir), "recnet"), RT)
    (plugin_dir / "second").unlink()  # uninstalled, and replaced in the list
    write_conf(conf_dir, "10-rec.conflist", chain("recorder", "third"))
    cni.delete(load_network(str(conf_dir), "recnet"), RT)
    assert del_types(record_file) == ["third", "recorder"]
    assert any('plugin "second" not found' in n and "what the missing plugin made is not undone" in n for n in notes), (
        notes
    )
    assert not (cache_dir / "results" / "recnet-ctr1-eth0").exists()


def test_del_by_name_needs_a_recorded_configuration(cache_dir: Path, record_file: Path) -> None:
    cni, _ = make_cni(cache_dir, record_file)
    with pytest.raises(CNIError, match="configuration is not known and no usable cache record holds it"):
        cni.delete("recnet", RT)
    assert read_calls(record_file) == []


def test_unchanged_conf_uses_the_given_list_quietly(conf_dir: Path, cache_dir: Path, record_file: Path) -> None:
    write_conf(conf_dir, "10-rec.conflist", chain("recorder"))
    cni, notes = make_cni(cache_dir, record_file)
    net = load_network(str(conf_dir), "recnet")
    cni.add(net, RT)
    cni.delete(net, RT)
    assert notes == []
    assert del_types(record_file) == ["recorder"]


def test_gc_deletes_stale_attachments_with_their_recorded_config(
    conf_dir: Path, cache_dir: Path, record_file: Path, plugin_dir: Path
) -> None:
    write_conf(conf_dir, "10-rec.conflist", chain("recorder", "second", version="1.1.0"))
    cni, notes = make_cni(cache_dir, record_file, plugin_dir)
    net = load_network(str(conf_dir), "recnet")
    for cid in ("live", "dead"):
        cni.add(net, RT.replace(container_id=cid))
    write_conf(conf_dir, "10-rec.conflist", chain("recorder", version="1.1.0"))
    report = cni.gc(load_network(str(conf_dir), "recnet"), [("live", "eth0")], force=True)
    assert report.removed == (("dead", "eth0"),) and report.kept == (("live", "eth0"),)
    assert del_types(record_file) == ["second", "recorder"]
    assert any("changed since recnet-dead-eth0 was added" in n for n in notes), notes
    # plugin GC goes to the current list
    assert [json.loads(str(c["stdin"]))["type"] for c in read_calls(record_file) if c["command"] == "GC"] == [
        "recorder"
    ]


def test_gc_of_a_network_whose_file_is_gone(
    cli_env: dict[str, str], conf_dir: Path, tmp_path: Path, record_file: Path, cache_dir: Path
) -> None:
    conf = write_conf(conf_dir, "10-rec.conflist", chain("recorder", "second", version="1.1.0"))
    for name in ("a", "b"):
        (tmp_path / name).write_text("")
        assert run_cnitool("add", "recnet", str(tmp_path / name), env=cli_env).returncode == 0
    conf.unlink()
    proc = run_cnitool("gc", "recnet", "--all", env=cli_env)
    assert proc.returncode == 0, proc.stderr
    assert "using the configuration cached with each cached attachment instead" in proc.stderr
    assert proc.stdout.count("removed ") == 2
    assert "plugins not asked to GC (the network is not in the conf dir)" in proc.stdout
    assert del_types(record_file) == ["second", "recorder"] * 2
    assert "GC" not in [c["command"] for c in read_calls(record_file)]
    assert not list((cache_dir / "results").iterdir())


# --------------------------------------------------------------------------
# damaged cache files


def _empty(path: Path, good: bytes) -> None:
    path.write_bytes(b"")


def _truncated(path: Path, good: bytes) -> None:
    path.write_bytes(good[: len(good) // 2])


def _garbage(path: Path, good: bytes) -> None:
    path.write_bytes(b"\x00\xff garbage \x00")


def _symlink(path: Path, good: bytes) -> None:
    target = path.parent.parent.parent / "planted-target"
    target.write_bytes(good)
    path.unlink()
    path.symlink_to(target)


def _hostile_names(path: Path, good: bytes) -> None:
    doc = json.loads(good)
    doc["containerId"] = "../../../etc"
    path.write_text(json.dumps(doc))


def _other_attachment(path: Path, good: bytes) -> None:
    doc = json.loads(good)
    doc["containerId"] = "someone-else"
    path.write_text(json.dumps(doc))


DAMAGE = {
    "empty": (_empty, "is empty"),
    "truncated": (_truncated, "is damaged: not valid JSON"),
    "garbage": (_garbage, "is damaged: not valid UTF-8"),
    "symlink": (_symlink, "is a symbolic link; refusing to read it"),
    "hostile-names": (_hostile_names, "holds names that are not valid"),
    "other-attachment": (_other_attachment, "holds the record of recnet-someone-else-eth0"),
}


def _added(cli_env: dict[str, str], conf_dir: Path, tmp_path: Path, cache_dir: Path) -> tuple[Path, Path]:
    write_conf(conf_dir, "10-rec.conflist", chain("recorder", "second"))
    netns = live_netns(tmp_path / "ns")
    assert run_cnitool("add", "recnet", str(netns), env=cli_env).returncode == 0
    return netns, cache_dir / "results" / f"recnet-{cnitool_container_id(str(netns))}-eth0"


@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_del_with_a_damaged_record(
    kind: str, cli_env: dict[str, str], conf_dir: Path, tmp_path: Path, cache_dir: Path, record_file: Path
) -> None:
    damage, _ = DAMAGE[kind]
    netns, record = _added(cli_env, conf_dir, tmp_path, cache_dir)
    damage(record, record.read_bytes())
    proc = run_cnitool("del", "recnet", str(netns), env=cli_env)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert del_types(record_file) == ["second", "recorder"]
    assert not os.path.lexists(record)
    planted = tmp_path / "planted-target"
    if kind == "symlink":
        assert planted.exists(), "the link was removed, not what it points to"
        assert "symbolic link" in proc.stderr
        assert all("prevResult" not in d for d in dels(record_file))
    if kind in ("empty", "truncated", "garbage"):
        assert "deleting without prevResult" in proc.stderr
        assert all("prevResult" not in d for d in dels(record_file))


@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_gc_with_a_damaged_record(
    kind: str, cli_env: dict[str, str], conf_dir: Path, tmp_path: Path, cache_dir: Path, record_file: Path
) -> None:
    damage, problem = DAMAGE[kind]
    netns, record = _added(cli_env, conf_dir, tmp_path, cache_dir)
    cid = cnitool_container_id(str(netns))
    damage(record, record.read_bytes())
    # whose namespace cannot be read from the record: liveness unknown, kept
    kept = run_cnitool("gc", "recnet", "--all", env=cli_env)
    assert kept.returncode == 0, kept.stderr
    assert f"kept {cid}/eth0: liveness unknown: its record cannot be read" in kept.stdout
    assert os.path.lexists(record) and del_types(record_file) == []
    # the user names it: deleted as well as can be
    proc = run_cnitool("gc", "recnet", "--all", "--force", env=cli_env)
    assert proc.returncode == 0, proc.stderr
    assert f"removed {cid}/eth0" in proc.stdout
    assert f"cache file recnet-{cid}-eth0 {problem}" in proc.stderr
    assert f"deleting attachment {cid}/eth0 without its netns" in proc.stderr
    assert not os.path.lexists(record)
    assert del_types(record_file) == ["second", "recorder"]
    for call in read_calls(record_file):
        if call["command"] == "DEL":
            assert call["env"]["CNI_CONTAINERID"] == cid  # type: ignore[index]
            assert call["env"]["CNI_NETNS"] == ""  # type: ignore[index]
    if kind == "symlink":
        assert (tmp_path / "planted-target").exists()


def test_gc_keeps_a_damaged_record_of_a_valid_attachment(
    cli_env: dict[str, str], conf_dir: Path, tmp_path: Path, cache_dir: Path, record_file: Path
) -> None:
    netns, record = _added(cli_env, conf_dir, tmp_path, cache_dir)
    cid = cnitool_container_id(str(netns))
    record.write_bytes(b"")
    proc = run_cnitool("gc", "recnet", "--valid", f"{cid}/eth0", env=cli_env)
    assert proc.returncode == 0, proc.stderr
    assert f"kept {cid}/eth0: listed as valid" in proc.stdout and "listed as valid" in proc.stderr
    assert record.exists() and del_types(record_file) == []


def test_gc_leaves_files_it_cannot_attribute(
    cli_env: dict[str, str], conf_dir: Path, cache_dir: Path, record_file: Path
) -> None:
    write_conf(conf_dir, "10-rec.conflist", chain("recorder"))
    results = cache_dir / "results"
    results.mkdir(parents=True)
    (results / "recnet-no ifname here").write_bytes(b"")
    (results / "othernet-c1-eth0").write_bytes(b"")
    proc = run_cnitool("gc", "recnet", "--all", env=cli_env)
    assert proc.returncode == 0, proc.stderr
    assert "cache file recnet-no ifname here is empty" in proc.stderr and "left alone" in proc.stderr
    assert "othernet" not in proc.stderr
    assert sorted(p.name for p in results.iterdir()) == ["othernet-c1-eth0", "recnet-no ifname here"]
    assert del_types(record_file) == []


def test_results_directory_that_is_a_symlink(
    cli_env: dict[str, str], conf_dir: Path, tmp_path: Path, cache_dir: Path, record_file: Path
) -> None:
    netns, _ = _added(cli_env, conf_dir, tmp_path, cache_dir)
    elsewhere = tmp_path / "elsewhere"
    (cache_dir / "results").rename(elsewhere)
    (cache_dir / "results").symlink_to(elsewhere)
    before = sorted(p.name for p in elsewhere.iterdir())

    proc = run_cnitool("del", "recnet", str(netns), env=cli_env)
    assert proc.returncode == 0, proc.stderr
    assert del_types(record_file) == ["second", "recorder"]
    notes = notes_of(proc.stderr)
    assert any(
        "results: is not a directory (a symbolic link?)" in n and "deleting without prevResult" in n for n in notes
    ), notes
    assert any("the attachment is deleted but its cache record is not" in n for n in notes), notes

    proc = run_cnitool("gc", "recnet", "--all", env=cli_env)
    assert proc.returncode == 0, proc.stderr
    assert "no cached attachment can be looked at" in proc.stderr
    assert sorted(p.name for p in elsewhere.iterdir()) == before, "nothing was written through the link"

    other = live_netns(tmp_path / "ns2")
    calls = len(read_calls(record_file))
    proc = run_cnitool("add", "recnet", str(other), env=cli_env)
    assert proc.returncode == 5
    assert "results: is not a directory (a symbolic link?); refusing to use it" in proc.stderr
    assert len(read_calls(record_file)) == calls, "ADD stopped before any plugin ran"
    assert sorted(p.name for p in elsewhere.iterdir()) == before


def test_gc_removes_stale_temporary_and_lock_files(conf_dir: Path, cache_dir: Path, record_file: Path) -> None:
    write_conf(conf_dir, "10-rec.conflist", chain("recorder"))
    cni, notes = make_cni(cache_dir, record_file)
    net = load_network(str(conf_dir), "recnet")
    cni.add(net, RT.replace(container_id="live"))
    tmp = cache_dir / "libcni_py" / "tmp"
    locks = cache_dir / "libcni_py" / "locks"
    stale = tmp / "recnet-c1-eth0.4242.deadbeef"
    stale.write_bytes(b'{"kind":')  # a writer died between creating and renaming it
    old = time.time() - 3600
    os.utime(stale, (old, old))
    fresh = tmp / "recnet-c2-eth0.4243.cafecafe"  # a writer at work right now
    fresh.write_bytes(b"")
    (locks / "recnet-gone-eth0").write_bytes(b"")  # an ADD killed before its first record
    store = CacheStore(str(cache_dir))
    held = store.lock(AttachmentKey(network="recnet", container_id="busy", ifname="eth0"))
    try:
        report = cni.gc(net, [("live", "eth0")])
    finally:
        store.unlock(held)
    assert report.kept == (("live", "eth0"),)
    assert sorted(p.name for p in tmp.iterdir()) == [fresh.name]
    assert sorted(p.name for p in locks.iterdir()) == ["recnet-busy-eth0", "recnet-live-eth0"]
    assert any("removed 1 temporary and 1 lock file(s)" in n for n in notes), notes


def test_check_of_an_unknown_attachment_leaves_no_lock_file(conf_dir: Path, cache_dir: Path, record_file: Path) -> None:
    write_conf(conf_dir, "10-rec.conflist", chain("recorder"))
    cni, _ = make_cni(cache_dir, record_file)
    with pytest.raises(CNIError, match="nothing to check"):
        cni.check(load_network(str(conf_dir), "recnet"), RT)
    assert not list((cache_dir / "libcni_py" / "locks").iterdir())


def test_trio_gc_does_the_same(conf_dir: Path, cache_dir: Path, record_file: Path) -> None:
    """The trio driver performs the same plan: damaged records, sweeping."""
    import trio

    from libcni_py import AsyncCNI

    write_conf(conf_dir, "10-rec.conflist", chain("recorder"))
    notes: list[str] = []
    cni = AsyncCNI(
        plugin_path=[str(PLUGINS)],
        cache_dir=str(cache_dir),
        on_stderr=None,
        on_notice=notes.append,
        env={"PATH": "/usr/bin:/bin", "RECORD_FILE": str(record_file)},
    )
    net = load_network(str(conf_dir), "recnet")

    async def main() -> object:
        await cni.add(net, RT)
        (cache_dir / "results" / "recnet-ctr1-eth0").write_bytes(b"")
        (cache_dir / "libcni_py" / "locks" / "recnet-gone-eth0").write_bytes(b"")
        first = await cni.gc(net, [])  # liveness unknown: kept
        return first, await cni.gc(net, [], force=True)

    first, report = trio.run(main)
    assert first.kept_reasons == (("ctr1", "eth0", "liveness unknown: its record cannot be read"),)
    assert report.removed == (("ctr1", "eth0"),)
    assert any("cache file recnet-ctr1-eth0 is empty" in n for n in notes), notes
    assert any("removed 0 temporary and 1 lock file(s)" in n for n in notes), notes
    assert not list((cache_dir / "results").iterdir())
    assert not list((cache_dir / "libcni_py" / "locks").iterdir())
