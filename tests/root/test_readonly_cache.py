"""Read-only or damaged cache state never keeps DEL or GC from running the
plugins (issue 12), on Debian's real bridge + host-local, tuning and portmap:
the cache dir as a read-only bind mount (in a private mount namespace, so
only this test's process sees it), a directory planted where the lock file
goes, and a user who may not write the cache dir.  Each ends with nothing
left on the node."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import faults
import pytest
from support import CNITOOL, DEBIAN_PLUGINS, PLUGINS, read_calls, write_conf

pytestmark = pytest.mark.root


class Attachment(faults.Chain):
    """One real attachment (bridge + host-local, tuning, portmap) of one pod."""

    def __init__(self, tmp_path: Path, pod: str) -> None:
        super().__init__(tmp_path, pod, prefix="ronet")
        self.filename = f"{self.network}-{self.cid}-eth0"

    def cnitool(self, *argv: str, read_only: bool = False) -> subprocess.CompletedProcess[str]:
        """Run cnitool; ``read_only``: in a mount namespace of its own in
        which the cache dir is a read-only bind mount of itself."""
        command = [sys.executable, str(CNITOOL), *argv]
        if read_only:
            script = 'mount --bind -o ro "$0" "$0" && exec "$@"'
            command = [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                script,
                str(self.cache_dir),
                *command,
            ]
        env = dict(os.environ) | {
            "NETCONFPATH": str(self.conf_dir),
            "CNI_PATH": str(DEBIAN_PLUGINS),
            "CNI_CACHE_DIR": str(self.cache_dir),
            "CAP_ARGS": self.caps,
        }
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def attachment(make_netns, tmp_path: Path) -> Iterator[Attachment]:
    made = Attachment(tmp_path, make_netns("ropod"))
    yield made
    subprocess.run(["ip", "link", "del", made.bridge], check=False, capture_output=True)


def added(att: Attachment) -> dict[str, list[str]]:
    add = att.cnitool("add", att.network, att.netns)
    assert add.returncode == 0, add.stderr
    made = att.leftovers()
    assert {"veth on the bridge", "eth0 in the pod", "host-local reservation", "iptables"} <= set(faults.leaked(made))
    return made


@pytest.mark.parametrize("lock", ["lock file kept by ADD", "no lock file"])
@pytest.mark.parametrize("recovery", ["del", "gc"])
def test_del_and_gc_with_a_read_only_cache_dir(attachment: Attachment, recovery: str, lock: str) -> None:
    att = attachment
    added(att)
    lock_file = att.cache_dir / "libcni_py" / "locks" / att.filename
    if lock == "no lock file":
        lock_file.unlink()  # as after a Go ADD: the lock file can then not be created
    argv = ("del", att.network, att.netns) if recovery == "del" else ("gc", att.network, "--all", "--force")
    proc = att.cnitool(*argv, read_only=True)
    assert proc.returncode == 0, proc.stderr
    notes = [line for line in proc.stderr.splitlines() if line.startswith("cnitool")]
    # the record could not be removed: said in one line, and that the attachment is gone
    assert any(
        f"{att.filename}: cannot remove: read-only file system; the attachment is deleted" in n for n in notes
    ), notes
    without_lock = [n for n in notes if "deleting without the attachment's lock" in n]
    if lock == "no lock file":
        assert len(without_lock) == 1 and "cannot be created: read-only file system" in without_lock[0], notes
    else:
        assert without_lock == [], "the existing lock file is locked read-only"
    # the plugins ran, with the prevResult they could read: nothing left but the record
    found = att.leftovers()
    assert faults.leaked(found) == ["cache files"], found
    assert f"results/{att.filename}" in found["cache files"]
    # a later GC, with the cache dir writable again, finds the record and finishes
    gc = att.cnitool("gc", att.network, "--all", "--force")
    assert gc.returncode == 0, gc.stderr
    assert f"removed {att.cid}/eth0" in gc.stdout
    assert faults.leaked(att.leftovers()) == [], att.leftovers()


def test_del_with_a_directory_planted_where_the_lock_file_goes(attachment: Attachment) -> None:
    att = attachment
    added(att)
    lock_path = att.cache_dir / "libcni_py" / "locks" / att.filename
    lock_path.unlink()
    lock_path.mkdir()
    (lock_path / "keep").write_text("not ours")
    proc = att.cnitool("del", att.network, att.netns)
    assert proc.returncode == 0, proc.stderr
    assert "internal error" not in proc.stderr
    found = att.leftovers()
    assert faults.leaked(found) == ["cache files"], found
    assert found["cache files"] == [f"libcni_py/locks/{att.filename}/keep"], "the record is gone"
    assert (lock_path / "keep").read_text() == "not ours", "what was planted is left alone"


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory every user may enter (pytest's tmp_path is root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="lcpy-ro-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def as_nobody(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable, str(CNITOOL), *argv]
    return subprocess.run(
        command, env=dict(os.environ) | env, capture_output=True, text=True, timeout=120, check=False, cwd="/"
    )


def test_a_user_who_may_not_write_the_cache_dir_gets_a_clear_error(shared_dir: Path) -> None:
    conf_dir = shared_dir / "net.d"
    conf_dir.mkdir()
    record = shared_dir / "calls.jsonl"
    record.write_text("")
    record.chmod(0o666)
    write_conf(
        conf_dir, "10-rec.conflist", {"cniVersion": "1.0.0", "name": "usernet", "plugins": [{"type": "recorder"}]}
    )
    (conf_dir / "10-rec.conflist").chmod(0o644)
    netns = shared_dir / "ns"
    netns.write_text("")
    netns.chmod(0o644)
    cache = shared_dir / "cache"
    cache.mkdir(mode=0o755)  # root's, as /var/lib/cni is
    env = {
        "NETCONFPATH": str(conf_dir),
        "CNI_PATH": str(PLUGINS),
        "CNI_CACHE_DIR": str(cache),
        "RECORD_FILE": str(record),
    }

    add = as_nobody("add", "usernet", str(netns), env=env)
    assert add.returncode == 5, add.stderr
    (line,) = add.stderr.splitlines()
    assert line.startswith(f"cnitool: error: {cache}/") and "permission denied" in line, line
    assert f"{cache} belongs to uid 0" in line and "give --cache-dir a directory you own" in line, line
    assert read_calls(record) == [], "refused before any plugin ran"

    pod_gc = as_nobody("pod", "gc", env=env)
    assert pod_gc.returncode == 5 and "permission denied" in pod_gc.stderr, pod_gc.stderr
    assert "internal error" not in pod_gc.stderr

    # root adds; the user's DEL can neither read, lock nor remove the record
    # (root's, 0600 in 0700 directories), and still runs the plugin
    root_add = subprocess.run(
        [sys.executable, str(CNITOOL), "add", "usernet", str(netns)],
        env=dict(os.environ) | env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert root_add.returncode == 0, root_add.stderr
    delete = as_nobody("del", "usernet", str(netns), env=env)
    assert delete.returncode == 0, delete.stderr
    assert "deleting without the attachment's lock" in delete.stderr
    assert "the attachment is deleted but its cache record is not" in delete.stderr
    assert [c["command"] for c in read_calls(record)] == ["ADD", "DEL"]
