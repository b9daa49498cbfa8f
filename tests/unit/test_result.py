"""Unit tests for libcni_py.core.result: parsing, conversion and Go-exact JSON.

GO_CONVERSIONS and GO_PRINT_S100 were produced by Go libcni 1.3.0, the newest
release, which libcni_py follows (pkg/types/create.CreateFromBytes +
Result.GetAsVersion + encoding/json json.Marshal / json.MarshalIndent(r, "",
"    ")) from the GO_SOURCES documents by tests/goresults/main.go, and kept in
testdata/go-results-1.3.0.json.  Where 1.1.2 wrote otherwise (1.0.0 results
as structs with "dns": {}; no 1.1.0 fields before 1.1.0) the tests below say
so; records 1.1.2 wrote are still read (the go-libcni-cache fixtures).
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from libcni_py.core import gojson, result
from libcni_py.core import record as cache
from libcni_py.core.result import (
    DNS,
    Interface,
    IPConfig,
    LegacyIPConfig,
    LegacyResult,
    Result,
    ResultError,
    Route,
)
from libcni_py.errors import CODE_DECODING_FAILURE, DecodeError

# copies of ../shared/fixtures/go-libcni-cache (written by Go libcni 1.1.2), kept in testdata/
FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "testdata", "go-libcni-cache")
FIXTURE_FILES = sorted(f for f in os.listdir(FIXTURES) if not f.endswith(".md"))

# Go libcni 1.3.0's answers (tests/goresults/main.go on ../shared/thirdparty/cni):
# for every source, json.Marshal of CreateFromBytes + GetAsVersion(target), and
# the Print() form.  libcni_py follows 1.3.0 where it differs from 1.1.2.
with open(os.path.join(os.path.dirname(__file__), "..", "..", "testdata", "go-results-1.3.0.json")) as _fh:
    _GO = json.load(_fh)
GO_SOURCES: dict[str, str] = _GO["sources"]
GO_CONVERSIONS: dict[tuple[str, str], str | tuple[str, str]] = {
    tuple(key.rsplit(" ", 1)): value if isinstance(value, str) else tuple(value)  # type: ignore[misc]
    for key, value in _GO["results"].items()
    if not key.endswith((" print", " parse"))
}
GO_PRINT_S100: str = _GO["results"]["S100 print"]

ALL_VERSIONS = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")


def _encode(r: result.AnyResult) -> str:
    return gojson.dumps(result.to_json(r))


def _src(name: str) -> result.AnyResult:
    return result.parse_bytes(GO_SOURCES[name].encode())


# --------------------------------------------------------------------------- conversions, checked against Go


@pytest.mark.parametrize(("source", "target"), sorted(GO_CONVERSIONS))
def test_convert_matches_go(source: str, target: str) -> None:
    expected = GO_CONVERSIONS[(source, target)]
    parsed = _src(source)
    if isinstance(expected, tuple):
        with pytest.raises(ResultError) as info:
            result.convert(parsed, target)
        assert str(info.value) == expected[1]
    else:
        assert _encode(result.convert(parsed, target)) == expected


@pytest.mark.parametrize("source", sorted(GO_SOURCES))
def test_parse_then_encode_matches_go_same_version(source: str) -> None:
    parsed = _src(source)
    assert _encode(parsed) == GO_CONVERSIONS[(source, parsed.cni_version)]


def test_print_form_matches_go_marshal_indent() -> None:
    assert result.to_json_bytes(_src("S100"), indent="    ") == GO_PRINT_S100.encode()


def test_as_dict_is_plain_json() -> None:
    plain = result.as_dict(_src("S100"))
    assert type(plain) is dict
    assert plain["ips"][0] == {"interface": 1, "address": "10.1.0.5/24", "gateway": "10.1.0.1"}


@pytest.mark.parametrize("src", ALL_VERSIONS)
@pytest.mark.parametrize("dst", ALL_VERSIONS)
def test_every_pair_of_versions_converts(src: str, dst: str) -> None:
    """Go's converter graph connects every pair of implemented versions."""
    base = Result(
        cni_version="1.1.0",
        interfaces=[Interface(name="eth0", sandbox="/run/netns/x")],
        ips=[IPConfig(address="10.0.0.2/24", gateway="10.0.0.1", interface=0)],
        routes=[Route(dst="0.0.0.0/0", gw="10.0.0.1")],
        dns=DNS(nameservers=["10.0.0.1"]),
    )
    start = result.convert(base, src)
    converted = result.convert(start, dst)
    assert converted.cni_version == dst
    doc = result.as_dict(converted)
    if dst in ("0.1.0", "0.2.0"):
        assert isinstance(converted, LegacyResult)
        assert doc["ip4"] == {
            "ip": "10.0.0.2/24",
            "gateway": "10.0.0.1",
            "routes": [{"dst": "0.0.0.0/0", "gw": "10.0.0.1"}],
        }
        assert "ip6" not in doc
    else:
        assert isinstance(converted, Result)
        ip = doc["ips"][0]
        assert ip["address"] == "10.0.0.2/24"
        assert ip["gateway"] == "10.0.0.1"
        assert ("version" in ip) == (dst in ("0.3.0", "0.3.1", "0.4.0"))
        if "version" in ip:
            assert ip["version"] == "4"
        assert doc["routes"] == [{"dst": "0.0.0.0/0", "gw": "10.0.0.1"}]
    assert doc["dns"] == {"nameservers": ["10.0.0.1"]}


