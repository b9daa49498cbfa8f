"""``cnitool doctor``: what is wrong on this node, which program made it, and the fix.

Reads the node (:mod:`libcni_py.tools.doctor.gather`), judges it
(:mod:`libcni_py.tools.doctor.analyse`) and prints each problem with its
cause, its maker and its fix.  Read-only unless ``--fix``: then the
problems proven dead (by GC's rules) are repaired
(:mod:`libcni_py.tools.doctor.repair`), the node is read again (a DEL may
leave what only then shows as dead: flannel's DEL pitfall, a masquerade
chain of a namespace that was gone) and repaired once more, and what was
done is printed.  Exit status 0 when nothing is wrong (after ``--fix``:
nothing is left), 7 when problems remain, 1 when a repair failed.
"""

from __future__ import annotations

import sys

from ._argv import Command, Opt, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..tools.doctor.facts import Facts, Finding
    from .main import Context

__all__ = ["EXIT_PROBLEMS", "run", "spec"]

#: Exit status when the doctor finds problems (README's table).
EXIT_PROBLEMS = 7

SPEC = Command(
    "doctor",
    (),
    "what is wrong on this node (records, reservations, veths, iptables, conf files, flannel), and the fix",
    (
        Opt("--json", dest="json", help="print the findings as JSON"),
        Opt("--fix", dest="fix", help="remove what is proven dead (GC's rules), and say what was done"),
        Opt(
            "--cri-socket",
            dest="cri_socket",
            metavar="PATH",
            help="ask this CRI runtime (containerd, CRI-O) which sandboxes are alive",
        ),
        Opt(
            "--plugin-dir",
            dest="plugin_path",
            metavar="DIRS",
            env="CNI_PATH",
            help="plugin directories, ':'-separated (as --plugin-path)",
        ),
        Opt(
            "--ipam-dir",
            dest="ipam_dir",
            metavar="DIR",
            repeat=True,
            help="a host-local data dir (default /var/lib/cni/networks and each ipam.dataDir of the conf dir)",
        ),
        Opt(
            "--subnet-env",
            dest="subnet_env",
            metavar="FILE",
            help="Flannel's subnet.env (default: each flannel conf's subnetFile, else /run/flannel/subnet.env)",
        ),
        Opt("--no-probe", dest="no_probe", help="do not ask plugins VERSION"),
        Opt(
            "--grace",
            dest="grace",
            metavar="SECONDS",
            help="how old a reservation without a record must be to count as leaked (default 60)",
        ),
    ),
    description="Looks at the conf dir, plugin dirs, cache dir (every runtime's records), host-local's\n"
    "reservations, namespaces, veths on CNI bridges, CNI's iptables chains and Flannel's subnet.env.\n"
    "Exit status: 0 nothing wrong, 7 problems found (left, after --fix), 1 a repair failed.\n"
    "See docs/troubleshooting.md.",
)


def spec(command: str) -> Command:
    """The declaration of ``doctor``."""
    return SPEC


def _gather(ctx: Context, values: dict[str, object], sandboxes: frozenset[str] | None, grace: float) -> Facts:
    from ..tools.doctor.gather import gather

    version_info = None
    if not values.get("no_probe"):
        from .ls import PROBE_TIMEOUT

        cni = ctx.cni(tracer=None)
        cni.timeout = PROBE_TIMEOUT if cni.timeout is None else min(cni.timeout, PROBE_TIMEOUT)
        version_info = cni.version_info
    ipam_dirs = values.get("ipam_dir") or []
    assert isinstance(ipam_dirs, list)
    return gather(
        conf_dir=ctx.conf_dir,
        plugin_path=ctx.plugin_path,
        cache_dir=ctx.cache_dir,
        ipam_dirs=[str(d) for d in ipam_dirs],
        subnet_env=str(values.get("subnet_env") or ""),
        version_info=version_info,
        live_sandboxes=sandboxes,
        grace=grace,
    )


def run(ctx: Context, command: str, values: dict[str, object], positionals: list[str]) -> int:
    """Run ``cnitool doctor``."""
    from ..tools.doctor.analyse import analyse
    from ._argv import bounded_seconds
    from .ops import cri_sandboxes

    if positionals:
        raise UsageError(f"doctor takes no arguments, got {' '.join(positionals)}")
    grace = 60.0 if values.get("grace") is None else bounded_seconds(values["grace"], option="--grace", high=86400)
    sandboxes = cri_sandboxes(values)
    facts = _gather(ctx, values, sandboxes, grace)
    if not facts.namespaces_read:
        ctx.notice(
            "not every live network namespace could be read (doctor needs root, and the host's PID "
            "namespace to see every process's): nothing without a record is taken as dead"
        )
    findings = analyse(facts)
    done: list[str] = []
    failed: list[str] = []
    if values.get("fix") and any(f.dead for f in findings):
        from ..tools.doctor.repair import repair

        cni = ctx.cni()
        first_look = facts.conf_problems  # the conf findings need the VERSION probes: keep those of the first look
        for _ in range(2):  # a DEL may leave what only then shows as dead
            lines, errors = repair(findings, facts, cni, ctx.conf_dir, live_sandboxes=sandboxes)
            done += lines
            failed += errors
            facts = _gather(ctx, {**values, "no_probe": True}, sandboxes, grace).replace(conf_problems=first_look)
            findings = analyse(facts)
            if errors or not any(f.dead for f in findings):
                break
    if values.get("json"):
        from ._out import print_json

        print_json(
            {
                "confDir": ctx.conf_dir,
                "cacheDir": ctx.cache_dir,
                "findings": [f.to_json() for f in findings],
                "fixed": done,
                "fixFailed": failed,
            }
        )
    else:
        sys.stdout.write(render(findings, done, failed, fixing=bool(values.get("fix"))))
        sys.stdout.flush()
    if failed:
        return 1
    return EXIT_PROBLEMS if findings else 0


def render(findings: list[Finding], done: list[str], failed: list[str], *, fixing: bool) -> str:
    """The findings for a person."""
    lines: list[str] = []
    if fixing:
        lines.append(f"fixed: {len(done) or 'nothing'}")
        lines += [f"  {line}" for line in done]
        if failed:
            lines.append(f"failed: {len(failed)}")
            lines += [f"  {line}" for line in failed]
        lines.append("")
    dead = sum(1 for f in findings if f.dead)
    head = f"{len(findings)} problem(s)" if findings else "no problems found"
    if dead and not fixing:
        head += f", {dead} proven dead ('cnitool doctor --fix' removes those)"
    elif findings and fixing:
        head += " left"
    lines.append(head)
    for finding in findings:
        lines.append("")
        lines.append(f"[{finding.kind}] {finding.subject}")
        lines.append(f"  cause:   {finding.cause}")
        if finding.made_by:
            lines.append(f"  made by: {finding.made_by}")
        lines.append(f"  fix:     {finding.fix}" + ("   (proven dead: --fix does it)" if finding.dead else ""))
    return "\n".join(lines) + "\n"
