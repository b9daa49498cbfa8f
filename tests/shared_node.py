"""A shared node for tests: podman (CNI backend) and containerd (CRI) running
beside libcni_py on one isolated node (``from shared_node import SharedNode``).

The node is a private mount + network namespace (``unshare --mount --net
--fork``) held open by one ``sleep``; inside it ``/etc/cni/net.d``,
``/etc/containers`` and ``/var/lib`` are directories of a temp dir
(``self.root``) bind-mounted over the real ones, and ``/run`` and
``/dev/shm`` are fresh tmpfs.  So every runtime, and every ``cnitool`` run in
the node with its defaults, uses the node's conf dir and ``/var/lib/cni``, as
on a real machine, and nothing reaches the machine's own files, network or
podman locks.  The records can be read from outside at
``self.root/var-lib/cni``.

Everything runs through ``nsenter`` into the node.  Teardown kills the
processes whose mount namespace is the node's (only ours can be in it), which
frees the namespaces and their mounts, and removes the temp dir.

Names are unique per run (``unique``), so two runs can share the machine.
Facts about these runtimes on Debian 12: ``../shared/thirdparty/README.md``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import networks
import testnode
from support import REPO, unique

# ../shared/thirdparty of the checkout (one level more for a worktree under wt/)
CRI_PROTO_DIR = next(
    (
        base / "shared" / "thirdparty" / "cri-api"
        for base in (REPO.parent, REPO.parent.parent)
        if (base / "shared" / "thirdparty" / "cri-api" / "api.proto").exists()
    ),
    REPO.parent / "shared" / "thirdparty" / "cri-api",
)
BUSYBOX = Path("/bin/busybox")
PAUSE_IMAGE = "localhost/lcpy-pause:1"
NEEDED = ("podman", "containerd", "containerd-shim-runc-v2", "runc", "conmon", "ctr", "nsenter", "unshare")


class NodeError(AssertionError):
    """The shared node could not be brought up (a test failure, never a skip)."""


def missing_proto() -> str:
    """What generating the CRI client lacks ("" when nothing)."""
    gone = []
    if not (CRI_PROTO_DIR / "api.proto").exists():
        gone.append(f"the CRI proto ({CRI_PROTO_DIR}/api.proto)")
    try:
        import grpc  # noqa: F401
        import grpc_tools  # noqa: F401
    except ImportError:
        gone.append("grpcio and grpcio-tools (pip test extra)")
    return ", ".join(gone)


def missing_parts() -> str:
    """What this machine lacks to run the shared node ("" when nothing)."""
    gone = [name for name in NEEDED if not shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")]
    if not BUSYBOX.exists():
        gone.append("busybox-static (/bin/busybox)")
    if missing_proto():
        gone.append(missing_proto())
    return ", ".join(gone)


def generate_cri_client(out: Path) -> tuple[Any, Any]:
    """Generate the CRI client from ``api.proto`` into ``out``; return
    ``(api_pb2, api_pb2_grpc)``.  Done at test time: no generated code is kept."""
    import importlib

    from grpc_tools import protoc

    out.mkdir(parents=True, exist_ok=True)
    argv = ["protoc", f"-I{CRI_PROTO_DIR}", f"--python_out={out}", f"--grpc_python_out={out}", "api.proto"]
    if protoc.main(argv) != 0:
        raise NodeError(f"protoc failed on {CRI_PROTO_DIR}/api.proto")
    if str(out) not in sys.path:
        sys.path.insert(0, str(out))
    return importlib.import_module("api_pb2"), importlib.import_module("api_pb2_grpc")


def cri_messages(out: Path) -> Any:
    """The generated ``api_pb2`` (CRI messages), or a test failure saying
    what is missing."""
    problem = missing_proto()
    if problem:
        raise NodeError(f"the CRI tests need {problem} (scripts/setup installs it)")
    return generate_cri_client(out)[0]


@contextmanager
def running_node() -> Iterator[SharedNode]:
    """A started :class:`SharedNode`, stopped afterwards (also when the
    bring-up fails half-way)."""
    node = SharedNode()
    try:
        node.start()
        yield node
    finally:
        node.stop()


def sweep_stale_nodes() -> None:
    """Stop the nodes of earlier runs whose test process was killed before
    its teardown.  A node is touched only when its ownership record proves
    its owner dead, by the rule that decides for the root tests' node
    namespaces (:func:`testnode.why_not_dead`: same boot, same PID
    namespace, the pid no longer that process); a node without such a record
    (another checkout's, an older run's) is left alone."""
    for root in Path(tempfile.gettempdir()).glob("lcpy-sn*"):
        try:
            owner = testnode.Ownership(**json.loads((root / "owner.json").read_text()))
            pid = int((root / "node.pid").read_text())
        except (OSError, ValueError, TypeError):
            continue
        if testnode.why_not_dead(owner) is not None:
            continue
        stale = SharedNode(root)
        try:  # the pid is that node's only if its mounts are that node's
            theirs, ours = os.stat(f"/proc/{pid}/root/etc/cni/net.d"), os.stat(root / "net.d")
            if (theirs.st_dev, theirs.st_ino) == (ours.st_dev, ours.st_ino):
                stale.pid = pid
        except OSError:
            pass
        stale.stop()


def _busybox_tree(root: Path, applets: tuple[str, ...] = ("sh", "sleep", "ip", "ls", "cat")) -> None:
    (root / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy(BUSYBOX, root / "bin" / "busybox")
    for applet in applets:
        (root / "bin" / applet).symlink_to("busybox")
    for sub in ("etc", "proc", "sys", "dev", "tmp", "run"):
        (root / sub).mkdir(exist_ok=True)


def build_pause_archive(path: Path) -> None:
    """A docker-archive tarball of a one-layer image (busybox-static, entry
    point ``sleep``) tagged :data:`PAUSE_IMAGE`, for ``ctr images import``."""
    layer_buf = io.BytesIO()
    with tarfile.open(fileobj=layer_buf, mode="w") as layer:
        info = tarfile.TarInfo("bin")
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
        layer.addfile(info)
        data = BUSYBOX.read_bytes()
        info = tarfile.TarInfo("bin/busybox")
        info.size = len(data)
        info.mode = 0o755
        layer.addfile(info, io.BytesIO(data))
    layer_bytes = layer_buf.getvalue()
    diff_id = "sha256:" + hashlib.sha256(layer_bytes).hexdigest()
    config = {
        "architecture": {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine),
        "os": "linux",
        "config": {"Entrypoint": ["/bin/busybox", "sleep", "86400"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }
    config_bytes = json.dumps(config).encode()
    manifest = [{"Config": "config.json", "RepoTags": [PAUSE_IMAGE], "Layers": ["layer.tar"]}]
    with tarfile.open(path, mode="w") as archive:
        for name, blob in (
            ("layer.tar", layer_bytes),
            ("config.json", config_bytes),
            ("manifest.json", json.dumps(manifest).encode()),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            archive.addfile(info, io.BytesIO(blob))


INIT_SCRIPT = r"""
set -e
R="$1"
mount --bind "$R/net.d" /etc/cni/net.d
mount --bind "$R/containers-etc" /etc/containers
mount --bind "$R/var-lib" /var/lib
mount -t tmpfs -o mode=755 tmpfs /run
mount -t tmpfs tmpfs /dev/shm
mkdir -p /run/netns /run/lock
ip link set lo up
echo $$ > "$R/node.pid"
exec sleep 86400
"""

CONTAINERS_CONF = """\
[containers]
# runc may not raise a hard limit here (no CAP_SYS_RESOURCE in CI's
# container) and podman asks for more than the machine's; lower ones are fine
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "/run/libpod"
[network]
network_backend = "cni"
cni_plugin_dirs = ["/usr/lib/cni"]
network_config_dir = "/etc/cni/net.d"
"""

STORAGE_CONF = """\
[storage]
driver = "vfs"
runroot = "/run/containers/storage"
graphroot = "/var/lib/containers/storage"
"""

CONTAINERD_CONF = """\
version = 2
root = "/var/lib/containerd"
state = "/run/containerd"
[grpc]
  address = "{socket}"
