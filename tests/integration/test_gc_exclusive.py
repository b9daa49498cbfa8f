"""GC is exclusive of ADD, CHECK and DEL on one cache dir, across processes,
in the core too (``CNI.gc``, ``cnitool gc``), as the spec requires: "The
runtime must exclusively execute either gc or add and delete".

Real processes: a ``cnitool add`` whose plugin (testdata/plugins/hanger)
hangs holds the cache dir's GC lock shared; a ``cnitool gc`` in another
process waits for it and, at its timeout, fails naming the holder; and the
other way round, a GC whose plugin hangs keeps an ADD out.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import CNITOOL, PLUGINS, live_netns, run_cnitool, write_conf

from libcni_py import CNI, RuntimeConf, load_network
from libcni_py.errors import LockTimeoutError


@pytest.fixture
def env(conf_dir: Path, cache_dir: Path) -> dict[str, str]:
    return {"NETCONFPATH": str(conf_dir), "CNI_PATH": str(PLUGINS), "CNI_CACHE_DIR": str(cache_dir)}


def hanging(conf_dir: Path, pid_file: Path, command: str) -> None:
    write_conf(
        conf_dir,
        "10-gcx.conflist",
        {
            "cniVersion": "1.1.0",
            "name": "gcx",
            "plugins": [{"type": "hanger", "hangOn": [command], "seconds": 60, "pidFile": str(pid_file)}],
        },
    )


def start(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(CNITOOL), *args],
        env=dict(os.environ) | env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(path: Path, proc: subprocess.Popen[str]) -> None:
    """Until the hanging plugin has started (it writes its pid file)."""
    deadline = time.monotonic() + 60
    while not (path.exists() and path.read_text().endswith("\n")):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the plugin never started"
        time.sleep(0.02)


def stop(proc: subprocess.Popen[str]) -> None:
    """End the cnitool we started (it kills its plugin on the way out)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)


def test_gc_waits_for_an_add_in_another_process_and_names_it(
    env: dict[str, str], conf_dir: Path, cache_dir: Path, tmp_path: Path
) -> None:
    pid_file = tmp_path / "hanger.pid"
    hanging(conf_dir, pid_file, "ADD")
    netns = str(live_netns(tmp_path / "ns"))
    adding = start(env, "add", "gcx", netns)
    try:
        wait_for(pid_file, adding)
        gc = run_cnitool("--timeout", "1", "gc", "gcx", "--all", env=env)
        assert gc.returncode == 75, gc.stderr  # try again later
        assert "GC lock still held by pid" in gc.stderr and f"pid {adding.pid} (" in gc.stderr, gc.stderr
        assert "gc-lock/lock" in gc.stderr
        # the library's GC, in this process, is kept out the same way
        cni = CNI(plugin_path=[str(PLUGINS)], cache_dir=str(cache_dir), timeout=1, on_stderr=None)
        with pytest.raises(LockTimeoutError, match=f"GC lock still held by pid {adding.pid}"):
            cni.gc(load_network(str(conf_dir), "gcx"), [])
        # an ADD of another attachment is not kept out by an ADD: both hold it shared
        other = str(live_netns(tmp_path / "ns2"))
        write_conf(
            conf_dir,
            "20-other.conflist",
            {"cniVersion": "1.1.0", "name": "other", "plugins": [{"type": "hanger", "hangOn": ["GC"]}]},
        )
        added = run_cnitool("--timeout", "5", "add", "other", other, env=env)
        assert added.returncode == 0, added.stderr
    finally:
        stop(adding)
    # once the ADD is gone, GC runs
    gc = run_cnitool("--timeout", "5", "gc", "gcx", "--all", env=env)
    assert gc.returncode == 0, gc.stderr


def test_an_add_waits_for_a_gc_in_another_process(
    env: dict[str, str], conf_dir: Path, cache_dir: Path, tmp_path: Path
) -> None:
    pid_file = tmp_path / "hanger.pid"
    hanging(conf_dir, pid_file, "GC")
    collecting = start(env, "gc", "gcx", "--all")
    try:
        wait_for(pid_file, collecting)
        netns = str(live_netns(tmp_path / "ns"))
        proc = run_cnitool("--timeout", "1", "add", "gcx", netns, env=env)
        assert proc.returncode == 75, proc.stderr
        assert f"GC lock still held by pid {collecting.pid} (" in proc.stderr, proc.stderr
        assert not (cache_dir / "results").exists() or not list((cache_dir / "results").iterdir())
        # DEL too (DEL goes on without a lock it cannot create, not without one another holds)
        cni = CNI(plugin_path=[str(PLUGINS)], cache_dir=str(cache_dir), timeout=1, on_stderr=None)
        rt = RuntimeConf(container_id="c1", netns=netns, ifname="eth0")
        with pytest.raises(LockTimeoutError, match="GC lock still held"):
            cni.delete(load_network(str(conf_dir), "gcx"), rt)
    finally:
        stop(collecting)
    proc = run_cnitool("--timeout", "5", "add", "gcx", netns, env=env)
    assert proc.returncode == 0, proc.stderr
