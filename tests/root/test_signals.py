"""Signals and stuck lock holders on Debian's real bridge (+ host-local),
tuning and portmap chain (issue 12).

A runtime that gives up on an ADD sends SIGTERM (or SIGHUP, or the
terminal's SIGINT) to ``cnitool add`` -- to its pid or to its process
group -- and at once the DEL for the same attachment.  Plugins run in their
own session, so the signal does not reach them: cnitool itself must kill
the running plugin's tree, keep the ADD's record (``adding``, k of n) and
only then release the attachment lock, on which the DEL waits.  Each test
ends with nothing left: no veth, no address reserved, no iptables rule or
chain of the container, no saved tuning setting, no cache file.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import faults
import pytest
from support import CNITOOL, DEBIAN_PLUGINS, alive, wait_gone
from test_crash_recovery import Rig as CrashRig

pytestmark = pytest.mark.root


class Rig(CrashRig):
    """test_crash_recovery's rig (one network: bridge, host-local, tuning,
    portmap; one pod), plus starting cnitool as a runtime does."""

    def __init__(self, tmp_path: Path, pod: str) -> None:
        super().__init__(tmp_path, pod)
        self.tmp = tmp_path

    def start(self, *argv: str, **env: str) -> subprocess.Popen[str]:
        """cnitool in its own process group, as a runtime starts it."""
        return subprocess.Popen(
            [sys.executable, str(CNITOOL), *argv],
            env=self.env(**env),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )

    def wait_for_shim(self, proc: subprocess.Popen[str], reached: Path) -> int:
        """The pid of the shim that stopped where FAULT_AT said."""
        deadline = time.monotonic() + 60
        while not (reached.exists() and reached.read_text().strip()):
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "the shim was never reached"
            time.sleep(0.02)
        return int(reached.read_text())


@pytest.fixture
def rig(make_netns, tmp_path: Path) -> Iterator[Rig]:
    made = Rig(tmp_path, make_netns("spod"))
    yield made
    subprocess.run(["ip", "link", "del", made.bridge], check=False, capture_output=True)


def _send(proc: subprocess.Popen[str], signum: int, target: str) -> None:
    if target == "group":
        os.killpg(proc.pid, signum)
    else:
        os.kill(proc.pid, signum)


@pytest.mark.parametrize("target", ["pid", "group"])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["TERM", "HUP"])
def test_signal_while_a_plugin_runs_then_the_runtimes_del(rig: Rig, signum: int, target: str) -> None:
    """The bridge's ADD is done (veth, address, iptables masquerade) and
    tuning's runs when the signal comes; the runtime's DEL starts at once.
    cnitool kills tuning, exits 128+N; the DEL waited for it and removed
    everything."""
    shims = faults.write_shims(rig.tmp / "shims", DEBIAN_PLUGINS)
    reached = rig.tmp / "reached"
    add = rig.start(
        "add", rig.network, rig.netns, CNI_PATH=str(shims), FAULT_AT="before ADD tuning", FAULT_REACHED=str(reached)
    )
    shim = rig.wait_for_shim(add, reached)
    assert "veth on the bridge" in faults.leaked(rig.leftovers())
    _send(add, signum, target)
    delete = rig.cnitool("del", rig.network, rig.netns)  # what a runtime does right after
    _, err = add.communicate(timeout=60)
    assert add.returncode == 128 + signum, err
    assert err.strip().endswith(f"interrupted by {signal.Signals(signum).name}"), err
    assert not alive(shim), "the plugin outlived cnitool"
    assert delete.returncode == 0, delete.stderr
    assert "from an ADD that did not complete (adding, 1 of 3 plugins done)" in delete.stderr
    assert faults.leaked(rig.leftovers()) == [], rig.leftovers()


def test_sigterm_at_20_random_moments(rig: Rig, tmp_path: Path) -> None:
    """``cnitool add`` of bridge + host-local, tuning, portmap gets SIGTERM
    (to its pid or its group) at 20 seeded random moments of its run, each
    followed at once by the runtime's DEL: nothing is ever left.  The seed
    is printed (LIBCNI_SIGNAL_SEED=N repeats a run)."""
    seed = int(os.environ.get("LIBCNI_SIGNAL_SEED") or random.SystemRandom().randrange(1 << 32))
    print(f"LIBCNI_SIGNAL_SEED={seed}")
    rng = random.Random(seed)
    started = time.monotonic()
    whole = rig.cnitool("add", rig.network, rig.netns)
    took = time.monotonic() - started
    assert whole.returncode == 0, whole.stderr
    assert rig.cnitool("del", rig.network, rig.netns).returncode == 0
    outcomes: dict[str, int] = {}
    for round_ in range(20):
        moment = rng.uniform(0, took * 1.1)
        target = rng.choice(["pid", "group"])
        add = rig.start("add", rig.network, rig.netns)
        time.sleep(moment)
        _send(add, signal.SIGTERM, target)
        delete = rig.cnitool("del", rig.network, rig.netns)
        _, err = add.communicate(timeout=60)
        # -15: before cnitool set its handler (nothing started yet); 0: it had finished
        assert add.returncode in (143, -15, 0), f"round {round_} (seed {seed}): {err}"
        outcomes[str(add.returncode)] = outcomes.get(str(add.returncode), 0) + 1
        assert delete.returncode == 0, f"round {round_} (seed {seed}, {moment:.3f}s): {delete.stderr}"
        left = rig.leftovers()
        assert faults.leaked(left) == [], f"round {round_} (seed {seed}, {moment:.3f}s, {target}): {left}"
    print(f"exit statuses of the 20 ADDs: {outcomes}")


def test_del_waiting_on_a_stopped_add_ends_at_its_deadline(rig: Rig) -> None:
    """An ADD stopped (SIGSTOP, as Ctrl-Z) while a plugin runs holds the
    attachment lock: a DEL gives up at its --timeout, exit 75, naming the
    holder's pid and saying it is stopped; after SIGCONT and SIGTERM the
    ADD cleans up and the DEL removes everything."""
    shims = faults.write_shims(rig.tmp / "shims", DEBIAN_PLUGINS)
    reached = rig.tmp / "reached"
    add = rig.start(
        "add", rig.network, rig.netns, CNI_PATH=str(shims), FAULT_AT="before ADD portmap", FAULT_REACHED=str(reached)
    )
    shim = rig.wait_for_shim(add, reached)
    os.kill(add.pid, signal.SIGSTOP)
    try:
        delete = rig.cnitool("--timeout", "1", "del", rig.network, rig.netns)
        assert delete.returncode == 75, delete.stderr
        assert f"held by pid {add.pid} (" in delete.stderr and "which is STOPPED" in delete.stderr, delete.stderr
        assert f"kill -CONT {add.pid}" in delete.stderr
        gc = rig.cnitool("--timeout", "1", "gc", rig.network, "--all", "--force")
        assert gc.returncode != 0 and f"held by pid {add.pid}" in gc.stderr, gc.stderr
    finally:
        os.kill(add.pid, signal.SIGCONT)
    add.send_signal(signal.SIGTERM)
    _, err = add.communicate(timeout=60)
    assert add.returncode == 143, err
    assert wait_gone(shim)
    delete = rig.cnitool("del", rig.network, rig.netns)
    assert delete.returncode == 0, delete.stderr
    assert faults.leaked(rig.leftovers()) == [], rig.leftovers()
