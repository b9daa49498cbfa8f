"""Unit tests for libcni_py.core.plugin_input: plugin stdin and environment.

GO_STDIN holds the bytes Go libcni builds (1.1.2, except PREV100_NOCAP:
1.3.0's form, which libcni_py follows -- tests/integration/test_go_compat.py
checks the stdin against both releases), computed once with a
throw-away Go 1.19.8 program under /tmp that copies buildOneConfig /
injectRuntimeConfig (unexported in libcni) and calls libcni.InjectConf, with
the plugin object, results and capability arguments below.  GC and STATUS
stdins are libcni.InjectConf with the keys Go libcni 1.2+ sets: name,
cniVersion and, for GC, "cni.dev/valid-attachments" plus the spec-typo key
"cni.dev/attachments" that later releases add too, both holding a slice of a
struct with json tags containerID, ifname (Go's types.GCAttachment).
"""

from __future__ import annotations

from typing import Any

import pytest

from libcni_py.core import gojson, result
from libcni_py.core import netconf as conf
from libcni_py.core.gojson import Struct
from libcni_py.core.netconf import PluginConf
from libcni_py.core.plugin_input import (
    TraceContext,
    capability_split,
    gc_stdin,
    plugin_env,
    plugin_stdin,
    status_stdin,
    version_env,
    version_stdin,
)

PLUGIN_RAW = (
    b'{"type":"bridge","name":"own","cniVersion":"0.3.1","bridge":"cni0","isGateway":true,'
    b'"ipam":{"type":"host-local","ranges":[[{"subnet":"10.1.0.0/24"}]]},'
    b'"capabilities":{"portMappings":true,"bandwidth":false,"ips":true},"mtu":1500,"weird":"<&>",'
    b'"big":12345678901234567890,"f":1.0}'
)
PLAIN_RAW = b'{"type":"tuning","sysctl":{"net.core.somaxconn":"500"},"zeta":null,"alpha":[3,2,1]}'

RES100 = (
    b'{"cniVersion":"1.0.0","interfaces":[{"name":"cni0","mac":"2e:cc:ec:a8:d1:11"},{"name":"eth0",'
    b'"mac":"ae:83:38:45:2f:d0","sandbox":"/var/run/netns/x"}],"ips":[{"interface":1,"address":"10.1.0.5/24",'
    b'"gateway":"10.1.0.1"},{"address":"fd00::5/64"}],"routes":[{"dst":"0.0.0.0/0","gw":"10.1.0.1"},'
    b'{"dst":"::/0"}],"dns":{"nameservers":["10.1.0.1"],"domain":"example.org","search":["a.example.org"],'
    b'"options":["ndots:2"]}}'
)
RES040 = (
    b'{"cniVersion":"0.4.0","interfaces":[{"name":"eth0","sandbox":"/var/run/netns/x"}],"ips":[{"version":"4",'
    b'"interface":0,"address":"10.1.0.5/24","gateway":"10.1.0.1"}],"routes":[{"dst":"0.0.0.0/0"}],"dns":{}}'
)
RES020 = (
    b'{"cniVersion":"0.2.0","ip4":{"ip":"10.1.0.5/24","gateway":"10.1.0.1","routes":[{"dst":"0.0.0.0/0",'
    b'"gw":"10.1.0.1"}]},"ip6":{"ip":"fd00::5/64"},"dns":{"nameservers":["8.8.8.8"]}}'
)
CAP_ARGS: dict[str, Any] = gojson.loads(
    b'{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}],"bandwidth":{"ingressRate":1000},'
    b'"mac":"aa:bb:cc:dd:ee:ff"}'
)

