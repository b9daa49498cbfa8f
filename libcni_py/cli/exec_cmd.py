"""``cnitool exec NETWORK -- COMMAND [ARGS...]``: run a command attached to a
network, in a namespace that exists only for it.

Steps: create a network namespace with a unique name (``cnitool-exec-...``),
ADD it to NETWORK, run COMMAND inside with our stdin, stdout and stderr,
then DEL and delete the namespace.  The teardown runs whatever happened
before it: the command failing, Ctrl-C (or SIGTERM/SIGHUP) during the ADD or
while the command runs, a failed ADD.  After a failed or interrupted ADD the
DEL still runs if the attachment's cache record exists -- libcni_py writes
it before the first plugin runs, so whatever a plugin set up half-way is
undone -- and is skipped when nothing was started (the network's plugins
could not be found, say).

While the command runs, Ctrl-C at the terminal reaches it directly (it is
in our process group); SIGINT, SIGTERM, SIGHUP or SIGQUIT sent to cnitool
alone are relayed to it.  During the teardown those signals are held until
it is done, so a second Ctrl-C cannot leave the network half removed (each
plugin call still has its --timeout).

Exit status: the command's (128+N if a signal N killed it).  If the
teardown fails, its error is printed; the exit status is then the
teardown's if the command had succeeded, else still the command's.  A
failed ADD exits as ``cnitool add`` would: 128+N if signal N interrupted it
(130 for SIGINT, 143 for SIGTERM).
"""

from __future__ import annotations

import os

from ._argv import Command, UsageError
from .ops import ATTACH_OPTIONS, runtime_conf

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..api import CNI
    from ..core.inputs import RuntimeConf
    from ..core.netconf import NetworkConfigList
    from ..errors import CNIError
    from .main import Context

__all__ = ["run", "spec"]

SPEC = Command(
    "exec",
    ("NETWORK", "--", "COMMAND", "[ARGS...]"),
    "Run COMMAND in a new network namespace attached to NETWORK; remove both afterwards.",
    ATTACH_OPTIONS,
    description="A throw-away namespace is created, ADDed to NETWORK, COMMAND runs inside it with this\n"
    "terminal's stdin/stdout/stderr, then the attachment is DELeted and the namespace removed --\n"
    "also after Ctrl-C, a failing command or a failed ADD.  The exit status is COMMAND's.\n"
    "The container ID defaults to the one Go's cnitool derives from the namespace path.",
)

_HELD = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT")


def spec(command: str) -> Command:
    """The declaration of ``exec``."""
    return SPEC


def _teardown(cni: CNI, netlist: NetworkConfigList, rt: RuntimeConf, created: bool) -> list[CNIError]:
    """DEL the attachment if anything was started, then delete the namespace
    if this run created it, with the interrupting signals held meanwhile;
    returns the errors (both steps are always tried)."""
    import signal

    from .. import netns
    from ..errors import CacheError, CNIError

    errors: list[CNIError] = []
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.Signals[n] for n in _HELD})
    try:
        try:
            try:
                started = cni.cached_record(netlist, rt) is not None
            except CacheError:
                started = True  # a damaged record: DEL copes with it, and must run
            if started:
                cni.delete(netlist, rt)
        except CNIError as exc:
            errors.append(exc)
        try:
            if created:
                netns.delete(rt.netns)
        except CNIError as exc:
            errors.append(exc)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
    return errors


def run(ctx: Context, command: str, values: dict[str, object], positionals: list[str]) -> int:
    """Run ``cnitool exec``."""
    from .. import netns
    from ..core.netconf import load_network
    from ..errors import NetnsError

    after_dashes = values.get("--")
    argv = [str(a) for a in after_dashes] if isinstance(after_dashes, list) else []
    if not positionals:
        raise UsageError("expected NETWORK -- COMMAND [ARGS...]")
    if not argv:
        argv, positionals = positionals[1:], positionals[:1]
    elif len(positionals) > 1:
        raise UsageError(f"expected only NETWORK before --, got {' '.join(positionals)}")
    if not argv:
        raise UsageError("no COMMAND given")

    # Everything that can be checked is checked before anything is created.
    # A command that cannot be run exits as a shell's would: 127 not found,
    # 126 found but not executable.
    try:
        netns.find_command(argv[0], ctx.env)
    except NetnsError as exc:
        from .main import PROG, err

        err(f"{PROG}: error: {exc.one_line()}")
        return 126 if "/" in argv[0] and os.path.exists(argv[0]) else 127
    netlist = load_network(ctx.conf_dir, positionals[0])
    name = f"cnitool-exec-{os.getpid()}-{os.urandom(3).hex()}"
    rt = runtime_conf(ctx, values, netns.path_for(name), must_exist=False)
    cni = ctx.cni()

    status: int | None = None
    created = False
    problems: list[CNIError] = []
    # SIGTERM and SIGHUP interrupt the work as Ctrl-C does (cli/main.py), so
    # that the teardown runs instead of the process dying where it stands.
    try:
        netns.create(name)
        created = True
        cni.add(netlist, rt)
        status = netns.run_command(rt.netns, argv, env=ctx.env, forward_signals=True)
    finally:
        # nothing to tear down when the namespace was not made: the ADD runs
        # only in it (a DEL then would only add notes before the real error)
        problems = _teardown(cni, netlist, rt, created) if created else []
        if status is None:  # an error is on its way out; these are notes to it
            for problem in problems:
                ctx.notice(f"teardown: {problem.one_line()}")
    if status < 0:
        status = 128 - status  # killed by a signal, as a shell reports it
    if problems:
        for problem in problems[1:] if status == 0 else problems:
            ctx.notice(f"teardown: {problem.one_line()}")
        if status == 0:
            raise problems[0]
    return status
