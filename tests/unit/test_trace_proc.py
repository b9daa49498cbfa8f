"""The pure parts of libcni_py.tools.trace.proc: the kernel's event formats decoded
from bytes, the process tree, and who made each change."""

from __future__ import annotations

import os
import socket
import struct

from libcni_py.edges.probes import Change
from libcni_py.tools.trace import fanotify_events as fe
from libcni_py.tools.trace import net_events as ne
from libcni_py.tools.trace import observer
from libcni_py.tools.trace import proc as pt
from libcni_py.tools.trace import proc_events as pe
from libcni_py.tools.trace.text import _process_lines
from libcni_py.tools.trace.tracer import Event, format_event

SELF = os.getpid()
MS = 1_000_000  # nanoseconds

# --------------------------------------------------------------------------
# process events, as the connector sends them


def proc_event(what: int, payload: bytes, ns: int = 1000) -> bytes:
    body = struct.pack("=IIQ", what, 0, ns) + payload
    body += b"\0" * (40 - len(body))  # the union is as large as its largest member
    cn = struct.pack("=IIIIHH", pe.CN_IDX_PROC, pe.CN_VAL_PROC, 7, 0, len(body), 0) + body
    return struct.pack("=IHHII", 16 + len(cn), pe.NLMSG_DONE, 0, 0, 0) + cn


def fork(parent: int, child: int, *, thread: int = 0, ns: int = 1000) -> bytes:
    return proc_event(pe.PROC_EVENT_FORK, struct.pack("=IIII", parent, parent, thread or child, child), ns)


def exec_(pid: int, ns: int = 2000) -> bytes:
    return proc_event(pe.PROC_EVENT_EXEC, struct.pack("=II", pid, pid), ns)


def exit_(pid: int, status: int, ns: int = 3000) -> bytes:
    return proc_event(pe.PROC_EVENT_EXIT, struct.pack("=IIIIII", pid, pid, status, 17, 1, 1), ns)


def test_connector_messages_decode() -> None:
    data = fork(100, 101, ns=5) + exec_(101, ns=6) + exit_(101, 3 << 8, ns=7)
    data += fork(101, 101, thread=102)  # a new thread of 101
    data += proc_event(0x200, struct.pack("=II", 101, 101) + b"comm".ljust(16, b"\0"))  # COMM: skipped
    events = pt.parse_proc_events(data)
    assert events == [
        pt.ProcEvent(kind="fork", pid=101, tgid=101, parent=100, ns=5),
        pt.ProcEvent(kind="exec", pid=101, tgid=101, ns=6),
        pt.ProcEvent(kind="exit", pid=101, tgid=101, parent=1, status=3 << 8, ns=7),
        pt.ProcEvent(kind="fork", pid=102, tgid=101, parent=101, ns=1000),
    ]
    # a message of another connector, and a truncated one, are not events
    other = proc_event(pe.PROC_EVENT_EXEC, struct.pack("=II", 5, 5)).replace(
        struct.pack("=II", 1, 1), struct.pack("=II", 9, 9), 1
    )
    assert pt.parse_proc_events(other) == []
    assert pt.parse_proc_events(exec_(101)[:30]) == []


def test_the_process_an_event_is_about_is_found_without_decoding() -> None:
    assert pt.subject(fork(100, 101)) == 100  # the parent
    assert pt.subject(exec_(101)) == pt.subject(exit_(101, 0)) == 101
    assert pt.subject(fork(100, 101) + exec_(101)) == -1  # two messages: decode them
    assert pt.subject(exec_(101)[:40]) == -1


def test_control_message_layout() -> None:
    msg = pt.control_message(pe.PROC_CN_MCAST_LISTEN)
    length, kind, _flags, _seq, _port = struct.unpack_from("=IHHII", msg)
    assert length == len(msg) == 16 + 20 + 4 and kind == pe.NLMSG_DONE
    assert struct.unpack_from("=IIIIHH", msg, 16) == (pe.CN_IDX_PROC, pe.CN_VAL_PROC, 0, 0, 4, 0)
    assert struct.unpack_from("=I", msg, 36) == (pe.PROC_CN_MCAST_LISTEN,)


