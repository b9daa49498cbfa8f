"""The conf dir analysis behind ``cnitool ls``: pure decisions over a conf dir
read from a temporary directory, with plugin statuses made up (no process)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from libcni_py.core.version import PluginInfo
from libcni_py.errors import PluginError
from libcni_py.tools.confdir_report import PluginStatus, analyse, probe_versions, resolve_plugins, scan

ALL = PluginInfo(cni_version="1.1.0", supported_versions=["0.3.1", "0.4.0", "1.0.0", "1.1.0"])


def write(directory: Path, name: str, doc: object) -> None:
    (directory / name).write_text(doc if isinstance(doc, str) else json.dumps(doc))


def found(*types: str, info: PluginInfo | None = ALL) -> dict[str, PluginStatus]:
    return {
        t: PluginStatus(type=t, searched=["/opt/cni/bin"], path=f"/opt/cni/bin/{t}", info=info, probed=True)
        for t in types
    }


def one(name: str, *types: str, version: str = "1.0.0") -> dict[str, object]:
    return {"cniVersion": version, "name": name, "plugins": [{"type": t} for t in types]}


def test_containerd_fails_on_a_bad_first_file_others_skip_it(tmp_path: Path) -> None:
    write(tmp_path, "00-bad.conflist", "{not json")
    write(tmp_path, "10-good.conflist", one("good", "bridge"))
    report = analyse(scan(str(tmp_path)), found("bridge"))
    containerd, crio, kubelet = report.consumers
    assert containerd.networks == () and containerd.error.startswith(
        "the load fails on 00-bad.conflist: not valid JSON"
    )
    assert crio.networks == kubelet.networks == (("good", "10-good.conflist", "eth0"),)
    assert report.verdicts[0].status == "invalid" and not report.verdicts[0].loads
    assert "containerd: the load fails on 00-bad.conflist" in " | ".join(report.problems)


def test_crio_default_network_and_duplicates(tmp_path: Path) -> None:
    write(tmp_path, "10-a.conflist", one("a", "bridge"))
    write(tmp_path, "20-b.conflist", one("b", "bridge"))
    write(tmp_path, "30-a.conflist", one("a", "ptp"))
    listing = scan(str(tmp_path))
    crio = analyse(listing, found("bridge", "ptp"), crio_default="b").consumers[1]
    assert crio.networks == (("b", "20-b.conflist", "eth0"),)
    assert "ignores 30-a.conflist: network 'a' already comes from 10-a.conflist" in crio.notes
    missing = analyse(listing, found("bridge", "ptp"), crio_default="zzz").consumers[1]
    assert missing.networks == () and "the configured default network 'zzz' is not among" in missing.error
    by_name = {n: (f, s) for n, f, _, s in analyse(listing, found("bridge", "ptp")).by_name}
    assert by_name == {"a": ("10-a.conflist", ("30-a.conflist",)), "b": ("20-b.conflist", ())}


def test_versions_unknown_without_probes_and_missing_plugins(tmp_path: Path) -> None:
    write(tmp_path, "10-a.conflist", one("a", "bridge"))
    write(tmp_path, "20-b.conflist", one("b", "nope"))
    listing = scan(str(tmp_path))
    statuses = resolve_plugins(["bridge", "nope"], [str(tmp_path / "bin")])
    (tmp_path / "bin").mkdir()
    assert statuses["nope"].path == "" and statuses["nope"].searched == (str(tmp_path / "bin"),)
    statuses = {"bridge": PluginStatus(type="bridge", searched=["/x"], path="/x/bridge"), "nope": statuses["nope"]}
    report = analyse(listing, statuses)
    assert [v.status for v in report.verdicts] == ["unverified", "invalid"]
    assert report.verdicts[1].problems == (f'plugin "nope" MISSING (searched {tmp_path / "bin"})',)
    # kubelet assumes an unprobed file validates, and says so
    assert report.consumers[2].networks == (("a", "10-a.conflist", "eth0"),)
    assert "10-a.conflist: plugin versions not probed; assumed to validate" in report.consumers[2].notes


def test_version_mismatch_and_unusable_lists(tmp_path: Path) -> None:
    write(tmp_path, "10-old.conflist", one("old", "bridge", version="1.0.0"))
    write(tmp_path, "20-bad name.conflist", one("bad name", "bridge"))
    report = analyse(
        scan(str(tmp_path)), found("bridge", info=PluginInfo(cni_version="0.4.0", supported_versions=["0.4.0"]))
    )
    assert report.verdicts[0].status == "invalid" and report.verdicts[0].validates is False
    assert 'does not support cniVersion "1.0.0" (it supports 0.4.0)' in report.verdicts[0].problems[0]
    assert report.verdicts[1].problems[0].startswith("name: 'bad name' is not a valid network name")
    # containerd takes the first file regardless, and says it cannot run
    assert report.consumers[0].networks == (("old", "10-old.conflist", "eth0"),)
    assert report.consumers[0].notes[0].startswith("10-old.conflist is taken although it cannot run")


def test_ignored_entries_and_plugin_folders(tmp_path: Path) -> None:
    write(tmp_path, "10-net.conflist", {"cniVersion": "1.1.0", "name": "net", "plugins": [{"type": "bridge"}]})
    write(tmp_path, "20-solo.conf", {"cniVersion": "1.0.0", "name": "solo", "type": "bridge"})
    write(
        tmp_path,
        "30-inline.conflist",
        {"cniVersion": "1.1.0", "name": "inl", "loadOnlyInlinedPlugins": True, "plugins": [{"type": "bridge"}]},
    )
    (tmp_path / "net").mkdir()
    write(tmp_path / "net", "extra.conf", {"type": "portmap"})
    for folder in ("solo", "inl", "misc"):
        (tmp_path / folder).mkdir()
    write(tmp_path, "README", "hello")
    report = analyse(scan(str(tmp_path)), found("bridge", "portmap"))
    reasons = {i.name: i.reason for i in report.ignored}
    assert reasons["README"].startswith("no extension: only .conf, .conflist and .json files are read")
    assert reasons["net/"].startswith(
        "plugin folder of network 'net': its *.conf files are appended to the plugins of 10-net.conflist"
    )
    assert "sets loadOnlyInlinedPlugins" in reasons["inl/"]
    assert "single-plugin file (20-solo.conf)" in reasons["solo/"]
    assert reasons["misc/"] == "folder: configurations are not read from folders"
    assert [p.type for p in report.listing.files[0].conflist.plugins] == ["bridge", "portmap"]  # type: ignore[union-attr]
    assert report.listing.files[0].folder_plugins() == (str(tmp_path / "net" / "extra.conf"),)


def test_podmans_lock_file_is_a_note_not_a_problem(tmp_path: Path) -> None:
    """podman's CNI backend keeps ``cni.lock`` in the conf dir: saying it is
    a problem (and that the fix is to remove it) would harm podman."""
    write(tmp_path, "10-a.conflist", one("a", "bridge"))
    (tmp_path / "cni.lock").write_text("")
    (tmp_path / "10-a.conflist.bak").write_text("{}")
    report = analyse(scan(str(tmp_path)), found("bridge"))
    assert [p for p in report.problems if "cni.lock" in p] == []
    assert '10-a.conflist.bak is ignored (extension ".bak")' in report.problems
    assert [n for n in report.notes if n.startswith("cni.lock is podman's lock file")] != []
    lock = next(i for i in report.ignored if i.name == "cni.lock")
    assert lock.expected and "leave it" in lock.reason


def test_a_fifo_is_not_read(tmp_path: Path) -> None:
    import os

    os.mkfifo(tmp_path / "10-pipe.conf")
    report = analyse(scan(str(tmp_path)), {})
    assert "is not a regular file (a FIFO" in report.verdicts[0].problems[0]


def test_probes_run_once_per_binary(tmp_path: Path) -> None:
    statuses = {
        "a": PluginStatus(type="a", searched=["/x"], path="/x/a"),
        "b": PluginStatus(type="b", searched=["/x"], path="/x/a"),  # same binary (a symlink, say)
        "c": PluginStatus(type="c", searched=["/x"], path="/x/c"),
        "gone": PluginStatus(type="gone", searched=["/x"]),
    }
    asked: list[str] = []

    def version_info(plugin_type: str) -> PluginInfo:
        asked.append(plugin_type)
        if plugin_type == "c":
            raise PluginError("boom", plugin_type="c", command="VERSION")
        return ALL

    probed = probe_versions(statuses, version_info)
    assert sorted(asked) == ["a", "c"]
    assert probed["b"].info == ALL and probed["b"].probed
    assert probed["c"].info is None and "boom" in probed["c"].probe_error
    assert not probed["gone"].probed
    assert probed["c"].problem("1.0.0").startswith('plugin "c": VERSION failed')


@pytest.mark.parametrize("exists", [True, False])
def test_empty_or_missing_conf_dir(tmp_path: Path, exists: bool) -> None:
    directory = tmp_path / "net.d"
    if exists:
        directory.mkdir()
    report = analyse(scan(str(directory)), {})
    assert all(c.error for c in report.consumers)
    assert ("does not exist" if not exists else "has no .conf, .conflist or .json file") in report.problems[0]
    assert report.to_json()["exists"] is exists
