"""Unit tests for libcni_py.core.plugin_call: turning what a plugin did into a result or
an error (no processes: hand-made ExecOutcome values), and find_in_path."""

from __future__ import annotations

from pathlib import Path

import pytest

from libcni_py.core import plugin_call as invoke
from libcni_py.core import version
from libcni_py.core.plugin_call import ExecOutcome, ExecRequest
from libcni_py.core.result import IPConfig, LegacyResult, Result
from libcni_py.errors import (
    CODE_DECODING_FAILURE,
    ConfigError,
    InvalidResultError,
    PluginError,
    PluginExecError,
    PluginNotFoundError,
    PluginTimeoutError,
)


def _req(command: str = "ADD", result_version: str = "1.0.0", name: str = "") -> ExecRequest:
    return ExecRequest(
        plugin_type="bridge",
        plugin_name=name,
        path="/opt/cni/bin/bridge",
        command=command,
        stdin=b"{}",
        env={},
        result_version=result_version,
    )


def _out(returncode: int = 0, stdout: bytes = b"", stderr: bytes = b"", **kw: object) -> ExecOutcome:
    return ExecOutcome(returncode=returncode, stdout=stdout, stderr=stderr, **kw)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- decode_error


def test_no_output_at_all_like_go() -> None:
    err = invoke.decode_error(_req(), _out(1))
    assert type(err) is PluginError
    # Go's RawExec.pluginErr: "netplugin failed with no error message: exit status 1"
    assert err.plugin_msg == "netplugin failed with no error message: exit status 1"
    assert str(err) == 'plugin type="bridge" failed (add): netplugin failed with no error message: exit status 1'
    assert err.code is None


def test_stderr_only() -> None:
    err = invoke.decode_error(_req("DEL"), _out(2, stderr=b"  boom: no such device\n"))
    assert err.plugin_msg == "netplugin failed (exit status 2): 'boom: no such device'"
    assert err.stderr == b"  boom: no such device\n"
    assert err.command == "DEL"
    assert "failed (del)" in str(err)


def test_stdout_not_json() -> None:
    err = invoke.decode_error(_req(), _out(1, stdout=b"panic: runtime error\n"))
    assert err.plugin_msg.startswith(
        "netplugin failed (exit status 1) and its stdout is not an error object (not valid JSON"
    )
    assert err.plugin_msg.endswith(": 'panic: runtime error'")


def test_long_output_is_quoted_truncated() -> None:
    err = invoke.decode_error(_req(), _out(1, stderr=b"x" * 1000))
    assert err.plugin_msg.endswith("... (600 more characters)'")


@pytest.mark.parametrize(
    ("stdout", "fault"),
    [
        (b'{"code":"eleven","msg":"x"}', "code: expected an integer"),
        (b'{"code":-1,"msg":"x"}', "code: must be at least 0"),
        (b'{"code":1.5,"msg":"x"}', "code: expected an integer"),
        (b'{"code":7,"msg":5}', "msg: expected a string"),
        (b'{"code":7,"msg":"m","details":["d"]}', "details: expected a string"),
        (b"[1,2]", "expected an object"),
        (b'"just a string"', "expected an object"),
    ],
)
def test_invalid_error_object(stdout: bytes, fault: str) -> None:
    err = invoke.decode_error(_req(), _out(1, stdout=stdout))
    assert type(err) is PluginError
    assert err.code is None
    assert f"its error object is invalid ({fault})" in err.plugin_msg
    assert repr(stdout.decode()) in err.plugin_msg


def test_valid_error_object() -> None:
    stdout = b'{"cniVersion":"1.0.0","code":7,"msg":"bad config","details":"bridge name too long"}'
    err = invoke.decode_error(_req(name="br"), _out(1, stdout=stdout, stderr=b"log line"))
    assert type(err) is PluginError
    assert err.code == 7
    assert err.plugin_msg == "bad config"
    assert err.details == "bridge name too long"
    assert err.plugin_type == "bridge"
    assert err.plugin_name == "br"
    assert err.stderr == b"log line"
    assert str(err) == 'plugin type="bridge" name="br" failed (add): bad config: bridge name too long'
    assert not err.retryable
    assert not err.not_ready


def test_error_object_without_code_or_message() -> None:
    err = invoke.decode_error(_req(), _out(3, stdout=b"{}"))
    assert err.code == 0
    assert err.plugin_msg == "netplugin failed with an empty error message (exit status 3)"
    only_details = invoke.decode_error(_req(), _out(3, stdout=b'{"details":"d","code":null,"msg":null}'))
    assert only_details.plugin_msg == ""
    assert only_details.details == "d"


