"""Helpers for the runtime layer's tests (``from podkit import ...``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from support import read_calls, write_conf

from libcni_py.runtime import PodNetworks


def make_pods(
    conf_dir: Path, cache_dir: Path, plugin_dir: Path, record_file: Path, cls: type = PodNetworks, **kw: Any
) -> Any:
    """A pod manager (``cls``: PodNetworks or AsyncPodNetworks) on the test plugins."""
    env = {"PATH": "/usr/bin:/bin", "RECORD_FILE": str(record_file)}
    return cls(
        conf_dir=str(conf_dir), plugin_path=[str(plugin_dir)], cache_dir=str(cache_dir), env=env, on_stderr=None, **kw
    )


def two_networks(conf_dir: Path, version_b: str = "1.1.0") -> None:
    """``neta`` (1.0.0, two recorders on eth0, one with portMappings) and
    ``netb`` (``version_b``, one recorder on eth1); each plugin has a "marker"."""
    write_conf(
        conf_dir,
        "10-a.conflist",
        {
            "cniVersion": "1.0.0",
            "name": "neta",
            "plugins": [
                {"type": "recorder", "interfaceName": "eth0", "address": "10.1.0.5/24", "marker": "a-v1"},
                {
                    "type": "recorder",
                    "interfaceName": "eth0",
                    "address": "10.1.0.6/24",
                    "capabilities": {"portMappings": True},
                },
            ],
        },
    )
    write_conf(
        conf_dir,
        "20-b.conflist",
        {
            "cniVersion": version_b,
            "name": "netb",
            "plugins": [{"type": "recorder", "interfaceName": "eth1", "address": "10.2.0.5/24", "marker": "b-v1"}],
        },
    )


def calls_of(record_file: Path, command: str) -> list[tuple[str, str]]:
    """(network name, CNI_IFNAME) of each recorded call of ``command``, in order."""
    out = []
    for call in read_calls(record_file):
        if call["command"] == command and "env" in call:
            out.append((json.loads(str(call["stdin"]))["name"], call["env"]["CNI_IFNAME"]))  # type: ignore[index]
    return out
