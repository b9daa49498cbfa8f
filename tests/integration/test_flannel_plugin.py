"""Flannel's own CNI plugin (flannel-io/cni-plugin, built by scripts/setup
from ../shared/thirdparty; the ``real_flannel`` fixture says why a test
cannot run without it), with the recorder test plugin as its delegate: the
delegate configuration it builds from subnet.env and its config, the file
it keeps for DEL, what its DEL does when the delegate's DEL fails, and its
errors.  (With Debian's bridge, in namespaces: tests/root/test_walkthrough.py
and tests/root/test_flannel_del_pitfall.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import NO_NETNS, PLUGINS, read_calls, write_conf

from libcni_py import CNI, PluginError, RuntimeConf, load_network

SUBNET_ENV = "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.3.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n"
RT = RuntimeConf(container_id="pod-abc", netns=NO_NETNS, ifname="eth0")


class Setup:
    def __init__(self, tmp_path: Path, conf_dir: Path, cache_dir: Path, record_file: Path, flannel: Path) -> None:
        self.subnet_env = tmp_path / "subnet.env"
        self.subnet_env.write_text(SUBNET_ENV)
        self.data_dir = tmp_path / "flannel-data"
        self.conf_dir = conf_dir
        self.record_file = record_file
        # the real plugin first; the delegates (recorder) from the test plugins
        bindir = tmp_path / "bin"
        bindir.mkdir()
        (bindir / "flannel").symlink_to(flannel)
        self.stderr: list[bytes] = []
        self.cni = CNI(
            plugin_path=[str(bindir), str(PLUGINS)],
            cache_dir=str(cache_dir),
            env={"RECORD_FILE": str(record_file), "PATH": "/usr/bin:/bin"},
            on_stderr=lambda _req, text: self.stderr.append(text),
        )

    def network(self, version: str = "1.0.0", **flannel: object) -> object:
        plugin = {"type": "flannel", "subnetFile": str(self.subnet_env), "dataDir": str(self.data_dir), **flannel}
        plugin.setdefault("delegate", {"type": "recorder"})
        write_conf(self.conf_dir, "10-flannel.conflist", {"cniVersion": version, "name": "cbr0", "plugins": [plugin]})
        return load_network(str(self.conf_dir), "cbr0")

    def delegated(self) -> list[tuple[str, dict[str, object]]]:
        return [(str(c["command"]), json.loads(str(c["stdin"]))) for c in read_calls(self.record_file)]


@pytest.fixture
def fl(tmp_path: Path, conf_dir: Path, cache_dir: Path, record_file: Path, real_flannel: Path) -> Setup:
    return Setup(tmp_path, conf_dir, cache_dir, record_file, real_flannel)


def test_add_builds_the_delegate_as_flannel_does(fl: Setup) -> None:
    net = fl.network(ipam={"routes": [{"dst": "192.168.0.0/16"}]})
    res = fl.cni.add(net, RT)  # type: ignore[arg-type]
    [(command, stdin)] = fl.delegated()
    assert command == "ADD"
    assert stdin == {
        "cniVersion": "1.0.0",
        "name": "cbr0",
        "type": "recorder",
        "ipMasq": False,  # flanneld masquerades (FLANNEL_IPMASQ=true), so the delegate must not
        "mtu": 1450,
        "ipam": {
            "type": "host-local",
            "ranges": [[{"subnet": "10.244.3.0/24"}]],  # normalised as Go's ParseCIDR
            "routes": [{"dst": "192.168.0.0/16"}, {"dst": "10.244.0.0/16"}],
        },
    }
    # the delegate's result is the plugin's; the same bytes are kept for DEL
    assert [i.name for i in res.interfaces] == ["rec0"]  # type: ignore[union-attr]
    saved = fl.data_dir / RT.container_id
    assert json.loads(saved.read_bytes()) == stdin
    assert saved.read_bytes() == json.dumps(stdin, sort_keys=True, separators=(",", ":")).encode()
    assert oct(saved.stat().st_mode & 0o777) == "0o600" and oct(fl.data_dir.stat().st_mode & 0o777) == "0o700"


def test_bridge_defaults_and_delegate_overrides(fl: Setup) -> None:
    fl.subnet_env.write_text(SUBNET_ENV.replace("IPMASQ=true", "IPMASQ=false"))
    net = fl.network(delegate={"type": "recorder", "mtu": 1400, "hairpinMode": True})
    fl.cni.add(net, RT)  # type: ignore[arg-type]
    stdin = fl.delegated()[0][1]
    assert stdin["mtu"] == 1400 and stdin["hairpinMode"] is True and stdin["ipMasq"] is True
    assert "isGateway" not in stdin  # only added for type bridge
    # with no delegate type, the delegate is bridge, a gateway
    fl.network(delegate={})
    other = RT.replace(container_id="pod-def")
    with pytest.raises(PluginError, match='failed to delegate add: failed to find plugin "bridge" in path'):
        fl.cni.add(load_network(str(fl.conf_dir), "cbr0"), other)
    assert json.loads((fl.data_dir / other.container_id).read_text())["isGateway"] is True


def test_ipv6_and_runtime_config(fl: Setup) -> None:
    fl.subnet_env.write_text(
        SUBNET_ENV + "FLANNEL_IPV6_NETWORK=fd00:10:244::/56\nFLANNEL_IPV6_SUBNET=fd00:10:244:3::1/64\n"
    )
    net = fl.network(capabilities={"portMappings": True})
    caps = {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]}
    fl.cni.add(net, RT.replace(capability_args=caps))  # type: ignore[arg-type]
    stdin = fl.delegated()[0][1]
    assert stdin["ipam"] == {
        "type": "host-local",
        "ranges": [[{"subnet": "10.244.3.0/24"}], [{"subnet": "fd00:10:244:3::/64"}]],
        "routes": [{"dst": "10.244.0.0/16"}, {"dst": "fd00:10:244::/56"}],
    }
    assert stdin["runtimeConfig"] == caps


def test_del_repeats_the_saved_delegate_and_forgets_it(fl: Setup) -> None:
    net = fl.network()
    fl.cni.add(net, RT)  # type: ignore[arg-type]
    saved = (fl.data_dir / RT.container_id).read_bytes()
    fl.subnet_env.unlink()  # flanneld gone, or the subnet changed: DEL does not need it
    fl.cni.delete(net, RT)  # type: ignore[arg-type]
    assert [c for c, _ in fl.delegated()] == ["ADD", "DEL"]
    assert read_calls(fl.record_file)[1]["stdin"] == saved.decode()
    assert not (fl.data_dir / RT.container_id).exists()
    # a second DEL: no file, so success without a delegate call
    fl.cni.delete(net, RT)  # type: ignore[arg-type]
    assert [c for c, _ in fl.delegated()] == ["ADD", "DEL"]


def test_failed_delegate_del_forgets_the_file_all_the_same(fl: Setup) -> None:
    """Flannel's plugin from v1.2.0: its DEL removes the saved delegate
    configuration even when the delegate's DEL failed, so a retried DEL
    succeeds without running the delegate at all.  libcni_py keeps its
    record after the failed DEL (state "deleting"); with no namespace to
    look into here, the retry's success removes it -- what libcni_py does
    when the namespace is alive is tests/root/test_flannel_del_pitfall.py."""
    net = fl.network(delegate={"type": "recorder", "failOn": ["DEL"]})
    fl.cni.add(net, RT)  # type: ignore[arg-type]
    with pytest.raises(PluginError, match="recorder told to fail DEL"):
        fl.cni.delete(net, RT)  # type: ignore[arg-type]
    assert not (fl.data_dir / RT.container_id).exists()  # gone although the delegate's DEL failed
    record = fl.cni.cached_record(net, RT)  # type: ignore[arg-type]
    assert record is not None and record.progress is not None
    assert (record.progress.state, record.progress.remaining) == ("deleting", ((0, "flannel"),))
    fl.cni.delete(net, RT)  # type: ignore[arg-type]
    assert [c for c, _ in fl.delegated()] == ["ADD", "DEL"]  # the retry never reached the delegate
    assert fl.cni.cached_record(net, RT) is None  # type: ignore[arg-type]


def test_stderr_carries_a_go_dump_without_a_final_newline(fl: Setup) -> None:
    """Every successful ADD writes the delegate configuration to stderr, as
    a Go dump and as JSON, with no final newline (the trace shows it as a
    block of its own: tests/integration/test_cnitool_trace.py)."""
    net = fl.network()
    fl.cni.add(net, RT)  # type: ignore[arg-type]
    [text] = fl.stderr
    saved = (fl.data_dir / RT.container_id).read_bytes()
    assert text.startswith(b"\nmap[string]interface {}{")
    assert text.endswith(b"delegateAdd: netconf sent to delegate plugin:\n" + saved)


@pytest.mark.parametrize(
    ("subnet_env", "flannel", "message"),
    [
        (
            None,
            {},
            "failed to load flannel 'subnet.env' file: open {env}: no such file or directory. "
            "Check the flannel pod log for this node.",
        ),
        (
            "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.3.1/24\n",
            {},
            "failed to load flannel 'subnet.env' file: {env} is missing FLANNEL_MTU, FLANNEL_IPMASQ. "
            "Check the flannel pod log for this node.",
        ),
        (
            "FLANNEL_SUBNET=10.244.3.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n",
            {},
            "failed to load flannel 'subnet.env' file: {env} is missing FLANNEL_NETWORK, FLANNEL_IPV6_NETWORK. "
            "Check the flannel pod log for this node.",
        ),
        (
            SUBNET_ENV.replace("10.244.3.1/24", "10.244.3.300/24"),
            {},
            "failed to load flannel 'subnet.env' file: invalid CIDR address: 10.244.3.300/24. "
            "Check the flannel pod log for this node.",
        ),
        (
            SUBNET_ENV,
            {"delegate": {"type": "recorder", "name": "x"}},
            "'delegate' dictionary must not have 'name' field, it'll be set by flannel",
        ),
        (
            SUBNET_ENV,
            {"delegate": {"type": "recorder", "ipam": {}}},
            "'delegate' dictionary must not have 'ipam' field, it'll be set by flannel",
        ),
        (SUBNET_ENV, {"delegate": {"type": 7}}, "'delegate' dictionary, if present, must have (string) 'type' field"),
    ],
)
def test_errors(subnet_env: str | None, flannel: dict[str, object], message: str, fl: Setup) -> None:
    if subnet_env is None:
        fl.subnet_env.unlink()
    else:
        fl.subnet_env.write_text(subnet_env)
    net = fl.network(**flannel)
    with pytest.raises(PluginError) as info:
        fl.cni.add(net, RT)  # type: ignore[arg-type]
    assert info.value.plugin_msg == message.format(env=fl.subnet_env)
    assert fl.delegated() == [] and not (fl.data_dir / RT.container_id).exists()
