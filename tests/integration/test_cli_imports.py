"""What a one-shot ``cnitool add``/``check``/``del`` imports (issue 7).

Python itself starts in about 15 ms here; ``json`` (with ``re`` and ``enum``)
costs ~8 ms more, ``hashlib`` ~3, ``ipaddress`` ~3, ``signal`` ~2 -- per call,
three calls per add/check/del cycle.  The CLI path avoids all of them (and,
as the public-API test checks, trio, pyroute2, jsonschema...).  This runs the
real commands with ``-X importtime`` and fails if any of them comes back.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import CNITOOL, PLUGINS, write_conf

AVOIDED = (
    "json",
    "re",
    "enum",
    "hashlib",
    "_hashlib",
    "ipaddress",
    "signal",
    "base64",
    "subprocess",
    "typing",
    "dataclasses",
    "argparse",
    "trio",
    "pyroute2",
    "jsonschema",
    "importlib",
    "warnings",
    "math",
    # the namespace check every ADD and DEL makes is edges/nsfs; netns (and
    # what it needs: contextlib, with collections and functools, ~3 ms) is
    # for commands that create or enter namespaces
    "libcni_py.netns",
    "contextlib",
    "collections",
    "functools",
    "threading",
)


def _imported(argv: list[str], env: dict[str, str]) -> set[str]:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", *argv], env=env, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return {
        line.rsplit("|", 1)[1].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:") and "|" in line and not line.rstrip().endswith("imported package")
    }


@pytest.mark.parametrize("command", ["add", "check", "del"])
def test_add_check_del_import_nothing_they_can_do_without(
    command: str, conf_dir: Path, cache_dir: Path, tmp_path: Path
) -> None:
    write_conf(
        conf_dir,
        "10-rec.conflist",
        {
            "cniVersion": "1.0.0",
            "name": "impnet",
            "plugins": [{"type": "recorder", "address": "10.99.7.2/24"}, {"type": "recorder", "interfaceName": "rec1"}],
        },
    )
    netns = tmp_path / "ns"
    netns.write_text("")
    env = dict(os.environ, NETCONFPATH=str(conf_dir), CNI_PATH=str(PLUGINS), CNI_CACHE_DIR=str(cache_dir))
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    baseline = _imported(["-c", "pass"], env)  # whatever this interpreter's site imports anyway
    argv = [str(CNITOOL), "add", "impnet", str(netns)]
    if command != "add":
        _imported(argv, env)
        argv = [str(CNITOOL), command, "impnet", str(netns)]
    modules = _imported(argv, env)
    assert "libcni_py.drivers.blocking" in modules
    assert sorted((modules - baseline) & set(AVOIDED)) == []
