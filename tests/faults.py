"""Fault injection: kill a runtime in the middle of an ADD, then see what a
DEL or a GC leaves behind.

Two ways to kill, both deterministic:

* **at an effect boundary of libcni_py** (``python tests/faults.py add ...
  --kill-at N``): this file, run as a script, drives ``CNI.add`` with a
  tracer (the driver's ``Tracer`` protocol) that SIGKILLs its own process
  just before the N-th effect of the ADD plan -- before the lock, before the
  first record, before each plugin, before each record update, before the
  final record, before the lock is released -- or, for N past the last
  effect, just after ``add`` returned.  Nothing is left running: the kill
  happens between effects, never while a plugin runs.
* **inside a plugin call, for any runtime** (:func:`write_shims`): a shim
  directory puts a small script in front of each real plugin.  When
  ``FAULT_AT`` says ``before ADD tuning`` (or ``after ADD tuning``), the
  tuning shim stops before running the real plugin (or after it ran to the
  end, holding back its result), writes its pid to ``FAULT_REACHED`` and
  sleeps; the test then SIGKILLs the runtime -- Go's cnitool or ours -- and
  the shim.  This is how Go's libcni, which has no tracer, is interrupted at
  the same points.

:func:`leftovers` lists what an attachment left on the node: veths on the
bridge, the container's interface, host-local reservations, iptables rules
and chains, tuning's saved settings, and cache files.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent

#: The chain every fault test adds: bridge (+ host-local), tuning, portmap.
PLUGINS = ("bridge", "tuning", "portmap")

#: Labels of the effects of an ADD of :data:`PLUGINS`, in order; killing
#: "before" index N for N in range(len(...) + 1) covers every boundary.
ADD_EFFECTS = (
    "check the namespace",
    "resolve plugins",
    "take the lock",
    "look for a record",
    "record adding 0/3",
    "run ADD bridge",
    "record adding 1/3",
    "run ADD tuning",
    "record adding 2/3",
    "run ADD portmap",
    "final record",
    "release the lock",
)
AFTER_ADD = "after ADD returned"


def label(effect: Any) -> str:
    """A person's name for an effect of a plan."""
    kind = type(effect).__name__
    if kind == "ProbeNetns":
        return "check the namespace"
    if kind == "Resolve":
        return "resolve plugins"
    if kind == "Acquire":
        return "take the lock"
    if kind == "ReadRecord":
        return "look for a record"
    if kind == "Release":
        return "release the lock"
    if kind == "Exec":
        return f"run {effect.request.command} {effect.request.plugin_type}"
    if kind == "WriteRecord":
        marker = json.loads(effect.data).get("libcniPy")
        return f"record {marker['state']} {marker['done']}/{marker['plugins']}" if marker else "final record"
    return kind


class KillAt:
    """A tracer that SIGKILLs this process just before effect number ``at``."""

    def __init__(self, at: int, reached: Path) -> None:
        self.at = at
        self.count = 0
        self.reached = reached

    def die(self, what: str) -> None:
        self.reached.write_text(what)
        os.kill(os.getpid(), signal.SIGKILL)

    def before(self, effect: Any) -> None:
        if self.count == self.at:
            self.die(label(effect))
        self.count += 1

    def after(self, effect: Any, outcome: Any, error: BaseException | None) -> None:
        pass


def _run_add(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="faults.py add")
    for name in ("--conf-dir", "--network", "--netns", "--cache-dir", "--plugin-path", "--reached"):
        parser.add_argument(name, required=True)
    parser.add_argument("--kill-at", type=int, required=True)
    parser.add_argument("--capability-args", default="{}")
    opts = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    from libcni_py import CNI, RuntimeConf, load_network
    from libcni_py.core.args import cnitool_container_id

    killer = KillAt(opts.kill_at, Path(opts.reached))
    cni = CNI(plugin_path=opts.plugin_path.split(":"), cache_dir=opts.cache_dir, tracer=killer, on_stderr=None)
    rt = RuntimeConf(
        container_id=cnitool_container_id(opts.netns),
        netns=opts.netns,
        ifname="eth0",
        capability_args=json.loads(opts.capability_args),
    )
    cni.add(load_network(opts.conf_dir, opts.network), rt)
    killer.die(AFTER_ADD)
    return 0


# --------------------------------------------------------------------------
# shims in front of the real plugins

SHIM = """#!/bin/sh
# Fault shim: runs the real plugin, but stops for good before or after it
# when FAULT_AT names this call ("before ADD tuning", "after ADD tuning").
name=${0##*/}
real=%(real)s/$name
case "$FAULT_AT" in
  "before $CNI_COMMAND $name")
    echo $$ > "$FAULT_REACHED"
    exec sleep 3600 ;;
  "after $CNI_COMMAND $name")
    "$real" > "$FAULT_REACHED.out"
    echo $$ > "$FAULT_REACHED"
    exec sleep 3600 ;;
esac
exec "$real"
"""


def write_shims(directory: Path, real: Path, names: tuple[str, ...] = (*PLUGINS, "host-local")) -> Path:
    """A plugin directory of shims in front of the plugins in ``real``."""
    directory.mkdir(mode=0o755)
    for name in names:
        shim = directory / name
        shim.write_text(SHIM % {"real": real})
        shim.chmod(0o755)
    return directory


