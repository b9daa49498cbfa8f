"""docs/walkthrough.md, run and checked.

The walkthrough's ``console`` blocks are executed command by command (all
but the first, which sets the sandbox up, and the last, which removes it)
in a fresh node namespace of their own, with the sandbox in this test's tmp
dir, and each output is compared with the one pasted in the document after
normalising what changes from run to run (MACs, veth names, the container
ID and what derives from it, temporary file suffixes, paths of the
sandbox).  The facts the prose states are then checked again with pyroute2
and the files themselves, and the error messages it quotes are provoked.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import kernel
import pytest
from support import CNITOOL, PLUGINS, REPO, run_cnitool, unique

from libcni_py import netns
from libcni_py.args import cnitool_container_id

pytestmark = pytest.mark.root

DOC = REPO / "docs" / "walkthrough.md"
EXAMPLE = REPO / "examples" / "flannel"
DOC_ROOT = "/tmp/cni-walkthrough"
DOC_POD = "pod1"
DOC_NODE = "cni-node"
DOC_CID = cnitool_container_id(f"/var/run/netns/{DOC_POD}")


def console_blocks(text: str) -> list[list[tuple[str, list[str]]]]:
    """Each ```console block as [(command, expected output lines)]."""
    blocks = []
    for body in re.findall(r"```console\n(.*?)```", text, flags=re.S):
        steps: list[tuple[str, list[str]]] = []
        lines = body.splitlines()
        i = 0
        while i < len(lines):
            line = lines[i]
            if line.startswith("# "):
                command = line[2:]
                while command.endswith("\\"):
                    i += 1
                    command = command[:-1] + " " + lines[i].strip()
                steps.append((command, []))
            else:
                steps[-1][1].append(line)
            i += 1
        blocks.append(steps)
    return blocks


def normalise(text: str) -> str:
    rules = [
        (r"cnitool-[0-9a-f]{20}", "CID"),
        (r"CNI-DN-[0-9a-f]{21}", "CNI-DN-X"),
        (r"veth[0-9a-f]{8}", "vethX"),
        (r"\b[0-9a-f]{2}(:[0-9a-f]{2}){5}\b", "MAC"),
        (r"fe80::[0-9a-f:]+/64", "fe80::X/64"),
        (r"-eth0\.\d+\.[0-9a-f]{8}\b", "-eth0.PID.RAND"),
    ]
    for pattern, repl in rules:
        text = re.sub(pattern, repl, text)
    text = re.sub(r"[ \t]+", " ", text)
    # a bridge that just lost its last port goes from UP to DOWN (NO-CARRIER)
    # a moment later: either may be seen
    text = re.sub(r"(?m)^cni0 (UP|DOWN) (.*)$", lambda m: "cni0 STATE " + m[2].replace("NO-CARRIER,", ""), text)
    return "\n".join(line.rstrip() for line in text.splitlines()).strip("\n")


class Walkthrough:
    """The sandbox: a node namespace, a pod, the example files under a work
    dir (so that the document's relative paths hold), the cache under root."""

    def __init__(self, tmp_path: Path) -> None:
        assert shutil.which("strace"), "the walkthrough needs strace (scripts/setup installs it)"
        self.root = tmp_path / "root"  # stands for /tmp/cni-walkthrough
        self.work = tmp_path / "work"  # stands for the checkout
        self.node = unique("wtnode")
        self.pod = unique("wtpod")
        self.cid = cnitool_container_id(f"/var/run/netns/{self.pod}")
        (self.root / "run" / "flannel").mkdir(parents=True)
        shutil.copy(EXAMPLE / "subnet.env", self.root / "run" / "flannel" / "subnet.env")
        confs = self.work / "examples" / "flannel" / "net.d"
        confs.mkdir(parents=True)
        for conf in sorted((EXAMPLE / "net.d").iterdir()):
            (confs / conf.name).write_text(conf.read_text().replace(DOC_ROOT, str(self.root)))
        (self.work / "examples" / "flannel" / "calltree.py").symlink_to(EXAMPLE / "calltree.py")
        shutil.copy(EXAMPLE / "subnet.env", self.work / "examples" / "flannel" / "subnet.env")
        bindir = tmp_path / "bin"
        bindir.mkdir()
        (bindir / "cnitool").write_text(f'#!/bin/sh\nexec {sys.executable} {CNITOOL} "$@"\n')
        (bindir / "cnitool").chmod(0o755)
        # the environment the document's first block exports
        self.env = {
            "PATH": f"{bindir}:/usr/sbin:/usr/bin:/sbin:/bin",
            "NETCONFPATH": "examples/flannel/net.d",
            "CNI_PATH": f"{PLUGINS}:/usr/lib/cni",
            "CNI_CACHE_DIR": f"{self.root}/var/lib/cni",
        }
        subprocess.run(["ip", "netns", "add", self.node], check=True)
        self.in_node("ip link set lo up")

    @property
    def cache(self) -> Path:
        return self.root / "var" / "lib" / "cni"

    def in_node(self, command: str) -> subprocess.CompletedProcess[str]:
        """Run a shell command on the node, as the document's shell does."""
        return subprocess.run(
            ["ip", "netns", "exec", self.node, "bash", "-c", command],
            cwd=self.work,
            env=dict(os.environ) | self.env,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )

    def run(self, command: str) -> str:
        """A command of the document, on this sandbox; its output (stdout and
        stderr, as on a terminal)."""
        command = (
            command.replace(DOC_ROOT, str(self.root))
            .replace(DOC_CID, self.cid)
            .replace(f"/var/run/netns/{DOC_POD}", f"/var/run/netns/{self.pod}")
            .replace(f" {DOC_POD}", f" {self.pod}")
        )
        # 'cnitool netns' runs in this process's mount namespace, so that every
        # later 'ip netns exec' sees the namespace (the document's single shell does)
        netns_command = command.startswith("cnitool netns ")
        proc = run_cnitool(*command.split()[1:]) if netns_command else self.in_node(command)
        assert "Traceback" not in proc.stderr, proc.stderr
        out = proc.stdout + proc.stderr
        return out.replace(str(self.root), DOC_ROOT).replace(self.pod, DOC_POD).replace(self.node, DOC_NODE)

    def cleanup(self) -> None:
        netns.delete(self.pod)
        subprocess.run(["ip", "netns", "del", self.node], check=False)


@pytest.fixture
def wt(node: str, tmp_path: Path) -> object:
    walk = Walkthrough(tmp_path)
    yield walk
    walk.cleanup()


def test_the_walkthrough_as_written(wt: Walkthrough) -> None:
    text = DOC.read_text()
    blocks = console_blocks(text)
    first, *middle, last = blocks
    assert any("ip netns exec cni-node bash" in cmd for cmd, _ in first)
    assert any("rm -rf /tmp/cni-walkthrough" in cmd for cmd, _ in last)
    # the sandbox's files are the examples'
    subnet_block = re.search(r"The subnet.env, as flanneld writes it for this node:\n\n```\n(.*?)```", text, re.S)
    assert subnet_block and subnet_block.group(1) == (EXAMPLE / "subnet.env").read_text()
    for block in middle:
        for command, expected in block:
            got = wt.run(command)
            assert normalise(got) == normalise("\n".join(expected)), f"$ {command}"
    checked = re.findall(r"<!-- checked: ([\w-]+) -->", text)
    assert checked == ["calltree-add", "delegate", "nat-add", "calltree-del", "after-del", "del-without-caps"]


def add(wt: Walkthrough, caps: bool = True) -> subprocess.CompletedProcess[str]:
    args = '--capability-args \'{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]}\''
    return wt.in_node(f"cnitool add cbr0 /var/run/netns/{wt.pod} {args if caps else ''}")


def delete(wt: Walkthrough, caps: bool = True) -> subprocess.CompletedProcess[str]:
    args = '--capability-args \'{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]}\''
    return wt.in_node(f"cnitool del cbr0 /var/run/netns/{wt.pod} {args if caps else ''}")


def test_the_facts_it_states(wt: Walkthrough) -> None:
    netns.create(wt.pod)
    proc = add(wt)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    # node: cni0 with the gateway, one veth enslaved with MTU 1450 and hairpin on
    links = kernel.links(wt.node)
    assert links["cni0"]["kind"] == "bridge" and links["cni0"]["up"]
    assert ("cni0", "10.244.1.1/24") in kernel.addresses(wt.node)
    veths = [n for n, link in links.items() if link["kind"] == "veth"]
    assert veths == [res["interfaces"][1]["name"]]
    assert links[veths[0]]["master"] == links["cni0"]["index"] and links[veths[0]]["mtu"] == 1450
    assert "hairpin on" in wt.in_node(f"bridge -d link show dev {veths[0]}").stdout
    assert ("10.244.1.0/24", None, "cni0") in kernel.routes(wt.node)
    # pod: eth0 in FLANNEL_SUBNET, MTU 1450, routes to the default gateway and FLANNEL_NETWORK
    pod = kernel.links(wt.pod)
    assert pod["eth0"]["mtu"] == 1450
    assert ("eth0", "10.244.1.2/24") in kernel.addresses(wt.pod)
    assert {("0.0.0.0/0", "10.244.1.1", "eth0"), ("10.244.0.0/16", "10.244.1.1", "eth0")} <= kernel.routes(wt.pod)
    # files, and who wrote them (the call tree of the document is checked above)
    record = json.loads((wt.cache / "results" / f"cbr0-{wt.cid}-eth0").read_text())
    assert record["result"] == res and record["capabilityArgs"]["portMappings"][0]["hostPort"] == 8080
    assert (wt.cache / "networks" / "cbr0" / "10.244.1.2").read_text() == f"{wt.cid}\neth0"
    delegate = json.loads((wt.cache / "flannel" / wt.cid).read_text())
    assert delegate == {
        "cniVersion": "0.3.1",
        "name": "cbr0",
        "type": "bridge",
        "mtu": 1450,
        "ipMasq": False,
        "isGateway": True,
        "hairpinMode": True,
        "isDefaultGateway": True,
        "ipam": {
            "type": "host-local",
            "dataDir": str(wt.cache / "networks"),
            "ranges": [[{"subnet": "10.244.1.0/24"}]],
            "routes": [{"dst": "10.244.0.0/16"}],
        },
    }
    # iptables: portmap's DNAT, no masquerade of the pod's own traffic (ipMasq false), filter untouched
    nat = wt.in_node("iptables-save -t nat").stdout
    assert "-j DNAT --to-destination 10.244.1.2:80" in nat
    assert "-A POSTROUTING -s 10.244.1.2" not in nat
    assert "CNI" not in wt.in_node("iptables-save -t filter").stdout
    assert wt.in_node("sysctl -n net.ipv4.conf.cni0.route_localnet").stdout == "1\n"

    proc = delete(wt)
    assert proc.returncode == 0, proc.stderr
    links = kernel.links(wt.node)
    assert "cni0" in links and not [n for n, link in links.items() if link["kind"] == "veth"]
    assert ("cni0", "10.244.1.1/24") in kernel.addresses(wt.node)
    assert set(kernel.links(wt.pod)) == {"lo"}
    files = sorted(str(p.relative_to(wt.cache)) for p in wt.cache.rglob("*") if p.is_file())
    assert files == ["networks/cbr0/last_reserved_ip.0", "networks/cbr0/lock"]
    nat = wt.in_node("iptables-save -t nat").stdout
    assert ":CNI-HOSTPORT-DNAT" in nat and "CNI-DN-" not in nat and wt.cid not in nat

    # the error messages the document quotes
    env_file = wt.root / "run" / "flannel" / "subnet.env"
    env_file.write_text(env_file.read_text().replace("FLANNEL_SUBNET=10.244.1.1/24", "FLANNEL_SUBNET=10.244.7.1/24"))
    proc = add(wt)
    assert proc.returncode == 1
    assert 'failed to set bridge addr: "cni0" already has an IP address different from 10.244.7.1/24' in proc.stderr
    assert delete(wt).returncode == 0
    env_file.unlink()
    proc = add(wt)
    assert proc.returncode == 1
    assert proc.stderr == (
        'cnitool: error: network "cbr0": plugin type="flannel" failed (add): failed to load flannel \'subnet.env\' file: '
        f"open {env_file}: no such file or directory. Check the flannel pod log for this node.\n"
    )
    assert delete(wt).returncode == 0
    assert not (wt.cache / "flannel" / wt.cid).exists()
