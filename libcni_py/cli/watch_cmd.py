"""``cnitool watch``: report every CNI plugin call any process of the node
makes, and what each changed (see :mod:`libcni_py.tools.trace.watch`).

Runs until SIGINT/SIGTERM, ``--duration S`` or ``--count N`` finished
operations; prints a timeline; ``--json FILE`` writes the ``--trace-json``
schema with the watch's extension (``cnitool trace html FILE OUT`` draws it).
Needs root.
"""

from __future__ import annotations

import os
import sys

from ._argv import Command, Opt, UsageError, bounded_int, bounded_seconds

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .main import Context

__all__ = ["run", "spec"]

SPEC = Command(
    "watch",
    (),
    "Watch the node: every CNI plugin call any runtime makes, and what each call changed (root).",
    options=(
        Opt(
            "--netns",
            dest="netns",
            metavar="PATH",
            help="the node's network namespace: its calls only (default: this one, all calls)",
        ),
        Opt(
            "--plugin-data-dir",
            dest="plugin_data_dir",
            metavar="DIR",
            repeat=True,
            help="another plugin data dir to watch (the cache dir is watched: --cache-dir)",
        ),
        Opt("--duration", dest="duration", metavar="S", help="stop after S seconds"),
        Opt("--count", dest="count", metavar="N", help="stop after N finished operations"),
        Opt(
            "--json",
            dest="json",
            metavar="FILE",
            help="also write the calls as --trace-json (+ watch fields)",
        ),
        Opt("--linger", dest="linger", metavar="S", help="quiet seconds that end an operation (default 1)"),
    ),
    description="  Calls are grouped into operations (one runtime process, CNI_COMMAND, container ID and ifname).\n"
    "  A plugin's stdin is a pipe it cannot read: the network is named from the runtime's record\n"
    "  (results/<network>-<id>-<ifname>) or guessed from --conf-dir, and the report says why.",
)


#: The longest --duration: a week (run without it to watch until stopped).
MAX_WATCH_SECONDS = 7 * 86400.0


def spec(command: str) -> Command:
    """The declaration of ``watch``."""
    return SPEC


def run(ctx: Context, command: str, values: dict[str, object], positionals: list[str]) -> int:
    """Run ``cnitool watch``."""
    from ..errors import ArgsError

    if positionals:
        raise UsageError(f"watch takes no arguments, got {' '.join(positionals)}")
    duration = bounded_seconds(values.get("duration") or 0, option="--duration", high=MAX_WATCH_SECONDS)
    count = bounded_int(values.get("count") or 0, option="--count", low=0, high=10**9)
    linger = 1.0 if values.get("linger") is None else bounded_seconds(values["linger"], option="--linger", high=3600)
    if os.geteuid() != 0:
        from ..tools.trace.watch import NEEDS_ROOT

        raise ArgsError(NEEDS_ROOT)
    netns = str(values.get("netns") or "")
    if netns and not os.path.exists(netns):
        raise ArgsError(f"--netns {netns}: no such file", hint="give a network namespace path (/proc/PID/ns/net)")
    roots = {"cache": ctx.cache_dir}
    extra = values.get("plugin_data_dir") or []
    for index, directory in enumerate(extra if isinstance(extra, list) else [extra]):
        roots[f"plugin-data-{index}" if index else "plugin-data"] = str(directory)
    for label, directory in roots.items():
        if not os.path.isdir(directory):
            raise ArgsError(f"{directory}: not a directory ({label} dir to watch)", hint="create it or give another")
    sink = None
    path = str(values.get("json") or "")
    if path:
        try:
            sink = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise ArgsError(f"--json {path}: cannot write: {exc.strerror}") from None
    from ..tools.trace.watch import Watcher, install_signals

    def emit(text: str) -> None:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    try:
        watcher = Watcher(roots, netns=netns, conf_dir=ctx.conf_dir, emit=emit, sink=sink, linger=linger)
        install_signals(watcher)
        for reason in watcher.unprobed:
            sys.stderr.write(f"cnitool watch: cannot see {reason}\n")
        sys.stderr.write(f"cnitool watch: watching {', '.join(roots.values())} and netns {netns or 'this one'}\n")
        sys.stderr.flush()
        summary = watcher.run(duration=duration, count=count)
    finally:
        if sink is not None:
            sink.close()
    sys.stderr.write(
        f"cnitool watch: {summary['operations']} operations; {summary['ignoredChanges']} changes by unrelated "
        "processes ignored\n"
    )
    return 0
