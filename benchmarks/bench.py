"""libcni_py against Go libcni, side by side: the benchmark of issue 7.

Run it as root from a checkout (``sudo ./benchmarks/run``; see
docs/performance.md).  It measures, in one run:

1. **CLI latency** -- an add + check + del cycle of Debian's bridge +
   host-local + portmap, the installed ``cnitool`` against Go's (the peer
   built from ``benchmarks/gopeer``), alternating runs;
2. **bulk throughput** -- N attachments (namespace create, ADD, CHECK, DEL,
   namespace delete) through :class:`libcni_py.AsyncCNI` at concurrency 1, 4
   and 16, and ``gocnitool bench`` (namespace create, ADD, DEL);
3. **invoker overhead** -- a chain of 10 no-op plugins (``benchmarks/noop.c``,
   compiled here) through the library, against the same binaries executed
   directly with the same stdin;
4. **growth** -- a conf dir of 100 and 1,000 files, a cache of 1,000 and
   10,000 attachments.

and prints a table (and writes JSON) with the median, the spread (quartiles)
and the peak memory (``ru_maxrss`` of the measured process tree, from
``wait4``) of each figure.

**Sandbox.**  As root the measurements run in a mount and network namespace
of their own (``unshare --mount --net``): a "node" network namespace holds
the bridge, the veths' host ends and the iptables rules, and dies with the
run; a private tmpfs over ``/run/netns`` holds the pod namespaces (so their
names cannot clash with anything on the machine); and a directory of the run
is bind-mounted over ``/var/lib/cni``, the cache directory Go's cnitool
always uses.  Nothing is left on the machine's own network or in its
``/var/lib/cni``.  Without root, only the sections that need no namespaces
(invoker overhead, growth) run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
# The library workloads measure this checkout's libcni_py, not an installed copy.
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from typing import Any

DEBIAN_PLUGINS = "/usr/lib/cni"
SECTIONS = ("cli", "bulk", "invoker", "growth")
NETWORK = "benchnet"
NOOP_NETWORK = "noopchain"
PORT_MAPPINGS = {"portMappings": [{"hostPort": 18080, "containerPort": 80, "protocol": "tcp"}]}

#: Sizes of a full run and of ``--smoke`` (CI: proves it runs, measures nothing).
FULL = {
    "cli_runs": 15,
    "bulk_n": 100,
    "bulk_concurrency": [1, 4, 16],
    "bulk_runs": 3,
    "chain": 10,
    "invoker_reps": 40,
    "conf_sizes": [100, 1000],
    "cache_sizes": [1000, 10000],
    "stale_fraction": 0.1,
    "growth_reps": 5,
    "gc_stale_reps": 3,
}
SMOKE = {
    "cli_runs": 2,
    "bulk_n": 4,
    "bulk_concurrency": [1, 4, 16],
    "bulk_runs": 1,
    "chain": 10,
    "invoker_reps": 2,
    "conf_sizes": [5, 10],
    "cache_sizes": [10, 20],
    "stale_fraction": 0.2,
    "growth_reps": 1,
    "gc_stale_reps": 1,
}

TARGETS = {
    "cli_ratio": 1.5,  # our cycle at most 1.5 x Go's
    "bulk_ratio": 1.0,  # at concurrency 16, at least Go's attachments/s
    "per_call_ms": 1.0,  # at most 1 ms per plugin call above the floor
    "growth_seconds": 1.0,  # 1,000-file conf dir listed, 10,000-attachment GC, doctor of 10,000, each < 1 s
}


class BenchError(Exception):
    """A benchmark that could not run; the message says why."""


# --------------------------------------------------------------------------
# statistics and rows


def summary(values: Sequence[float]) -> dict[str, Any]:
    """Median, quartiles, min, max and count of ``values``."""
    ordered = sorted(values)
    if not ordered:
        return {"n": 0}
    if len(ordered) >= 2:
        q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
    else:
        q1 = q3 = ordered[0]
    return {
        "n": len(ordered),
        "median": statistics.median(ordered),
        "q1": q1,
        "q3": q3,
        "min": ordered[0],
        "max": ordered[-1],
    }


def scaled(values: Iterable[float], factor: float) -> list[float]:
    return [v * factor for v in values]


class Report:
    """The rows of the table, in order, and everything the JSON keeps."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.notes: list[str] = []

    def row(
        self,
        row_id: str,
        label: str,
        unit: str,
        ours: Sequence[float] | None,
        *,
        ref: Sequence[float] | None = None,
        ref_label: str = "",
        compare: str = "",
        rss: tuple[int | None, int | None] = (None, None),
        target: str = "",
        met: bool | None = None,
        skipped: str = "",
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        row = {
            "id": row_id,
            "label": label,
            "unit": unit,
            "ours": summary(ours) if ours is not None else None,
            "ref": summary(ref) if ref is not None else None,
            "ref_label": ref_label,
            "compare": compare,
            "peak_rss_kib": {"ours": rss[0], "ref": rss[1]},
            "target": target,
            "met": met,
            "skipped": skipped,
            "samples": {"ours": list(ours or ()), "ref": list(ref or ())},
        }
        if extra:
            row.update(extra)
        self.rows.append(row)
        return row


def _fmt(value: float) -> str:
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _cell(stats: dict[str, Any] | None) -> str:
    if not stats or not stats.get("n"):
        return "-"
    text = _fmt(stats["median"])
    if stats["n"] > 1:
        text += f" [{_fmt(stats['q1'])}-{_fmt(stats['q3'])}]"
    return text


def _mib(kib: int | None) -> str:
    return "-" if kib is None else f"{kib / 1024:.0f}"


def render(report: Report, header: list[str]) -> str:
    """The table, as printed and as pasted into docs/performance.md."""
    titles = ("measure", "unit", "libcni_py", "reference", "vs ref", "peak MiB", "target")
    lines: list[list[str]] = []
    for row in report.rows:
        if row["skipped"]:
            lines.append([row["label"], row["unit"], "skipped: " + row["skipped"], "", "", "", row["target"]])
            continue
        ref = ""
        if row["ref"] is not None:
            ref = f"{row['ref_label']} {_cell(row['ref'])}".strip()
        rss = row["peak_rss_kib"]
        peak = _mib(rss["ours"]) + (f" / {_mib(rss['ref'])}" if rss["ref"] is not None else "")
        verdict = row["target"]
        if row["met"] is not None:
            verdict += ": met" if row["met"] else ": MISSED"
        lines.append([row["label"], row["unit"], _cell(row["ours"]), ref, row["compare"], peak, verdict])
    widths = [max(len(t), *(len(line[i]) for line in lines)) if lines else len(t) for i, t in enumerate(titles)]
    out = list(header)
    out.append("")
    out.append("  ".join(t.ljust(w) for t, w in zip(titles, widths, strict=True)).rstrip())
    out.append("  ".join("-" * w for w in widths))
    out += ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines]
    if report.notes:
        out.append("")
        out += [f"note: {n}" for n in report.notes]
    out.append("")
    out.append("Figures are medians [first-third quartile]; peak MiB is ru_maxrss of the measured process tree")
    out.append("(libcni_py / reference).")
    return "\n".join(out)


