"""``cnitool``: the command line.  Entry point, global options, dispatch, and
the one place where errors become messages and exit codes.

Compatible with Go's ``cnitool``: the same commands (``add``, ``check``,
``del``, ``gc``, ``status``), the same environment (``NETCONFPATH``,
``CNI_PATH``, ``CNI_IFNAME``, ``CNI_ARGS``, ``CAP_ARGS``), the same container
ID derivation and the same result printed by ``add``; plus flags for each of
those and more commands.  Every expected failure is one line on stderr and a
non-zero exit status; tracebacks only with ``--debug``.

Exit status: 0 success; 1 an operation failed (a plugin reported an error);
2 bad usage; 3 bad configuration or arguments; 4 a plugin could not be found
or run; 5 the cache directory; 6 a network namespace; 75 a plugin said "try
again later" (code 11), or a lock stayed held by another operation until
the deadline; 128+N interrupted by signal N (130 SIGINT, 129 SIGHUP, 143
SIGTERM).

Signals: SIGINT, SIGTERM and SIGHUP -- sent to cnitool or to its process
group -- all interrupt the same way (:func:`_interrupt` raises
:class:`Interrupted`, a ``KeyboardInterrupt``).  The plugin that is running
gets a few seconds to finish by itself (``drivers.blocking.INTERRUPT_GRACE``; a
second signal ends that at once), then it and its whole process tree are
killed and reaped; no further plugin starts; an ADD's record stays as it
was written before that plugin (``adding``, k of n: what DEL and GC need);
an operation of the runtime layer rolls back; and only then are the locks
released -- a DEL that a runtime sends right after the signal waits for
them and finds the record.  cnitool never exits while a plugin it started
still runs.
"""

from __future__ import annotations

import os
import sys

from ..core.defaults import DEFAULT_CACHE_DIR, DEFAULT_CONF_DIR, DEFAULT_PLUGIN_PATH, DEFAULT_TIMEOUT, MAX_TIMEOUT
from ._argv import Opt, UsageError, bounded_seconds, format_opt, parse

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

    from ..api import CNI
    from ..core.plugin_call import ExecRequest
    from ..core.plugin_input import TraceContext
    from ..tools.trace.tracer import Event, Tracer

__all__ = ["COMMANDS", "Context", "Interrupted", "main"]

PROG = "cnitool"

#: Commands that run plugins: cnitool becomes a child subreaper for them, so
#: that a deadline also finds plugins' descendants that daemonized
#: (:func:`libcni_py.edges.spawn.become_subreaper`).
RUNS_PLUGINS = frozenset(
    {"add", "check", "del", "gc", "status", "version", "validate", "exec", "pod", "ready", "doctor"}
)

GLOBAL_OPTIONS = (
    Opt(
        "--conf-dir",
        dest="conf_dir",
        metavar="DIR",
        env="NETCONFPATH",
        help=f"network configuration directory (default {DEFAULT_CONF_DIR})",
    ),
    Opt(
        "--plugin-path",
        dest="plugin_path",
        metavar="DIRS",
        env="CNI_PATH",
        help=f"plugin directories, ':'-separated (default {':'.join(DEFAULT_PLUGIN_PATH)})",
    ),
    Opt(
        "--cache-dir",
        dest="cache_dir",
        metavar="DIR",
        env="CNI_CACHE_DIR",
        help=f"result cache (default {DEFAULT_CACHE_DIR})",
    ),
    Opt(
        "--timeout",
        dest="timeout",
        metavar="SECONDS",
        help=f"limit for each plugin call (default {DEFAULT_TIMEOUT:g}; at most {MAX_TIMEOUT:g}; 0: none)",
    ),
    Opt("--debug", dest="debug", help="show tracebacks of errors"),
    Opt("--trace", dest="trace", help="print every plugin call and what it changed on stderr"),
    Opt("--trace-compact", dest="trace_compact", help="print the trace on stderr, one line per plugin call and change"),
    Opt("--trace-json", dest="trace_json", metavar="FILE", help="write the trace as JSON to FILE (docs/tracing.md)"),
    Opt("--trace-html", dest="trace_html", metavar="FILE", help="write the trace as an HTML page (a sequence diagram)"),
    Opt(
        "--trace-watch",
        dest="trace_watch",
        metavar="DIR",
        repeat=True,
        help="another directory whose files the trace watches",
    ),
    Opt("--traceparent", dest="traceparent", metavar="TP", env="TRACEPARENT", help="W3C trace context for the plugins"),
    Opt("--tracestate", dest="tracestate", metavar="TS", env="TRACESTATE", help="W3C trace state (with --traceparent)"),
    Opt("--baggage", dest="baggage", metavar="BAG", env="BAGGAGE", help="W3C baggage (with --traceparent)"),
    Opt("-h", "--help", dest="help", help="show help ('cnitool help COMMAND': a command's)"),
    Opt("--version", dest="version", help="print cnitool's version and the CNI spec versions it implements"),
)

