"""Running plugins: deadlines that kill everything a plugin started, the
"text file busy" retry that really re-executes, unrunnable files, stderr."""

from __future__ import annotations

import os
import stat
import threading
import time
from pathlib import Path

import pytest
from support import NO_NETNS, PLUGINS, wait_gone, write_conf

from libcni_py import CNI, PluginError, PluginExecError, PluginTimeoutError, RuntimeConf, load_network
from libcni_py.core.plugin_call import ExecRequest
from libcni_py.drivers.blocking import run_plugin

RT = RuntimeConf(container_id="ctr1", netns=NO_NETNS, ifname="eth0")


def test_timeout_kills_the_plugin_and_what_it_started(conf_dir: Path, cache_dir: Path, tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    write_conf(
        conf_dir,
        "10-hang.conflist",
        {
            "cniVersion": "1.0.0",
            "name": "hang",
            "plugins": [{"type": "hanger", "pidFile": str(pid_file)}],
        },
    )
    cni = CNI(plugin_path=[str(PLUGINS)], cache_dir=str(cache_dir), timeout=2.0, on_stderr=None)
    started = time.monotonic()
    with pytest.raises(PluginTimeoutError) as info:
        cni.add(load_network(str(conf_dir), "hang"), RT)
    assert time.monotonic() - started < 10
    assert "did not finish within" in str(info.value)
    plugin_pid, child_pid = (int(x) for x in pid_file.read_text().split())
    assert wait_gone(plugin_pid), "the plugin survived its deadline"
    assert wait_gone(child_pid), "the plugin's child survived the deadline"


def test_text_file_busy_is_retried_with_a_fresh_exec(tmp_path: Path) -> None:
    binary = tmp_path / "busy"
    binary.write_text('#!/bin/sh\necho \'{"cniVersion":"1.0.0"}\'\n')
    binary.chmod(0o755)
    writer = os.open(binary, os.O_WRONLY)  # a writer makes exec fail with ETXTBSY

    def release() -> None:
        time.sleep(1.5)
        os.close(writer)

    thread = threading.Thread(target=release)
    thread.start()
    req = ExecRequest(
        plugin_type="busy", path=str(binary), command="VERSION", stdin=b"{}", env={"PATH": "/usr/bin:/bin"}
    )
    started = time.monotonic()
    outcome = run_plugin(req, 30)
    thread.join()
    assert outcome.started and outcome.returncode == 0, outcome
    assert outcome.stdout.strip() == b'{"cniVersion":"1.0.0"}'
    assert time.monotonic() - started >= 1.0, "it must have waited for the writer"


def test_not_executable_is_a_clear_error(conf_dir: Path, cache_dir: Path, tmp_path: Path) -> None:
    plugdir = tmp_path / "bin"
    plugdir.mkdir()
    (plugdir / "noexec").write_text("#!/bin/sh\nexit 0\n")
    write_conf(conf_dir, "10-x.conflist", {"cniVersion": "1.0.0", "name": "x", "plugins": [{"type": "noexec"}]})
    cni = CNI(plugin_path=[str(plugdir)], cache_dir=str(cache_dir), on_stderr=None)
    with pytest.raises(PluginExecError) as info:
        cni.add(load_network(str(conf_dir), "x"), RT)
    assert "permission denied" in str(info.value) and "chmod +x" in str(info.value)
    assert not stat.S_IXUSR & (plugdir / "noexec").stat().st_mode


def test_plugin_stderr_is_kept_in_errors_and_passed_on_success(conf_dir: Path, cache_dir: Path) -> None:
    write_conf(
        conf_dir,
        "10-x.conflist",
        {
            "cniVersion": "1.0.0",
            "name": "x",
            "plugins": [
                {"type": "failer", "failOn": ["DEL"], "stderr": "warning: something odd\n", "msg": "del failed"}
            ],
        },
    )
    seen: list[bytes] = []
    cni = CNI(plugin_path=[str(PLUGINS)], cache_dir=str(cache_dir), on_stderr=lambda req, data: seen.append(data))
    net = load_network(str(conf_dir), "x")
    cni.add(net, RT)
    assert seen == [b"warning: something odd\n"]
    with pytest.raises(PluginError) as info:
        cni.delete(net, RT)
    assert info.value.stderr == b"warning: something odd\n"
    assert "del failed" in str(info.value)


def test_shell_plugin_failures_follow_go_messages(tmp_path: Path) -> None:
    def run(script: str) -> PluginError:
        binary = tmp_path / "p"
        binary.write_text("#!/bin/sh\n" + script)
        binary.chmod(0o755)
        req = ExecRequest(plugin_type="p", path=str(binary), command="ADD", stdin=b"{}", env={"PATH": "/usr/bin:/bin"})
        from libcni_py.core.plugin_call import decode_error

        return decode_error(req, run_plugin(req, 10))

    assert "netplugin failed with no error message: exit status 3" in str(run("exit 3"))
    assert "netplugin failed (exit status 1): 'boom'" in str(run("echo boom >&2; exit 1"))
    assert "not an error object" in str(run("echo not-json; exit 1"))
    killed = run("kill -9 $$")
    assert "killed by SIGKILL" in str(killed)


def test_many_stdin_bytes_to_a_plugin_that_never_reads(tmp_path: Path) -> None:
    binary = tmp_path / "deaf"
    binary.write_text("#!/bin/sh\necho '{}'\nexit 0\n")
    binary.chmod(0o755)
    req = ExecRequest(
        plugin_type="deaf", path=str(binary), command="ADD", stdin=b"x" * (4 << 20), env={"PATH": "/usr/bin:/bin"}
    )
    outcome = run_plugin(req, 20)
    assert outcome.returncode == 0 and outcome.stdout == b"{}\n"
