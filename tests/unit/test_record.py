"""Unit tests for libcni_py.core.record: the cniCacheV1 record format.

The two fixtures were written by Go libcni 1.1.2 (copied from ../shared/fixtures/go-libcni-cache
into testdata/go-libcni-cache).
"""

from __future__ import annotations

import base64
import os

import pytest

from libcni_py.core import gojson, result
from libcni_py.core import record as cache
from libcni_py.core.record import AttachmentKey, CacheRecord, Progress, decode_record, encode_record
from libcni_py.errors import CODE_IO_FAILURE, CacheError, InvalidNameError

# copies of ../shared/fixtures/go-libcni-cache (written by Go libcni 1.1.2), kept in testdata/
FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "testdata", "go-libcni-cache")
MYNET = "mynet-cnitool-31ce19681ea4b043eb6b-eth0"
LEGACYNET = "legacynet-cnitool-112ddea72a314a851315-net1"


def _fixture(name: str) -> bytes:
    with open(os.path.join(FIXTURES, name), "rb") as fh:
        return fh.read()


def _reencode(record: CacheRecord, **overrides: object) -> bytes:
    fields: dict[str, object] = {
        "container_id": record.container_id,
        "ifname": record.ifname,
        "network": record.network,
        "config": record.config,
        "netns": record.netns,
        "cni_args": record.cni_args,
        "capability_args": record.capability_args,
        "result": record.result,
    }
    fields.update(overrides)
    return encode_record(**fields)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- Go's files


@pytest.mark.parametrize("name", [MYNET, LEGACYNET])
def test_encode_is_byte_exact_with_go(name: str) -> None:
    raw = _fixture(name)
    record = decode_record(raw, name)
    assert record.netns == ""
    assert _reencode(record) == raw


def test_decode_mynet_fixture() -> None:
    record = decode_record(_fixture(MYNET), MYNET)
    assert record.container_id == "cnitool-31ce19681ea4b043eb6b"
    assert record.ifname == "eth0"
    assert record.network == "mynet"
    assert record.cni_args == (("K8S_POD_NAMESPACE", "default"), ("K8S_POD_NAME", "web-0"), ("IgnoreUnknown", "1"))
    assert record.capability_args == {"portMappings": [{"containerPort": 80, "hostPort": 18080, "protocol": "tcp"}]}
    assert record.config.startswith(b'{"cniVersion":"1.0.0","name":"mynet","plugins":[')
    assert record.config.endswith(b"]}\n")
    assert gojson.loads(record.config)["plugins"][1] == {"type": "portmap", "capabilities": {"portMappings": True}}
    assert record.result is not None
    assert record.result["ips"] == [{"address": "10.244.1.61/24", "gateway": "10.244.1.1", "interface": 2}]
    assert record.progress is None
    assert record.complete
    assert not record.legacy
    assert record.key() == AttachmentKey(network="mynet", container_id="cnitool-31ce19681ea4b043eb6b", ifname="eth0")
    assert record.key().filename == MYNET


def test_decode_legacynet_fixture() -> None:
    record = decode_record(_fixture(LEGACYNET), LEGACYNET)
    assert (record.network, record.ifname) == ("legacynet", "net1")
    assert record.cni_args == ()
    assert record.capability_args == {}
    assert record.result is not None
    assert record.result["cniVersion"] == "0.4.0"
    parsed = result.parse(record.result, "0.4.0")
    assert isinstance(parsed, result.Result)
    assert parsed.ips[0].version == "4"
    assert record.key().filename == LEGACYNET


def test_fixture_result_through_typed_result_is_byte_exact() -> None:
    """What ADD caches: the typed result's Go JSON, written with sorted keys."""
    raw = _fixture(MYNET)
    record = decode_record(raw, MYNET)
    assert record.result is not None
    typed = result.parse(record.result, "1.0.0")
    # the fixture is Go libcni 1.1.2's: its empty "dns": {} is what 1.3.0 (and we) leave out
    assert b',"dns":{}' in raw
    assert _reencode(record, result=result.to_json(typed)) == raw.replace(b',"dns":{}', b"", 1)


# --------------------------------------------------------------------------- encoding


def test_encode_field_order_and_omitempty() -> None:
    data = encode_record(
        container_id="c1",
        ifname="eth0",
        network="n",
        config=b'{"a":1}',
        netns="",
        cni_args=(),
        capability_args=None,
        result=None,
    )
    assert data == b'{"kind":"cniCacheV1","containerId":"c1","config":"eyJhIjoxfQ==","ifName":"eth0","networkName":"n"}'


def test_encode_all_fields() -> None:
    data = encode_record(
        container_id="c1",
        ifname="eth0",
        network="n",
        config=b"",
        netns="/run/netns/x",
        cni_args=[("B", "2"), ("A", "1")],
        capability_args={"z": 1, "a": "<"},
        result=gojson.Struct(cniVersion="1.0.0", dns=gojson.Struct(), ips=[gojson.Struct(z=1, address="x")]),
    )
    assert data == (
        b'{"kind":"cniCacheV1","containerId":"c1","config":"","ifName":"eth0","networkName":"n",'
        b'"netns":"/run/netns/x","cniArgs":[["B","2"],["A","1"]],"capabilityArgs":{"a":"\\u003c","z":1},'
        b'"result":{"cniVersion":"1.0.0","dns":{},"ips":[{"address":"x","z":1}]}}'
    )


