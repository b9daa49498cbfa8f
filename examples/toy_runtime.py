#!/usr/bin/env python3
"""A toy container runtime on libcni_py's runtime layer: one pod, one process.

What a CRI runtime does for a pod, in a page of trio:

1. check the pod network is ready (``NetworkReady``), as kubelet waits for;
2. create the pod's network namespace and set up its networks -- loopback,
   then the default network as ``eth0`` (with host port mappings, if asked) --
   recording the pod under the cache dir with this process as its owner;
3. start the workload inside the namespace;
4. when the workload exits, or on SIGTERM/SIGINT (the workload is then
   stopped: SIGTERM, and SIGKILL after a grace period), tear the networks
   down from the cache and delete the namespace.

If this process is killed with SIGKILL, nothing of step 4 runs: the pod's
record names a dead owner, and ``cnitool pod gc`` removes its networks and
namespace.  The workload does not outlive the runtime even then: it is
started with a parent-death signal.

Usage (as root)::

    .venv/bin/python examples/toy_runtime.py --conf-dir examples/net.d --plugin-path /usr/lib/cni \\
        --name web --port 8080:8000 -- python3 -m http.server 8000

(``.venv/bin/python``: the project's environment, made by ``./scripts/setup``,
has trio and libcni_py; the system ``python3`` has neither.)

Progress is written to stdout as JSON lines (``{"event": "ready", ...}``,
``{"event": "stopped", ...}``) for programs; logs go to stderr, and so does
the workload's output.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.realpath(__file__)), ".."))

try:
    import trio
except ImportError:  # the system python3, not the project's environment
    sys.exit(
        "toy_runtime.py needs trio and libcni_py: run it with the project's environment, "
        ".venv/bin/python examples/toy_runtime.py ... (./scripts/setup makes it)"
    )

from libcni_py import CNIError, netns
from libcni_py.runtime import AsyncPodNetworks, Bandwidth, NetworkSelection, PodSpec, PortMapping

#: Seconds the workload gets between SIGTERM and SIGKILL.
GRACE = 5.0

# Run in the workload's process before the workload itself: die with the runtime
# (PR_SET_PDEATHSIG fires when the thread that started us ends, and that thread
# lives exactly as long as the workload does; see Workload.run).
_PDEATHSIG_SHIM = """
import ctypes, os, signal, sys
ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
if os.getppid() != int(sys.argv[1]):
    os._exit(137)
os.execvp(sys.argv[2], sys.argv[2:])
"""


def log(text: str) -> None:
    print(f"toy-runtime: {text}", file=sys.stderr, flush=True)


def emit(event: str, **fields: object) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


class Workload:
    """The pod's process, started inside the pod's namespace."""

    def __init__(self, netns_path: str, argv: list[str]) -> None:
        self.netns_path = netns_path
        self.argv = [sys.executable, "-c", _PDEATHSIG_SHIM, str(os.getpid()), *argv]
        self.pid = 0
        self.exit_code: int | None = None
        self.exited = trio.Event()

    def _spawn_and_wait(self, started: trio.Event, token: trio.lowlevel.TrioToken) -> int:
        # Runs on a thread inside the namespace (netns.run_in), so the child is
        # born there; the thread waits for the child, which keeps the
        # parent-death signal armed for exactly the child's lifetime.
        pid = os.posix_spawn(self.argv[0], self.argv, dict(os.environ), file_actions=[(os.POSIX_SPAWN_DUP2, 2, 1)])
        self.pid = pid
        trio.from_thread.run_sync(started.set, trio_token=token)
        while True:
            try:
                _, status = os.waitpid(pid, 0)
                return os.waitstatus_to_exitcode(status)
            except InterruptedError:
                continue

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> int:
        """Start the workload, report its pid, and return its exit status."""
        started = trio.Event()
        token = trio.lowlevel.current_trio_token()
        try:
            async with trio.open_nursery() as nursery:

                async def report() -> None:
                    await started.wait()
                    task_status.started(self.pid)

                nursery.start_soon(report)
                self.exit_code = await trio.to_thread.run_sync(
                    netns.run_in, self.netns_path, self._spawn_and_wait, started, token
                )
        finally:
            self.exited.set()
        return self.exit_code

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL after :data:`GRACE` seconds."""
        if not self.pid or self.exited.is_set():
            return
        log(f"stopping workload {self.pid}")
        os.kill(self.pid, signal.SIGTERM)
        with trio.move_on_after(GRACE):
            await self.exited.wait()
        if not self.exited.is_set():
            os.kill(self.pid, signal.SIGKILL)
            await self.exited.wait()