def test_wait_status() -> None:
    assert pt.wait_status(0) == 0
    assert pt.wait_status(1 << 8) == 1
    assert pt.wait_status(9) == -9  # killed by SIGKILL
    assert pt.wait_status(0x80 | 11) == -11  # SIGSEGV, core dumped


def test_program_names() -> None:
    assert pt.program_name(["/usr/lib/cni/host-local"], "/usr/lib/cni/host-local") == "host-local"
    assert pt.program_name(["iptables", "-t", "nat", "-S"], "/usr/sbin/xtables-nft-multi") == "iptables"
    # a #! script: the kernel runs the interpreter with the script's path
    assert pt.program_name(["/usr/bin/env", "python3", "/opt/cni/bin/flannel"], "/usr/bin/env") == "flannel"
    assert pt.program_name(["python3.11", "-u", "/opt/cni/bin/flannel"], "/usr/bin/python3.11") == "flannel"
    assert pt.program_name(["bash", "/root/.pyenv/libexec/pyenv", "exec"], "/usr/bin/bash") == "pyenv"
    assert pt.program_name([], "/usr/sbin/xtables-nft-multi") == "xtables-nft-multi"
    assert pt.program_name([], "") == "?"


def make_tree() -> tuple[pt.ProcessTree, dict[str, pt.Proc]]:
    """The runtime (SELF) runs flannel (10), which runs bridge (11), which runs
    host-local (12) and iptables (13); an unrelated process forks too."""
    tree = pt.ProcessTree(SELF)
    read = {
        10: (
            ["/usr/bin/env", "python3", "/p/flannel"],
            "/usr/bin/python3",
            {"CNI_COMMAND": "ADD", "CNI_PATH": "/p:/usr/lib/cni"},
        ),
        11: (["/usr/lib/cni/bridge"], "/usr/lib/cni/bridge", {"CNI_COMMAND": "ADD", "CNI_PATH": "/p:/usr/lib/cni"}),
        12: (
            ["/usr/lib/cni/host-local"],
            "/usr/lib/cni/host-local",
            {"CNI_COMMAND": "ADD", "CNI_PATH": "/usr/lib/cni"},
        ),
        13: (
            ["iptables", "-t", "nat", "-N", "X"],
            "/usr/sbin/xtables-nft-multi",
            {"CNI_COMMAND": "ADD", "CNI_PATH": "/usr/lib/cni"},
        ),
    }
    stream = (
        fork(SELF, 10, ns=100 * MS) + exec_(10, ns=110 * MS) + fork(10, 11, ns=200 * MS) + exec_(11, ns=210 * MS) + fork(4242, 4243)
        + fork(11, 11, thread=99) + fork(11, 12, ns=300 * MS) + exec_(12, ns=310 * MS) + exit_(12, 0, ns=400 * MS)
        + fork(11, 13, ns=500 * MS) + exec_(13, ns=510 * MS) + exit_(13, 1 << 8, ns=600 * MS) + exit_(11, 0, ns=700 * MS)
        + exit_(10, 0, ns=800 * MS)
    )  # fmt: skip
    for event in pt.parse_proc_events(stream):
        proc = tree.apply(event)
        if proc is not None:
            proc.argv, proc.exe, proc.cni_env = tuple(read[proc.pid][0]), read[proc.pid][1], dict(read[proc.pid][2])
    procs = {p.program: p for p in tree.order}
    return tree, procs