def test_convert_same_version_is_identity() -> None:
    r = _src("S040")
    assert result.convert(r, "0.4.0") is r


def test_convert_empty_target_means_010() -> None:
    assert result.convert(_src("S031"), "").cni_version == "0.1.0"


def test_convert_unknown_source_version() -> None:
    weird = Result(cni_version="9.9.9")
    with pytest.raises(ResultError, match=re.escape("no converter for CNI result version 9.9.9 to 1.0.0")):
        result.convert(weird, "1.0.0")


def test_100_to_040_derives_version_from_address() -> None:
    r = Result(
        cni_version="1.0.0",
        ips=[
            IPConfig(address="10.0.0.2/24"),
            IPConfig(address="fd00::2/64"),
            IPConfig(address="::ffff:10.0.0.3/120"),
        ],
    )
    # "::ffff:10.0.0.3/120" is not canonical; go through parse to canonicalise first
    r = result.parse(result.as_dict(r), "1.0.0")
    down = result.convert(r, "0.4.0")
    assert isinstance(down, Result)
    assert [ip.version for ip in down.ips] == ["4", "6", "4"]
    assert down.ips[2].address == "10.0.0.3/24"


def test_040_to_020_uses_version_field_not_address() -> None:
    """Go's convertTo02x trusts ips[].version (pkg/types/040/types.go)."""
    down = result.convert(_src("S040"), "0.2.0")
    assert isinstance(down, LegacyResult)
    assert down.ip6 is not None and down.ip6.ip == "10.9.9.9/32"
    assert down.ip4 is not None and down.ip4.ip == "10.1.0.5/24"


def test_to_020_first_address_of_each_family_only() -> None:
    r = Result(
        cni_version="1.0.0",
        ips=[IPConfig(address="10.0.0.2/24"), IPConfig(address="10.0.0.3/24"), IPConfig(address="fd00::3/64")],
        routes=[Route(dst="10.1.0.0/16"), Route(dst="fd01::/64", gw="fd00::1"), Route(dst="10.2.0.0/16")],
    )
    down = result.convert(r, "0.2.0")
    assert isinstance(down, LegacyResult)
    assert down.ip4 == LegacyIPConfig(ip="10.0.0.2/24", routes=[Route(dst="10.1.0.0/16"), Route(dst="10.2.0.0/16")])
    assert down.ip6 == LegacyIPConfig(ip="fd00::3/64", routes=[Route(dst="fd01::/64", gw="fd00::1")])


def test_to_020_without_ips_fails_like_go() -> None:
    with pytest.raises(ResultError) as info:
        result.convert(Result(cni_version="1.1.0", interfaces=[Interface(name="lo")]), "0.2.0")
    assert str(info.value) == "cannot convert: no valid IP addresses"
    assert info.value.code == CODE_DECODING_FAILURE


def test_routes_of_a_family_without_address_are_dropped() -> None:
    down = result.convert(_src("S100_V6ONLY"), "0.2.0")
    assert isinstance(down, LegacyResult)
    assert down.ip4 is None
    assert down.ip6 is not None
    assert [r.dst for r in down.ip6.routes] == ["fd01::/64"]


