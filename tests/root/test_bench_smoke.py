"""The benchmark (benchmarks/bench.py, issue 7) in its smoke mode: tiny sizes,
every section, with the Go peer when it builds and without it otherwise.

This keeps the benchmark working; it asserts that the table and the JSON are
complete and that the run left nothing behind, never what the figures are.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import CNITOOL, REPO

pytestmark = pytest.mark.root

#: Every figure a run reports (bench.py's row ids).
EXPECTED_ROWS = [
    "cli.cycle",
    "cli.add",
    "cli.check",
    "cli.del",
    "cli.python_start",
    *[f"bulk.{kind}.c{c}" for c in (1, 4, 16) for kind in ("add_del", "add_check_del")],
    *[
        f"invoker.{kind}.{op}"
        for op in ("add", "check", "del")
        for kind in ("floor", "sync", "async", "sync_nodurable")
    ],
    "growth.conf.lookup.5",
    "growth.conf.lookup.10",
    "growth.conf.list.5",
    "growth.conf.list.10",
    *[f"growth.cache.{kind}.{n}" for kind in ("list", "gc_valid", "gc_stale") for n in (10, 20)],
    "growth.doctor.10",
    "growth.doctor.20",
]


def _cnitool() -> str:
    """The installed cnitool next to this Python (as ./scripts/setup makes it),
    else the checkout's script."""
    installed = Path(sys.executable).parent / "cnitool"
    return str(installed if installed.exists() else CNITOOL)


def test_smoke_run_produces_a_complete_table_and_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    had_var_lib_cni = os.path.lexists("/var/lib/cni")
    netns_before = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "bench.py"),
            "--smoke",
            "--json",
            str(out),
            "--cnitool",
            _cnitool(),
            "--workdir",
            str(tmp_path / "work"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    rows = {row["id"]: row for row in doc["rows"]}
    assert [r for r in EXPECTED_ROWS if r not in rows] == []
    for row_id in EXPECTED_ROWS:
        row = rows[row_id]
        assert not row["skipped"], row_id
        assert row["ours"]["n"] >= 1 and isinstance(row["ours"]["median"], float), row_id
        assert row["label"] in proc.stdout, row_id
    go = bool(doc["machine"]["go_peer"])
    for row_id in ("cli.cycle", "bulk.add_del.c16"):
        # The Go figures are there exactly when the peer could be built.
        assert (rows[row_id]["ref"] is not None) == go, row_id
        assert (rows[row_id]["met"] is not None) == go, row_id
    if not go:
        assert any("Go peer" in note for note in doc["notes"])
    assert not any("failed" in note for note in doc["notes"]), doc["notes"]
    for key in ("cpu", "kernel", "python", "plugins"):
        assert doc["machine"][key], key
    # Nothing left behind: the work directory, pod namespaces, Go's cache dir.
    assert list((tmp_path / "work").iterdir()) == []
    assert os.path.lexists("/var/lib/cni") == had_var_lib_cni
    netns_after = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
    assert not {n for n in netns_after - netns_before if "bench" in n or n.startswith("lcpyb")}
