"""Many attachments at once on a real bridge + host-local network (Debian's
plugins): 200 ``cnitool`` processes and, at the same time, one trio process
(AsyncCNI) with 200 more, each in a pod namespace of its own (made with
libcni_py.netns).  Then every cache file is a valid, complete record and
every address is taken once; after the concurrent DELs nothing is left:
no reservation, no veth, no cache file.  Also: racing ADD/DEL of one real
attachment, and an exhausted address range."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import kernel
import pytest
from networks import bridge_network, subnet
from support import CNITOOL, DEBIAN_PLUGINS, REPO, unique

from libcni_py import netns
from libcni_py.core import record as cache
from libcni_py.core.args import cnitool_container_id

pytestmark = pytest.mark.root

COUNT = 200
WORKERS = 16

TRIO_SIDE = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import trio
from libcni_py import AsyncCNI, CNIError, RuntimeConf, load_network
from libcni_py.core.args import cnitool_container_id
conf_dir, network, cache_dir, command, paths_file = sys.argv[2:7]
paths = json.loads(open(paths_file).read())
cni = AsyncCNI(plugin_path=["/usr/lib/cni"], cache_dir=cache_dir, on_stderr=None)
net = load_network(conf_dir, network)
errors = []
async def one(path):
    rt = RuntimeConf(container_id=cnitool_container_id(path), netns=path, ifname="eth0")
    try:
        if command == "add":
            await cni.add(net, rt)
            await cni.check(net, rt)
        else:
            await cni.delete(net, rt)
    except CNIError as exc:
        errors.append(exc.one_line())
async def main():
    async with trio.open_nursery() as nursery:
        for path in paths:
            nursery.start_soon(one, path)
trio.run(main)
print(json.dumps(errors))
"""


