"""The compiled schema checks (issue 7) find the same first fault, with the
same JSON path and message, as the keyword interpreter they replaced --
kept here as the oracle -- on the shipped schemas, for valid documents and
for documents with one part broken."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from libcni_py.core import schema

# -- the interpreter schema.first_error used before (the oracle) ------------------------------------


def _is_type(value: Any, type_name: str) -> bool:
    if type_name == "string":
        return isinstance(value, str)
    if type_name == "object":
        return isinstance(value, dict)
    if type_name == "array":
        return isinstance(value, list)
    if type_name == "boolean":
        return isinstance(value, bool)
    if type_name == "null":
        return value is None
    if isinstance(value, bool):
        return False
    if type_name == "integer":
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if type_name == "number":
        return isinstance(value, (int, float))
    return False


def _check(value: Any, node: dict[str, Any], file: str, path: list[str | int]) -> Any:
    msg = schema._message
    ref = node.get("$ref")
    if ref is not None:
        target, target_file = schema._resolve(ref, file)
        fault = _check(value, target, target_file, path)
        if fault is not None:
            return fault
    types = node.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else list(types)
        if not any(_is_type(value, t) for t in names):
            wanted = " or ".join(schema._TYPE_WORDS[t] for t in names if t != "null")
            return path, msg(node, "type", f"expected {wanted}")
    if "anyOf" in node and all(_check(value, sub, file, path) is not None for sub in node["anyOf"]):
        return path, msg(node, "anyOf", "does not match any allowed form")
    if "enum" in node and value not in node["enum"]:
        allowed = ", ".join(json.dumps(v) for v in node["enum"])
        return path, msg(node, "enum", f"must be one of {allowed}")
    if isinstance(value, str):
        if "minLength" in node and len(value) < node["minLength"]:
            return path, msg(node, "minLength", "must not be empty")
        pattern = node.get("pattern")
        if pattern is not None and re.search(pattern, value) is None:
            return path, msg(node, "pattern", f"must match {pattern}")
    if (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and "minimum" in node
        and value < node["minimum"]
    ):
        return path, msg(node, "minimum", f"must be at least {node['minimum']}")
    if isinstance(value, dict):
        for key in node.get("required", ()):
            if key not in value:
                return path, msg(node, "required", f'missing required field "{key}"')
        props: dict[str, Any] = node.get("properties", {})
        extra = node.get("additionalProperties", True)
        for key, item in value.items():
            sub = props.get(key)
            if sub is None:
                if extra is False:
                    return [*path, key], msg(node, "additionalProperties", "unknown field")
                if extra is True:
                    continue
                sub = extra
            fault = _check(item, sub, file, [*path, key])
            if fault is not None:
                return fault
    if isinstance(value, list):
        if "minItems" in node and len(value) < node["minItems"]:
            return path, msg(node, "minItems", f"must have at least {node['minItems']} item(s)")
        if "maxItems" in node and len(value) > node["maxItems"]:
            return path, msg(node, "maxItems", f"must have at most {node['maxItems']} item(s)")
        items = node.get("items")
        if isinstance(items, dict):
            for index, item in enumerate(value):
                fault = _check(item, items, file, [*path, index])
                if fault is not None:
                    return fault
    return None


def oracle(value: Any, name: str, prefix: tuple[str | int, ...] = ()) -> tuple[str, str] | None:
    fault = _check(value, schema.load(name), name, list(prefix))
    if fault is None:
        return None
    return schema.format_path(fault[0]), fault[1]


# -- documents ------------------------------------------------------------------------------------

ROUTE = {"dst": "0.0.0.0/0", "gw": "10.1.0.1", "mtu": 1500, "advmss": 0, "priority": 1, "table": 100, "scope": 0}
DNS = {"nameservers": ["10.96.0.10"], "domain": "cluster.local", "search": ["svc"], "options": ["ndots:5"]}
VALID: dict[str, Any] = {
    "conflist": {
        "cniVersion": "1.0.0",
        "cniVersions": ["0.4.0", "1.0.0"],
        "name": "net",
        "disableCheck": "TRUE",
        "disableGC": False,
        "plugins": [
            {
                "type": "bridge",
                "name": None,
                "capabilities": {"portMappings": True},
                "ipam": {"type": "host-local", "subnet": "10.1.0.0/16"},
                "dns": DNS,
            },
            {"type": "portmap", "runtimeConfig": {}, "args": None, "prevResult": {}},
        ],
    },
    "plugin": {"type": "bridge", "cniVersion": "0.4.0", "capabilities": {"a": False}, "other": [1, {"x": None}]},
    "result-020": {
        "cniVersion": "0.2.0",
        "ip4": {"ip": "10.1.0.5/16", "gateway": "10.1.0.1", "routes": [ROUTE]},
        "dns": DNS,
    },
    "result-040": {
        "cniVersion": "0.4.0",
        "interfaces": [{"name": "eth0", "mac": "aa:bb:cc:dd:ee:ff", "sandbox": "/x", "mtu": 1500}],
        "ips": [{"version": "4", "address": "10.1.0.5/16", "gateway": "10.1.0.1", "interface": 0}],
        "routes": [ROUTE],
        "dns": DNS,
    },
    "result-100": {
        "cniVersion": "1.1.0",
        "interfaces": [{"name": "eth0", "mac": "aa:bb", "socketPath": "/s", "pciID": "0000:00:01.0", "mtu": 9000.0}],
        "ips": [{"address": "fd00::5/64", "interface": 0}],
        "routes": [ROUTE],
        "dns": {},
    },
    "error": {"cniVersion": "1.0.0", "code": 7, "msg": "bad", "details": "x"},
    "version": {"cniVersion": "1.0.0", "supportedVersions": ["0.4.0", "1.0.0"]},
    "cache": {
        "kind": "cniCacheV1",
        "containerId": "c1",
        "config": "e30=",
        "ifName": "eth0",
        "networkName": "net",
        "netns": "/x",
        "cniArgs": [["K", "V"]],
        "capabilityArgs": {"portMappings": []},
        "result": {"cniVersion": "1.0.0"},
        "libcniPy": {"state": "adding", "done": 1, "plugins": 2},
    },
}

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-3, max_value=3)
    | st.floats(-2, 2)
    | st.sampled_from(["", "x", "a/b", "true", "False", "1.0.0", "adding", "failed", "no"]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["type", "ip", "x", "dst"]), inner, max_size=3)
    ),
    max_leaves=6,
)


def _paths(value: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [here]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*here, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*here, index))
    return found


@st.composite
def broken(draw: st.DrawFn, name: str) -> Any:
    """A valid document with one part replaced, removed or added."""
    doc = copy.deepcopy(VALID[name])
    path = draw(st.sampled_from(_paths(doc)))
    action = draw(st.sampled_from(["replace", "delete", "add"]))
    if not path:
        return draw(JSON) if action == "replace" else doc
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    if action == "replace":
        parent[last] = draw(JSON)
    elif action == "delete":
        del parent[last]
    elif isinstance(parent, dict):
        parent[draw(st.sampled_from(["extra", "ip", "dst", "address", "code", "done"]))] = draw(JSON)
    else:
        parent.insert(last, draw(JSON))
    return doc


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_documents_pass(name: str) -> None:
    assert schema.first_error(VALID[name], name) is None
    assert oracle(VALID[name], name) is None


@pytest.mark.parametrize("name", sorted(VALID))
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_first_fault_is_the_interpreters(name: str, data: st.DataObject) -> None:
    doc = data.draw(broken(name))
    prefix = data.draw(st.sampled_from([(), ("plugins", 1)]))
    assert schema.first_error(doc, name, prefix=prefix) == oracle(doc, name, prefix)


@pytest.mark.parametrize("name", sorted(VALID))
@settings(deadline=None)  # a loaded CI machine must not fail it
@given(doc=JSON)
def test_any_json_value_gets_the_interpreters_verdict(name: str, doc: Any) -> None:
    assert schema.first_error(doc, name) == oracle(doc, name)


def test_faults_do_not_leak_between_calls() -> None:
    bad = {"plugins": [{"type": 7}], "name": "n"}
    assert schema.first_error(bad, "conflist") == ("plugins[0].type", "expected a string")
    assert schema.first_error(bad, "conflist") == ("plugins[0].type", "expected a string")
    assert schema.first_error({"name": 1}, "conflist") == ("name", "expected a string")
