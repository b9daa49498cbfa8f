"""Judge each file of a conf dir and put the report together (pure)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from .chains import delegates
from .consumers import cnitool_by_name, containerd_choice, skipping_choice
from .model import LABELS, NOT_DEFAULT, Consumer, FileEntry, FileVerdict, Ignored, Listing, PluginStatus, Report

#: Files other programs keep in a conf dir, by name, and whose they are: no
#: consumer reads them, they break nothing, and removing one harms its owner.
OTHER_PROGRAMS_FILES = {
    "cni.lock": "podman's lock file (its CNI backend serialises network changes with it; leave it)",
}

__all__ = ["analyse"]


def _verdict(entry: FileEntry, plugins: Mapping[str, PluginStatus]) -> FileVerdict:
    if entry.load_error is not None or entry.conflist is None:
        error = entry.load_error
        problem = error.problem if error is not None else "does not load"
        where = f"{error.path}: " if error is not None and error.path else ""
        fault_file = error.file if error is not None else entry.path
        prefix = "" if fault_file == entry.path else f"{fault_file}: "
        return FileVerdict(
            status="invalid",
            loads=False,
            validates=False,
            problems=(f"{prefix}{where}{problem}",),
            json_path=error.path if error is not None else "",
            fault_file=fault_file,
        )
    netlist = entry.conflist
    problems: list[str] = []
    validates: bool | None = True
    for plugin in netlist.plugins:
        status = plugins.get(plugin.type)
        text = status.problem(netlist.cni_version) if status is not None else ""
        if text:
            problems.append(text)
            validates = False
        elif (status is None or status.supports(netlist.cni_version) is None) and validates is True:
            validates = None
    if entry.unusable is not None:
        field = f"{entry.unusable.path}: " if entry.unusable.path else ""
        problems.insert(0, f"{field}{entry.unusable.problem} (libcni_py refuses to run it)")
    for plugin in netlist.plugins:
        for sub in delegates(plugin):
            status = plugins.get(sub)
            if status is not None and not status.path:
                problems.append(
                    f'plugin "{sub}" (run by {plugin.type}) {status.not_found()}: {plugin.type} fails at ADD'
                )
    runnable = entry.unusable is None
    if validates is False or not runnable:
        status_word = "invalid"
    elif validates is None:
        status_word = "unverified"
    else:
        status_word = "valid"
    return FileVerdict(status=status_word, loads=True, validates=validates, problems=tuple(problems))


def _ignored(listing: Listing) -> list[Ignored]:
    by_network: dict[str, list[FileEntry]] = {}
    for entry in listing.files:
        if entry.conflist is not None:
            by_network.setdefault(entry.conflist.name, []).append(entry)
    out: list[Ignored] = []
    for name, is_folder in listing.others:
        if not is_folder and name in OTHER_PROGRAMS_FILES:
            out.append(Ignored(name=name, reason=OTHER_PROGRAMS_FILES[name], expected=True))
            continue
        if not is_folder:
            ext = os.path.splitext(name)[1]
            what = f'extension "{ext}"' if ext else "no extension"
            out.append(
                Ignored(name=name, reason=f"{what}: only .conf, .conflist and .json files are read (by every consumer)")
            )
            continue
        owners = by_network.get(name, [])
        lists = [e for e in owners if e.is_conflist]
        aggregating = [e for e in lists if e.conflist is not None and not e.conflist.load_only_inlined_plugins]
        if aggregating:
            files = ", ".join(e.name for e in aggregating)
            out.append(
                Ignored(
                    name=name + "/",
                    network=name,
                    reason=f"plugin folder of network {name!r}: its *.conf files are appended to the plugins "
                    f"of {files} (spec 1.1; a runtime reads no configuration from it otherwise)",
                )
            )
        elif lists:
            out.append(
                Ignored(
                    name=name + "/",
                    network=name,
                    reason=f"folder named like network {name!r}, but {lists[0].name} sets loadOnlyInlinedPlugins: "
                    "its files are not used",
                )
            )
        elif owners:
            out.append(
                Ignored(
                    name=name + "/",
                    network=name,
                    reason=f"folder named like network {name!r}, which is a single-plugin file "
                    f"({owners[0].name}); only .conflist networks take plugins from a folder",
                )
            )
        else:
            out.append(Ignored(name=name + "/", reason="folder: configurations are not read from folders"))
    return out


def analyse(
    listing: Listing,
    plugins: Mapping[str, PluginStatus],
    *,
    max_conf_num: int = 1,
    crio_default: str = "",
) -> Report:
    """Judge every file and work out each consumer's choice.

    Args:
        listing: the conf dir, from :func:`scan`.
        plugins: the status of every plugin type (:func:`resolve_plugins`,
            optionally :func:`probe_versions`).
        max_conf_num: how many files containerd loads (its
            ``max_conf_num``; 0: all).
        crio_default: CRI-O's configured default network name ("" for the
            first valid file).

    Returns:
        The :class:`Report`.
    """
    verdicts = [_verdict(entry, plugins) for entry in listing.files]
    ignored = _ignored(listing)
    consumers = [
        containerd_choice(listing, verdicts, max_conf_num),
        skipping_choice(
            "crio",
            f"ocicni: files that load and validate, first of each name; default network {crio_default!r}"
            if crio_default
            else "ocicni: files that load and validate, first of each name; the first is the default",
            listing,
            verdicts,
            first_only=False,
            default=crio_default,
        ),
        skipping_choice(
            "kubelet",
            "dockershim (Kubernetes <= 1.23): the first file that loads and validates",
            listing,
            verdicts,
            first_only=True,
        ),
    ]
    by_name = cnitool_by_name(listing)
    problems, notes = _findings(listing, verdicts, ignored, consumers, by_name)
    used = {
        t for e in listing.files if e.conflist is not None for p in e.conflist.plugins for t in (p.type, *delegates(p))
    }
    return Report(
        listing=listing,
        verdicts=tuple(verdicts),
        ignored=tuple(ignored),
        plugins=tuple([plugins[t] for t in sorted(plugins) if t in used]),
        consumers=tuple(consumers),
        by_name=tuple(by_name),
        problems=tuple(problems),
        notes=tuple(notes),
    )


def _findings(
    listing: Listing,
    verdicts: Sequence[FileVerdict],
    ignored: Sequence[Ignored],
    consumers: Sequence[Consumer],
    by_name: Sequence[tuple[str, str, str, tuple[str, ...]]],
) -> tuple[list[str], list[str]]:
    """The report's problems, and its notes: what is worth saying but breaks
    nothing (which files are not the default network; another program's
    file that belongs in the conf dir)."""
    out: list[str] = []
    notes: list[str] = []
    if not listing.exists:
        out.append(f"{listing.conf_dir} does not exist: every runtime reports the network as not ready")
    elif not listing.files:
        out.append(
            f"{listing.conf_dir} has no .conf, .conflist or .json file: every runtime reports the network as not ready"
        )
    for entry, verdict in zip(listing.files, verdicts, strict=True):
        for text in verdict.problems:
            out.append(f"{entry.name}: {text}")
    files_by_name = {e.name: e for e in listing.files}
    runtime_takes: dict[str, list[tuple[str, str]]] = {}
    for consumer in consumers:
        for net, file, _ in consumer.networks:
            runtime_takes.setdefault(net, []).append((consumer.name, file))
    verdict_of = {e.name: v for e, v in zip(listing.files, verdicts, strict=True)}
    for name, file, error, shadowed in by_name:
        if error:
            out.append(f"cnitool add {name}: fails: {error}")
            continue
        if verdict_of[file].status == "invalid" and verdict_of[file].problems:
            out.append(f"cnitool add {name} loads {file}, which cannot run: {verdict_of[file].problems[0]}")
        if not shadowed:
            continue
        winner = files_by_name[file]
        why = (
            ".conflist files are searched before .conf/.json"
            if winner.is_conflist and any(not files_by_name[o].is_conflist for o in shadowed)
            else "the first file in order wins"
        )
        text = (
            f"network {name!r} is defined in {len(shadowed) + 1} files ({', '.join(sorted([file, *shadowed]))}): "
            f"cnitool add {name} loads {file} ({why})"
        )
        elsewhere: dict[str, list[str]] = {}
        for who, where in runtime_takes.get(name, []):
            if where != file:
                elsewhere.setdefault(where, []).append(LABELS.get(who, who))
        if elsewhere:
            text += "; but " + "; ".join(
                f"{', '.join(who)} take{'s' if len(who) == 1 else ''} {where}" for where, who in elsewhere.items()
            )
        unused = [o for o in shadowed if o not in {w for _, w in runtime_takes.get(name, [])}]
        if unused:
            text += f"; {', '.join(unused)} {'is' if len(unused) == 1 else 'are'} shadowed"
        out.append(text)
    stopper = next((e for e in listing.files if e.is_conflist and e.load_error is not None), None)
    if stopper is not None:
        out.append(
            f"{stopper.name} stops every look-up by name that reaches it (as Go's does): cnitool add fails for "
            "networks defined only after it or only in .conf/.json files"
        )
    loadable = [e for e in listing.files if e.conflist is not None]
    default = next((c.networks[0] for c in consumers if c.name == "kubelet" and c.networks), None)
    if default is not None and len(loadable) > 1:
        rest = [e for e in loadable if e.name != default[1]]
        names = ", ".join(f"{e.name} ({e.conflist.name!r})" for e in rest[:3] if e.conflist is not None)
        more = f" and {len(rest) - 3} more" if len(rest) > 3 else ""
        default_takers = [LABELS[c.name] for c in consumers if c.networks and c.networks[0][:2] == default[:2]]
        notes.append(
            f"the default network of {', '.join(default_takers)} is {default[0]!r} from {default[1]} "
            f"(the first valid file in order); {names}{more} {'is' if len(rest) == 1 else 'are'} " + NOT_DEFAULT
        )
    for item in ignored:
        if item.expected:
            notes.append(f"{item.name} is {item.reason}")
        elif not item.network and not item.name.endswith("/"):
            out.append(f"{item.name} is ignored ({item.reason.split(':')[0]})")
    for consumer in consumers:
        if consumer.error:
            out.append(f"{LABELS[consumer.name]}: {consumer.error}")
        out.extend(f"{LABELS[consumer.name]}: {note}" for note in consumer.notes if " is taken although " in note)
    # where the consumers disagree about a network name
    takers: dict[str, list[str]] = {}
    for consumer in consumers:
        for net, file, _ in consumer.networks[:1]:
            takers.setdefault(f"network {net!r} from {file}", []).append(consumer.name)
    if len(takers) > 1:
        parts = "; ".join(f"{', '.join(LABELS[w] for w in who)} take {what}" for what, who in takers.items())
        out.append(f"the runtimes disagree: {parts}")
    return out, notes