def test_tree_keeps_the_runtimes_descendants_in_order() -> None:
    tree, procs = make_tree()
    assert [p.pid for p in tree.order] == [10, 11, 12, 13]  # not 4243 (not ours), not thread 99
    flannel = procs["flannel"]
    listing = [(p.program, depth) for p, depth in tree.subtree(flannel)]
    assert listing == [("flannel", 0), ("bridge", 1), ("host-local", 2), ("iptables", 2)]
    assert [p.program for p in procs["host-local"].ancestors()] == ["bridge", "flannel", "?"]
    assert procs["iptables"].exit_status == 1 and procs["host-local"].ended_ns == 400 * MS
    # CNI_COMMAND is inherited by helpers: only programs in a CNI_PATH directory are plugins
    assert [p.is_plugin for p in tree.order] == [True, True, True, False]
    # a pid reused later names the new process
    for event in pt.parse_proc_events(fork(SELF, 12, ns=900)):
        tree.apply(event)
    assert tree.find(12) is tree.order[-1] and tree.find(12) is not procs["host-local"]


def test_processes_json_and_their_timeline() -> None:
    tree, procs = make_tree()
    listing = pt.processes_json(tree, procs["flannel"], "flannel", t0=0.1)
    assert [(p["program"], p["depth"], p["plugin"], p["cniCommand"], p["exitStatus"]) for p in listing] == [
        ("flannel", 0, True, "ADD", 0),
        ("bridge", 1, True, "ADD", 0),
        ("host-local", 2, True, "ADD", 0),
        ("iptables", 2, False, None, 1),
    ]
    assert listing[0]["path"] == "/p/flannel" and listing[3]["argv"] == ["iptables", "-t", "nat", "-N", "X"]
    assert listing[1]["at"] == 0.2 - 0.1 and listing[1]["exitAt"] == 0.7 - 0.1
    assert _process_lines(listing) == [
        "      flannel ADD  [pid 10, exit 0]",
        "        bridge ADD (/usr/lib/cni/bridge)  [pid 11, exit 0]",
        "          host-local ADD (/usr/lib/cni/host-local)  [pid 12, exit 0]",
        "          iptables -t nat -N X  [pid 13, exit 1]",
    ]


def test_timeline_folds_repeated_helpers_and_counts_what_they_ran() -> None:
    def p(
        pid: int, ppid: int, depth: int, program: str, argv: list[str], status: int = 0, plugin: bool = False
    ) -> dict:
        return {"pid": pid, "ppid": ppid, "depth": depth, "program": program, "argv": argv, "exitStatus": status,
                "plugin": plugin, "cniCommand": "ADD" if plugin else None, "path": argv[0] if argv else None}  # fmt: skip

    listing = [
        p(1, 0, 0, "portmap", ["/usr/lib/cni/portmap"], plugin=True),
        p(2, 1, 1, "iptables", ["iptables", "--version"]),
        p(3, 1, 1, "iptables", ["iptables", "-t", "nat", "-S"], 1),
        p(4, 1, 1, "iptables", ["iptables", "-t", "nat", "-N", "X"]),
        p(5, 1, 1, "sh", ["sh", "-c", "x"]),
        p(6, 5, 2, "true", ["true"]),
        p(7, 5, 2, "sub", ["/usr/lib/cni/sub"], plugin=True),
    ]
    assert _process_lines(listing) == [
        "      portmap ADD  [pid 1, exit 0]",
        "        iptables --version  [pid 2, exit 0]  + 2 more runs of iptables (exit 0: 2, exit 1: 1)",
        "        sh -c x  [pid 5, exit 0]  (1 more processes below)",
        "          sub ADD (/usr/lib/cni/sub)  [pid 7, exit 0]",
    ]


