"""Plugins that break the protocol (``testdata/plugins/misbehave``): each gives
a clear error, memory stays bounded, nothing deadlocks, and what the ADD
recorded lets a DEL clean up.  Memory is measured in a separate process
(``ru_maxrss`` of the runtime, not of the plugin), for both drivers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support import NO_NETNS, PLUGINS, REPO, read_calls, run_cnitool, write_conf

from libcni_py import (
    CNI,
    InvalidResultError,
    PluginError,
    PluginExecError,
    PluginTimeoutError,
    RuntimeConf,
    parse_conflist,
)
from libcni_py.core import result as results

RT = RuntimeConf(container_id="c1", netns=NO_NETNS, ifname="eth0")
MIB = 1024 * 1024


def network(*plugins: dict[str, object], version: str = "1.0.0") -> bytes:
    return json.dumps({"cniVersion": version, "name": "misnet", "plugins": list(plugins)}).encode()


def cni_for(cache_dir: Path, record_file: Path | None = None, **kw: object) -> CNI:
    env = {"PATH": "/usr/bin:/bin"}
    if record_file is not None:
        env["RECORD_FILE"] = str(record_file)
    kw.setdefault("timeout", 30)
    return CNI(plugin_path=[str(PLUGINS)], cache_dir=str(cache_dir), env=env, on_stderr=None, **kw)  # type: ignore[arg-type]


def add_error(cache_dir: Path, conf: bytes, **kw: object) -> PluginError:
    with pytest.raises(PluginError) as info:
        cni_for(cache_dir, **kw).add(parse_conflist(conf, "misnet.conflist"), RT)
    return info.value


# --------------------------------------------------------------------------
# memory: measured in a process of its own

HARNESS = r"""
import json, os, resource, sys
sys.path.insert(0, sys.argv[1])
from libcni_py import AsyncCNI, CNI, CNIError, RuntimeConf, parse_conflist
conf, cache, driver = sys.argv[2].encode(), sys.argv[3], sys.argv[4]
seen = {"stderr": 0}
def on_stderr(req, data):
    seen["stderr"] += len(data)
kw = dict(plugin_path=[sys.argv[5]], cache_dir=cache, env={"PATH": "/usr/bin:/bin"}, timeout=60, on_stderr=on_stderr)
net = parse_conflist(conf, "misnet.conflist")
rt = RuntimeConf(container_id="c1", netns="/dev/null")
error = ""
try:
    if driver == "trio":
        import trio
        trio.run(AsyncCNI(**kw).add, net, rt)
    else:
        CNI(**kw).add(net, rt)
except CNIError as exc:
    error = exc.one_line()
