"""Unit tests for libcni_py.core.netconf: parsing configuration lists and finding them
on disk (Go libcni's conf.go semantics, 1.2+ for cniVersions, flexible
booleans, loadOnlyInlinedPlugins and plugin aggregation).

GO_UPCONVERTED holds the ``Bytes`` of Go libcni 1.1.2's
``ConfListFromConf(ConfFromBytes(raw))`` (Go 1.19.8), computed once in a
throw-away program under /tmp and pasted here.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from libcni_py.core import netconf as conf
from libcni_py.core.netconf import NetworkConfigList, PluginConf
from libcni_py.errors import CODE_INVALID_NETWORK_CONFIG, ConfigError, NetworkNotFoundError

# (raw .conf bytes, Go's up-converted list bytes)
GO_UPCONVERTED = [
    (
        b'{"cniVersion":"0.4.0","name":"single","type":"bridge","bridge":"br0",'
        b'"ipam":{"type":"host-local","subnet":"10.5.0.0/24"},"x":"<a&b>","n":1.50}',
        b'{"cniVersion":"0.4.0","name":"single","plugins":[{"bridge":"br0","cniVersion":"0.4.0",'
        b'"ipam":{"subnet":"10.5.0.0/24","type":"host-local"},"n":1.5,"name":"single","type":"bridge",'
        b'"x":"\\u003ca\\u0026b\\u003e"}]}',
    ),
    (
        b'{"name":"nover","type":"loopback"}',
        b'{"cniVersion":"","name":"nover","plugins":[{"name":"nover","type":"loopback"}]}',
    ),
]


def _list(**fields: object) -> bytes:
    import json

    doc: dict[str, object] = {"name": "mynet", "cniVersion": "1.0.0", "plugins": [{"type": "bridge"}]}
    doc.update(fields)
    return json.dumps({k: v for k, v in doc.items() if v is not _DROP}).encode()


_DROP = object()


# --------------------------------------------------------------------------- parse_conflist


def test_parse_basic() -> None:
    data = (
        b'{"name":"mynet","cniVersion":"1.0.0","plugins":[{"type":"bridge","bridge":"cni0","unknown":{"k":[1]}},'
        b'{"type":"portmap","name":"pm","cniVersion":"0.3.1","capabilities":{"portMappings":true,"ips":false}}]}\n'
    )
    conflist = conf.parse_conflist(data, "10-mynet.conflist")
    assert conflist.name == "mynet"
    assert conflist.cni_version == "1.0.0"
    assert conflist.declared_version == "1.0.0"
    assert conflist.cni_versions is None
    assert conflist.config_bytes == data
    assert conflist.path == "10-mynet.conflist"
    assert conflist.source == "10-mynet.conflist"
    assert (conflist.disable_check, conflist.disable_gc, conflist.load_only_inlined_plugins) == (False, False, False)
    first, second = conflist.plugins
    assert first.type == "bridge"
    assert first.name == ""
    assert first.raw == {"type": "bridge", "bridge": "cni0", "unknown": {"k": [1]}}
    assert first.source == "10-mynet.conflist: plugins[0]"
    assert second.name == "pm"
    assert second.cni_version == "0.3.1"
    assert second.capabilities == {"portMappings": True, "ips": False}
    assert second.enabled_capabilities() == ("portMappings",)
    assert conflist.capabilities() == ("portMappings",)


def test_capabilities_union_sorted() -> None:
    conflist = conf.parse_conflist(
        _list(
            plugins=[
                {"type": "a", "capabilities": {"portMappings": True, "bandwidth": True}},
                {"type": "b", "capabilities": {"aliases": True, "portMappings": True, "mac": False}},
                {"type": "c", "capabilities": None},
            ]
        ),
        "f",
    )
    assert conflist.capabilities() == ("aliases", "bandwidth", "portMappings")
    assert conflist.plugins[2].capabilities == {}


@pytest.mark.parametrize(
    ("data", "path", "problem"),
    [
        (
            b'{"name":"n","cniVersion":"1.0.0","plugins":[{"type":"a"},{"type":5}]}',
            "plugins[1].type",
            "expected a string",
        ),
        (b'{"cniVersion":"1.0.0","plugins":[{"type":"a"}]}', "", 'missing required field "name"'),
        (b'{"name":7,"plugins":[{"type":"a"}]}', "name", "expected a string"),
        (b'{"name":"n","plugins":[]}', "plugins", "must list at least one plugin"),
        (b'{"name":"n","plugins":{"type":"a"}}', "plugins", "expected a list"),
        (b'{"name":"n","plugins":[{"type":""}]}', "plugins[0].type", "must not be empty: it names the plugin binary"),
        (
            b'{"name":"n","plugins":[{"type":"../../bin/sh"}]}',
            "plugins[0].type",
            "must be a file name inside the plugin directories: no '/', not '.' or '..'",
        ),
        (
            b'{"name":"n","plugins":[{"type":"a","capabilities":{"portMappings":"yes"}}]}',
            "plugins[0].capabilities.portMappings",
            "expected true or false",
        ),
        (b'{"name":"n","cniVersions":"1.0.0","plugins":[{"type":"a"}]}', "cniVersions", "expected a list"),
        (b'{"name":"n","cniVersions":["1.0.0",1],"plugins":[{"type":"a"}]}', "cniVersions[1]", "expected a string"),
        (
            b'{"name":"n","disableCheck":"yes","plugins":[{"type":"a"}]}',
            "disableCheck",
            'expected true or false (or the strings "true"/"false")',
        ),
        (b'[{"name":"n"}]', "", "expected an object"),
    ],
)
def test_parse_errors_name_file_and_path(data: bytes, path: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        conf.parse_conflist(data, "10-flannel.conflist")
    err = info.value
    assert (err.file, err.path, err.problem) == ("10-flannel.conflist", path, problem)
    where = f"10-flannel.conflist: {path}" if path else "10-flannel.conflist"
    assert str(err) == f"{where}: {problem}"
    assert err.code == CODE_INVALID_NETWORK_CONFIG


def test_example_message_from_the_docs() -> None:
    with pytest.raises(ConfigError) as info:
        conf.parse_conflist(b'{"name":"cbr0","plugins":[{"type":"flannel"},{"type":true}]}', "10-flannel.conflist")
    assert str(info.value) == "10-flannel.conflist: plugins[1].type: expected a string"


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"", "empty"),
        (b"{", "not valid JSON"),
        (b"\xef\xbb\xbf{}", "byte-order mark"),
        (b'{"name":"\xff"}', "not valid UTF-8"),
    ],
)
def test_parse_undecodable(data: bytes, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        conf.parse_conflist(data, "bad.conflist")
    assert info.value.file == "bad.conflist"
    assert info.value.path == ""
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, True), (False, False), ("true", True), ("True", True), ("TRUE", True), ("false", False), ("FaLsE", False)],
)
@pytest.mark.parametrize("key", ["disableCheck", "disableGC", "loadOnlyInlinedPlugins"])
def test_flexible_booleans(key: str, value: object, expected: bool) -> None:
    conflist = conf.parse_conflist(_list(**{key: value}), "f")
    attr = {
        "disableCheck": "disable_check",
        "disableGC": "disable_gc",
        "loadOnlyInlinedPlugins": "load_only_inlined_plugins",
    }
    assert getattr(conflist, attr[key]) is expected


@pytest.mark.parametrize("value", ["yes", "1", "", 1, 0, None, [], "true ", " false"])
def test_flexible_booleans_refuse_other_values(value: object) -> None:
    with pytest.raises(ConfigError) as info:
        conf.parse_conflist(_list(disableGC=value), "f")
    assert info.value.path == "disableGC"


def test_flexible_boolean_with_trailing_newline_refused() -> None:
    with pytest.raises(ConfigError):
        conf.parse_conflist(_list(disableCheck="true\n"), "f")


# --------------------------------------------------------------------------- versions


def test_cni_versions_selection() -> None:
    conflist = conf.parse_conflist(_list(cniVersion="0.4.0", cniVersions=["1.0.0", "2.0.0", "0.3.1"]), "f")
    assert conflist.cni_version == "1.0.0"
    assert conflist.declared_version == "0.4.0"
    assert conflist.cni_versions == ("1.0.0", "2.0.0", "0.3.1")


def test_cni_versions_without_cni_version() -> None:
    conflist = conf.parse_conflist(_list(cniVersion=_DROP, cniVersions=["1.1.0", "0.4.0"]), "f")
    assert conflist.cni_version == "1.1.0"
    assert conflist.declared_version == ""


def test_cni_versions_all_newer_keeps_cni_version() -> None:
    conflist = conf.parse_conflist(_list(cniVersion="1.0.0", cniVersions=["2.0.0", "1.2.0"]), "f")
    assert conflist.cni_version == "1.0.0"


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"cniVersions": ["1.0.0", "one"]}, "cniVersions"),
        ({"cniVersion": "x.y", "cniVersions": ["1.0.0"]}, "cniVersions"),
    ],
)
def test_invalid_version_entries(fields: dict[str, object], path: str) -> None:
    with pytest.raises(ConfigError) as info:
        conf.parse_conflist(_list(**fields), "f")
    assert info.value.path == path
    assert "invalid version" in info.value.problem


def test_unparsable_cni_version_alone_is_only_refused_when_strict() -> None:
    data = _list(cniVersion="banana")
    assert conf.parse_conflist(data, "f", strict=False).cni_version == "banana"
    with pytest.raises(ConfigError) as info:
        conf.parse_conflist(data, "f")
    assert info.value.path == "cniVersion"


def test_missing_cni_version_is_usable() -> None:
    assert conf.parse_conflist(_list(cniVersion=_DROP), "f").cni_version == ""


# --------------------------------------------------------------------------- strict vs non-strict


@pytest.mark.parametrize(
    ("fields", "path", "fragment"),
    [
        ({"name": "bad name"}, "name", "'bad name' is not a valid network name"),
        ({"name": "../etc"}, "name", "is not a valid network name"),
        ({"name": ""}, "name", "must not be empty"),
        ({"cniVersion": "2.0.0"}, "cniVersion", 'version "2.0.0" is not implemented by this runtime'),
        ({"cniVersion": "2.0.0", "cniVersions": ["3.0.0"]}, "cniVersions", 'version "2.0.0" is not implemented'),
        ({"cniVersion": "1.2.0"}, "cniVersion", "it implements 0.1.0, 0.2.0, 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0"),
        ({"plugins": _DROP}, "plugins", "the network has no plugins"),
    ],
)
def test_strict_refuses_what_go_loads(fields: dict[str, object], path: str, fragment: str) -> None:
    data = _list(**fields)
    loose = conf.parse_conflist(data, "f.conflist", strict=False)
    assert isinstance(loose, NetworkConfigList)
    with pytest.raises(ConfigError) as info:
        conf.parse_conflist(data, "f.conflist")
    assert info.value.file == "f.conflist"
    assert info.value.path == path
    assert fragment in info.value.problem
    with pytest.raises(ConfigError):
        conf.check_usable(loose)


def test_unimplemented_version_hint_suggests_cni_versions() -> None:
    with pytest.raises(ConfigError) as info:
        conf.parse_conflist(_list(cniVersion="2.0.0"), "f")
    assert '"cniVersions"' in info.value.hint


def test_load_only_inlined_without_plugins_is_an_error_even_when_not_strict() -> None:
    for value in (True, "true", "TRUE"):
        with pytest.raises(ConfigError) as info:
            conf.parse_conflist(_list(plugins=_DROP, loadOnlyInlinedPlugins=value), "f", strict=False)
        assert info.value.path == "plugins"
        assert "loadOnlyInlinedPlugins" in info.value.problem


def test_no_plugins_key_is_fine_for_aggregation() -> None:
    conflist = conf.parse_conflist(_list(plugins=_DROP, loadOnlyInlinedPlugins=False), "f", strict=False)
    assert conflist.plugins == ()


# --------------------------------------------------------------------------- single-plugin files


def test_parse_single() -> None:
    plugin = conf.parse_single(b'{"name":"n","cniVersion":"0.4.0","type":"bridge","x":1}', "10.conf")
    assert isinstance(plugin, PluginConf)
    assert (plugin.type, plugin.name, plugin.cni_version, plugin.source) == ("bridge", "n", "0.4.0", "10.conf")


@pytest.mark.parametrize(
    ("data", "path", "problem"),
    [
        (b"[1]", "", "expected a JSON object"),
        (b'{"name":"n"}', "", 'missing required field "type"'),
        (b'{"type":"a","name":5}', "name", "expected a string"),
    ],
)
def test_parse_single_errors(data: bytes, path: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        conf.parse_single(data, "10.conf")
    assert (info.value.file, info.value.path, info.value.problem) == ("10.conf", path, problem)


def test_plugin_keys_match_case_insensitively_like_go() -> None:
    plugin = conf.parse_single(
        b'{"name":"n","cniVersion":"1.0.0","Type":"bridge","Capabilities":{"portMappings":true}}', "x.conf"
    )
    assert plugin.type == "bridge"
    assert plugin.enabled_capabilities() == ("portMappings",)


@pytest.mark.parametrize(("raw", "expected"), GO_UPCONVERTED)
def test_conflist_from_plugin_bytes_equal_go(raw: bytes, expected: bytes) -> None:
    plugin = conf.parse_single(raw, "x.conf")
    conflist = conf.conflist_from_plugin(plugin)
    assert conflist.config_bytes == expected
    assert conflist.name == plugin.name
    assert conflist.cni_version == plugin.cni_version
    assert len(conflist.plugins) == 1
    assert conflist.plugins[0].raw == plugin.raw


def test_conflist_from_plugin_strictness() -> None:
    plugin = conf.parse_single(b'{"name":"bad name","cniVersion":"1.0.0","type":"a"}', "x.conf")
    assert conf.conflist_from_plugin(plugin, strict=False).name == "bad name"
    with pytest.raises(ConfigError) as info:
        conf.conflist_from_plugin(plugin)
    assert info.value.path == "name"


# --------------------------------------------------------------------------- the disk


def _write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def _conflist(name: str, *types: str, **extra: object) -> str:
    import json

    return json.dumps({"name": name, "cniVersion": "1.0.0", "plugins": [{"type": t} for t in types], **extra})


def _single(name: str, type_: str = "bridge") -> str:
    return f'{{"name":"{name}","cniVersion":"0.4.0","type":"{type_}"}}'


def test_conf_files(tmp_path: Path) -> None:
    for name in ("b.conf", "a.conflist", "c.json", "d.txt", "B.conf", "10-x.conf", "9-x.conf", "noext", "x.conf.bak"):
        _write(tmp_path / name, "{}")
    (tmp_path / "sub.conf").mkdir()
    (tmp_path / "linkdir.conf").symlink_to(tmp_path / "sub.conf")  # a symlink is not a directory entry
    found = conf.conf_files(str(tmp_path), conf.CONF_EXTENSIONS)
    names = [os.path.basename(p) for p in found]
    assert names == ["10-x.conf", "9-x.conf", "B.conf", "a.conflist", "b.conf", "c.json", "linkdir.conf"]
    assert all(p.startswith(str(tmp_path) + os.sep) for p in found)
    only_lists = conf.conf_files(str(tmp_path), (".conflist",))
    assert [os.path.basename(p) for p in only_lists] == ["a.conflist"]
    assert [os.path.basename(p) for p in conf.conf_files(str(tmp_path), (".conf", ".json"))] == [
        "10-x.conf",
        "9-x.conf",
        "B.conf",
        "b.conf",
        "c.json",
        "linkdir.conf",
    ]


def test_conf_files_missing_dir_is_empty(tmp_path: Path) -> None:
    assert conf.conf_files(str(tmp_path / "nope"), conf.CONF_EXTENSIONS) == []


def test_conf_files_not_a_directory(tmp_path: Path) -> None:
    target = _write(tmp_path / "file", "x")
    with pytest.raises(ConfigError) as info:
        conf.conf_files(str(target), conf.CONF_EXTENSIONS)
    assert info.value.file == str(target)
    assert "cannot list" in info.value.problem


def test_conf_files_extension_like_go_filepath_ext(tmp_path: Path) -> None:
    _write(tmp_path / ".conflist", "{}")
    assert conf.conf_files(str(tmp_path), (".conflist",)) == [str(tmp_path / ".conflist")]


def test_load_network_conflist_before_conf(tmp_path: Path) -> None:
    _write(tmp_path / "00-first.conf", _single("net", "from-conf"))
    _write(tmp_path / "99-last.conflist", _conflist("net", "from-conflist"))
    found = conf.load_network(str(tmp_path), "net")
    assert [p.type for p in found.plugins] == ["from-conflist"]
    assert found.path == str(tmp_path / "99-last.conflist")


def test_load_network_lexical_first_match_wins(tmp_path: Path) -> None:
    _write(tmp_path / "20-a.conflist", _conflist("net", "second"))
    _write(tmp_path / "10-b.conflist", _conflist("net", "first"))
    _write(tmp_path / "05-c.conflist", _conflist("other", "x"))
    assert [p.type for p in conf.load_network(str(tmp_path), "net").plugins] == ["first"]


def test_load_network_conf_and_json_share_one_order(tmp_path: Path) -> None:
    _write(tmp_path / "b.conf", _single("net", "from-conf"))
    _write(tmp_path / "a.json", _single("net", "from-json"))
    found = conf.load_network(str(tmp_path), "net")
    assert [p.type for p in found.plugins] == ["from-json"]
    assert found.path == str(tmp_path / "a.json")


def test_load_network_upconverts_single_plugin_file(tmp_path: Path) -> None:
    raw, expected = GO_UPCONVERTED[0]
    _write(tmp_path / "10-single.conf", raw)
    found = conf.load_network(str(tmp_path), "single")
    assert found.config_bytes == expected
    assert found.cni_version == "0.4.0"
    assert found.path == str(tmp_path / "10-single.conf")
    assert conf.load_any_file(str(tmp_path / "10-single.conf")).config_bytes == expected


def test_unparsable_conflist_stops_the_search(tmp_path: Path) -> None:
    _write(tmp_path / "05-broken.conflist", b'{"name":"other","plugins":[{"type":5}]}')
    _write(tmp_path / "10-net.conflist", _conflist("net", "bridge"))
    with pytest.raises(ConfigError) as info:
        conf.load_network(str(tmp_path), "net")
    err = info.value
    assert not isinstance(err, NetworkNotFoundError)
    assert err.file == str(tmp_path / "05-broken.conflist")
    assert err.path == "plugins[0].type"
    assert "search stops" in err.hint


def test_unparsable_conflist_after_the_match_is_not_read(tmp_path: Path) -> None:
    _write(tmp_path / "10-net.conflist", _conflist("net", "bridge"))
    _write(tmp_path / "20-broken.conflist", b"{")
    _write(tmp_path / "00-broken.conf", b"{")
    assert conf.load_network(str(tmp_path), "net").name == "net"


def test_unparsable_conf_stops_the_search_among_conf_files(tmp_path: Path) -> None:
    _write(tmp_path / "10-net.conflist", _conflist("other", "bridge"))
    _write(tmp_path / "10-broken.conf", b'{"name":"x"}')
    _write(tmp_path / "20-net.conf", _single("net"))
    with pytest.raises(ConfigError) as info:
        conf.load_network(str(tmp_path), "net")
    assert info.value.file == str(tmp_path / "10-broken.conf")
    assert 'missing required field "type"' in str(info.value)


def test_conflist_with_invalid_name_does_not_stop_the_search(tmp_path: Path) -> None:
    _write(tmp_path / "00-odd.conflist", _conflist("bad name", "x"))
    _write(tmp_path / "10-net.conflist", _conflist("net", "bridge"))
    assert conf.load_network(str(tmp_path), "net").name == "net"


def test_found_but_unusable_network_is_refused(tmp_path: Path) -> None:
    _write(tmp_path / "10-net.conflist", _conflist("net", "bridge", cniVersion="9.0.0"))
    with pytest.raises(ConfigError) as info:
        conf.load_network(str(tmp_path), "net")
    assert info.value.path == "cniVersion"


def test_network_not_found_lists_names_seen(tmp_path: Path) -> None:
    _write(tmp_path / "10-b.conflist", _conflist("beta", "x"))
    _write(tmp_path / "20-a.conf", _single("alpha"))
    _write(tmp_path / "30-a.json", _single("alpha"))
    with pytest.raises(NetworkNotFoundError) as info:
        conf.load_network(str(tmp_path), "gamma")
    err = info.value
    assert isinstance(err, ConfigError)
    assert err.name == "gamma"
    assert err.conf_dir == str(tmp_path)
    assert err.seen == ("beta", "alpha", "alpha")
    assert str(err) == f'{tmp_path}: no network named "gamma" (networks found: alpha, beta)'
    assert "not the file name" in err.hint


def test_network_not_found_in_empty_or_missing_dir(tmp_path: Path) -> None:
    for directory in (tmp_path, tmp_path / "missing"):
        with pytest.raises(NetworkNotFoundError) as info:
            conf.load_network(str(directory), "net")
        assert "(networks found: none)" in str(info.value)


def test_aggregation_from_network_folder(tmp_path: Path) -> None:
    _write(tmp_path / "10-net.conflist", _conflist("net", "inline"))
    _write(tmp_path / "net" / "20-c.conf", '{"type":"third"}')
    _write(tmp_path / "net" / "10-b.conf", '{"type":"second","capabilities":{"portMappings":true}}')
    _write(tmp_path / "net" / "30-d.json", '{"type":"ignored-json"}')
    _write(tmp_path / "net" / "40-e.conflist", '{"type":"ignored-conflist"}')
    (tmp_path / "net" / "sub.conf").mkdir()
    found = conf.load_network(str(tmp_path), "net")
    assert [p.type for p in found.plugins] == ["inline", "second", "third"]
    assert found.plugins[1].source == str(tmp_path / "net" / "10-b.conf")
    assert found.capabilities() == ("portMappings",)
    # the cached bytes stay the file's own
    assert found.config_bytes == (tmp_path / "10-net.conflist").read_bytes()


def test_aggregation_only_source_of_plugins(tmp_path: Path) -> None:
    _write(tmp_path / "10-net.conflist", '{"name":"net","cniVersion":"1.1.0"}')
    _write(tmp_path / "net" / "a.conf", '{"type":"only"}')
    assert [p.type for p in conf.load_network(str(tmp_path), "net").plugins] == ["only"]


def test_load_only_inlined_plugins_skips_folder(tmp_path: Path) -> None:
    _write(tmp_path / "10-net.conflist", _conflist("net", "inline", loadOnlyInlinedPlugins="true"))
    _write(tmp_path / "net" / "a.conf", '{"type":"extra"}')
    assert [p.type for p in conf.load_network(str(tmp_path), "net").plugins] == ["inline"]


def test_no_plugins_anywhere(tmp_path: Path) -> None:
    path = _write(tmp_path / "10-net.conflist", '{"name":"net","cniVersion":"1.1.0"}')
    with pytest.raises(ConfigError) as info:
        conf.load_conflist_file(str(path))
    assert info.value.path == "plugins"
    assert f"none in {tmp_path / 'net'}/*.conf" in info.value.problem


def test_broken_plugin_file_in_folder(tmp_path: Path) -> None:
    _write(tmp_path / "10-net.conflist", _conflist("net", "inline"))
    _write(tmp_path / "net" / "a.conf", '{"type":7}')
    with pytest.raises(ConfigError) as info:
        conf.load_network(str(tmp_path), "net")
    assert info.value.file == str(tmp_path / "net" / "a.conf")
    assert info.value.path == "type"


def test_no_aggregation_path_from_invalid_name(tmp_path: Path) -> None:
    confdir = tmp_path / "conf"
    _write(confdir / "x.conflist", _conflist("../evil", "inline"))
    _write(tmp_path / "evil" / "a.conf", '{"type":"injected"}')
    loose = conf.load_conflist_file(str(confdir / "x.conflist"), strict=False)
    assert [p.type for p in loose.plugins] == ["inline"]
    with pytest.raises(ConfigError) as info:
        conf.load_conflist_file(str(confdir / "x.conflist"))
    assert info.value.path == "name"


def test_read_conf_bytes_errors(tmp_path: Path) -> None:
    (tmp_path / "dir.conflist").mkdir()
    (tmp_path / "dangling.conflist").symlink_to(tmp_path / "nowhere")
    (tmp_path / "loop-a.conflist").symlink_to(tmp_path / "loop-b.conflist")
    (tmp_path / "loop-b.conflist").symlink_to(tmp_path / "loop-a.conflist")
    big = tmp_path / "big.conflist"
    with open(big, "wb") as fh:
        fh.truncate(conf.MAX_CONF_BYTES + 1)
    cases = {
        "dir.conflist": "cannot read: is a directory",
        "dangling.conflist": "cannot read: no such file",
        "loop-a.conflist": "cannot read: symbolic link loop",
        "big.conflist": f"is {conf.MAX_CONF_BYTES + 1} bytes, larger than the {conf.MAX_CONF_BYTES} allowed",
    }
    for name, problem in cases.items():
        with pytest.raises(ConfigError) as info:
            conf.read_conf_bytes(str(tmp_path / name))
        assert info.value.file == str(tmp_path / name)
        assert info.value.problem == problem


def test_read_conf_bytes_at_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "max.conflist"
    with open(path, "wb") as fh:
        fh.truncate(conf.MAX_CONF_BYTES)
    assert len(conf.read_conf_bytes(str(path))) == conf.MAX_CONF_BYTES


@pytest.mark.parametrize(
    ("err", "problem"),
    [
        (errno.EACCES, "cannot read: permission denied"),
        (errno.EIO, "cannot read: " + os.strerror(errno.EIO)),
    ],
)
def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, err: int, problem: str) -> None:
    # chmod 000 does not stop root (the CI user), so the refusal is simulated at os.open
    path = _write(tmp_path / "secret.conflist", _conflist("net", "x"))

    def refuse(*args: object, **kwargs: object) -> int:
        raise OSError(err, os.strerror(err), str(path))

    monkeypatch.setattr(conf.os, "open", refuse)
    with pytest.raises(ConfigError) as info:
        conf.read_conf_bytes(str(path))
    assert info.value.problem == problem
    with pytest.raises(ConfigError) as info:
        conf.load_network(str(tmp_path), "net")
    assert info.value.file == str(path)


def test_bad_entries_in_conf_dir_stop_the_search(tmp_path: Path) -> None:
    """A symlink loop or a symlink to a directory named .conflist is an
    unreadable .conflist: like Go, the search stops there with its error."""
    (tmp_path / "00-dir.conflist").symlink_to(tmp_path)
    _write(tmp_path / "10-net.conflist", _conflist("net", "x"))
    with pytest.raises(ConfigError) as info:
        conf.load_network(str(tmp_path), "net")
    assert info.value.file == str(tmp_path / "00-dir.conflist")
    assert info.value.problem == "cannot read: is a directory"


def test_load_any_file(tmp_path: Path) -> None:
    listed = _write(tmp_path / "a.conflist", _conflist("net", "x"))
    single = _write(tmp_path / "b.json", _single("solo"))
    assert conf.load_any_file(str(listed)).name == "net"
    solo = conf.load_any_file(str(single))
    assert solo.name == "solo"
    assert (
        solo.config_bytes
        == b'{"cniVersion":"0.4.0","name":"solo","plugins":[{"cniVersion":"0.4.0","name":"solo","type":"bridge"}]}'
    )


def test_fifo_named_conf_is_refused_without_hanging(tmp_path: Path) -> None:
    fifo = tmp_path / "10-pipe.conf"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="not a regular file"):
        conf.read_conf_bytes(str(fifo))
