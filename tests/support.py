"""Helpers shared by the test modules (``from support import ...``)."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PLUGINS = REPO / "testdata" / "plugins"
DEBIAN_PLUGINS = Path("/usr/lib/cni")
CNITOOL = REPO / "cmd" / "cnitool.py"
IN_CI = bool(os.environ.get("CI"))

_counter = itertools.count(1)


def alive(pid: int) -> bool:
    """True while process ``pid`` runs (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_gone(pid: int, seconds: float = 5.0) -> bool:
    """Wait up to ``seconds`` for process ``pid`` to be gone; True if it is."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


def unique(prefix: str) -> str:
    """A short name unique to this test run (fits a 15-byte interface name)."""
    return f"{prefix}{os.getpid() % 100000}x{next(_counter)}"


def write_conf(directory: Path, filename: str, doc: object) -> Path:
    """Write a configuration file (a dict is JSON-encoded)."""
    path = directory / filename
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def bridge_portmap_conflist(network: str, bridge: str, subnet: str, data_dir: Path) -> dict[str, object]:
    """Debian's bridge (gateway, ipMasq) with host-local, then portmap: the
    network of the traced-ADD tests."""
    return {
        "cniVersion": "1.0.0",
        "name": network,
        "plugins": [
            {
                "type": "bridge",
                "bridge": bridge,
                "isGateway": True,
                "ipMasq": True,
                "ipam": {
                    "type": "host-local",
                    "subnet": subnet,
                    "dataDir": str(data_dir),
                    "routes": [{"dst": "0.0.0.0/0"}],
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def read_calls(path: Path) -> list[dict[str, object]]:
    """The calls the recorder plugin recorded."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_cnitool(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``cmd/cnitool.py`` (the CLI from this checkout) and capture it."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, str(CNITOOL), *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=stdin,
        check=False,
    )


GOPEER_SRC = REPO / "tests" / "gopeer" / "main.go"
GO_LIBCNI = Path("/usr/share/gocode/src/github.com/containernetworking/cni/libcni")


def build_gopeer(work: Path) -> Path | None:
    """Build ``tests/gopeer`` (a small cnitool on Debian's Go libcni 1.1.2) once
    per source version; None when Go or Go libcni is not installed."""
    import hashlib
    import shutil

    if not shutil.which("go") or not GO_LIBCNI.is_dir():
        return None
    digest = hashlib.sha256(GOPEER_SRC.read_bytes()).hexdigest()[:12]
    out = Path(f"/tmp/libcni-py-gopeer-{digest}")
    if out.exists():
        return out
    shutil.copy(GOPEER_SRC, work / "main.go")
    env = dict(os.environ, GO111MODULE="off", GOPATH=f"/usr/share/gocode:{work}/gopath", GOCACHE=str(work / "cache"))
    tmp = Path(f"{out}.{os.getpid()}.tmp")
    subprocess.run(["go", "build", "-o", str(tmp), "."], cwd=work, env=env, check=True, timeout=600)
    os.replace(tmp, out)
    return out
