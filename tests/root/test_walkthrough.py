"""docs/walkthrough.md, run and checked.

The walkthrough's ``console`` blocks are executed command by command (all
but the first, which sets the sandbox up, and the last, which removes it)
in a fresh node namespace of their own, with the sandbox in this test's tmp
dir, and each output is compared with the one pasted in the document after
normalising what changes from run to run (MACs, veth names, pids, timings,
sizes, the container ID and what derives from it, paths of the sandbox).
Where the document cuts an output (a line ``…``), each piece it shows must
appear whole, in order.  The facts the prose states -- which program ran
which, wrote which file, made which link, address, route and rule, what DEL
removes and what stays -- are then checked against ``--trace-json`` (and
the kernel state against pyroute2), what it says of a conf file changed
since the ADD and of Go's cnitool is done, and the error messages it quotes
are provoked.
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
from support import CNITOOL, REPO, run_cnitool, unique

from libcni_py import netns
from libcni_py.core.args import cnitool_container_id

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


#: A process line of the trace's timeline: ``host-local ADD (/usr/lib/cni/host-local)  [pid 12, exit 0]``.
PROCESS_LINE = re.compile(r"^ {6,}\S.*  \[pid \d+, (exit -?\d+|killed by signal \d+|exit not seen)\]")
PLUGIN_LINE = re.compile(r"^ {6,}[\w.-]+ (ADD|DEL|CHECK|GC|STATUS|\(CNI_COMMAND not read\))( \(\S+\))?  \[pid \d+")


def normalise(text: str) -> str:
    rules = [
        (r"cnitool-[0-9a-f]{20}", "CID"),
        (r"CNI-DN-[0-9a-f]{21}", "CNI-DN-X"),
        (r"veth[0-9a-f]{8}", "vethX"),
        (r"\b[0-9a-f]{2}(:[0-9a-f]{2}){5}\b", "MAC"),
        (r"fe80::[0-9a-f:]+/64", "fe80::X/64"),
        (r"-eth0\.\d+\.[0-9a-f]{8}\b", "-eth0.PID.RAND"),
        (r"\(\*uint\)\(0x[0-9a-f]+\)", "(*uint)(0xADDR)"),  # the real flannel's Go dump of its delegate
        # the trace's timeline
        (r"\bpid \d+", "pid N"),
        (r"^(trace #\d+) \+\d+\.\d+s ", r"\1 +T "),
        (r" \[\d+\.\d+ ms\]$", ""),
        (r"after \d+\.\d+s", "after T"),
        (r"\+ \d+ variables inherited", "+ N variables inherited"),
        (r"\(\d+ bytes([,)])", r"(N bytes\1"),  # the sandbox's paths are in some files
    ]
    for pattern, repl in rules:
        text = re.sub(pattern, repl, text, flags=re.M)
    text = re.sub(r"[ \t]+", " ", text)
    # a bridge that just lost its last port goes from UP to DOWN (NO-CARRIER)
    # a moment later: either may be seen
    text = re.sub(r"(?m)^cni0 (UP|DOWN) (.*)$", lambda m: "cni0 STATE " + m[2].replace("NO-CARRIER,", ""), text)
    return "\n".join(line.rstrip() for line in text.splitlines()).strip("\n")


def trace_lines(text: str) -> list[str]:
    """Normalised lines, without the programs plugins ran besides plugins
    (iptables...: how many were read before they exited varies; the facts
    test checks them in the JSON) and without changes by processes outside
    the call (what the rest of the machine did meanwhile)."""
    out = []
    for line in text.splitlines():
        if "which this step did not start" in line:
            continue
        if PROCESS_LINE.match(line) and not PLUGIN_LINE.match(line):
            continue
        out.append(normalise(line))
    return out


def matches(got: str, expected: list[str]) -> bool:
    """``got`` is the expected output; where that has lines ``…`` it is cut
    there, and each piece must appear whole, in order.  Either way, the lines
    of programs plugins ran besides plugins are not compared (see
    :func:`trace_lines`): a helper that exits before it is read splits the
    timeline's folded ``+ N more runs`` line differently from run to run."""
    if not any(line.strip() == "…" for line in expected):
        return trace_lines(got.strip("\n")) == trace_lines("\n".join(expected).strip("\n"))
    pieces: list[list[str]] = [[]]
    for line in expected:
        if line.strip() == "…":
            pieces.append([])
        else:
            pieces[-1].extend(trace_lines(line))
    lines = trace_lines(got)
    at = 0
    for index, piece in enumerate(pieces):
        if not piece:
            continue
        starts = [i for i in range(at, len(lines) - len(piece) + 1) if lines[i : i + len(piece)] == piece]
        if not starts or (index == 0 and starts[0] != 0):
            return False
        at = starts[0] + len(piece)
    return not pieces[-1] or at == len(lines)


