"""Who did it: the processes each traced step started, and which of them
wrote each file and made each link, address and route.

Used by :mod:`libcni_py.tools.trace.tracer` while tracing, as root; never otherwise (not
even imported).  Three kernel interfaces, all only read:

* the **process events connector** (netlink ``NETLINK_CONNECTOR``,
  ``CN_IDX_PROC``, ``PROC_CN_MCAST_LISTEN``): a FORK, EXEC and EXIT event
  for every process of the machine.  A reader thread keeps those of the
  processes that descend from this one (the runtime), and reads
  ``/proc/<pid>/exe``, ``cmdline`` and the ``CNI_*`` variables of
  ``environ`` the moment one of them executes a program, so that a process
  that lives a millisecond (host-local, iptables) is still named (the thread
  runs at the lowest real-time priority, to be woken at once on a busy
  machine; a process gone all the same is named after the file it executed,
  which fanotify reports).  The kernel serves this interface in the initial
  network namespace only: when the runtime runs in another one (``ip netns
  exec``), the socket is made by a worker thread that enters the initial
  namespace (that of ``kthreadd``, pid 2, else of pid 1); it reports pids
  of the initial PID namespace only.
* **fanotify** (``FAN_REPORT_DFID_NAME``, a filesystem mark on each
  filesystem holding a watched directory): every entry created, written
  (closed after writing), renamed or deleted, with the pid of the process
  that did it and the file handle of its directory plus its name.  The
  queue is unlimited, so nothing is lost while a plugin runs; the events are
  read after the step.  A kernel without ``FAN_REPORT_DFID_NAME`` (before
  5.9) falls back to ``FAN_CLOSE_WRITE`` on mount marks: written files only,
  by path.
* **rtnetlink** notifications (links, addresses, routes) of the host's and
  the container's network namespace, timed by the reader thread: an address
  or a route names the process that requested it (the netlink port the
  kernel reports is the requester's pid); a link, for which the kernel
  names nobody, is put down to the innermost process of the call running
  when it appeared.

The before/after snapshots of :mod:`libcni_py.edges.probes` stay the source of
truth for *what* changed; this module says *who*: the events on a changed
path (matched by its directory's file handle and its name) or a changed
link, address or route, and the process tree, tell whether it was the
plugin, a program it ran (and run by whom), the runtime itself, or some
other process of the machine acting at the same time (never blamed on the
plugin).

The decoding of events from bytes, the tree and the attribution are pure
(:func:`parse_proc_events`, :func:`parse_fanotify`, :func:`parse_rtnetlink`,
:class:`ProcessTree`, :func:`pick_writer`, :func:`classify`,
:func:`net_writer`); the I/O (sockets, the reader thread, ctypes) is in
:class:`Observer`, which never raises: what it cannot look at is reported
as a reason (``unprobed``).

The parts, one job each: :mod:`.proc_events` (the connector's events),
:mod:`.fanotify_events` (fanotify's), :mod:`.net_events` (rtnetlink's),
:mod:`.proc_tree` (the process tree), :mod:`.attribution` (who made a
change), :mod:`.filewatch` (the fanotify group), :mod:`.reader` (the reader
thread and its sockets), :mod:`.observer` (one traced step).  This module
gathers their public names.
"""

from __future__ import annotations

from .attribution import Writer, classify, describe_writer, exec_opens, net_writer, pick_writer, processes_json
from .fanotify_events import FileEvent, parse_fanotify
from .filewatch import NEEDS_ROOT, handle_key
from .net_events import NetEvent, net_key, parse_rtnetlink
from .observer import Observation, Observer
from .proc_events import ProcEvent, control_message, parse_proc_events, subject, wait_status
from .proc_tree import Proc, ProcessTree, program_name, program_path

__all__ = [
    "NEEDS_ROOT",
    "FileEvent",
    "NetEvent",
    "Observation",
    "Observer",
    "Proc",
    "ProcEvent",
    "ProcessTree",
    "Writer",
    "classify",
    "control_message",
    "describe_writer",
    "exec_opens",
    "handle_key",
    "net_key",
    "net_writer",
    "parse_fanotify",
    "parse_proc_events",
    "parse_rtnetlink",
    "pick_writer",
    "processes_json",
    "program_name",
    "program_path",
    "subject",
    "wait_status",
]
