"""``cnitool ls``: the conf dir as each of its consumers sees it.

The analysis is :mod:`libcni_py.tools.confdir_report`; this module reads the
options, runs the probes and prints.  VERSION probes run by default, each
distinct plugin binary once (a few at a time, at most
:data:`PROBE_TIMEOUT` seconds each); ``--no-probe`` skips them (the plugins
are still looked up, which costs a ``stat`` per directory).
"""

from __future__ import annotations

import sys

from ._argv import Command, Opt, UsageError, bounded_int

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..tools.confdir_report import Report
    from .main import Context

__all__ = ["run", "spec"]

#: Seconds a VERSION probe may take (a plugin that hangs should not hang ls).
PROBE_TIMEOUT = 10.0

#: The largest ``--max-conf-num`` (and ``pod --max-networks``): far more
#: networks than a pod has interfaces to give them (0 means all).
MAX_CONF_NUM = 1000

SPEC = Command(
    "ls",
    (),
    "List the conf dir: each file's network, version, plugins and verdict, and which network each consumer takes.",
    (
        Opt("--json", dest="json", help="print the report as JSON"),
        Opt("--no-probe", dest="no_probe", help="do not ask plugins VERSION (versions then show as unverified)"),
        Opt(
            "--max-conf-num",
            dest="max_conf_num",
            metavar="N",
            help="how many files containerd loads (its max_conf_num; default 1, 0: all)",
        ),
        Opt(
            "--crio-default-network",
            dest="crio_default",
            metavar="NAME",
            help="CRI-O's configured default network (default: the first valid file)",
        ),
    ),
    description="Consumers: containerd (go-cni), CRI-O (ocicni), kubelet (dockershim) and 'cnitool add NAME'\n"
    "(Go's look-up by name).  See docs/tracing.md.",
)


def spec(command: str) -> Command:
    """The declaration of ``ls``."""
    return SPEC


def run(ctx: Context, command: str, values: dict[str, object], positionals: list[str]) -> int:
    """Run ``cnitool ls``."""
    from ..tools import confdir_report
    from ._out import print_json

    if positionals:
        raise UsageError(f"ls takes no arguments (use --conf-dir DIR), got {' '.join(positionals)}")
    max_conf_num = 1
    if "max_conf_num" in values:
        max_conf_num = bounded_int(values["max_conf_num"], option="--max-conf-num", low=0, high=MAX_CONF_NUM)
    version_info = None
    if not values.get("no_probe"):
        cni = ctx.cni(tracer=None)
        cni.timeout = PROBE_TIMEOUT if cni.timeout is None else min(cni.timeout, PROBE_TIMEOUT)
        version_info = cni.version_info
    report = confdir_report.build_report(
        ctx.conf_dir,
        ctx.plugin_path,
        version_info,
        max_conf_num=max_conf_num,
        crio_default=str(values.get("crio_default") or ""),
    )
    if values.get("json"):
        print_json(report.to_json())
    else:
        sys.stdout.write(render(report, ctx.plugin_path, probed=not values.get("no_probe")))
    sys.stdout.flush()
    return 0


def _table(rows: list[list[str]], indent: str = "") -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return [
        (indent + "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])) + "  " + row[-1]).rstrip()
        for row in rows
    ]


def render(report: Report, plugin_path: list[str], *, probed: bool) -> str:
    """The report for a person."""
    from ..tools.confdir_report import LABELS, delegates

    listing = report.listing
    status_of = {p.type: p for p in report.plugins}
    lines = [f"conf dir {listing.conf_dir}   plugin path {':'.join(plugin_path) or '(none)'}", ""]
    if not listing.exists:
        lines.append("(the conf dir does not exist)")
    elif not listing.files:
        lines.append("(no .conf, .conflist or .json files)")
    else:
        rows = [["FILE", "NETWORK", "VERSION", "PLUGINS", "VERDICT"]]
        details: dict[int, list[str]] = {}
        for index, (entry, verdict) in enumerate(zip(listing.files, report.verdicts, strict=True)):
            netlist = entry.conflist
            chain = []
            for plugin in netlist.plugins if netlist is not None else ():
                text = plugin.type
                if status_of.get(plugin.type) is not None and not status_of[plugin.type].path:
                    text += "(MISSING)"
                subs = delegates(plugin)
                if subs:
                    text += "[" + ",".join(subs) + "]"
                chain.append(text)
            rows.append(
                [
                    entry.name,
                    netlist.name if netlist is not None else "-",
                    (netlist.cni_version or "(none)") if netlist is not None else "-",
                    ", ".join(chain) or "-",
                    verdict.status,
                ]
            )
            details[index + 1] = list(verdict.problems)
            folder = entry.folder_plugins()
            if folder:
                details[index + 1].append(f"plugins appended from its folder: {', '.join(folder)}")
        table = _table(rows)
        lines.append(table[0])
        for index, line in enumerate(table[1:], start=1):
            lines.append(line)
            lines.extend(f"    {text}" for text in details.get(index, ()))
    if report.ignored:
        lines += ["", "ignored:"]
        lines += _table([[item.name, item.reason] for item in report.ignored], "  ")
    lines += ["", "which network each consumer takes:"]
    for consumer in report.consumers:
        label = LABELS.get(consumer.name, consumer.name)
        if consumer.error:
            taken = f"NOTHING: {consumer.error}"
        else:
            taken = ", ".join(
                f"{net!r} from {file}" + (f" ({ifname})" if ifname else "") for net, file, ifname in consumer.networks
            )
        lines.append(f"  {label:<11} {taken}")
        lines.append(f"  {'':<11} ({consumer.rule})")
        lines.extend(f"  {'':<11} {note}" for note in consumer.notes)
    if report.by_name:
        lines.append(
            "  cnitool add NAME (by name; .conflist files first; the search stops at a .conflist it cannot parse):"
        )
        rows = []
        verdict_word = {e.name: v.status for e, v in zip(listing.files, report.verdicts, strict=True)}
        for name, file, error, shadowed in report.by_name:
            what = f"fails: {error}" if error else file
            if file and verdict_word.get(file) == "invalid":
                what += " (invalid: see above)"
            if shadowed:
                what += f"   (also defined in {', '.join(shadowed)}: never used by add)"
            rows.append([f"{name}", what])
        lines += _table(rows, "    ")
    if report.plugins:
        lines += ["", "plugins:" + ("" if probed else " (not probed: --no-probe)")]
        rows = []
        for status in report.plugins:
            if not status.path:
                where = status.missing or f"MISSING (searched {':'.join(status.searched) or 'nothing'})"
                rows.append([status.type, where, ""])
                continue
            if status.info is not None:
                versions = "supports " + " ".join(status.info.supported_versions)
            elif status.probe_error:
                versions = f"VERSION failed: {status.probe_error}"
            else:
                versions = "versions not probed"
            rows.append([status.type, status.path, versions])
        lines += _table(rows, "  ")
    lines += ["", f"problems: {len(report.problems) or 'none'}"]
    lines += [f"  - {text}" for text in report.problems]
    if report.notes:
        lines += ["", "notes:"]
        lines += [f"  - {text}" for text in report.notes]
    return "\n".join(lines) + "\n"
