"""Which cache writes of an ADD are fsynced (issue 7): the record written
before the first plugin and the final one; the checkpoints in between are
replaced atomically without fsync."""

from __future__ import annotations

import os

import pytest

from libcni_py.core import operations
from libcni_py.core import record as cache
from libcni_py.core.effects import Exec, ProbeNetns, ReadRecord, Resolve, WriteRecord
from libcni_py.core.inputs import Options, RuntimeConf
from libcni_py.core.netconf import parse_conflist
from libcni_py.core.plugin_call import ExecOutcome
from libcni_py.drivers.scripted import ScriptedDriver, in_turn
from libcni_py.edges.recordstore import CacheStore
from libcni_py.errors import PluginError

OK = ExecOutcome(returncode=0, stdout=b'{"cniVersion":"1.0.0"}')
FAILED = ExecOutcome(returncode=1, stdout=b'{"code":100,"msg":"no"}')


def _net(plugins: int) -> object:
    doc = '{"cniVersion":"1.0.0","name":"dur","plugins":[' + ",".join(['{"type":"p"}'] * plugins) + "]}"
    return parse_conflist(doc.encode(), "mem")


def _driver(execs: object = OK) -> ScriptedDriver:
    """Canned outcomes (no processes); the plan's writes are in ``driver.of(WriteRecord)``."""
    return ScriptedDriver(
        {
            ProbeNetns: "alive",
            Resolve: lambda e: tuple("/bin/true" for _ in e.plugin_types),
            ReadRecord: None,
            Exec: execs,
        }
    )


@pytest.mark.parametrize("plugins", [1, 2, 3, 10])
def test_add_fsyncs_the_first_and_the_last_record_only(plugins: int) -> None:
    rt = RuntimeConf(container_id="c1", netns="/x")
    opts = Options(plugin_path=["/bin"], base_env={})
    driver = _driver()
    driver.run(operations.add(_net(plugins), rt, opts))  # type: ignore[arg-type]
    writes = driver.of(WriteRecord)
    assert len(writes) == plugins + 1
    assert [w.durable for w in writes] == [True] + [False] * (plugins - 1) + [True]
    first, last = cache.decode_record(writes[0].data, "first"), cache.decode_record(writes[-1].data, "last")
    assert first.progress is not None and first.progress.done == 0
    assert last.progress is None


def test_the_record_of_a_failed_add_is_durable() -> None:
    rt = RuntimeConf(container_id="c1", netns="/x")
    opts = Options(plugin_path=["/bin"], base_env={})
    driver = _driver(in_turn(OK, OK, FAILED))
    with pytest.raises(PluginError):
        driver.run(operations.add(_net(3), rt, opts))  # type: ignore[arg-type]
    writes = driver.of(WriteRecord)
    assert [w.durable for w in writes] == [True, False, False, True]
    failed = cache.decode_record(writes[-1].data, "failed")
    assert failed.progress is not None and failed.progress.state == "failed" and failed.progress.done == 2


@pytest.mark.parametrize(
    ("store_durable", "write_durable", "fsyncs"), [(True, True, 2), (True, False, 0), (False, True, 0)]
)
def test_store_write_fsyncs_only_durable_writes(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch, store_durable: bool, write_durable: bool, fsyncs: int
) -> None:
    calls: list[int] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        calls.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    store = CacheStore(str(tmp_path), durable=store_durable)
    key = cache.AttachmentKey(network="n", container_id="c", ifname="eth0")
    store.write(key, b"one")
    calls.clear()
    store.write(key, b"two", durable=write_durable)
    assert len(calls) == fsyncs
    assert store.read(key) == b"two"
