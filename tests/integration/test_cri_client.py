"""``libcni_py.runtime.cri.live_sandboxes`` against real gRPC servers on unix
sockets: one serving ListPodSandbox with the generated CRI classes, and the
ways an endpoint goes wrong (each one line naming the endpoint).  The real
containerd is asked in tests/root/test_shared_node.py."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import pytest
from shared_node import cri_messages
from support import REPO

from libcni_py.errors import CRIError
from libcni_py.runtime import cri


@pytest.fixture(scope="module")
def pb(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return cri_messages(tmp_path_factory.mktemp("cri-gen"))


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """``serve(handler or None) -> socket path``: a gRPC server whose
    ListPodSandbox is ``handler(request_bytes) -> response_bytes``."""
    import grpc

    servers: list[Any] = []

    def start(handler: Callable[[bytes], bytes] | None) -> str:
        path = str(tmp_path / f"cri{len(servers)}.sock")
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        if handler is not None:
            method = grpc.unary_unary_rpc_method_handler(
                lambda request, context: handler(request), request_deserializer=None, response_serializer=None
            )
            server.add_generic_rpc_handlers(
                (grpc.method_handlers_generic_handler("runtime.v1.RuntimeService", {"ListPodSandbox": method}),)
            )
        server.add_insecure_port(f"unix:{path}")
        server.start()
        servers.append(server)
        return path

    yield start
    for server in servers:
        server.stop(0)


def test_lists_ready_and_notready_sandboxes(pb: Any, serve: Callable[..., str]) -> None:
    seen: list[bytes] = []

    def handler(request: bytes) -> bytes:
        seen.append(request)
        items = [
            pb.PodSandbox(id="a" * 64, state=pb.SANDBOX_READY),
            pb.PodSandbox(id="b" * 64, state=pb.SANDBOX_NOTREADY),
        ]
        return bytes(pb.ListPodSandboxResponse(items=items).SerializeToString())

    path = serve(handler)
    assert cri.live_sandboxes(f"unix://{path}") == frozenset({"a" * 64, "b" * 64})
    assert cri.live_sandboxes(path) == frozenset({"a" * 64, "b" * 64})
    assert seen == [b"", b""]


def test_a_grpc_server_without_cri_is_not_a_cri_runtime(serve: Callable[..., str]) -> None:
    path = serve(None)
    with pytest.raises(CRIError) as info:
        cri.live_sandboxes(path)
    assert info.value.one_line().startswith(f"CRI endpoint {path}: not a CRI runtime (")


def test_garbage_answer(serve: Callable[..., str]) -> None:
    path = serve(lambda request: b"\x0a\x09garbage")
    with pytest.raises(CRIError, match="cannot be decoded"):
        cri.live_sandboxes(path)


def test_a_hung_runtime_times_out(serve: Callable[..., str]) -> None:
    release = threading.Event()

    def hang(request: bytes) -> bytes:
        release.wait(10)
        return b""

    path = serve(hang)
    try:
        with pytest.raises(CRIError, match=r"no answer within 0\.3 s"):
            cri.live_sandboxes(path, timeout=0.3)
    finally:
        release.set()


def test_a_stale_socket_file(tmp_path: Path) -> None:
    path = str(tmp_path / "stale.sock")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(path)
    sock.close()  # the file stays, nobody listens: a runtime that died
    with pytest.raises(CRIError, match="nothing listens on it"):
        cri.live_sandboxes(path)


def test_a_socket_that_speaks_something_else(tmp_path: Path) -> None:
    path = str(tmp_path / "http.sock")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen(4)
    stop = threading.Event()

    def answer() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
            time.sleep(0.05)
            conn.close()

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        with pytest.raises(CRIError) as info:
            cri.live_sandboxes(path, timeout=2)
        assert info.value.one_line().startswith(f"CRI endpoint {path}: ")
    finally:
        stop.set()
        thread.join()
        listener.close()


def test_without_grpcio_the_error_says_what_to_install(tmp_path: Path, serve: Callable[..., str]) -> None:
    path = serve(lambda request: b"")
    code = "import sys\nsys.modules['grpc'] = None\nfrom libcni_py.runtime import cri\n"
    code += f"try:\n    cri.live_sandboxes({path!r})\nexcept cri.CRIError as exc:\n    print(exc.one_line())"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False)
    assert "asking a CRI runtime needs grpcio (install libcni_py[cri]" in proc.stdout, proc.stderr


def test_importing_the_module_does_not_import_grpc() -> None:
    code = "import sys\nfrom libcni_py.runtime import cri\nprint('grpc' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "False"