def test_down_conversion_keeps_route_fields_drops_interface_fields() -> None:
    """As Go libcni 1.3.0: one types.Route serves every version (Route.Copy
    keeps its 1.1.0 fields); a 0.4.0 interface has no mtu/socketPath/pciID;
    0.1.0/0.2.0 routes are rebuilt from dst and gw only.  (1.1.2 dropped
    them all below 1.1.0.)"""
    r11 = Result(
        cni_version="1.1.0",
        interfaces=[Interface(name="eth0", mtu=9000, socket_path="/s", pci_id="0000:01:00.0")],
        ips=[IPConfig(address="10.0.0.2/24")],
        routes=[Route(dst="0.0.0.0/0", mtu=1400, advmss=1360, priority=10, table=100, scope=0)],
    )
    r040 = result.convert(r11, "0.4.0")
    assert isinstance(r040, Result)
    assert r040.routes == r11.routes
    assert r040.interfaces == (Interface(name="eth0"),)
    back = result.convert(r040, "1.1.0")
    assert isinstance(back, Result)
    assert back.routes == r11.routes
    assert back.interfaces == (Interface(name="eth0"),)
    assert back.ips == (IPConfig(address="10.0.0.2/24"),)
    legacy = result.convert(r11, "0.2.0")
    assert isinstance(legacy, LegacyResult) and legacy.ip4 is not None
    assert legacy.ip4.routes == (Route(dst="0.0.0.0/0"),)
    # 1.1.0 <-> 1.0.0 keeps the values (the types are the same in Go)
    r100 = result.convert(r11, "1.0.0")
    assert isinstance(r100, Result)
    assert r100.routes[0].table == 100
    assert result.convert(r100, "1.1.0") == r11


# --------------------------------------------------------------------------- parsing


def test_parse_each_version() -> None:
    legacy = result.parse({"cniVersion": "0.2.0", "ip4": {"ip": "10.0.0.2/24"}}, "0.2.0")
    assert legacy == LegacyResult(cni_version="0.2.0", ip4=LegacyIPConfig(ip="10.0.0.2/24"))
    v010 = result.parse({"cniVersion": "0.1.0", "ip6": {"ip": "fd00::2/64", "gateway": "fd00::1"}}, "0.1.0")
    assert v010 == LegacyResult(cni_version="0.1.0", ip6=LegacyIPConfig(ip="fd00::2/64", gateway="fd00::1"))
    for ver in ("0.3.0", "0.3.1", "0.4.0"):
        r = result.parse({"cniVersion": ver, "ips": [{"version": "4", "address": "10.0.0.2/24"}]}, ver)
        assert r == Result(cni_version=ver, ips=[IPConfig(address="10.0.0.2/24", version="4")])
    for ver in ("1.0.0", "1.1.0"):
        r = result.parse({"cniVersion": ver, "ips": [{"version": "4", "address": "10.0.0.2/24"}]}, ver)
        # 1.x has no version field: Go drops it
        assert r == Result(cni_version=ver, ips=[IPConfig(address="10.0.0.2/24")])


def test_parse_020_empty_version_means_010() -> None:
    assert result.parse({"ip4": {"ip": "10.0.0.2/24"}}, "0.2.0").cni_version == "0.1.0"
    assert result.parse_bytes(b'{"ip4":{"ip":"10.0.0.2/24"}}').cni_version == "0.1.0"


def test_parse_020_accepts_either_legacy_version() -> None:
    assert result.parse({"cniVersion": "0.2.0"}, "0.1.0").cni_version == "0.2.0"


def test_parse_11_fields() -> None:
    doc = {
        "cniVersion": "1.1.0",
        "interfaces": [
            {"name": "eth0", "mac": "aa", "sandbox": "/s", "mtu": 9000, "socketPath": "/sock", "pciID": "p"}
        ],
        "routes": [{"dst": "10.0.0.0/8", "gw": "10.0.0.1", "mtu": 1400, "advmss": 1360, "priority": 5, "table": 0}],
    }
    r = result.parse(doc, "1.1.0")
    assert isinstance(r, Result)
    assert r.interfaces[0] == Interface(name="eth0", mac="aa", sandbox="/s", mtu=9000, socket_path="/sock", pci_id="p")
    assert r.routes[0] == Route(dst="10.0.0.0/8", gw="10.0.0.1", mtu=1400, advmss=1360, priority=5, table=0)
    assert r.routes[0].scope is None


