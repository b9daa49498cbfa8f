"""What a new user tripped over (issue 15), each pinned: messages for a conf
dir that does not exist, ``ready`` naming the runtimes an invalid file
breaks, the toy runtime's interpreter, exit codes against the README's
table, ``--version`` and ``help COMMAND``, STATUS below 1.1.0, notes that
were noise, one JSON indentation, and a short ``help(libcni_py)``."""

from __future__ import annotations

import json
import os
import pydoc
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support import DEBIAN_PLUGINS, PLUGINS, REPO, run_cnitool, write_conf

import libcni_py
import libcni_py.netns

RECNET = {
    "cniVersion": "1.0.0",
    "name": "recnet",
    "plugins": [{"type": "recorder"}, {"type": "recorder", "interfaceName": "rec1"}],
}


@pytest.fixture
def env(conf_dir: Path, cache_dir: Path, record_file: Path) -> dict[str, str]:
    write_conf(conf_dir, "10-rec.conflist", RECNET)
    return {
        "NETCONFPATH": str(conf_dir),
        "CNI_PATH": str(PLUGINS),
        "CNI_CACHE_DIR": str(cache_dir),
        "RECORD_FILE": str(record_file),
        "CAP_ARGS": "",
        "CNI_ARGS": "",
    }


@pytest.fixture
def netns(tmp_path: Path) -> Path:
    path = tmp_path / "fake-netns"
    path.write_text("")
    return path


def _error_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cnitool"), proc.stderr
    return lines[0]


@pytest.mark.parametrize("command", [["add", "x", "/var/run/netns/x"], ["validate", "x"], ["explain", "x"]])
def test_a_conf_dir_that_does_not_exist_is_like_an_empty_one(tmp_path: Path, command: list[str]) -> None:
    for conf in (tmp_path / "missing", tmp_path):
        proc = run_cnitool("--conf-dir", str(conf), *command, env={"NETCONFPATH": ""})
        assert proc.returncode == 3
        assert 'no network named "x" (networks found: none)' in _error_line(proc)


@pytest.mark.parametrize("command", [["ready"], ["pod", "up", "--name", "web"]])
def test_ready_and_pod_up_say_the_conf_dir_does_not_exist(tmp_path: Path, command: list[str]) -> None:
    missing = tmp_path / "missing"
    proc = run_cnitool("--conf-dir", str(missing), "--cache-dir", str(tmp_path / "c"), *command)
    assert proc.returncode == 1
    assert f"conf dir {missing} does not exist" in _error_line(proc)


def test_ready_names_the_consumers_an_invalid_first_file_breaks(
    env: dict[str, str], conf_dir: Path, plugin_dir: Path
) -> None:
    env = env | {"CNI_PATH": str(plugin_dir)}  # with a loopback plugin, as every runtime needs
    (conf_dir / "00-broken.conf").write_text("{not json")
    proc = run_cnitool("ready", env=env)
    assert proc.returncode == 0 and proc.stdout == "ready (default network 'recnet')\n"
    assert "but containerd would not be ready: the load fails on 00-broken.conf" in proc.stderr
    assert "CRI-O" not in proc.stderr  # CRI-O skips the file, as libcni_py's runtime layer does
    (conf_dir / "00-broken.conf").unlink()
    assert run_cnitool("ready", env=env).stderr == ""


def test_the_toy_runtime_is_run_with_the_projects_environment() -> None:
    documented = [REPO / "README.md", REPO / "examples" / "toy_runtime.py", *(REPO / "docs").glob("*.md")]
    for path in documented:
        assert "python3 examples/toy_runtime.py" not in path.read_text(), path
    assert ".venv/bin/python examples/toy_runtime.py" in (REPO / "docs" / "runtime.md").read_text()
    # without trio (the system interpreter, no site-packages): it says what to run
    bare = subprocess.run(
        [sys.executable, "-S", str(REPO / "examples" / "toy_runtime.py"), "--help"],
        capture_output=True, text=True, check=False, env={"PATH": os.defpath},
    )  # fmt: skip
    assert bare.returncode == 1 and ".venv/bin/python examples/toy_runtime.py" in bare.stderr
    ok = subprocess.run([sys.executable, str(REPO / "examples" / "toy_runtime.py"), "--help"], capture_output=True)
    assert ok.returncode == 0


def test_exec_of_a_command_that_cannot_run_exits_as_a_shell(env: dict[str, str], tmp_path: Path) -> None:
    missing = run_cnitool("exec", "recnet", "--", "/nonexistent", env=env)
    assert missing.returncode == 127 and "command '/nonexistent' not found" in _error_line(missing)
    script = tmp_path / "not-executable"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o644)
    denied = run_cnitool("exec", "recnet", "--", str(script), env=env)
    assert denied.returncode == 126 and "is not an executable file" in _error_line(denied)
    shell = subprocess.run(["sh", "-c", "/nonexistent"], capture_output=True, check=False)
    assert shell.returncode == missing.returncode


