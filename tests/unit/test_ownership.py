"""Whose an attachment is, whether GC may delete it, and pod namespace names
(pure rules: libcni_py.core.ownership, libcni_py.runtime.sandbox)."""

from __future__ import annotations

import pytest

from libcni_py.core import ownership
from libcni_py.core.ownership import Owner, judge, owner_of
from libcni_py.runtime.sandbox import PodSandbox, decode_sandbox, encode_sandbox, netns_name_for, same_pod

UUID = "5f0c3a2e-9b1d-4c7e-8a6f-0123456789ab"
CRI_ARGS = [
    ("IgnoreUnknown", "1"),
    ("K8S_POD_NAMESPACE", "default"),
    ("K8S_POD_NAME", "web"),
    ("K8S_POD_INFRA_CONTAINER_ID", "a" * 64),
]


@pytest.mark.parametrize(
    ("cid", "netns", "args", "pods", "owner"),
    [
        ("a" * 64, "/var/run/netns/lcpy-x", CRI_ARGS, {"a" * 64}, ownership.LIBCNI_PY),
        ("b" * 64, f"/run/netns/netns-{UUID}", [("IgnoreUnknown", "1"), ("K8S_POD_NAME", "c1")], (), ownership.PODMAN),
        ("b" * 64, "", [("IgnoreUnknown", "1"), ("K8S_POD_NAME", "c1")], (), ownership.PODMAN),
        ("c" * 64, f"/var/run/netns/cni-{UUID}", CRI_ARGS, (), ownership.CONTAINERD),
        ("d" * 64, f"/var/run/netns/{UUID}", CRI_ARGS, (), ownership.CRIO),
        ("e" * 64, "/proc/4242/ns/net", CRI_ARGS, (), ownership.K8S),
        ("cnitool-0123456789abcdef0123", "/var/run/netns/blue", [], (), ownership.CNITOOL),
        ("f" * 64, f"/var/run/netns/cni-{UUID}", [], (), ownership.UNKNOWN),  # containerd's name alone is not enough
        ("cnitool-xyz", "/var/run/netns/blue", [], (), ownership.UNKNOWN),
    ],
)
def test_owner_of(cid: str, netns: str, args: list[tuple[str, str]], pods: object, owner: str) -> None:
    found = owner_of(cid, netns, args, pods)  # type: ignore[arg-type]
    assert found.name == owner
    assert bool(found.evidence) == (owner != ownership.UNKNOWN)


def test_judge_needs_proof_of_death() -> None:
    cri = Owner(name=ownership.CONTAINERD, evidence="x")
    podman = Owner(name=ownership.PODMAN, evidence="x")
    assert judge("c", "/n", "gone", podman) == ownership.Verdict(dead=True, reason="namespace /n is gone")
    assert judge("c", "/n", "stale", podman).dead
    alive = judge("c", "/n", "alive", podman)
    assert not alive.dead and alive.reason == "namespace /n is alive"
    assert not judge("c", "", "unknown", podman).dead
    assert "names no namespace" in judge("c", "", "unknown", podman).reason
    assert judge("c", "", "unknown", podman, force=True).dead
    assert judge("c", "/n", "alive", podman, force=True).dead  # Go's GC, asked for
    # a CRI runtime's list: listed -> kept whatever else; not listed -> dead if it is a CRI sandbox
    listed = judge("c", "/n", "gone", cri, live_sandboxes={"c"}, force=True)
    assert not listed.dead and "says sandbox c is alive" in listed.reason
    assert judge("x", "/n", "alive", cri, live_sandboxes={"c"}).dead
    assert not judge("x", "/n", "alive", podman, live_sandboxes={"c"}).dead  # podman is not the CRI runtime's


def test_pod_namespace_names_are_injective_and_ours() -> None:
    one, two = netns_name_for("web-frontend-1"), netns_name_for("web-frontend-2")
    assert one != two and one == "lcpy-web-frontend-1"
    long_a, long_b = "a" * 65, "a" * 64 + "b"
    assert netns_name_for(long_a) != netns_name_for(long_b)
    assert netns_name_for(long_a).startswith("lcpyh-") and len(netns_name_for(long_a)) < 255
    # the hashed form never equals a plain one: IDs of the plain form start after "lcpy-"
    assert not netns_name_for(long_a).startswith("lcpy-")
    assert not netns_name_for("x" * 64).startswith("cni-")


def test_setup_phase_round_trips_and_does_not_change_the_pod() -> None:
    pod = PodSandbox(container_id="p1", netns="/n", netns_owned=True, created=1.5)
    busy = pod.replace(setup_pid=42, setup_start=7)
    back = decode_sandbox(encode_sandbox(busy), "rec")
    assert (back.setup_pid, back.setup_start) == (42, 7)
    assert decode_sandbox(encode_sandbox(pod), "rec").setup_pid == 0
    assert b'"setup"' not in encode_sandbox(pod)
    assert same_pod(pod, busy) and not same_pod(pod, pod.replace(created=2.0)) and not same_pod(pod, None)