GO_STDIN = {
    "ADD_NOPREV_NOCAP": (
        '{"alpha":[3,2,1],"cniVersion":"1.0.0","name":"mynet","sysctl":{"net.core.somaxconn":"500"},"type":'
        '"tuning","zeta":null}'
    ),
    "ADD_NOPREV_CAP": (
        '{"big":12345678901234567000,"bridge":"cni0","capabilities":{"bandwidth":false,"ips":true,"portMapp'
        'ings":true},"cniVersion":"1.0.0","f":1,"ipam":{"ranges":[[{"subnet":"10.1.0.0/24"}]],"type":"host-'
        'local"},"isGateway":true,"mtu":1500,"name":"mynet","runtimeConfig":{"portMappings":[{"containerPor'
        't":80,"hostPort":8080,"protocol":"tcp"}]},"type":"bridge","weird":"\\u003c\\u0026\\u003e"}'
    ),
    # 1.3.0's form: a 1.x prevResult always goes through Result.MarshalJSON's map
    # (sorted keys); 1.1.2 wrote it in struct order when there was no runtimeConfig
    "PREV100_NOCAP": (
        '{"alpha":[3,2,1],"cniVersion":"1.0.0","name":"mynet","prevResult":{"cniVersion":"1.0.0","dns":{"doma'
        'in":"example.org","nameservers":["10.1.0.1"],"options":["ndots:2"],"search":["a.example.org"]},"in'
        'terfaces":[{"mac":"2e:cc:ec:a8:d1:11","name":"cni0"},{"mac":"ae:83:38:45:2f:d0","name":"eth0","san'
        'dbox":"/var/run/netns/x"}],"ips":[{"address":"10.1.0.5/24","gateway":"10.1.0.1","interface":1},{"a'
        'ddress":"fd00::5/64"}],"routes":[{"dst":"0.0.0.0/0","gw":"10.1.0.1"},{"dst":"::/0"}]},"sysctl":{'
        '"net.core.somaxconn":"500"},"type":"tuning","zeta":null}'
    ),
    "PREV100_CAP": (
        '{"big":12345678901234567000,"bridge":"cni0","capabilities":{"bandwidth":false,"ips":true,"portMapp'
        'ings":true},"cniVersion":"1.0.0","f":1,"ipam":{"ranges":[[{"subnet":"10.1.0.0/24"}]],"type":"host-'
        'local"},"isGateway":true,"mtu":1500,"name":"mynet","prevResult":{"cniVersion":"1.0.0","dns":{"doma'
        'in":"example.org","nameservers":["10.1.0.1"],"options":["ndots:2"],"search":["a.example.org"]},"in'
        'terfaces":[{"mac":"2e:cc:ec:a8:d1:11","name":"cni0"},{"mac":"ae:83:38:45:2f:d0","name":"eth0","san'
        'dbox":"/var/run/netns/x"}],"ips":[{"address":"10.1.0.5/24","gateway":"10.1.0.1","interface":1},{"a'
        'ddress":"fd00::5/64"}],"routes":[{"dst":"0.0.0.0/0","gw":"10.1.0.1"},{"dst":"::/0"}]},"runtimeConf'
        'ig":{"portMappings":[{"containerPort":80,"hostPort":8080,"protocol":"tcp"}]},"type":"bridge","weir'
        'd":"\\u003c\\u0026\\u003e"}'
    ),
    "PREV040_NOCAP": (
        '{"alpha":[3,2,1],"cniVersion":"0.4.0","name":"legacynet","prevResult":{"cniVersion":"0.4.0","inter'
        'faces":[{"name":"eth0","sandbox":"/var/run/netns/x"}],"ips":[{"version":"4","interface":0,"address'
        '":"10.1.0.5/24","gateway":"10.1.0.1"}],"routes":[{"dst":"0.0.0.0/0"}],"dns":{}},"sysctl":{"net.cor'
        'e.somaxconn":"500"},"type":"tuning","zeta":null}'
    ),
    "PREV020_NOCAP": (
        '{"alpha":[3,2,1],"cniVersion":"0.2.0","name":"old","prevResult":{"cniVersion":"0.2.0","ip4":{"ip":'
        '"10.1.0.5/24","gateway":"10.1.0.1","routes":[{"dst":"0.0.0.0/0","gw":"10.1.0.1"}]},"ip6":{"ip":"fd'
        '00::5/64"},"dns":{"nameservers":["8.8.8.8"]}},"sysctl":{"net.core.somaxconn":"500"},"type":"tuning'
        '","zeta":null}'
    ),
    "PREV020_CAP": (
        '{"big":12345678901234567000,"bridge":"cni0","capabilities":{"bandwidth":false,"ips":true,"portMapp'
        'ings":true},"cniVersion":"0.2.0","f":1,"ipam":{"ranges":[[{"subnet":"10.1.0.0/24"}]],"type":"host-'
        'local"},"isGateway":true,"mtu":1500,"name":"old","prevResult":{"cniVersion":"0.2.0","dns":{"namese'
        'rvers":["8.8.8.8"]},"ip4":{"gateway":"10.1.0.1","ip":"10.1.0.5/24","routes":[{"dst":"0.0.0.0/0","g'
        'w":"10.1.0.1"}]},"ip6":{"ip":"fd00::5/64"}},"runtimeConfig":{"portMappings":[{"containerPort":80,"'
        'hostPort":8080,"protocol":"tcp"}]},"type":"bridge","weird":"\\u003c\\u0026\\u003e"}'
    ),
    "GC": (
        '{"big":12345678901234567000,"bridge":"cni0","capabilities":{"bandwidth":false,"ips":true,"portMapp'
        'ings":true},"cni.dev/attachments":[{"containerID":"c1","ifname":"eth0"},{"containerID":"c2","ifnam'
        'e":"net1"}],"cni.dev/valid-attachments":[{"containerID":"c1","ifname":"eth0"},{"containerID":"c2",'
        '"ifname":"net1"}],"cniVersion":"1.1.0","f":1,"ipam":{"ranges":[[{"subnet":"10.1.0.0/24"}]],"type":'
        '"host-local"},"isGateway":true,"mtu":1500,"name":"mynet","type":"bridge","weird":"\\u003c\\u0026\\'
        'u003e"}'
    ),
    "GC_EMPTY": (
        '{"alpha":[3,2,1],"cni.dev/attachments":[],"cni.dev/valid-attachments":[],"cniVersion":"1.1.0","nam'
        'e":"mynet","sysctl":{"net.core.somaxconn":"500"},"type":"tuning","zeta":null}'
    ),
    "STATUS": (
        '{"big":12345678901234567000,"bridge":"cni0","capabilities":{"bandwidth":false,"ips":true,"portMapp'
        'ings":true},"cniVersion":"1.1.0","f":1,"ipam":{"ranges":[[{"subnet":"10.1.0.0/24"}]],"type":"host-'
        'local"},"isGateway":true,"mtu":1500,"name":"mynet","type":"bridge","weird":"\\u003c\\u0026\\u003e"'
        "}"
    ),
    "VERSION": '{"cniVersion":"1.1.0"}',
}


