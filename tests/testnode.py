"""The root tests' node namespace, and the rule for removing what a run left.

Each pytest process that runs as root moves into a network namespace of its
own, ``lcpy-node-<pid>-<run>`` (``<run>`` is :data:`networks.RUN_ID`, a
random token: a pid alone is shared by other PID namespaces and by later
runs).  Bridges, veths, routes and iptables rules of the tests live there
and go with it.  Pod namespaces (``/var/run/netns``) are made by the
fixtures with names that carry the same token.

**Ownership.**  A run removes only what it can prove it made and whose maker
is gone:

* at the end of the session, its own node (by its exact name);
* at the start, namespaces listed in an *ownership record* of an earlier run
  of this checkout (``.pytest_cache/lcpy-nodes/<node>.json``: the node, the
  pod namespaces made through ``make_netns``, and the owner's pid, the
  pid's start time, its PID namespace and the boot id), when that owner is
  provably dead: the machine has rebooted since, or -- in the same PID
  namespace -- the pid is gone or now belongs to a process that started at
  another time.  An owner in another PID namespace cannot be checked from
  here: its record and namespaces are kept, and the run says why.

A namespace no record of this checkout names -- another checkout's node,
another user's, a hand-made ``lcpy-node-1234`` -- is never touched, however
its name looks and whether or not a process of that pid runs.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

import networks

from libcni_py.runtime.sandbox import process_start_time

NETNS_DIR = Path("/var/run/netns")
REPO = Path(__file__).resolve().parent.parent
#: Where this checkout's runs keep their ownership records.
RECORDS = REPO / ".pytest_cache" / "lcpy-nodes"


def _boot_id() -> str:
    return Path("/proc/sys/kernel/random/boot_id").read_text().strip()


def _pid_namespace() -> str:
    return os.readlink("/proc/self/ns/pid")


@dataclass
class Ownership:
    """What one run made under ``/var/run/netns``, and who it was."""

    node: str
    pid: int
    start: int
    pid_namespace: str
    boot_id: str
    pods: list[str] = field(default_factory=list)

    @classmethod
    def of_this_process(cls, node: str) -> Ownership:
        start = process_start_time(os.getpid())
        assert start is not None
        return cls(node=node, pid=os.getpid(), start=start, pid_namespace=_pid_namespace(), boot_id=_boot_id())

    def save(self, records: Path = RECORDS) -> None:
        """Write the record (atomically: a reader never sees half of it)."""
        records.mkdir(parents=True, exist_ok=True)
        path = records / f"{self.node}.json"
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(asdict(self)))
        os.replace(tmp, path)

    def names(self) -> list[str]:
        return [*self.pods, self.node]


def node_name() -> str:
    """This process's node namespace name."""
    return f"lcpy-node-{os.getpid()}-{networks.RUN_ID}"


def why_not_dead(owner: Ownership) -> str | None:
    """None if ``owner`` is provably dead; else why it may still run."""
    if owner.boot_id != _boot_id():
        return None  # every process of an earlier boot is gone
    if owner.pid_namespace != _pid_namespace():
        return (
            f"its owner, pid {owner.pid} of {owner.pid_namespace}, is in another PID namespace: cannot tell if it runs"
        )
    if process_start_time(owner.pid) == owner.start:
        return f"its owner, pid {owner.pid}, still runs"
    return None


def remove_stale(records: Path = RECORDS) -> list[str]:
    """Remove the namespaces recorded by earlier runs of this checkout whose
    owner is provably dead (see the module docstring), and their records.

    Returns:
        One line per record kept or namespace removed, for the session
        header; nothing else under ``/var/run/netns`` is looked at.
    """
    said: list[str] = []
    if not records.is_dir():
        return said
    for path in sorted(records.glob("*.json")):
        try:
            owner = Ownership(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError) as exc:
            said.append(f"kept {path}: not a record this suite can read ({exc})")
            continue
        reason = why_not_dead(owner)
        if reason is not None:
            if owner.pid != os.getpid():
                said.append(f"kept {', '.join(owner.names())}: {reason}")
            continue
        for name in owner.names():
            if (NETNS_DIR / name).exists():
                subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)
                said.append(f"removed {name}: made by an earlier run (pid {owner.pid}) that is gone")
        path.unlink(missing_ok=True)
    return said


class Node:
    """This run's node namespace and its ownership record."""

    def __init__(self, records: Path = RECORDS) -> None:
        self.name = node_name()
        self.records = records
        self.owner = Ownership.of_this_process(self.name)

    def create(self) -> None:
        """Record, then make the namespace: a crash in between leaves a
        record of a namespace that does not exist, never the reverse."""
        self.owner.save(self.records)
        subprocess.run(["ip", "netns", "add", self.name], check=True)

    def made_pod(self, name: str) -> None:
        """Record a pod namespace this run made (before it is made)."""
        self.owner.pods.append(name)
        self.owner.save(self.records)

    def removed_pod(self, name: str) -> None:
        if name in self.owner.pods:
            self.owner.pods.remove(name)
            self.owner.save(self.records)

    def delete(self) -> None:
        """Delete the node; the record goes only once nothing of it is left."""
        subprocess.run(["ip", "netns", "del", self.name], check=False, capture_output=True)
        if not any((NETNS_DIR / name).exists() for name in self.owner.names()):
            (self.records / f"{self.name}.json").unlink(missing_ok=True)
