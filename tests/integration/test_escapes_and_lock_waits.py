"""Issue 12: a plugin's descendants that leave its session are killed at the
deadline, and lock waits end at the deadline naming the holder.

The escaper plugin (testdata/plugins/escaper) starts a child that calls
``setsid()`` and a daemon made by double ``fork`` (its parent exits, so it is
re-parented to the nearest child subreaper, else init); ``killpg`` reaches
neither.  A holder of a lock is a real process that takes it through
:class:`~libcni_py.edges.recordstore.CacheStore` and then stops itself (SIGSTOP, as
Ctrl-Z); every test resumes and ends it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
from support import NO_NETNS, PLUGINS, REPO, alive, run_cnitool, wait_gone, write_conf

from libcni_py import AsyncCNI, RuntimeConf, parse_conflist
from libcni_py.edges.recordstore import CacheStore
from libcni_py.errors import LockTimeoutError

ESCAPER = {"cniVersion": "1.0.0", "name": "escnet", "plugins": [{"type": "escaper"}]}
RT = RuntimeConf(container_id="esc1", netns=NO_NETNS, ifname="eth0")


def _pids(pid_file: Path) -> list[int]:
    return [int(p) for p in pid_file.read_text().split()] if pid_file.exists() else []


@pytest.fixture
def escaper_conf(conf_dir: Path, tmp_path: Path) -> Iterator[Path]:
    pid_file = tmp_path / "pids"
    doc = dict(ESCAPER, plugins=[{"type": "escaper", "pidFile": str(pid_file)}])
    write_conf(conf_dir, "10-esc.conflist", doc)
    yield pid_file
    for pid in _pids(pid_file):  # whatever a failing test left
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_cli_deadline_kills_descendants_that_left_the_session(
    escaper_conf: Path, conf_dir: Path, cache_dir: Path, tmp_path: Path
) -> None:
    """cnitool (a child subreaper while plugins run) kills the plugin, its
    setsid()ed child and the orphaned daemon, and says which it killed."""
    netns = tmp_path / "ns"
    netns.write_text("")
    env = {"NETCONFPATH": str(conf_dir), "CNI_PATH": str(PLUGINS), "CNI_CACHE_DIR": str(cache_dir)}
    proc = run_cnitool("--timeout", "3", "add", "escnet", str(netns), env=env)
    assert proc.returncode == 4, proc.stderr
    plugin, child, daemon = _pids(escaper_conf)
    assert "did not finish within 3.0s and was killed with the 2 process(es) it started: " in proc.stderr
    assert f"{child} (" in proc.stderr and f"{daemon} (" in proc.stderr
    assert proc.stderr.count("had left its session") == 2, proc.stderr
    for pid in (plugin, child, daemon):
        assert not alive(pid), f"{pid} survived the deadline"
    assert run_cnitool("del", "escnet", str(netns), env=env).returncode == 0


def test_trio_driver_kills_descendants_that_left_the_session(
    escaper_conf: Path, conf_dir: Path, tmp_path: Path
) -> None:
    """The same through AsyncCNI, in an embedding process that made itself a
    subreaper (libcni_py.edges.spawn.become_subreaper(): a process-wide choice)."""
    script = textwrap.dedent(
        f"""
        import sys, trio
        sys.path.insert(0, {str(REPO)!r})
        from libcni_py import AsyncCNI, RuntimeConf
        from libcni_py.edges import spawn
        from libcni_py.core.netconf import load_network
        from libcni_py.errors import PluginTimeoutError
        assert spawn.become_subreaper()
        cni = AsyncCNI(plugin_path=[{str(PLUGINS)!r}], cache_dir={str(tmp_path / "c")!r}, timeout=3)
        rt = RuntimeConf(container_id="esc1", netns="/dev/null", ifname="eth0")
        async def main():
            try:
                await cni.add(load_network({str(conf_dir)!r}, "escnet"), rt)
            except PluginTimeoutError as exc:
                print(exc.msg)
        trio.run(main)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    plugin, child, daemon = _pids(escaper_conf)
    assert "was killed with the 2 process(es) it started" in proc.stdout, proc.stdout
    for pid in (plugin, child, daemon):
        assert not alive(pid), f"{pid} survived the deadline"


def test_without_subreaper_the_setsid_child_is_still_killed(
    escaper_conf: Path, conf_dir: Path, cache_dir: Path
) -> None:
    """A library caller that did not become a subreaper: the descendant still
    linked to the plugin is found by the /proc walk and killed; the daemon
    whose parent had exited is beyond reach (as documented), and this test
    ends it."""
    cni = AsyncCNI(plugin_path=[str(PLUGINS)], cache_dir=str(cache_dir), timeout=3)
    from libcni_py.core.netconf import load_network

    async def main() -> str:
        try:
            await cni.add(load_network(str(conf_dir), "escnet"), RT)
        except Exception as exc:
            return str(exc)
        return ""

    message = trio.run(main)
    plugin, child, daemon = _pids(escaper_conf)
    assert f"was killed with the 1 process(es) it started: {child} (" in message, message
    assert not alive(plugin) and not alive(child)
    if alive(daemon):
        os.kill(daemon, signal.SIGKILL)


