"""libcni_py.netns against the kernel and iproute2: named namespaces made here
are ``ip netns``'s and the other way round; errors say what is wrong."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import trio
from support import REPO, unique

from libcni_py import netns
from libcni_py.errors import NetnsError

pytestmark = pytest.mark.root


@pytest.fixture
def name(node: str) -> object:
    """A fresh namespace name; whatever carries it is removed afterwards."""
    value = unique("lcns")
    yield value
    path = Path(netns.NETNS_DIR) / value
    for _ in range(3):  # a test may leave a stacked mount behind
        subprocess.run(["umount", str(path)], capture_output=True, check=False)
    if path.exists() or path.is_symlink():
        path.unlink()


def ip_netns_list() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def test_create_list_delete_seen_by_iproute2(name: str) -> None:
    path = netns.create(name)
    assert path == f"/var/run/netns/{name}"
    assert netns.is_netns(path) and netns.exists(name) and netns.exists(path)
    assert name in netns.list_names()
    assert name in ip_netns_list()
    # a namespace of its own: its own loopback, and a different inode from ours
    assert os.stat(path).st_ino != os.stat("/proc/self/ns/net").st_ino
    out = subprocess.run(["ip", "-n", name, "-o", "link"], capture_output=True, text=True, check=True).stdout
    assert [line.split(":")[1].strip() for line in out.splitlines()] == ["lo"]

    assert netns.delete(name) is True
    assert not netns.exists(name) and not os.path.lexists(path)
    assert name not in netns.list_names() and name not in ip_netns_list()


def test_made_by_iproute2_seen_and_deleted_here(name: str) -> None:
    subprocess.run(["ip", "netns", "add", name], check=True)
    assert netns.exists(name) and name in netns.list_names()
    assert netns.delete(name) is True
    assert name not in ip_netns_list()


def test_create_is_idempotent_only_when_asked(name: str) -> None:
    path = netns.create(name)
    inode = os.stat(path).st_ino
    with pytest.raises(NetnsError, match="already exists") as info:
        netns.create(name)
    assert "pick another name" in info.value.one_line()
    assert netns.create(name, exist_ok=True) == path
    assert os.stat(path).st_ino == inode  # the same namespace, not a new one
    netns.delete(name)


def test_delete_is_idempotent_unless_told(name: str) -> None:
    assert netns.delete(name) is False
    with pytest.raises(NetnsError, match="does not exist"):
        netns.delete(name, missing_ok=False)


def test_a_plain_file_is_not_a_namespace(name: str) -> None:
    os.makedirs(netns.NETNS_DIR, exist_ok=True)
    stray = Path(netns.NETNS_DIR) / name
    stray.write_text("not a namespace\n")
    assert not netns.exists(name) and not netns.is_netns(str(stray))
    assert name not in netns.list_names()
    with pytest.raises(NetnsError, match="exists and is not a network namespace"):
        netns.create(name)
    with pytest.raises(NetnsError, match="is not a network namespace nor the empty file one leaves behind") as info:
        netns.delete(name)
    assert info.value.hint == f"if nothing needs it, remove it yourself (rm {stray})"
    assert stray.read_text() == "not a namespace\n"  # left alone
    with pytest.raises(NetnsError, match="is not a network namespace"), netns.opened(str(stray)):
        pass


@pytest.mark.parametrize("bad", ["", ".", "..", "a/b", "../escape", "x" * 256, "nul\0byte"])
def test_invalid_names(bad: str, node: str) -> None:
    before = set(os.listdir(netns.NETNS_DIR)) if os.path.isdir(netns.NETNS_DIR) else set()
    with pytest.raises(NetnsError, match="invalid network namespace name"):
        netns.create(bad)
    after = set(os.listdir(netns.NETNS_DIR)) if os.path.isdir(netns.NETNS_DIR) else set()
    assert after == before


def test_busy_when_something_else_is_mounted_on_it(name: str) -> None:
    path = netns.create(name)
    subprocess.run(["mount", "--bind", path, path], check=True)  # a second mount on top
    with pytest.raises(NetnsError, match="busy") as info:
        netns.delete(name)
    assert f"findmnt {path}" in info.value.one_line()
    assert netns.exists(name)  # the remaining mount still holds it
    assert netns.delete(name) is True  # the second unmount frees it
    assert not os.path.lexists(path)


def test_not_root(name: str) -> None:
    """Run as nobody (setpriv): each call fails with a "needs root" error."""
    owner = netns.create(name)
    script = textwrap.dedent(
        f"""
            import json, sys
            sys.path.insert(0, {str(REPO)!r})
            from libcni_py import netns
            from libcni_py.errors import NetnsError
            out = {{"list": netns.list_names(), "exists": netns.exists({name!r})}}
            calls = {{
                "create": lambda: netns.create({name!r} + "n"),
                "delete": lambda: netns.delete({name!r}),
                "run_in": lambda: netns.run_in({name!r}, int),
            }}
            for what, call in calls.items():
                try:
                    call()
                    out[what] = "no error"
                except NetnsError as exc:
                    out[what] = exc.one_line()
            print(json.dumps(out))
            """
    )
    proc = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    # reading needs no privilege
    assert name in out["list"] and out["exists"] is True
    denied = "permission denied ({} needs root (CAP_SYS_ADMIN))"
    assert out["create"].endswith(denied.format("creating and deleting namespaces"))
    assert out["delete"] == f"cannot delete {owner}: " + denied.format("creating and deleting namespaces")
    assert out["run_in"] == f"cannot enter network namespace {owner}: " + denied.format("entering a namespace")
    assert netns.exists(name) and not netns.exists(name + "n")


def test_run_in_works_inside_and_leaves_the_caller_alone(name: str) -> None:
    netns.create(name)
    mine = os.readlink("/proc/thread-self/ns/net")

    def inside() -> tuple[list[str], str]:
        return [n for _, n in socket.if_nameindex()], os.readlink("/proc/thread-self/ns/net")

    names, where = netns.run_in(name, inside)
    assert names == ["lo"]
    assert where != mine and os.readlink("/proc/thread-self/ns/net") == mine
    # a socket made inside stays there: a server bound inside is not reachable from here
    server = netns.run_in(name, lambda: socket.create_server(("127.0.0.1", 0)))
    port = server.getsockname()[1]
    with server, pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5)

    def fails() -> None:
        raise ValueError("from inside")

    with pytest.raises(ValueError, match="from inside"):
        netns.run_in(name, fails)
    netns.delete(name)
    with pytest.raises(NetnsError, match="does not exist"):
        netns.run_in(name, int)


def test_opened_yields_a_descriptor_on_the_namespace(name: str) -> None:
    path = netns.create(name)
    with netns.opened(name) as fd:
        assert os.fstat(fd).st_ino == os.stat(path).st_ino
        netns.delete(name)
        # the descriptor keeps the namespace alive after its name is gone,
        # and can be entered by its /proc path
        assert not netns.exists(name)
        assert netns.run_in(f"/proc/self/fd/{fd}", lambda: [n for _, n in socket.if_nameindex()]) == ["lo"]
    with pytest.raises(OSError):
        os.fstat(fd)
    with pytest.raises(NetnsError, match="does not exist"), netns.opened(name):
        pass


def test_run_command_inside(name: str, capfd: pytest.CaptureFixture[str]) -> None:
    netns.create(name)
    assert netns.run_command(name, ["ip", "-o", "link"]) == 0
    out = capfd.readouterr().out
    assert [line.split(":")[1].strip() for line in out.splitlines()] == ["lo"]
    assert netns.run_command(name, ["sh", "-c", "exit 7"]) == 7
    assert netns.run_command(name, ["sh", "-c", "kill -TERM $$"]) == -signal.SIGTERM
    # Python ignores SIGPIPE; the command must get the default (killed by it)
    assert netns.run_command(name, ["sh", "-c", "kill -PIPE $$"]) == -signal.SIGPIPE
    pids: list[int] = []
    assert netns.run_command(name, ["true"], on_start=pids.append, env={"PATH": "/usr/bin:/bin"}) == 0
    assert len(pids) == 1 and pids[0] > 0
    with pytest.raises(NetnsError, match="not found on PATH"):
        netns.run_command(name, ["no-such-command-here"])
    with pytest.raises(NetnsError, match="no command given"):
        netns.run_command(name, [])
    netns.delete(name)
    with pytest.raises(NetnsError, match="does not exist"):
        netns.run_command(name, ["true"])


RUNNER = """
import os, sys, time
sys.path.insert(0, {repo!r})
from libcni_py import netns