def test_unknown_keys_dropped() -> None:
    doc = {
        "cniVersion": "1.0.0",
        "extra": {"x": 1},
        "interfaces": [{"name": "eth0", "vendor": "x"}],
        "ips": [{"address": "10.0.0.2/24", "bogus": True}],
        "routes": [{"dst": "0.0.0.0/0", "weight": 3}],
        "dns": {"nameservers": ["1.1.1.1"], "ttl": 5},
    }
    assert _encode(result.parse(doc, "1.0.0")) == (
        '{"cniVersion":"1.0.0","dns":{"nameservers":["1.1.1.1"]},"interfaces":[{"name":"eth0"}],'
        '"ips":[{"address":"10.0.0.2/24"}],"routes":[{"dst":"0.0.0.0/0"}]}'
    )


def test_keys_match_case_insensitively_like_go() -> None:
    doc = {
        "cniVersion": "1.0.0",
        "IPs": [{"Address": "10.0.0.2/24", "GATEWAY": "10.0.0.1", "Interface": 0}],
        "Interfaces": [{"NAME": "eth0", "Mac": "aa:bb", "SandBox": "/x"}],
        "Routes": [{"DST": "0.0.0.0/0", "Gw": "10.0.0.1"}],
        "DNS": {"NameServers": ["1.1.1.1"], "Domain": "d"},
    }
    assert _encode(result.parse(doc, "1.0.0")) == (
        '{"cniVersion":"1.0.0","dns":{"domain":"d","nameservers":["1.1.1.1"]},'
        '"interfaces":[{"mac":"aa:bb","name":"eth0","sandbox":"/x"}],'
        '"ips":[{"address":"10.0.0.2/24","gateway":"10.0.0.1","interface":0}],'
        '"routes":[{"dst":"0.0.0.0/0","gw":"10.0.0.1"}]}'
    )


def test_legacy_keys_match_case_insensitively() -> None:
    r = result.parse({"cniVersion": "0.2.0", "IP4": {"IP": "10.0.0.2/24", "Routes": [{"Dst": "0.0.0.0/0"}]}}, "0.2.0")
    assert r == LegacyResult(cni_version="0.2.0", ip4=LegacyIPConfig(ip="10.0.0.2/24", routes=[Route(dst="0.0.0.0/0")]))