# name -> (module under libcni_py.cli, one-line summary); modules are imported
# only when their command runs, so each command pays only for what it uses.
COMMANDS: dict[str, tuple[str, str]] = {
    "add": ("ops", "add a container to a network (ADD); prints the result"),
    "check": ("ops", "check a container's attachment against its cached result (CHECK)"),
    "del": ("ops", "remove a container from a network (DEL)"),
    "gc": ("ops", "delete cached attachments that are no longer valid (GC)"),
    "status": ("ops", "ask a network's plugins whether they are ready (STATUS)"),
    "version": ("ops", "ask a plugin which spec versions it supports (VERSION)"),
    "validate": ("ops", "check that a network's plugins exist and support its version"),
    "ls": ("ls", "list the conf dir: verdicts, plugins, and which network each runtime takes"),
    "explain": ("explain", "dry run: what each plugin of an operation would be given"),
    "cache": ("cache", "list and show cached attachments (cache ls, cache show)"),
    "trace": ("trace_cmd", "render a --trace-json file as an HTML page or compact lines (trace html, trace compact)"),
    "watch": ("watch_cmd", "watch the node: every CNI plugin call any runtime makes and what it changed (root)"),
    "netns": ("netns_cmd", "create, delete or list named network namespaces (as ip netns)"),
    "exec": ("exec_cmd", "run a command in a throw-away namespace attached to a network"),
    "pod": ("pod", "pod networks as a CRI runtime makes them (up, down, check, status, ls, gc)"),
    "ready": ("pod", "is the pod network ready (CRI's NetworkReady)? exit 0 if it is"),
    "doctor": ("doctor", "what is wrong on this node, which program made it, and the fix (--fix: the dead part)"),
}


