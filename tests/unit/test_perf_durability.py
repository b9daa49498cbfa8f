"""Which cache writes of an ADD are fsynced (issue 7): the record written
before the first plugin and the final one; the checkpoints in between are
replaced atomically without fsync."""

from __future__ import annotations

import os

import pytest

from libcni_py.core import plan
from libcni_py.core import record as cache
from libcni_py.core.netconf import parse_conflist
from libcni_py.core.plugin_call import ExecOutcome
from libcni_py.edges.recordstore import CacheStore
from libcni_py.errors import PluginError


def _net(plugins: int) -> object:
    doc = '{"cniVersion":"1.0.0","name":"dur","plugins":[' + ",".join(['{"type":"p"}'] * plugins) + "]}"
    return parse_conflist(doc.encode(), "mem")


def _drive(steps: plan.Plan, writes: list[plan.WriteRecord], fail_at: int = -1) -> None:
    """Step a plan with canned outcomes (no processes), collecting its writes;
    the plugin call number ``fail_at`` fails."""
    execs = 0
    outcome: object = None
    try:
        while True:
            effect = steps.send(outcome)
            outcome = None
            if isinstance(effect, plan.Resolve):
                outcome = tuple("/bin/true" for _ in effect.plugin_types)
            elif isinstance(effect, plan.WriteRecord):
                writes.append(effect)
            elif isinstance(effect, plan.Exec):
                failed = execs == fail_at
                execs += 1
                outcome = ExecOutcome(
                    returncode=1 if failed else 0,
                    stdout=b'{"code":100,"msg":"no"}' if failed else b'{"cniVersion":"1.0.0"}',
                )
    except StopIteration:
        pass


@pytest.mark.parametrize("plugins", [1, 2, 3, 10])
def test_add_fsyncs_the_first_and_the_last_record_only(plugins: int) -> None:
    rt = plan.RuntimeConf(container_id="c1", netns="/x")
    opts = plan.Options(plugin_path=["/bin"], base_env={})
    writes: list[plan.WriteRecord] = []
    _drive(plan.add(_net(plugins), rt, opts), writes)  # type: ignore[arg-type]
    assert len(writes) == plugins + 1
    assert [w.durable for w in writes] == [True] + [False] * (plugins - 1) + [True]
    first, last = cache.decode_record(writes[0].data, "first"), cache.decode_record(writes[-1].data, "last")
    assert first.progress is not None and first.progress.done == 0
    assert last.progress is None


def test_the_record_of_a_failed_add_is_durable() -> None:
    rt = plan.RuntimeConf(container_id="c1", netns="/x")
    opts = plan.Options(plugin_path=["/bin"], base_env={})
    writes: list[plan.WriteRecord] = []
    with pytest.raises(PluginError):
        _drive(plan.add(_net(3), rt, opts), writes, fail_at=2)  # type: ignore[arg-type]
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
