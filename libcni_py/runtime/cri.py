"""Asking a CRI runtime (containerd, CRI-O) which pod sandboxes exist.

GC on a shared node must not delete the network of a pod another runtime
still has: :func:`live_sandboxes` asks the runtime over its CRI socket
(``runtime.v1.RuntimeService/ListPodSandbox``, as the kubelet does) and
returns the IDs of the sandboxes it reports.  Both ``SANDBOX_READY`` and
``SANDBOX_NOTREADY`` count: a stopped sandbox that still exists is the
runtime's to tear down (its ``RemovePodSandbox`` runs the CNI DEL), so its
attachments are not garbage for anyone else.  A sandbox's CNI container ID is
its sandbox ID.

Only grpcio is needed (the ``cri`` extra: ``pip install libcni_py[cri]``),
imported when a query is made, so the one-shot CLI never loads it unless
asked.  No code generated from the CRI proto is kept: the request is empty
(no filter) and the three fields read from the response are decoded here
(``kubernetes/cri-api`` ``api.proto``)::

    message ListPodSandboxResponse { repeated PodSandbox items = 1; }
    message PodSandbox { string id = 1; PodSandboxMetadata metadata = 2;
                         PodSandboxState state = 3; ... }
    enum PodSandboxState { SANDBOX_READY = 0; SANDBOX_NOTREADY = 1; }
"""

from __future__ import annotations

import os
import stat

from ..errors import CRIError

__all__ = [
    "LIST_POD_SANDBOX",
    "SANDBOX_NOTREADY",
    "SANDBOX_READY",
    "decode_list_pod_sandbox_response",
    "encode_list_pod_sandbox_request",
    "live_sandboxes",
    "socket_path",
]

LIST_POD_SANDBOX = "/runtime.v1.RuntimeService/ListPodSandbox"
SANDBOX_READY = 0
SANDBOX_NOTREADY = 1

_WHICH = "containerd's is unix:///run/containerd/containerd.sock, CRI-O's unix:///var/run/crio/crio.sock"

# protobuf wire types
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


class _Truncated(ValueError):
    """Bytes that end inside a field."""


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = 0
    shift = 0
    while True:
        if pos >= len(data):
            raise _Truncated("varint runs past the end")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift >= 70:
            raise ValueError("varint longer than 10 bytes")


