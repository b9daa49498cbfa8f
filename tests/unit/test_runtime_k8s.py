"""Kubernetes conventions: CNI_ARGS and capability arguments from a PodSpec."""

from __future__ import annotations

import pytest

from libcni_py.errors import ArgsError
from libcni_py.runtime.k8s import (
    BANDWIDTH_BURST_UNLIMITED,
    Bandwidth,
    DNSConfig,
    IPRange,
    NetworkSelection,
    PodSpec,
    PortMapping,
    bandwidth_from_annotations,
    capability_args,
    cni_args,
    parse_quantity,
    runtime_conf,
)


def test_cni_args_are_kubelets_in_order_and_skip_empty_values() -> None:
    spec = PodSpec(namespace="prod", name="web-0", uid="", extra_args=[("EXTRA", "1")])
    assert cni_args(spec, "abc123") == (
        ("IgnoreUnknown", "1"),
        ("K8S_POD_NAMESPACE", "prod"),
        ("K8S_POD_NAME", "web-0"),
        ("K8S_POD_INFRA_CONTAINER_ID", "abc123"),
        ("EXTRA", "1"),
    )
    assert ("K8S_POD_UID", "u-1") in cni_args(PodSpec(name="x", uid="u-1"), "abc")


def test_a_value_that_would_break_cni_args_is_refused() -> None:
    with pytest.raises(ArgsError, match="K8S_POD_NAME"):
        cni_args(PodSpec(name="a;b"), "abc")


def test_capability_args_pod_wide_and_per_interface() -> None:
    spec = PodSpec(
        name="web",
        port_mappings=[PortMapping(host_port=8080, container_port=80), PortMapping(host_port=0, container_port=9)],
        bandwidth=Bandwidth.from_rates(ingress=1000, egress=0),
        dns=DNSConfig(servers=["10.96.0.10"], searches=["svc.cluster.local"], options=["ndots:5"]),
        cgroup_path="/kubepods/pod1",
        annotations={"a": "b"},
        aliases=["web"],
        extra_capabilities={"deviceID": "0000:00:1f.6"},
    )
    selection = NetworkSelection(
        name="n", mac="c2:11:22:33:44:55", ips=["10.1.2.3/24"], ip_ranges=[[IPRange(subnet="10.1.2.0/24")]]
    )
    caps = capability_args(spec, selection)
    assert caps == {
        "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}],
        "bandwidth": {
            "ingressRate": 1000,
            "ingressBurst": BANDWIDTH_BURST_UNLIMITED,
            "egressRate": 0,
            "egressBurst": 0,
        },
        "dns": {"servers": ["10.96.0.10"], "searches": ["svc.cluster.local"], "options": ["ndots:5"]},
        "cgroupPath": "/kubepods/pod1",
        "io.kubernetes.cri.pod-annotations": {"a": "b"},
        "aliases": ["web"],
        "mac": "c2:11:22:33:44:55",
        "ips": ["10.1.2.3/24"],
        "ipRanges": [[{"subnet": "10.1.2.0/24"}]],
        "deviceID": "0000:00:1f.6",
    }
    assert "mac" not in capability_args(spec)
    assert capability_args(PodSpec(name="bare")) == {}


def test_bandwidth_from_annotations_as_containerd_reads_them() -> None:
    bw = bandwidth_from_annotations({"kubernetes.io/ingress-bandwidth": "10M"})
    assert bw == Bandwidth(ingress_rate=10_000_000, ingress_burst=BANDWIDTH_BURST_UNLIMITED)
    assert bandwidth_from_annotations({}) is None
    spec = PodSpec(name="x", annotations={"kubernetes.io/egress-bandwidth": "1Mi"})
    assert capability_args(spec)["bandwidth"]["egressRate"] == 2**20
    with pytest.raises(ArgsError, match="ingress-bandwidth"):
        bandwidth_from_annotations({"kubernetes.io/ingress-bandwidth": "fast"})


@pytest.mark.parametrize(
    ("text", "value"),
    [("100", 100), ("10k", 10_000), ("10M", 10_000_000), ("1.5G", 1_500_000_000), ("512Ki", 524_288), ("2Mi", 2**21)],
)
def test_quantities(text: str, value: int) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "M", "1.5", "-1", "1e6", "1.0001k", "10 M"])
def test_bad_quantities(text: str) -> None:
    with pytest.raises(ArgsError):
        parse_quantity(text)


def test_cli_forms() -> None:
    assert PortMapping.parse("8080:80") == PortMapping(host_port=8080, container_port=80)
    assert PortMapping.parse("127.0.0.1:53:5353/UDP") == PortMapping(
        host_port=53, container_port=5353, protocol="udp", host_ip="127.0.0.1"
    )
    assert PortMapping.parse("[::1]:80:8080").host_ip == "::1"
    assert Bandwidth.parse("10M:5M").to_json()["egressRate"] == 5_000_000
    assert Bandwidth.parse(":1k") == Bandwidth.from_rates(egress=1000)
    assert NetworkSelection.parse("storage:net1") == NetworkSelection(name="storage", ifname="net1")
    for bad in ("8080", "a:b", "1:2/icmp", "70000:80"):
        with pytest.raises(ArgsError):
            PortMapping.parse(bad)
    with pytest.raises(ArgsError):
        Bandwidth.parse("0")


def test_runtime_conf_for_one_network() -> None:
    spec = PodSpec(namespace="ns", name="p", port_mappings=[PortMapping(host_port=1, container_port=2)])
    rt = runtime_conf(spec, container_id="cid1", netns="/var/run/netns/x", ifname="eth1")
    assert (rt.container_id, rt.netns, rt.ifname) == ("cid1", "/var/run/netns/x", "eth1")
    assert dict(rt.args)["K8S_POD_INFRA_CONTAINER_ID"] == "cid1"
    assert rt.capability_args["portMappings"][0]["hostPort"] == 1