@pytest.mark.parametrize(
    ("code", "retryable", "not_ready"),
    [(11, True, False), (50, False, True), (51, False, True), (7, False, False), (100, False, False)],
)
def test_well_known_codes(code: int, retryable: bool, not_ready: bool) -> None:
    err = invoke.decode_error(_req("STATUS"), _out(1, stdout=b'{"code":%d,"msg":"m"}' % code))
    assert err.code == code
    assert err.retryable is retryable
    assert err.not_ready is not_ready


def test_killed_by_signal() -> None:
    err = invoke.decode_error(_req(), _out(-9))
    assert err.plugin_msg == "netplugin failed with no error message: was killed by SIGKILL"
    odd = invoke.decode_error(_req(), _out(-200))
    assert "was killed by signal 200" in odd.plugin_msg


def test_not_started_timed_out_overflow() -> None:
    not_started = invoke.decode_error(_req(), _out(-1, started=False, error="Permission denied"))
    assert type(not_started) is PluginExecError
    assert not_started.plugin_msg == "could not run /opt/cni/bin/bridge: Permission denied"
    assert not_started.code is None
    timed_out = invoke.decode_error(_req(), _out(-9, timed_out=True, duration=30.04))
    assert type(timed_out) is PluginTimeoutError
    assert isinstance(timed_out, PluginExecError)
    assert "did not finish within 30.0s" in timed_out.plugin_msg
    assert "--timeout" in timed_out.hint
    overflow = invoke.decode_error(_req(), _out(-9, overflow=True))
    assert type(overflow) is PluginExecError
    assert f"more than {invoke.MAX_STDOUT} bytes" in overflow.plugin_msg


def test_raise_for_outcome() -> None:
    invoke.raise_for_outcome(_req(), _out(0, stdout=b"anything"))
    with pytest.raises(PluginError):
        invoke.raise_for_outcome(_req(), _out(1))
    with pytest.raises(PluginTimeoutError):
        invoke.raise_for_outcome(_req(), _out(0, timed_out=True))
    with pytest.raises(PluginExecError):
        invoke.raise_for_outcome(_req(), _out(0, overflow=True))
    with pytest.raises(PluginExecError):
        invoke.raise_for_outcome(_req(), _out(0, started=False, error="x"))


# --------------------------------------------------------------------------- decode_result


def test_decode_result() -> None:
    stdout = b'{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/24","gateway":"10.0.0.1"}],"dns":{}}'
    got = invoke.decode_result(_req(), _out(0, stdout=stdout))
    assert got == Result(cni_version="1.0.0", ips=[IPConfig(address="10.0.0.2/24", gateway="10.0.0.1")])


def test_decode_result_in_its_own_version() -> None:
    stdout = b'{"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.0.0.2/24"}]}'
    got = invoke.decode_result(_req(result_version="1.0.0"), _out(0, stdout=stdout))
    assert got.cni_version == "0.4.0"


@pytest.mark.parametrize(
    "stdout", [b'{"ips":[{"address":"10.0.0.2/24"}]}', b'{"cniVersion":"","ips":[{"address":"10.0.0.2/24"}]}']
)
def test_result_without_version_takes_config_version(stdout: bytes) -> None:
    got = invoke.decode_result(_req(result_version="1.0.0"), _out(0, stdout=stdout))
    assert got == Result(cni_version="1.0.0", ips=[IPConfig(address="10.0.0.2/24")])


def test_null_result_is_an_empty_result_of_config_version() -> None:
    got = invoke.decode_result(_req(result_version="1.1.0"), _out(0, stdout=b"null\n"))
    assert got == Result(cni_version="1.1.0")


def test_legacy_result_without_version_takes_config_version() -> None:
    got = invoke.decode_result(_req(result_version="0.2.0"), _out(0, stdout=b'{"ip4":{"ip":"10.0.0.2/24"}}'))
    assert isinstance(got, LegacyResult)
    assert got.cni_version == "0.2.0"


def test_result_without_any_version_is_010() -> None:
    got = invoke.decode_result(_req(result_version=""), _out(0, stdout=b'{"ip4":{"ip":"10.0.0.2/24"}}'))
    assert isinstance(got, LegacyResult)
    assert got.cni_version == "0.1.0"


def test_invalid_result_names_json_path() -> None:
    stdout = b'{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/24"},{"address":"nope"}]}'
    with pytest.raises(InvalidResultError) as info:
        invoke.decode_result(_req(), _out(0, stdout=stdout))
    err = info.value
    assert "ips[1].address" in str(err)
    assert err.plugin_msg == "exited 0 but returned an invalid result: ips[1].address: invalid CIDR address 'nope'"
    assert err.code == CODE_DECODING_FAILURE