def test_encode_empty_result_and_args_omitted() -> None:
    data = encode_record(
        container_id="c",
        ifname="e",
        network="n",
        config=b"x",
        netns="",
        cni_args=[],
        capability_args={},
        result={},
    )
    doc = gojson.loads(data)
    assert set(doc) == {"kind", "containerId", "config", "ifName", "networkName"}
    assert base64.b64decode(doc["config"]) == b"x"


def test_progress_marker_round_trip() -> None:
    progress = Progress(state="adding", done=1, plugins=3)
    data = encode_record(
        container_id="c",
        ifname="eth0",
        network="n",
        config=b"{}",
        netns="/run/netns/x",
        cni_args=[("A", "1")],
        capability_args=None,
        result={"cniVersion": "1.0.0"},
        progress=progress,
    )
    assert data.endswith(b',"libcniPy":{"state":"adding","done":1,"plugins":3}}')
    record = decode_record(data, "p")
    assert record.progress == progress
    assert not record.complete
    assert record.netns == "/run/netns/x"
    assert record.result == {"cniVersion": "1.0.0"}
    failed = decode_record(data.replace(b'"adding"', b'"failed"'), "p")
    assert failed.progress == Progress(state="failed", done=1, plugins=3)


def _marked(progress: Progress) -> bytes:
    """A minimal record carrying ``progress``."""
    return encode_record(
        container_id="c",
        ifname="eth0",
        network="n",
        config=b"{}",
        netns="",
        cni_args=(),
        capability_args=None,
        result=None,
        progress=progress,
    )


def test_deleting_marker_round_trip() -> None:
    progress = Progress(state=cache.DELETING, done=2, plugins=3, remaining=[(1, "portmap")])
    data = _marked(progress)
    assert data.endswith(
        b',"libcniPy":{"state":"deleting","done":2,"plugins":3,"remaining":[{"index":1,"type":"portmap"}]}}'
    )
    record = decode_record(data, "p")
    assert record.progress == progress and not record.complete
    assert progress.describe() == "DEL unfinished: still to delete: portmap"
    # an ADD marker never carries "remaining"
    assert b"remaining" not in _marked(Progress(state="adding", done=0, plugins=1, remaining=[(0, "x")]))


@pytest.mark.parametrize(
    "marker",
    [
        b'{"state":"deleting","remaining":[{"index":-1,"type":"x"}]}',
        b'{"state":"deleting","remaining":[{"index":0}]}',
        b'{"state":"deleting","remaining":{"index":0,"type":"x"}}',
        b'{"state":"deleting","remaining":[{"index":"0","type":"x"}]}',
    ],
)
def test_a_bad_deleting_marker_is_a_damaged_record(marker: bytes) -> None:
    with pytest.raises(CacheError, match=r"is damaged: libcniPy\.remaining"):
        decode_record(b'{"kind":"cniCacheV1","libcniPy":' + marker + b"}", "p")


def test_owner_tells_whose_record_it_is() -> None:
    """x/a-b and x-a/b share the file n-x-a-b: a collision, not a misplaced record."""
    key = AttachmentKey(network="n", container_id="x", ifname="a-b")
    mine = CacheRecord(container_id="x", ifname="a-b", network="n")
    other = CacheRecord(container_id="x-a", ifname="b", network="n")
    misplaced = CacheRecord(container_id="y", ifname="eth0", network="n")
    assert cache.owner(mine, key) == "" and not cache.shares_file(mine, key)
    assert cache.owner(other, key) == "network 'n', container 'x-a', interface 'b'"
    assert cache.shares_file(other, key)
    assert cache.owner(misplaced, key) and not cache.shares_file(misplaced, key)
    assert cache.owner(CacheRecord(container_id="", ifname="", network="", legacy=True), key) == ""


def test_progress_marker_defaults() -> None:
    record = decode_record(b'{"kind":"cniCacheV1","libcniPy":{}}', "p")
    assert record.progress == Progress(state="adding", done=0, plugins=0)


@pytest.mark.parametrize("config", [b"", b"\x00\xff binary", b'{"name":"n"}\n' * 50])
def test_config_bytes_round_trip(config: bytes) -> None:
    data = encode_record(
        container_id="c",
        ifname="eth0",
        network="n",
        config=config,
        netns="",
        cni_args=(),
        capability_args=None,
        result=None,
    )
    assert decode_record(data, "p").config == config


def test_config_base64_with_line_breaks_is_accepted() -> None:
    encoded = base64.b64encode(b"x" * 100).decode()
    wrapped = encoded[:40] + "\\r\\n" + encoded[40:]
    record = decode_record(f'{{"kind":"cniCacheV1","config":"{wrapped}"}}'.encode(), "p")
    assert record.config == b"x" * 100


