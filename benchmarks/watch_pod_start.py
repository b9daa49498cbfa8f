"""Does ``cnitool watch`` slow the runtime it watches?  Pod start time
(CRI ``RunPodSandbox`` of containerd 1.6, bridge + host-local + portmap, a
port mapping so that portmap acts) with and without the watch running.

Run as root from a checkout: ``sudo .venv/bin/python benchmarks/watch_pod_start.py
[--rounds N] [--json OUT]``.  It brings up an isolated node
(``tests/shared_node.py``: a private mount + network namespace with its own
containerd, conf dir and ``/var/lib/cni``), then alternates rounds without
and with ``cnitool watch --netns <node> --json`` running outside the node, so
that drift of the machine hits both alike.  Each round times RunPodSandbox
alone (the pod is then stopped and removed, untimed).  Prints the median and
quartiles of each, and the difference of the medians; see docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from shared_node import SharedNode  # noqa: E402


def run_sandbox(node: SharedNode, name: str) -> tuple[str, float]:
    pb = node.pb2
    config = pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, uid=f"uid-{node.name}-{name}", namespace="default", attempt=0),
        hostname=name,
        log_directory=str(node.root / "pod-logs" / name),
        port_mappings=[pb.PortMapping(protocol=pb.TCP, container_port=80, host_port=18080)],
        linux=pb.LinuxPodSandboxConfig(),
    )
    (node.root / "pod-logs" / name).mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    reply = node.cri.RunPodSandbox(pb.RunPodSandboxRequest(config=config), timeout=120)
    return str(reply.pod_sandbox_id), time.perf_counter() - start


def start_watch(node: SharedNode, out: Path) -> subprocess.Popen[str]:
    argv = [sys.executable, str(REPO / "cmd" / "cnitool.py"), "--cache-dir", str(node.cni_dir)]
    argv += ["--conf-dir", str(node.conf_dir), "watch", "--netns", f"/proc/{node.pid}/ns/net", "--json", str(out)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    line = proc.stderr.readline()
    if "watching" not in line:
        raise SystemExit(f"cnitool watch did not start: {line}{proc.stderr.read()}")
    return proc


def quartiles(values: list[float]) -> tuple[float, float, float]:
    q = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
    return q[0], statistics.median(values), q[2]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10, help="pods started with, and as many without (default 10)")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    node = SharedNode()
    figures: dict[str, list[float]] = {"without": [], "with": []}
    reported = 0
    try:
        node.start(podman=0, sandboxes=0)
        for i in range(-1, args.rounds):  # round -1 warms containerd up, untimed
            for mode in ("without", "with"):
                watch = start_watch(node, Path(tempfile.mktemp(suffix=".json"))) if mode == "with" else None
                try:
                    sandbox, took = run_sandbox(node, f"b{i + 1}-{mode}")
                    node.remove_sandbox(sandbox)
                finally:
                    if watch is not None:
                        time.sleep(1.2)  # its linger: the operations are reported
                        watch.send_signal(signal.SIGINT)
                        _out, err = watch.communicate(timeout=60)
                        if i >= 0:
                            reported += int(err.rsplit("cnitool watch: ", 1)[-1].split()[0])
                if i >= 0:
                    figures[mode].append(took)
    finally:
        node.stop()
    rows = {mode: quartiles(values) for mode, values in figures.items()}
    print(f"RunPodSandbox, {args.rounds} pods each (bridge + host-local + portmap, containerd 1.6):")
    for mode, (q1, med, q3) in rows.items():
        print(f"  {mode:8} watch: median {med * 1000:7.1f} ms  (quartiles {q1 * 1000:.1f} .. {q3 * 1000:.1f} ms)")
    diff = rows["with"][1] - rows["without"][1]
    print(f"  difference of the medians: {diff * 1000:+.1f} ms; operations the watch reported: {reported}")
    if args.json:
        Path(args.json).write_text(json.dumps({"rounds": args.rounds, "seconds": figures, "reported": reported}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
