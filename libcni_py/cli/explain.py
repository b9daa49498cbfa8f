"""``cnitool explain``: what each plugin of an operation would be given.

A dry run (:mod:`libcni_py.drivers.dryrun`): the real plan runs with a driver that
performs nothing, so the stdin and environment shown are exactly those a
real ``add``/``check``/``del``/``gc``/``status`` would hand each plugin.
"""

from __future__ import annotations

import sys

from ._argv import Command, Opt, UsageError
from .ops import _ATTACH, runtime_conf, with_recorded_args

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..core.inputs import RuntimeConf
    from ..core.netconf import NetworkConfigList
    from ..core.record import ContainerIfname
    from ..drivers.dryrun import Step
    from .main import Context

__all__ = ["run", "spec"]

#: NETNS shown when none is given.
NETNS_PLACEHOLDER = "/var/run/netns/NETNS"

SPEC = Command(
    "explain",
    ("NETWORK", "[NETNS]"),
    "Dry run: for each plugin in execution order, the exact stdin and environment it would get.",
    (
        Opt(
            "--command",
            dest="command",
            metavar="CMD",
            help="ADD (default), CHECK, DEL, GC or STATUS",
        ),
        *_ATTACH,
        Opt(
            "--valid",
            dest="valid",
            metavar="CONTAINERID/IFNAME",
            repeat=True,
            help="for GC: an attachment still in use",
        ),
        Opt("--full-env", dest="full_env", help="show the inherited environment too, not only what libcni sets"),
        Opt("--json", dest="json", help="print the steps as JSON"),
    ),
    description="Nothing runs and nothing is written.  prevResult is shown as a placeholder saying where it\n"
    f"would come from (the previous plugin, or the cache).  Without NETNS, {NETNS_PLACEHOLDER} is shown.",
)


def spec(command: str) -> Command:
    """The declaration of ``explain``."""
    return SPEC


def run(ctx: Context, command: str, values: dict[str, object], positionals: list[str]) -> int:
    """Run ``cnitool explain``."""
    from ..core import names
    from ..core.netconf import load_network
    from ..drivers import dryrun as explain
    from ._out import print_json

    if len(positionals) not in (1, 2):
        raise UsageError(f"expected NETWORK [NETNS], got {' '.join(positionals) or 'nothing'}")
    operation = str(values.get("command") or "ADD").upper()
    if operation not in explain.COMMANDS:
        raise UsageError(f"--command: {values['command']!r} is not one of {', '.join(explain.COMMANDS)}")
    valid: list[ContainerIfname] = []
    for item in values.get("valid") or []:  # type: ignore[attr-defined]
        cid, sep, ifname = str(item).partition("/")
        if not sep:
            raise UsageError(f"--valid {item!r}: expected CONTAINERID/IFNAME")
        names.check_container_id(cid, where="--valid")
        names.check_ifname(ifname, where="--valid")
        valid.append((cid, ifname))
    netlist = load_network(ctx.conf_dir, positionals[0])
    netns_given = len(positionals) == 2
    rt = runtime_conf(ctx, values, positionals[1] if netns_given else NETNS_PLACEHOLDER, must_exist=False)
    cni = ctx.cni()
    if netns_given and operation in ("CHECK", "DEL"):
        # as `cnitool check/del` would: the recorded arguments when none are given
        rt = with_recorded_args(ctx, cni, netlist.name, rt, values, announce=False)  # the steps show them
    steps = explain.explain(netlist, operation, rt, cni.options(), cni.store, valid_attachments=valid)
    full_env = bool(values.get("full_env"))
    if values.get("json"):
        doc = _json(netlist, operation, rt, steps, full_env=full_env, valid=valid)
        print_json(doc)
    else:
        sys.stdout.write(_text(netlist, operation, rt, steps, full_env=full_env, netns_given=netns_given))
    sys.stdout.flush()
    return 0


def _set_by_libcni(env: dict[str, str]) -> list[str]:
    from ..core.plugin_input import ENV_VARIABLES

    return [k for k in ENV_VARIABLES if k in env]