[ttrpc]
  address = "{socket}.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  restrict_oom_score_adj = true
  sandbox_image = "{pause}"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{bin_dir}"
    conf_dir = "/etc/cni/net.d"
"""


class SharedNode:
    """Bring up with :meth:`start`, always :meth:`stop` (idempotent)."""

    def __init__(self, root: Path | None = None, *, bin_dir: str = "/usr/lib/cni") -> None:
        self.name = unique("sn")
        self.bin_dir = bin_dir
        self.root = root or Path(tempfile.mkdtemp(prefix=f"lcpy-{self.name}-"))
        self.network = f"lcpy{self.name}"
        self.bridge = f"cni-{self.name}"[:15]
        self.block = networks.subnet()  # the node is a network namespace of its own
        self.subnet = self.block.cidr
        self.socket = str(self.root / "containerd.sock")
        self.unshare: subprocess.Popen[bytes] | None = None
        self.containerd: subprocess.Popen[bytes] | None = None
        self.pid = 0
        self.cri: Any = None
        self.pb2: Any = None
        self.channel: Any = None
        self.podman_ids: list[str] = []
        self.sandbox_ids: list[str] = []
        self.log = self.root / "node.log"

    # ---------------------------------------------------------------- paths

    @property
    def conf_dir(self) -> Path:
        """The node's /etc/cni/net.d, seen from outside."""
        return self.root / "net.d"

    @property
    def cni_dir(self) -> Path:
        """The node's /var/lib/cni, seen from outside."""
        return self.root / "var-lib" / "cni"

    @property
    def results_dir(self) -> Path:
        return self.cni_dir / "results"

    @property
    def ipam_dir(self) -> Path:
        """host-local's data dir (its default, /var/lib/cni/networks)."""
        return self.cni_dir / "networks"

    # ---------------------------------------------------------------- running

    def run(
        self, *argv: str, check: bool = True, timeout: float = 120, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside the node (its mount and network namespace)."""
        if not self.pid:
            raise NodeError("the node is not up")
        full_env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root"}
        full_env.update(env or {})
        proc = subprocess.run(
            ["nsenter", "-t", str(self.pid), "-m", "-n", "--", *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=full_env,
        )
        if check and proc.returncode != 0:
            raise NodeError(f"in the node: {' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip()[-2000:]}")
        return proc

    def cnitool(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """This checkout's cnitool inside the node, with its defaults (the
        node's /etc/cni/net.d and /var/lib/cni) and Debian's plugins."""
        return self.run(
            sys.executable,
            str(REPO / "cmd" / "cnitool.py"),
            *args,
            check=False,
            timeout=timeout,
            env={"CNI_PATH": "/usr/lib/cni"},
        )

    # ---------------------------------------------------------------- bring-up

    def start(self, *, podman: int = 2, sandboxes: int = 2) -> None:
        """Node, containerd, podman; two podman containers and two CRI sandboxes
        (``podman=0, sandboxes=0``: the node and containerd alone)."""
        problem = missing_parts()
        if problem:
            raise NodeError(f"the shared-node test needs {problem}: run scripts/setup")
        sweep_stale_nodes()
        owner = testnode.Ownership.of_this_process(node=self.root.name)
        (self.root / "owner.json").write_text(json.dumps(dataclasses.asdict(owner)))
        for sub in ("net.d", "containers-etc", "var-lib/cni", "var-lib/containerd", "var-lib/containers", "rootfs"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        etc = self.root / "containers-etc"
        (etc / "containers.conf").write_text(CONTAINERS_CONF)
        (etc / "storage.conf").write_text(STORAGE_CONF)
        (etc / "policy.json").write_text('{"default": [{"type": "insecureAcceptAnything"}]}')
        (etc / "registries.conf").write_text("unqualified-search-registries = []\n")
        _busybox_tree(self.root / "rootfs")
        (self.root / "containerd.toml").write_text(
            CONTAINERD_CONF.format(socket=self.socket, pause=PAUSE_IMAGE, bin_dir=self.bin_dir)
        )
        build_pause_archive(self.root / "pause.tar")
        self.write_conflist()

        logf = self.log.open("ab")
        self.unshare = subprocess.Popen(
            [
                "unshare",
                "--mount",
                "--net",
                "--fork",
                "--propagation",
                "private",
                "sh",
                "-c",
                INIT_SCRIPT,
                "sh",
                str(self.root),
            ],
            stdout=logf,
            stderr=logf,
            start_new_session=True,
        )
        pid_file = self.root / "node.pid"
        deadline = time.monotonic() + 20
        while not pid_file.exists() or not pid_file.read_text().strip():
            if self.unshare.poll() is not None or time.monotonic() > deadline:
                raise NodeError(f"the node namespace did not come up: {self.log.read_text()[-2000:]}")
            time.sleep(0.02)
        self.pid = int(pid_file.read_text())

        self.containerd = subprocess.Popen(
            [
                "nsenter",
                "-t",
                str(self.pid),
                "-m",
                "-n",
                "--",
                "containerd",
                "--config",
                str(self.root / "containerd.toml"),
            ],
            stdout=logf,
            stderr=logf,
            start_new_session=True,
        )
        self._connect_cri()
        self.run(
            "ctr",
            "-a",
            self.socket,
            "-n",
            "k8s.io",
            "images",
            "import",
            "--snapshotter",
            "native",
            str(self.root / "pause.tar"),
        )

        for index in range(podman):
            self.podman_ids.append(self.podman_run(index))
        for index in range(sandboxes):
            self.sandbox_ids.append(self.run_sandbox(f"web-{index}"))

    def write_conflist(self) -> None:
        """bridge + host-local + portmap (``tests/networks.py``) at spec
        0.4.0, which every runtime here reads, with host-local's default
        data dir (the node's ``/var/lib/cni``, where the runtimes look)."""
        net = networks.BridgeNet(
            name=self.network,
            bridge=self.bridge,
            subnet=self.block,
            data_dir=None,
            masq=True,
            default_route=True,
            portmap=True,
            ranges=True,
            version="0.4.0",
        )
        conflist = net.conflist()
        (self.conf_dir / f"10-{self.network}.conflist").write_text(json.dumps(conflist, indent=2))

    def _connect_cri(self) -> None:
        import grpc

        self.pb2, pb2_grpc = generate_cri_client(self.root / "cri-gen")
        deadline = time.monotonic() + 30
        while not Path(self.socket).exists():
            if self.containerd is not None and self.containerd.poll() is not None:
                raise NodeError(f"containerd exited {self.containerd.returncode}: {self.log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise NodeError(f"containerd made no socket in 30 s: {self.log.read_text()[-3000:]}")
            time.sleep(0.05)
        self.channel = grpc.insecure_channel(f"unix://{self.socket}")
        self.cri = pb2_grpc.RuntimeServiceStub(self.channel)
        while True:
            try:
                status = self.cri.Status(self.pb2.StatusRequest(), timeout=5)
                conditions = {c.type: c.status for c in status.status.conditions}
                if conditions.get("RuntimeReady") and conditions.get("NetworkReady"):
                    return
                detail = str(status)
            except grpc.RpcError as exc:
                detail = str(exc)
            if time.monotonic() > deadline:
                raise NodeError(
                    f"containerd's CRI is not ready after 30 s: {detail}; log: {self.log.read_text()[-3000:]}"
                )
            time.sleep(0.2)

    def podman_run(self, index: int) -> str:
        name = f"{self.name}-p{index}"
        argv = ["podman", "run", "-d", "--name", name, "--network", self.network]
        if index == 0:
            argv += ["-p", f"{18000 + index}:80"]
        argv += ["--rootfs", str(self.root / "rootfs"), "sleep", "3600"]
        return self.run(*argv, timeout=120).stdout.strip().splitlines()[-1]

    def run_sandbox(self, name: str) -> str:
        pb = self.pb2
        config = pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name=name, uid=f"uid-{self.name}-{name}", namespace="default", attempt=0),
            hostname=name,
            log_directory=str(self.root / "pod-logs" / name),
            linux=pb.LinuxPodSandboxConfig(),
        )
        (self.root / "pod-logs" / name).mkdir(parents=True, exist_ok=True)
        reply = self.cri.RunPodSandbox(pb.RunPodSandboxRequest(config=config), timeout=120)
        return str(reply.pod_sandbox_id)

    def remove_sandbox(self, sandbox_id: str) -> None:
        pb = self.pb2
        self.cri.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=sandbox_id), timeout=120)
        self.cri.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=sandbox_id), timeout=120)

    # ---------------------------------------------------------------- teardown

    def teardown_runtimes(self) -> list[str]:
        """Stop the four foreign attachments as their runtimes do; return the
        failures (empty when all went well)."""
        failures: list[str] = []
        for sandbox_id in list(self.sandbox_ids):
            try:
                self.remove_sandbox(sandbox_id)
                self.sandbox_ids.remove(sandbox_id)
            except Exception as exc:
                failures.append(f"containerd Stop/RemovePodSandbox {sandbox_id[:12]}: {exc}")
        for cid in list(self.podman_ids):
            proc = self.run("podman", "rm", "-f", "-t", "0", cid, check=False)
            if proc.returncode == 0:
                self.podman_ids.remove(cid)
            else:
                failures.append(f"podman rm {cid[:12]}: {proc.stderr.strip()}")
        return failures

    def node_pids(self) -> list[int]:
        """Processes whose mount namespace is the node's (ours alone)."""
        if not self.pid:
            return []
        try:
            mnt = os.readlink(f"/proc/{self.pid}/ns/mnt")
        except OSError:
            return []
        inside: set[int] = set()
        parent: dict[int, int] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if os.readlink(entry / "ns" / "mnt") == mnt:
                    inside.add(int(entry.name))
                parent[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
        # and their descendants: the containers (conmon's and the shims'
        # children) run in mount namespaces of their own
        grew = True
        while grew:
            more = {pid for pid, ppid in parent.items() if ppid in inside and pid not in inside}
            grew = bool(more)
            inside |= more
        return sorted(inside)

    def stop(self) -> None:
        """Tear everything down, even after a failure; never raises."""
        if self.channel is not None:
            try:
                self.teardown_runtimes()
            except Exception:
                pass
            self.channel.close()
            self.channel = None
        if self.containerd is not None and self.containerd.poll() is None:
            self.containerd.terminate()
            try:
                self.containerd.wait(10)
            except subprocess.TimeoutExpired:
                self.containerd.kill()
                self.containerd.wait(5)
        for _ in range(3):
            pids = self.node_pids()
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.2)
        if self.unshare is not None:
            try:
                self.unshare.wait(10)
            except subprocess.TimeoutExpired:
                self.unshare.kill()
                self.unshare.wait(5)
        self.pid = 0
        shutil.rmtree(self.root, ignore_errors=True)