# --------------------------------------------------------------------------- decoding problems


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"", "is empty"),
        (b"  \n", "is empty"),
        (b'{"kind":"cniCacheV1","containerId":"c","conf', "is damaged: not valid JSON"),
        (b"\x00\x00\x00", "is damaged"),
        (b"garbage", "is damaged: not valid JSON"),
        (b"[1,2]", "is damaged: expected a JSON object"),
        (b'"cniCacheV1"', "is damaged: expected a JSON object"),
        (b'{"kind":"somethingElse"}', "is not a cniCacheV1 record (kind 'somethingElse')"),
        (b'{"containerId":"c"}', "is not a cniCacheV1 record (kind None)"),
        (b'{"kind":"cniCacheV1","config":"not base64!"}', "is damaged: config: not valid base64"),
        (b'{"kind":"cniCacheV1","config":"YWI"}', "is damaged: config: not valid base64"),
        (b'{"kind":"cniCacheV1","config":"=YWJj"}', "is damaged: config: not valid base64"),
        (b'{"kind":"cniCacheV1","config":5}', "is damaged: config: expected a string"),
        (b'{"kind":"cniCacheV1","cniArgs":[["A"]]}', "is damaged: cniArgs[0]: must have at least 2 item(s)"),
        (b'{"kind":"cniCacheV1","result":[]}', "is damaged: result: expected an object"),
        (b'{"kind":"cniCacheV1","libcniPy":{"state":"odd"}}', 'is damaged: libcniPy.state: must be one of "adding"'),
    ],
)
def test_decode_errors(data: bytes, fragment: str) -> None:
    with pytest.raises(CacheError) as info:
        decode_record(data, "/var/lib/cni/results/n-c-eth0")
    assert str(info.value).startswith("/var/lib/cni/results/n-c-eth0: ")
    assert fragment in str(info.value)
    assert info.value.path == "/var/lib/cni/results/n-c-eth0"
    assert info.value.code == CODE_IO_FAILURE


@pytest.mark.parametrize("config", ["YWJj=", "YWJj=="])
def test_excess_base64_padding_is_damaged(config: str) -> None:
    with pytest.raises(CacheError, match="not valid base64"):
        decode_record(f'{{"kind":"cniCacheV1","config":"{config}"}}'.encode(), "p")


def test_truncated_fixture_is_damaged() -> None:
    raw = _fixture(MYNET)
    for cut in (1, len(raw) // 2, len(raw) - 1):
        with pytest.raises(CacheError, match="is damaged"):
            decode_record(raw[:cut], MYNET)


@pytest.mark.parametrize(
    "data",
    [
        b'{"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.0.0.2/24"}],"dns":{}}',
        b'{"ip4":{"ip":"10.0.0.2/24"}}',
        b'{"interfaces":[{"name":"eth0"}]}',
        b'{"kind":"cniCacheV2","cniVersion":"1.0.0"}',
    ],
)
def test_legacy_bare_result(data: bytes) -> None:
    record = decode_record(data, "p")
    assert record.legacy
    assert record.result == gojson.loads(data)
    assert (record.container_id, record.ifname, record.network) == ("", "", "")
    assert cache.key_or_none(record) is None


def test_key_of_hostile_record_refused() -> None:
    record = decode_record(b'{"kind":"cniCacheV1","containerId":"../../etc","ifName":"eth0","networkName":"n"}', "p")
    with pytest.raises(InvalidNameError):
        record.key()
    assert cache.key_or_none(record) is None


# --------------------------------------------------------------------------- AttachmentKey


def test_attachment_key_valid() -> None:
    key = AttachmentKey(network="my.net-1", container_id="0abc_DEF", ifname="eth0.100")
    assert key.filename == "my.net-1-0abc_DEF-eth0.100"
    with pytest.raises(AttributeError):
        key.network = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("network", "container_id", "ifname", "field"),
    [
        ("../x", "c", "eth0", "network name"),
        ("a/b", "c", "eth0", "network name"),
        ("", "c", "eth0", "network name"),
        ("n", "../x", "eth0", "container ID"),
        ("n", "a/b", "eth0", "container ID"),
        ("n", "", "eth0", "container ID"),
        ("n", "c", "eth0:1", "interface name"),
        ("n", "c", "../x", "interface name"),
        ("n", "c", "..", "interface name"),
        ("n", "c", "a" * 16, "interface name"),
        ("n", "c", "", "interface name"),
    ],
)
def test_attachment_key_rejects_invalid_names(network: str, container_id: str, ifname: str, field: str) -> None:
    with pytest.raises(InvalidNameError) as info:
        AttachmentKey(network=network, container_id=container_id, ifname=ifname)
    assert info.value.field == field


def test_record_value_semantics() -> None:
    pairs: list[list[str]] = [["A", "1"]]
    a = CacheRecord(
        container_id="c",
        ifname="e",
        network="n",
        cni_args=pairs,  # type: ignore[arg-type]
        capability_args={"x": [1]},
    )
    b = CacheRecord(container_id="c", ifname="e", network="n", cni_args=(("A", "1"),), capability_args={"x": [1]})
    assert a == b
    assert hash(a) == hash(b)
    assert a.cni_args == (("A", "1"),)
    assert a.replace(netns="/x").netns == "/x"