def test_keys_folding_to_one_field_later_wins_like_go() -> None:
    r = result.parse({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.1/8"}], "IPS": None}, "1.0.0")
    assert isinstance(r, Result)
    assert r.ips == ()  # Go: the later key overwrites the field
    r = result.parse({"cniVersion": "1.0.0", "IPS": None, "ips": [{"address": "10.0.0.1/8"}]}, "1.0.0")
    assert isinstance(r, Result)
    assert [ip.address for ip in r.ips] == ["10.0.0.1/8"]


def test_parse_bytes_reads_cniversion_case_insensitively_like_go() -> None:
    """Go's create.DecodeVersion matches "CNIVersion" to the cniVersion field
    (Go libcni 1.1.2: CreateFromBytes('{"CNIVersion":"1.0.0","IPs":[...]}') is a 1.0.0 result)."""
    assert _encode(result.parse_bytes(b'{"CNIVersion":"0.4.0"}')) == '{"cniVersion":"0.4.0","dns":{}}'


@pytest.mark.parametrize(
    ("address", "canonical"),
    [
        ("::ffff:1.2.3.4/120", "1.2.3.4/24"),
        ("::ffff:1.2.3.4/64", "1.2.3.4/0"),
        ("fd00:0:0::1/64", "fd00::1/64"),
        ("FD00::1/64", "fd00::1/64"),
        ("fd00:0:0:0:0:0:0:1/128", "fd00::1/128"),
        ("2001:db8:0:1:0:0:0:1/64", "2001:db8:0:1::1/64"),
        ("2001:db8:0:0:1:0:0:1/64", "2001:db8::1:0:0:1/64"),
        ("2001:db8:0:1:1:1:1:1/64", "2001:db8:0:1:1:1:1:1/64"),
        ("::1.2.3.4/96", "::102:304/96"),
        ("10.0.0.5/24", "10.0.0.5/24"),
        ("1.2.3.4/024", "1.2.3.4/24"),
        ("0.0.0.0/0", "0.0.0.0/0"),
    ],
)
def test_addresses_printed_canonically(address: str, canonical: str) -> None:
    r = result.parse({"cniVersion": "1.0.0", "ips": [{"address": address}]}, "1.0.0")
    assert isinstance(r, Result)
    assert r.ips[0].address == canonical


def test_gateways_and_routes_canonical() -> None:
    doc = {
        "cniVersion": "0.4.0",
        "ips": [{"version": "4", "address": "10.0.0.2/24", "gateway": "::ffff:10.0.0.1"}],
        "routes": [{"dst": "fd01:0::/64", "gw": "FD00:0::1"}],
    }
    r = result.parse(doc, "0.4.0")
    assert isinstance(r, Result)
    assert r.ips[0].gateway == "10.0.0.1"
    assert r.routes[0] == Route(dst="fd01::/64", gw="fd00::1")


def test_empty_gateway_is_absent() -> None:
    r = result.parse({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.2/24", "gateway": ""}]}, "1.0.0")
    assert isinstance(r, Result)
    assert r.ips[0].gateway is None
    assert "gateway" not in result.as_dict(r)["ips"][0]


@pytest.mark.parametrize(
    ("doc", "path"),
    [
        ({"ips": [{"address": "bogus"}]}, "ips[0].address"),
        ({"ips": [{"address": "10.0.0.2/24"}, {"address": "10.0.0.3"}]}, "ips[1].address"),
        ({"ips": [{"address": "10.0.0.2/33"}]}, "ips[0].address"),
        ({"ips": [{"address": "fd00::1/129"}]}, "ips[0].address"),
        ({"ips": [{"address": "010.0.0.2/24"}]}, "ips[0].address"),
        ({"ips": [{"address": "fe80::1%eth0/64"}]}, "ips[0].address"),
        ({"ips": [{"address": "10.0.0.2/+24"}]}, "ips[0].address"),
        ({"ips": [{"address": "10.0.0.2/"}]}, "ips[0].address"),
        ({"ips": [{"address": "10.0.0.2/24", "gateway": "10.0.0.256"}]}, "ips[0].gateway"),
        ({"ips": [{"address": "10.0.0.2/24", "gateway": "10.0.0.1/24"}]}, "ips[0].gateway"),
        ({"routes": [{"dst": "default"}]}, "routes[0].dst"),
        ({"routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0", "gw": "x"}]}, "routes[1].gw"),
    ],
)
def test_invalid_addresses_name_their_path(doc: dict[str, Any], path: str) -> None:
    with pytest.raises(ResultError) as info:
        result.parse({"cniVersion": "1.0.0", **doc}, "1.0.0")
    assert info.value.path == path
    assert str(info.value).startswith(f"{path}: invalid ")
    assert isinstance(info.value, DecodeError)


@pytest.mark.parametrize(
    ("doc", "path"),
    [
        ({"ip4": {"ip": "10.0.0.2"}}, "ip4.ip"),
        ({"ip6": {"ip": "fd00::2/64", "gateway": "nope"}}, "ip6.gateway"),
        ({"ip4": {"ip": "10.0.0.2/8", "routes": [{"dst": "0.0.0.0/0", "gw": "1.2.3"}]}}, "ip4.routes[0].gw"),
        ({"ip4": {"ip": "10.0.0.2/8", "routes": [{"dst": "x"}]}}, "ip4.routes[0].dst"),
    ],
)
def test_invalid_legacy_addresses_name_their_path(doc: dict[str, Any], path: str) -> None:
    with pytest.raises(ResultError) as info:
        result.parse({"cniVersion": "0.2.0", **doc}, "0.2.0")
    assert info.value.path == path


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"cniVersion": "1.0.0", "ips": [{"address": 5}]}, "ips[0].address: expected a string"),
        ({"cniVersion": "1.0.0", "ips": [{}]}, 'ips[0]: missing required field "address"'),
        ({"cniVersion": "1.0.0", "ips": {}}, "ips: expected a list"),
        ({"cniVersion": "1.0.0", "interfaces": [{"mtu": "x"}]}, "interfaces[0].mtu: expected an integer"),
        ({"cniVersion": "1.0.0", "IPs": [{"Address": 5}]}, "ips[0].address: expected a string"),
        ({"cniVersion": 1}, "cniVersion: expected a string"),
    ],
)
def test_type_errors_name_their_path(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(ResultError) as info:
        result.parse(doc, "1.0.0")
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("doc", "as_version", "message"),
    [
        ({"cniVersion": "0.4.0"}, "1.0.0", 'result type supports [1.0.0 1.1.0] but unmarshalled CNIVersion is "0.4.0"'),
        (
            {"cniVersion": "1.0.0"},
            "0.4.0",
            'result type supports [0.3.0 0.3.1 0.4.0] but unmarshalled CNIVersion is "1.0.0"',
        ),
        ({}, "1.1.0", 'result type supports [1.0.0 1.1.0] but unmarshalled CNIVersion is ""'),
    ],
)
def test_version_mismatch(doc: dict[str, Any], as_version: str, message: str) -> None:
    with pytest.raises(ResultError) as info:
        result.parse(doc, as_version)
    assert str(info.value) == message