async def serve(args: argparse.Namespace) -> int:
    pods = AsyncPodNetworks(
        conf_dir=args.conf_dir,
        plugin_path=[p for p in args.plugin_path.split(":") if p],
        cache_dir=args.cache_dir,
        max_networks=args.max_networks,
        concurrent=args.concurrent,
        on_notice=lambda text: log(f"note: {text}"),
    )
    status = await pods.status()
    if not status.ready:
        log(f"pod network not ready ({status.reason}): {status.message}")
        return 1
    spec = PodSpec(
        namespace=args.namespace,
        name=args.name,
        networks=[NetworkSelection.parse(item) for item in args.network],
        port_mappings=[PortMapping.parse(item) for item in args.port],
        bandwidth=Bandwidth.parse(args.bandwidth) if args.bandwidth else None,
    )
    sandbox, result = await pods.run_pod(spec, owner_pid=os.getpid())
    log(f"pod {sandbox.label} {sandbox.container_id} up in {sandbox.netns}")
    workload = Workload(sandbox.netns, args.command)
    asked_to_stop = False
    try:
        async with trio.open_nursery() as nursery:

            async def run_workload(task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
                code = await workload.run(task_status=task_status)
                log(f"workload exited with status {code}")
                nursery.cancel_scope.cancel()

            async def on_signals() -> None:
                nonlocal asked_to_stop
                with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                    async for signum in signals:
                        log(f"got {signal.Signals(signum).name}")
                        asked_to_stop = True
                        await workload.stop()
                        return

            nursery.start_soon(on_signals)
            await nursery.start(run_workload)
            emit(
                "ready",
                id=sandbox.container_id,
                pod=sandbox.label,
                netns=sandbox.netns,
                pid=workload.pid,
                interfaces={item.ifname: list(item.addresses) for item in result.interfaces},
            )
    finally:
        with trio.CancelScope(shield=True):
            await workload.stop()
            clean = True
            try:
                report = await pods.stop_pod(sandbox.container_id)
                log(f"pod torn down: {', '.join(f'{i} ({n})' for n, i in report.removed)}")
            except CNIError as exc:
                log(f"teardown failed: {exc.one_line()} (run 'cnitool pod gc' to finish it)")
                clean = False
            code = 0 if asked_to_stop else (workload.exit_code or 0)
            emit("stopped", id=sandbox.container_id, status=code, clean=clean)
    return code if clean else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A toy container runtime: one pod, one process.")
    parser.add_argument("--conf-dir", default=os.environ.get("NETCONFPATH", "/etc/cni/net.d"))
    parser.add_argument("--plugin-path", default=os.environ.get("CNI_PATH", "/opt/cni/bin"))
    parser.add_argument("--cache-dir", default=os.environ.get("CNI_CACHE_DIR", "/var/lib/cni"))
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--name", required=True)
    parser.add_argument("--network", action="append", default=[], metavar="NAME[:IFNAME]")
    parser.add_argument("--port", action="append", default=[], metavar="[IP:]HOST:CONTAINER[/PROTO]")
    parser.add_argument("--bandwidth", metavar="INGRESS[:EGRESS]")
    parser.add_argument("--max-networks", type=int, default=1)
    parser.add_argument(
        "--concurrent",
        action="store_true",
        help="attach the pod's networks at once (go-cni's way; the spec's default is one after another)",
    )
    parser.add_argument("command", nargs="+", help="the workload (after --)")
    args = parser.parse_args(argv)
    try:
        return trio.run(serve, args)
    except CNIError as exc:
        log(f"error: {exc.one_line()}")
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