# --------------------------------------------------------------------------
# processes


def run_measured(
    argv: Sequence[str], env: dict[str, str], *, stdout_path: str = os.devnull
) -> tuple[float, int, int, str]:
    """Run ``argv`` and wait for it with ``wait4``.

    Returns:
        ``(seconds, ru_maxrss in KiB, exit status, stderr text)``.
    """
    with tempfile.TemporaryFile() as err, open(stdout_path, "wb") as out, open(os.devnull, "rb") as null:
        start = time.perf_counter()
        pid = os.posix_spawn(
            argv[0],
            list(argv),
            env,
            file_actions=[
                (os.POSIX_SPAWN_DUP2, null.fileno(), 0),
                (os.POSIX_SPAWN_DUP2, out.fileno(), 1),
                (os.POSIX_SPAWN_DUP2, err.fileno(), 2),
            ],
        )
        _, status, usage = os.wait4(pid, 0)
        seconds = time.perf_counter() - start
        err.seek(0)
        text = err.read().decode("utf-8", "replace")
    return seconds, usage.ru_maxrss, os.waitstatus_to_exitcode(status), text


def run_worker(name: str, params: dict[str, Any], workdir: Path) -> tuple[dict[str, Any], int]:
    """Run a workload of :mod:`workloads` in a fresh interpreter.

    Returns:
        ``(its output, its peak RSS in KiB)``.
    """
    params_path = workdir / f"params-{name}-{time.monotonic_ns()}.json"
    out_path = params_path.with_suffix(".out.json")
    params_path.write_text(json.dumps(params))
    argv = [sys.executable, str(HERE / "workloads.py"), name, str(params_path), str(out_path)]
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO)
    _, rss, code, stderr = run_measured(argv, env)
    if code != 0:
        raise BenchError(f"workload {name} failed (exit {code}):\n{stderr.strip()}")
    return json.loads(out_path.read_text()), rss


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    """This process's environment without PYTHON* settings, plus ``extra``:
    what both tools (and through them the plugins) get."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(extra)
    return env


def v4only_path(workdir: Path) -> str:
    """A PATH on which plugins find iptables but not ip6tables.

    Debian's portmap 1.1.1 CHECK of an IPv4-only attachment fails whenever
    ip6tables exists (see the ``v4only_path`` test fixture); both tools get
    this PATH, so both CHECKs work.
    """
    shim = workdir / "v4only-bin"
    shim.mkdir(exist_ok=True)
    for binary in ("iptables", "iptables-save", "iptables-restore"):
        target = shutil.which(binary, path="/usr/sbin:/sbin:/usr/bin:/bin")
        if target is None:
            raise BenchError(f"{binary} not found: install iptables")
        link = shim / binary
        if not link.exists():
            link.symlink_to(target)
    return f"{shim}:/usr/bin:/bin"


# --------------------------------------------------------------------------
# building the no-op plugin and the Go peer


def build_noop(workdir: Path) -> Path:
    """Compile ``noop.c``; returns the directory holding ``noop``."""
    bindir = workdir / "noop-bin"
    bindir.mkdir(exist_ok=True)
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise BenchError("no C compiler (cc) to build benchmarks/noop.c: install gcc")
    proc = subprocess.run(
        [compiler, "-O2", "-o", str(bindir / "noop"), str(HERE / "noop.c")], check=False, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise BenchError(f"building noop.c failed:\n{proc.stderr}")
    return bindir


def build_go_peer(workdir: Path) -> tuple[Path | None, str]:
    """Build ``benchmarks/gopeer`` against Debian's Go libcni.

    Returns:
        ``(binary, "")``, or ``(None, why not)``.
    """
    go = shutil.which("go")
    libcni = Path("/usr/share/gocode/src/github.com/containernetworking/cni/libcni")
    if go is None or not libcni.is_dir():
        return None, "Go or Debian's Go libcni (golang-go, golang-github-appc-cni-dev) is not installed"
    build = workdir / "gobuild"
    build.mkdir(exist_ok=True)
    shutil.copy(HERE / "gopeer" / "main.go", build / "main.go")
    out = workdir / "gocnitool"
    env = dict(os.environ, GO111MODULE="off", GOPATH=f"/usr/share/gocode:{build}/gopath", GOCACHE=str(build / "cache"))
    proc = subprocess.run(
        [go, "build", "-o", str(out), "."], cwd=build, env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        return None, f"building the Go peer failed: {proc.stderr.strip()[:300]}"
    return out, ""


# --------------------------------------------------------------------------
# configurations


def bridge_conflist(workdir: Path) -> dict[str, Any]:
    """bridge + host-local + portmap, the chain of the CLI and bulk sections,
    built by the root tests' network helper (``tests/networks.py``) so the
    two spell it alike.  Fixed names and a ``/16`` (room for the bulk
    section): the run's node namespace is its own (see Sandbox above)."""
    if str(REPO / "tests") not in sys.path:
        sys.path.insert(0, str(REPO / "tests"))
    import networks

    ipam = networks.host_local("10.123.0.0/16", data_dir=workdir / "ipam", routes=networks.DEFAULT_ROUTE)
    plugins = [networks.bridge("lcpybench0", ipam, masq=True), networks.portmap()]
    return networks.conflist(NETWORK, plugins)