def started(pid):
    print("started", pid, flush=True)

try:
    status = netns.run_command({name!r}, ["sleep", "60"], on_start=started, forward_signals={forward})
    print("status", status, flush=True)
except KeyboardInterrupt:
    print("interrupted", flush=True)
"""


def run_runner(name: str, *, forward: bool) -> tuple[int, list[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", RUNNER.format(repo=str(REPO), name=name, forward=forward)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline().split()
    assert first[0] == "started", first
    child = int(first[1])
    proc.send_signal(signal.SIGINT)  # to the runner only, as `kill -INT` does
    rest = proc.stdout.read().split("\n")
    assert proc.wait(timeout=30) == 0
    return child, [line for line in rest if line]


def test_run_command_forwards_signals(name: str) -> None:
    netns.create(name)
    child, lines = run_runner(name, forward=True)
    assert lines == [f"status {-signal.SIGINT}"]  # relayed; the runner was not interrupted
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)


def test_run_command_interrupted_kills_the_command(name: str) -> None:
    netns.create(name)
    child, lines = run_runner(name, forward=False)
    assert lines == ["interrupted"]
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)  # killed and reaped, not left running


def test_async_forms(name: str) -> None:
    async def main() -> list[str]:
        path = await netns.acreate(name)
        assert await netns.acreate(name, exist_ok=True) == path
        names = await netns.arun_in(name, lambda: [n for _, n in socket.if_nameindex()])
        assert await netns.adelete(name) is True
        assert await netns.adelete(name) is False
        return names

    assert trio.run(main) == ["lo"]
    assert not netns.exists(name)