def test_processes_gone_before_proc_was_read_are_named_from_fanotify() -> None:
    tree = pt.ProcessTree(SELF)
    for event in pt.parse_proc_events(fork(SELF, 10) + exec_(10) + fork(10, 11) + exec_(11) + fork(10, 12) + exec_(12)):
        proc = tree.apply(event)
        if proc is not None and proc.pid == 10:
            proc.argv, proc.exe, proc.cni_env = ("/usr/lib/cni/bridge",), "/usr/lib/cni/bridge", {"CNI_COMMAND": "ADD"}
        elif proc is not None:  # what _read_proc leaves when the process is gone
            proc.argv, proc.exe, proc.cni_env, proc.unread = (), "", {}, "gone before it could be read"
    cni_dir = (1, 1, b"cni")
    events = [
        pt.FileEvent(mask=fe.FAN_OPEN_EXEC, pid=11, dir_key=cni_dir, name="host-local"),
        pt.FileEvent(mask=fe.FAN_OPEN_EXEC, pid=11, dir_key=(1, 1, b"lib"), name="ld-linux-x86-64.so.2"),
        pt.FileEvent(mask=fe.FAN_OPEN_EXEC, pid=12, dir_key=(1, 1, b"sbin"), name="xtables-nft-multi"),
        pt.FileEvent(mask=fe.FAN_CLOSE_WRITE, pid=12, dir_key=(1, 1, b"x"), name="not-an-exec"),
    ]
    opens = pt.exec_opens(events, {cni_dir: "/usr/lib/cni"})
    assert opens == {
        11: [("/usr/lib/cni", "host-local", True), ("", "ld-linux-x86-64.so.2", False)],
        12: [("", "xtables-nft-multi", False)],
    }
    tree.name_unread(opens)
    host_local, helper = tree.order[1], tree.order[2]
    assert (host_local.program, host_local.exe, host_local.is_plugin) == ("host-local", "/usr/lib/cni/host-local", True)
    assert (helper.program, helper.is_plugin) == ("xtables-nft-multi", False)


# --------------------------------------------------------------------------
# fanotify events


def fan_event(mask: int, pid: int, fsid: tuple[int, int], handle: bytes, name: str, *, kind: int = 2) -> bytes:
    info = struct.pack("=ii", *fsid) + struct.pack("=Ii", len(handle), 1) + handle + name.encode() + b"\0"
    info = struct.pack("=BBH", kind, 0, 4 + len(info) + (-(4 + len(info)) % 4)) + info + b"\0" * (-(4 + len(info)) % 4)
    return struct.pack("=IBBHQii", 24 + len(info), fe.FANOTIFY_METADATA_VERSION, 0, 24, mask, fe.FAN_NOFD, pid) + info


def test_fanotify_events_decode() -> None:
    handle = bytes.fromhex("730e2200f7cd2e06")
    data = fan_event(fe.FAN_CREATE | fe.FAN_CLOSE_WRITE, 42, (-202237772, 151011923), handle, "10.244.1.2")
    data += fan_event(fe.FAN_CREATE | fe.FAN_ONDIR, 43, (1, 2), b"\x01\x02\x03\x04", "cbr0")
    data += struct.pack("=IBBHQii", 24, fe.FANOTIFY_METADATA_VERSION, 0, 24, fe.FAN_CLOSE_WRITE, 9, 44)  # fd mode
    events, overflow = pt.parse_fanotify(data)
    assert not overflow
    fsid = 0x09004253F3F218B4  # what os.statvfs().f_fsid says for that filesystem
    assert events == [
        pt.FileEvent(mask=fe.FAN_CREATE | fe.FAN_CLOSE_WRITE, pid=42, dir_key=(fsid, 1, handle), name="10.244.1.2"),
        pt.FileEvent(
            mask=fe.FAN_CREATE | fe.FAN_ONDIR, pid=43, dir_key=(1 | 2 << 32, 1, b"\x01\x02\x03\x04"), name="cbr0"
        ),
        pt.FileEvent(mask=fe.FAN_CLOSE_WRITE, pid=44, fd=9),
    ]
    lost = struct.pack("=IBBHQii", 24, fe.FANOTIFY_METADATA_VERSION, 0, 24, fe.FAN_Q_OVERFLOW, -1, -1)
    events, overflow = pt.parse_fanotify(lost + data[:10])
    assert overflow and events == []


