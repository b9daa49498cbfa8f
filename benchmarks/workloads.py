"""The library workloads of the benchmark, each run in a process of its own.

``bench.py`` starts ``bench.py --worker NAME PARAMS OUT`` for each workload, so
that every figure comes from a fresh interpreter and the worker's peak memory
(``ru_maxrss`` from ``wait4``) belongs to that workload alone.  A worker reads
its parameters from the JSON file PARAMS and writes ``{"samples": {name:
[seconds, ...]}, "info": {...}}`` to OUT.  Everything here uses the checkout's
``libcni_py`` (``bench.py`` puts the repository first on ``sys.path``).

Workloads:

* ``bulk`` -- N attachments through :class:`libcni_py.AsyncCNI` at a given
  concurrency: namespace create, ADD, (CHECK,) DEL, namespace delete;
* ``invoker`` -- a chain of no-op plugins through :class:`libcni_py.CNI` and
  :class:`libcni_py.AsyncCNI`, against the same plugin binaries executed
  directly (the floor);
* ``conf`` -- look-up by name and listing in a conf dir of N files;
* ``cache`` -- listing, GC with every attachment valid and GC with some stale,
  in a cache of N attachments.
"""

from __future__ import annotations

import json
import os
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from libcni_py.core.plugin_call import ExecRequest

Samples = dict[str, list[float]]


def _now() -> float:
    return time.perf_counter()


# --------------------------------------------------------------------------
# bulk throughput


def bulk(params: dict[str, Any]) -> tuple[Samples, dict[str, Any]]:
    """``n`` attachments at concurrency ``concurrency``; one sample: the seconds
    for all of them (attachments per second are computed by the caller)."""
    import trio

    from libcni_py import AsyncCNI, CNIError, RuntimeConf, load_network, netns

    netlist = load_network(params["conf_dir"], params["network"])
    cni = AsyncCNI(plugin_path=params["plugin_path"], cache_dir=params["cache_dir"], env=params["env"])
    caps = params["capability_args"]
    with_check: bool = params["check"]
    count: int = params["n"]
    prefix: str = params["prefix"]
    failures: list[str] = []

    async def attachment(index: int) -> None:
        name = f"{prefix}{index}"
        path = await netns.acreate(name)
        try:
            rt = RuntimeConf(container_id=name, netns=path, ifname="eth0", capability_args=caps)
            await cni.add(netlist, rt)
            if with_check:
                await cni.check(netlist, rt)
            await cni.delete(netlist, rt)
        except CNIError as exc:
            failures.append(f"{name}: {exc.one_line()}")
        finally:
            await netns.adelete(name)

    async def main() -> float:
        pending = iter(range(count))

        async def worker() -> None:
            for index in pending:
                await attachment(index)

        start = _now()
        async with trio.open_nursery() as nursery:
            for _ in range(params["concurrency"]):
                nursery.start_soon(worker)
        return _now() - start

    seconds = trio.run(main)
    return {"seconds": [seconds]}, {"failures": failures}


# --------------------------------------------------------------------------
# invoker overhead


class _Recorder:
    """A tracer that keeps the plugin requests of one operation."""

    def __init__(self) -> None:
        self.requests: list[ExecRequest] = []

    def before(self, effect: Any) -> None:
        from libcni_py.core.effects import Exec

        if isinstance(effect, Exec):
            self.requests.append(effect.request)

    def after(self, effect: Any, outcome: Any, error: BaseException | None) -> None:
        return None


def direct_exec(req: ExecRequest) -> bytes:
    """Run a plugin binary the plainest way a runtime could: ``posix_spawn``
    with stdin and stdout on pipes, write, read to EOF, wait.  This is the
    floor the invoker's per-call cost is measured against."""
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    pid = os.posix_spawn(
        req.path,
        [req.path],
        req.env,
        file_actions=[(os.POSIX_SPAWN_DUP2, in_r, 0), (os.POSIX_SPAWN_DUP2, out_w, 1)],
    )
    os.close(in_r)
    os.close(out_w)
    view = memoryview(req.stdin)
    while view:
        view = view[os.write(in_w, view) :]
    os.close(in_w)
    chunks = []
    while chunk := os.read(out_r, 65536):
        chunks.append(chunk)
    os.close(out_r)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{req.path} {req.command} failed")
    return b"".join(chunks)


def _floor(requests: list[ExecRequest]) -> float:
    start = _now()
    for req in requests:
        direct_exec(req)
    return _now() - start


def invoker(params: dict[str, Any]) -> tuple[Samples, dict[str, Any]]:
    """ADD, CHECK and DEL of the no-op chain, blocking and with trio, each
    run right after its floor: the same requests executed directly
    (``floor.<variant>.<op>`` pairs with ``<variant>.<op>``)."""
    import trio

    from libcni_py import CNI, AsyncCNI, RuntimeConf, load_network

    netlist = load_network(params["conf_dir"], params["network"])
    reps: int = params["reps"]
    # a path that exists (ADD refuses one that does not) and is no namespace: the noop plugin never enters it
    rt = RuntimeConf(container_id="bench-invoker", netns="/dev/null", ifname="eth0")
    common = {"plugin_path": params["plugin_path"], "env": params["env"], "on_stderr": None}
    samples: Samples = {}

    def add(key: str, value: float) -> None:
        samples.setdefault(key, []).append(value)

    # The exact requests of each operation, recorded once.
    recorder = _Recorder()
    probe = CNI(cache_dir=params["cache_dir"], tracer=recorder, **common)
    ops: dict[str, list[ExecRequest]] = {}
    for op, call in (("add", probe.add), ("check", probe.check), ("del", probe.delete)):
        recorder.requests = []
        call(netlist, rt)
        ops[op] = recorder.requests
    calls = {op: len(reqs) for op, reqs in ops.items()}

    variants: list[tuple[str, CNI]] = [
        ("sync", CNI(cache_dir=params["cache_dir"], **common)),
        ("sync_nodurable", CNI(cache_dir=params["cache_dir"] + "-nodurable", durable=False, **common)),
    ]
    for _ in range(reps):
        for label, cni in variants:
            for op, call in (("add", cni.add), ("check", cni.check), ("del", cni.delete)):
                add(f"floor.{label}.{op}", _floor(ops[op]))
                start = _now()
                call(netlist, rt)
                add(f"{label}.{op}", _now() - start)

    acni = AsyncCNI(cache_dir=params["cache_dir"], **common)

    async def run_async() -> None:
        for _ in range(reps):
            for op, call in (("add", acni.add), ("check", acni.check), ("del", acni.delete)):
                add(f"floor.async.{op}", _floor(ops[op]))
                start = _now()
                await call(netlist, rt)
                add(f"async.{op}", _now() - start)

    trio.run(run_async)
    return samples, {"calls": calls}


