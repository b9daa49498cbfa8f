"""The bad-input corpus (``testdata/bad``): every case gives one clear line
naming the file and field (or the argument), a non-zero exit, no traceback,
no plugin run and nothing written.  And the two schema checkers (the fast one
the CLI uses, and ``jsonschema``) agree on every configuration in it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support import CNITOOL, PLUGINS, REPO

from libcni_py import ConfigError
from libcni_py.core import gojson, schema
from libcni_py.core.netconf import load_network

BAD = REPO / "testdata" / "bad"
CASES: dict[str, dict[str, object]] = json.loads((BAD / "cases.json").read_text())
VALID_PLUGIN = '{"type":"recorder"}'


def generate(kind: str, conf_dir: Path) -> None:
    """Make a case that is too big to commit, or cannot be committed."""
    path = conf_dir / f"{kind}.conflist"
    if kind == "huge":
        head, tail = '{"cniVersion":"1.0.0","name":"bad","plugins":[{"type":"recorder","pad":"', '"}]}'
        path.write_text(head + "x" * (5 * 1024 * 1024 - len(head) - len(tail)) + tail)
    elif kind == "deep":
        path.write_text(
            '{"cniVersion":"1.0.0","name":"bad","plugins":[{"type":"recorder","x":'
            + "[" * 100_000
            + "]" * 100_000
            + "}]}"
        )
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "unreadable":
        path.write_text('{"cniVersion":"1.0.0","name":"bad","plugins":[' + VALID_PLUGIN + "]}")
        path.chmod(0)
    else:
        raise AssertionError(kind)


def prepare(name: str, case: dict[str, object], tmp_path: Path) -> Path:
    """The conf dir the case runs with."""
    if "conf" in case:
        source = BAD / str(case["conf"])
        conf_dir = tmp_path / source.name
        shutil.copytree(source, conf_dir, symlinks=True)
        return conf_dir
    if (BAD / name).is_dir():
        conf_dir = tmp_path / name
        shutil.copytree(BAD / name, conf_dir, symlinks=True)
        return conf_dir
    conf_dir = tmp_path / "net.d"
    conf_dir.mkdir()
    if "generate" in case:
        generate(str(case["generate"]), conf_dir)
    else:
        shutil.copy(BAD / name, conf_dir / name, follow_symlinks=False)
    return conf_dir


def test_the_corpus_is_complete_and_documented() -> None:
    on_disk = {p.name for p in BAD.iterdir()} - {"README.md", "cases.json", "good"}
    generated = {n for n, c in CASES.items() if "generate" in c}
    arguments = {n for n, c in CASES.items() if "conf" in c}
    assert on_disk == set(CASES) - generated - arguments, "every file is a case and every case a file"
    assert len(CASES) >= 40
    readme = (BAD / "README.md").read_text()
    rows = dict(re.findall(r"^\| `([^`]+)` \| .* \| (.*) \|$", readme, re.M))
    assert set(rows) == set(CASES), set(rows) ^ set(CASES)
    for name, case in CASES.items():
        for needle in case["expect"]:  # type: ignore[attr-defined]
            assert f"`{needle}`".replace("|", "\\|") in rows[name], name


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input(name: str, tmp_path: Path) -> None:
    case = CASES[name]
    conf_dir = prepare(name, case, tmp_path)
    netns = tmp_path / "ns"
    netns.write_text("")
    cache_dir = tmp_path / "cache"
    record_file = tmp_path / "calls.jsonl"
    env = dict(os.environ) | {
        "NETCONFPATH": str(conf_dir),
        "CNI_PATH": str(PLUGINS),
        "CNI_CACHE_DIR": str(cache_dir),
        "RECORD_FILE": str(record_file),
    }
    env |= {k: str(v) for k, v in case.get("env", {}).items()}  # type: ignore[attr-defined]
    argv = [str(netns) if a == "NETNS" else a for a in case.get("argv", ["add", "bad", "NETNS"])]  # type: ignore[attr-defined]
    command = [sys.executable, str(CNITOOL), *argv]
    if case.get("generate") == "unreadable" and os.geteuid() == 0:
        # root reads everything: drop the capabilities that let it
        command = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--", *command]
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == case.get("exit", 3), proc.stderr
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("cnitool: error: ")
    for needle in case["expect"]:  # type: ignore[attr-defined]
        assert needle in lines[0], lines[0]
    assert "s3cr3t" not in proc.stderr
    assert not record_file.exists(), "no plugin ran"
    assert not cache_dir.exists(), "nothing was written"


@pytest.mark.parametrize("name", sorted(n for n, c in CASES.items() if "generate" not in c and "conf" not in c))
def test_library_raises_config_error(name: str, tmp_path: Path) -> None:
    """The library gives the same errors, as ConfigError (the CLI adds nothing)."""
    case = CASES[name]
    conf_dir = prepare(name, case, tmp_path)
    argv = case.get("argv", ["add", "bad", "NETNS"])
    with pytest.raises(ConfigError) as info:
        load_network(str(conf_dir), argv[1])  # type: ignore[index]
    for needle in case["expect"]:  # type: ignore[attr-defined]
        assert needle in info.value.one_line()


def _documents() -> list[tuple[str, object]]:
    docs = []
    for path in sorted(BAD.rglob("*")):
        if path.is_symlink() or not path.is_file() or path.suffix not in (".conflist", ".conf", ".json"):
            continue
        if path.name == "cases.json":
            continue
        try:
            docs.append((str(path.relative_to(BAD)), gojson.loads(path.read_bytes())))
        except Exception:
            continue
    return docs


@pytest.mark.parametrize(("name", "doc"), _documents(), ids=[n for n, _ in _documents()])
def test_both_schema_checkers_agree(name: str, doc: object) -> None:
    kind = "conflist" if name.endswith(".conflist") else "plugin"
    fast = schema.first_error(doc, kind)
    full = schema.validate_with_jsonschema(doc, kind)
    assert (fast is None) == (not full), (fast, full)
    if fast is not None:
        assert fast[0] in [path for path, _ in full], (fast, full)
