"""Go libcni (Debian's 1.1.2 and the newest release, 1.3.0) and libcni_py on
one host with Debian's real plugins: what one adds, the other checks and
deletes, leaving nothing behind."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import kernel
import pytest
from support import DEBIAN_PLUGINS, GoPeer, run_cnitool, unique, write_conf

from libcni_py.core.args import cnitool_container_id

pytestmark = pytest.mark.root


@pytest.mark.parametrize("first", ["go", "py"])
def test_real_bridge_added_by_one_deleted_by_the_other(
    first: str, any_gopeer: GoPeer, make_netns, tmp_path: Path, conf_dir: Path, cache_dir: Path, v4only_path: str
) -> None:
    pod = make_netns("pod")
    network = unique("net")
    bridge = unique("br")
    data_dir = tmp_path / "ipam"
    write_conf(
        conf_dir,
        "10-net.conflist",
        {
            "cniVersion": "1.0.0",
            "name": network,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": bridge,
                    "isGateway": True,
                    "ipMasq": True,
                    "ipam": {"type": "host-local", "subnet": "10.241.3.0/24", "dataDir": str(data_dir)},
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        },
    )
    env = {
        "NETCONFPATH": str(conf_dir),
        "CNI_PATH": str(DEBIAN_PLUGINS),
        "CNI_CACHE_DIR": str(cache_dir),
        "CAP_ARGS": '{"portMappings":[{"hostPort":18090,"containerPort":80,"protocol":"tcp"}]}',
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
    assert not [rule for rule in kernel.iptables("nat") if cid in rule or "18090" in rule]
    assert not (cache_dir / "results" / f"{network}-{cid}-eth0").exists()