def test_not_on_record_is_bad_arguments_not_a_plugin_failure(env: dict[str, str], netns: Path) -> None:
    check = run_cnitool("check", "recnet", str(netns), env=env)
    assert check.returncode == 3 and "nothing to check: no cache record" in _error_line(check)
    show = run_cnitool("cache", "show", "recnet", "cnitool-00000000000000000000", "eth0", env=env)
    assert show.returncode == 3 and "no cache record" in _error_line(show)
    readme = (REPO / "README.md").read_text()
    assert "`check` or `cache show` of one that is not" in readme  # the table says so


def test_version_and_help_command() -> None:
    version = run_cnitool("--version")
    assert version.returncode == 0
    assert (
        version.stdout
        == f"cnitool (libcni_py) {libcni_py.__version__}; CNI spec 0.1.0 0.2.0 0.3.0 0.3.1 0.4.0 1.0.0 1.1.0\n"
    )
    helped, direct = run_cnitool("help", "add"), run_cnitool("add", "--help")
    assert helped.returncode == 0 and helped.stdout == direct.stdout and helped.stdout.startswith("usage: cnitool add")
    assert run_cnitool("help").stdout == run_cnitool("--help").stdout
    unknown = run_cnitool("help", "nosuch")
    assert unknown.returncode == 2 and "unknown command 'nosuch'" in unknown.stderr


def test_status_below_1_1_0_says_it_does_not_apply(env: dict[str, str], conf_dir: Path, record_file: Path) -> None:
    proc = run_cnitool("status", "recnet", env=env)
    assert proc.returncode == 0
    assert proc.stdout.startswith("STATUS does not apply to network 'recnet': its cniVersion is 1.0.0")
    assert "spec 1.1.0 operation" in proc.stdout and not record_file.exists()  # no plugin was asked
    write_conf(conf_dir, "10-rec.conflist", {**RECNET, "cniVersion": "1.1.0"})
    proc = run_cnitool("status", "recnet", env=env)
    assert proc.returncode == 0 and "is ready" in proc.stdout
    assert [json.loads(line)["command"] for line in record_file.read_text().splitlines()] == ["STATUS", "STATUS"]


def test_the_recorded_args_note_is_not_noise(env: dict[str, str], conf_dir: Path, netns: Path) -> None:
    caps = '{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]}'
    write_conf(
        conf_dir,
        "10-rec.conflist",
        {**RECNET, "plugins": [{"type": "recorder", "capabilities": {"portMappings": True}}]},
    )
    assert run_cnitool("add", "recnet", str(netns), env=env | {"CAP_ARGS": caps}).returncode == 0
    # explain --command DEL shows the arguments; no note
    explain = run_cnitool("explain", "recnet", str(netns), "--command", "DEL", env=env)
    assert explain.returncode == 0 and explain.stderr == ""
    # a CHECK that fails: the error alone
    failing = {**RECNET, "plugins": [{"type": "recorder", "failOn": ["CHECK"], "capabilities": {"portMappings": True}}]}
    write_conf(conf_dir, "10-rec.conflist", failing)
    check = run_cnitool("check", "recnet", str(netns), env=env)
    assert check.returncode == 1 and _error_line(check).startswith("cnitool: error: ")
    # one that succeeds: the note, after it
    write_conf(
        conf_dir,
        "10-rec.conflist",
        {**RECNET, "plugins": [{"type": "recorder", "capabilities": {"portMappings": True}}]},
    )
    ok = run_cnitool("check", "recnet", str(netns), env=env)
    assert ok.returncode == 0
    assert ok.stderr == "cnitool: note: using the capability args recorded when the attachment was added\n"


def test_ls_does_not_count_the_other_networks_as_problems(env: dict[str, str], conf_dir: Path) -> None:
    write_conf(conf_dir, "20-other.conflist", {**RECNET, "name": "other"})
    proc = run_cnitool("ls", "--no-probe", env=env)
    assert "problems: none" in proc.stdout
    notes = proc.stdout.split("\nnotes:\n", 1)[1]
    assert "20-other.conflist ('other') is not the default network" in notes
    doc = json.loads(run_cnitool("ls", "--no-probe", "--json", env=env).stdout)
    assert doc["problems"] == [] and len(doc["notes"]) == 1


BRIDGE_NET = {
    "cniVersion": "1.0.0",
    "name": "debnet",
    "plugins": [{"type": "bridge", "ipam": {"type": "host-local", "subnet": "10.99.0.0/24"}}],
}


