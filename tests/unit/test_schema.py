"""Unit tests for libcni_py.core.schema: the shipped JSON Schemas, and the compact
validator ``first_error`` checked against the ``jsonschema`` package."""

from __future__ import annotations

import copy
import json
import os
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from libcni_py.core import schema

SCHEMA_DIR = os.path.join(os.path.dirname(schema.__file__), "schemas")


# --------------------------------------------------------------------------- the schema documents


def test_schema_names_are_the_files_shipped() -> None:
    files = sorted(name[: -len(".json")] for name in os.listdir(SCHEMA_DIR) if name.endswith(".json"))
    assert files == sorted(schema.SCHEMA_NAMES)


@pytest.mark.parametrize("name", schema.SCHEMA_NAMES)
def test_every_schema_is_valid_draft_2020_12(name: str) -> None:
    doc = schema.load(name)
    jsonschema.Draft202012Validator.check_schema(doc)
    assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert doc["$id"].endswith(f"/{name}.json")


def test_load_is_cached() -> None:
    assert schema.load("conflist") is schema.load("conflist")


@pytest.mark.parametrize("name", schema.SCHEMA_NAMES)
def test_refs_resolve(name: str) -> None:
    """Every $ref of every schema points at something that exists."""

    def walk(node: Any) -> list[str]:
        refs: list[str] = []
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                refs.append(node["$ref"])
            for value in node.values():
                refs.extend(walk(value))
        elif isinstance(node, list):
            for value in node:
                refs.extend(walk(value))
        return refs

    for ref in walk(schema.load(name)):
        target, _ = schema._resolve(ref, name)
        assert isinstance(target, dict), ref


# --------------------------------------------------------------------------- format_path


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        ([], ""),
        (["plugins", 1, "type"], "plugins[1].type"),
        ([0], "[0]"),
        (["a", 0, 1], "a[0][1]"),
        (["cni.dev/valid-attachments"], '["cni.dev/valid-attachments"]'),
        (["capabilities", "io.kubernetes.cri.pod-annotations"], 'capabilities["io.kubernetes.cri.pod-annotations"]'),
        (["a b"], '["a b"]'),
        (["_x9"], "_x9"),
        (["9x"], '["9x"]'),
        ([""], '[""]'),
        (("ips", 0, "address"), "ips[0].address"),
    ],
)
def test_format_path(parts: list[str | int], expected: str) -> None:
    assert schema.format_path(parts) == expected


# --------------------------------------------------------------------------- hand-written documents

