"""Property-based tests: whatever bytes or JSON come in -- configuration
files, plugin results, CNI_ARGS, capability arguments, cache files, plugin
output -- the parsers answer with a value or one of the project's own errors
(a :class:`~libcni_py.errors.CNIError`), never anything else."""

from __future__ import annotations

import base64
import json
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from libcni_py.core import args, gojson, operations, result, schema, version
from libcni_py.core import netconf as conf
from libcni_py.core import plugin_call as invoke
from libcni_py.core import record as cache
from libcni_py.errors import CNIError

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

VERSIONS = ["", *version.SPEC_VERSIONS, "0.5.0", "2.0.0", "1.0", "x", "1.0.0.0"]
KEYS = [
    "cniVersion",
    "cniVersions",
    "name",
    "plugins",
    "type",
    "capabilities",
    "disableCheck",
    "disableGC",
    "loadOnlyInlinedPlugins",
    "ipam",
    "dns",
    "interfaces",
    "ips",
    "routes",
    "address",
    "gateway",
    "interface",
    "version",
    "ip4",
    "ip6",
    "ip",
    "dst",
    "gw",
    "mtu",
    "sandbox",
    "mac",
    "kind",
    "containerId",
    "config",
    "ifName",
    "networkName",
    "netns",
    "cniArgs",
    "capabilityArgs",
    "result",
    "libcniPy",
    "state",
    "done",
    "code",
    "msg",
    "details",
    "supportedVersions",
    "nameservers",
    "search",
    "options",
    "domain",
    "table",
    "scope",
    "priority",
    "advmss",
    "socketPath",
    "pciID",
]
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(
        [
            "",
            "1.0.0",
            "0.3.1",
            "0.2.0",
            "10.0.0.1/24",
            "fd00::1/64",
            "10.0.0.1",
            "eth0",
            "4",
            "6",
            "0.0.0.0/0",
            "recorder",
            "adding",
            "failed",
            "cniCacheV1",
            "true",
            "x/y",
            "..",
            "\u2028",
        ]
    )
    | st.text(max_size=20)
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), inner, max_size=6)
    ),
    max_leaves=30,
)

VALID_LIST = {
    "cniVersion": "1.0.0",
    "name": "net",
    "plugins": [
        {"type": "bridge", "ipam": {"type": "host-local"}},
        {"type": "portmap", "capabilities": {"portMappings": True}},
    ],
}
VALID_RESULT = {
    "cniVersion": "1.0.0",
    "interfaces": [{"name": "eth0", "mac": "02:00:00:00:00:01", "sandbox": "/x"}],
    "ips": [{"address": "10.0.0.2/24", "gateway": "10.0.0.1", "interface": 0}],
    "routes": [{"dst": "0.0.0.0/0", "gw": "10.0.0.1"}],
    "dns": {"nameservers": ["10.0.0.53"]},
}


def mutate(doc: Any, data: st.DataObject) -> Any:
    """``doc`` with one value somewhere replaced by arbitrary JSON."""
    if isinstance(doc, dict) and doc and data.draw(st.booleans()):
        key = data.draw(st.sampled_from(sorted(doc)))
        return {**doc, key: mutate(doc[key], data)}
    if isinstance(doc, list) and doc and data.draw(st.booleans()):
        index = data.draw(st.integers(0, len(doc) - 1))
        return [*doc[:index], mutate(doc[index], data), *doc[index + 1 :]]
    return data.draw(JSON)


def only_cni_errors(func: Any, *a: Any, **kw: Any) -> Any:
    try:
        return func(*a, **kw)
    except CNIError:
        return None


# --------------------------------------------------------------------------
# configuration


@SETTINGS
@given(st.binary(max_size=300))
def test_conflist_from_any_bytes(data: bytes) -> None:
    only_cni_errors(conf.parse_conflist, data, "x.conflist")
    only_cni_errors(conf.parse_single, data, "x.conf")


@SETTINGS
@given(st.data())
def test_conflist_from_mutated_documents(data: st.DataObject) -> None:
    doc = mutate(VALID_LIST, data)
    raw = json.dumps(doc).encode()
    netlist = only_cni_errors(conf.parse_conflist, raw, "x.conflist")
    if netlist is not None:
        assert netlist.name == doc["name"] and netlist.config_bytes == raw
        netlist.capabilities()
        for plugin in netlist.plugins:
            only_cni_errors(conf.conflist_from_plugin, plugin)
    plugin = only_cni_errors(conf.parse_single, raw, "x.conf")
    if plugin is not None:
        only_cni_errors(conf.conflist_from_plugin, plugin)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_both_schema_checkers_agree(data: st.DataObject) -> None:
    doc = mutate(VALID_LIST, data)
    plugins = doc.get("plugins") if isinstance(doc, dict) else None
    plugin = plugins[0] if isinstance(plugins, list) and plugins else doc
    for kind, value in (("conflist", doc), ("plugin", plugin)):
        fast = schema.first_error(value, kind)
        full = schema.validate_with_jsonschema(value, kind)
        assert (fast is None) == (not full), (kind, value, fast, full)


