"""The pure parts of ``cnitool watch``: nf_tables notifications decoded from
bytes, the network a call most likely came from, paths seen from another
mount namespace, and the one-line error without root."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

from support import CNITOOL

from libcni_py.tools.trace.nft_events import parse_nft
from libcni_py.tools.trace.watch import _in_root, guess_network


def _nla(kind: int, payload: bytes) -> bytes:
    raw = struct.pack("=HH", 4 + len(payload), kind) + payload
    return raw + b"\0" * (-len(raw) % 4)


def _msg(sub: int, family: int, attrs: bytes, port: int) -> bytes:
    body = bytes([family, 0, 0, 0]) + attrs
    return struct.pack("=IHHII", 16 + len(body), (10 << 8) | sub, 0, 0, port) + body


def test_nft_rule_with_comment_match_and_chain() -> None:
    info = b'dnat name: "net" id: "c1"'.ljust(256, b"\0")
    match = _nla(1, b"match\0") + _nla(2, _nla(1, b"comment\0") + _nla(2, b"\0\0\0\0") + _nla(3, info))
    exprs = _nla(1, _nla(1, b"counter\0")) + _nla(1, match)
    rule = _nla(1, b"nat\0") + _nla(2, b"CNI-HOSTPORT-DNAT\0") + _nla(3, struct.pack(">Q", 16)) + _nla(4, exprs)
    chain = _nla(1, b"nat\0") + _nla(3, b"CNI-DN-x\0")
    data = _msg(6, 2, rule, 4242) + _msg(5, 10, chain, 0) + _msg(15, 2, _nla(2, struct.pack(">I", 77)), 0)
    events = parse_nft(data)
    assert [(e.kind, e.change, e.table, e.text, e.pid) for e in events] == [
        ("iptables-rule", "added", "ip nat", 'rule in CNI-HOSTPORT-DNAT #16: dnat name: "net" id: "c1"', 4242),
        ("iptables-chain", "removed", "ip6 nat", "chain CNI-DN-x", 77),  # the transaction's pid
    ]


def test_nft_ignores_other_subsystems_and_truncation() -> None:
    other = struct.pack("=IHHII", 20, (11 << 8) | 6, 0, 0, 1) + b"\0" * 4
    assert parse_nft(other) == []
    assert parse_nft(other[:10]) == []


def test_guess_network(tmp_path: Path) -> None:
    conf = tmp_path / "net.d"
    conf.mkdir()
    (conf / "10-a.conflist").write_text(json.dumps({"name": "a", "plugins": [{"type": "bridge"}, {"type": "portmap"}]}))
    (conf / "20-b.conf").write_text(json.dumps({"name": "b", "type": "macvlan"}))
    by_record = guess_network(str(conf), ["bridge"], "a", "eth0", "containerd")
    assert by_record["file"] == str(conf / "10-a.conflist") and "record" in by_record["why"]
    by_types = guess_network(str(conf), ["macvlan"], "", "eth0", "containerd")
    assert by_types["network"] == "b" and "only file" in by_types["why"]
    builtin = guess_network(str(conf), ["loopback"], "cni-loopback", "lo", "containerd")
    assert builtin["file"] == "" and "builds itself" in builtin["why"]
    none = guess_network(str(conf), ["loopback"], "", "lo", "podman")
    assert none["network"] == "" and "loopback network podman builds itself" in none["why"]


def test_in_root_resolves_absolute_links_inside(tmp_path: Path) -> None:
    (tmp_path / "run" / "netns").mkdir(parents=True)
    (tmp_path / "var").mkdir()
    os.symlink("/run", tmp_path / "var" / "run")
    assert _in_root(str(tmp_path), "/var/run/netns/cni-1") == f"{tmp_path}/run/netns/cni-1"
    assert _in_root(str(tmp_path), "/plain/path") == f"{tmp_path}/plain/path"


def test_watch_needs_root_one_line() -> None:
    """Without root: one line saying so, no traceback (as root, run as user nobody)."""
    argv = [sys.executable, str(CNITOOL), "watch", "--duration", "1"]
    if os.geteuid() == 0:
        argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *argv]
    proc = subprocess.run(argv, capture_output=True, text=True, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    assert proc.returncode != 0
    assert "error: watch needs root" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) <= 2