def test_a_plugin_installed_outside_the_plugin_path_is_named(tmp_path: Path) -> None:
    """Debian installs the plugins to /usr/lib/cni, while libcni's default
    path is /opt/cni/bin: "not found" then says where the plugin is, and
    ``ls`` and ``doctor`` say it too, with the settings that fix it."""
    assert (DEBIAN_PLUGINS / "bridge").is_file(), "scripts/setup installs Debian's containernetworking-plugins"
    conf, empty = tmp_path / "net.d", tmp_path / "bin"
    conf.mkdir()
    empty.mkdir()
    write_conf(conf, "10-deb.conflist", BRIDGE_NET)
    env = {"NETCONFPATH": str(conf), "CNI_PATH": str(empty), "CNI_CACHE_DIR": str(tmp_path / "cache")}

    line = _error_line(run_cnitool("validate", "debnet", env=env))
    assert f'plugin "bridge" not found in {empty}' in line
    assert f"it is installed in {DEBIAN_PLUGINS}, which is not searched" in line

    report = json.loads(run_cnitool("ls", "--no-probe", "--json", env=env).stdout)
    where = {p["type"]: p["elsewhere"] for p in report["plugins"]}
    assert where == {"bridge": [str(DEBIAN_PLUGINS)], "host-local": [str(DEBIAN_PLUGINS)]}

    doctor = run_cnitool("doctor", "--no-probe", "--json", "--ipam-dir", str(tmp_path / "ipam"), env=env)
    assert doctor.returncode == 7, doctor.stderr
    missing = [f for f in json.loads(doctor.stdout)["findings"] if "MISSING" in f["cause"]]
    assert missing and all(f"it is in {DEBIAN_PLUGINS}, which is not searched" in f["cause"] for f in missing)
    assert all("containerd: bin_dir" in f["fix"] for f in missing)

    # on the path, nothing is said about other directories
    env["CNI_PATH"] = str(DEBIAN_PLUGINS)
    report = json.loads(run_cnitool("ls", "--no-probe", "--json", env=env).stdout)
    assert all(p["path"] and p["elsewhere"] == [] for p in report["plugins"])


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs util-linux's setpriv")
def test_exec_without_privileges_prints_only_the_real_error(env: dict[str, str]) -> None:
    if os.geteuid() != 0:
        pytest.skip("runs as root with its capabilities dropped (a non-root user's view)")
    command = [
        "setpriv",
        "--bounding-set=-all",
        "--inh-caps=-all",
        "--",
        sys.executable,
        str(REPO / "cmd" / "cnitool.py"),
    ]
    proc = subprocess.run(
        [*command, "--cache-dir", "/nonexistent/cache", "exec", "recnet", "--", "true"],
        capture_output=True, text=True, check=False, env={**os.environ, **env},
    )  # fmt: skip
    assert proc.returncode == 6
    assert "needs root" in _error_line(proc) and "teardown" not in proc.stderr


def test_json_has_one_indentation_and_a_stable_order(env: dict[str, str], netns: Path, tmp_path: Path) -> None:
    assert run_cnitool("add", "recnet", str(netns), env=env).returncode == 0
    cid = json.loads(run_cnitool("cache", "ls", "--json", env=env).stdout)["attachments"][0]["containerId"]
    commands = [
        ["ls", "--no-probe", "--json"],
        ["cache", "ls", "--json"],
        ["cache", "show", "recnet", cid, "eth0", "--json"],
        ["explain", "recnet", "--json"],
        ["pod", "ls", "--json"],
        ["version", "recorder"],
        ["doctor", "--no-probe", "--json", "--ipam-dir", str(tmp_path / "ipam")],
    ]
    for command in commands:
        first, second = run_cnitool(*command, env=env), run_cnitool(*command, env=env)
        assert first.stdout == second.stdout, command  # the same state prints the same bytes
        indents = {len(m) for m in re.findall(r"^( +)\S", first.stdout, flags=re.M)}
        assert indents and min(indents) == 4 and all(i % 4 == 0 for i in indents), (command, sorted(indents))
    trace = tmp_path / "t.json"
    assert run_cnitool("--trace-json", str(trace), "check", "recnet", str(netns), env=env).returncode == 0
    assert trace.read_text().startswith('{\n    "')


def test_help_of_the_package_is_short() -> None:
    text = pydoc.render_doc(libcni_py, renderer=pydoc.plaintext)
    # 2,837 lines before issue 15, most of it BaseException's members repeated for each error class
    assert len(text.splitlines()) < 2000
    error_page = pydoc.render_doc(libcni_py.PluginTimeoutError, renderer=pydoc.plaintext)
    assert "with_traceback" not in error_page and "add_note" not in error_page
    assert len(error_page.splitlines()) < 60


def test_the_readme_names_the_trio_forms_of_the_netns_functions() -> None:
    readme = (REPO / "README.md").read_text()
    for name in ("acreate", "adelete", "arun_in"):
        assert f"`{name}`" in readme
        assert name in libcni_py.netns.__all__
