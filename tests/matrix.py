"""The end-to-end matrix's driver (``tests/root/test_matrix_*.py``).

One :class:`Matrix` per test: a pod namespace, private cache and data dirs,
unique names, and the way the attachment is driven -- ``"lib"``
(:class:`libcni_py.CNI`) or ``"cli"`` (``cmd/cnitool.py``, whose container ID
is derived from the netns path as Go's cnitool does).  Every case runs ADD,
checks the kernel, CHECK (passes), breaks something by hand, CHECK (fails),
DEL, and :meth:`Attachment.assert_gone`: no link, address, host-local
reservation, iptables rule or cache file of it left.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import kernel
import networks
from support import DEBIAN_PLUGINS, run_cnitool, unique, write_conf

from libcni_py import CNI, RuntimeConf, load_network
from libcni_py.core.args import cnitool_container_id
from libcni_py.core.result import to_json
from libcni_py.errors import PluginError

VIAS = ("lib", "cli")


def sh(*argv: str) -> str:
    """Run a command (``ip``, ``tc``, ``iptables``...) in the node; its stdout."""
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


def chains() -> set[str]:
    """Every iptables chain: ``"<binary> <table> <chain>"``."""
    return {
        f"{line.split(': ', 1)[0]} {line.split(': ', 1)[1][1:].split()[0]}"
        for line in kernel.all_iptables()
        if line.split(": ", 1)[1].startswith(":")
    }


class Matrix:
    """The sandbox of one matrix test.

    Attributes:
        via: ``"lib"`` or ``"cli"``.
        pod: the pod namespace's name; ``netns`` its path.
        data_dir: host-local's ``dataDir`` (use :meth:`host_local`).
        subnet: this test's subnet (``tests/networks.py``): an IPv4 ``/24``
            and an IPv6 ``/64`` no other test of the run has.
        block: its number, unique in the run (for MAC addresses).
    """

    def __init__(self, via: str, pod: str, tmp_path: Path) -> None:
        self.via = via
        self.pod = pod
        self.netns = f"/var/run/netns/{pod}"
        self.tmp = tmp_path
        self.data_dir = tmp_path / "ipam"
        self.cache_dir = tmp_path / "cache"
        self.conf_dir = tmp_path / "net.d"
        self.conf_dir.mkdir(exist_ok=True)
        self.subnet = networks.subnet()
        self.block = self.subnet.index
        self.node_links_before = set(kernel.links())
        self.made_links: list[str] = []

    def v4(self, host: int = 0, prefix: int = 24) -> str:
        """An address (or with host 0, the subnet) in this test's IPv4 block."""
        return f"{self.subnet.host(host)}/{prefix}" if host else self.subnet.cidr

    def v6(self, host: int = 0) -> str:
        """An address (or with host 0, the subnet) in this test's IPv6 block."""
        return self.subnet.host6(host) if host else self.subnet.v6

    def host_local(self, *subnets: str, routes: list[dict[str, str]] | None = None) -> dict[str, Any]:
        """A host-local IPAM section with a range set per subnet and this test's data dir."""
        return networks.host_local(*subnets, data_dir=self.data_dir, routes=routes or None, ranges=True)

    def parent_link(self, prefix: str = "mxp") -> str:
        """A link-less parent device in the node (``dummy``, or ``ifb`` on
        kernels without the dummy driver, such as CI's); removed at teardown."""
        name = unique(prefix)
        for kind in ("dummy", "ifb"):
            if (
                subprocess.run(["ip", "link", "add", name, "type", kind], capture_output=True, check=False).returncode
                == 0
            ):
                break
        else:
            raise AssertionError("the kernel has neither the dummy nor the ifb driver")
        sh("ip", "link", "set", name, "up")
        self.made_links.append(name)
        return name

    def cleanup(self) -> None:
        for name in self.made_links:
            subprocess.run(["ip", "link", "del", name], capture_output=True, check=False)

    def attach(
        self,
        plugins: list[dict[str, Any]],
        *,
        ifname: str = "eth0",
        caps: dict[str, Any] | None = None,
        cni_version: str = "1.0.0",
        path: str | None = None,
    ) -> Attachment:
        """Write the network's conflist; the attachment to drive."""
        return Attachment(self, plugins, ifname=ifname, caps=caps or {}, cni_version=cni_version, path=path)


