"""Shared fixtures, and the sandbox the root tests run in.

Tiers (see ``pyproject.toml`` markers):

* ``tests/unit`` -- pure code, no processes;
* ``tests/integration`` -- real test-plugin processes (``testdata/plugins``),
  no root needed;
* ``tests/root`` -- Debian's real plugins in network namespaces; marked
  ``root``.  CI runs as root, so there they must run: when ``CI`` is set, a
  missing privilege or plugin is a failure, not a skip.

**Sandbox.**  When the suite runs as root, the whole test process first
moves into a network namespace of its own (``lcpy-node-<pid>-<run>``, see
``tests/testnode.py``), the "node".
Bridges, veths on the host side, iptables rules (and the chains portmap
leaves behind by design) are made there, never in the machine's own
namespace; the node is deleted at the end, which removes all of it even if a
test failed half-way.  Pod namespaces are ordinary named namespaces under
``/var/run/netns`` with unique names, removed by the fixtures that made them.
A run removes only namespaces it recorded as its own (``tests/testnode.py``:
its node and pods, or those of an earlier run of this checkout whose process
is provably gone); any other ``lcpy-node-*`` on the machine is left alone.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import testnode
from support import DEBIAN_PLUGINS, IN_CI, unique

CLONE_NEWNET = 0x40000000

_node: testnode.Node | None = None
_node_name: str | None = None


def _setns(path: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


def pytest_sessionstart(session: pytest.Session) -> None:
    global _node, _node_name
    if os.geteuid() != 0 or os.environ.get("LIBCNI_PY_NO_NODE"):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    for line in testnode.remove_stale():
        if reporter is not None:
            reporter.write_line(f"test node namespaces: {line}")
    node = testnode.Node()
    node.create()
    _setns(f"/var/run/netns/{node.name}")
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    _node, _node_name = node, node.name
    os.environ["LIBCNI_PY_TEST_NODE"] = node.name


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _node is not None:
        _node.delete()


def _root_problem() -> str:
    if os.geteuid() != 0:
        return "needs root"
    if not (DEBIAN_PLUGINS / "bridge").exists():
        return "needs Debian's containernetworking-plugins in /usr/lib/cni"
    if not shutil.which("iptables"):
        return "needs iptables"
    return ""


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Root tests skip on a developer's machine without root; in CI they fail."""
    if "root" not in item.keywords:
        return
    problem = _root_problem()
    if problem:
        if IN_CI:
            pytest.fail(f"CI must run the root tests, but this machine {problem}")
        pytest.skip(problem)


@pytest.fixture
def node() -> str:
    """The node namespace the root tests run in (fails if not isolated)."""
    if _node_name is None:
        pytest.fail("root tests must run inside the test node namespace (is LIBCNI_PY_NO_NODE set?)")
    return _node_name


# --------------------------------------------------------------------------
# plain fixtures


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    """A private result cache."""
    path = tmp_path / "cache"
    path.mkdir()
    return path


@pytest.fixture
def conf_dir(tmp_path: Path) -> Path:
    """A private conf dir."""
    path = tmp_path / "net.d"
    path.mkdir()
    return path


@pytest.fixture
def record_file(tmp_path: Path) -> Path:
    """Where the recorder test plugin writes its calls."""
    return tmp_path / "calls.jsonl"


class NetnsFactory:
    """Creates named network namespaces and removes them at teardown."""

    def __init__(self) -> None:
        self.made: list[str] = []

    def __call__(self, prefix: str = "lcpy") -> str:
        name = unique(prefix)
        if _node is not None:
            _node.made_pod(name)  # recorded first: a crash right after leaves nothing unrecorded
        subprocess.run(["ip", "netns", "add", name], check=True)
        self.made.append(name)
        return name

    def cleanup(self) -> None:
        for name in reversed(self.made):
            subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)
            if _node is not None and not os.path.lexists(f"/var/run/netns/{name}"):
                _node.removed_pod(name)


@pytest.fixture
def make_netns(node: str) -> object:
    """``make_netns(prefix) -> name``: a pod namespace, deleted afterwards."""
    factory = NetnsFactory()
    yield factory
    factory.cleanup()