class Context:
    """Settings of one CLI run, from flags and environment (flags win)."""

    def __init__(self, values: dict[str, object], env: dict[str, str]) -> None:
        self.env = env
        self.debug = bool(values.get("debug"))
        self.conf_dir = str(values.get("conf_dir") or env.get("NETCONFPATH") or DEFAULT_CONF_DIR)
        path = str(values.get("plugin_path") or env.get("CNI_PATH") or ":".join(DEFAULT_PLUGIN_PATH))
        self.plugin_path = [p for p in path.split(":") if p]
        self.cache_dir = str(values.get("cache_dir") or env.get("CNI_CACHE_DIR") or DEFAULT_CACHE_DIR)
        timeout = values.get("timeout")
        self.timeout: float | None = DEFAULT_TIMEOUT
        if timeout is not None:
            seconds = bounded_seconds(timeout, option="--timeout", high=MAX_TIMEOUT)
            self.timeout = seconds if seconds > 0 else None
        self.values = values
        self.notices: list[str] = []
        self.trace_context = _trace_context(values, env)
        self.argv: list[str] = list(sys.argv[1:])  # main() sets the real one, for the trace
        self.tracer: Tracer | None = None
        # --trace-json / --trace-html: (flag, path, fd), opened now, so that a
        # path that cannot be written fails before anything runs
        self._trace_files: list[tuple[str, str, int]] = []
        for dest in ("trace_json", "trace_html"):
            if values.get(dest):
                flag, path = "--" + dest.replace("_", "-"), str(values[dest])
                try:
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
                except OSError as exc:
                    raise UsageError(f"{flag}: cannot write {path}: {exc.strerror}") from None
                self._trace_files.append((flag, path, fd))
        #: the trace is printed as the operation runs: it shows each plugin's
        #: stderr in its step, so that is not also copied to ours (raw, it
        #: would glue itself to the next line of the trace)
        self.trace_shown = bool(values.get("trace") or values.get("trace_compact"))
        if self.trace_shown or self._trace_files:
            from ..tools.trace.tracer import Tracer

            watch = values.get("trace_watch") or []
            assert isinstance(watch, list)
            self.tracer = Tracer(
                cache_dir=self.cache_dir,
                watch=[str(w) for w in watch],
                on_event=_trace_printer(bool(values.get("trace_compact"))) if self.trace_shown else None,
            )

    def notice(self, text: str) -> None:
        """Print a note worth a person's attention on stderr."""
        err(f"{PROG}: note: {text}")

    def plugin_stderr(self) -> Callable[[ExecRequest, bytes], None] | None:
        """Where a successful plugin's stderr goes: copied to ours as Go does,
        or nowhere when the trace is printed (each step shows it)."""
        from ..drivers.base import stderr_to_terminal

        return None if self.trace_shown else stderr_to_terminal

    def cni(self, **extra: object) -> CNI:
        """The blocking CNI object for these settings (``extra`` overrides them)."""
        from ..api import CNI

        settings: dict[str, object] = {
            "plugin_path": self.plugin_path,
            "cache_dir": self.cache_dir,
            "timeout": self.timeout,
            "env": self.env,
            "on_notice": self.notice,
            "tracer": self.tracer,
            "trace_context": self.trace_context,
            "on_stderr": self.plugin_stderr(),
        }
        settings.update(extra)
        return CNI(**settings)  # type: ignore[arg-type]

    def close(self, error: str = "") -> None:
        """Write the ``--trace-json`` document and the ``--trace-html`` page,
        if they were asked for."""
        files, self._trace_files = self._trace_files, []
        if not files:
            return
        from ._out import dumps as json_dumps

        assert self.tracer is not None
        doc = self.tracer.to_json(command=[PROG, *self.argv], error=error)
        for flag, path, fd in files:
            if flag == "--trace-html":
                from ..tools.trace.html import render

                data = render(doc).encode()
            else:
                data = json_dumps(doc).encode() + b"\n"
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            except OSError as exc:
                err(f"{PROG}: error: {flag}: cannot write {path}: {exc.strerror}")
            finally:
                os.close(fd)


def _trace_printer(compact: bool) -> Callable[[Event], None]:
    """What prints each step of the trace on stderr as it ends: the full
    timeline (``--trace``) or one line per plugin call and change
    (``--trace-compact``)."""
    if compact:
        from ..tools.trace.compact import format_event as compact_event

        return lambda event: err(compact_event(event.to_json()))
    from ..tools.trace.tracer import format_event

    return lambda event: err(format_event(event))


def _trace_context(values: dict[str, object], env: dict[str, str]) -> TraceContext | None:
    """The W3C trace context from --traceparent/--tracestate/--baggage, else
    from TRACEPARENT/TRACESTATE/BAGGAGE of the environment; None when there
    is none."""
    if values.get("traceparent"):
        source, traceparent, tracestate, baggage = (
            "--traceparent",
            str(values["traceparent"]),
            str(values.get("tracestate") or ""),
            str(values.get("baggage") or ""),
        )
    elif values.get("tracestate"):
        raise UsageError("--tracestate needs --traceparent (a trace state belongs to a trace)")
    elif values.get("baggage"):
        raise UsageError("--baggage needs --traceparent (Go libcni passes baggage only with a trace)")
    elif env.get("TRACEPARENT"):
        source, traceparent, tracestate, baggage = (
            "TRACEPARENT",
            env["TRACEPARENT"],
            env.get("TRACESTATE", ""),
            env.get("BAGGAGE", ""),
        )
    else:
        return None
    from ..core.plugin_input import parse_trace_context

    return parse_trace_context(traceparent, tracestate, baggage=baggage, source=source)


