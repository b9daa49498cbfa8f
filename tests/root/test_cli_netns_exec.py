"""``cnitool netns`` and ``cnitool exec`` with Debian's bridge + host-local:
namespaces shared with ``ip netns``; exec's teardown after success, a failing
command, a failed ADD, Ctrl-C during the command and during the ADD."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import kernel
import networks
import pytest
from support import CNITOOL, DEBIAN_PLUGINS, PLUGINS, run_cnitool, unique, wait_gone, write_conf

from libcni_py import netns

pytestmark = pytest.mark.root


def ip_netns_list() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def exec_namespaces() -> set[str]:
    return {n for n in netns.list_names() if n.startswith("cnitool-exec-")}


# --------------------------------------------------------------------------
# cnitool netns


def test_netns_add_ls_del(node: str) -> None:
    name = unique("clins")
    try:
        add = run_cnitool("netns", "add", name)
        assert add.returncode == 0, add.stderr
        assert add.stdout == f"/var/run/netns/{name}\n"
        assert name in ip_netns_list()
        ls = run_cnitool("netns", "ls")
        assert ls.returncode == 0 and name in ls.stdout.splitlines()

        again = run_cnitool("netns", "add", name)
        assert again.returncode == 6
        assert again.stderr == (
            f"cnitool: error: network namespace '{name}' already exists (pick another name, or delete it first)\n"
        )
        assert run_cnitool("netns", "add", "--exist-ok", name).returncode == 0

        assert run_cnitool("netns", "del", name).returncode == 0
        assert name not in ip_netns_list()
        gone = run_cnitool("netns", "del", name)
        assert gone.returncode == 6 and f"network namespace '{name}' does not exist" in gone.stderr
        assert run_cnitool("netns", "del", "--missing-ok", name).returncode == 0
    finally:
        netns.delete(name)


def test_netns_sees_ip_netns(node: str) -> None:
    name = unique("clins")
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        assert name in run_cnitool("netns", "ls").stdout.splitlines()
        assert run_cnitool("netns", "del", name).returncode == 0
        assert name not in ip_netns_list()
    finally:
        netns.delete(name)


@pytest.mark.parametrize(
    ("argv", "code", "text"),
    [
        (["netns"], 2, "expected add, del or ls"),
        (["netns", "frob"], 2, "unknown netns command 'frob'"),
        (["netns", "add"], 2, "add takes one NAME"),
        (["netns", "ls", "x"], 2, "ls takes no NAME"),
        (["netns", "add", "a/b"], 6, "invalid network namespace name 'a/b'"),
    ],
)
def test_netns_usage_errors(argv: list[str], code: int, text: str, node: str) -> None:
    proc = run_cnitool(*argv)
    assert proc.returncode == code
    assert text in proc.stderr and "Traceback" not in proc.stderr


def test_netns_as_an_unprivileged_user(node: str) -> None:
    name = unique("clins")
    proc = subprocess.run(
        [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            sys.executable,
            str(CNITOOL),
            "netns",
            "add",
            name,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 6
    assert proc.stderr == (
        f"cnitool: error: cannot prepare {netns.NETNS_DIR}: permission denied "
        "(creating and deleting namespaces needs root (CAP_SYS_ADMIN))\n"
    )
    assert not netns.exists(name)


# --------------------------------------------------------------------------
# cnitool exec


class Net:
    """A bridge + host-local network in a private conf dir, and what it leaves."""

    def __init__(self, tmp_path: Path, extra: list[dict[str, object]] | None = None) -> None:
        self.data_dir = tmp_path / "ipam"
        self.net = networks.bridge_network(
            self.data_dir, prefix="exnet", bridge_prefix="exbr", default_route=True, extra=list(extra or [])
        )
        self.name, self.bridge, self.subnet = self.net.name, self.net.bridge, self.net.subnet
        self.cache_dir = tmp_path / "cache"
        self.conf_dir = tmp_path / "net.d"
        self.net.write(self.conf_dir, "10-ex.conflist")
        self.env = {
            "NETCONFPATH": str(self.conf_dir),
            "CNI_PATH": f"{DEBIAN_PLUGINS}:{PLUGINS}",
            "CNI_CACHE_DIR": str(self.cache_dir),
        }
        self.links_before = set(kernel.links())
        self.namespaces_before = exec_namespaces()

    def assert_nothing_left(self) -> None:
        assert exec_namespaces() == self.namespaces_before
        new_links = set(kernel.links()) - self.links_before
        assert new_links <= {self.bridge}, new_links  # the bridge plugin never deletes bridges
        assert kernel.reservations(self.data_dir, self.name) == []
        results = self.cache_dir / "results"
        assert not results.exists() or list(results.iterdir()) == []


def test_exec_runs_the_command_inside_and_cleans_up(tmp_path: Path, node: str) -> None:
    net = Net(tmp_path)
    proc = run_cnitool(
        "exec",
        net.name,
        "--",
        "sh",
        "-c",
        "ip -brief -4 addr show eth0; ip netns identify; ip route show default; cat; exit 3",
        env=net.env,
        stdin="from stdin\n",
    )
    assert proc.returncode == 3, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split()[0].startswith("eth0@") and lines[0].split()[2] == net.subnet.address(2)
    assert lines[1].startswith("cnitool-exec-")
    assert lines[2].startswith(f"default via {net.subnet.gateway} dev eth0")
    assert lines[3] == "from stdin"
    assert proc.stderr == ""
    net.assert_nothing_left()


def test_exec_options_reach_the_attachment(tmp_path: Path, node: str) -> None:
    net = Net(tmp_path)
    proc = run_cnitool(
        "exec",
        "--ifname",
        "net7",
        "--container-id",
        "exec-cid-1",
        net.name,
        "--",
        "sh",
        "-c",
        "ip -brief -4 addr show net7; cat /proc/net/dev | grep -c eth0",
        env=net.env,
    )
    assert proc.returncode == 1, proc.stderr  # grep -c found no eth0
    first, count = proc.stdout.splitlines()
    assert first.startswith("net7@") and net.subnet.address(2) in first and count == "0"
    net.assert_nothing_left()


def test_exec_without_dashes(tmp_path: Path, node: str) -> None:
    net = Net(tmp_path)
    proc = run_cnitool("exec", net.name, "true", env=net.env)
    assert proc.returncode == 0, proc.stderr
    net.assert_nothing_left()


def test_exec_killed_command_exit_status(tmp_path: Path, node: str) -> None:
    net = Net(tmp_path)
    proc = run_cnitool("exec", net.name, "--", "sh", "-c", "kill -TERM $$", env=net.env)
    assert proc.returncode == 128 + signal.SIGTERM
    net.assert_nothing_left()


def test_exec_failed_add_is_torn_down(tmp_path: Path, node: str) -> None:
    """bridge + host-local succeed, then the next plugin fails: the DEL undoes
    the bridge's veth and the address, and the namespace goes."""
    net = Net(tmp_path, [{"type": "failer", "failOn": ["ADD"], "msg": "no luck"}])
    proc = run_cnitool("exec", net.name, "--", "touch", str(tmp_path / "ran"), env=net.env)
    assert proc.returncode == 1
    note, error = proc.stderr.splitlines()
    # the teardown's DEL saw the half-done ADD's record (libcni_py's, written before the first plugin)
    assert note.startswith("cnitool: note: cache record ")
    assert note.endswith("is from an ADD that did not complete (failed, 1 of 2 plugins done); deleting all of it")
    assert error == f'cnitool: error: network "{net.name}": plugin type="failer" failed (add): no luck'
    assert not (tmp_path / "ran").exists()
    net.assert_nothing_left()