def noop_conflist(chain: int, name: str = NOOP_NETWORK) -> dict[str, Any]:
    """A chain of ``chain`` no-op plugins (spec 1.1.0, so GC reaches them too)."""
    return {"cniVersion": "1.1.0", "name": name, "plugins": [{"type": "noop"} for _ in range(chain)]}


#: A result like bridge's, for the records of the growth section.
SAMPLE_RESULT = {
    "cniVersion": "1.0.0",
    "interfaces": [
        {"name": "lcpybench0", "mac": "8a:4f:2c:19:0d:11"},
        {"name": "veth1a2b3c4d", "mac": "6e:0b:48:da:7f:5b"},
        {"name": "eth0", "mac": "06:a3:65:88:74:8e", "sandbox": "/var/run/netns/x"},
    ],
    "ips": [{"interface": 2, "address": "10.123.0.2/16", "gateway": "10.123.0.1"}],
    "routes": [{"dst": "0.0.0.0/0"}],
    "dns": {},
}


def write_json(path: Path, doc: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2))
    return path


# --------------------------------------------------------------------------
# sections


class Bench:
    """One run of the benchmark: settings, work directory, tools, report."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.sizes = dict(SMOKE if args.smoke else FULL)
        if args.runs:
            self.sizes["cli_runs"] = args.runs
        self.workdir = workdir
        self.report = Report()
        self.go: Path | None = Path(args.go_peer_bin) if args.go_peer_bin else None
        self.cnitool = args.cnitool
        self.root = os.geteuid() == 0
        self.path = v4only_path(workdir)

    # -- 1. CLI ------------------------------------------------------------

    def cli(self) -> None:
        from libcni_py import netns

        conf_dir = self.workdir / "cli-net.d"
        write_json(conf_dir / "10-bench.conflist", bridge_conflist(self.workdir))
        env = clean_env(
            {
                "NETCONFPATH": str(conf_dir),
                "CNI_PATH": DEBIAN_PLUGINS,
                "CNI_CACHE_DIR": str(self.workdir / "cli-cache"),
                "CAP_ARGS": json.dumps(PORT_MAPPINGS),
                "PATH": self.path,
            }
        )
        tools: dict[str, list[str]] = {"ours": [self.cnitool]}
        envs = {"ours": env, "go": dict(env, CNI_CACHE_DIR=str(self.workdir / "go-cache"))}
        if self.go is not None:
            tools["go"] = [str(self.go)]
        pods = {tool: netns.create(f"lcpy-bench-cli-{tool}") for tool in tools}
        ops = ("add", "check", "del")
        times: dict[str, dict[str, list[float]]] = {t: {op: [] for op in (*ops, "cycle")} for t in tools}
        rss: dict[str, int] = dict.fromkeys(tools, 0)

        def cycle(tool: str, record: bool) -> None:
            total = 0.0
            for op in ops:
                seconds, maxrss, code, stderr = run_measured([*tools[tool], op, NETWORK, pods[tool]], envs[tool])
                if code != 0:
                    raise BenchError(f"{tool} cnitool {op} failed (exit {code}): {stderr.strip()[:500]}")
                total += seconds
                if record:
                    times[tool][op].append(seconds * 1000)
                    rss[tool] = max(rss[tool], maxrss)
            if record:
                times[tool]["cycle"].append(total * 1000)

        try:
            for tool in tools:  # warm the page cache; not recorded
                cycle(tool, record=False)
            order = list(tools)
            for run in range(self.sizes["cli_runs"]):
                for tool in order if run % 2 == 0 else reversed(order):
                    cycle(tool, record=True)
            start_times = []
            python = _interpreter_of(self.cnitool)
            for _ in range(self.sizes["cli_runs"]):
                seconds, _, _, _ = run_measured([python, "-c", "pass"], env)
                start_times.append(seconds * 1000)
        finally:
            for path in pods.values():
                netns.delete(path)

        go = "go" in tools
        ours_med = statistics.median(times["ours"]["cycle"])
        ratio = ours_med / statistics.median(times["go"]["cycle"]) if go else None
        self.report.row(
            "cli.cycle",
            "CLI add+check+del cycle (bridge+host-local+portmap)",
            "ms",
            times["ours"]["cycle"],
            ref=times["go"]["cycle"] if go else None,
            ref_label="Go",
            compare=f"{ratio:.2f}x" if ratio else "",
            rss=(rss["ours"], rss["go"] if go else None),
            target=f"<= {TARGETS['cli_ratio']}x Go",
            met=(ratio <= TARGETS["cli_ratio"]) if ratio else None,
        )
        for op in ops:
            op_ratio = statistics.median(times["ours"][op]) / statistics.median(times["go"][op]) if go else None
            self.report.row(
                f"cli.{op}",
                f"  cnitool {op}",
                "ms",
                times["ours"][op],
                ref=times["go"][op] if go else None,
                ref_label="Go",
                compare=f"{op_ratio:.2f}x" if op_ratio else "",
            )
        self.report.row(
            "cli.python_start",
            "  python start (python -c pass), for scale",
            "ms",
            start_times,
        )

    # -- 2. bulk -----------------------------------------------------------

    def bulk(self) -> None:
        conf_dir = self.workdir / "bulk-net.d"
        write_json(conf_dir / "10-bench.conflist", bridge_conflist(self.workdir))
        base = clean_env({"PATH": self.path, "CNI_PATH": DEBIAN_PLUGINS})
        n = self.sizes["bulk_n"]
        results: dict[tuple[str, int], list[float]] = {}
        peaks: dict[tuple[str, int], int] = {}
        failures: list[str] = []
        variants = ["add_del", "add_check_del"] + (["go"] if self.go is not None else [])
        for run in range(self.sizes["bulk_runs"]):
            for conc in self.sizes["bulk_concurrency"]:
                for variant in variants if run % 2 == 0 else reversed(variants):
                    key = (variant, conc)
                    if variant == "go":
                        seconds, rss, fails = self._go_bench(conf_dir, base, n, conc)
                    else:
                        out, rss = run_worker(
                            "bulk",
                            {
                                "conf_dir": str(conf_dir),
                                "network": NETWORK,
                                "plugin_path": [DEBIAN_PLUGINS],
                                "cache_dir": str(self.workdir / "bulk-cache"),
                                "env": base,
                                "capability_args": PORT_MAPPINGS,
                                "check": variant == "add_check_del",
                                "n": n,
                                "concurrency": conc,
                                "prefix": f"lcpyb{run}c{conc}{variant[4]}x",
                            },
                            self.workdir,
                        )
                        seconds = out["samples"]["seconds"][0]
                        fails = out["info"]["failures"]
                    failures += [f"{variant} c={conc}: {f}" for f in fails]
                    results.setdefault(key, []).append(n / seconds)
                    peaks[key] = max(peaks.get(key, 0), rss)
        go = self.go is not None
        top = max(self.sizes["bulk_concurrency"])
        for conc in self.sizes["bulk_concurrency"]:
            ours = results[("add_del", conc)]
            ratio = statistics.median(ours) / statistics.median(results[("go", conc)]) if go else None
            is_top = conc == top
            self.report.row(
                f"bulk.add_del.c{conc}",
                f"bulk, concurrency {conc}: netns+ADD+DEL (as Go's bench)",
                "att/s",
                ours,
                ref=results[("go", conc)] if go else None,
                ref_label="Go",
                compare=f"{ratio:.2f}x" if ratio else "",
                rss=(peaks[("add_del", conc)], peaks[("go", conc)] if go else None),
                target=">= Go" if is_top else "",
                met=(ratio >= TARGETS["bulk_ratio"]) if (ratio and is_top) else None,
            )
            self.report.row(
                f"bulk.add_check_del.c{conc}",
                f"bulk, concurrency {conc}: netns+ADD+CHECK+DEL",
                "att/s",
                results[("add_check_del", conc)],
                rss=(peaks[("add_check_del", conc)], None),
            )
        if failures:
            self.report.notes.append(f"bulk: {len(failures)} attachment(s) failed, e.g. {failures[0]}")

    def _go_bench(self, conf_dir: Path, base: dict[str, str], n: int, conc: int) -> tuple[float, int, list[str]]:
        assert self.go is not None
        env = dict(
            base,
            NETCONFPATH=str(conf_dir),
            CAP_ARGS=json.dumps(PORT_MAPPINGS),
            CNI_CACHE_DIR=str(self.workdir / "go-cache"),
        )
        out_path = self.workdir / "gobench.out"
        _, rss, code, stderr = run_measured(
            [str(self.go), "bench", NETWORK, str(n), str(conc)], env, stdout_path=str(out_path)
        )
        text = out_path.read_text()
        fields = dict(part.split("=", 1) for part in text.split() if "=" in part)
        if code != 0 or "seconds" not in fields:
            raise BenchError(f"gocnitool bench failed (exit {code}): {stderr.strip()[:500]} {text}")
        fails = [line for line in stderr.splitlines() if line.strip()][: int(fields.get("fails", "0"))]
        return float(fields["seconds"]), rss, fails

    # -- 3. invoker --------------------------------------------------------

    def invoker(self, bindir: Path) -> None:
        chain = self.sizes["chain"]
        conf_dir = self.workdir / "noop-net.d"
        write_json(conf_dir / "10-noop.conflist", noop_conflist(chain))
        out, rss = run_worker(
            "invoker",
            {
                "conf_dir": str(conf_dir),
                "network": NOOP_NETWORK,
                "plugin_path": [str(bindir)],
                "cache_dir": str(self.workdir / "noop-cache"),
                "env": clean_env({"PATH": "/usr/bin:/bin"}),
                "reps": self.sizes["invoker_reps"],
            },
            self.workdir,
        )
        samples = out["samples"]
        calls = out["info"]["calls"]
        variants = (
            ("sync", "CNI (blocking)"),
            ("async", "AsyncCNI (trio)"),
            ("sync_nodurable", "CNI, durable=False"),
        )
        for op in ("add", "check", "del"):
            per = 1000 / calls[op]
            floor = scaled([v for label, _ in variants for v in samples[f"floor.{label}.{op}"]], per)
            self.report.row(
                f"invoker.floor.{op}",
                f"plugin call, direct posix_spawn (floor), {op.upper()}",
                "ms/call",
                floor,
                rss=(rss, None),
            )
            for label, title in variants:
                per_call = scaled(samples[f"{label}.{op}"], per)
                # Each operation was timed right after its own floor; the median
                # of those pairs' differences is what a busy machine disturbs least.
                paired = scaled(samples[f"floor.{label}.{op}"], per)
                over = statistics.median(a - b for a, b in zip(per_call, paired, strict=True))
                has_target = label != "sync_nodurable"
                self.report.row(
                    f"invoker.{label}.{op}",
                    f"plugin call via {title}, {op.upper()} of {chain}",
                    "ms/call",
                    per_call,
                    ref=paired,
                    ref_label="floor",
                    compare=f"{over:+.2f} ms",
                    rss=(rss, None),
                    target=f"<= floor + {TARGETS['per_call_ms']:g} ms" if has_target else "",
                    met=(over <= TARGETS["per_call_ms"]) if has_target else None,
                    extra={"overhead_ms": over},
                )

    # -- 4. growth ---------------------------------------------------------

    def growth(self, bindir: Path) -> None:
        self._growth_conf()
        self._growth_cache(bindir)
        self._growth_doctor()

    def _doctor_node(self, size: int, stale: int) -> list[str]:
        """A node of ``size`` records (Go libcni's form, ``stale`` of them of a
        namespace that is gone, the others of a live one) and one host-local
        reservation per record; returns the doctor's command line."""
        import base64

        base = self.workdir / f"doctor-{size}"
        conf = bridge_conflist(base)
        conf["name"] = "docnet"
        conf["plugins"][0]["ipam"]["dataDir"] = str(base / "ipam")
        write_json(base / "net.d" / "10-docnet.conflist", conf)
        config = base64.b64encode(json.dumps(conf).encode()).decode()
        results, ipam = base / "cache" / "results", base / "ipam" / "docnet"
        results.mkdir(parents=True, exist_ok=True)
        ipam.mkdir(parents=True, exist_ok=True)
        for index in range(size):
            cid = f"{index:064x}"
            ip = f"10.{100 + index // 62500}.{index // 250 % 250}.{index % 250 + 2}"
            netns = f"{base}/gone-{index}" if index < stale else "/proc/self/ns/net"
            record = {
                "kind": "cniCacheV1",
                "containerId": cid,
                "config": config,
                "ifName": "eth0",
                "networkName": "docnet",
                "netns": netns,
                "cniArgs": [["IgnoreUnknown", "1"], ["K8S_POD_NAME", f"p{index}"]],
                "capabilityArgs": {},
                "result": {
                    "cniVersion": "1.0.0",
                    "interfaces": [{"name": "eth0", "sandbox": netns}],
                    "ips": [{"address": f"{ip}/8", "interface": 0}],
                },
            }
            (results / f"docnet-{cid}-eth0").write_text(json.dumps(record))
            (ipam / ip).write_text(f"{cid}\r\neth0")
        return [
            self.cnitool,
            "--conf-dir",
            str(base / "net.d"),
            "--cache-dir",
            str(base / "cache"),
            "--plugin-path",
            DEBIAN_PLUGINS,
            "doctor",
            "--no-probe",
            "--json",
            "--ipam-dir",
            str(base / "ipam"),
        ]

    def _growth_doctor(self) -> None:
        """``cnitool doctor`` over a node of 1,000 and 10,000 records and as
        many reservations (issue 15: under a second for 10,000)."""
        proc = subprocess.run([self.cnitool, "--help"], capture_output=True, text=True, check=False)
        if not any(line.split()[:1] == ["doctor"] for line in proc.stdout.splitlines()):
            return
        small, big = self.sizes["cache_sizes"]
        measured: dict[int, tuple[dict[str, list[float]], int]] = {}
        for size in (small, big):
            stale = max(1, int(size * self.sizes["stale_fraction"]))
            argv = self._doctor_node(size, stale)
            samples: list[float] = []
            rss = 0
            out = self.workdir / f"doctor-{size}.json"
            for _ in range(self.sizes["growth_reps"]):
                seconds, rss, code, stderr = run_measured(argv, clean_env({}), stdout_path=str(out))
                if code != 7:
                    raise BenchError(f"cnitool doctor exited {code}: {stderr.strip()[:300]}")
                samples.append(seconds * 1000)
            found = json.loads(out.read_text())["findings"]
            if sum(1 for f in found if f["kind"] == "record") != stale:
                raise BenchError(f"cnitool doctor over {size} records did not find the {stale} dead ones")
            measured[size] = ({"doctor": samples}, rss)
        self._growth_rows(
            "growth.doctor",
            "cnitool doctor, {n} records + {n} reservations",
            measured,
            "doctor",
            small,
            big,
            per="record",
            target_key="doctor",
        )

    def _growth_conf(self) -> None:
        small, big = self.sizes["conf_sizes"]
        measured: dict[int, tuple[dict[str, list[float]], int]] = {}
        for size in (small, big):
            conf_dir = self.workdir / f"conf-{size}"
            template = bridge_conflist(self.workdir)
            for index in range(size):
                doc = dict(template, name=f"net-{index:05d}")
                write_json(conf_dir / f"{index:05d}-net.conflist", doc)
            out, rss = run_worker(
                "conf",
                {"conf_dir": str(conf_dir), "last_name": f"net-{size - 1:05d}", "reps": self.sizes["growth_reps"]},
                self.workdir,
            )
            samples = {k: scaled(v, 1000) for k, v in out["samples"].items()}
            if self._has_ls():
                samples["cnitool_ls"] = []
                for _ in range(self.sizes["growth_reps"]):
                    seconds, _, code, stderr = run_measured(
                        [self.cnitool, "--conf-dir", str(conf_dir), "ls"], clean_env({})
                    )
                    if code != 0:
                        raise BenchError(f"cnitool ls failed: {stderr.strip()[:300]}")
                    samples["cnitool_ls"].append(seconds * 1000)
            measured[size] = (samples, rss)
        titles = {
            "lookup": "look-up by name, last of {n} files (cnitool add's load_network)",
            "list": "list a conf dir of {n} files (conf_files + load_any_file)",
            "cnitool_ls": "cnitool ls, conf dir of {n} files",
        }
        for key, title in titles.items():
            if key not in measured[small][0]:
                continue
            self._growth_rows(f"growth.conf.{key}", title, measured, key, small, big, per="file", target_key="list")

    def _has_ls(self) -> bool:
        """Whether the installed cnitool has an ``ls`` command (issue 5);
        when it does, the growth section times it too."""
        proc = subprocess.run([self.cnitool, "--help"], capture_output=True, text=True, check=False)
        return any(line.split()[:1] == ["ls"] for line in proc.stdout.splitlines())

    def _growth_cache(self, bindir: Path) -> None:
        small, big = self.sizes["cache_sizes"]
        conf_dir = self.workdir / "gc-net.d"
        write_json(conf_dir / "10-noop.conflist", noop_conflist(self.sizes["chain"]))
        measured: dict[int, tuple[dict[str, list[float]], int]] = {}
        stale: dict[int, int] = {}
        for size in (small, big):
            stale[size] = max(1, int(size * self.sizes["stale_fraction"]))
            out, rss = run_worker(
                "cache",
                {
                    "conf_dir": str(conf_dir),
                    "network": NOOP_NETWORK,
                    "plugin_path": [str(bindir)],
                    "cache_dir": str(self.workdir / f"gc-cache-{size}"),
                    "env": clean_env({"PATH": "/usr/bin:/bin"}),
                    "n": size,
                    "stale": stale[size],
                    "result": SAMPLE_RESULT,
                    "reps": self.sizes["growth_reps"],
                    "stale_reps": self.sizes["gc_stale_reps"],
                },
                self.workdir,
            )
            info = out["info"]
            if info["listed"] != size or info["kept"] != size or info["removed"] != stale[size]:
                raise BenchError(f"cache workload of {size} did not do what it should: {info}")
            measured[size] = ({k: scaled(v, 1000) for k, v in out["samples"].items()}, rss)
        self._growth_rows(
            "growth.cache.list", "list cached attachments, {n} records", measured, "list", small, big, per="record"
        )
        self._growth_rows(
            "growth.cache.gc_valid",
            "GC, {n} attachments all valid",
            measured,
            "gc_valid",
            small,
            big,
            per="record",
            target_key="gc_valid",
        )
        self._growth_rows(
            "growth.cache.gc_stale",
            "GC, {n} attachments, {s} stale (DEL each through the no-op chain)",
            measured,
            "gc_stale",
            small,
            big,
            per="stale one",
            stale=stale,
        )

    def _growth_rows(
        self,
        row_id: str,
        title: str,
        measured: dict[int, tuple[dict[str, list[float]], int]],
        key: str,
        small: int,
        big: int,
        *,
        per: str,
        target_key: str = "",
        stale: dict[int, int] | None = None,
    ) -> None:
        medians = {size: statistics.median(measured[size][0][key]) for size in (small, big)}
        units = {size: (stale[size] if stale else size) for size in (small, big)}
        growth = medians[big] / medians[small] if medians[small] else 0.0
        for size in (small, big):
            is_target = key == target_key and size == big
            per_item_us = medians[size] * 1000 / units[size]
            compare = f"{per_item_us:.0f} us/{per}"
            if size == big:
                compare += f", x{growth:.1f} for x{big / small:g}"
            self.report.row(
                f"{row_id}.{size}",
                title.format(n=f"{size:,}", s=f"{stale[size]:,}" if stale else ""),
                "ms",
                measured[size][0][key],
                compare=compare,
                rss=(measured[size][1], None),
                target=f"< {TARGETS['growth_seconds'] * 1000:.0f} ms" if is_target else "",
                met=(medians[size] < TARGETS["growth_seconds"] * 1000) if is_target else None,
                extra={"per_item_us": per_item_us, "growth": growth if size == big else None},
            )

    # -- all ----------------------------------------------------------------

    def run(self, sections: Sequence[str]) -> None:
        needs_noop = {"invoker", "growth"} & set(sections)
        bindir = build_noop(self.workdir) if needs_noop else None
        for section in sections:
            if section in ("cli", "bulk") and not self.root:
                self.report.row(section, f"{section} (needs root)", "", None, skipped="needs root")
                continue
            if section == "cli":
                self.cli()
            elif section == "bulk":
                self.bulk()
            elif section == "invoker":
                assert bindir is not None
                self.invoker(bindir)
            elif section == "growth":
                assert bindir is not None
                self.growth(bindir)