def err(text: str) -> None:
    """Write one line on stderr."""
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def _split_command(argv: Sequence[str]) -> tuple[str | None, list[str]]:
    """Find the command word; global options may stand before it."""
    takes_value = {name for opt in GLOBAL_OPTIONS if opt.metavar for name in opt.names}
    rest: list[str] = []
    index = 0
    while index < len(argv):
        token = argv[index]
        if token == "--":
            break
        if token.startswith("-"):
            rest.append(token)
            if token in takes_value:
                index += 1
                if index < len(argv):
                    rest.append(argv[index])
            index += 1
            continue
        return token, rest + list(argv[index + 1 :])
    return None, rest + list(argv[index:])


def general_help() -> str:
    """The help shown by ``cnitool --help``."""
    lines = [
        f"usage: {PROG} [global options] COMMAND [options] ARGS...",
        "",
        "The runtime side of CNI: run plugin chains like Go libcni, and show what they do.",
        "",
        "commands:",
    ]
    lines += [f"  {name:<10} {summary}" for name, (_, summary) in COMMANDS.items()]
    lines += ["", "global options:"]
    lines += [format_opt(opt) for opt in GLOBAL_OPTIONS]
    lines += ["", f"Run '{PROG} COMMAND --help' for a command's options."]
    return "\n".join(lines) + "\n"