# --------------------------------------------------------------------------
# lock waits


HOLDER = """
import os, signal, sys
sys.path.insert(0, {repo!r})
from libcni_py.edges.recordstore import CacheStore
from libcni_py.core.record import AttachmentKey
store = CacheStore({cache!r})
kind = sys.argv[1]
if kind == "attachment":
    store.lock(AttachmentKey(network="escnet", container_id="esc1", ifname="eth0"))
elif kind == "pod":
    store.lock_pod("esc1")
else:
    store.lock_gc(exclusive=False)
print("locked", flush=True)
os.kill(os.getpid(), signal.SIGSTOP)
sys.stdin.read()
"""


@pytest.fixture
def holder(cache_dir: Path) -> Iterator[object]:
    """``holder(kind) -> pid``: a process holding that lock, stopped."""
    started: list[subprocess.Popen[str]] = []

    def start(kind: str) -> int:
        proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER.format(repo=str(REPO), cache=str(cache_dir)), kind],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        started.append(proc)
        assert proc.stdout is not None and proc.stdout.readline() == "locked\n"
        with open(f"/proc/{proc.pid}/stat") as fh:  # wait until it has stopped itself
            while fh.read().split(")")[-1].split()[0] != "T":
                fh.seek(0)
        return proc.pid

    yield start
    for proc in started:
        os.kill(proc.pid, signal.SIGCONT)
        proc.communicate(timeout=10)
        assert wait_gone(proc.pid)


def test_del_ends_at_its_deadline_naming_a_stopped_holder(holder, conf_dir: Path, cache_dir: Path) -> None:
    write_conf(conf_dir, "10-esc.conflist", ESCAPER)
    pid = holder("attachment")
    env = {"NETCONFPATH": str(conf_dir), "CNI_PATH": str(PLUGINS), "CNI_CACHE_DIR": str(cache_dir)}
    proc = run_cnitool("--timeout", "0.5", "del", "escnet", "/var/run/netns/fake", "--container-id", "esc1", env=env)
    assert proc.returncode == 75, proc.stderr
    line = proc.stderr.strip()
    assert "attachment lock still held by pid" in line and f"pid {pid} (" in line and "which is STOPPED" in line
    assert f"resume it with 'kill -CONT {pid}'" in line, line


def test_pod_gc_ends_at_its_deadline_naming_a_stopped_pod_operation(holder, conf_dir: Path, cache_dir: Path) -> None:
    write_conf(conf_dir, "10-esc.conflist", ESCAPER)
    pid = holder("gc")
    env = {"NETCONFPATH": str(conf_dir), "CNI_PATH": str(PLUGINS), "CNI_CACHE_DIR": str(cache_dir)}
    proc = run_cnitool("--timeout", "0.5", "pod", "gc", env=env)
    assert proc.returncode == 75, proc.stderr
    assert "GC lock still held by pid" in proc.stderr and f"pid {pid} (" in proc.stderr, proc.stderr
    assert "STOPPED" in proc.stderr


def test_blocking_and_trio_waits_on_a_pod_lock_end_at_the_deadline(holder, cache_dir: Path) -> None:
    pid = holder("pod")
    store = CacheStore(str(cache_dir))
    with pytest.raises(LockTimeoutError) as blocking:
        store.lock_pod("esc1", timeout=0.3)
    assert f"pod lock still held by pid {pid} (" in str(blocking.value)
    from libcni_py.drivers.async_trio import wait_for_lock
    from libcni_py.edges.recordstore import POD_LOCKS

    async def wait() -> None:
        await wait_for_lock(
            lambda: store.try_lock_pod("esc1"), 0.3, lambda waited: store.lock_timeout("esc1", POD_LOCKS, waited)
        )

    with pytest.raises(LockTimeoutError) as in_trio:
        trio.run(wait)
    assert "which is STOPPED" in str(in_trio.value) and f"kill -CONT {pid}" in in_trio.value.hint


def test_trio_delete_waits_at_most_its_timeout(holder, cache_dir: Path) -> None:
    pid = holder("attachment")
    cni = AsyncCNI(plugin_path=[str(PLUGINS)], cache_dir=str(cache_dir), timeout=0.3)
    netlist = parse_conflist(json.dumps(ESCAPER).encode(), "escnet.conflist")
    with pytest.raises(LockTimeoutError) as caught:
        trio.run(cni.delete, netlist, RT)
    assert f"held by pid {pid} (" in str(caught.value)