GOOD: dict[str, list[Any]] = {
    "conflist": [
        {"name": "n"},
        {"name": "n", "cniVersion": "1.0.0", "plugins": [{"type": "bridge"}]},
        {
            "name": "n",
            "cniVersions": ["1.0.0", "1.1.0"],
            "disableCheck": True,
            "disableGC": "FALSE",
            "loadOnlyInlinedPlugins": "True",
            "plugins": [
                {"type": "bridge", "capabilities": {"portMappings": True}, "ipam": {"type": "host-local"}},
                {"type": "tuning", "name": None, "dns": {"nameservers": ["1.1.1.1"]}, "custom": [1, {"x": None}]},
            ],
            "extra": {"anything": 1},
        },
    ],
    "plugin": [
        {"type": "x"},
        {"type": "x", "name": None, "cniVersion": None, "capabilities": None, "ipam": None, "dns": None},
        {"type": "x", "prevResult": {}, "runtimeConfig": {"a": 1}, "args": {"cni": {}}, "whatever": "<>"},
        {"type": "x", "ipam": {"type": None, "subnet": "10.0.0.0/8"}},
    ],
    "result-020": [
        {},
        {"cniVersion": "0.2.0", "ip4": {"ip": "10.0.0.2/24", "gateway": "10.0.0.1", "routes": [{"dst": "0.0.0.0/0"}]}},
        {"ip4": None, "ip6": {"ip": "fd00::2/64", "routes": None}, "dns": {"nameservers": None}},
    ],
    "result-040": [
        {},
        {
            "cniVersion": "0.4.0",
            "interfaces": [{"name": "eth0", "mac": "aa", "sandbox": "/x"}],
            "ips": [{"version": "4", "interface": 0, "address": "10.0.0.2/24", "gateway": "10.0.0.1"}],
            "routes": [{"dst": "0.0.0.0/0", "gw": None}],
            "dns": {},
        },
        {"ips": None, "interfaces": None, "routes": None, "dns": None, "unknown": 1},
    ],
    "result-100": [
        {},
        {
            "cniVersion": "1.1.0",
            "interfaces": [{"name": "eth0", "mtu": 1500, "socketPath": "/s", "pciID": "0000:00:01.0"}],
            "ips": [{"address": "10.0.0.2/24", "interface": 0}],
            "routes": [{"dst": "0.0.0.0/0", "mtu": 1400, "advmss": 1360, "priority": 5, "table": 0, "scope": 0}],
            "dns": {"nameservers": ["1.1.1.1"], "domain": "x", "search": ["a"], "options": ["ndots:1"]},
        },
        {"ips": [{"address": "x", "interface": 1.0}]},
    ],
    "error": [
        {},
        {"cniVersion": "1.0.0", "code": 7, "msg": "bad", "details": "more"},
        {"code": None, "msg": None, "details": None},
        {"code": 0},
    ],
    "version": [
        {"cniVersion": "1.0.0"},
        {"cniVersion": "1.0.0", "supportedVersions": ["0.4.0", "1.0.0"]},
        {"cniVersion": "0.2.0", "supportedVersions": None},
    ],
    "cache": [
        {"kind": "cniCacheV1"},
        {
            "kind": "cniCacheV1",
            "containerId": "c",
            "config": "e30=",
            "ifName": "eth0",
            "networkName": "n",
            "netns": "/run/netns/x",
            "cniArgs": [["A", "1"], ["B", "2"]],
            "capabilityArgs": {"portMappings": []},
            "result": {"cniVersion": "1.0.0"},
            "libcniPy": {"state": "adding", "done": 0, "plugins": 2},
        },
        {"kind": "x", "cniArgs": None, "result": None, "capabilityArgs": None},
    ],
}

