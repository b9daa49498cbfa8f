"""libcni_py.skel against Go's pkg/skel (libcni 1.3.0), case by case.

The same table of invocations -- every command, missing and invalid
variables, bad names, version gates, VERSION, bad stdin, the netns check
and its override -- runs against two twin plugins: ``tests/goskel`` on Go's
``pkg/skel`` and ``testdata/plugins/skelproto`` on ``libcni_py.skel``.  They
must agree on the exit status, on whether the command function ran
("called X" on stderr), and on stdout: the same result, or the same error
``code``, ``msg`` and ``details``.

Known differences, asserted (never hidden), explained in the README:

* error objects: ours also carry ``cniVersion`` (the spec asks for it;
  Go's skel prints only code, msg and details);
* JSON syntax errors in stdin: same code and prefix, but the wording after
  ``error unmarshall network config:`` is Go's encoding/json's own
  (``"order"`` below: only an empty stdin is worded as Go's);
* the own-netns check: Go runs ADD/DEL first and refuses afterwards (its
  stdout then holds the ADD result before the error); ours refuses before
  the command runs (``"netns-order"`` below).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from support import PLUGINS

SKELPROTO = PLUGINS / "skelproto"
BASE_CONF: dict[str, Any] = {"cniVersion": "1.1.0", "name": "net1", "type": "skelproto"}
DROP = None  # an env value of None removes the variable


def conf(**fields: Any) -> bytes:
    doc = dict(BASE_CONF)
    for key, value in fields.items():
        if value is DROP:
            doc.pop(key, None)
        else:
            doc[key] = value
    return json.dumps(doc).encode()


# name -> (env changes, stdin, known difference or "")
CASES: dict[str, tuple[dict[str, str | None], bytes, str]] = {
    # every command, as it should be
    "add": ({}, conf(), ""),
    "add-no-version-means-0.1.0": ({}, conf(cniVersion=DROP), ""),
    "del": ({"CNI_COMMAND": "DEL"}, conf(), ""),
    "del-without-netns": ({"CNI_COMMAND": "DEL", "CNI_NETNS": None}, conf(), ""),
    "del-gone-netns": ({"CNI_COMMAND": "DEL", "CNI_NETNS": "/nonexistent/netns"}, conf(), ""),
    "check": ({"CNI_COMMAND": "CHECK"}, conf(), ""),
    "check-0.4.0": ({"CNI_COMMAND": "CHECK"}, conf(cniVersion="0.4.0"), ""),
    "gc": ({"CNI_COMMAND": "GC", "CNI_CONTAINERID": None, "CNI_IFNAME": None, "CNI_NETNS": None}, conf(), ""),
    "status": ({"CNI_COMMAND": "STATUS", "CNI_CONTAINERID": None, "CNI_IFNAME": None}, conf(), ""),
    "version": ({"CNI_COMMAND": "VERSION"}, b"not json at all", ""),
    "version-restricted": ({"CNI_COMMAND": "VERSION", "SKEL_VERSIONS": "0.3.1,0.4.0"}, b"", ""),
    # the environment
    "no-command": ({"CNI_COMMAND": None}, conf(), ""),
    "no-command-about": ({"CNI_COMMAND": None, "SKEL_ABOUT": "skel twin v1"}, conf(), ""),
    "no-command-about-versions": (
        {"CNI_COMMAND": None, "SKEL_ABOUT": "skel twin v1", "SKEL_VERSIONS": "0.4.0,1.0.0"},
        b"",
        "",
    ),
    "unknown-command": ({"CNI_COMMAND": "FOO"}, conf(), ""),
    "lower-case-command": ({"CNI_COMMAND": "add"}, conf(), ""),
    "unknown-command-bad-stdin": ({"CNI_COMMAND": "FOO"}, b"{", "json-wording"),
    "missing-containerid": ({"CNI_CONTAINERID": None}, conf(), ""),
    "missing-netns": ({"CNI_NETNS": None}, conf(), ""),
    "check-missing-netns": ({"CNI_COMMAND": "CHECK", "CNI_NETNS": None}, conf(), ""),
    "missing-ifname": ({"CNI_IFNAME": None}, conf(), ""),
    "missing-path": ({"CNI_PATH": None}, conf(), ""),
    "missing-all": ({"CNI_CONTAINERID": None, "CNI_NETNS": None, "CNI_IFNAME": None, "CNI_PATH": None}, conf(), ""),
    "del-missing-all": (
        {"CNI_COMMAND": "DEL", "CNI_CONTAINERID": None, "CNI_NETNS": None, "CNI_IFNAME": None, "CNI_PATH": None},
        conf(),
        "",
    ),
    "gc-missing-path": ({"CNI_COMMAND": "GC", "CNI_PATH": None}, conf(), ""),
    "status-missing-path": ({"CNI_COMMAND": "STATUS", "CNI_PATH": None}, conf(), ""),
    # names (Go's pkg/utils)
    "containerid-space": ({"CNI_CONTAINERID": "a b"}, conf(), ""),
    "containerid-leading-dash": ({"CNI_CONTAINERID": "-abc"}, conf(), ""),
    "containerid-slash": ({"CNI_COMMAND": "DEL", "CNI_CONTAINERID": "../x"}, conf(), ""),
    "containerid-ok-punctuation": ({"CNI_CONTAINERID": "A1_b.c-d"}, conf(), ""),
    "gc-containerid-not-checked": ({"CNI_COMMAND": "GC", "CNI_CONTAINERID": "a b"}, conf(), ""),
    "ifname-16": ({"CNI_IFNAME": "a" * 16}, conf(), ""),
    "ifname-15": ({"CNI_IFNAME": "a" * 15}, conf(), ""),
    "ifname-16-bytes-utf8": ({"CNI_IFNAME": "é" * 8}, conf(), ""),
    "ifname-slash": ({"CNI_IFNAME": "a/b"}, conf(), ""),
    "ifname-colon": ({"CNI_IFNAME": "a:b"}, conf(), ""),
    "ifname-space": ({"CNI_IFNAME": "a b"}, conf(), ""),
    "ifname-tab": ({"CNI_IFNAME": "a\tb"}, conf(), ""),
    "ifname-nbsp": ({"CNI_IFNAME": "a\u00a0b"}, conf(), ""),
    "ifname-dot": ({"CNI_IFNAME": "."}, conf(), ""),
    "ifname-dotdot": ({"CNI_COMMAND": "CHECK", "CNI_IFNAME": ".."}, conf(), ""),
    "bad-ifname-before-missing-path": ({"CNI_IFNAME": "a/b", "CNI_PATH": None}, conf(), ""),
    "bad-ifname-after-missing-containerid": ({"CNI_CONTAINERID": None, "CNI_IFNAME": "a/b"}, conf(), ""),
    "bad-containerid-and-ifname": ({"CNI_CONTAINERID": "a b", "CNI_IFNAME": "a/b"}, conf(), ""),
    "status-ifname-not-checked": ({"CNI_COMMAND": "STATUS", "CNI_IFNAME": "a/b/c/d/e/f/g/h/i"}, conf(), ""),
    "no-name": ({}, conf(name=DROP), ""),
    "empty-name": ({}, conf(name=""), ""),
    "name-space": ({}, conf(name="a b"), ""),
    "name-leading-dot": ({}, conf(name=".net"), ""),
    "name-key-any-case": ({}, json.dumps({"cniVersion": "1.1.0", "NAME": "net1"}).encode(), ""),
    "name-not-string": ({}, conf(name=5), ""),
    "gc-no-name": ({"CNI_COMMAND": "GC"}, conf(name=DROP), ""),
    # stdin
    "stdin-empty": ({}, b"", ""),
    "stdin-truncated": ({}, b'{"name": "net1"', "json-wording"),
    "stdin-array": ({}, b"[1, 2]", ""),
    "stdin-string": ({}, b'"net1"', ""),
    "stdin-null": ({}, b"null", ""),
    "version-not-string": ({}, conf(cniVersion=1), ""),
    "del-version-not-string": ({"CNI_COMMAND": "DEL"}, conf(cniVersion=True), ""),
    # version gates
    "add-unsupported-version": ({}, conf(cniVersion="9.9.9"), ""),
    "add-restricted-versions": ({"SKEL_VERSIONS": "0.3.1,0.4.0"}, conf(), ""),
    "add-each-version-0.1.0": ({}, conf(cniVersion="0.1.0"), ""),
    "add-each-version-0.2.0": ({}, conf(cniVersion="0.2.0"), ""),
    "add-each-version-0.3.0": ({}, conf(cniVersion="0.3.0"), ""),
    "add-each-version-0.3.1": ({}, conf(cniVersion="0.3.1"), ""),
    "add-each-version-0.4.0": ({}, conf(cniVersion="0.4.0"), ""),
    "add-each-version-1.0.0": ({}, conf(cniVersion="1.0.0"), ""),
    "add-malformed-version": ({}, conf(cniVersion="x.y"), ""),
    "check-0.3.1": ({"CNI_COMMAND": "CHECK"}, conf(cniVersion="0.3.1"), ""),
    "check-no-version": ({"CNI_COMMAND": "CHECK"}, conf(cniVersion=DROP), ""),
    "check-malformed-version": ({"CNI_COMMAND": "CHECK"}, conf(cniVersion="x.0.0"), ""),
    "check-too-many-parts": ({"CNI_COMMAND": "CHECK"}, conf(cniVersion="1.0.0.0"), ""),
    "check-bad-minor": ({"CNI_COMMAND": "CHECK"}, conf(cniVersion="1.x"), ""),
    "check-plugin-too-old": ({"CNI_COMMAND": "CHECK", "SKEL_VERSIONS": "0.3.1,0.4.0"}, conf(), ""),
    "check-newer-but-not-exact": (
        {"CNI_COMMAND": "CHECK", "SKEL_VERSIONS": "0.3.1,1.0.0"},
        conf(cniVersion="0.4.0"),
        "",
    ),
    "gc-1.0.0": ({"CNI_COMMAND": "GC"}, conf(cniVersion="1.0.0"), ""),
    "gc-0.4.0": ({"CNI_COMMAND": "GC"}, conf(cniVersion="0.4.0"), ""),
    "gc-plugin-too-old": ({"CNI_COMMAND": "GC", "SKEL_VERSIONS": "0.4.0,1.0.0"}, conf(), ""),
    "gc-future-version": ({"CNI_COMMAND": "GC"}, conf(cniVersion="1.2.0"), ""),
    "status-1.0.0": ({"CNI_COMMAND": "STATUS"}, conf(cniVersion="1.0.0"), ""),
    "status-plugin-too-old": ({"CNI_COMMAND": "STATUS", "SKEL_VERSIONS": "1.0.0"}, conf(), ""),
    # what the command function says
    "fail-with-code": ({}, conf(fail={"code": 11, "msg": "try again", "details": "busy"}), ""),
    "check-fail-with-code": ({"CNI_COMMAND": "CHECK"}, conf(fail={"code": 7, "msg": "bad config"}), ""),
    "del-plain-error": ({"CNI_COMMAND": "DEL"}, conf(plainError="boom"), ""),
    "gc-plain-error": ({"CNI_COMMAND": "GC"}, conf(plainError="gc went wrong"), ""),
    # the plugin's own network namespace
    "add-own-netns": ({"CNI_NETNS": "/proc/self/ns/net"}, conf(), "netns-order"),
    "del-own-netns": ({"CNI_COMMAND": "DEL", "CNI_NETNS": "/proc/self/ns/net"}, conf(), "netns-order"),
    "add-own-netns-override-1": ({"CNI_NETNS": "/proc/self/ns/net", "CNI_NETNS_OVERRIDE": "1"}, conf(), ""),
    "add-own-netns-override-true": ({"CNI_NETNS": "/proc/self/ns/net", "CNI_NETNS_OVERRIDE": "True"}, conf(), ""),
    "add-own-netns-override-yes": (
        {"CNI_NETNS": "/proc/self/ns/net", "CNI_NETNS_OVERRIDE": "yes"},
        conf(),
        "netns-order",
    ),
    "check-own-netns-not-checked": ({"CNI_COMMAND": "CHECK", "CNI_NETNS": "/proc/self/ns/net"}, conf(), ""),
    "add-netns-not-a-namespace": ({"CNI_NETNS": "/proc/self/status"}, conf(), ""),
}


def run_plugin(plugin: list[str], env: dict[str, str], stdin: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(plugin, env=env, input=stdin, capture_output=True, timeout=60, check=False)


def documents(stdout: bytes) -> list[Any]:
    """The JSON documents on a plugin's stdout (Go's may hold two: a result
    and then an error)."""
    decoder = json.JSONDecoder()
    text, docs, pos = stdout.decode(), [], 0
    while pos < len(text):
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos == len(text):
            break
        doc, pos = decoder.raw_decode(text, pos)
        docs.append(doc)
    return docs


@pytest.fixture(scope="module")
def netns_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("skelproto") / "netns"
    path.write_text("")
    return str(path)


@pytest.mark.parametrize("case", list(CASES))
def test_same_answer_as_go_skel(case: str, goskel: Path, netns_file: str) -> None:
    changes, stdin, known = CASES[case]
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "CNI_COMMAND": "ADD",
        "CNI_CONTAINERID": "ctr1",
        "CNI_NETNS": netns_file,
        "CNI_IFNAME": "eth0",
        "CNI_PATH": "/nonexistent/cni/bin",
    }
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    go = run_plugin([str(goskel)], env, stdin)
    py = run_plugin([str(SKELPROTO)], env, stdin)
    assert py.returncode == go.returncode, (go.stdout, py.stdout, py.stderr)
    go_called = [line for line in go.stderr.decode().splitlines() if line.startswith("called ")]
    py_called = [line for line in py.stderr.decode().splitlines() if line.startswith("called ")]
    go_docs, py_docs = documents(go.stdout), documents(py.stdout)

    if known == "netns-order":
        # Go ran the command, then refused; we refuse before running it
        assert go_called and not py_called
        assert py.returncode == 1 and len(py_docs) == 1
        assert go_docs[-1] == {"code": 8, "msg": "plugin's netns and netns from CNI_NETNS should not be the same"}
        if env["CNI_COMMAND"] == "ADD":
            assert len(go_docs) == 2 and "interfaces" in go_docs[0], "Go printed its result before the error"
        py_error = dict(py_docs[0])
        assert py_error.pop("cniVersion") == "1.1.0"
        assert py_error == go_docs[-1]
        return

    assert py_called == go_called
    if "SKEL_ABOUT" in changes and go.returncode == 0:
        assert py.stderr == go.stderr and go.stdout == py.stdout == b""
        return
    if env.get("CNI_COMMAND") == "VERSION":
        assert py.stdout == go.stdout  # both encode as json.Encoder does: compact, with a newline
        return
    assert len(py_docs) == len(go_docs) <= 1
    if not go_docs:
        assert py_docs == []
        return
    go_doc, py_doc = go_docs[0], dict(py_docs[0])
    if go.returncode == 0:
        assert py_doc == go_doc
        return
    assert "cniVersion" not in go_doc
    assert isinstance(py_doc.pop("cniVersion"), str)  # ours carries it, as the spec asks
    if known == "json-wording":
        prefix = "error unmarshall network config: "
        assert py_doc["code"] == go_doc["code"] == 6
        assert py_doc["msg"].startswith(prefix) and go_doc["msg"].startswith(prefix)
        return
    assert not known
    assert py_doc == go_doc


def test_table_covers_every_command_and_code() -> None:
    """The table is the parity claim: keep it covering every command and
    every error code Go's skel itself produces."""
    commands = {changes.get("CNI_COMMAND", "ADD") for changes, _, _ in CASES.values()}
    assert {"ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION", None, "FOO"} <= commands
    assert len(CASES) >= 60
