"""Go libcni (Debian's 1.1.2 and the newest release, 1.3.0) and libcni_py on
one host with Debian's real plugins: what one adds, the other checks and
deletes, leaving nothing behind."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import kernel
import pytest
from networks import bridge_network, host_port, port_mappings
from support import DEBIAN_PLUGINS, GoPeer, run_cnitool

from libcni_py.core.args import cnitool_container_id

pytestmark = pytest.mark.root


@pytest.mark.parametrize("first", ["go", "py"])
def test_real_bridge_added_by_one_deleted_by_the_other(
    first: str, any_gopeer: GoPeer, make_netns, tmp_path: Path, conf_dir: Path, cache_dir: Path, v4only_path: str
) -> None:
    pod = make_netns("pod")
    data_dir = tmp_path / "ipam"
    net = bridge_network(data_dir, masq=True, portmap=True)
    net.write(conf_dir, "10-net.conflist")
    network, port = net.name, host_port()
    env = {
        "NETCONFPATH": str(conf_dir),
        "CNI_PATH": str(DEBIAN_PLUGINS),
        "CNI_CACHE_DIR": str(cache_dir),
        "CAP_ARGS": json.dumps(port_mappings(port)),
        "PATH": v4only_path,
    }
    netns = f"/var/run/netns/{pod}"
    cid = cnitool_container_id(netns)

    def run(tool: str, command: str) -> subprocess.CompletedProcess[str]:
        if tool == "py":
            return run_cnitool(command, network, netns, env=env)
        return subprocess.run(
            [str(any_gopeer.path), command, network, netns],
            env=dict(os.environ) | env,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )

    second = "py" if first == "go" else "go"
    added = run(first, "add")
    assert added.returncode == 0, added.stderr
    assert kernel.reservations(data_dir, network)
    checked = run(second, "check")
    assert checked.returncode == 0, checked.stderr
    deleted = run(second, "del")
    assert deleted.returncode == 0, deleted.stderr
    assert kernel.reservations(data_dir, network) == []
    assert "eth0" not in kernel.links(pod)
    assert not [rule for rule in kernel.iptables("nat") if cid in rule or str(port) in rule]
    assert not (cache_dir / "results" / f"{network}-{cid}-eth0").exists()
