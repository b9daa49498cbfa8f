"""What a runtime running as root must refuse: names that would steer paths,
symbolic links planted in the cache directory, plugin directories anyone can
write to or that depend on the current directory, and any use of a shell."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import CNITOOL, NO_NETNS, PLUGINS, REPO, read_calls, run_cnitool, write_conf

from libcni_py import CNI, ConfigError, InvalidNameError, RuntimeConf, load_network
from libcni_py.core.args import cnitool_container_id

RT = RuntimeConf(container_id="ctr1", netns=NO_NETNS, ifname="eth0")
NET = {"cniVersion": "1.1.0", "name": "secnet", "plugins": [{"type": "recorder"}]}


@pytest.fixture
def env(conf_dir: Path, cache_dir: Path, record_file: Path) -> dict[str, str]:
    write_conf(conf_dir, "10-sec.conflist", NET)
    return {
        "NETCONFPATH": str(conf_dir),
        "CNI_PATH": str(PLUGINS),
        "CNI_CACHE_DIR": str(cache_dir),
        "RECORD_FILE": str(record_file),
    }


@pytest.fixture
def netns(tmp_path: Path) -> Path:
    path = tmp_path / "ns"
    path.write_text("")
    return path


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


# --------------------------------------------------------------------------
# names


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["add", "secnet", "NETNS", "--container-id", "../../../tmp/x"], "container ID '../../../tmp/x': invalid"),
        (["check", "secnet", "NETNS", "--container-id", "a/b"], "container ID 'a/b': invalid characters"),
        (["del", "secnet", "NETNS", "--container-id", ".."], "container ID '..': invalid characters"),
        (["add", "secnet", "NETNS", "--ifname", "../etc"], "interface name '../etc'"),
        (["del", "secnet", "NETNS", "--ifname", ".."], "interface name '..': must not be . or .."),
        (["check", "secnet", "NETNS", "--ifname", "a" * 16], "is too long (16 bytes, at most 15)"),
        (["del", "../../etc", "NETNS"], 'no network named "../../etc"'),
        (["gc", "../../etc", "--all"], 'no network named "../../etc"'),
        (["gc", "secnet", "--valid", ".hidden/eth0"], "--valid: container ID '.hidden'"),
        (["gc", "secnet", "--valid", "abc/../x"], "--valid: interface name '../x'"),
    ],
)
def test_names_are_refused_at_every_cli_entry_point(
    argv: list[str], needle: str, env: dict[str, str], netns: Path, cache_dir: Path, record_file: Path
) -> None:
    proc = run_cnitool(*[str(netns) if a == "NETNS" else a for a in argv], env=env)
    assert proc.returncode == 3, proc.stderr
    assert needle in one_error_line(proc)
    assert read_calls(record_file) == [], "no plugin ran"
    assert not cache_dir.exists() or not any(cache_dir.rglob("*")), "nothing was written"


def test_names_are_refused_at_every_library_entry_point(conf_dir: Path, cache_dir: Path, record_file: Path) -> None:
    write_conf(conf_dir, "10-sec.conflist", NET)
    net = load_network(str(conf_dir), "secnet")
    cni = CNI(
        plugin_path=[str(PLUGINS)], cache_dir=str(cache_dir), env={"RECORD_FILE": str(record_file)}, on_stderr=None
    )
    bad = [
        RT.replace(container_id="../x"),
        RT.replace(container_id=""),
        RT.replace(ifname="a/b"),
        RT.replace(ifname="x" * 16),
    ]
    for rt in bad:
        for call in (cni.add, cni.check, cni.delete, cni.cached_record, cni.cached_result):
            with pytest.raises(InvalidNameError):
                call(net, rt)  # type: ignore[operator]
        with pytest.raises(InvalidNameError):
            cni.delete("secnet", rt)
    for name in ("../secnet", "a/b", ""):
        with pytest.raises(InvalidNameError):
            cni.delete(name, RT)
        with pytest.raises(InvalidNameError):
            cni.gc(name, [])
        with pytest.raises(InvalidNameError):
            cni.gc(net.replace(name=name), [])
        with pytest.raises(InvalidNameError):
            cni.add(net.replace(name=name), RT)
    assert read_calls(record_file) == []
    assert not any(cache_dir.rglob("*"))


def test_a_conf_file_with_a_hostile_name_is_refused(
    conf_dir: Path, env: dict[str, str], netns: Path, record_file: Path
) -> None:
    write_conf(conf_dir, "20-evil.conflist", {"cniVersion": "1.0.0", "name": "../../etc", "plugins": [{"type": "x"}]})
    proc = run_cnitool("add", "../../etc", str(netns), env=env)
    assert proc.returncode == 3
    assert "20-evil.conflist: name: '../../etc' is not a valid network name" in one_error_line(proc)
    assert read_calls(record_file) == []


# --------------------------------------------------------------------------
# symbolic links planted in the cache directory


def plant(cache_dir: Path, where: str, target: Path, filename: str) -> Path:
    """Make ``<cache_dir>/<where>`` a symbolic link to ``target``."""
    link = cache_dir / where.replace("RECORD", filename)
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)
    return link


@pytest.mark.parametrize(
    "where",
    ["results", "libcni_py", "libcni_py/tmp", "libcni_py/locks", "libcni_py/locks/RECORD"],
)
def test_add_refuses_symlinked_cache_paths(
    where: str, env: dict[str, str], netns: Path, cache_dir: Path, tmp_path: Path, record_file: Path
) -> None:
    target = tmp_path / "target"
    target.mkdir()
    (target / "keep").write_text("untouched")
    filename = f"secnet-{cnitool_container_id(str(netns))}-eth0"
    link = plant(cache_dir, where, target, filename)
    proc = run_cnitool("add", "secnet", str(netns), env=env)
    assert proc.returncode == 5, proc.stderr
    line = one_error_line(proc)
    assert str(link) in line and ("symbolic link" in line or "too many levels" in line.lower()), line
    assert read_calls(record_file) == [], "refused before any plugin ran"
    assert sorted(p.name for p in target.iterdir()) == ["keep"], "nothing was written through the link"


def test_a_record_planted_as_a_symlink_is_replaced_not_followed(
    env: dict[str, str], netns: Path, cache_dir: Path, tmp_path: Path
) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    filename = f"secnet-{cnitool_container_id(str(netns))}-eth0"
    link = plant(cache_dir, "results/RECORD", victim, filename)
    proc = run_cnitool("add", "secnet", str(netns), env=env)
    assert proc.returncode == 0, proc.stderr
    assert victim.read_text() == "precious"
    assert not link.is_symlink() and json.loads(link.read_text())["kind"] == "cniCacheV1"


def test_modes_do_not_depend_on_the_umask(env: dict[str, str], netns: Path, cache_dir: Path) -> None:
    proc = subprocess.run(
        ["sh", "-c", 'umask 000; exec "$0" "$@"', sys.executable, str(CNITOOL), "add", "secnet", str(netns)],
        env=dict(os.environ) | env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    modes = {str(p.relative_to(cache_dir)): oct(p.stat().st_mode & 0o777) for p in cache_dir.rglob("*")}
    filename = f"secnet-{cnitool_container_id(str(netns))}-eth0"
    assert modes == {
        "results": "0o700",
        f"results/{filename}": "0o600",
        "libcni_py": "0o700",
        "libcni_py/gc-lock": "0o700",
        "libcni_py/gc-lock/lock": "0o600",
        "libcni_py/tmp": "0o700",
        "libcni_py/locks": "0o700",
        f"libcni_py/locks/{filename}": "0o600",
    }


# --------------------------------------------------------------------------
# plugin directories


def _bin(tmp_path: Path, mode: int) -> Path:
    path = tmp_path / f"bin-{mode:o}"
    path.mkdir()
    (path / "recorder").symlink_to(PLUGINS / "recorder")
    path.chmod(mode)
    return path


@pytest.mark.parametrize("mode", [0o777, 0o1777, 0o757])
def test_world_writable_plugin_directory_is_refused(
    mode: int, env: dict[str, str], netns: Path, tmp_path: Path, cache_dir: Path, record_file: Path
) -> None:
    plugin_dir = _bin(tmp_path, mode)
    proc = run_cnitool("add", "secnet", str(netns), env=env | {"CNI_PATH": f"/nonexistent:{plugin_dir}"})
    assert proc.returncode == 3
    assert f"plugin path: {plugin_dir} is writable by every user" in one_error_line(proc)
    assert read_calls(record_file) == []
    assert not any(cache_dir.rglob("*"))


def test_world_writable_plugin_directory_later_in_the_path_is_refused(
    conf_dir: Path, cache_dir: Path, tmp_path: Path
) -> None:
    """Every directory counts: plugins get the whole CNI_PATH to find delegates."""
    write_conf(conf_dir, "10-sec.conflist", NET)
    cni = CNI(plugin_path=[str(PLUGINS), str(_bin(tmp_path, 0o777))], cache_dir=str(cache_dir), on_stderr=None)
    with pytest.raises(ConfigError, match="is writable by every user"):
        cni.add(load_network(str(conf_dir), "secnet"), RT)


def test_world_writable_plugin_binary_is_refused(conf_dir: Path, cache_dir: Path, tmp_path: Path) -> None:
    write_conf(conf_dir, "10-sec.conflist", NET)
    plugin_dir = tmp_path / "bin"
    plugin_dir.mkdir()
    binary = plugin_dir / "recorder"
    binary.write_bytes((PLUGINS / "recorder").read_bytes())
    binary.chmod(0o777)
    cni = CNI(plugin_path=[str(plugin_dir)], cache_dir=str(cache_dir), on_stderr=None)
    with pytest.raises(ConfigError, match=f"{binary} is writable by every user"):
        cni.add(load_network(str(conf_dir), "secnet"), RT)


@pytest.mark.parametrize("entry", ["bin", ".", "testdata/plugins", ""])
def test_relative_plugin_directory_is_refused(
    entry: str, env: dict[str, str], netns: Path, cache_dir: Path, record_file: Path
) -> None:
    path = f"{PLUGINS}:{entry}" if entry else f"{PLUGINS}::"
    proc = subprocess.run(
        [sys.executable, str(CNITOOL), "add", "secnet", str(netns)],
        cwd=REPO,
        env=dict(os.environ) | env | {"CNI_PATH": path},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if not entry:
        assert proc.returncode == 0, "empty entries are skipped, as Go skips them"
        return
    assert proc.returncode == 3
    assert f"plugin path: {entry!r} is a relative directory" in one_error_line(proc)
    assert read_calls(record_file) == []


# --------------------------------------------------------------------------
# no shell


SHELL_CALLS = {
    "system",
    "popen",
    "spawnlp",
    "spawnvp",
    "spawnlpe",
    "spawnvpe",
    "execlp",
    "execvp",
    "execlpe",
    "execvpe",
    "posix_spawnp",
    "getoutput",
    "getstatusoutput",
}


def test_the_package_never_uses_a_shell() -> None:
    found = []
    for path in sorted((REPO / "libcni_py").rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        # a set of program names (proctrace recognises script interpreters by
        # name) is not a command line
        in_sets = {id(e) for n in ast.walk(tree) if isinstance(n, ast.Set) for e in n.elts}
        for node in ast.walk(tree):
            if id(node) in in_sets:
                continue
            if isinstance(node, ast.keyword) and node.arg == "shell":
                found.append(f"{path.name}:{node.lineno}: shell=")
            if isinstance(node, ast.Attribute) and node.attr in SHELL_CALLS:
                found.append(f"{path.name}:{node.lineno}: {node.attr}")
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in ("/bin/sh", "sh", "-c"):
                found.append(f"{path.name}:{node.lineno}: {node.value!r}")
            if isinstance(node, ast.ImportFrom) and node.module in ("os", "subprocess", "commands"):
                found += [f"{path.name}:{node.lineno}: import {a.name}" for a in node.names if a.name in SHELL_CALLS]
    assert found == []
    # and the check can fail: it sees a planted call
    planted = ast.parse("import os\nos.system('x')\n")
    assert any(isinstance(n, ast.Attribute) and n.attr in SHELL_CALLS for n in ast.walk(planted))