def _built(built: Path | None, message: str) -> Path:
    """A Go reference program, or the test skipped with ``message`` (failed
    in CI, which must run every comparison)."""
    if built is None:
        if IN_CI:
            pytest.fail(f"CI must run the Go comparison: {message}")
        pytest.skip(message)
    return built


@pytest.fixture(scope="session")
def gopeer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``tests/gopeer`` built on Go libcni (see ``support.build_gopeer``)."""
    from support import build_gopeer

    built = build_gopeer(tmp_path_factory.mktemp("gopeer"))
    return _built(built, "needs golang-go and golang-github-appc-cni-dev (Go libcni) to build tests/gopeer")


@pytest.fixture(scope="session", params=["1.1.2", "1.3.0"])
def any_gopeer(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> object:
    """``tests/gopeer`` on each Go libcni release the side-by-side tests
    compare against: Debian's 1.1.2 and the newest, 1.3.0 (from ../shared)."""
    from support import GoPeer, build_gopeer

    release: str = request.param
    built = build_gopeer(tmp_path_factory.mktemp(f"gopeer-{release}"), release)
    message = (
        "needs golang-go and golang-github-appc-cni-dev (Go libcni 1.1.2)"
        if release == "1.1.2"
        else "needs ../shared/thirdparty/cni and ../shared/peer/build-newest.sh (Go libcni 1.3.0)"
    )
    return GoPeer(_built(built, message), release)


@pytest.fixture(scope="session")
def goskel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``tests/goskel``: a plugin on Go's pkg/skel of libcni 1.3.0."""
    from support import build_goskel

    built = build_goskel(tmp_path_factory.mktemp("goskel"))
    return _built(built, "needs ../shared/thirdparty/cni and ../shared/peer/build-newest.sh (Go's pkg/skel 1.3.0)")


@pytest.fixture
def v4only_path(tmp_path: Path) -> str:
    """A PATH for plugins on which ``ip6tables`` cannot be found.

    Debian's portmap 1.1.1 CHECK looks for IPv4 rules in ip6tables whenever
    ip6tables exists (an upstream bug: "could not check ipv6 dnat"), so CHECK
    of an IPv4-only portmap attachment always fails.  Without ip6tables on
    its PATH the plugin checks IPv4 only, which is what the tests need; the
    bug itself is pinned by ``test_debian_portmap_check_bug``.
    """
    shim = tmp_path / "v4only-bin"
    shim.mkdir()
    for binary in ("iptables", "iptables-save", "iptables-restore"):
        target = shutil.which(binary, path="/usr/sbin:/sbin:/usr/bin")
        assert target, binary
        (shim / binary).symlink_to(target)
    return f"{shim}:/usr/bin:/bin"


# --------------------------------------------------------------------------
# the runtime layer (tests/*/test_runtime_*.py, test_cli_pod.py, test_toy_runtime.py)


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Path:
    """The test plugins in a directory of their own, with ``loopback`` played
    by the recorder (the pod manager adds the loopback network to every pod)."""
    from support import PLUGINS

    directory = tmp_path / "plugins"
    directory.mkdir()
    for name in ("recorder", "failer", "fakeipam", "_common.py"):
        (directory / name).symlink_to(PLUGINS / name)
    (directory / "loopback").symlink_to(PLUGINS / "recorder")
    return directory


@pytest.fixture
def fake_netns(tmp_path: Path) -> str:
    """A path standing for a pod's namespace where the plugins never enter it."""
    path = tmp_path / "netns"
    path.write_text("")
    return str(path)


@pytest.fixture(scope="session")
def real_flannel() -> Path:
    """The real Flannel CNI plugin binary (see ``support.REAL_FLANNEL``); the
    test is skipped without it, and fails in CI, which builds it."""
    from support import REAL_FLANNEL, real_flannel_problem

    problem = real_flannel_problem()
    if problem is not None:
        if IN_CI:
            pytest.fail(f"CI must run the real Flannel plugin: {problem}")
        pytest.skip(problem)
    return REAL_FLANNEL
