"""Kill-at-every-boundary: a runtime is SIGKILLed in the middle of an ADD of
a real chain (Debian's bridge + host-local, tuning, portmap), then ``cnitool
gc --all --force`` (the pod's namespace is alive: the user names its
attachments dead) or ``cnitool del`` runs.  With libcni_py nothing is left: no veth, no
interface in the pod, no host-local reservation, no iptables rule or chain
of the container, no saved tuning settings, no cache file.  The same kills
of Go's libcni 1.1.2 (``tests/gopeer``) leave what the ADD made with no
cache entry that a GC could find.

The results are also collected into a table (``FAULT_TABLE=path`` writes it
as markdown at the end; docs/reliability.md shows one)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import faults
import pytest
from support import CNITOOL, DEBIAN_PLUGINS

pytestmark = pytest.mark.root

TABLE: list[tuple[str, str, str, str, str]] = []


class Rig(faults.Chain):
    """One network and one pod, with everything named uniquely."""

    def __init__(self, tmp_path: Path, pod: str) -> None:
        super().__init__(tmp_path, pod, prefix="fault")

    def env(self, **extra: str) -> dict[str, str]:
        return (
            dict(os.environ)
            | {
                "NETCONFPATH": str(self.conf_dir),
                "CNI_PATH": str(DEBIAN_PLUGINS),
                "CNI_CACHE_DIR": str(self.cache_dir),
                "CAP_ARGS": self.caps,
            }
            | extra
        )

    def add_and_die(self, at: int, reached: Path) -> subprocess.CompletedProcess[str]:
        """ADD through the fault harness, which SIGKILLs itself before effect
        ``at`` (after the whole ADD when ``at`` is past the last) and notes
        in ``reached`` where it was."""
        return subprocess.run(
            [
                sys.executable,
                str(faults.__file__),
                "add",
                "--conf-dir",
                str(self.conf_dir),
                "--network",
                self.network,
                "--netns",
                self.netns,
                "--cache-dir",
                str(self.cache_dir),
                "--plugin-path",
                str(DEBIAN_PLUGINS),
                "--reached",
                str(reached),
                "--kill-at",
                str(at),
                "--capability-args",
                self.caps,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def cnitool(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(CNITOOL), *argv],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def recover(self, how: str) -> subprocess.CompletedProcess[str]:
        if how == "gc":  # the namespace lives on: without --force, gc keeps it (test_gc_liveness.py)
            return self.cnitool("gc", self.network, "--all", "--force")
        return self.cnitool("del", self.network, self.netns)


@pytest.fixture
def rig(make_netns, tmp_path: Path) -> Iterator[Rig]:
    made = Rig(tmp_path, make_netns("fpod"))
    yield made
    subprocess.run(["ip", "link", "del", made.bridge], check=False, capture_output=True)


def record(runtime: str, fault: str, recovery: str, found: dict[str, list[str]], before: dict[str, list[str]]) -> None:
    made = ", ".join(k for k in faults.leaked(before)) or "nothing"
    left = ", ".join(f"{k} ({len(v)})" for k, v in found.items() if v) or "nothing"
    TABLE.append((runtime, fault, recovery, made, left))


@pytest.fixture(scope="module", autouse=True)
def _write_table() -> Iterator[None]:
    yield
    target = os.environ.get("FAULT_TABLE")
    if target and TABLE:
        lines = [
            "| runtime | killed | then | left by the killed ADD | left after the recovery |",
            "|---|---|---|---|---|",
        ]
        lines += [f"| {r} | {f} | {c} | {m} | {left} |" for r, f, c, m, left in TABLE]
        Path(target).write_text("\n".join(lines) + "\n")


def test_effect_labels_match_the_plan(rig: Rig, tmp_path: Path) -> None:
    """The harness is deterministic: killing before effect N stops exactly
    at the effect faults.ADD_EFFECTS names."""
    for at in (0, 3, 8, len(faults.ADD_EFFECTS)):
        reached = tmp_path / f"reached-{at}"
        proc = rig.add_and_die(at, reached)
        assert proc.returncode == -9, proc.stderr
        expected = faults.ADD_EFFECTS[at] if at < len(faults.ADD_EFFECTS) else faults.AFTER_ADD
        assert reached.read_text() == expected
        assert rig.recover("del").returncode == 0
    found = rig.leftovers()
    assert faults.leaked(found) == [], found["iptables"]


@pytest.mark.parametrize("recovery", ["gc", "del"])
@pytest.mark.parametrize("at", range(len(faults.ADD_EFFECTS) + 1), ids=[*faults.ADD_EFFECTS, faults.AFTER_ADD])
def test_libcni_py_killed_at_every_boundary(at: int, recovery: str, rig: Rig, tmp_path: Path) -> None:
    reached = tmp_path / "reached"
    proc = rig.add_and_die(at, reached)
    assert proc.returncode == -9, proc.stderr
    made = rig.leftovers()
    fixed = rig.recover(recovery)
    assert fixed.returncode == 0, fixed.stderr
    found = rig.leftovers()
    when = reached.read_text()
    record("libcni_py (tracer)", when if when == faults.AFTER_ADD else f"before: {when}", THEN[recovery], found, made)
    assert faults.leaked(found) == [], found


FAULTS = [f"{when} ADD {plugin}" for plugin in faults.PLUGINS for when in ("before", "after")]
THEN = {"gc": "cnitool gc --all --force", "del": "cnitool del"}
GO_THEN = {"gc": "cnitool gc --all (Go 1.1.2 has no GC)", "del": "Go's del"}


@pytest.fixture
def go_cnitool(gopeer: Path) -> Path:
    """tests/gopeer, or the reference peer named by FAULT_GO_PEER (built with
    ../shared/peer/build.sh; it keeps its cache in /var/lib/cni)."""
    return Path(os.environ.get("FAULT_GO_PEER") or gopeer)


@pytest.mark.parametrize("recovery", ["gc", "del"])
@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("runtime", ["libcni_py", "go"])
def test_killed_inside_a_plugin_call(
    runtime: str, fault: str, recovery: str, rig: Rig, tmp_path: Path, go_cnitool: Path
) -> None:
    shims = faults.write_shims(tmp_path / "shims", DEBIAN_PLUGINS)
    add = [str(go_cnitool), "add"] if runtime == "go" else [sys.executable, str(CNITOOL), "add"]
    what = faults.kill_in_plugin(
        [*add, rig.network, rig.netns], rig.env(CNI_PATH=str(shims), FAULT_AT=fault), tmp_path / "reached"
    )
    assert what == "killed", what
    made = rig.leftovers()
    results = (
        sorted(p.name for p in (rig.cache_dir / "results").iterdir()) if (rig.cache_dir / "results").is_dir() else []
    )
    if runtime == "go":
        # Go libcni writes its cache only after the whole chain succeeded
        assert results == []
        if recovery == "gc":
            # Go libcni 1.1.2 has no GC; libcni >= 1.2's GC (and ours, run
            # here on Go's cache dir) acts on cache entries: there are none
            fixed = rig.cnitool("gc", rig.network, "--all")
        else:
            fixed = subprocess.run(
                [str(go_cnitool), "del", rig.network, rig.netns],
                env=rig.env(),
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
    else:
        assert results == [f"{rig.network}-{rig.cid}-eth0"], "recorded before the first plugin ran"
        fixed = rig.recover(recovery)
    assert fixed.returncode == 0, fixed.stderr
    found = rig.leftovers()
    record(runtime, fault, (GO_THEN if runtime == "go" else THEN)[recovery], found, made)
    if runtime == "libcni_py" or fault == "before ADD bridge":
        assert faults.leaked(found) == [], found
    elif recovery == "gc":
        # nothing recorded, so nothing found: what the ADD made stays
        assert {"veth on the bridge", "host-local reservation", "iptables"} <= set(faults.leaked(found)), found
    else:
        # a DEL given the same container ID, ifname and netns does clean up
        # (the plugins are idempotent): what Go lacks is the record that
        # lets anyone but the crashed caller find the attachment
        assert faults.leaked(found) == [], found


def test_the_leak_check_sees_a_live_attachment(rig: Rig) -> None:
    """A completed ADD shows up in every category leftovers() looks at."""
    add = rig.cnitool("add", rig.network, rig.netns)
    assert add.returncode == 0, add.stderr
    found = rig.leftovers()
    assert faults.leaked(found) == list(found), found
    assert rig.recover("del").returncode == 0
    assert faults.leaked(rig.leftovers()) == []