# (document, expected path, expected message) -- the message is first_error's
BAD: dict[str, list[tuple[Any, str, str]]] = {
    "conflist": [
        ([], "", "expected an object"),
        ({}, "", 'missing required field "name"'),
        ({"name": 5}, "name", "expected a string"),
        ({"name": "n", "cniVersion": 1}, "cniVersion", "expected a string"),
        ({"name": "n", "cniVersions": "1.0.0"}, "cniVersions", "expected a list"),
        ({"name": "n", "cniVersions": ["1.0.0", 1]}, "cniVersions[1]", "expected a string"),
        ({"name": "n", "plugins": []}, "plugins", "must list at least one plugin"),
        ({"name": "n", "plugins": {}}, "plugins", "expected a list"),
        ({"name": "n", "plugins": [{"type": "a"}, {"type": 5}]}, "plugins[1].type", "expected a string"),
        ({"name": "n", "plugins": [{"type": "a"}, {}]}, "plugins[1]", 'missing required field "type"'),
        ({"name": "n", "plugins": ["bridge"]}, "plugins[0]", "expected an object"),
        (
            {"name": "n", "plugins": [{"type": ""}]},
            "plugins[0].type",
            "must not be empty: it names the plugin binary",
        ),
        (
            {"name": "n", "plugins": [{"type": "../bin/sh"}]},
            "plugins[0].type",
            "must be a file name inside the plugin directories: no '/', not '.' or '..'",
        ),
        (
            {"name": "n", "disableCheck": "yes"},
            "disableCheck",
            'expected true or false (or the strings "true"/"false")',
        ),
        ({"name": "n", "disableGC": 1}, "disableGC", 'expected true or false (or the strings "true"/"false")'),
        (
            {"name": "n", "loadOnlyInlinedPlugins": None},
            "loadOnlyInlinedPlugins",
            'expected true or false (or the strings "true"/"false")',
        ),
        (
            {"name": "n", "plugins": [{"type": "a", "capabilities": {"portMappings": "true"}}]},
            "plugins[0].capabilities.portMappings",
            "expected true or false",
        ),
        (
            {"name": "n", "plugins": [{"type": "a", "capabilities": {"io.kubernetes.cri.pod-annotations": 1}}]},
            'plugins[0].capabilities["io.kubernetes.cri.pod-annotations"]',
            "expected true or false",
        ),
        (
            {"name": "n", "plugins": [{"type": "a", "ipam": {"type": 3}}]},
            "plugins[0].ipam.type",
            "expected a string",
        ),
        (
            {"name": "n", "plugins": [{"type": "a", "dns": {"nameservers": "1.1.1.1"}}]},
            "plugins[0].dns.nameservers",
            "expected a list",
        ),
        ({"name": "n", "plugins": [{"type": "a", "prevResult": []}]}, "plugins[0].prevResult", "expected an object"),
    ],
    "plugin": [
        ("x", "", "expected an object"),
        ({}, "", 'missing required field "type"'),
        ({"type": None}, "type", "expected a string"),
        ({"type": "a", "name": 1}, "name", "expected a string"),
        ({"type": "a", "capabilities": []}, "capabilities", "expected an object"),
        ({"type": "a", "runtimeConfig": "x"}, "runtimeConfig", "expected an object"),
        ({"type": "a", "args": 1}, "args", "expected an object"),
        ({"type": "a", "ipam": "host-local"}, "ipam", "expected an object"),
    ],
    "result-020": [
        ({"cniVersion": 2}, "cniVersion", "expected a string"),
        ({"ip4": {}}, "ip4", 'missing required field "ip"'),
        ({"ip4": {"ip": 1}}, "ip4.ip", "expected a string"),
        ({"ip6": {"ip": "x", "routes": [{}]}}, "ip6.routes[0]", 'missing required field "dst"'),
        ({"ip6": {"ip": "x", "gateway": []}}, "ip6.gateway", "expected a string"),
        ({"dns": {"search": [1]}}, "dns.search[0]", "expected a string"),
    ],
    "result-040": [
        ({"ips": {}}, "ips", "expected a list"),
        ({"ips": [{}]}, "ips[0]", 'missing required field "address"'),
        ({"ips": [{"address": "a", "interface": "0"}]}, "ips[0].interface", "expected an integer"),
        ({"ips": [{"address": "a", "interface": 0.5}]}, "ips[0].interface", "expected an integer"),
        ({"ips": [{"address": "a", "version": 4}]}, "ips[0].version", "expected a string"),
        ({"interfaces": [{"name": 1}]}, "interfaces[0].name", "expected a string"),
        ({"interfaces": ["eth0"]}, "interfaces[0]", "expected an object"),
        ({"routes": [{"dst": "x", "gw": 1}]}, "routes[0].gw", "expected a string"),
        ({"dns": []}, "dns", "expected an object"),
    ],
    "result-100": [
        ({"ips": [{"address": 5}]}, "ips[0].address", "expected a string"),
        ({"interfaces": [{"mtu": "1500"}]}, "interfaces[0].mtu", "expected an integer"),
        ({"interfaces": [{"mtu": True}]}, "interfaces[0].mtu", "expected an integer"),
        ({"routes": [{"dst": "x", "table": 1.5}]}, "routes[0].table", "expected an integer"),
        ({"routes": [{"dst": "x", "scope": "link"}]}, "routes[0].scope", "expected an integer"),
        ({"routes": [{"dst": None}]}, "routes[0].dst", "expected a string"),
        ({"dns": {"options": "x"}}, "dns.options", "expected a list"),
    ],
    "error": [
        ([], "", "expected an object"),
        ({"code": "11"}, "code", "expected an integer"),
        ({"code": -1}, "code", "must be at least 0"),
        ({"code": 1.5}, "code", "expected an integer"),
        ({"msg": 5}, "msg", "expected a string"),
        ({"details": {}}, "details", "expected a string"),
    ],
    "version": [
        ({}, "", 'missing required field "cniVersion"'),
        ({"cniVersion": ""}, "cniVersion", "must not be empty"),
        ({"cniVersion": None}, "cniVersion", "expected a string"),
        ({"cniVersion": "1.0.0", "supportedVersions": "1.0.0"}, "supportedVersions", "expected a list"),
        ({"cniVersion": "1.0.0", "supportedVersions": [1]}, "supportedVersions[0]", "expected a string"),
    ],
    "cache": [
        ({}, "", 'missing required field "kind"'),
        ({"kind": 1}, "kind", "expected a string"),
        ({"kind": "k", "config": 5}, "config", "expected a string"),
        ({"kind": "k", "cniArgs": [["A"]]}, "cniArgs[0]", "must have at least 2 item(s)"),
        ({"kind": "k", "cniArgs": [["A", "1", "2"]]}, "cniArgs[0]", "must have at most 2 item(s)"),
        ({"kind": "k", "cniArgs": [["A", 1]]}, "cniArgs[0][1]", "expected a string"),
        ({"kind": "k", "cniArgs": "A=1"}, "cniArgs", "expected a list"),
        ({"kind": "k", "capabilityArgs": []}, "capabilityArgs", "expected an object"),
        ({"kind": "k", "result": "x"}, "result", "expected an object"),
        (
            {"kind": "k", "libcniPy": {"state": "done"}},
            "libcniPy.state",
            'must be one of "adding", "failed", "deleting"',
        ),
        ({"kind": "k", "libcniPy": {"done": -1}}, "libcniPy.done", "must be at least 0"),
        ({"kind": "k", "libcniPy": {"plugins": "2"}}, "libcniPy.plugins", "expected an integer"),
        ({"kind": "k", "libcniPy": None}, "libcniPy", "expected an object"),
    ],
}