def test_the_event_that_explains_a_change() -> None:
    def ev(mask: int, pid: int) -> pt.FileEvent:
        return pt.FileEvent(mask=mask, pid=pid, dir_key=(1, 1, b"d"), name="f")

    # merged events of one process; a later chmod by another does not make it the writer
    events = [ev(fe.FAN_CREATE | fe.FAN_CLOSE_WRITE, 1), ev(fe.FAN_ATTRIB, 2)]
    assert pt.pick_writer(events, removed=False) == (events[0], "created")
    assert pt.pick_writer([ev(fe.FAN_CLOSE_WRITE, 1), ev(fe.FAN_MOVED_TO, 3)], removed=False)[1:] == (
        "renamed into place",
    )
    assert pt.pick_writer([ev(fe.FAN_ATTRIB, 2)], removed=False)[1:] == ("changed attributes of",)
    assert pt.pick_writer([ev(fe.FAN_CREATE, 1), ev(fe.FAN_DELETE, 5)], removed=True) == (
        ev(fe.FAN_DELETE, 5),
        "deleted",
    )
    assert pt.pick_writer([ev(fe.FAN_MOVED_FROM, 6)], removed=True)[1:] == ("renamed away",)
    assert pt.pick_writer([ev(fe.FAN_DELETE, 5)], removed=False) is None
    assert pt.pick_writer([], removed=True) is None


def test_who_a_pid_is_to_the_step() -> None:
    tree, procs = make_tree()
    top = procs["flannel"]

    def who(pid: int, comm: str = "") -> dict:
        return pt.classify(pid, "wrote", tree=tree, top=top, top_name="flannel", self_pid=SELF, comm=comm).to_json()

    assert who(SELF) | {"pid": 0} == {
        "pid": 0, "program": "libcni_py", "scope": "runtime", "runBy": [], "action": "wrote",
        "exe": None, "cniCommand": None, "basis": "event",
    }  # fmt: skip
    assert (who(10)["program"], who(10)["runBy"], who(10)["cniCommand"]) == ("flannel", [], "ADD")
    assert (who(12)["program"], who(12)["runBy"], who(12)["scope"]) == ("host-local", ["bridge", "flannel"], "call")
    assert who(13)["cniCommand"] is None  # a helper, not a plugin
    # a process this step did not start is never the plugin
    assert who(4243, comm="touch") | {"pid": 0} == {
        "pid": 0, "program": "touch", "scope": "other", "runBy": [], "action": "wrote",
        "exe": None, "cniCommand": None, "basis": "event",
    }  # fmt: skip
    assert pt.describe_writer(who(12), removed=False, kind="file") == (
        "written by host-local, pid 12, run by bridge <- flannel"
    )
    assert pt.describe_writer(who(10), removed=True, kind="file") == "removed by flannel, pid 10"
    assert pt.describe_writer(who(4243, "touch"), removed=False, kind="dir") == (
        "created by touch, pid 4243, which this step did not start"
    )


def test_annotate_matches_changes_by_directory_handle_and_name() -> None:
    tree, _procs = make_tree()
    key, other = (7, 1, b"networks/cbr0"), (7, 1, b"elsewhere")
    events = [
        pt.FileEvent(mask=fe.FAN_CREATE | fe.FAN_CLOSE_WRITE, pid=12, dir_key=key, name="10.244.1.2"),
        pt.FileEvent(mask=fe.FAN_CLOSE_WRITE, pid=4243, dir_key=key, name="intruder"),
        pt.FileEvent(mask=fe.FAN_CLOSE_WRITE, pid=12, dir_key=other, name="intruder"),  # same name, other dir
        pt.FileEvent(mask=fe.FAN_MOVED_TO, pid=SELF, dir_key=key, name="record"),
    ]
    observed = pt.Observation(
        events=events, overflow=False, tree=tree, dir_keys={"/c/networks/cbr0": key},
        watching_files=True, watching_processes=True, unprobed=[],
    )  # fmt: skip

    def change(name: str, change: str = "created") -> Change:
        return Change(kind="file", change=change, where=f"/c/networks/cbr0/{name}", text=name)

    link = Change(kind="link", change="added", where="host", text="cni0", details={"name": "cni0"})
    rule = Change(kind="iptables-rule", change="added", where="nat", text="-A X")
    out = observed.annotate(
        [change("10.244.1.2"), change("intruder"), change("record", "changed"), change("unseen"), link, rule],
        top_pid=10,
        top_name="flannel",
    )
    writers = [c.details.get("writer", "absent") for c in out]
    assert writers[0]["program"] == "host-local" and writers[0]["runBy"] == ["bridge", "flannel"]
    assert writers[1]["scope"] == "other" and writers[1]["pid"] == 4243
    assert writers[2]["program"] == "libcni_py" and writers[2]["action"] == "renamed into place"
    assert writers[3] is None  # changed, but no event explains it
    assert writers[4] is None  # no notification for it
    assert writers[5] == "absent"  # iptables: by the step as a whole
    event = Event(seq=1, at=0, duration=0, actor="plugin", effect="exec", summary="s",
                  data={"plugin": {"type": "flannel"}}, changes=out)  # fmt: skip
    assert [c["by"] for c in event.to_json()["changes"]] == [
        "host-local", "?" if not observer._comm(4243) else observer._comm(4243), "libcni_py", "flannel", "flannel", "flannel",
    ]  # fmt: skip
    text = format_event(event)
    assert "(written by host-local, pid 12, run by bridge <- flannel)" in text
    assert "      + file           unseen  (writer not seen)" in text