class Pods:
    """Pod namespaces made with libcni_py.netns, all deleted at the end."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    def make(self, count: int) -> list[str]:
        made = [netns.create(unique("mpod")) for _ in range(count)]
        self.paths += made
        return made

    def remove(self) -> None:
        for path in self.paths:
            netns.delete(path)


@pytest.fixture
def pods(node: str) -> object:
    made = Pods()
    yield made
    made.remove()


def run_all(command: str, network: str, paths: list[str], env: dict[str, str]) -> list[str]:
    def one(path: str) -> str:
        proc = subprocess.run(
            [sys.executable, str(CNITOOL), command, network, path],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        return "" if proc.returncode == 0 else proc.stderr.strip()

    with ThreadPoolExecutor(WORKERS) as pool:
        return [e for e in pool.map(one, paths) if e]


def test_200_processes_and_a_trio_process_at_once(pods: Pods, tmp_path: Path, conf_dir: Path, cache_dir: Path) -> None:
    data_dir = tmp_path / "ipam"
    net = bridge_network(data_dir, prefix="many", bridge_prefix="mbr", prefixlen=22)  # room for 2 * COUNT
    net.write(conf_dir, "10-many.conflist")
    network, bridge = net.name, net.bridge
    env = dict(os.environ) | {
        "NETCONFPATH": str(conf_dir),
        "CNI_PATH": str(DEBIAN_PLUGINS),
        "CNI_CACHE_DIR": str(cache_dir),
    }
    by_process, by_trio = pods.make(COUNT), pods.make(COUNT)
    paths_file = tmp_path / "trio-pods.json"
    paths_file.write_text(json.dumps(by_trio))
    try:
        for command in ("add", "del"):
            trio_side = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    TRIO_SIDE,
                    str(REPO),
                    str(conf_dir),
                    network,
                    str(cache_dir),
                    command,
                    str(paths_file),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            assert run_all(command, network, by_process, env) == []
            out, err = trio_side.communicate(timeout=600)
            assert trio_side.returncode == 0, err
            assert json.loads(out) == []

            records = sorted((cache_dir / "results").iterdir())
            if command == "add":
                assert len(records) == 2 * COUNT
                seen_ips = set()
                for path in records:
                    record = cache.decode_record(path.read_bytes(), str(path))
                    assert record.complete and record.network == network and record.ifname == "eth0"
                    assert record.container_id == cnitool_container_id(record.netns)
                    assert path.name == f"{network}-{record.container_id}-eth0"
                    assert record.result is not None
                    seen_ips.add(record.result["ips"][0]["address"].split("/")[0])
                reserved = kernel.reservations(data_dir, network)
                assert len(seen_ips) == len(reserved) == 2 * COUNT and seen_ips == set(reserved)
                index = kernel.links()[bridge]["index"]
                assert sum(1 for link in kernel.links().values() if link["master"] == index) == 2 * COUNT
            else:
                assert records == []
                assert kernel.reservations(data_dir, network) == []
                index = kernel.links()[bridge]["index"]
                assert [n for n, link in kernel.links().items() if link["master"] == index] == []
                assert not list((cache_dir / "libcni_py" / "locks").iterdir())
                assert not list((cache_dir / "libcni_py" / "tmp").iterdir())
    finally:
        subprocess.run(["ip", "link", "del", bridge], check=False, capture_output=True)


def test_racing_add_and_del_of_one_real_attachment(pods: Pods, tmp_path: Path, conf_dir: Path, cache_dir: Path) -> None:
    data_dir = tmp_path / "ipam"
    net = bridge_network(data_dir, prefix="race", bridge_prefix="rbr")
    net.write(conf_dir, "10-race.conflist")
    network, bridge = net.name, net.bridge
    env = dict(os.environ) | {
        "NETCONFPATH": str(conf_dir),
        "CNI_PATH": str(DEBIAN_PLUGINS),
        "CNI_CACHE_DIR": str(cache_dir),
    }
    (path,) = pods.make(1)
    try:
        procs = [
            subprocess.Popen(
                [sys.executable, str(CNITOOL), op, network, path],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for op in ["add", "del", "check"] * 8
        ]
        for proc in procs:
            proc.wait(timeout=300)
            proc.stderr.close()  # type: ignore[union-attr]
        # whatever order they ran in, one record at most, and it is valid
        records = list((cache_dir / "results").iterdir())
        for record in records:
            cache.decode_record(record.read_bytes(), str(record))
        assert len(kernel.reservations(data_dir, network)) <= 1
        final = subprocess.run(
            [sys.executable, str(CNITOOL), "del", network, path],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert final.returncode == 0, final.stderr
        assert kernel.reservations(data_dir, network) == []
        assert not list((cache_dir / "results").iterdir())
        assert "eth0" not in kernel.links(os.path.basename(path))
    finally:
        subprocess.run(["ip", "link", "del", bridge], check=False, capture_output=True)


def test_exhausted_address_range_names_the_network(pods: Pods, tmp_path: Path, conf_dir: Path, cache_dir: Path) -> None:
    data_dir = tmp_path / "ipam"
    tiny = subnet(29)
    first, last = tiny.host(2), tiny.host(3)  # a range of two addresses
    net = bridge_network(
        data_dir, prefix="tiny", bridge_prefix="tbr", subnet=tiny, ipam_extra={"rangeStart": first, "rangeEnd": last}
    )
    net.write(conf_dir, "10-tiny.conflist")
    network, bridge = net.name, net.bridge
    env = dict(os.environ) | {
        "NETCONFPATH": str(conf_dir),
        "CNI_PATH": str(DEBIAN_PLUGINS),
        "CNI_CACHE_DIR": str(cache_dir),
    }
    paths = pods.make(3)
    try:
        for path in paths[:2]:
            ok = subprocess.run(
                [sys.executable, str(CNITOOL), "add", network, path],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert ok.returncode == 0, ok.stderr
        full = subprocess.run(
            [sys.executable, str(CNITOOL), "add", network, paths[2]],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert full.returncode == 1
        (line,) = full.stderr.strip().splitlines()
        assert line.startswith(f'cnitool: error: network "{network}": plugin type="bridge" failed (add): ')
        assert "no IP addresses available" in line
        assert f'the address range of network "{network}" is used up' in line
        assert sorted(kernel.reservations(data_dir, network)) == [first, last]
        # the failed ADD is recorded; its namespace lives, so GC keeps it
        # unless forced; forced, with the two live ones as valid, removes it
        valid = [f"--valid={cnitool_container_id(p)}/eth0" for p in paths[:2]]
        gc = subprocess.run(
            [sys.executable, str(CNITOOL), "gc", network, *valid, "--force"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert gc.returncode == 0, gc.stderr
        assert f"removed {cnitool_container_id(paths[2])}/eth0" in gc.stdout
        assert "eth0" not in kernel.links(os.path.basename(paths[2]))
        for path in paths[:2]:
            assert (
                subprocess.run(
                    [sys.executable, str(CNITOOL), "del", network, path],
                    env=env,
                    capture_output=True,
                    timeout=120,
                    check=False,
                ).returncode
                == 0
            )
        assert kernel.reservations(data_dir, network) == []
        assert not list((cache_dir / "results").iterdir())
    finally:
        subprocess.run(["ip", "link", "del", bridge], check=False, capture_output=True)
