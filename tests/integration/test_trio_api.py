"""The trio form: the same operations, concurrency when the caller asks for
it, and cancellation that leaves no process behind."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import trio
from support import NO_NETNS, PLUGINS, read_calls, write_conf
from test_exec_limits import wait_gone

from libcni_py import ArgsError, AsyncCNI, PluginTimeoutError, RuntimeConf, load_network


def recnet(conf_dir: Path) -> None:
    write_conf(
        conf_dir,
        "10-rec.conflist",
        {
            "cniVersion": "1.0.0",
            "name": "recnet",
            "plugins": [{"type": "recorder"}, {"type": "recorder", "interfaceName": "rec1"}],
        },
    )


def test_concurrent_attachments(conf_dir: Path, cache_dir: Path, record_file: Path) -> None:
    recnet(conf_dir)
    net = load_network(str(conf_dir), "recnet")
    cni = AsyncCNI(
        plugin_path=[str(PLUGINS)],
        cache_dir=str(cache_dir),
        env={"RECORD_FILE": str(record_file), "PATH": "/usr/bin:/bin"},
        on_stderr=None,
    )
    count = 12

    async def one(i: int) -> None:
        rt = RuntimeConf(container_id=f"c{i}", netns=NO_NETNS)
        await cni.add(net, rt)
        await cni.check(net, rt)
        await cni.delete(net, rt)

    async def main() -> float:
        started = time.monotonic()
        async with trio.open_nursery() as nursery:
            for i in range(count):
                nursery.start_soon(one, i)
        return time.monotonic() - started

    trio.run(main)
    calls = read_calls(record_file)
    assert len(calls) == count * 6
    # per container, the chain order holds: ADD rec0, ADD rec1, ..., DEL rec1, DEL rec0
    for i in range(count):
        mine = [
            (c["command"], json.loads(str(c["stdin"])).get("interfaceName", "rec0"))
            for c in calls
            if c["env"]["CNI_CONTAINERID"] == f"c{i}"
        ]  # type: ignore[index]
        assert mine == [
            ("ADD", "rec0"),
            ("ADD", "rec1"),
            ("CHECK", "rec0"),
            ("CHECK", "rec1"),
            ("DEL", "rec1"),
            ("DEL", "rec0"),
        ]
    # the operations overlapped: some container's first ADD came before another's last DEL
    order = [c["env"]["CNI_CONTAINERID"] for c in calls]  # type: ignore[index]
    assert order != sorted(order, key=lambda cid: int(str(cid)[1:])), "ran strictly one after another"
    assert not list((cache_dir / "results").iterdir())


def test_cancellation_kills_the_running_plugin(conf_dir: Path, cache_dir: Path, tmp_path: Path) -> None:
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
    net = load_network(str(conf_dir), "hang")
    cni = AsyncCNI(plugin_path=[str(PLUGINS)], cache_dir=str(cache_dir), on_stderr=None)

    async def main() -> bool:
        with trio.move_on_after(3) as scope:
            await cni.add(net, RuntimeConf(container_id="c1", netns=NO_NETNS))
        return scope.cancelled_caught

    assert trio.run(main)
    plugin_pid, child_pid = (int(x) for x in pid_file.read_text().split())
    assert wait_gone(plugin_pid) and wait_gone(child_pid)
    # the record written before the plugin ran is there for DEL/GC to find
    record = json.loads((cache_dir / "results" / "hang-c1-eth0").read_text())
    assert record["libcniPy"]["state"] == "adding" and record["libcniPy"]["done"] == 0


def test_per_call_timeout_in_trio(conf_dir: Path, cache_dir: Path, tmp_path: Path) -> None:
    write_conf(
        conf_dir,
        "10-hang.conflist",
        {
            "cniVersion": "1.0.0",
            "name": "hang",
            "plugins": [{"type": "hanger", "pidFile": str(tmp_path / "p")}],
        },
    )
    net = load_network(str(conf_dir), "hang")
    cni = AsyncCNI(plugin_path=[str(PLUGINS)], cache_dir=str(cache_dir), timeout=1.5, on_stderr=None)

    async def main() -> None:
        await cni.add(net, RuntimeConf(container_id="c1", netns=NO_NETNS))

    with pytest.raises(PluginTimeoutError):
        trio.run(main)
    plugin_pid, child_pid = (int(x) for x in (tmp_path / "p").read_text().split())
    assert wait_gone(plugin_pid) and wait_gone(child_pid)


def test_lock_serialises_operations_on_one_attachment(conf_dir: Path, cache_dir: Path, record_file: Path) -> None:
    recnet(conf_dir)
    net = load_network(str(conf_dir), "recnet")
    cni = AsyncCNI(
        plugin_path=[str(PLUGINS)],
        cache_dir=str(cache_dir),
        env={"RECORD_FILE": str(record_file), "PATH": "/usr/bin:/bin"},
        on_stderr=None,
    )
    rt = RuntimeConf(container_id="same", netns=NO_NETNS)

    async def add() -> None:
        try:
            await cni.add(net, rt)
        except ArgsError as exc:  # the other ADD came first, and no DEL since: refused, nothing run
            assert "DEL it first" in str(exc)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(add)
            await trio.sleep(0.01)
            nursery.start_soon(cni.delete, net, rt)
            nursery.start_soon(add)

    trio.run(main)
    commands = [c["command"] for c in read_calls(record_file)]
    # each operation's two plugin calls stay together: no interleaving
    pairs = [commands[i : i + 2] for i in range(0, len(commands), 2)]
    assert all(p[0] == p[1] for p in pairs), commands