def _plugin(raw: bytes) -> PluginConf:
    """The plugin as it comes out of a conflist (Go: json.Marshal of the map, then ConfFromBytes)."""
    doc = gojson.loads(raw)
    conflist = conf.parse_conflist(gojson.dumps_bytes({"name": "x", "plugins": [doc]}), "t.conflist", strict=False)
    return conflist.plugins[0]


PLUGIN = _plugin(PLUGIN_RAW)
PLAIN = _plugin(PLAIN_RAW)


def _stdin(plugin: PluginConf, name: str, ver: str, prev: bytes | None, caps: dict[str, Any] | None) -> bytes:
    prev_result = result.parse_bytes(prev) if prev is not None else None
    return plugin_stdin(plugin, name=name, cni_version=ver, prev_result=prev_result, capability_args=caps)


@pytest.mark.parametrize(
    ("label", "plugin", "name", "ver", "prev", "caps"),
    [
        ("ADD_NOPREV_NOCAP", PLAIN, "mynet", "1.0.0", None, CAP_ARGS),
        ("ADD_NOPREV_CAP", PLUGIN, "mynet", "1.0.0", None, CAP_ARGS),
        ("PREV100_NOCAP", PLAIN, "mynet", "1.0.0", RES100, CAP_ARGS),
        ("PREV100_CAP", PLUGIN, "mynet", "1.0.0", RES100, CAP_ARGS),
        ("PREV040_NOCAP", PLAIN, "legacynet", "0.4.0", RES040, None),
        ("PREV020_NOCAP", PLAIN, "old", "0.2.0", RES020, None),
        ("PREV020_CAP", PLUGIN, "old", "0.2.0", RES020, CAP_ARGS),
    ],
)
def test_plugin_stdin_matches_go(
    label: str, plugin: PluginConf, name: str, ver: str, prev: bytes | None, caps: dict[str, Any] | None
) -> None:
    assert _stdin(plugin, name, ver, prev, caps) == GO_STDIN[label].encode()


