"""Racing ADD, CHECK and DEL of one attachment from separate cnitool
processes: the cross-process lock runs them one at a time, whole, and the
cache ends in the state the last of them left."""

from __future__ import annotations

import random
import subprocess
import sys
from itertools import groupby
from pathlib import Path

from support import CNITOOL, PLUGINS, read_calls, write_conf

from libcni_py.core import record as cache
from libcni_py.core.args import cnitool_container_id


def test_racing_add_check_del_on_one_attachment(
    conf_dir: Path, cache_dir: Path, record_file: Path, tmp_path: Path
) -> None:
    write_conf(
        conf_dir,
        "10-race.conflist",
        {
            "cniVersion": "1.0.0",
            "name": "racenet",
            "plugins": [
                {"type": "recorder"},
                {"type": "misbehave", "delay": 0.05},
                {"type": "recorder", "interfaceName": "rec1", "address": "10.2.0.5/24"},
            ],
        },
    )
    netns = tmp_path / "ns"
    netns.write_text("")
    env = {
        "NETCONFPATH": str(conf_dir),
        "CNI_PATH": str(PLUGINS),
        "CNI_CACHE_DIR": str(cache_dir),
        "RECORD_FILE": str(record_file),
        "PATH": "/usr/bin:/bin",
    }
    rng = random.Random(6)
    ops = [rng.choice(["add", "add", "check", "del"]) for _ in range(30)]
    procs = [
        subprocess.Popen(
            [sys.executable, str(CNITOOL), op, "racenet", str(netns), "--args", f"OP={i}"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i, op in enumerate(ops)
    ]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]  # type: ignore[union-attr]
    for (code, stderr), op in zip(results, ops, strict=True):
        if op == "check" and code != 0:
            assert "nothing to check" in stderr, stderr  # ran before any ADD, or after a DEL
        elif op == "add" and code != 0:
            assert code == 3 and "DEL it first" in stderr, stderr  # ran after an ADD, with no DEL since
        else:
            assert code == 0, (op, stderr)

    calls = read_calls(record_file)
    blocks = [(op, [c["command"] for c in group]) for op, group in groupby(calls, key=lambda c: c["env"]["CNI_ARGS"])]  # type: ignore[index]
    # every operation's plugin calls form one block: nothing interleaved
    assert len(blocks) == len({op for op, _ in blocks}), [op for op, _ in blocks]
    for _, commands in blocks:
        assert commands in (["ADD", "ADD"], ["CHECK", "CHECK"], ["DEL", "DEL"]), commands
    # the cache holds what the last ADD or DEL left, and is a valid record
    last = [commands[0] for _, commands in blocks if commands[0] in ("ADD", "DEL")][-1]
    record = cache_dir / "results" / f"racenet-{cnitool_container_id(str(netns))}-eth0"
    if last == "DEL":
        assert not record.exists()
    else:
        decoded = cache.decode_record(record.read_bytes(), str(record))
        assert decoded.complete and decoded.result is not None
        # misbehave answers with its own interface only; the last recorder adds one
        assert [i["name"] for i in decoded.result["interfaces"]] == ["mis0", "rec1"]
    assert not list((cache_dir / "libcni_py" / "tmp").iterdir())