def test_exec_nothing_started_nothing_deleted(tmp_path: Path, node: str) -> None:
    net = Net(tmp_path, [{"type": "no-such-plugin"}])
    proc = run_cnitool("exec", net.name, "--", "true", env=net.env)
    assert proc.returncode == 4
    assert proc.stderr.startswith('cnitool: error: plugin "no-such-plugin" not found in ')
    assert proc.stderr.count("\n") == 1  # no teardown notes: no DEL was attempted
    net.assert_nothing_left()


@pytest.mark.parametrize(
    ("argv", "code", "text"),
    [
        (["--", "no-such-command-x"], 127, "command 'no-such-command-x' not found on PATH"),  # as a shell
        (["--"], 2, "no COMMAND given"),
        (["other", "--", "true"], 2, "expected only NETWORK before --"),
    ],
)
def test_exec_refuses_before_creating_anything(
    argv: list[str], code: int, text: str, tmp_path: Path, node: str
) -> None:
    net = Net(tmp_path)
    proc = run_cnitool("exec", net.name, *argv, env=net.env)
    assert proc.returncode == code and text in proc.stderr
    net.assert_nothing_left()
    assert not (net.cache_dir / "results").exists()


def start_exec(net: Net, *command: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(CNITOOL), "exec", net.name, "--", *command],
        env=dict(os.environ) | net.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_exec_signal_while_the_command_runs(signum: int, tmp_path: Path, node: str) -> None:
    """A signal sent to cnitool alone (kill) is relayed to the command; the
    teardown runs; the exit status is the command's (killed by it)."""
    net = Net(tmp_path)
    proc = start_exec(net, "sh", "-c", "echo ready; exec sleep 60")
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum, err
    assert err == ""
    net.assert_nothing_left()