print(json.dumps({"error": error, "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "stderr": seen["stderr"]}))
"""


def measure(tmp_path: Path, conf: bytes, driver: str) -> dict[str, object]:
    cache = tmp_path / f"cache-{driver}-{len(list(tmp_path.iterdir()))}"
    proc = subprocess.run(
        [sys.executable, "-c", HARNESS, str(REPO), conf.decode(), str(cache), driver, str(PLUGINS)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    out: dict[str, object] = json.loads(proc.stdout)
    return out


@pytest.mark.parametrize("driver", ["sync", "trio"])
def test_stdout_flood_is_cut_off_with_bounded_memory(driver: str, tmp_path: Path) -> None:
    baseline = measure(tmp_path, network({"type": "misbehave", "mode": "ok"}), driver)
    assert baseline["error"] == ""
    flood = measure(tmp_path, network({"type": "misbehave", "mode": "flood-stdout", "megabytes": 400}), driver)
    assert "wrote more than 16777216 bytes on stdout and was killed" in str(flood["error"])
    assert 'network "misnet": plugin type="misbehave" failed (add)' in str(flood["error"])
    # the runtime holds at most the 16 MiB limit (twice, while joining), not 400 MiB
    assert int(flood["maxrss"]) - int(baseline["maxrss"]) < 48 * MIB, (flood, baseline)


@pytest.mark.parametrize("driver", ["sync", "trio"])
def test_stderr_flood_is_drained_and_bounded(driver: str, tmp_path: Path) -> None:
    baseline = measure(tmp_path, network({"type": "misbehave", "mode": "ok"}), driver)
    flood = measure(tmp_path, network({"type": "misbehave", "mode": "flood-stderr", "megabytes": 300}), driver)
    assert flood["error"] == "", "a plugin that talks a lot on stderr still succeeds"
    assert flood["stderr"] == 64 * 1024, "only the first 64 KiB are kept"
    assert int(flood["maxrss"]) - int(baseline["maxrss"]) < 16 * MIB, (flood, baseline)


def test_stderr_flood_on_failure_is_kept_bounded(cache_dir: Path) -> None:
    err = add_error(
        cache_dir,
        network(
            {"type": "misbehave", "mode": "flood-stderr", "megabytes": 50},
            {"type": "misbehave", "mode": "garbage-error"},
        ),
    )
    assert len(err.stderr) <= 64 * 1024


# --------------------------------------------------------------------------
# stdin and stdout handled badly


def test_plugin_that_never_reads_its_stdin(cache_dir: Path) -> None:
    conf = network({"type": "misbehave", "pad": "p" * (3 * MIB)})
    cni = CNI(
        plugin_path=[str(PLUGINS)], cache_dir=str(cache_dir), env={"MISBEHAVE_MODE": "deaf"}, on_stderr=None, timeout=30
    )
    res = cni.add(parse_conflist(conf, "misnet.conflist"), RT)
    assert res.cni_version == "1.0.0"


def test_plugin_that_closes_stdout_early_and_keeps_running(cache_dir: Path) -> None:
    err = add_error(cache_dir, network({"type": "misbehave", "mode": "close-stdout"}), timeout=2)
    assert isinstance(err, PluginTimeoutError)
    assert "did not finish within 2.0s and was killed (it had started no other process)" in str(err)


def test_plugin_that_closes_stdout_early_then_exits_0(cache_dir: Path) -> None:
    err = add_error(cache_dir, network({"type": "misbehave", "mode": "close-stdout", "seconds": 0.5}))
    assert isinstance(err, InvalidResultError)
    assert "exited 0 but its output is not a result: not valid JSON" in str(err)
    assert "'{\"cniVersi'" in str(err), "the partial output is quoted"


@pytest.mark.parametrize(
    ("mode", "needle"),
    [
        ("partial", "exited 0 but its output is not a result: not valid JSON: Unterminated string"),
        ("empty", "exited 0 but its output is not a result: empty, expected a JSON document"),
        ("not-utf8", "exited 0 but its output is not a result: not valid UTF-8 (bad byte at offset 45)"),
        ("invalid-result", "exited 0 but returned an invalid result: ips[0].address: invalid CIDR address"),
    ],
)
def test_exit_0_without_a_valid_result(mode: str, needle: str, cache_dir: Path, record_file: Path) -> None:
    conf = network({"type": "recorder"}, {"type": "misbehave", "mode": mode})
    err = add_error(cache_dir, conf, record_file=record_file)
    assert isinstance(err, InvalidResultError) and err.code == 6
    assert needle in str(err)
    assert str(err).startswith('network "misnet": plugin type="misbehave" failed (add): ')
    # what the first plugin made is recorded, and DEL undoes it
    record = json.loads((cache_dir / "results" / "misnet-c1-eth0").read_text())
    assert record["libcniPy"] == {"state": "failed", "done": 1, "plugins": 2}
    cni_for(cache_dir, record_file).delete(parse_conflist(conf, "misnet.conflist"), RT)
    assert [c["command"] for c in read_calls(record_file)] == ["ADD", "DEL"]
    assert not (cache_dir / "results" / "misnet-c1-eth0").exists()


def test_error_object_with_garbage_fields(cache_dir: Path) -> None:
    err = add_error(cache_dir, network({"type": "misbehave", "mode": "garbage-error"}))
    assert type(err) is PluginError
    assert "netplugin failed (exit status 1) and its error object is invalid (code: expected an integer)" in str(err)


def test_result_of_an_unknown_version(cache_dir: Path) -> None:
    err = add_error(cache_dir, network({"type": "misbehave", "mode": "version", "resultVersion": "7.0.0"}))
    assert isinstance(err, InvalidResultError)
    assert 'returned an invalid result: unsupported CNI result version "7.0.0"' in str(err)


def test_result_of_another_known_version_is_passed_on_as_go_does(cache_dir: Path, record_file: Path) -> None:
    """Go hands the next plugin a result in the version it came in, and the
    next plugin's skel converts it to its configuration's version."""
    conf = network({"type": "misbehave", "mode": "version", "resultVersion": "1.1.0"}, {"type": "recorder"})
    res = cni_for(cache_dir, record_file).add(parse_conflist(conf, "misnet.conflist"), RT)
    (call,) = read_calls(record_file)
    assert json.loads(str(call["stdin"]))["prevResult"]["cniVersion"] == "1.1.0"
    assert isinstance(res, results.Result) and res.cni_version == "1.0.0"
    assert res.ips[0].address == "10.3.0.9/24"


@pytest.mark.parametrize("other", ["0.2.0", "0.3.1"])
def test_result_of_an_older_version_is_refused_by_the_next_plugin(
    other: str, cache_dir: Path, record_file: Path
) -> None:
    """As with Go: a skel-built next plugin cannot take a prevResult of an
    older family than its configuration, and says which version it got."""
    conf = network({"type": "misbehave", "mode": "version", "resultVersion": other}, {"type": "recorder"})
    err = add_error(cache_dir, conf, record_file=record_file)
    assert err.plugin_type == "recorder" and err.code == 6
    assert (
        f'could not parse prevResult: result type supports [1.0.0 1.1.0] but unmarshalled CNIVersion is "{other}"'
        in str(err)
    )
    record = json.loads((cache_dir / "results" / "misnet-c1-eth0").read_text())
    assert record["libcniPy"]["done"] == 1 and record["result"]["cniVersion"] == other
    cni_for(cache_dir, record_file).delete(parse_conflist(conf, "misnet.conflist"), RT)
    assert not (cache_dir / "results" / "misnet-c1-eth0").exists()


def test_try_again_later_is_retryable(cache_dir: Path, conf_dir: Path, tmp_path: Path) -> None:
    err = add_error(cache_dir, network({"type": "misbehave", "mode": "try-again"}))
    assert err.retryable and err.code == 11
    assert err.one_line().endswith("the address pool is being resized: retry in 5s (retryable: try again later)")
    write_conf(conf_dir, "10-mis.conflist", json.loads(network({"type": "misbehave", "mode": "try-again"})))
    netns = tmp_path / "ns"
    netns.write_text("")
    proc = run_cnitool(
        "add",
        "misnet",
        str(netns),
        env={"NETCONFPATH": str(conf_dir), "CNI_PATH": str(PLUGINS), "CNI_CACHE_DIR": str(cache_dir)},
    )
    assert proc.returncode == 75, proc.stderr
    assert proc.stderr.strip().endswith("(retryable: try again later)")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_a_plugin_echoing_its_stdin_never_shows_capability_values(
    cache_dir: Path, conf_dir: Path, tmp_path: Path
) -> None:
    secret = "s3cr3t-t0ken-value"
    conf = {
        "cniVersion": "1.0.0",
        "name": "misnet",
        "plugins": [{"type": "misbehave", "mode": "echo-stdin", "capabilities": {"auth": True}}],
    }
    write_conf(conf_dir, "10-mis.conflist", conf)
    env = {
        "NETCONFPATH": str(conf_dir),
        "CNI_PATH": str(PLUGINS),
        "CNI_CACHE_DIR": str(cache_dir),
        "CAP_ARGS": json.dumps({"auth": {"token": secret, "quoted": 'a"b<c>d'}}),
    }
    for extra in ((), ("--debug",)):
        netns = tmp_path / f"ns{len(extra)}"  # a pod each: the failed ADD's record stays until a DEL
        netns.write_text("")
        proc = run_cnitool(*extra, "add", "misnet", str(netns), env=env)
        assert proc.returncode == 1
        assert "cannot handle this config" in proc.stderr, "the plugin's output is still quoted"
        assert "<redacted>" in proc.stderr
        assert secret not in proc.stderr and 'a\\"b' not in proc.stderr and "\\u003cc\\u003e" not in proc.stderr
    cni = CNI(plugin_path=[str(PLUGINS)], cache_dir=str(cache_dir), on_stderr=None)
    rt = RT.replace(capability_args={"auth": {"token": secret}})
    with pytest.raises(PluginError) as info:
        cni.add(parse_conflist(json.dumps(conf).encode(), "misnet.conflist"), rt)
    assert secret not in str(info.value) and secret not in repr(info.value.args)
    assert secret.encode() in info.value.stderr, "the raw stderr stays available to the library caller"


def test_overflow_and_timeout_outcomes_are_exec_errors(cache_dir: Path) -> None:
    err = add_error(cache_dir, network({"type": "misbehave", "mode": "flood-stdout", "megabytes": 40}))
    assert isinstance(err, PluginExecError) and err.code is None


def test_a_chain_stopped_at_a_deadline_leaves_a_record_for_del(
    cache_dir: Path, record_file: Path, tmp_path: Path
) -> None:
    """The hanger and the child it started are killed at the deadline; the
    record says how far the chain got, so DEL knows what to undo."""
    from test_exec_limits import wait_gone

    pid_file = tmp_path / "pids"
    net = parse_conflist(network({"type": "recorder"}, {"type": "hanger", "pidFile": str(pid_file)}), "misnet.conflist")
    with pytest.raises(PluginTimeoutError):
        cni_for(cache_dir, record_file, timeout=1.5).add(net, RT)
    plugin_pid, child_pid = (int(x) for x in pid_file.read_text().split())
    assert wait_gone(plugin_pid) and wait_gone(child_pid)
    record = json.loads((cache_dir / "results" / "misnet-c1-eth0").read_text())
    assert record["libcniPy"] == {"state": "failed", "done": 1, "plugins": 2}
    assert [i["name"] for i in record["result"]["interfaces"]] == ["rec0"]