@pytest.mark.parametrize("ver", ["2.0.0", "1.0", "x"])
def test_unsupported_result_version(ver: str) -> None:
    with pytest.raises(ResultError) as info:
        result.parse({"cniVersion": ver}, ver)
    assert str(info.value) == f'unsupported CNI result version "{ver}"'


@pytest.mark.parametrize("doc", [[], "x", None, 5])
def test_parse_non_object(doc: Any) -> None:
    with pytest.raises(ResultError, match="expected a JSON object"):
        result.parse(doc, "1.0.0")


def test_parse_bytes_errors() -> None:
    with pytest.raises(ResultError, match="expected a JSON object"):
        result.parse_bytes(b"[1]")
    with pytest.raises(DecodeError, match="not valid JSON"):
        result.parse_bytes(b"{nope")
    with pytest.raises(ResultError, match="unsupported CNI result version"):
        result.parse_bytes(b'{"cniVersion":"7.0.0"}')


def test_parse_bytes_explicit_version() -> None:
    r = result.parse_bytes(b'{"ips":[{"address":"10.0.0.2/24"}],"cniVersion":"1.0.0"}', "1.1.0")
    assert r.cni_version == "1.0.0"


def test_null_fields_are_empty() -> None:
    doc = {"cniVersion": "1.0.0", "interfaces": None, "ips": None, "routes": None, "dns": None}
    assert _encode(result.parse(doc, "1.0.0")) == '{"cniVersion":"1.0.0"}'
    assert _encode(result.parse(doc | {"cniVersion": "0.4.0"}, "0.4.0")) == '{"cniVersion":"0.4.0","dns":{}}'


# --------------------------------------------------------------------------- to_json


def test_dns_present_before_1x_and_omitted_when_empty_in_1x() -> None:
    """Go libcni 1.3.0's 1.x Result.MarshalJSON drops an empty dns (1.1.2
    wrote "dns": {} at every version)."""
    assert _encode(Result(cni_version="1.0.0")) == '{"cniVersion":"1.0.0"}'
    assert _encode(Result(cni_version="1.1.0")) == '{"cniVersion":"1.1.0"}'
    assert _encode(Result(cni_version="0.4.0")) == '{"cniVersion":"0.4.0","dns":{}}'
    assert _encode(LegacyResult(cni_version="0.2.0")) == '{"cniVersion":"0.2.0","dns":{}}'
    assert _encode(Result(cni_version="")) == '{"dns":{}}'


def test_dns_field_order() -> None:
    dns = DNS(nameservers=["a"], domain="d", search=["s"], options=["o"])
    assert _encode(Result(cni_version="0.4.0", dns=dns)) == (
        '{"cniVersion":"0.4.0","dns":{"nameservers":["a"],"domain":"d","search":["s"],"options":["o"]}}'
    )
    # 1.x: through a map, as Go libcni 1.3.0 writes it
    assert _encode(Result(cni_version="1.0.0", dns=dns)) == (
        '{"cniVersion":"1.0.0","dns":{"domain":"d","nameservers":["a"],"options":["o"],"search":["s"]}}'
    )