def test_result_type_error_names_json_path() -> None:
    with pytest.raises(InvalidResultError, match=r"routes\[0\]\.dst: expected a string"):
        invoke.decode_result(_req(), _out(0, stdout=b'{"cniVersion":"1.0.0","routes":[{"dst":1}]}'))


@pytest.mark.parametrize(
    ("stdout", "fragment"),
    [
        (b"ok", "exited 0 but its output is not a result: not valid JSON"),
        (b"", "exited 0 but its output is not a result: empty"),
        (b"[]", "exited 0 but its output is not a result object: '[]'"),
        (b'"x"', "not a result object"),
        (b'{"cniVersion":"9.0.0"}', 'unsupported CNI result version "9.0.0"'),
    ],
)
def test_unusable_output(stdout: bytes, fragment: str) -> None:
    with pytest.raises(InvalidResultError) as info:
        invoke.decode_result(_req(), _out(0, stdout=stdout))
    assert fragment in info.value.plugin_msg


def test_decode_result_of_failed_call_raises_plugin_error() -> None:
    with pytest.raises(PluginError) as info:
        invoke.decode_result(_req(), _out(1, stdout=b'{"code":11,"msg":"busy"}'))
    assert not isinstance(info.value, InvalidResultError)
    assert info.value.retryable


# --------------------------------------------------------------------------- decode_version_info


def test_version_info() -> None:
    info = invoke.decode_version_info(
        _req("VERSION"), _out(0, stdout=b'{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0"]}')
    )
    assert info == version.PluginInfo(cni_version="1.0.0", supported_versions=("0.4.0", "1.0.0"))


def test_version_unknown_command_means_010_only() -> None:
    stdout = b'{"code":4,"msg":"unknown CNI_COMMAND: VERSION"}'
    info = invoke.decode_version_info(_req("VERSION"), _out(1, stdout=stdout))
    assert info.supported_versions == ("0.1.0",)
    assert info.supports("")


def test_version_unknown_command_with_details_is_an_error() -> None:
    # Go compares the whole error text ("msg; details") with "unknown CNI_COMMAND: VERSION"
    stdout = b'{"code":4,"msg":"unknown CNI_COMMAND: VERSION","details":"more"}'
    with pytest.raises(PluginError):
        invoke.decode_version_info(_req("VERSION"), _out(1, stdout=stdout))


def test_version_unknown_command_on_stderr_is_an_error() -> None:
    with pytest.raises(PluginError, match="unknown CNI_COMMAND"):
        invoke.decode_version_info(_req("VERSION"), _out(1, stderr=b"unknown CNI_COMMAND: VERSION"))


@pytest.mark.parametrize("stdout", [b'{"cniVersion":"0.2.0"}', b'{"cniVersion":"0.2.0","supportedVersions":[]}'])
def test_version_020_without_list(stdout: bytes) -> None:
    info = invoke.decode_version_info(_req("VERSION"), _out(0, stdout=stdout))
    assert info.supported_versions == ("0.1.0", "0.2.0")
    assert info.cni_version == "0.2.0"


@pytest.mark.parametrize(
    ("stdout", "message"),
    [
        (b'{"cniVersion":"0.3.1"}', "decoding version info: missing field supportedVersions"),
        (b'{"cniVersion":"1.0.0","supportedVersions":null}', "decoding version info: missing field supportedVersions"),
        (b'{"supportedVersions":["1.0.0"]}', 'decoding version info: missing required field "cniVersion"'),
        (b'{"cniVersion":""}', "decoding version info: cniVersion: must not be empty"),
        (
            b'{"cniVersion":"1.0.0","supportedVersions":"1.0.0"}',
            "decoding version info: supportedVersions: expected a list",
        ),
        (b"[]", "decoding version info: expected an object"),
    ],
)
def test_version_info_errors(stdout: bytes, message: str) -> None:
    with pytest.raises(InvalidResultError) as info:
        invoke.decode_version_info(_req("VERSION"), _out(0, stdout=stdout))
    assert info.value.plugin_msg == message


def test_version_info_not_json() -> None:
    with pytest.raises(InvalidResultError, match="decoding version info: not valid JSON"):
        invoke.decode_version_info(_req("VERSION"), _out(0, stdout=b"1.0.0"))