def _text(
    netlist: NetworkConfigList, operation: str, rt: RuntimeConf, steps: list[Step], *, full_env: bool, netns_given: bool
) -> str:
    lines = [
        f"explain {operation} of network {netlist.name!r} ({netlist.path or 'in memory'}, "
        f"cniVersion {netlist.cni_version or '(none)'}): nothing runs, nothing is written"
    ]
    if operation in ("ADD", "CHECK", "DEL"):
        lines.append(f"  container {rt.container_id}   netns {rt.netns}   ifname {rt.ifname}")
        if not netns_given:
            lines.append(f"  (no NETNS given: {NETNS_PLACEHOLDER} stands for it)")
    if not steps:
        lines.append("  no step: nothing to do at this version (or disabled in the configuration)")
    for number, step in enumerate(steps, start=1):
        if step.kind == "exec":
            lines.append("")
        lines.append(f"{number}. {step.text}")
        if step.kind != "exec" or step.request is None:
            continue
        req = step.request
        env = dict(req.env)
        lines.append(f"     binary   {step.missing or req.path}")
        own = _set_by_libcni(env)
        lines.append("     env      " + " ".join(f"{k}={env[k]}" for k in own))
        others = sorted(k for k in env if k not in own)
        if full_env:
            lines += [f"              {k}={env[k]}" for k in others]
        else:
            lines.append(
                f"              + {len(others)} variables of cnitool's own environment (--full-env shows them)"
            )
        if step.passed or step.dropped:
            got = ", ".join(sorted(step.passed)) or "none"
            not_got = ", ".join(step.dropped) or "none"
            reason = (
                "not declared in its capabilities"
                if req.command in ("ADD", "CHECK", "DEL")
                else f"{req.command} gets no runtimeConfig"
            )
            lines.append(f"     capability args: gets {got}; not passed ({reason}): {not_got}")
        if step.prev_result:
            lines.append(f"     prevResult: {step.prev_result}")
            lines.append("     stdin (with a placeholder where prevResult goes):")
        else:
            lines.append(f"     stdin ({len(req.stdin)} bytes):")
        lines += ["       " + line for line in step.stdin_pretty().split("\n")]
    return "\n".join(lines) + "\n"


def _json(
    netlist: NetworkConfigList,
    operation: str,
    rt: RuntimeConf,
    steps: list[Step],
    *,
    full_env: bool,
    valid: list[ContainerIfname],
) -> dict[str, Any]:
    out_steps: list[dict[str, Any]] = []
    for step in steps:
        item: dict[str, Any] = {"kind": step.kind, "text": step.text}
        if step.kind == "exec" and step.request is not None:
            req = step.request
            env = dict(req.env)
            own = _set_by_libcni(env)
            item.update(
                {
                    "plugin": {"type": req.plugin_type, "name": req.plugin_name or None, "index": req.index},
                    "binary": None if step.missing else req.path,
                    "missing": step.missing or None,
                    "command": req.command,
                    "env": env if full_env else {k: env[k] for k in own},
                    "inherited": sorted(k for k in env if k not in own),
                    "stdin": step.stdin_shown(),
                    "stdinBytes": None if step.prev_result else len(req.stdin),
                    "prevResult": step.prev_result or None,
                    "capabilityArgs": {"passed": step.passed, "dropped": list(step.dropped)},
                }
            )
        out_steps.append(item)
    return {
        "network": netlist.name,
        "file": netlist.path or None,
        "cniVersion": netlist.cni_version,
        "command": operation,
        "attachment": {
            "containerId": rt.container_id,
            "netns": rt.netns,
            "ifname": rt.ifname,
            "cniArgs": [list(pair) for pair in rt.args],
            "capabilityArgs": dict(rt.capability_args),
        },
        "validAttachments": [{"containerId": c, "ifname": i} for c, i in valid] if operation == "GC" else None,
        "steps": out_steps,
    }
