"""The CRI codec of ``libcni_py.runtime.cri`` against the real protobuf
classes, generated from ``../shared/thirdparty/cri-api/api.proto`` at test
time (no generated code is kept in the repository)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shared_node import cri_messages

from libcni_py.errors import CRIError
from libcni_py.runtime import cri


@pytest.fixture(scope="module")
def pb(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return cri_messages(tmp_path_factory.mktemp("cri-gen"))


def _sandbox(pb: Any, sandbox_id: str, state: int, **extra: Any) -> Any:
    return pb.PodSandbox(
        id=sandbox_id,
        metadata=pb.PodSandboxMetadata(name=f"n-{sandbox_id[:5]}", uid="u", namespace="default", attempt=3),
        state=state,
        created_at=1733390000123456789,
        labels={"app": "web", "io.kubernetes.pod.name": "x"},
        annotations={"a": "b" * 300},
        runtime_handler="runc",
        **extra,
    )


def test_request_is_an_empty_list_request(pb: Any) -> None:
    request = pb.ListPodSandboxRequest()
    request.ParseFromString(cri.encode_list_pod_sandbox_request())
    assert not request.HasField("filter")
    assert cri.encode_list_pod_sandbox_request() == pb.ListPodSandboxRequest().SerializeToString()


def test_decodes_ids_and_states_skipping_every_other_field(pb: Any) -> None:
    ready = "a" * 64
    notready = "0123456789abcdef" * 4
    data = pb.ListPodSandboxResponse(
        items=[_sandbox(pb, ready, pb.SANDBOX_READY), _sandbox(pb, notready, pb.SANDBOX_NOTREADY)]
    ).SerializeToString()
    assert cri.decode_list_pod_sandbox_response(data) == [(ready, 0), (notready, 1)]


def test_empty_response_and_default_state(pb: Any) -> None:
    assert cri.decode_list_pod_sandbox_response(pb.ListPodSandboxResponse().SerializeToString()) == []
    # proto3 leaves a zero state out of the bytes: it is READY
    data = pb.ListPodSandboxResponse(items=[pb.PodSandbox(id="x1")]).SerializeToString()
    assert b"\x18" not in data
    assert cri.decode_list_pod_sandbox_response(data) == [("x1", cri.SANDBOX_READY)]


@settings(max_examples=60, deadline=None)
@given(
    items=st.lists(
        st.tuples(st.text(min_size=1, max_size=80), st.sampled_from([0, 1]), st.integers(0, 2**63 - 1)), max_size=8
    )
)
def test_round_trip_any_sandboxes(pb: Any, items: list[tuple[str, int, int]]) -> None:
    message = pb.ListPodSandboxResponse(
        items=[pb.PodSandbox(id=i, state=s, created_at=c, labels={"k": i}) for i, s, c in items]
    )
    assert cri.decode_list_pod_sandbox_response(message.SerializeToString()) == [(i, s) for i, s, _ in items]


@pytest.mark.parametrize(
    "data",
    [
        b"\x0a\x05\x0a\x03ab",  # items runs past the end
        b"\x0a",  # a key with no length
        b"\x08\x01",  # items as a varint
        b"\x0a\x02\x18\x01",  # a sandbox without an id
        b"\x0b",  # a group (wire type 3)
        b"\x0a\x03\x0a\x01\xff",  # an id that is not UTF-8
        b"\x0a\x0b" + b"\x18" + b"\xff" * 10,  # a varint of 11 bytes
    ],
)
def test_garbage_is_a_value_error(data: bytes) -> None:
    with pytest.raises((ValueError, UnicodeDecodeError)):
        cri.decode_list_pod_sandbox_response(data)


def test_fields_of_newer_versions_are_skipped(pb: Any) -> None:
    data = pb.ListPodSandboxResponse(items=[_sandbox(pb, "abc", 1)]).SerializeToString()
    # an unknown field 9 of every wire type, at both levels
    unknown = b"\x48\x05" + b"\x49" + b"\x00" * 8 + b"\x4a\x02hi" + b"\x4d" + b"\x00" * 4
    inner = pb.PodSandbox(id="def", state=0).SerializeToString() + unknown
    data += unknown + b"\x0a" + bytes([len(inner)]) + inner
    assert cri.decode_list_pod_sandbox_response(data) == [("abc", 1), ("def", 0)]


@pytest.mark.parametrize(
    ("endpoint", "path"),
    [
        ("unix:///run/containerd/containerd.sock", "/run/containerd/containerd.sock"),
        ("unix:/run/crio/crio.sock", "/run/crio/crio.sock"),
        ("/tmp/x.sock", "/tmp/x.sock"),
    ],
)
def test_socket_path(endpoint: str, path: str) -> None:
    assert cri.socket_path(endpoint) == path


def test_tcp_endpoints_are_refused() -> None:
    with pytest.raises(CRIError, match="only unix sockets"):
        cri.socket_path("tcp://127.0.0.1:1234")


def test_one_line_errors_before_any_connection(tmp_path: Path) -> None:
    with pytest.raises(CRIError) as missing:
        cri.live_sandboxes(f"unix://{tmp_path}/nope.sock")
    assert missing.value.one_line().startswith(f"CRI endpoint unix://{tmp_path}/nope.sock: no such socket (")
    (tmp_path / "file").write_text("")
    with pytest.raises(CRIError, match="not a socket"):
        cri.live_sandboxes(str(tmp_path / "file"))
