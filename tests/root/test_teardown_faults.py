"""Teardown that always finishes, with Debian's real bridge + host-local +
portmap in namespaces this test makes: a namespace that vanished or went
stale, a plugin missing or failing on DEL, a second ADD of a working
attachment, and two attachments whose cache file names collide.  Each test
ends with nothing left: no veth, no reservation, no iptables rule or chain of
the container, no record, no lock file.

Issue 12; docs/reliability.md lists each guarantee with its test.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
from pathlib import Path
from typing import Any

import faults
import kernel
import networks
import pytest
from support import DEBIAN_PLUGINS, run_cnitool, unique

from libcni_py.core.args import cnitool_container_id

pytestmark = pytest.mark.root


class Rig:
    """One bridge + host-local + portmap network (``tests/networks.py``) on a
    bridge of its own, a private cache and conf dir.  ``ipMasq`` is off by
    default: Debian's bridge 1.1.1 finds its masquerade rules from the
    addresses inside the namespace, so without one it cannot remove them
    (upstream containernetworking/plugins#810; pinned below)."""

    def __init__(self, tmp_path: Path, *, ip_masq: bool = False, plugin_dir: Path | None = None) -> None:
        self.data_dir = tmp_path / "ipam"
        self.net = networks.bridge_portmap(self.data_dir, prefix="tdn", bridge_prefix="tdbr", masq=ip_masq)
        self.network, self.bridge = self.net.name, self.net.bridge
        self.cache_dir = tmp_path / "cache"
        self.conf_dir = tmp_path / "net.d"
        self.conf = self.net.write(self.conf_dir, "10-td.conflist")
        self.port = networks.host_port()
        self.env = {
            "NETCONFPATH": str(self.conf_dir),
            "CNI_PATH": str(plugin_dir or DEBIAN_PLUGINS),
            "CNI_CACHE_DIR": str(self.cache_dir),
            "CAP_ARGS": json.dumps(networks.port_mappings(self.port)),
        }
        self.iptables_before = faults.iptables_state()

    def cnitool(self, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return run_cnitool(*args, env=self.env | extra)

    def veths(self) -> list[str]:
        host = kernel.links()
        index = host.get(self.bridge, {}).get("index")
        return sorted(n for n, link in host.items() if link["kind"] == "veth" and index and link["master"] == index)

    def iptables(self, *cids: str) -> list[str]:
        """The container's rules and chains (not portmap's shared CNI-HOSTPORT-* ones)."""
        new = faults.iptables_state() - self.iptables_before
        return sorted(line for line in new if any(cid in line for cid in cids) or not faults._shared(line))

    def left(self, *cids: str) -> dict[str, list[str]]:
        """What is left on the node: every list empty means nothing leaked."""
        files = faults.cache_files(self.cache_dir)
        return {
            "veth on the bridge": self.veths(),
            "host-local reservation": kernel.reservations(self.data_dir, self.network),
            "iptables": self.iptables(*cids),
            "cache files": files,
        }

    def wait_no_veth(self) -> None:
        """A namespace goes away asynchronously, and its veth pair with it."""
        deadline = time.monotonic() + 30
        while self.veths() and time.monotonic() < deadline:
            time.sleep(0.05)

    def cleanup(self) -> None:
        subprocess.run(["ip", "link", "del", self.bridge], check=False, capture_output=True)


@pytest.fixture
def rigs(node: str) -> Any:
    made: list[Rig] = []

    def make(tmp_path: Path, **kw: Any) -> Rig:
        rig = Rig(tmp_path, **kw)
        made.append(rig)
        return rig

    yield make
    for rig in made:
        rig.cleanup()


def notes(stderr: str) -> list[str]:
    return [line.removeprefix("cnitool: note: ") for line in stderr.splitlines() if line.startswith("cnitool: note: ")]


# --------------------------------------------------------------------------
# a vanished or stale namespace


def make_dead(pod: str, how: str) -> None:
    """Kill the namespace behind /var/run/netns/<pod>: ``stale`` unmounts it
    and leaves the empty file (what a lost bind mount leaves), ``replaced``
    puts an empty regular file of its own in its place, ``gone`` removes
    both (``ip netns del``)."""
    path = f"/var/run/netns/{pod}"
    if how == "gone":
        subprocess.run(["ip", "netns", "del", pod], check=True)
        return
    subprocess.run(["umount", path], check=True)
    if how == "replaced":
        os.unlink(path)
        Path(path).write_text("")
    assert os.path.isfile(path) and os.path.getsize(path) == 0


@pytest.mark.parametrize("how", ["stale", "replaced", "gone"])
def test_del_of_a_dead_namespace_runs_without_it_and_cleans_up(
    how: str, rigs: Any, make_netns: Any, tmp_path: Path
) -> None:
    rig = rigs(tmp_path)
    pod = make_netns("tdpod")
    path = f"/var/run/netns/{pod}"
    cid = cnitool_container_id(path)
    assert rig.cnitool("add", rig.network, path).returncode == 0
    assert rig.veths() and kernel.reservations(rig.data_dir, rig.network) and rig.iptables(cid)

    make_dead(pod, how)
    proc = rig.cnitool("del", rig.network, path, CAP_ARGS="")

    assert proc.returncode == 0, proc.stderr
    state = "gone" if how == "gone" else "stale"
    assert f"namespace {path} is {state}: DEL runs with CNI_NETNS unset" in notes(proc.stderr)
    rig.wait_no_veth()  # went with the namespace
    assert rig.left(cid) == {"veth on the bridge": [], "host-local reservation": [], "iptables": [], "cache files": []}

    if how != "gone":
        # the file the namespace left: `cnitool netns del` removes it and says what it was
        gone = rig.cnitool("netns", "del", pod)
        assert gone.returncode == 0, gone.stderr
        assert notes(gone.stderr) == [
            f"{path} was a stale namespace file (its namespace was no longer mounted on it): removed"
        ]
        assert not os.path.lexists(path)


def test_the_masquerade_rules_of_debian_bridge_need_the_namespace(rigs: Any, make_netns: Any, tmp_path: Path) -> None:
    """Pins upstream containernetworking/plugins#810: bridge 1.1.1 reads the
    addresses to unmasquerade from the interface in the namespace, so with
    ``ipMasq`` and no namespace its masquerade chain stays.  Everything else
    goes; the chain is removed here by hand."""
    rig = rigs(tmp_path, ip_masq=True)
    pod = make_netns("tdpod")
    path = f"/var/run/netns/{pod}"
    cid = cnitool_container_id(path)
    assert rig.cnitool("add", rig.network, path).returncode == 0
    make_dead(pod, "stale")
    assert rig.cnitool("del", rig.network, path, CAP_ARGS="").returncode == 0
    rig.wait_no_veth()
    left = rig.left(cid)
    chains = {line.split()[1][1:] for line in left.pop("iptables") if line.startswith("nat :CNI-")}
    assert left == {"veth on the bridge": [], "host-local reservation": [], "cache files": []}
    assert len(chains) == 1 and not any(c.startswith("CNI-DN-") for c in chains)  # portmap's went
    (chain,) = chains
    subprocess.run(["iptables", "-t", "nat", "-F", chain], check=True)
    for line in rig.iptables(cid):
        if line.startswith("nat -A POSTROUTING"):
            subprocess.run(["iptables", "-t", "nat", "-D", *shlex.split(line)[2:]], check=True)
    subprocess.run(["iptables", "-t", "nat", "-X", chain], check=True)
    assert rig.iptables(cid) == []


def test_pod_gc_of_a_pod_whose_namespace_went_stale(rigs: Any, tmp_path: Path) -> None:
    """``pod up`` (loopback + the bridge network, a namespace of its own), the
    namespace's mount lost: ``pod gc`` deletes both attachments without it,
    removes the stale namespace file and the pod record."""
    rig = rigs(tmp_path)
    up = rig.cnitool("pod", "up", "--name", "web", "--port", f"{rig.port}:80", "--json")
    assert up.returncode == 0, up.stderr
    doc = json.loads(up.stdout)
    path, cid = doc["netns"], doc["containerId"]
    try:
        assert kernel.reservations(rig.data_dir, rig.network) and rig.iptables(cid)
        make_dead(os.path.basename(path), "stale")

        gc = rig.cnitool("pod", "gc")

        assert gc.returncode == 0, gc.stderr
        assert notes(gc.stderr).count(f"namespace {path} is stale: DEL runs with CNI_NETNS unset") == 2  # lo, eth0
        assert not os.path.lexists(path)
        rig.wait_no_veth()
        assert rig.left(cid) == {
            "veth on the bridge": [],
            "host-local reservation": [],
            "iptables": [],
            "cache files": [],  # (the one GC lock of the cache dir is not counted: faults.cache_files)
        }
    finally:
        subprocess.run(["ip", "netns", "del", os.path.basename(path)], check=False, capture_output=True)


# --------------------------------------------------------------------------
# a plugin missing or failing on DEL

#: Fails DEL while the flag file exists; the real portmap otherwise.
FAILING_PORTMAP = """#!/bin/sh
if [ "$CNI_COMMAND" = DEL ] && [ -e %(flag)s ]; then
    echo '{"cniVersion":"1.0.0","code":100,"msg":"portmap stand-in told to fail"}'
    exit 1
fi
exec %(real)s/portmap
"""


@pytest.mark.parametrize("fault", ["missing", "failing"])
def test_del_goes_past_a_broken_portmap_and_a_retry_finishes(
    fault: str, rigs: Any, make_netns: Any, tmp_path: Path
) -> None:
    """The IPAM plugin still releases the address (the most reported CNI
    leak: containerd#12130, #5768); the record keeps portmap for the retry,
    which runs only portmap."""
    plugins = tmp_path / "bin"
    plugins.mkdir()
    for name in ("bridge", "host-local", "portmap"):
        (plugins / name).symlink_to(DEBIAN_PLUGINS / name)
    rig = rigs(tmp_path, plugin_dir=plugins)
    pod = make_netns("tdpod")
    path = f"/var/run/netns/{pod}"
    cid = cnitool_container_id(path)
    record = rig.cache_dir / "results" / f"{rig.network}-{cid}-eth0"
    assert rig.cnitool("add", rig.network, path).returncode == 0
    (plugins / "portmap").unlink()
    flag = tmp_path / "fail"
    if fault == "failing":
        flag.write_text("")
        (plugins / "portmap").write_text(FAILING_PORTMAP % {"flag": flag, "real": DEBIAN_PLUGINS})
        (plugins / "portmap").chmod(0o755)

    proc = rig.cnitool("del", rig.network, path)

    assert proc.returncode == (4 if fault == "missing" else 1), proc.stderr
    error = proc.stderr.strip().splitlines()[-1]
    assert ('plugin "portmap" not found' if fault == "missing" else 'plugin type="portmap" failed (del)') in error
    assert kernel.reservations(rig.data_dir, rig.network) == []  # bridge ran, and host-local released the address
    assert rig.veths() == [] and "eth0" not in kernel.links(pod)
    dnat = [line for line in rig.iptables(cid) if "DNAT" in line or "CNI-DN-" in line]
    assert dnat, "portmap's rules are what is left"
    assert json.loads(record.read_text())["libcniPy"]["remaining"] == [{"index": 1, "type": "portmap"}]

    if fault == "missing":
        (plugins / "portmap").symlink_to(DEBIAN_PLUGINS / "portmap")
    else:
        flag.unlink()
    retry = rig.cnitool("del", rig.network, path)

    assert retry.returncode == 0, retry.stderr
    assert any(n.endswith("(still to delete: portmap); running only those") for n in notes(retry.stderr))
    assert rig.left(cid) == {"veth on the bridge": [], "host-local reservation": [], "iptables": [], "cache files": []}


# --------------------------------------------------------------------------
# a second ADD, colliding names


def test_a_second_add_is_refused_and_the_attachment_keeps_working(
    rigs: Any, make_netns: Any, tmp_path: Path, v4only_path: str
) -> None:
    """The issue's case: the re-ADD used to fail ("eth0 already exists") and
    leave "failed, 0 of 1" in place of the working record; and with the
    conflist changed meanwhile, the DEL then skipped portmap and its rules
    leaked."""
    rig = rigs(tmp_path)
    pod = make_netns("tdpod")
    path = f"/var/run/netns/{pod}"
    cid = cnitool_container_id(path)
    record = rig.cache_dir / "results" / f"{rig.network}-{cid}-eth0"
    added = rig.cnitool("add", rig.network, path)
    assert added.returncode == 0, added.stderr
    address = json.loads(added.stdout)["ips"][0]["address"]
    before = record.read_bytes()
    doc = json.loads(rig.conf.read_text())
    doc["plugins"] = doc["plugins"][:1]  # portmap taken out of the list meanwhile
    rig.conf.write_text(json.dumps(doc))

    again = rig.cnitool("add", rig.network, path)

    assert again.returncode == 3
    assert again.stderr.startswith(f"cnitool: error: attachment {rig.network}/{cid}/eth0 exists (")
    assert record.read_bytes() == before
    assert ("eth0", address) in kernel.addresses(pod)
    assert kernel.reservations(rig.data_dir, rig.network) == [address.split("/")[0]]
    rig.conf.write_text(json.dumps(rig.net.conflist()))
    assert rig.cnitool("check", rig.network, path, PATH=v4only_path).returncode == 0
    rig.conf.write_text(json.dumps(doc))
    delete = rig.cnitool("del", rig.network, path)
    assert delete.returncode == 0, delete.stderr  # with the recorded configuration: portmap's DEL runs
    assert rig.left(cid) == {"veth on the bridge": [], "host-local reservation": [], "iptables": [], "cache files": []}
    assert "eth0" not in kernel.links(pod)


def test_colliding_cache_names_never_leak_the_other_attachment(rigs: Any, make_netns: Any, tmp_path: Path) -> None:
    """Container C-a with interface b and container C with interface a-b
    share the file NET-C-a-b.  The second ADD is refused before any plugin
    runs (Go overwrites the first record, and DEL of the first then removes
    the second's file: its address leaks where no GC finds it)."""
    rig = rigs(tmp_path)
    pod = make_netns("tdpod")
    path = f"/var/run/netns/{pod}"
    base = unique("tdc")
    record = rig.cache_dir / "results" / f"{rig.network}-{base}-a-b"
    first = rig.cnitool("add", rig.network, path, "--container-id", f"{base}-a", "--ifname", "b")
    assert first.returncode == 0, first.stderr
    address = json.loads(first.stdout)["ips"][0]["address"].split("/")[0]
    before = record.read_bytes()

    second = rig.cnitool("add", rig.network, path, "--container-id", base, "--ifname", "a-b")

    assert second.returncode == 3
    assert f"its cache file name {record.name} is taken by the attachment of" in second.stderr
    assert kernel.reservations(rig.data_dir, rig.network) == [address]  # nothing was made for the second
    assert set(kernel.links(pod)) == {"lo", "b"} and record.read_bytes() == before

    # a DEL of the one that never was leaves the other's record, address and interface alone
    stray = rig.cnitool("del", rig.network, path, "--container-id", base, "--ifname", "a-b")
    assert stray.returncode == 0, stray.stderr
    assert record.read_bytes() == before
    assert kernel.reservations(rig.data_dir, rig.network) == [address] and "b" in kernel.links(pod)

    done = rig.cnitool("del", rig.network, path, "--container-id", f"{base}-a", "--ifname", "b")
    assert done.returncode == 0, done.stderr
    assert rig.left(base) == {"veth on the bridge": [], "host-local reservation": [], "iptables": [], "cache files": []}
    assert set(kernel.links(pod)) == {"lo"}