# --------------------------------------------------------------------------
# network changes: rtnetlink notifications


def rtattr(kind: int, value: bytes) -> bytes:
    return struct.pack("=HH", 4 + len(value), kind) + value + b"\0" * (-len(value) % 4)


def nlmsg(kind: int, body: bytes, port: int) -> bytes:
    return struct.pack("=IHHII", 16 + len(body), kind, 0, 0, port) + body


def test_rtnetlink_notifications_decode() -> None:
    link = nlmsg(ne.RTM_NEWLINK, struct.pack("=BxHiII", 0, 1, 5, 0, 0) + rtattr(ne.IFLA_IFNAME, b"cni0\0"), 0)
    addr = nlmsg(
        ne.RTM_NEWADDR,
        struct.pack("=BBBBI", 2, 24, 0, 0, 5) + rtattr(ne.IFA_ADDRESS, socket.inet_aton("10.244.1.1")),
        11,
    )
    route = nlmsg(
        ne.RTM_NEWROUTE,
        struct.pack("=BBBBBBBBI", 2, 16, 0, 0, 254, 4, 0, 1, 0)
        + rtattr(ne.RTA_DST, socket.inet_aton("10.244.0.0"))
        + rtattr(ne.RTA_GATEWAY, socket.inet_aton("10.244.1.1")),
        11,
    )
    default6 = nlmsg(ne.RTM_DELROUTE, struct.pack("=BBBBBBBBI", 10, 0, 0, 0, 254, 4, 0, 1, 0), 12)
    local = nlmsg(ne.RTM_NEWROUTE, struct.pack("=BBBBBBBBI", 2, 32, 0, 0, 255, 2, 0, 2, 0), 0)  # table local
    events = pt.parse_rtnetlink(link + addr + route + default6 + local, "host", 99)
    assert [(e.kind, e.change, e.key, e.pid) for e in events] == [
        ("link", "added", "cni0", 0),
        ("address", "added", "10.244.1.1/24", 11),
        ("route", "added", "10.244.0.0/16 via 10.244.1.1", 11),
        ("route", "removed", "::/0 via ", 12),
    ]
    assert {e.where for e in events} == {"host"} and {e.ns for e in events} == {99}
    # the keys of the probes' changes
    assert pt.net_key(Change(kind="link", change="added", where="host", text="", details={"name": "cni0"})) == "cni0"
    assert (
        pt.net_key(Change(kind="address", change="added", where="host", text="", details={"address": "10.244.1.1/24"}))
        == "10.244.1.1/24"
    )
    route_change = Change(
        kind="route", change="added", where="host", text="", details={"dst": "10.244.0.0/16", "gateway": "10.244.1.1"}
    )
    assert pt.net_key(route_change) == "10.244.0.0/16 via 10.244.1.1"