def _jsonschema_paths(doc: Any, name: str) -> list[str]:
    return [path for path, _ in schema.validate_with_jsonschema(doc, name)]


@pytest.mark.parametrize(("name", "doc"), [(n, d) for n, docs in GOOD.items() for d in docs])
def test_good_documents(name: str, doc: Any) -> None:
    assert schema.first_error(doc, name) is None
    assert schema.validate_with_jsonschema(doc, name) == []


@pytest.mark.parametrize(("name", "doc", "path", "message"), [(n, *case) for n, cases in BAD.items() for case in cases])
def test_bad_documents(name: str, doc: Any, path: str, message: str) -> None:
    assert schema.first_error(doc, name) == (path, message)
    assert path in _jsonschema_paths(doc, name)


def test_every_schema_has_good_and_bad_cases() -> None:
    assert set(GOOD) == set(BAD) == set(schema.SCHEMA_NAMES)


def test_prefix_is_prepended_to_path() -> None:
    fault = schema.first_error({"type": 1}, "plugin", prefix=("plugins", 3))
    assert fault == ("plugins[3].type", "expected a string")
    assert schema.first_error({"type": "ok"}, "plugin", prefix=("plugins", 3)) is None


def test_validate_with_jsonschema_reports_every_fault() -> None:
    faults = schema.validate_with_jsonschema({"name": 1, "plugins": [{"type": 2}, {}]}, "conflist")
    paths = sorted(path for path, _ in faults)
    assert paths == ["name", "plugins[0].type", "plugins[1]"]


def test_first_error_does_not_modify_document() -> None:
    doc = {"name": "n", "plugins": [{"type": "a", "capabilities": {"x": True}}]}
    before = copy.deepcopy(doc)
    schema.first_error(doc, "conflist")
    assert doc == before