# --------------------------------------------------------------------------
# growth: conf dir


def conf(params: dict[str, Any]) -> tuple[Samples, dict[str, Any]]:
    """Look-up of the last network by name (every file is read and parsed on
    the way, as in Go) and a listing of every network in a conf dir."""
    from libcni_py.core import netconf as confmod

    conf_dir: str = params["conf_dir"]
    samples: Samples = {"lookup": [], "list": []}
    found = 0
    for _ in range(params["reps"]):
        start = _now()
        netlist = confmod.load_network(conf_dir, params["last_name"])
        samples["lookup"].append(_now() - start)
        assert netlist.name == params["last_name"]
        start = _now()
        found = len(list_networks(conf_dir))
        samples["list"].append(_now() - start)
    return samples, {"listed": found}


def list_networks(conf_dir: str) -> list[Any]:
    """Every network of a conf dir, parsed.

    The stand-in for ``cnitool ls`` while that command does not exist on this
    branch (issue 5 adds it): every file the look-up would consider, loaded
    as the look-up loads it.  ``bench.py`` also times ``cnitool ls`` itself
    whenever the installed cnitool has that command.
    """
    from libcni_py.core import netconf as confmod

    return [confmod.load_any_file(path, strict=False) for path in confmod.conf_files(conf_dir, confmod.CONF_EXTENSIONS)]


# --------------------------------------------------------------------------
# growth: cache


def _fill_cache(cache_dir: str, netlist: Any, ids: list[str], result_doc: dict[str, Any]) -> None:
    """Write one realistic record per container ID (not timed; not durable)."""
    from libcni_py.core import record as cache
    from libcni_py.edges.recordstore import CacheStore

    store = CacheStore(cache_dir, durable=False)
    for cid in ids:
        data = cache.encode_record(
            container_id=cid,
            ifname="eth0",
            network=netlist.name,
            config=netlist.config_bytes,
            netns=f"/var/run/netns/{cid}",
            cni_args=(("K8S_POD_NAMESPACE", "default"), ("K8S_POD_NAME", cid)),
            capability_args={"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]},
            result=result_doc,
        )
        store.write(cache.AttachmentKey(network=netlist.name, container_id=cid, ifname="eth0"), data)


def cache(params: dict[str, Any]) -> tuple[Samples, dict[str, Any]]:
    """In a cache of ``n`` attachments of the no-op chain: listing them, GC
    with all of them valid, and GC with ``stale`` of them no longer valid
    (each stale one gets a full DEL through the chain)."""
    from libcni_py import CNI, load_network

    netlist = load_network(params["conf_dir"], params["network"])
    count: int = params["n"]
    stale: int = params["stale"]
    ids = [f"bench-{i:06d}" for i in range(count)]
    result_doc = params["result"]
    cache_dir: str = params["cache_dir"]
    _fill_cache(cache_dir, netlist, ids, result_doc)
    cni = CNI(plugin_path=params["plugin_path"], cache_dir=cache_dir, env=params["env"], on_stderr=None)
    everything = [(cid, "eth0") for cid in ids]
    # Every tenth attachment is stale (spread over the whole listing).
    step = max(1, count // max(1, stale))
    stale_ids = ids[::step][:stale]
    still_valid = sorted(set(everything) - {(cid, "eth0") for cid in stale_ids})
    samples: Samples = {"list": [], "gc_valid": [], "gc_stale": []}
    listed = kept = removed = 0
    for _ in range(params["reps"]):
        start = _now()
        listed = len(cni.cached_attachments())
        samples["list"].append(_now() - start)
        start = _now()
        report = cni.gc(netlist, everything)
        samples["gc_valid"].append(_now() - start)
        kept = len(report.kept)
    for _ in range(params["stale_reps"]):
        start = _now()
        report = cni.gc(netlist, still_valid)
        samples["gc_stale"].append(_now() - start)
        removed = len(report.removed)
        _fill_cache(cache_dir, netlist, stale_ids, result_doc)
    return samples, {"listed": listed, "kept": kept, "removed": removed}


# --------------------------------------------------------------------------


WORKLOADS: dict[str, Callable[[dict[str, Any]], tuple[Samples, dict[str, Any]]]] = {
    "bulk": bulk,
    "invoker": invoker,
    "conf": conf,
    "cache": cache,
}


def main(name: str, params_path: str, out_path: str) -> int:
    """Run workload ``name`` with the parameters in ``params_path``; write
    its samples to ``out_path``."""
    with open(params_path) as fh:
        params = json.load(fh)
    samples, info = WORKLOADS[name](params)
    with open(out_path, "w") as fh:
        json.dump({"samples": samples, "info": info}, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
