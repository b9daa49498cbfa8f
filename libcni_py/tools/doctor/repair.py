"""``cnitool doctor --fix``: carry out the actions of the findings proven dead.

Nothing here decides what is dead (:mod:`.analyse` does, with GC's rules);
this only acts, and re-checks at the moment of acting:

* a dead attachment is deleted by GC itself (:meth:`libcni_py.CNI.gc`) with
  every other attachment of its network passed as valid, so GC judges it
  again with the same rules (namespace probed anew) and runs its DEL with
  the recorded configuration; only then are its host veth and stale
  namespace file removed;
* a leaked reservation is removed under host-local's own lock (``flock`` of
  the network folder's ``lock`` file), and only if it still names the same
  container;
* iptables rules and chains are deleted with ``iptables -w``.

Each action is reported; a failure stops that finding's remaining actions.
"""

from __future__ import annotations

import os
import shlex
import subprocess

from ...errors import CNIError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Collection, Iterable

    from ...api import CNI
    from ...core.netconf import NetworkConfigList
    from .facts import Facts, Finding

__all__ = ["repair"]


def _unlink_reservation(path: str, container_id: str) -> str:
    """Remove a host-local reservation under host-local's lock, if it still
    names ``container_id``.  Returns what was done."""
    import fcntl

    folder = os.path.dirname(path)
    lock = os.open(os.path.join(folder, "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)  # as host-local opens it
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            with open(path, "rb") as handle:
                holder = handle.read(4096).decode("utf-8", "replace").partition("\n")[0].strip()
        except FileNotFoundError:
            return f"reservation {path} was already gone"
        if holder != container_id:
            return f"kept {path}: it now holds container {holder}"
        os.unlink(path)
        return f"removed reservation {path} (container {container_id})"
    finally:
        os.close(lock)


def _gc(
    cni: CNI, conf_dir: str, facts: Facts, targets: list[tuple[str, str, str]], live_sandboxes: Collection[str] | None
) -> tuple[list[str], set[tuple[str, str, str]], list[str]]:
    """GC each network with every attachment but the targets as valid.
    Returns ``(lines, removed triples, errors)``."""
    from ...core.netconf import load_network
    from ...core.reports import GCReport
    from ...errors import MultiError

    lines: list[str] = []
    removed: set[tuple[str, str, str]] = set()
    errors: list[str] = []
    networks = sorted({net for net, _, _ in targets})
    for network in networks:
        dead = {(cid, ifname) for net, cid, ifname in targets if net == network}
        valid = [
            (f.record.container_id, f.record.ifname)
            for f in facts.records
            if f.record.network == network and (f.record.container_id, f.record.ifname) not in dead
        ]
        netlist: NetworkConfigList | str
        try:
            netlist = load_network(conf_dir, network)
        except CNIError:
            netlist = network  # its file is gone or broken: the recorded configuration
        try:
            report = cni.gc(netlist, valid, live_sandboxes=live_sandboxes)
        except MultiError as exc:
            report = exc.report if isinstance(exc.report, GCReport) else GCReport()
            errors.extend(e.one_line() for e in exc.errors)
        except CNIError as exc:
            errors.append(exc.one_line())
            continue
        for cid, ifname in report.removed:
            removed.add((network, cid, ifname))
            lines.append(f"deleted attachment {network}/{cid}/{ifname} (GC: DEL with its recorded configuration)")
        for cid, ifname, why in report.kept_reasons:
            if (cid, ifname) in dead:
                lines.append(f"kept {network}/{cid}/{ifname}: GC says {why}")
    return lines, removed, errors


def repair(
    findings: Iterable[Finding],
    facts: Facts,
    cni: CNI,
    conf_dir: str,
    *,
    live_sandboxes: Collection[str] | None = None,
) -> tuple[list[str], list[str]]:
    """Carry out the actions of the findings proven dead.

    Returns:
        ``(what was done, what failed)``, one line each.
    """
    from ... import netns

    dead = [f for f in findings if f.dead]
    targets = [(a[1], a[2], a[3]) for f in dead for a in f.actions if a[0] == "gc"]
    done: list[str] = []
    failed: list[str] = []
    removed: set[tuple[str, str, str]] = set()
    if targets:
        lines, removed, errors = _gc(cni, conf_dir, facts, targets, live_sandboxes)
        done += lines
        failed += errors
    for finding in dead:
        for action in finding.actions:
            verb = action[0]
            try:
                if verb == "gc":
                    if tuple(action[1:4]) not in removed:
                        break  # GC did not delete it: leave what hangs on it
                    continue
                if verb == "unlink":
                    done.append(_unlink_reservation(action[1], action[2]))
                elif verb == "netns-del":
                    if netns.state(action[1]) == "stale":
                        netns.delete(action[1])
                        done.append(f"removed stale namespace file {action[1]}")
                elif verb == "run":
                    proc = subprocess.run(list(action[1:]), capture_output=True, text=True, timeout=60, check=False)
                    if proc.returncode != 0:
                        failed.append(f"{shlex.join(action[1:])}: {proc.stderr.strip() or f'exit {proc.returncode}'}")
                        break
                    done.append("ran " + shlex.join(action[1:]))
            except (OSError, CNIError, subprocess.TimeoutExpired) as exc:
                failed.append(f"{finding.subject}: {verb}: {exc}")
                break
    return done, failed