class Walkthrough:
    """The sandbox: a node namespace, a pod, the example files under a work
    dir (so that the document's relative paths hold), the cache under root."""

    def __init__(self, tmp_path: Path, flannel: Path) -> None:
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
        (self.root / "opt" / "cni" / "bin").mkdir(parents=True)
        (self.root / "opt" / "cni" / "bin" / "flannel").symlink_to(flannel)
        shutil.copy(EXAMPLE / "subnet.env", self.work / "examples" / "flannel" / "subnet.env")
        bindir = tmp_path / "bin"
        bindir.mkdir()
        (bindir / "cnitool").write_text(f'#!/bin/sh\nexec {sys.executable} {CNITOOL} "$@"\n')
        (bindir / "cnitool").chmod(0o755)
        # the environment the document's first block exports
        self.env = {
            "PATH": f"{bindir}:/usr/sbin:/usr/bin:/sbin:/bin",
            "NETCONFPATH": "examples/flannel/net.d",
            "CNI_PATH": f"{self.root}/opt/cni/bin:/usr/lib/cni",
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
def wt(node: str, tmp_path: Path, real_flannel: Path) -> object:
    walk = Walkthrough(tmp_path, real_flannel)
    yield walk
    walk.cleanup()


def test_the_walkthrough_as_written(wt: Walkthrough) -> None:
    text = DOC.read_text()
    blocks = console_blocks(text)
    first, *middle, last = blocks
    setup = [cmd for cmd, _ in first]
    assert "ip netns exec cni-node bash" in " ".join(setup)
    # the sandbox the fixture makes is the one the document sets up
    assert "export CNI_PATH=/tmp/cni-walkthrough/opt/cni/bin:/usr/lib/cni" in setup
    assert "export CNI_CACHE_DIR=/tmp/cni-walkthrough/var/lib/cni" in setup
    assert "ln -s $PWD/.venv/libexec/cni/flannel /tmp/cni-walkthrough/opt/cni/bin/flannel" in setup
    assert any("rm -rf /tmp/cni-walkthrough" in cmd for cmd, _ in last)
    # the sandbox's files are the examples'
    subnet_block = re.search(r"The subnet.env, as flanneld writes it for this node:\n\n```\n(.*?)```", text, re.S)
    assert subnet_block and subnet_block.group(1) == (EXAMPLE / "subnet.env").read_text()
    for block in middle:
        for command, expected in block:
            got = wt.run(command)
            assert matches(got, expected), f"$ {command}\n{got}"
    checked = re.findall(r"<!-- checked: ([\w-]+) -->", text)
    assert checked == [
        "trace-add",
        "who-add",
        "delegate",
        "nat-add",
        "trace-del",
        "who-del",
        "after-del",
        "del-recorded-caps",
        "del-without-caps",
        "pitfall-first-del",
        "pitfall-retry",
        "pitfall-netns-gone",
    ]
    assert "strace" not in text and "calltree" not in text


def test_excerpts_are_compared_piece_by_piece() -> None:
    got = "trace #1 +0.1s a\n        iptables -S  [pid 3, exit 0]\nb\nc\nd\ne"
    assert matches(got, ["trace #1 +9.9s a", "…", "c", "d", "…"])
    assert not matches(got, ["trace #1 +9.9s a", "…", "d", "c", "…"])  # order
    assert not matches(got, ["a", "…"])  # the first piece starts the output
    assert not matches(got, ["…", "c"])  # the last piece ends it
    assert matches(got, ["…", "d", "e"])
    assert not matches(got, ["…", "b", "d", "…"])  # a piece is whole
    # uncut: every line, but the helper's line is not compared
    assert matches(got, ["trace #1 +9.9s a", "        iptables -S  [pid 9, exit 1]", "b", "c", "d", "e"])
    assert matches(got, ["trace #1 +9.9s a", "b", "c", "d", "e"])
    assert not matches(got, ["trace #1 +9.9s a", "b", "c", "d"])
    assert not matches("an error\n", []) and matches("\n", [])


CAPS = '--capability-args \'{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]}\''


def add(wt: Walkthrough, caps: bool = True, trace: str = "") -> subprocess.CompletedProcess[str]:
    traced = f"--trace-json {wt.root / trace} " if trace else ""
    return wt.in_node(f"cnitool {traced}add cbr0 /var/run/netns/{wt.pod} {CAPS if caps else ''}")


def delete(wt: Walkthrough, caps: bool = True, trace: str = "") -> subprocess.CompletedProcess[str]:
    traced = f"--trace-json {wt.root / trace} " if trace else ""
    return wt.in_node(f"cnitool {traced}del cbr0 /var/run/netns/{wt.pod} {CAPS if caps else ''}")


def calls(doc: dict) -> list[dict]:
    """The plugin calls of a trace, in order."""
    return [e for e in doc["events"] if e["effect"] == "exec"]


def by(event: dict, kind: str, where: str | None = None) -> dict[str, dict]:
    """The changes of one kind in a step, by what changed (path, or text), with who made them."""
    return {
        (c["where"] if kind in ("file", "dir") else c["text"]): c
        for c in event["changes"]
        if c["kind"] == kind and (where is None or c["where"] == where)
    }


def test_the_facts_it_states(wt: Walkthrough) -> None:
    netns.create(wt.pod)
    proc = add(wt, trace="add.json")
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    trace = json.loads((wt.root / "add.json").read_text())
    cache, cid = str(wt.cache), wt.cid

    # -- the trace of the ADD: the order of the calls, and who ran whom
    flannel, portmap = calls(trace)
    assert (flannel["plugin"]["type"], portmap["plugin"]["type"]) == ("flannel", "portmap")
    assert [e["effect"] for e in trace["events"]] == [
        "probe-netns", "resolve", "lock", "read-record", "write-record",
        "exec", "write-record", "exec", "write-record", "unlock",
    ]  # fmt: skip
    procs = flannel["processes"]
    assert [(p["program"], p["depth"], p["plugin"], p["cniCommand"]) for p in procs if p["plugin"]] == [
        ("flannel", 0, True, "ADD"),
        ("bridge", 1, True, "ADD"),
        ("host-local", 2, True, "ADD"),
    ]
    plugin_pid = {p["program"]: p["pid"] for p in procs if p["plugin"]}
    assert [p for p in procs if not p["plugin"]] == []  # bridge runs no iptables: ipMasq is false
    runtime = procs[0]["ppid"]
    top, *helpers = portmap["processes"]
    assert top["program"] == "portmap" and len(helpers) == 27
    assert all(not p["plugin"] and p["ppid"] == top["pid"] for p in helpers)
    assert {p["program"] for p in helpers} <= {"iptables", "xtables-nft-multi"}  # the latter: gone before read
    argvs = [" ".join([p["program"], *p["argv"][1:]]) for p in helpers]
    assert any(a.startswith("iptables -t nat -N CNI-DN-") for a in argvs)
    # -- who wrote each file
    record = f"{cache}/results/cbr0-{cid}-eth0"
    for event in trace["events"]:
        if event["actor"] == "libcni_py":
            for change in event["changes"]:
                assert change["by"] == "libcni_py" and change["writer"]["pid"] == runtime, change
    writes = {c["where"]: c for e in trace["events"] for c in e["changes"] if c["kind"] in ("file", "dir")}
    assert (
        writes[record]["by"] == "libcni_py" and writes[f"{cache}/libcni_py/locks/cbr0-{cid}-eth0"]["by"] == "libcni_py"
    )
    assert writes[f"{cache}/flannel"]["by"] == writes[f"{cache}/flannel/{cid}"]["by"] == "flannel"
    assert writes[f"{cache}/flannel/{cid}"]["writer"]["pid"] == plugin_pid["flannel"]
    host_local = [f"{cache}/networks", f"{cache}/networks/cbr0"] + [
        f"{cache}/networks/cbr0/{name}" for name in ("10.244.1.2", "last_reserved_ip.0", "lock")
    ]
    for path in host_local:
        assert writes[path]["by"] == "host-local" and writes[path]["writer"]["runBy"] == ["bridge", "flannel"], path
        assert writes[path]["writer"]["pid"] == plugin_pid["host-local"]
    assert {c["where"] for c in flannel["changes"] if c["kind"] in ("file", "dir")} == {
        f"{cache}/flannel", f"{cache}/flannel/{cid}", *host_local,
    }  # fmt: skip
    # -- who made each interface, address and route: bridge; flannel none, host-local none
    net = [c for c in flannel["changes"] if c["kind"] in ("link", "address", "route")]
    assert {(c["kind"], c["where"], c["text"].split(" (")[0]) for c in net} >= {
        ("link", "host", "cni0"),
        ("link", "host", res["interfaces"][1]["name"]),
        ("link", "container", "eth0"),
        ("address", "host", "cni0 10.244.1.1/24"),
        ("address", "container", "eth0 10.244.1.2/24"),
        ("route", "container", "0.0.0.0/0 via 10.244.1.1 dev eth0"),
        ("route", "container", "10.244.0.0/16 via 10.244.1.1 dev eth0"),
    }
    for change in net:
        assert change["by"] == "bridge" and change["writer"]["pid"] == plugin_pid["bridge"], change
        assert change["writer"]["basis"] == ("requester" if change["kind"] == "address" else change["writer"]["basis"])
    requested = {c["text"] for c in net if c["writer"]["basis"] == "requester"}
    assert {"cni0 10.244.1.1/24", "eth0 10.244.1.2/24", "10.244.0.0/16 via 10.244.1.1 dev eth0"} <= requested
    # -- iptables: only during portmap's call
    assert not [c for c in flannel["changes"] if c["kind"].startswith("iptables")]
    rules = {c["text"] for c in portmap["changes"] if c["kind"] == "iptables-rule"}
    assert any(r.endswith("-j DNAT --to-destination 10.244.1.2:80") for r in rules)
    assert {c["kind"] for c in portmap["changes"]} == {"iptables-chain", "iptables-rule"}
    assert all(c["where"] == "nat" for c in portmap["changes"])  # the filter table: untouched

    # -- the kernel state, the pictures of the document
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
    # the files
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

    proc = delete(wt, trace="del.json")
    assert proc.returncode == 0, proc.stderr
    trace = json.loads((wt.root / "del.json").read_text())
    # -- the trace of the DEL: the record first, then the plugins; reverse order; who removed what; cni0 not touched
    assert [e["effect"] for e in trace["events"]] == [
        "lock", "read-record", "probe-netns", "resolve", "exec", "exec", "remove-record", "unlock",
    ]  # fmt: skip
    portmap, flannel = calls(trace)
    assert (portmap["plugin"]["type"], flannel["plugin"]["type"]) == ("portmap", "flannel")
    helpers = {p["program"] for p in portmap["processes"][1:]}  # xtables-nft-multi: gone before read
    assert {"iptables", "ip6tables"} <= helpers <= {"iptables", "ip6tables", "xtables-nft-multi"}
    assert {(c["change"], c["kind"]) for c in portmap["changes"]} == {
        ("removed", "iptables-chain"),
        ("removed", "iptables-rule"),
    }
    assert [(p["program"], p["cniCommand"]) for p in flannel["processes"] if p["plugin"]] == [
        ("flannel", "DEL"), ("bridge", "DEL"), ("host-local", "DEL"),
    ]  # fmt: skip
    removed = {c["where"]: c["by"] for e in trace["events"] for c in e["changes"] if c["kind"] == "file"}
    assert removed == {
        f"{cache}/flannel/{cid}": "flannel",
        f"{cache}/networks/cbr0/10.244.1.2": "host-local",
        f"{cache}/results/cbr0-{cid}-eth0": "libcni_py",
        f"{cache}/libcni_py/locks/cbr0-{cid}-eth0": "libcni_py",
    }
    assert all(c["change"] == "removed" for e in trace["events"] for c in e["changes"])
    gone = [c for c in flannel["changes"] if c["kind"] in ("link", "address", "route")]
    assert {c["by"] for c in gone} == {"bridge"}
    assert not [c for c in gone if "cni0" in c["text"].split(" (")[0].split()]  # cni0 stays
    links = kernel.links(wt.node)
    assert "cni0" in links and not [n for n, link in links.items() if link["kind"] == "veth"]
    assert ("cni0", "10.244.1.1/24") in kernel.addresses(wt.node)
    assert set(kernel.links(wt.pod)) == {"lo"}
    files = sorted(str(p.relative_to(wt.cache)) for p in wt.cache.rglob("*") if p.is_file())
    assert files == ["libcni_py/gc-lock/lock", "networks/cbr0/last_reserved_ip.0", "networks/cbr0/lock"]
    nat = wt.in_node("iptables-save -t nat").stdout
    assert ":CNI-HOSTPORT-DNAT" in nat and "CNI-DN-" not in nat and wt.cid not in nat

    # -- the conf file changed since the ADD (portmap taken out): DEL runs the recorded
    # configuration, with the recorded capability args, so portmap still removes its chain
    conflist = wt.work / "examples" / "flannel" / "net.d" / "10-flannel.conflist"
    original = conflist.read_text()
    without_portmap = json.loads(original)
    without_portmap["plugins"] = without_portmap["plugins"][:1]
    assert add(wt).returncode == 0
    conflist.write_text(json.dumps(without_portmap))
    proc = delete(wt, caps=False, trace="del-changed.json")
    assert proc.returncode == 0, proc.stderr
    assert "cnitool: note: using the capability args recorded when the attachment was added" in proc.stderr
    assert "10-flannel.conflist changed since" in proc.stderr
    assert "deleting with the configuration it was added with" in proc.stderr
    portmap, flannel = calls(json.loads((wt.root / "del-changed.json").read_text()))
    assert (portmap["plugin"]["type"], flannel["plugin"]["type"]) == ("portmap", "flannel")
    assert json.loads(portmap["stdin"])["runtimeConfig"]["portMappings"][0]["hostPort"] == 8080
    assert ("removed", "iptables-chain") in {(c["change"], c["kind"]) for c in portmap["changes"]}
    assert "CNI-DN-" not in wt.in_node("iptables-save -t nat").stdout
    # --current-config: the file as it is now, as Go's libcni does; the note says what is not undone
    conflist.write_text(original)
    assert add(wt).returncode == 0
    conflist.write_text(json.dumps(without_portmap))
    proc = wt.in_node(
        f"cnitool --trace-json {wt.root / 'del-current.json'} del cbr0 /var/run/netns/{wt.pod} --current-config"
    )
    assert proc.returncode == 0, proc.stderr
    assert (
        "deleting with the current configuration, as asked: what only the recorded one's plugins made is not undone"
        in proc.stderr
    )
    assert [c["plugin"]["type"] for c in calls(json.loads((wt.root / "del-current.json").read_text()))] == ["flannel"]
    assert "CNI-DN-" in wt.in_node("iptables-save -t nat").stdout
    conflist.write_text(original)
    assert delete(wt).returncode == 0  # idempotent: with the mappings it cleans up
    assert "CNI-DN-" not in wt.in_node("iptables-save -t nat").stdout

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


def test_go_cnitool_del_without_cap_args_leaves_the_chain(wt: Walkthrough, gopeer: Path) -> None:
    """The reason the document gives for cnitool reusing the recorded
    capability args: Go's cnitool (Go libcni) DELs without CAP_ARGS hand
    portmap no mappings, and its DNAT chain stays behind."""
    netns.create(wt.pod)
    caps = json.dumps({"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]})
    added = wt.in_node(f"CAP_ARGS='{caps}' {gopeer} add cbr0 /var/run/netns/{wt.pod}")
    assert added.returncode == 0, added.stderr
    assert f"cbr0-{wt.cid}-eth0" in os.listdir(wt.cache / "results")
    deleted = wt.in_node(f"{gopeer} del cbr0 /var/run/netns/{wt.pod}")
    assert deleted.returncode == 0, deleted.stderr
    nat = wt.in_node("iptables-save -t nat").stdout
    assert [line for line in nat.splitlines() if line.startswith(":CNI-DN-")]
    assert f'id: \\"{wt.cid}\\"' in nat and "-j DNAT --to-destination 10.244.1.2:80" in nat
    assert set(kernel.links(wt.pod)) == {"lo"}  # the rest of the DEL was done
    assert delete(wt).returncode == 0  # as the document does: DEL again, with the mappings
    assert "CNI-DN-" not in wt.in_node("iptables-save -t nat").stdout