def kill_in_plugin(command: list[str], env: dict[str, str], reached: Path, timeout: float = 60) -> str:
    """Start a runtime, wait until the shim named by ``env["FAULT_AT"]`` is
    reached, then SIGKILL the runtime (its whole process group) and the shim.

    Returns:
        What happened: "killed", or "finished" if the runtime ended before
        the shim was reached (a test then fails on it).
    """
    proc = subprocess.Popen(
        command,
        env=env | {"FAULT_REACHED": str(reached)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    try:
        while not (reached.exists() and reached.read_text().strip()):
            if proc.poll() is not None:
                return "finished: " + proc.stderr.read().decode(errors="replace").strip()  # type: ignore[union-attr]
            if time.monotonic() > deadline:
                return "timed out"
            time.sleep(0.02)
        shim = int(reached.read_text())
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        try:
            os.kill(shim, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return "killed"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        proc.stderr.close()  # type: ignore[union-attr]


# --------------------------------------------------------------------------
# what is left


def iptables_state() -> set[str]:
    """Chains and rules of the nat and filter tables (iptables-save lines)."""
    lines: set[str] = set()
    for table in ("nat", "filter"):
        out = subprocess.run(["iptables-save", "-t", table], capture_output=True, text=True, check=True).stdout
        lines |= {f"{table} {line.split(' [')[0]}" for line in out.splitlines() if line.startswith((":", "-A"))}
    return lines


def _shared(line: str) -> bool:
    """A chain or rule portmap sets up once per node and leaves by design."""
    body = line.split(" ", 1)[1]
    return body.startswith((":CNI-HOSTPORT-", "-A CNI-HOSTPORT-")) or "-j CNI-HOSTPORT-" in body


def leftovers(
    *,
    pod: str,
    cid: str,
    bridge: str,
    network: str,
    data_dir: Path,
    tuning_dir: Path,
    cache_dir: Path,
    iptables_before: set[str],
) -> dict[str, list[str]]:
    """What the attachment left: every list empty means nothing leaked.

    Must run while the pod namespace still exists (deleting it would remove
    the veth pair and hide a leak).
    """
    import kernel

    host = kernel.links()
    bridge_index = host.get(bridge, {}).get("index")
    found: dict[str, list[str]] = {
        "veth on the bridge": sorted(
            n for n, link in host.items() if link["kind"] == "veth" and bridge_index and link["master"] == bridge_index
        ),
        "eth0 in the pod": ["eth0"] if "eth0" in kernel.links(pod) else [],
        "host-local reservation": kernel.reservations(data_dir, network),
        "iptables": sorted(line for line in iptables_state() - iptables_before if cid in line or not _shared(line)),
        "tuning saved settings": sorted(p.name for p in tuning_dir.iterdir()) if tuning_dir.is_dir() else [],
        "cache files": cache_files(cache_dir),
    }
    return found


def leaked(found: dict[str, list[str]]) -> list[str]:
    """The kinds of leftovers that are not empty."""
    return [kind for kind, items in found.items() if items]


class Chain:
    """One attachment of :func:`networks.faults_chain` (bridge + host-local,
    tuning, portmap) to be made: a network, a bridge, a subnet and a host
    port of its own (``tests/networks.py``), a pod namespace (already made),
    their dirs under ``tmp_path``, and the node's iptables state before it."""

    def __init__(self, tmp_path: Path, pod: str, *, prefix: str) -> None:
        import networks

        from libcni_py.core.args import cnitool_container_id

        self.data_dir = tmp_path / "ipam"
        self.tuning_dir = tmp_path / "tuning"
        self.cache_dir = tmp_path / "cache"
        self.conf_dir = tmp_path / "net.d"
        self.conf_dir.mkdir()
        self.net = networks.faults_chain(self.data_dir, self.tuning_dir, prefix=prefix, bridge_prefix=prefix[:2] + "br")
        self.network = self.net.name
        self.bridge = self.net.bridge
        self.pod = pod
        self.netns = f"/var/run/netns/{pod}"
        self.cid = cnitool_container_id(self.netns)
        self.port = networks.host_port()
        self.net.write(self.conf_dir, "10-fault.conflist")
        self.caps = json.dumps(networks.port_mappings(self.port))
        self.iptables_before = iptables_state()

    def leftovers(self) -> dict[str, list[str]]:
        """What the attachment left (:func:`leftovers`)."""
        return leftovers(
            pod=self.pod,
            cid=self.cid,
            bridge=self.bridge,
            network=self.network,
            data_dir=self.data_dir,
            tuning_dir=self.tuning_dir,
            cache_dir=self.cache_dir,
            iptables_before=self.iptables_before,
        )


if __name__ == "__main__":
    if sys.argv[1:2] == ["add"]:
        raise SystemExit(_run_add(sys.argv[2:]))
    raise SystemExit(
        "usage: faults.py add --conf-dir DIR --network NAME --netns PATH --cache-dir DIR "
        "--plugin-path DIRS --reached FILE --kill-at N"
    )


#: The cache dir's GC lock: one per cache dir, shared by every attachment (as
#: host-local's ``lock`` is per network), so never a leak of one.
GC_LOCK_FILE = "libcni_py/gc-lock/lock"


def cache_files(cache_dir: Path) -> list[str]:
    """The files under the cache dir that belong to attachments (all but the GC lock)."""
    if not cache_dir.is_dir():
        return []
    found = (str(p.relative_to(cache_dir)) for p in cache_dir.rglob("*") if p.is_file())
    return sorted(name for name in found if name != GC_LOCK_FILE)
