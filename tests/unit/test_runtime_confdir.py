"""The conf dir as a runtime reads it: default network, max networks, invalid
files with reasons, and change detection that catches what inode watches miss."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support import write_conf

from libcni_py.core import netconf as conf
from libcni_py.runtime import confdir
from libcni_py.runtime.confdir import ConfDir, load, snapshot


def conflist(name: str, version: str = "1.0.0", plugin: str = "recorder") -> dict[str, object]:
    return {"cniVersion": version, "name": name, "plugins": [{"type": plugin}]}


def test_first_valid_file_is_the_default_and_invalid_files_keep_their_reason(conf_dir: Path) -> None:
    write_conf(conf_dir, "05-broken.conflist", {"cniVersion": "1.0.0", "name": "broken", "plugins": [{"type": 7}]})
    write_conf(conf_dir, "10-b.conf", {"cniVersion": "1.0.0", "name": "netb", "type": "recorder"})
    write_conf(conf_dir, "20-a.conflist", conflist("neta"))
    write_conf(conf_dir, "30-dup.json", {"cniVersion": "1.0.0", "name": "netb", "type": "recorder"})
    write_conf(conf_dir, "40-a.conflist.bak", conflist("ignored"))
    (conf_dir / "50-dir.conflist").mkdir()

    state = load(str(conf_dir), max_networks=1)

    assert [n.name for n in state.networks] == ["netb", "neta"]
    assert state.default is not None and state.default.name == "netb"
    assert [n.name for n in state.defaults] == ["netb"]
    assert [os.path.basename(i.path) for i in state.invalid] == ["05-broken.conflist", "30-dup.json"]
    assert "plugins[0].type" in state.invalid[0].reason
    assert "already defined by" in state.invalid[1].reason and "10-b.conf" in state.invalid[1].reason
    assert [n.name for n in load(str(conf_dir), max_networks=0).defaults] == ["netb", "neta"]


def test_missing_and_empty_conf_dirs(tmp_path: Path) -> None:
    missing = load(str(tmp_path / "nope"))
    assert not missing.exists and missing.networks == () and missing.default is None
    assert snapshot(str(tmp_path / "nope")) is None
    empty = load(str(tmp_path))
    assert empty.exists and empty.networks == ()


def test_snapshot_covers_exactly_the_files_the_loader_reads(conf_dir: Path) -> None:
    """The change detector and the loader share one rule for which names are
    conf files (Go's ``filepath.Ext``): a file named just ``.conflist`` is
    loaded by Go libcni, so a change to it must be noticed too."""
    write_conf(conf_dir, ".conflist", conflist("hidden"))
    write_conf(conf_dir, "10-a.conflist.bak", conflist("ignored"))
    (conf_dir / "20-dir.conflist").mkdir()
    loaded = [os.path.basename(p) for p in conf.conf_files(str(conf_dir), conf.CONF_EXTENSIONS)]
    seen = snapshot(str(conf_dir))
    assert seen is not None
    assert loaded == [".conflist"]
    assert [entry[0] for entry in seen] == loaded


def test_new_file_is_noticed_without_restart(conf_dir: Path) -> None:
    watcher = ConfDir(str(conf_dir))
    assert watcher.current().networks == ()
    write_conf(conf_dir, "10-a.conflist", conflist("neta"))
    assert [n.name for n in watcher.current().networks] == ["neta"]


def test_rename_into_place_is_noticed(conf_dir: Path, tmp_path: Path) -> None:
    target = write_conf(conf_dir, "10-a.conflist", conflist("old"))
    watcher = ConfDir(str(conf_dir))
    assert watcher.current().networks[0].name == "old"
    staged = write_conf(conf_dir, ".10-a.conflist.tmp", conflist("new"))  # not a conf extension
    os.replace(staged, target)
    assert watcher.current().networks[0].name == "new"


def test_delete_then_recreate_with_same_size_and_times_is_noticed(conf_dir: Path) -> None:
    """The classic miss of inode watches: the file is deleted and written again
    (possibly on the same inode), with the same size and even the same mtime."""
    target = write_conf(conf_dir, "10-a.conflist", conflist("aaaa"))
    before = target.stat()
    watcher = ConfDir(str(conf_dir))
    assert watcher.current().networks[0].name == "aaaa"
    target.unlink()
    write_conf(conf_dir, "10-a.conflist", conflist("bbbb"))
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert target.stat().st_size == before.st_size
    assert watcher.current().networks[0].name == "bbbb"


def test_unchanged_dir_is_not_reloaded_and_changes_bump_the_generation(
    conf_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(confdir, "RACY_WINDOW_NS", 0)  # the file is not "racily clean"
    target = write_conf(conf_dir, "10-a.conflist", conflist("neta"))
    watcher = ConfDir(str(conf_dir))
    first = watcher.current()
    assert watcher.generation == 1
    assert watcher.current() is first
    target.unlink()
    assert watcher.current().networks == ()
    assert watcher.generation == 2


def test_a_file_changed_within_the_clock_granularity_is_read_again(conf_dir: Path) -> None:
    """An in-place edit that keeps size, inode and (coarse) timestamps: the
    snapshot cannot see it, so recently changed files are re-read."""
    target = write_conf(conf_dir, "10-a.conflist", conflist("aaaa"))
    watcher = ConfDir(str(conf_dir))
    assert watcher.current().networks[0].name == "aaaa"
    st = target.stat()
    with open(target, "r+b") as fh:  # same inode, same size
        fh.write(target.read_bytes().replace(b"aaaa", b"bbbb"))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert watcher.current().networks[0].name == "bbbb"


def test_plugins_aggregated_from_the_network_folder_are_watched(conf_dir: Path) -> None:
    write_conf(conf_dir, "10-a.conflist", {"cniVersion": "1.1.0", "name": "neta", "plugins": [{"type": "recorder"}]})
    watcher = ConfDir(str(conf_dir))
    assert [p.type for p in watcher.current().networks[0].plugins] == ["recorder"]
    (conf_dir / "neta").mkdir()
    write_conf(conf_dir / "neta", "20-extra.conf", {"type": "fakeipam"})
    assert [p.type for p in watcher.current().networks[0].plugins] == ["recorder", "fakeipam"]
