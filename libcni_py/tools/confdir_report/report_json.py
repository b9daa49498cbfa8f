"""A conf dir report as JSON (``cnitool ls --json``)."""

from __future__ import annotations

from typing import Any

from ...errors import ConfigError
from .chains import delegates
from .model import Report

__all__ = ["report_json"]


def _problem_json(error: ConfigError | None) -> dict[str, str] | None:
    if error is None:
        return None
    return {"file": error.file, "jsonPath": error.path, "reason": error.problem}


def report_json(report: Report) -> dict[str, Any]:
    files = []
    for entry, verdict in zip(report.listing.files, report.verdicts, strict=True):
        netlist = entry.conflist
        files.append(
            {
                "file": entry.name,
                "path": entry.path,
                "network": netlist.name if netlist is not None else None,
                "cniVersion": netlist.cni_version if netlist is not None else None,
                "plugins": [
                    {
                        "type": p.type,
                        "name": p.name or None,
                        "source": p.source,
                        "delegates": list(delegates(p)),
                        "capabilities": list(p.enabled_capabilities()),
                    }
                    for p in (netlist.plugins if netlist is not None else ())
                ],
                "pluginFolderFiles": list(entry.folder_plugins()),
                "verdict": verdict.status,
                "loads": verdict.loads,
                "validates": verdict.validates,
                "problems": list(verdict.problems),
                "loadError": _problem_json(entry.load_error),
                "unusable": _problem_json(entry.unusable),
            }
        )
    return {
        "confDir": report.listing.conf_dir,
        "exists": report.listing.exists,
        "files": files,
        "ignored": [{"name": i.name, "reason": i.reason, "network": i.network or None} for i in report.ignored],
        "plugins": [
            {
                "type": p.type,
                "path": p.path or None,
                "searched": list(p.searched),
                "missing": p.missing or None,
                "elsewhere": list(p.elsewhere),
                "probed": p.probed,
                "supportedVersions": list(p.info.supported_versions) if p.info is not None else None,
                "probeError": p.probe_error or None,
            }
            for p in report.plugins
        ],
        "consumers": {
            c.name: {
                "rule": c.rule,
                "networks": [{"network": n, "file": f, "ifname": i or None} for n, f, i in c.networks],
                "error": c.error or None,
                "notes": list(c.notes),
            }
            for c in report.consumers
        },
        "cnitoolAdd": [
            {"network": n, "file": f or None, "error": e or None, "shadowed": list(s)} for n, f, e, s in report.by_name
        ],
        "problems": list(report.problems),
        "notes": list(report.notes),
    }
