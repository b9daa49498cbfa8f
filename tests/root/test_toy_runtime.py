"""examples/toy_runtime.py with Debian's bridge, host-local and portmap: a
page served from inside the pod through a host port, nothing left after a
stop, and ``cnitool pod gc`` cleaning up after the runtime was SIGKILLed."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import kernel
import pytest
from networks import bridge_network
from support import DEBIAN_PLUGINS, REPO, run_cnitool, unique

from libcni_py import netns
from libcni_py.runtime.sandbox import process_start_time

pytestmark = pytest.mark.root

TOY = REPO / "examples" / "toy_runtime.py"


class Toy:
    """A running toy runtime and what it said on stdout."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.events: list[dict[str, object]] = []

    def next_event(self, timeout: float = 60) -> dict[str, object]:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.5)
            if ready:
                line = self.proc.stdout.readline()
                if not line:
                    break
                event: dict[str, object] = json.loads(line)
                self.events.append(event)
                return event
        stderr = self.proc.stderr.read() if self.proc.poll() is not None and self.proc.stderr else ""
        raise AssertionError(f"no event from the toy runtime (exit {self.proc.poll()}): {stderr}")


@pytest.fixture
def setup(tmp_path: Path, conf_dir: Path, cache_dir: Path, node: str) -> Iterator[dict[str, object]]:
    """A bridge + host-local + portmap network of its own (bridge, subnet) and a page to serve."""
    data_dir = tmp_path / "ipam"
    net = bridge_network(data_dir, prefix="toy", bridge_prefix="brt", masq=True, portmap=True)
    net.write(conf_dir, "10-toy.conflist")  # bridges outlive their pods: each test has its own subnet
    network = net.name
    www = tmp_path / "www"
    www.mkdir()
    token = unique("page")
    (www / "index.html").write_text(token)
    env = {"NETCONFPATH": str(conf_dir), "CNI_PATH": str(DEBIAN_PLUGINS), "CNI_CACHE_DIR": str(cache_dir)}
    started: list[Toy] = []
    info: dict[str, object] = {
        "env": env, "network": network, "data_dir": data_dir, "token": token, "www": www,
        "links_before": set(kernel.links()), "started": started, "gateway": net.subnet.gateway,
    }  # fmt: skip
    yield info
    for toy in started:
        if toy.proc.poll() is None:
            toy.proc.kill()
            toy.proc.wait()
        for stream in (toy.proc.stdout, toy.proc.stderr):
            if stream is not None:
                stream.close()
    run_cnitool("pod", "gc", env=env)  # whatever a failed test left


def start_toy(setup: dict[str, object], host_port: int) -> Toy:
    env = dict(os.environ) | setup["env"]  # type: ignore[operator]
    proc = subprocess.Popen(
        [sys.executable, str(TOY), "--name", "web", "--port", f"{host_port}:8000", "--",
         "python3", "-m", "http.server", "8000", "--bind", "0.0.0.0", "--directory", str(setup["www"])],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    toy = Toy(proc)
    setup["started"].append(toy)  # type: ignore[attr-defined]
    return toy


def fetch(url: str, attempts: int = 40) -> str:
    """GET ``url``, retrying while the server inside the pod starts."""
    for _ in range(attempts):
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return str(response.read().decode())
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"nothing answered at {url}")


def gone(pid: int) -> bool:
    return process_start_time(pid) is None


def assert_nothing_left(setup: dict[str, object], ready: dict[str, object], cache_dir: Path, host_port: int) -> None:
    ns = Path(str(ready["netns"])).name
    assert not netns.exists(ns) and ns not in netns.list_names()
    links_before = setup["links_before"]
    assert isinstance(links_before, set)
    assert [n for n, link in kernel.links().items() if n not in links_before and link["kind"] == "veth"] == []
    assert kernel.reservations(setup["data_dir"], str(setup["network"])) == []  # type: ignore[arg-type]
    assert list((cache_dir / "results").iterdir()) == []
    assert list((cache_dir / "libcni_py" / "pods").iterdir()) == []
    cid = str(ready["id"])
    assert [r for r in kernel.iptables("nat") if f"--dport {host_port}" in r or cid[:12] in r] == []


def test_toy_runtime_serves_through_a_host_port_and_leaves_nothing(setup: dict[str, object], cache_dir: Path) -> None:
    host_port = 18183
    toy = start_toy(setup, host_port)
    ready = toy.next_event()
    assert ready["event"] == "ready" and ready["pod"] == "default/web"
    interfaces = ready["interfaces"]
    assert isinstance(interfaces, dict)
    assert interfaces["lo"] == ["127.0.0.1", "::1"]
    assert interfaces["eth0"][0].startswith(str(setup["gateway"])[:-1])
    assert any(f"--dport {host_port}" in rule for rule in kernel.iptables("nat"))

    assert fetch(f"http://{setup['gateway']}:{host_port}/") == setup["token"]  # the node, through portmap's DNAT

    toy.proc.send_signal(signal.SIGTERM)
    assert toy.proc.wait(timeout=60) == 0
    stopped = toy.next_event()
    assert stopped == {"event": "stopped", "id": ready["id"], "status": 0, "clean": True}
    assert gone(int(str(ready["pid"])))
    assert_nothing_left(setup, ready, cache_dir, host_port)


def test_pod_gc_cleans_up_after_a_sigkilled_toy_runtime(setup: dict[str, object], cache_dir: Path) -> None:
    host_port = 18184
    toy = start_toy(setup, host_port)
    ready = toy.next_event()
    assert fetch(f"http://{setup['gateway']}:{host_port}/") == setup["token"]
    toy.proc.kill()
    toy.proc.wait(timeout=30)
    workload = int(str(ready["pid"]))
    for _ in range(100):  # the parent-death signal takes the workload along
        if gone(workload):
            break
        time.sleep(0.05)
    assert gone(workload)
    ns = Path(str(ready["netns"])).name
    assert netns.exists(ns)  # what a killed runtime leaves behind...

    ls = run_cnitool("pod", "ls", "--json", env=setup["env"])  # type: ignore[arg-type]
    assert [(p["containerId"], p["alive"]) for p in json.loads(ls.stdout)] == [(ready["id"], False)]
    gc = run_cnitool("pod", "gc", env=setup["env"])  # type: ignore[arg-type]
    assert gc.returncode == 0, gc.stderr
    assert f"removed pod {ready['id']}" in gc.stdout
    assert f"removed netns {ready['netns']}" in gc.stdout
    assert_nothing_left(setup, ready, cache_dir, host_port)  # ...and what GC removes