def _fields(data: bytes) -> list[tuple[int, int, int | bytes]]:
    """``(field number, wire type, value)`` of each field of one message;
    a length-delimited value is its bytes, a varint its number; fixed-size
    values are skipped (returned as their bytes)."""
    out: list[tuple[int, int, int | bytes]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ValueError("field number 0")
        value: int | bytes
        if wire == _VARINT:
            value, pos = _varint(data, pos)
        elif wire == _LEN:
            size, pos = _varint(data, pos)
            if pos + size > len(data):
                raise _Truncated(f"field {number} runs past the end")
            value, pos = data[pos : pos + size], pos + size
        elif wire in (_I64, _I32):
            size = 8 if wire == _I64 else 4
            if pos + size > len(data):
                raise _Truncated(f"field {number} runs past the end")
            value, pos = data[pos : pos + size], pos + size
        else:
            raise ValueError(f"field {number} has wire type {wire} (groups are not used by CRI)")
        out.append((number, wire, value))
    return out


def encode_list_pod_sandbox_request() -> bytes:
    """``ListPodSandboxRequest{}``: no filter, so every sandbox is listed."""
    return b""


def decode_list_pod_sandbox_response(data: bytes) -> list[tuple[str, int]]:
    """``(id, state)`` of each sandbox in a ``ListPodSandboxResponse``.

    Raises:
        ValueError: ``data`` is not such a message.
    """
    out: list[tuple[str, int]] = []
    for number, wire, item in _fields(data):
        if number != 1:
            continue  # a field newer than this reader
        if wire != _LEN or not isinstance(item, bytes):
            raise ValueError("items (field 1) is not a message")
        sandbox_id = ""
        state = SANDBOX_READY  # proto3: an absent enum is its zero value
        for sub_number, sub_wire, value in _fields(item):
            if sub_number == 1:
                if sub_wire != _LEN or not isinstance(value, bytes):
                    raise ValueError("PodSandbox.id (field 1) is not a string")
                sandbox_id = value.decode("utf-8")
            elif sub_number == 3:
                if sub_wire != _VARINT or not isinstance(value, int):
                    raise ValueError("PodSandbox.state (field 3) is not an enum")
                state = value
        if not sandbox_id:
            raise ValueError("a PodSandbox without an id")
        out.append((sandbox_id, state))
    return out


def socket_path(endpoint: str) -> str:
    """The socket path of an endpoint given as kubelet takes it
    (``unix:///run/containerd/containerd.sock``) or as a plain path."""
    if endpoint.startswith("unix://"):
        return endpoint[len("unix://") :]
    if endpoint.startswith("unix:"):
        return endpoint[len("unix:") :]
    if "://" in endpoint:
        raise CRIError(endpoint, "only unix sockets are supported", hint=_WHICH)
    return endpoint


def _check_socket(endpoint: str, path: str) -> None:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise CRIError(endpoint, "no such socket", hint=f"is the runtime running? name its socket: {_WHICH}") from None
    except PermissionError:
        raise CRIError(endpoint, "permission denied", hint="run as root (the CRI socket is root's)") from None
    if not stat.S_ISSOCK(info.st_mode):
        raise CRIError(endpoint, "not a socket", hint=f"name the runtime's CRI socket: {_WHICH}")
    if not os.access(path, os.R_OK | os.W_OK):
        raise CRIError(endpoint, "permission denied", hint="run as root (the CRI socket is root's)")


def live_sandboxes(endpoint: str, timeout: float = 5.0) -> frozenset[str]:
    """The IDs of the pod sandboxes the CRI runtime at ``endpoint`` reports
    (ready or not: each still exists, and its network is the runtime's).

    Args:
        endpoint: ``unix:///path`` or a socket path.
        timeout: seconds for the whole call.

    Raises:
        CRIError: grpcio is not installed, the socket is missing, refused or
            not ours to use, the server is not a CRI runtime, the call timed
            out or the answer cannot be decoded -- one line naming the
            endpoint and what to do.
    """
    path = socket_path(endpoint)
    _check_socket(endpoint, path)
    try:
        import grpc
    except ImportError:
        raise CRIError(
            endpoint, "asking a CRI runtime needs grpcio", hint="install libcni_py[cri] (pip install 'grpcio>=1.50')"
        ) from None

    def decode(data: bytes) -> frozenset[str]:
        try:
            return frozenset(sandbox_id for sandbox_id, _ in decode_list_pod_sandbox_response(data))
        except (ValueError, UnicodeDecodeError) as exc:
            raise CRIError(
                endpoint, f"the ListPodSandbox answer cannot be decoded ({exc})", hint="is this a CRI runtime?"
            ) from None

    channel = grpc.insecure_channel(f"unix:{path}")
    try:
        call = channel.unary_unary(
            LIST_POD_SANDBOX, request_serializer=lambda _: encode_list_pod_sandbox_request(), response_deserializer=None
        )
        try:
            raw: bytes = call(None, timeout=timeout)
        except grpc.RpcError as exc:
            raise _rpc_error(endpoint, exc, timeout) from None
    finally:
        channel.close()
    return decode(raw)


def _rpc_error(endpoint: str, exc: object, timeout: float) -> CRIError:
    import grpc

    code = exc.code() if isinstance(exc, grpc.Call) else None
    details = (exc.details() if isinstance(exc, grpc.Call) else "") or ""
    if code == grpc.StatusCode.UNIMPLEMENTED:
        return CRIError(
            endpoint,
            "not a CRI runtime (it has no runtime.v1 ListPodSandbox)",
            hint=f"name a CRI socket ({_WHICH}); containerd needs its CRI plugin enabled",
        )
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return CRIError(endpoint, f"no answer within {timeout:g} s", hint="is the runtime hung? try again later")
    if code == grpc.StatusCode.UNAVAILABLE:
        lowered = details.lower()
        if "permission denied" in lowered:
            return CRIError(endpoint, "permission denied", hint="run as root (the CRI socket is root's)")
        if "refused" in lowered or "no such file" in lowered:
            return CRIError(endpoint, "nothing listens on it", hint=f"is the runtime running? {_WHICH}")
        return CRIError(endpoint, f"unavailable: {details}", hint=f"is it a CRI runtime? {_WHICH}")
    name = code.name if code is not None else type(exc).__name__
    return CRIError(endpoint, f"ListPodSandbox failed: {name}: {details}", hint=f"is it a CRI runtime? {_WHICH}")
