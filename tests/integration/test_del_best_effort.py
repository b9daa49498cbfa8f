"""DEL and GC are best-effort across the chain; ADD never damages a record.

With the test plugins (no root needed): a plugin missing from the plugin
path, or failing, on DEL does not keep the others from their DEL; the record
stays, marked with what is still to delete, and the next DEL (or GC) runs
only that.  Plugin GC goes on plugin by plugin.  An ADD of an attachment on
record, or one whose cache file name is another attachment's, is refused
before any plugin runs.  tests/root/test_teardown_faults.py does the same
with Debian's plugins, where the leaks would be in the kernel.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import PLUGINS, live_netns, live_netns_path, read_calls, run_cnitool, write_conf
from test_damaged_state import make_cni

from libcni_py import RuntimeConf, load_network
from libcni_py.core import record as cache
from libcni_py.core.args import cnitool_container_id
from libcni_py.errors import ArgsError, CNIError, MultiError, PluginError, PluginNotFoundError

#: A plugin that fails its DEL while $FLAKY_FLAG names a file that exists,
#: and is the recorder otherwise.
FLAKY = """#!/bin/sh
if [ "$CNI_COMMAND" = DEL ] && [ -e "$FLAKY_FLAG" ]; then
    echo '{"cniVersion":"1.0.0","code":100,"msg":"flaky told to fail DEL"}'
    exit 1