# --------------------------------------------------------------------------
# results


@SETTINGS
@given(st.data(), st.sampled_from(VERSIONS))
def test_result_parse_convert_and_write(data: st.DataObject, as_version: str) -> None:
    doc = mutate(VALID_RESULT, data) if data.draw(st.booleans()) else data.draw(JSON)
    parsed = only_cni_errors(result.parse, doc, as_version)
    if parsed is None:
        return
    result.to_json_bytes(parsed)
    for target in VERSIONS:
        converted = only_cni_errors(result.convert, parsed, target)
        if converted is not None:
            again = result.parse(gojson.loads(result.to_json_bytes(converted)), converted.cni_version)
            assert again == converted


@SETTINGS
@given(st.binary(max_size=200), st.sampled_from([None, *VERSIONS]))
def test_result_from_any_bytes(data: bytes, as_version: str | None) -> None:
    only_cni_errors(result.parse_bytes, data, as_version)


# --------------------------------------------------------------------------
# plugin output


REQUEST = invoke.ExecRequest(
    plugin_type="p",
    path="/bin/p",
    command="ADD",
    stdin=b"{}",
    env={},
    network="net",
    result_version="1.0.0",
    redact=("secret",),
)


@SETTINGS
@given(st.binary(max_size=200) | JSON.map(lambda v: json.dumps(v).encode()), st.integers(-20, 300))
def test_plugin_output_of_any_kind(stdout: bytes, returncode: int) -> None:
    outcome = invoke.ExecOutcome(returncode=returncode, stdout=stdout, stderr=stdout[:50])
    for decode in (invoke.decode_result, invoke.decode_version_info):
        only_cni_errors(decode, REQUEST, outcome)
    if returncode != 0:
        error = invoke.decode_error(REQUEST, outcome)
        assert "secret" not in str(error)
        error.one_line()


# --------------------------------------------------------------------------
# runtime arguments


@SETTINGS
@given(st.text(max_size=60))
def test_cni_args_from_any_text(text: str) -> None:
    pairs = only_cni_errors(args.parse_cni_args, text)
    if pairs is not None:
        assert args.parse_cni_args(args.format_cni_args(pairs)) == pairs


NAME = st.text(st.characters(blacklist_characters="=;", blacklist_categories=("Cs",)), min_size=1, max_size=8)


@SETTINGS
@given(st.lists(st.tuples(NAME, NAME), max_size=5))
def test_cni_args_round_trip(pairs: list[tuple[str, str]]) -> None:
    checked = only_cni_errors(args.check_cni_args, pairs)
    if checked is not None:
        assert args.parse_cni_args(args.format_cni_args(checked)) == tuple(pairs)


@SETTINGS
@given(st.text(max_size=80) | JSON.map(json.dumps))
def test_capability_args_from_any_text(text: str) -> None:
    value = only_cni_errors(args.parse_capability_args, text)
    assert value is None or isinstance(value, dict)


# --------------------------------------------------------------------------
# the cache reader


def valid_record() -> dict[str, Any]:
    return json.loads(
        cache.encode_record(
            container_id="c1",
            ifname="eth0",
            network="net",
            config=json.dumps(VALID_LIST).encode(),
            netns="/x",
            cni_args=[("A", "1")],
            capability_args={"portMappings": []},
            result=VALID_RESULT,
            progress=cache.Progress(state="adding", done=1, plugins=2),
        )
    )


@SETTINGS
@given(st.binary(max_size=300))
def test_cache_record_from_any_bytes(data: bytes) -> None:
    only_cni_errors(cache.decode_record, data, "results/x")


@SETTINGS
@given(st.data())
def test_cache_record_from_mutated_records(data: st.DataObject) -> None:
    doc = mutate(valid_record(), data)
    if data.draw(st.booleans()) and isinstance(doc, dict):
        doc["config"] = base64.b64encode(json.dumps(mutate(VALID_LIST, data)).encode()).decode()
    raw = json.dumps(doc).encode()
    record = only_cni_errors(cache.decode_record, raw, "results/x")
    if record is not None:
        assume(not record.legacy)
        cache.key_or_none(record)
        # what DEL and GC do with a record: its configuration, its result
        key = cache.AttachmentKey(network="net", container_id="c1", ifname="eth0")
        recorded, _ = operations._recorded_config(record, key, None)
        if recorded is not None:
            assert recorded.name == "net"
        only_cni_errors(operations._cached_result, record, "1.0.0", "results/x")
    records, damaged = cache.cached_attachments([("net-c1-eth0", raw, None)])
    assert len(records) + len(damaged) <= 1