def test_exec_ctrl_c_during_add(tmp_path: Path, node: str) -> None:
    """Ctrl-C while the second plugin's ADD hangs: it is killed, the DEL undoes
    what the bridge made, the namespace goes, exit 130."""
    pid_file = tmp_path / "hanger.pid"
    net = Net(tmp_path, [{"type": "hanger", "hangOn": ["ADD"], "pidFile": str(pid_file)}])
    proc = start_exec(net, "touch", str(tmp_path / "ran"))
    deadline = time.monotonic() + 60
    while not pid_file.exists() or not pid_file.read_text().endswith("\n"):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    # the bridge's ADD is done: its veth exists now
    assert [n for n in set(kernel.links()) - net.links_before if n != net.bridge]
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    note, last = err.splitlines()
    assert note.startswith("cnitool: note: cache record ") and "1 of 2 plugins done" in note
    assert last == "cnitool: interrupted"
    assert not (tmp_path / "ran").exists()
    for pid in map(int, pid_file.read_text().split()):
        assert wait_gone(pid)  # the hanging plugin and its child were killed
    net.assert_nothing_left()


def test_exec_teardown_failure_is_reported(tmp_path: Path, node: str) -> None:
    """A DEL that fails: the command's status still wins when it failed; when
    it succeeded, the teardown's error decides; the namespace goes anyway."""
    net = Net(tmp_path, [{"type": "failer", "failOn": ["DEL"], "msg": "cannot let go"}])
    kept = "cnitool: note: DEL did not finish: still to delete: failer; the other plugins' DEL succeeded; "
    failed = run_cnitool("exec", net.name, "--", "sh", "-c", "exit 5", env=net.env)
    assert failed.returncode == 5
    note, teardown = failed.stderr.splitlines()
    assert note.startswith(kept) and note.endswith("keeps the rest for the next DEL or GC")
    assert (
        teardown == f'cnitool: note: teardown: network "{net.name}": plugin type="failer" failed (del): cannot let go'
    )
    ok = run_cnitool("exec", net.name, "--", "true", env=net.env)
    assert ok.returncode == 1
    note, error = ok.stderr.splitlines()
    assert note.startswith(kept)
    assert error == f'cnitool: error: network "{net.name}": plugin type="failer" failed (del): cannot let go'
    # DEL is best-effort: the bridge's DEL ran past the failing plugin, host-local released the addresses
    assert kernel.reservations(net.data_dir, net.name) == []
    assert exec_namespaces() == net.namespaces_before
    # the records stay, so that a later DEL can finish the job
    records = sorted(p.name for p in (net.cache_dir / "results").iterdir())
    assert len(records) == 2
    conf = json.loads((net.conf_dir / "10-ex.conflist").read_text())
    conf["plugins"] = conf["plugins"][:1]
    write_conf(net.conf_dir, "10-ex.conflist", conf)
    for record in records:
        cid = json.loads((net.cache_dir / "results" / record).read_text())["containerId"]
        # the recorded configuration still has the failing plugin: DEL with the file as it is now
        gc = run_cnitool("gc", net.name, "--all", "--current-config", env=net.env)
        assert gc.returncode == 0, gc.stderr
        assert cid in gc.stdout
        break
    net.assert_nothing_left()


RECEIVER = """
import signal, sys
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
print("ready", flush=True)
while True:
    info = signal.sigwaitinfo({signal.SIGINT, signal.SIGTERM})
    with open(sys.argv[1], "a") as fh:
        fh.write(f"{signal.Signals(info.si_signo).name} code={info.si_code} pid={info.si_pid}\\n")
    if info.si_signo == signal.SIGTERM:
        sys.exit(7)
"""


def test_exec_ctrl_c_at_a_terminal(tmp_path: Path, node: str) -> None:
    """Ctrl-C typed at a terminal: the kernel sends SIGINT to the whole
    foreground process group, so the command gets it from the terminal
    (si_code SI_KERNEL), and cnitool is not interrupted by it: the command's
    exit status and a full teardown follow.  A signal sent to cnitool alone
    (kill) is relayed (its sender is cnitool).  That cnitool does not relay
    the terminal's SIGINT a second time cannot be seen here: a second SIGINT
    arriving while the first is pending merges with it."""
    import fcntl
    import pty
    import termios

    net = Net(tmp_path)
    received = tmp_path / "received"
    master, slave = pty.openpty()

    def controlling_tty() -> None:
        os.setsid()
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen(
        [sys.executable, str(CNITOOL), "exec", net.name, "--", sys.executable, "-c", RECEIVER, str(received)],
        env=dict(os.environ) | net.env,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        preexec_fn=controlling_tty,  # a controlling terminal needs setsid + TIOCSCTTY
    )
    os.close(slave)
    seen = b""
    while b"ready" not in seen:
        seen += os.read(master, 1024)
    os.write(master, b"\x03")  # Ctrl-C, as typed
    deadline = time.monotonic() + 30
    while not received.exists():
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 7
    os.close(master)
    si_kernel, si_user = 0x80, 0
    assert received.read_text().splitlines() == [
        f"SIGINT code={si_kernel} pid=0",
        f"SIGTERM code={si_user} pid={proc.pid}",
    ]
    net.assert_nothing_left()