# --------------------------------------------------------------------------
# machine description


def _interpreter_of(script: str) -> str:
    """The interpreter named on a console script's ``#!`` line."""
    with open(script, "rb") as fh:
        first = fh.readline().decode("utf-8", "replace").strip()
    if first.startswith("#!"):
        words = first[2:].split()
        if words and words[0].endswith("/env") and len(words) > 1:
            return shutil.which(words[1]) or sys.executable
        if words:
            return words[0]
    return sys.executable


def _output(argv: Sequence[str]) -> str:
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, check=False, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (proc.stdout or proc.stderr).strip()


def machine(cnitool: str, go_peer: Path | None, workdir: Path) -> dict[str, Any]:
    """What the figures were measured on, from commands."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    python = _interpreter_of(cnitool)
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": _output([python, "-c", "import sys; print(sys.version.split()[0])"]),
        "go": _output(["go", "version"]) if shutil.which("go") else "",
        "plugins": _output(["dpkg-query", "-W", "-f", "${Version}", "containernetworking-plugins"]),
        "go_libcni": _output(["dpkg-query", "-W", "-f", "${Version}", "golang-github-appc-cni-dev"]),
        "cnitool": cnitool,
        "go_peer": str(go_peer) if go_peer else "",
        "workdir_fs": _output(["findmnt", "-n", "-o", "FSTYPE", "--target", str(workdir)]),
        "loadavg_start": os.getloadavg(),
    }


def stale_install_warning(cnitool: str) -> str:
    """A warning when the installed cnitool does not run this checkout's code."""
    python = _interpreter_of(cnitool)
    where = _output([python, "-c", "import libcni_py, os; print(os.path.dirname(libcni_py.__file__))"])
    if not where:
        return f"cannot tell which libcni_py {cnitool} runs"
    mine = REPO / "libcni_py"
    for source in mine.rglob("*.py"):
        installed = Path(where) / source.relative_to(mine)
        if not installed.exists() or installed.read_bytes() != source.read_bytes():
            return (
                f"the installed cnitool ({cnitool}) runs {where}, which differs from this checkout "
                f"({installed.name}); reinstall (./scripts/setup) to measure this checkout's CLI"
            )
    return ""