class Interrupted(KeyboardInterrupt):
    """SIGINT, SIGTERM or SIGHUP arrived (``signum`` says which)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


_SIGNAL_NAMES = {2: "SIGINT", 15: "SIGTERM", 1: "SIGHUP"}
_interrupts: list[int] = []


def _interrupt(signum: int, frame: object) -> None:
    """The handler of SIGINT, SIGTERM and SIGHUP, as Python's own SIGINT
    handler: each one interrupts (the exit status is the first one's)."""
    _interrupts.append(signum)
    raise Interrupted(_interrupts[0])


def _catch_interrupts() -> dict[int, object]:
    """Make SIGTERM and SIGHUP interrupt as SIGINT does; a signal ignored
    when cnitool starts (``nohup``, ``&`` in a script) stays ignored.
    Returns the handlers replaced (none outside the main thread, where
    handlers cannot be set).  (``_signal``: the C module, without the enums
    ``signal`` builds.)"""
    _signal: Any = __import__("_signal")
    _interrupts.clear()
    previous: dict[int, object] = {}
    for signum in (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP):
        old = _signal.getsignal(signum)
        if old != _signal.SIG_IGN:
            try:
                _signal.signal(signum, _interrupt)
            except ValueError:  # not the main thread
                break
            previous[signum] = old
    return previous


def _restore_handlers(previous: dict[int, object]) -> None:
    _signal: Any = __import__("_signal")
    for signum, handler in previous.items():
        _signal.signal(signum, handler)


def _kill_live_plugins() -> None:
    """The last line of defence before exit: no plugin outlives cnitool."""
    spawn = sys.modules.get("libcni_py.edges.spawn")
    if spawn is not None:
        spawn.kill_live()


def _exit_code(exc: BaseException) -> int:
    from .. import errors

    if isinstance(exc, errors.LockTimeoutError):
        return 75  # EX_TEMPFAIL: another operation holds the lock
    if isinstance(exc, errors.NetnsError):
        return 6
    if isinstance(exc, errors.CacheError):
        return 5
    if isinstance(exc, (errors.PluginNotFoundError, errors.PluginExecError)):
        return 4
    if isinstance(exc, errors.PluginError) and exc.retryable:
        return 75  # EX_TEMPFAIL: a plugin said "try again later"
    if isinstance(exc, errors.PluginError | errors.MultiError):
        return 1
    if isinstance(
        exc,
        errors.ConfigError
        | errors.InvalidNameError
        | errors.ArgsError
        | errors.VersionError
        | errors.UnsupportedOperationError,
    ):
        return 3
    return 1


def _escape_undecodable(exc: UnicodeError) -> tuple[str, int]:
    """Codec error handler ``cnitool-escape``: a character stdout cannot
    encode is written as an escape, never an error -- ``\\xNN`` for a byte
    that was not UTF-8 in a file name, argument or variable (Python holds it
    as a surrogate), ``\\uNNNN`` for anything else."""
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    text = exc.object[exc.start : exc.end]
    out = "".join(
        f"\\x{ord(ch) - 0xDC00:02x}" if 0xDC80 <= ord(ch) <= 0xDCFF else ch.encode("ascii", "backslashreplace").decode()
        for ch in text
    )
    return out, exc.end


def _escaping_stdout() -> None:
    """Make stdout escape what it cannot encode (see :func:`_escape_undecodable`):
    a conf file name with a byte that is not UTF-8 must not crash ``ls``,
    ``explain`` or ``validate`` when stdout is strict UTF-8."""
    import codecs

    codecs.register_error("cnitool-escape", _escape_undecodable)
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:
        try:
            reconfigure(errors="cnitool-escape")
        except (ValueError, OSError):
            pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``cnitool`` with ``argv`` (default ``sys.argv[1:]``); returns the
    exit status (the console script exits with it)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    _escaping_stdout()
    command, rest = _split_command(argv)
    debug = "--debug" in argv
    if command is None and "--version" in rest:
        from .. import __version__
        from ..core.version import SPEC_VERSIONS

        sys.stdout.write(f"{PROG} (libcni_py) {__version__}; CNI spec {' '.join(SPEC_VERSIONS)}\n")
        return 0
    if command == "help":  # 'cnitool help COMMAND' is 'cnitool COMMAND --help'
        if not rest:
            sys.stdout.write(general_help())
            return 0
        command, rest = rest[0], ["--help"]
    if command is None:
        if "-h" in rest or "--help" in rest or not rest:
            sys.stdout.write(general_help())
            return 0 if rest else 2
        err(f"{PROG}: error: no command given (run '{PROG} --help')")
        return 2
    entry = COMMANDS.get(command)
    if entry is None:
        err(f"{PROG}: error: unknown command {command!r} (run '{PROG} --help' for the list)")
        return 2
    previous = _catch_interrupts()
    try:
        try:
            return _main(command, rest, argv, debug)
        except KeyboardInterrupt as exc:  # one that came before or after _main's own handling
            return _interrupted(exc)
        finally:
            _kill_live_plugins()
    finally:
        _restore_handlers(previous)


def _interrupted(exc: KeyboardInterrupt) -> int:
    """Report an interrupt; the exit status is 128 + the signal."""
    _kill_live_plugins()
    signum = exc.signum if isinstance(exc, Interrupted) else 2
    err(f"{PROG}: interrupted" + (f" by {_SIGNAL_NAMES.get(signum, signum)}" if signum != 2 else ""))
    return 128 + signum


def _main(command: str, rest: list[str], argv: list[str], debug: bool) -> int:
    entry = COMMANDS[command]
    module = __import__(f"{__package__}.{entry[0]}", fromlist=["run"])  # not importlib: ~1 ms
    spec = module.spec(command)
    run: Callable[[Context, str, dict[str, object], list[str]], int] = module.run
    if command in RUNS_PLUGINS:
        from ..edges import spawn

        spawn.become_subreaper()
    try:
        values, positionals = parse(rest, (*GLOBAL_OPTIONS, *spec.options))
        if values.get("help"):
            sys.stdout.write(spec.help(PROG))
            return 0
        ctx = Context(values, dict(os.environ))
        ctx.argv = argv
        failure = ""
        try:
            return run(ctx, command, values, positionals)
        except Exception as exc:
            failure = exc.one_line() if hasattr(exc, "one_line") else f"{type(exc).__name__}: {exc}"
            raise
        finally:
            ctx.close(failure)
    except UsageError as exc:
        err(f"{PROG} {command}: error: {exc}")
        err(spec.usage(PROG))
        return 2
    except KeyboardInterrupt as exc:
        return _interrupted(exc)
    except BrokenPipeError:
        return 141
    except Exception as exc:
        from ..errors import CNIError

        if debug:
            raise
        if isinstance(exc, CNIError):
            err(f"{PROG}: error: {exc.one_line()}")
            return _exit_code(exc)
        err(f"{PROG}: internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)")
        return 70


def console() -> None:
    """The console-script entry point."""
    raise SystemExit(main())