class Attachment:
    """One container's attachment to the matrix network, driven by the library
    or by cnitool.  ``plugin PATH`` (``path``) is the plugins' PATH."""

    def __init__(
        self,
        mx: Matrix,
        plugins: list[dict[str, Any]],
        *,
        ifname: str,
        caps: dict[str, Any],
        cni_version: str,
        path: str | None,
    ) -> None:
        self.mx = mx
        self.network = unique("mx")
        self.ifname = ifname
        self.caps = caps
        self.container_id = cnitool_container_id(mx.netns) if mx.via == "cli" else unique("mxc")
        write_conf(mx.conf_dir, "10-matrix.conflist", networks.conflist(self.network, plugins, cni_version))
        self.env = {"PATH": path} if path else {}
        self.ips: list[str] = []
        self.chains_before = chains()

    @property
    def cache_file(self) -> Path:
        return self.mx.cache_dir / "results" / f"{self.network}-{self.container_id}-{self.ifname}"

    # -- driving -----------------------------------------------------------

    def _cni(self) -> CNI:
        import os

        return CNI(plugin_path=[str(DEBIAN_PLUGINS)], cache_dir=str(self.mx.cache_dir), env=dict(os.environ) | self.env)

    def _rt(self) -> RuntimeConf:
        return RuntimeConf(
            container_id=self.container_id, netns=self.mx.netns, ifname=self.ifname, capability_args=self.caps
        )

    def _cli(self, command: str) -> subprocess.CompletedProcess[str]:
        env = {
            "NETCONFPATH": str(self.mx.conf_dir),
            "CNI_PATH": str(DEBIAN_PLUGINS),
            "CNI_CACHE_DIR": str(self.mx.cache_dir),
            "CAP_ARGS": json.dumps(self.caps),
            **self.env,
        }
        return run_cnitool(command, "--ifname", self.ifname, self.network, self.mx.netns, env=env)

    def _outcome(self, command: str) -> tuple[dict[str, Any] | None, str | None]:
        """(result of ADD, error line or None); every plugin error names the
        network first (checked here), the rest is the plugin's part."""
        result, error = self._raw_outcome(command)
        if error is not None:
            prefix = f'network "{self.network}": '
            assert error.startswith(prefix), error
            error = error.removeprefix(prefix)
        return result, error

    def _raw_outcome(self, command: str) -> tuple[dict[str, Any] | None, str | None]:
        if self.mx.via == "cli":
            proc = self._cli(command)
            if proc.returncode != 0:
                assert "Traceback" not in proc.stderr
                errors = [line for line in proc.stderr.splitlines() if line.startswith("cnitool: error: ")]
                assert errors and proc.returncode == 1, proc.stderr
                return None, errors[-1].removeprefix("cnitool: error: ")
            return (json.loads(proc.stdout) if command == "add" else None), None
        net = load_network(str(self.mx.conf_dir), self.network)
        cni = self._cni()
        try:
            if command == "add":
                return to_json(cni.add(net, self._rt())), None
            getattr(cni, "delete" if command == "del" else command)(net, self._rt())
            return None, None
        except PluginError as exc:
            return None, exc.one_line()

    def add(self) -> dict[str, Any]:
        """ADD (must succeed); the result as JSON.  Its addresses are kept, to
        look for them in iptables rules after the DEL."""
        res, error = self._outcome("add")
        assert error is None, error
        assert res is not None
        self.ips = [ip["address"].split("/")[0] for ip in res.get("ips", [])]
        assert self.cache_file.exists()
        assert json.loads(self.cache_file.read_text())["result"] == res
        return res

    def add_error(self) -> str:
        """ADD that must fail; its error line."""
        _, error = self._outcome("add")
        assert error is not None
        return error

    def check(self) -> str | None:
        """CHECK: None if it passed, else the error line."""
        return self._outcome("check")[1]

    def delete(self) -> None:
        """DEL (must succeed)."""
        _, error = self._outcome("del")
        assert error is None, error

    # -- what is left ------------------------------------------------------

    def leftover_rules(self) -> list[str]:
        """iptables rules or chains (any table, v4 and v6) that mention this
        container's ID or one of its addresses."""
        patterns = [re.escape(self.container_id)]
        patterns += [rf"(?<![\w.:]){re.escape(ip)}(?![\w])" for ip in self.ips if ip not in ("127.0.0.1", "::1")]
        found = re.compile("|".join(patterns))
        return [line for line in kernel.all_iptables() if found.search(line)]

    def assert_gone(
        self,
        *,
        node_links_may_stay: frozenset[str] | set[str] = frozenset(),
        chains_may_stay: frozenset[str] | set[str] = frozenset(),
    ) -> None:
        """Nothing of the attachment left: no new node link (but those named,
        e.g. a bridge, which the bridge plugin never deletes), only ``lo``
        in the pod, no host-local reservation, no new iptables chain (but
        those named: portmap's and firewall's top-level chains stay by
        design) and no rule mentioning the container, no cache file."""
        new_links = set(kernel.links()) - self.mx.node_links_before - set(self.mx.made_links)
        assert new_links <= node_links_may_stay, new_links
        new_chains = chains() - self.chains_before
        assert {chain.split()[-1] for chain in new_chains} <= chains_may_stay, new_chains
        assert set(kernel.links(self.mx.pod)) == {"lo"}
        assert kernel.addresses(self.mx.pod) <= {("lo", "127.0.0.1/8"), ("lo", "::1/128")}
        assert kernel.reservations(self.mx.data_dir, self.network) == []
        assert self.leftover_rules() == []
        assert not self.cache_file.exists()
