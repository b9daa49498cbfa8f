"""GC at scale (issue 7): the list of valid attachments is encoded once for
all plugins, and the cache listing reads every record through one open
directory -- with the same bytes and the same verdicts as before."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from libcni_py.core import gojson
from libcni_py.core import plugin_input as request
from libcni_py.core import record as cache
from libcni_py.core.netconf import parse_plugin
from libcni_py.edges.recordstore import CacheStore

PAIRS = [("c1", "eth0"), ("c<2>", "net1"), ("c\u00e93", "eth0")]


def test_gc_stdin_is_the_same_with_the_list_encoded_once() -> None:
    plugin = parse_plugin({"type": "p", "z": 1, "a": [2]}, "mem")
    direct = request.gc_stdin(plugin, name="n", cni_version="1.1.0", valid_attachments=PAIRS)
    shared = request.encode_valid_attachments(PAIRS)
    assert request.gc_stdin(plugin, name="n", cni_version="1.1.0", valid_attachments=shared) == direct
    structs = [gojson.Struct(containerID=cid, ifname=ifname) for cid, ifname in PAIRS]
    expected = dict(plugin.raw, name="n", cniVersion="1.1.0")
    expected["cni.dev/valid-attachments"] = structs
    expected["cni.dev/attachments"] = structs
    assert direct == gojson.dumps_bytes(expected)
    assert (
        b'"cni.dev/valid-attachments":[{"containerID":"c1","ifname":"eth0"},{"containerID":"c\\u003c2\\u003e"' in direct
    )


def test_raw_is_written_as_is_and_only_compact() -> None:
    assert gojson.dumps({"b": gojson.Raw("[1,2]"), "a": 1}) == '{"a":1,"b":[1,2]}'
    with pytest.raises(ValueError):
        gojson.dumps([gojson.Raw("1")], indent="  ")


def _key(cid: str) -> cache.AttachmentKey:
    return cache.AttachmentKey(network="n", container_id=cid, ifname="eth0")


def test_listing_reads_every_file_and_reports_the_unreadable(tmp_path: Path) -> None:
    store = CacheStore(str(tmp_path), durable=False)
    assert list(store.iter_files()) == []  # no results/ yet
    for cid in ("a", "b", "c"):
        store.write(_key(cid), cid.encode())
    results = tmp_path / "results"
    (results / "n-d-eth0").symlink_to(results / "n-a-eth0")
    (results / "n-e-eth0").mkdir()
    listing = list(store.iter_files())
    assert [(name, data) for name, data, error in listing if error is None] == [
        ("n-a-eth0", b"a"),
        ("n-b-eth0", b"b"),
        ("n-c-eth0", b"c"),
    ]
    errors = {name: str(error) for name, data, error in listing if error is not None}
    assert set(errors) == {"n-d-eth0", "n-e-eth0"}
    assert "symbolic link" in errors["n-d-eth0"]
    assert "not a regular file" in errors["n-e-eth0"]
    assert [name for name, _, _ in store.iter_files("b")] == ["n-b-eth0"]


def test_listing_closes_its_directory(tmp_path: Path) -> None:
    store = CacheStore(str(tmp_path), durable=False)
    store.write(_key("a"), b"a")
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(50):
        list(store.iter_files())
    assert len(os.listdir("/proc/self/fd")) == before