def test_version_probe_failures() -> None:
    with pytest.raises(PluginTimeoutError):
        invoke.decode_version_info(_req("VERSION"), _out(-9, timed_out=True))
    with pytest.raises(PluginExecError, match="could not run"):
        invoke.decode_version_info(_req("VERSION"), _out(-1, started=False, error="Exec format error"))
    with pytest.raises(PluginError, match="no error message"):
        invoke.decode_version_info(_req("VERSION"), _out(1))


# --------------------------------------------------------------------------- find_in_path


def _touch(path: Path, mode: int = 0o755) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"#!/bin/sh\n")
    path.chmod(mode)
    return path


def test_find_in_path_first_directory_wins(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    _touch(two / "bridge")
    assert invoke.find_in_path("bridge", [str(one), str(two)]) == str(two / "bridge")
    _touch(one / "bridge")
    assert invoke.find_in_path("bridge", [str(one), str(two)]) == str(one / "bridge")


def test_find_in_path_needs_a_regular_file(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    (one / "bridge").mkdir(parents=True)
    (one / "dangling").parent.mkdir(exist_ok=True)
    (one / "dangling").symlink_to(tmp_path / "nowhere")
    _touch(two / "bridge")
    assert invoke.find_in_path("bridge", [str(one), str(two)]) == str(two / "bridge")
    with pytest.raises(PluginNotFoundError):
        invoke.find_in_path("dangling", [str(one)])


def test_find_in_path_ignores_execute_bit_and_follows_symlinks(tmp_path: Path) -> None:
    plain = _touch(tmp_path / "bin" / "noexec", mode=0o644)
    assert invoke.find_in_path("noexec", [str(tmp_path / "bin")]) == str(plain)
    (tmp_path / "bin" / "alias").symlink_to(plain)
    assert invoke.find_in_path("alias", [str(tmp_path / "bin")]) == str(tmp_path / "bin" / "alias")


def test_find_in_path_not_found_lists_dirs(tmp_path: Path) -> None:
    dirs = [str(tmp_path / "a"), str(tmp_path / "b")]
    with pytest.raises(PluginNotFoundError) as info:
        invoke.find_in_path("macvlan", dirs)
    err = info.value
    assert str(err) == f'plugin "macvlan" not found in {dirs[0]}:{dirs[1]}'
    assert err.dirs == tuple(dirs)
    assert err.plugin_type == "macvlan"
    assert "CNI_PATH" in err.hint


def test_installed_elsewhere_names_unsearched_dirs_that_have_the_plugin(tmp_path: Path) -> None:
    """Where distributions install plugins is checked only to say where a
    missing plugin is: a directory that was searched (also under another
    name, through a symbolic link) is not named, nor one whose entry is not
    a regular file."""
    searched, other, alias, dirlike = (tmp_path / n for n in ("searched", "other", "alias", "dirlike"))
    searched.mkdir()
    other.mkdir()
    (other / "bridge").write_text("")
    alias.symlink_to(other)
    dirlike.mkdir()
    (dirlike / "bridge").mkdir()  # a directory named like the plugin is no plugin
    known = [str(searched), str(other), str(dirlike), str(tmp_path / "absent")]
    assert invoke.installed_elsewhere("bridge", [str(searched)], known) == (str(other),)
    assert invoke.installed_elsewhere("bridge", [str(alias)], known) == ()
    assert invoke.installed_elsewhere("macvlan", [str(searched)], known) == ()


@pytest.mark.parametrize(
    ("plugin_type", "fragment"),
    [
        ("../bridge", 'invalid plugin type "../bridge": it must be a file name, not a path'),
        ("/usr/bin/bridge", "it must be a file name, not a path"),
        ("a/b", "it must be a file name"),
        (".", "it must be a file name"),
        ("..", "it must be a file name"),
        ("", "no plugin type given"),
    ],
)
def test_find_in_path_refuses_paths(tmp_path: Path, plugin_type: str, fragment: str) -> None:
    _touch(tmp_path / "bin" / "bridge")
    (tmp_path / "bin" / "a").mkdir()
    _touch(tmp_path / "bin" / "a" / "b")
    with pytest.raises(PluginNotFoundError) as info:
        invoke.find_in_path(plugin_type, [str(tmp_path / "bin")])
    assert fragment in str(info.value)


def test_find_in_path_without_dirs() -> None:
    with pytest.raises(PluginNotFoundError, match='plugin "bridge": no plugin directories given'):
        invoke.find_in_path("bridge", [])


def test_find_in_path_refuses_relative_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Go looks relative directories up from the current directory; libcni_py
    # refuses them (whoever controls the current directory chooses the plugin)
    _touch(tmp_path / "bin" / "bridge")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="'bin' is a relative directory"):
        invoke.find_in_path("bridge", ["bin"])