def test_prev_result_1x_sorted_even_without_runtime_config() -> None:
    """Go libcni 1.3.0 writes a 1.x result through a map (1.1.2: struct order)."""
    out = _stdin(PLAIN, "mynet", "1.0.0", RES100, None)
    assert b'"prevResult":{"cniVersion":"1.0.0","dns":{"domain":"example.org","nameservers"' in out


def test_prev_result_sorted_with_runtime_config() -> None:
    out = _stdin(PLUGIN, "mynet", "1.0.0", RES100, CAP_ARGS)
    assert b'"prevResult":{"cniVersion":"1.0.0","dns":{"domain":"example.org","nameservers"' in out


def test_prev_result_as_mapping() -> None:
    as_struct = plugin_stdin(PLAIN, name="n", cni_version="1.0.0", prev_result=Struct(z=1, a=2))
    assert b'"prevResult":{"z":1,"a":2}' in as_struct
    as_dict = plugin_stdin(PLAIN, name="n", cni_version="1.0.0", prev_result={"z": 1, "a": 2})
    assert b'"prevResult":{"a":2,"z":1}' in as_dict


def test_name_and_version_replace_the_plugins_own() -> None:
    doc = gojson.loads(plugin_stdin(PLUGIN, name="listname", cni_version="1.1.0"))
    assert doc["name"] == "listname"
    assert doc["cniVersion"] == "1.1.0"
    assert "prevResult" not in doc
    assert "runtimeConfig" not in doc
    # the plugin object itself is untouched
    assert PLUGIN.raw["name"] == "own"


def test_capabilities_set_to_false_are_not_passed() -> None:
    plugin = _plugin(b'{"type":"x","capabilities":{"portMappings":false,"bandwidth":true}}')
    doc = gojson.loads(plugin_stdin(plugin, name="n", cni_version="1.0.0", capability_args=CAP_ARGS))
    assert doc["runtimeConfig"] == {"bandwidth": {"ingressRate": 1000}}
    none = _plugin(b'{"type":"x","capabilities":{"portMappings":false}}')
    doc = gojson.loads(plugin_stdin(none, name="n", cni_version="1.0.0", capability_args=CAP_ARGS))
    assert "runtimeConfig" not in doc


def test_existing_runtime_config_is_replaced_only_when_args_apply() -> None:
    plugin = _plugin(b'{"type":"x","runtimeConfig":{"stale":1},"capabilities":{"mac":true}}')
    kept = gojson.loads(plugin_stdin(plugin, name="n", cni_version="1.0.0"))
    assert kept["runtimeConfig"] == {"stale": 1}
    replaced = gojson.loads(plugin_stdin(plugin, name="n", cni_version="1.0.0", capability_args=CAP_ARGS))
    assert replaced["runtimeConfig"] == {"mac": "aa:bb:cc:dd:ee:ff"}


def test_capability_split() -> None:
    passed, dropped = capability_split(PLUGIN, CAP_ARGS)
    assert passed == {"portMappings": CAP_ARGS["portMappings"]}
    assert dropped == ["bandwidth", "mac"]
    passed, dropped = capability_split(PLAIN, CAP_ARGS)
    assert passed == {}
    assert dropped == ["bandwidth", "mac", "portMappings"]
    assert capability_split(PLUGIN, {}) == ({}, [])