def test_who_made_a_network_change() -> None:
    tree, procs = make_tree()  # bridge (11) runs from 200 to 700 ms, host-local (12) from 300 to 400
    top = procs["flannel"]

    def who(pid: int, ns: int) -> tuple[str, str] | None:
        events = [pt.NetEvent(where="host", kind="link", change="added", key="cni0", pid=pid, ns=ns)]
        writer = pt.net_writer(events, tree=tree, top=top, top_name="flannel")
        return (writer.program, writer.basis) if writer else None

    assert who(11, 350 * MS) == ("bridge", "requester")  # the kernel named the requester
    assert who(0, 250 * MS) == ("bridge", "running")  # the innermost process running then
    assert who(0, 350 * MS) == ("host-local", "running")
    assert who(0, 750 * MS) == ("flannel", "running")
    assert who(0, 50 * MS) is None  # before the plugin started
    assert who(4243, 250 * MS) == ("bridge", "running")  # a port that is not the call's: timing only
    # the first notification counts: the kernel's own later ones (carrier up...) come after the plugin
    late = [
        pt.NetEvent(where="container", kind="link", change="added", key="eth0", ns=250 * MS),
        pt.NetEvent(where="container", kind="link", change="added", key="eth0", ns=750 * MS),
    ]
    assert pt.net_writer(late, tree=tree, top=top, top_name="flannel").program == "bridge"
    requested_later = [late[0], pt.NetEvent(where="host", kind="address", change="added", key="a", pid=12, ns=750 * MS)]
    assert pt.net_writer(requested_later, tree=tree, top=top, top_name="flannel").program == "host-local"
    # routes the kernel drops with their link come with no notification: they go with the link
    link_writer = {"pid": 11, "program": "bridge", "basis": "running", "runBy": ["flannel"], "action": "removed"}
    changes = [
        Change(kind="link", change="removed", where="container", text="eth0", details={"name": "eth0", "writer": link_writer}),
        Change(kind="route", change="removed", where="container", text="r", details={"dev": "eth0", "writer": None}),
        Change(kind="route", change="removed", where="host", text="r", details={"dev": "eth0", "writer": None}),
    ]  # fmt: skip
    out = observer._routes_gone_with_links(changes)
    assert out[1].details["writer"] == link_writer | {"action": "removed with link eth0"}
    assert out[2].details["writer"] is None  # another namespace's eth0
    assert pt.describe_writer(link_writer, removed=True, kind="link") == "while bridge ran, pid 11, run by flannel"


def test_kernel_prefix_route_takes_the_writer_of_its_address() -> None:
    from libcni_py.edges.probes import Change
    from libcni_py.tools.trace.attribution import describe_writer
    from libcni_py.tools.trace.observer import _prefix_routes_with_addresses

    bridge = {
        "pid": 11,
        "program": "bridge",
        "scope": "plugin",
        "runBy": ["flannel"],
        "basis": "requester",
        "action": "added",
    }
    flannel_running = {
        "pid": 10,
        "program": "flannel",
        "scope": "plugin",
        "runBy": [],
        "basis": "running",
        "action": "added",
    }
    address = Change(
        kind="address",
        change="added",
        where="host",
        text="cni0 10.244.1.1/24",
        details={"ifname": "cni0", "address": "10.244.1.1/24", "writer": bridge},
    )
    prefix = Change(
        kind="route",
        change="added",
        where="host",
        text="10.244.1.0/24 dev cni0 proto kernel",
        details={"dst": "10.244.1.0/24", "dev": "cni0", "proto": "kernel", "writer": flannel_running},
    )
    other = Change(
        kind="route",
        change="added",
        where="host",
        text="10.9.0.0/16 via 10.244.1.1 dev cni0",
        details={"dst": "10.9.0.0/16", "dev": "cni0", "proto": "boot", "writer": flannel_running},
    )
    out = _prefix_routes_with_addresses([address, prefix, other])
    assert out[1].details["writer"]["program"] == "bridge" and out[1].details["writer"]["basis"] == "address"
    assert describe_writer(out[1].details["writer"], False, "route") == (
        "added by bridge with address 10.244.1.1/24, pid 11, run by flannel"
    )
    assert out[2].details["writer"] is flannel_running  # not a prefix route: left alone
