"""The test run removes only namespaces it can prove it made and whose maker
is gone (``tests/testnode.py``): a foreign namespace named like a node of a
dead run survives the start-of-session cleanup; a record of this checkout
whose owner is provably dead has its node and pods removed; one whose owner
runs, or cannot be checked, is kept with the reason said."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import testnode
from support import unique

pytestmark = pytest.mark.root


def dead_pid() -> int:
    """The pid of a process that ran and was reaped: provably gone."""
    child = subprocess.Popen(["true"])
    child.wait()
    assert not os.path.exists(f"/proc/{child.pid}")
    return child.pid


def exists(name: str) -> bool:
    return (testnode.NETNS_DIR / name).exists()


@pytest.fixture
def namespaces(node: str) -> Iterator[list[str]]:
    """Namespaces the test makes by name; whatever is left is deleted after."""
    made: list[str] = []
    yield made
    for name in made:
        subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


def add(made: list[str], name: str) -> str:
    made.append(name)
    subprocess.run(["ip", "netns", "add", name], check=True)
    return name


def test_a_foreign_node_looking_namespace_survives_the_cleanup(namespaces: list[str]) -> None:
    """Named as the old rule's stale node (``lcpy-node-<dead pid>``), and as a
    node of today's form, but recorded by no run of this checkout: both stay,
    although no process of that pid runs."""
    pid = dead_pid()
    old_form = add(namespaces, f"lcpy-node-{pid}")
    new_form = add(namespaces, f"lcpy-node-{pid}-{unique('f')}")

    said = testnode.remove_stale()  # what pytest_sessionstart runs, on this checkout's records

    assert exists(old_form) and exists(new_form)
    assert not [line for line in said if old_form in line or new_form in line]
    for name in (old_form, new_form):
        subprocess.run(["ip", "netns", "del", name], check=True)
        assert not exists(name)


def record(records: Path, node: str, pods: list[str], **changes: object) -> Path:
    owner = testnode.Ownership.of_this_process(node)
    owner.pods = pods
    for key, value in changes.items():
        setattr(owner, key, value)
    owner.save(records)
    return records / f"{node}.json"


def test_a_recorded_run_whose_process_is_gone_is_removed(namespaces: list[str], tmp_path: Path) -> None:
    records = tmp_path / "records"
    node, pod = add(namespaces, f"lcpy-node-{unique('d')}"), add(namespaces, unique("dpod"))
    bystander = add(namespaces, f"lcpy-node-{unique('b')}")  # not in the record
    pid = dead_pid()
    path = record(records, node, [pod], pid=pid)

    said = testnode.remove_stale(records)

    assert not exists(node) and not exists(pod) and exists(bystander)
    assert not path.exists()
    assert said == [
        f"removed {pod}: made by an earlier run (pid {pid}) that is gone",
        f"removed {node}: made by an earlier run (pid {pid}) that is gone",
    ]


def test_a_recorded_run_that_may_still_run_is_kept(namespaces: list[str], tmp_path: Path) -> None:
    """Its owner runs (a pid whose start time matches), or is in another PID
    namespace (its pid means nothing here), or its pid was reused by a
    process that started later (then it is gone: removed)."""
    records = tmp_path / "records"
    alive = subprocess.Popen(["sleep", "60"])
    try:
        start = testnode.process_start_time(alive.pid)
        running = add(namespaces, f"lcpy-node-{unique('r')}")
        elsewhere = add(namespaces, f"lcpy-node-{unique('e')}")
        reused = add(namespaces, f"lcpy-node-{unique('u')}")
        record(records, running, [], pid=alive.pid, start=start)
        record(records, elsewhere, [], pid=dead_pid(), pid_namespace="pid:[1]")
        record(records, reused, [], pid=alive.pid, start=(start or 0) - 1)

        said = testnode.remove_stale(records)

        assert exists(running) and exists(elsewhere) and not exists(reused)
        assert f"kept {running}: its owner, pid {alive.pid}, still runs" in said
        assert any(
            line.startswith(f"kept {elsewhere}: its owner, pid ") and "another PID namespace" in line for line in said
        )
        assert sorted(p.name for p in records.iterdir()) == sorted([f"{running}.json", f"{elsewhere}.json"])
    finally:
        alive.kill()
        alive.wait()


def test_this_run_records_its_node_and_its_pods(node: str, make_netns: object) -> None:
    path = testnode.RECORDS / f"{node}.json"
    pod = make_netns("own")  # type: ignore[operator]
    doc = json.loads(path.read_text())
    assert doc["node"] == node and doc["pid"] == os.getpid() and pod in doc["pods"]
    assert node.startswith(f"lcpy-node-{os.getpid()}-")


def test_the_shared_node_sweep_touches_no_node_it_cannot_prove_dead() -> None:
    """The shared-node sweep leaves alone a node whose owner may run (this
    process), and one with no ownership record (an older run's or another
    checkout's ``owner.pid`` naming a pid that is gone): a pid that is gone
    here may run in another PID namespace sharing /tmp."""
    import shutil
    import tempfile

    import shared_node

    alive = Path(tempfile.mkdtemp(prefix="lcpy-sn-own-"))
    legacy = Path(tempfile.mkdtemp(prefix="lcpy-sn-old-"))
    try:
        owner = testnode.Ownership.of_this_process(node=alive.name)
        (alive / "owner.json").write_text(json.dumps(testnode.asdict(owner)))
        (alive / "node.pid").write_text(str(dead_pid()))
        (legacy / "owner.pid").write_text(str(dead_pid()))
        (legacy / "node.pid").write_text(str(dead_pid()))
        shared_node.sweep_stale_nodes()
        assert alive.is_dir() and (alive / "owner.json").exists()
        assert legacy.is_dir() and (legacy / "owner.pid").exists()
    finally:
        shutil.rmtree(alive, ignore_errors=True)
        shutil.rmtree(legacy, ignore_errors=True)