# --------------------------------------------------------------------------- generated documents

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10)
    | st.sampled_from(["true", "False", "", "a/b", "1.0.0", "adding", "cniCacheV1"])
)
_keys = st.sampled_from(
    [
        "name",
        "type",
        "cniVersion",
        "cniVersions",
        "plugins",
        "disableCheck",
        "disableGC",
        "loadOnlyInlinedPlugins",
        "capabilities",
        "ipam",
        "dns",
        "ips",
        "interfaces",
        "routes",
        "address",
        "dst",
        "ip4",
        "ip",
        "code",
        "msg",
        "kind",
        "cniArgs",
        "libcniPy",
        "state",
        "done",
        "supportedVersions",
        "mtu",
        "table",
    ]
) | st.text(max_size=5)
json_values = st.recursive(
    _scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_keys, children, max_size=5),
    max_leaves=20,
)


def _agree(doc: Any, name: str) -> None:
    fault = schema.first_error(doc, name)
    faults = schema.validate_with_jsonschema(doc, name)
    if fault is None:
        assert faults == [], faults
    else:
        assert faults, f"first_error says {fault} but jsonschema finds nothing"
        assert fault[0] in [path for path, _ in faults], (fault, faults)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(schema.SCHEMA_NAMES), json_values)
def test_agrees_with_jsonschema_on_arbitrary_json(name: str, doc: Any) -> None:
    _agree(doc, name)


VALID_CONFLIST: dict[str, Any] = {
    "name": "mynet",
    "cniVersion": "1.0.0",
    "cniVersions": ["0.4.0", "1.1.0"],
    "disableCheck": "false",
    "plugins": [
        {
            "type": "bridge",
            "bridge": "cni0",
            "ipam": {"type": "host-local", "routes": [{"dst": "0.0.0.0/0"}]},
            "dns": {"nameservers": ["10.0.0.1"]},
        },
        {"type": "portmap", "capabilities": {"portMappings": True}},
    ],
}

VALID_RESULT: dict[str, Any] = {
    "cniVersion": "1.1.0",
    "interfaces": [{"name": "eth0", "mac": "aa:bb", "sandbox": "/run/netns/x", "mtu": 1500}],
    "ips": [{"address": "10.0.0.2/24", "gateway": "10.0.0.1", "interface": 0, "version": "4"}],
    "routes": [{"dst": "0.0.0.0/0", "gw": "10.0.0.1", "table": 100}],
    "dns": {"nameservers": ["10.0.0.1"], "search": ["x"]},
}


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(doc, dict):
        for key, value in doc.items():
            out.extend(_paths(value, (*prefix, key)))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            out.extend(_paths(value, (*prefix, index)))
    return out


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any]) -> Any:
    """A valid document with one to three small changes: a value replaced,
    a key removed, a key added, or a list emptied."""
    doc = copy.deepcopy(base)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        paths = _paths(doc)
        path = draw(st.sampled_from(paths))
        if not path:
            continue
        parent: Any = doc
        for part in path[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["replace", "delete", "add", "empty"]))
        last = path[-1]
        if action == "replace":
            parent[last] = draw(json_values)
        elif action == "delete":
            del parent[last]
        elif action == "add" and isinstance(parent[last], dict):
            parent[last][draw(_keys)] = draw(json_values)
        elif action == "empty" and isinstance(parent[last], (list, dict, str)):
            parent[last] = type(parent[last])()
    return doc


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated(VALID_CONFLIST))
def test_agrees_on_near_valid_conflists(doc: Any) -> None:
    _agree(doc, "conflist")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["result-020", "result-040", "result-100"]), mutated(VALID_RESULT))
def test_agrees_on_near_valid_results(name: str, doc: Any) -> None:
    _agree(doc, name)


def test_mutation_strategy_produces_invalid_documents() -> None:
    """Guard against a mutation strategy that never leaves the valid set."""
    assert schema.first_error(VALID_CONFLIST, "conflist") is None
    broken = json.loads(json.dumps(VALID_CONFLIST))
    broken["plugins"][1]["capabilities"]["portMappings"] = "yes"
    assert schema.first_error(broken, "conflist") == ("plugins[1].capabilities.portMappings", "expected true or false")