def test_gc_stdin_matches_go() -> None:
    out = gc_stdin(PLUGIN, name="mynet", cni_version="1.1.0", valid_attachments=[("c1", "eth0"), ("c2", "net1")])
    assert out == GO_STDIN["GC"].encode()
    empty = gc_stdin(PLAIN, name="mynet", cni_version="1.1.0", valid_attachments=[])
    assert empty == GO_STDIN["GC_EMPTY"].encode()


def test_gc_attachment_order_is_struct_order() -> None:
    out = gc_stdin(PLAIN, name="n", cni_version="1.1.0", valid_attachments=[("zz", "aa")])
    assert b'"cni.dev/valid-attachments":[{"containerID":"zz","ifname":"aa"}]' in out
    assert b'"cni.dev/attachments":[{"containerID":"zz","ifname":"aa"}]' in out


def test_status_stdin_matches_go() -> None:
    assert status_stdin(PLUGIN, name="mynet", cni_version="1.1.0") == GO_STDIN["STATUS"].encode()


def test_version_stdin() -> None:
    assert version_stdin("1.1.0") == GO_STDIN["VERSION"].encode()
    assert version_stdin('1"<') == b'{"cniVersion":"1\\"\\u003c"}'


# --------------------------------------------------------------------------- environment

BASE = {"PATH": "/usr/bin", "HOME": "/root", "CNI_COMMAND": "stale", "CNI_IFNAME": "stale", "LANG": "C"}


def test_plugin_env() -> None:
    base = dict(BASE)
    env = plugin_env(
        "ADD",
        container_id="c1",
        netns="/run/netns/x",
        ifname="eth0",
        cni_args=[("K8S_POD_NAME", "web"), ("IgnoreUnknown", "1")],
        plugin_path=["/opt/cni/bin", "/usr/lib/cni"],
        base=base,
    )
    assert env == {
        "PATH": "/usr/bin",
        "HOME": "/root",
        "LANG": "C",
        "CNI_COMMAND": "ADD",
        "CNI_CONTAINERID": "c1",
        "CNI_NETNS": "/run/netns/x",
        "CNI_ARGS": "K8S_POD_NAME=web;IgnoreUnknown=1",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": "/opt/cni/bin:/usr/lib/cni",
    }
    assert base == BASE  # not modified


def test_plugin_env_gc_style_empty_values() -> None:
    env = plugin_env("GC", container_id="", netns="", ifname="", cni_args=(), plugin_path=["/b"], base={})
    assert env == {
        "CNI_COMMAND": "GC",
        "CNI_CONTAINERID": "",
        "CNI_NETNS": "",
        "CNI_ARGS": "",
        "CNI_IFNAME": "",
        "CNI_PATH": "/b",
    }


def test_trace_context_only_when_given() -> None:
    kwargs: dict[str, Any] = {
        "container_id": "c",
        "netns": "/n",
        "ifname": "eth0",
        "cni_args": (),
        "plugin_path": ["/b"],
        "base": {},
    }
    plain = plugin_env("ADD", **kwargs)
    assert "TRACEPARENT" not in plain
    assert "TRACESTATE" not in plain
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    only_parent = plugin_env("ADD", trace=TraceContext(traceparent=parent), **kwargs)
    assert only_parent["TRACEPARENT"] == parent
    assert "TRACESTATE" not in only_parent
    both = plugin_env("DEL", trace=TraceContext(traceparent=parent, tracestate="k=v"), **kwargs)
    assert (both["TRACEPARENT"], both["TRACESTATE"]) == (parent, "k=v")


def test_version_env() -> None:
    env = version_env({"PATH": "/usr/bin", "CNI_NETNS": "/real"})
    assert env == {
        "PATH": "/usr/bin",
        "CNI_COMMAND": "VERSION",
        "CNI_CONTAINERID": "",
        "CNI_NETNS": "dummy",
        "CNI_ARGS": "",
        "CNI_IFNAME": "dummy",
        "CNI_PATH": "dummy",
    }