fi
exec "$(dirname "$0")/recorder"
"""


def chain(*types: str, version: str = "1.0.0", name: str = "benet") -> dict[str, object]:
    return {
        "cniVersion": version,
        "name": name,
        "plugins": [{"type": t, "interfaceName": f"if{i}", "address": f"10.9.{i}.5/24"} for i, t in enumerate(types)],
    }


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    """recorder as "first", "second" and "third", and the flaky shim."""
    path = tmp_path / "bin"
    path.mkdir()
    for name in ("recorder", "first", "second", "third", "_common.py"):
        (path / name).symlink_to(PLUGINS / ("recorder" if name != "_common.py" else name))
    (path / "flaky").write_text(FLAKY)
    (path / "flaky").chmod(0o755)
    return path


@pytest.fixture
def env(conf_dir: Path, cache_dir: Path, record_file: Path, bin_dir: Path, tmp_path: Path) -> dict[str, str]:
    return {
        "NETCONFPATH": str(conf_dir),
        "CNI_PATH": str(bin_dir),
        "CNI_CACHE_DIR": str(cache_dir),
        "RECORD_FILE": str(record_file),
        "FLAKY_FLAG": str(tmp_path / "flaky-fails"),
    }


def calls(record_file: Path, command: str = "DEL") -> list[str]:
    """The plugin types that got ``command``, in order."""
    return [json.loads(str(c["stdin"]))["type"] for c in read_calls(record_file) if c["command"] == command]


def marker(record: Path) -> dict[str, object]:
    return json.loads(record.read_text())["libcniPy"]  # type: ignore[no-any-return]


def added(env: dict[str, str], tmp_path: Path, cache_dir: Path, name: str = "ns") -> tuple[str, Path]:
    netns = str(live_netns(tmp_path / name))
    proc = run_cnitool("add", "benet", netns, env=env)
    assert proc.returncode == 0, proc.stderr
    return netns, cache_dir / "results" / f"benet-{cnitool_container_id(netns)}-eth0"


# --------------------------------------------------------------------------
# DEL: best-effort, the record keeps what is left, a retry finishes


def test_a_missing_plugin_does_not_stop_the_others_and_a_retry_finishes(
    env: dict[str, str], conf_dir: Path, cache_dir: Path, bin_dir: Path, record_file: Path, tmp_path: Path
) -> None:
    write_conf(conf_dir, "10-be.conflist", chain("first", "second", "third"))
    netns, record = added(env, tmp_path, cache_dir)
    result_before = json.loads(record.read_text())["result"]
    (bin_dir / "second").unlink()

    proc = run_cnitool("del", "benet", netns, env=env)

    assert proc.returncode == 4, proc.stderr  # plugin missing (README's table)
    assert proc.stderr.strip().splitlines()[-1].startswith('cnitool: error: plugin "second" not found in ')
    assert "DEL did not finish: still to delete: second; the other plugins' DEL succeeded" in proc.stderr
    assert calls(record_file) == ["third", "first"]  # both the others ran, in DEL order
    doc = json.loads(record.read_text())
    assert doc["libcniPy"] == {
        "state": "deleting",
        "done": 2,
        "plugins": 3,
        "remaining": [{"index": 1, "type": "second"}],
    }
    assert doc["result"] == result_before and doc["netns"] == netns  # still the prevResult a retry needs
    assert cache.decode_record(record.read_bytes(), str(record)).progress.describe() == (  # type: ignore[union-attr]
        "DEL unfinished: still to delete: second"
    )

    (bin_dir / "second").symlink_to(PLUGINS / "recorder")
    check = run_cnitool("check", "benet", netns, env=env)
    assert check.returncode == 1 and "is from a DEL that did not finish (still to delete: second)" in check.stderr
    retry = run_cnitool("del", "benet", netns, env=env)

    assert retry.returncode == 0, retry.stderr
    assert "is from a DEL that did not finish (still to delete: second); running only those" in retry.stderr
    assert calls(record_file) == ["third", "first", "second"]  # only what was left
    last = [json.loads(str(c["stdin"])) for c in read_calls(record_file) if c["command"] == "DEL"][-1]
    assert last["prevResult"] == result_before
    assert not record.exists() and not list((cache_dir / "libcni_py" / "locks").iterdir())


def test_a_failing_plugin_does_not_stop_the_others_and_gc_finishes(
    env: dict[str, str], conf_dir: Path, cache_dir: Path, record_file: Path, tmp_path: Path
) -> None:
    write_conf(conf_dir, "10-be.conflist", chain("first", "flaky", "third"))
    netns, record = added(env, tmp_path, cache_dir)
    (tmp_path / "flaky-fails").write_text("")

    proc = run_cnitool("del", "benet", netns, env=env)

    assert proc.returncode == 1, proc.stderr
    assert 'network "benet": plugin type="flaky" failed (del): flaky told to fail DEL' in proc.stderr
    assert calls(record_file) == ["third", "first"]
    assert marker(record)["remaining"] == [{"index": 1, "type": "flaky"}]
    again = run_cnitool("del", "benet", netns, env=env)  # still failing: the record stays as it was
    assert again.returncode == 1 and calls(record_file) == ["third", "first"]
    assert marker(record)["remaining"] == [{"index": 1, "type": "flaky"}]

    (tmp_path / "flaky-fails").unlink()
    gc = run_cnitool("gc", "benet", "--all", env=env)

    assert gc.returncode == 0, gc.stderr
    assert f"removed {cnitool_container_id(netns)}/eth0" in gc.stdout
    assert calls(record_file) == ["third", "first", "flaky"]
    assert not record.exists()


def test_several_failures_are_all_named(
    env: dict[str, str], conf_dir: Path, cache_dir: Path, bin_dir: Path, record_file: Path, tmp_path: Path
) -> None:
    write_conf(conf_dir, "10-be.conflist", chain("first", "flaky", "third"))
    netns, record = added(env, tmp_path, cache_dir)
    (tmp_path / "flaky-fails").write_text("")
    (bin_dir / "third").unlink()

    proc = run_cnitool("del", "benet", netns, env=env)

    assert proc.returncode == 1, proc.stderr
    error = proc.stderr.strip().splitlines()[-1]
    assert error.startswith(
        f"cnitool: error: DEL of benet/{cnitool_container_id(netns)}/eth0: 2 plugins did not finish"
    )
    assert 'plugin "third" not found' in error and 'plugin type="flaky" failed (del)' in error
    assert calls(record_file) == ["first"]
    assert marker(record)["remaining"] == [{"index": 1, "type": "flaky"}, {"index": 2, "type": "third"}]


def test_a_retry_with_another_configuration_runs_every_plugin(
    env: dict[str, str], conf_dir: Path, cache_dir: Path, record_file: Path, tmp_path: Path
) -> None:
    conf = write_conf(conf_dir, "10-be.conflist", chain("first", "flaky"))
    netns, record = added(env, tmp_path, cache_dir)
    (tmp_path / "flaky-fails").write_text("")
    assert run_cnitool("del", "benet", netns, env=env).returncode == 1
    assert calls(record_file) == ["first"]
    (tmp_path / "flaky-fails").unlink()
    conf.write_text(json.dumps(chain("first", "flaky", "third")))

    proc = run_cnitool("del", "benet", netns, "--current-config", env=env)

    assert proc.returncode == 0, proc.stderr
    assert "but this DEL runs another configuration: running every plugin's DEL" in proc.stderr
    assert calls(record_file) == ["first", "third", "flaky", "first"]
    assert not record.exists()


def test_a_del_without_a_record_creates_none(
    env: dict[str, str], conf_dir: Path, cache_dir: Path, bin_dir: Path, record_file: Path, tmp_path: Path
) -> None:
    """A DEL of something never added (runtimes send those) that fails must
    not leave a record behind for GC to chase."""
    write_conf(conf_dir, "10-be.conflist", chain("first", "second"))
    (bin_dir / "second").unlink()
    proc = run_cnitool("del", "benet", str(live_netns(tmp_path / "ns")), env=env)
    assert proc.returncode == 4
    assert "there is no record of it to keep that in" in proc.stderr
    assert calls(record_file) == ["first"]
    assert not (cache_dir / "results").exists() or not list((cache_dir / "results").iterdir())


def test_library_delete_raises_the_failure_and_keeps_the_record(
    conf_dir: Path, cache_dir: Path, bin_dir: Path, record_file: Path, tmp_path: Path
) -> None:
    write_conf(conf_dir, "10-be.conflist", chain("first", "second"))
    cni, notes = make_cni(cache_dir, record_file, bin_dir)
    net = load_network(str(conf_dir), "benet")
    rt = RuntimeConf(container_id="lib1", netns=live_netns_path())
    cni.add(net, rt)
    (bin_dir / "first").unlink()
    with pytest.raises(PluginNotFoundError, match='plugin "first" not found'):
        cni.delete(net, rt)
    record = cni.cached_record(net, rt)
    assert record is not None and record.progress is not None
    assert record.progress.remaining == ((0, "first"),)
    assert any("still to delete: first" in n for n in notes)
    (bin_dir / "first").symlink_to(PLUGINS / "recorder")
    cni.delete(net, rt)
    assert cni.cached_record(net, rt) is None
    assert calls(record_file) == ["second", "first"]


# --------------------------------------------------------------------------
# plugin GC goes on plugin by plugin


def test_plugin_gc_goes_on_past_a_missing_and_a_failing_plugin(
    env: dict[str, str], conf_dir: Path, bin_dir: Path, record_file: Path, tmp_path: Path
) -> None:
    doc = chain("first", "second", "third", version="1.1.0")
    doc["plugins"][2]["failOn"] = ["GC"]  # type: ignore[index]
    doc["plugins"].append({"type": "recorder"})  # type: ignore[attr-defined]
    write_conf(conf_dir, "10-be.conflist", doc)
    (bin_dir / "second").unlink()

    proc = run_cnitool("gc", "benet", "--all", env=env)

    assert proc.returncode == 1, proc.stderr
    assert calls(record_file, "GC") == ["first", "third", "recorder"]  # each plugin that can run gets GC
    error = proc.stderr.strip().splitlines()[-1]
    assert "GC of network 'benet' had 2 failure(s)" in error
    assert 'plugin "second" not found' in error and 'plugin type="third" failed (gc): recorder told to fail GC' in error


# --------------------------------------------------------------------------
# ADD never damages a record


def test_add_of_an_attachment_on_record_is_refused_before_any_plugin_runs(
    env: dict[str, str], conf_dir: Path, cache_dir: Path, record_file: Path, tmp_path: Path
) -> None:
    write_conf(conf_dir, "10-be.conflist", chain("first"))
    netns, record = added(env, tmp_path, cache_dir)
    before = record.read_bytes()

    proc = run_cnitool("add", "benet", netns, env=env)

    assert proc.returncode == 3, proc.stderr
    cid = cnitool_container_id(netns)
    assert proc.stderr == (
        f"cnitool: error: attachment benet/{cid}/eth0 exists (cache record benet-{cid}-eth0: complete); DEL it first "
        "(an ADD of an attachment on record would damage its record; nothing was run)\n"
    )
    assert calls(record_file, "ADD") == ["first"] and record.read_bytes() == before
    assert run_cnitool("check", "benet", netns, env=env).returncode == 0
    assert run_cnitool("del", "benet", netns, env=env).returncode == 0
    assert run_cnitool("add", "benet", netns, env=env).returncode == 0  # after the DEL it can be added again


def test_add_after_a_failed_add_is_refused_and_keeps_the_failed_record(
    env: dict[str, str], conf_dir: Path, cache_dir: Path, record_file: Path, tmp_path: Path
) -> None:
    doc = chain("first", "second")
    doc["plugins"][1]["failOn"] = ["ADD"]  # type: ignore[index]
    write_conf(conf_dir, "10-be.conflist", doc)
    netns = str(live_netns(tmp_path / "ns"))
    assert run_cnitool("add", "benet", netns, env=env).returncode == 1
    record = cache_dir / "results" / f"benet-{cnitool_container_id(netns)}-eth0"
    failed = record.read_bytes()
    assert marker(record) == {"state": "failed", "done": 1, "plugins": 2}

    proc = run_cnitool("add", "benet", netns, env=env)

    assert proc.returncode == 3
    assert "exists (cache record" in proc.stderr and "ADD failed: 1 of 2 plugins done); DEL it first" in proc.stderr
    assert record.read_bytes() == failed  # the partial result DEL needs is still there
    assert calls(record_file, "ADD") == ["first", "second"]
    delete = run_cnitool("del", "benet", netns, env=env)
    assert delete.returncode == 0, delete.stderr
    assert all("prevResult" in json.loads(str(c["stdin"])) for c in read_calls(record_file) if c["command"] == "DEL")


def test_a_damaged_record_is_replaced_by_add(
    env: dict[str, str], conf_dir: Path, cache_dir: Path, tmp_path: Path
) -> None:
    write_conf(conf_dir, "10-be.conflist", chain("first"))
    netns = str(live_netns(tmp_path / "ns"))
    record = cache_dir / "results" / f"benet-{cnitool_container_id(netns)}-eth0"
    record.parent.mkdir(parents=True)
    record.write_bytes(b"")  # what a crash in Go's in-place write leaves
    proc = run_cnitool("add", "benet", netns, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "is empty (a crash while Go libcni wrote it leaves such files); it holds nothing a DEL could use" in (
        proc.stderr
    )
    assert cache.decode_record(record.read_bytes(), str(record)).complete


# --------------------------------------------------------------------------
# colliding cache file names


def test_colliding_names_are_refused_and_never_cross(
    env: dict[str, str], conf_dir: Path, cache_dir: Path, record_file: Path, tmp_path: Path
) -> None:
    """Container ``x`` with interface ``a-b`` and container ``x-a`` with
    interface ``b`` both map to ``benet-x-a-b`` (Go has the same flaw)."""
    write_conf(conf_dir, "10-be.conflist", chain("first"))
    netns = str(live_netns(tmp_path / "ns"))
    record = cache_dir / "results" / "benet-x-a-b"
    first = run_cnitool("add", "benet", netns, "--container-id", "x-a", "--ifname", "b", env=env)
    assert first.returncode == 0, first.stderr
    before = record.read_bytes()

    second = run_cnitool("add", "benet", netns, "--container-id", "x", "--ifname", "a-b", env=env)

    assert second.returncode == 3
    assert (
        "cannot add benet/x/a-b: its cache file name benet-x-a-b is taken by the attachment of network 'benet', "
        "container 'x-a', interface 'b'" in second.stderr
    )
    assert calls(record_file, "ADD") == ["first"] and record.read_bytes() == before

    # the record is x-a/b's: CHECK and DEL of x/a-b do not use it, and DEL leaves it in place
    check = run_cnitool("check", "benet", netns, "--container-id", "x", "--ifname", "a-b", env=env)
    assert check.returncode == 3 and "holds the record of network 'benet', container 'x-a'" in check.stderr
    delete = run_cnitool("del", "benet", netns, "--container-id", "x", "--ifname", "a-b", env=env)
    assert delete.returncode == 0, delete.stderr
    assert "whose names make the same file name; deleting without it, and leaving it in place" in delete.stderr
    (del_call,) = [c for c in read_calls(record_file) if c["command"] == "DEL"]
    assert del_call["env"]["CNI_CONTAINERID"] == "x" and del_call["env"]["CNI_IFNAME"] == "a-b"  # type: ignore[index]
    assert "prevResult" not in json.loads(str(del_call["stdin"]))
    assert record.read_bytes() == before
    assert (cache_dir / "libcni_py" / "locks" / "benet-x-a-b").exists()  # it guards x-a/b's record still

    done = run_cnitool("del", "benet", netns, "--container-id", "x-a", "--ifname", "b", env=env)
    assert done.returncode == 0, done.stderr
    assert not record.exists()


def test_library_cached_record_checks_whose_it_is(conf_dir: Path, cache_dir: Path, record_file: Path) -> None:
    write_conf(conf_dir, "10-be.conflist", chain("recorder"))
    cni, _ = make_cni(cache_dir, record_file)
    net = load_network(str(conf_dir), "benet")
    cni.add(net, RuntimeConf(container_id="x-a", netns=live_netns_path(), ifname="b"))
    x = RuntimeConf(container_id="x", netns=live_netns_path(), ifname="a-b")
    with pytest.raises(CNIError, match="holds the record of network 'benet', container 'x-a', interface 'b'"):
        cni.cached_record(net, x)
    with pytest.raises(ArgsError, match="is taken by the attachment of"):
        cni.add(net, x)


def test_multi_error_and_plugin_error_are_what_delete_raises(
    conf_dir: Path, cache_dir: Path, bin_dir: Path, record_file: Path
) -> None:
    doc = chain("first", "second")
    for plugin in doc["plugins"]:  # type: ignore[attr-defined]
        plugin["failOn"] = ["DEL"]
    write_conf(conf_dir, "10-be.conflist", doc)
    cni, _ = make_cni(cache_dir, record_file, bin_dir)
    net = load_network(str(conf_dir), "benet")
    rt = RuntimeConf(container_id="lib2", netns=live_netns_path())
    cni.add(net, rt)
    with pytest.raises(MultiError) as info:
        cni.delete(net, rt)
    assert [type(e) for e in info.value.errors] == [PluginError, PluginError]
    assert [e.plugin_type for e in info.value.errors] == ["second", "first"]  # type: ignore[attr-defined]


def test_trio_delete_is_best_effort_too(conf_dir: Path, cache_dir: Path, bin_dir: Path, record_file: Path) -> None:
    import trio

    from libcni_py import AsyncCNI

    write_conf(conf_dir, "10-be.conflist", chain("first", "second"))
    notes: list[str] = []
    cni = AsyncCNI(
        plugin_path=[str(bin_dir)],
        cache_dir=str(cache_dir),
        env={"PATH": "/usr/bin:/bin", "RECORD_FILE": str(record_file)},
        on_stderr=None,
        on_notice=notes.append,
    )
    net = load_network(str(conf_dir), "benet")
    rt = RuntimeConf(container_id="trio1", netns=live_netns_path())

    async def main() -> None:
        await cni.add(net, rt)
        (bin_dir / "second").unlink()
        with pytest.raises(PluginNotFoundError, match='plugin "second" not found'):
            await cni.delete(net, rt)
        (bin_dir / "second").symlink_to(PLUGINS / "recorder")
        await cni.delete(net, rt)

    trio.run(main)
    assert calls(record_file) == ["first", "second"]
    assert any(n.endswith("(still to delete: second); running only those") for n in notes)
    assert not list((cache_dir / "results").iterdir())