@pytest.mark.parametrize(("ver", "has_version"), [(v, v in ("0.3.0", "0.3.1", "0.4.0")) for v in ALL_VERSIONS[2:]])
def test_ip_version_field_only_for_03x_04x(ver: str, has_version: bool) -> None:
    r = Result(cni_version=ver, ips=[IPConfig(address="10.0.0.2/24", interface=0, version="4" if has_version else "")])
    if has_version:
        expected = (
            f'{{"cniVersion":"{ver}","ips":[{{"version":"4","interface":0,"address":"10.0.0.2/24"}}],"dns":{{}}}}'
        )
    else:
        expected = f'{{"cniVersion":"{ver}","ips":[{{"address":"10.0.0.2/24","interface":0}}]}}'
    assert _encode(r) == expected


def test_empty_ip_version_is_still_written_for_040() -> None:
    r = Result(cni_version="0.4.0", ips=[IPConfig(address="10.0.0.2/24")])
    assert _encode(r) == '{"cniVersion":"0.4.0","ips":[{"version":"","address":"10.0.0.2/24"}],"dns":{}}'


def test_interface_index_zero_is_written() -> None:
    r = Result(cni_version="1.0.0", ips=[IPConfig(address="10.0.0.2/24", interface=0)])
    assert '"interface":0' in _encode(r)


def test_interface_name_always_written() -> None:
    r = Result(cni_version="1.0.0", interfaces=[Interface(name="")])
    assert _encode(r) == '{"cniVersion":"1.0.0","interfaces":[{"name":""}]}'


def _r11(ver: str) -> Result:
    return Result(
        cni_version=ver,
        interfaces=[Interface(name="eth0", mac="aa", sandbox="/s", mtu=9000, socket_path="/sock", pci_id="pci")],
        routes=[
            Route(dst="0.0.0.0/0", gw="10.0.0.1", mtu=1400, advmss=1360, priority=5, table=0, scope=253),
            Route(dst="10.0.0.0/8"),
        ],
    )


@pytest.mark.parametrize("ver", ["1.1.0", "1.0.0"])
def test_11_fields_written_for_1x(ver: str) -> None:
    """Go libcni 1.3.0 writes them in 1.0.0 results too (1.1.2 dropped them)."""
    doc = gojson.loads(_encode(_r11(ver)))
    assert doc["interfaces"][0] == {
        "name": "eth0",
        "mac": "aa",
        "sandbox": "/s",
        "mtu": 9000,
        "socketPath": "/sock",
        "pciID": "pci",
    }
    # through a map: sorted keys (table/scope are *int, so 0 is written)
    assert (
        '"routes":[{"advmss":1360,"dst":"0.0.0.0/0","gw":"10.0.0.1","mtu":1400,"priority":5,"scope":253,"table":0}'
        ',{"dst":"10.0.0.0/8"}]' in _encode(_r11(ver))
    )


@pytest.mark.parametrize("ver", ["0.4.0", "0.3.1", "0.3.0"])
def test_11_route_fields_written_before_1x_interface_fields_not(ver: str) -> None:
    text = _encode(_r11(ver))
    for key in ("socketPath", "pciID"):
        assert f'"{key}"' not in text
    assert '"name":"eth0","mac":"aa","sandbox":"/s"}' in text
    # Go's route struct order: dst, gw, mtu, advmss, priority, table, scope
    assert '{"dst":"0.0.0.0/0","gw":"10.0.0.1","mtu":1400,"advmss":1360,"priority":5,"table":0,"scope":253}' in text


def test_legacy_to_json_order_and_omitempty() -> None:
    r = LegacyResult(
        cni_version="0.2.0",
        ip4=LegacyIPConfig(ip="10.0.0.2/24", gateway="10.0.0.1", routes=[Route(dst="0.0.0.0/0", mtu=1400)]),
        ip6=LegacyIPConfig(ip="fd00::2/64"),
        dns=DNS(domain="x"),
    )
    assert _encode(r) == (
        '{"cniVersion":"0.2.0","ip4":{"ip":"10.0.0.2/24","gateway":"10.0.0.1","routes":[{"dst":"0.0.0.0/0","mtu":1400}]},'
        '"ip6":{"ip":"fd00::2/64"},"dns":{"domain":"x"}}'
    )


