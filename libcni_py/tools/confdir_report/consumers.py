"""How each consumer of a conf dir picks its networks: containerd (go-cni),
CRI-O (ocicni), the kubelet's dockershim, and ``cnitool add NAME`` (pure)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from ...core import netconf as conf
from ...core.netconf import NetworkConfigList, PluginConf
from ...errors import ConfigError
from .model import Consumer, FileVerdict, Listing


def containerd_choice(listing: Listing, verdicts: Sequence[FileVerdict], max_conf_num: int) -> Consumer:
    rule = (
        f"go-cni: one sorted list of .conf/.conflist/.json, the first {max_conf_num} file(s); "
        "one of them that does not load fails the load"
        if max_conf_num > 0
        else "go-cni: one sorted list of .conf/.conflist/.json, every file; one that does not load fails the load"
    )
    if not listing.files:
        return Consumer(name="containerd", rule=rule, error=f"no network config found in {listing.conf_dir}")
    networks: list[tuple[str, str, str]] = []
    notes: list[str] = []
    for entry, verdict in zip(listing.files, verdicts, strict=True):
        if not verdict.loads or entry.conflist is None:
            return Consumer(
                name="containerd",
                rule=rule,
                error=f"the load fails on {entry.name}: {verdict.problems[0]} (no network at all: "
                "'cni plugin not initialized')",
            )
        networks.append((entry.conflist.name, entry.name, f"eth{len(networks)}"))
        if verdict.validates is False or entry.unusable is not None:
            notes.append(f"{entry.name} is taken although it cannot run: {verdict.problems[0]}; every pod ADD fails")
        if len(networks) == max_conf_num:
            break
    return Consumer(name="containerd", rule=rule, networks=tuple(networks), notes=tuple(notes))


def skipping_choice(
    name: str, rule: str, listing: Listing, verdicts: Sequence[FileVerdict], *, first_only: bool, default: str = ""
) -> Consumer:
    kept: list[tuple[str, str, str]] = []
    names: set[str] = set()
    notes: list[str] = []
    for entry, verdict in zip(listing.files, verdicts, strict=True):
        if not verdict.loads or entry.conflist is None:
            notes.append(f"skips {entry.name}: {verdict.problems[0]}")
            continue
        if verdict.validates is False:
            notes.append(f"skips {entry.name}: {verdict.problems[0]}")
            continue
        net = entry.conflist.name
        if net in names:
            first = next(k[1] for k in kept if k[0] == net)
            notes.append(f"ignores {entry.name}: network {net!r} already comes from {first}")
            continue
        if verdict.validates is None:
            notes.append(f"{entry.name}: plugin versions not probed; assumed to validate")
        names.add(net)
        kept.append((net, entry.name, ""))
        if entry.unusable is not None:
            notes.append(f"{entry.name} is taken although it cannot run: {verdict.problems[0]}; every pod ADD fails")
        if first_only:
            break
    if not kept:
        return Consumer(
            name=name, rule=rule, error="no valid network: 'network plugin is not ready'", notes=tuple(notes)
        )
    if default:
        chosen = [k for k in kept if k[0] == default]
        if not chosen:
            return Consumer(
                name=name,
                rule=rule,
                error=f"the configured default network {default!r} is not among the valid networks "
                f"({', '.join(k[0] for k in kept)}): pods cannot start",
                notes=tuple(notes),
            )
        taken = chosen[0]
    else:
        taken = kept[0]
    return Consumer(name=name, rule=rule, networks=((taken[0], taken[1], "eth0"),), notes=tuple(notes))


def cnitool_by_name(listing: Listing) -> list[tuple[str, str, str, tuple[str, ...]]]:
    conflists: list[tuple[str, NetworkConfigList | ConfigError]] = []
    singles: list[tuple[str, PluginConf | ConfigError]] = []
    defined: dict[str, list[str]] = {}
    for entry in listing.files:
        if entry.is_conflist:
            loaded: Any = entry.conflist if entry.conflist is not None else entry.load_error
            conflists.append((entry.path, loaded))
        else:
            loaded = entry.single if entry.single is not None else entry.load_error
            singles.append((entry.path, loaded))
        if entry.conflist is not None:
            defined.setdefault(entry.conflist.name, []).append(entry.name)
    out: list[tuple[str, str, str, tuple[str, ...]]] = []
    for name in sorted(defined):
        try:
            found = conf.find_by_name(name, conflists, singles, conf_dir=listing.conf_dir)
        except ConfigError as exc:
            out.append((name, "", exc.one_line(), ()))
            continue
        file = os.path.basename(found.path)
        out.append((name, file, "", tuple(f for f in defined[name] if f != file)))
    return out