# --------------------------------------------------------------------------
# entry points


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="benchmarks/run",
        description="libcni_py against Go libcni: CLI latency, bulk throughput, invoker overhead, growth.",
    )
    parser.add_argument(
        "--go-peer",
        default="build",
        metavar="PATH|build|none",
        help="Go cnitool peer: a binary, 'build' (default: build benchmarks/gopeer if Go is installed), or 'none'",
    )
    parser.add_argument(
        "--cnitool",
        default=str(Path(sys.executable).parent / "cnitool"),
        help="the cnitool to measure (default: the one installed next to this Python)",
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: proves the benchmark runs, measures nothing")
    parser.add_argument("--json", metavar="FILE", help="also write the results here (default benchmarks/out/*.json)")
    parser.add_argument(
        "--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}"
    )
    parser.add_argument("--runs", type=int, default=0, help="CLI cycles per tool (default 15; smoke 2)")
    parser.add_argument("--workdir", default="/var/tmp", help="where the run's files go (default /var/tmp: on disk)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    # internal: the second stage, inside the sandbox
    parser.add_argument("--in-sandbox", metavar="WORKDIR", help=argparse.SUPPRESS)
    parser.add_argument("--go-peer-bin", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s): {', '.join(sorted(unknown))}")
    args.section_list = sections
    return args


def measure(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Run the sections here (already in the sandbox when root) and return the
    results document."""
    bench = Bench(args, workdir)
    info = machine(args.cnitool, bench.go, workdir)
    started = time.time()
    bench.run(args.section_list)
    info["loadavg_end"] = os.getloadavg()
    return {
        "started": time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(started)),
        "seconds": round(time.time() - started, 1),
        "smoke": args.smoke,
        "sizes": bench.sizes,
        "machine": info,
        "targets": TARGETS,
        "rows": bench.report.rows,
        "notes": bench.report.notes,
    }


def header(doc: dict[str, Any]) -> list[str]:
    m = doc["machine"]
    load = "{:.1f} -> {:.1f}".format(m["loadavg_start"][0], m["loadavg_end"][0])
    lines = [
        f"libcni_py benchmark, {doc['started']}{' (SMOKE: tiny sizes, figures mean nothing)' if doc['smoke'] else ''}",
        f"machine: {m['cpu']} x{m['cpus']}, Linux {m['kernel']}, Python {m['python']}, load avg {load}",
        f"plugins: containernetworking-plugins {m['plugins'] or '?'}; Go peer: "
        + (f"{m['go']}, Go libcni {m['go_libcni']}" if m["go_peer"] else "none"),
        f"cnitool: {m['cnitool']}; work dir on {m['workdir_fs'] or '?'}",
    ]
    return lines


def sandboxed(args: argparse.Namespace, argv: Sequence[str], workdir: Path) -> int:
    """Re-run this script in a mount + network namespace of its own (see the
    module docstring) and wait for it."""
    if shutil.which("unshare") is None:
        raise BenchError("unshare (util-linux) is needed")
    # The mount point of the private pod namespace directory; ip netns makes
    # it too, and leaves it, as this does (it is on /run: gone at reboot).
    os.makedirs("/run/netns", mode=0o755, exist_ok=True)
    had_cache = os.path.lexists("/var/lib/cni")
    try:
        (workdir / "go-cache").mkdir(exist_ok=True)
        cmd = [
            "unshare",
            "--mount",
            "--net",
            "--propagation",
            "slave",
            "--",
            sys.executable,
            str(Path(__file__).resolve()),
            *argv,
            "--in-sandbox",
            str(workdir),
        ]
        return subprocess.run(cmd, check=False).returncode
    finally:
        if not had_cache:
            # A --go-peer that ignores CNI_CACHE_DIR writes /var/lib/cni (its DEL
            # empties it again): remove the empty directories it made.
            for leftover in ("/var/lib/cni/results", "/var/lib/cni"):
                try:
                    os.rmdir(leftover)
                except OSError:
                    pass


def enter_sandbox(workdir: Path) -> None:
    """Inside the new namespaces: private pod namespace directory, the
    machine's /var/lib/cni (if any) out of reach, loopback up."""
    steps = [["mount", "-t", "tmpfs", "-o", "mode=0755", "lcpy-bench-netns", "/run/netns"]]
    if os.path.isdir("/var/lib/cni"):
        # The Go peer built here honours CNI_CACHE_DIR; one given with --go-peer
        # may not, and must not touch the records of the machine's runtime.
        steps.append(["mount", "--bind", str(workdir / "go-cache"), "/var/lib/cni"])
    steps.append(["ip", "link", "set", "lo", "up"])
    for argv in steps:
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise BenchError(f"sandbox: {' '.join(argv)} failed: {proc.stderr.strip()}")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    try:
        if args.in_sandbox:
            workdir = Path(args.in_sandbox)
            enter_sandbox(workdir)
            doc = measure(args, workdir)
            write_json(workdir / "results.json", doc)
            return 0
        return outer(args, argv)
    except BenchError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 1


def outer(args: argparse.Namespace, argv: list[str]) -> int:
    """Prepare (tools, work directory), run the measurements (sandboxed when
    root), print the table and write the JSON."""
    if not os.path.exists(args.cnitool):
        raise BenchError(f"no cnitool at {args.cnitool}: run ./scripts/setup, or give --cnitool")
    os.makedirs(args.workdir, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="lcpy-bench-", dir=args.workdir))
    try:
        notes = []
        warning = stale_install_warning(args.cnitool)
        if warning:
            notes.append(warning)
            print(f"bench: warning: {warning}", file=sys.stderr)
        go_bin: Path | None = None
        if args.go_peer == "build":
            go_bin, why = build_go_peer(workdir)
            if go_bin is None:
                notes.append(f"no Go peer: {why}")
        elif args.go_peer != "none":
            go_bin = Path(args.go_peer).resolve()
            if not go_bin.exists():
                raise BenchError(f"--go-peer {args.go_peer}: no such file")
        else:
            notes.append("no Go peer (--go-peer none)")
        if go_bin is not None:
            argv = [*argv, "--go-peer-bin", str(go_bin)]
        if os.geteuid() == 0:
            code = sandboxed(args, argv, workdir)
            if code != 0:
                raise BenchError(f"the measurements failed (exit {code})")
            doc = json.loads((workdir / "results.json").read_text())
        else:
            notes.append("not root: the CLI and bulk sections need network namespaces and were skipped")
            if go_bin is not None:
                args.go_peer_bin = str(go_bin)
            doc = measure(args, workdir)
        doc["notes"] = notes + doc["notes"]
        report = Report()
        report.rows = doc["rows"]
        report.notes = doc["notes"]
        print(render(report, header(doc)))
        out = Path(args.json) if args.json else HERE / "out" / time.strftime("bench-%Y%m%d-%H%M%S.json")
        write_json(out, doc)
        print(f"\nJSON: {out}")
        return 0
    finally:
        if args.keep:
            print(f"work directory kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