def test_to_json_is_a_struct_in_go_order_before_1x_and_a_map_in_1x() -> None:
    out = result.to_json(result.convert(_src("S100"), "0.4.0"))
    assert isinstance(out, gojson.Struct)
    assert list(out) == ["cniVersion", "interfaces", "ips", "routes", "dns"]
    mapped = result.to_json(_src("S100"))
    assert not isinstance(mapped, gojson.Struct)  # gojson writes a plain dict with sorted keys, as Go a map


# --------------------------------------------------------------------------- Go's cache files


@pytest.mark.parametrize("name", FIXTURE_FILES)
def test_fixture_result_round_trip(name: str) -> None:
    with open(os.path.join(FIXTURES, name), "rb") as fh:
        raw = fh.read()
    result_json = raw.split(b',"result":', 1)[1][:-1]
    doc = gojson.loads(raw)
    assert gojson.loads(result_json) == doc["result"]
    parsed = result.parse(doc["result"], doc["result"]["cniVersion"])
    written = gojson.dumps_bytes(cache._plain(result.to_json(parsed)))
    if doc["result"].get("dns") == {} and doc["result"]["cniVersion"] in ("1.0.0", "1.1.0"):
        # 1.1.2 wrote "dns": {}; 1.3.0 (and we) leave an empty dns out of 1.x results
        assert written == result_json.replace(b',"dns":{}', b"").replace(b'"dns":{},', b"")
    else:
        assert written == result_json


def test_fixtures_found() -> None:
    assert len(FIXTURE_FILES) == 2


# --------------------------------------------------------------------------- generated results

_v4 = st.builds(lambda a, b, c, d, p: f"{a}.{b}.{c}.{d}/{p}", *[st.integers(0, 255)] * 4, st.integers(0, 32))
_v6 = st.builds(
    lambda groups, p: ":".join(f"{g:x}" for g in groups) + f"/{p}",
    st.lists(st.integers(0, 0xFFFF), min_size=8, max_size=8),
    st.integers(0, 128),
)
_cidr = _v4 | _v6


@st.composite
def results(draw: st.DrawFn) -> dict[str, Any]:
    ver = draw(st.sampled_from(ALL_VERSIONS[2:]))
    ips = []
    for addr in draw(st.lists(_cidr, max_size=4)):
        ip: dict[str, Any] = {"address": addr}
        if ver in ("0.3.0", "0.3.1", "0.4.0"):
            ip["version"] = "6" if ":" in addr else "4"
        if draw(st.booleans()):
            ip["interface"] = draw(st.integers(0, 3))
        ips.append(ip)
    routes = [{"dst": dst} for dst in draw(st.lists(_cidr, max_size=3))]
    doc: dict[str, Any] = {"cniVersion": ver, "ips": ips, "routes": routes}
    if draw(st.booleans()):
        doc["interfaces"] = [{"name": draw(st.text(max_size=5)), "mac": draw(st.text(max_size=5))}]
    return doc


@settings(max_examples=150, deadline=None)
@given(results())
def test_generated_results_round_trip_and_convert(doc: dict[str, Any]) -> None:
    parsed = result.parse(doc, doc["cniVersion"])
    again = result.parse(result.as_dict(parsed), parsed.cni_version)
    assert again == parsed
    # encoding is idempotent
    assert _encode(again) == _encode(parsed)
    # up and down conversions inside the 0.3.0..1.1.0 world keep every address
    for target in ALL_VERSIONS[2:]:
        converted = result.convert(parsed, target)
        assert isinstance(converted, Result)
        assert [ip.address for ip in converted.ips] == [ip.address for ip in parsed.ips]
        assert [r.dst for r in converted.routes] == [r.dst for r in parsed.routes]
    # to 0.2.0: the first address of each family, or Go's error without any
    if parsed.ips:
        legacy = result.convert(parsed, "0.2.0")
        assert isinstance(legacy, LegacyResult)
        v4 = [ip.address for ip in parsed.ips if ":" not in ip.address]
        assert (legacy.ip4.ip if legacy.ip4 else None) == (v4[0] if v4 else None)
    else:
        with pytest.raises(ResultError, match="no valid IP addresses"):
            result.convert(parsed, "0.2.0")
