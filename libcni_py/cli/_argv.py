"""A small command-line parser for ``cnitool``.

``argparse`` costs about 9 ms to import here, a noticeable share of a CLI
call that should take no longer than Go's; this parser does what cnitool
needs -- options anywhere, ``--opt value`` or ``--opt=value``, repeatable
options, flags, ``--`` -- in a few lines, and formats the help from the same
declarations.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["Command", "Opt", "UsageError", "bounded_int", "bounded_seconds", "parse"]


class UsageError(Exception):
    """Bad command-line usage; the CLI prints it with the command's usage and
    exits 2."""


class Opt:
    """One option.

    Args:
        names: its spellings, e.g. ``("--ifname",)``.
        dest: the key it is stored under.
        metavar: the value's name in the help; None makes it a flag.
        help: one line of help.
        repeat: may be given several times (values collected in a list).
        env: the environment variable that provides the default, for the help.
    """

    __slots__ = ("dest", "env", "help", "metavar", "names", "repeat")

    def __init__(
        self,
        *names: str,
        dest: str,
        metavar: str | None = None,
        help: str = "",  # noqa: A002 - as argparse
        repeat: bool = False,
        env: str = "",
    ) -> None:
        self.names = names
        self.dest = dest
        self.metavar = metavar
        self.help = help
        self.repeat = repeat
        self.env = env


class Command:
    """A command: its positional arguments and options.

    Args:
        name: e.g. ``"add"``.
        args: names of the positional arguments, e.g. ``("NETWORK", "NETNS")``;
            a name ending in ``...`` takes the rest.
        summary: one line for the list of commands.
        options: its :class:`Opt` s.
        description: a paragraph shown in its help.
    """

    __slots__ = ("args", "description", "name", "options", "summary")

    def __init__(
        self,
        name: str,
        args: Sequence[str],
        summary: str,
        options: Sequence[Opt] = (),
        description: str = "",
    ) -> None:
        self.name = name
        self.args = tuple(args)
        self.summary = summary
        self.options = tuple(options)
        self.description = description

    def usage(self, prog: str = "cnitool") -> str:
        """The one-line usage."""
        opts = " [options]" if self.options else ""
        return f"usage: {prog} {self.name}{opts} {' '.join(self.args)}".rstrip()

    def help(self, prog: str = "cnitool") -> str:
        """The full help text."""
        lines = [self.usage(prog), "", self.summary]
        if self.description:
            lines += ["", self.description]
        if self.options:
            lines += ["", "options:"]
            lines += [format_opt(opt) for opt in self.options]
        return "\n".join(lines) + "\n"


def format_opt(opt: Opt) -> str:
    """One help line for an option."""
    spelled = ", ".join(opt.names) + (f" {opt.metavar}" if opt.metavar else "")
    extra = f" [env {opt.env}]" if opt.env else ""
    if opt.repeat:
        extra += " (repeatable)"
    return f"  {spelled:<30} {opt.help}{extra}"


def parse(argv: Sequence[str], options: Sequence[Opt]) -> tuple[dict[str, object], list[str]]:
    """Split ``argv`` into option values and positional arguments.

    Returns:
        ``(values, positionals)``; flags are True when given, repeatable
        options are lists, absent options are missing from ``values``.
        Everything after a ``--`` is in ``values["--"]`` (a list).

    Raises:
        UsageError: an unknown option, or an option without its value.
    """
    by_name = {name: opt for opt in options for name in opt.names}
    values: dict[str, object] = {}
    positionals: list[str] = []
    index = 0
    while index < len(argv):
        token = argv[index]
        index += 1
        if token == "--":
            values["--"] = list(argv[index:])
            break
        if not token.startswith("-") or token == "-":
            positionals.append(token)
            continue
        name, eq, inline = token.partition("=")
        opt = by_name.get(name)
        if opt is None:
            raise UsageError(f"unknown option {name}")
        if opt.metavar is None:
            if eq:
                raise UsageError(f"option {name} takes no value")
            values[opt.dest] = True
            continue
        if eq:
            value = inline
        else:
            if index >= len(argv):
                raise UsageError(f"option {name} needs a value ({opt.metavar})")
            value = argv[index]
            index += 1
        if opt.repeat:
            existing = values.setdefault(opt.dest, [])
            assert isinstance(existing, list)
            existing.append(value)
        else:
            values[opt.dest] = value
    return values, positionals


def bounded_int(text: object, *, option: str, low: int, high: int) -> int:
    """An integer option's value, checked before anything runs.

    Only ASCII digits are taken (``int`` would also take ``٣``, ``1_0`` and
    thousands of digits, or fail on ``²``, which ``str.isdigit`` lets
    through).

    Raises:
        UsageError: not a whole number from ``low`` to ``high``.
    """
    value = str(text).strip()
    digits = value.removeprefix("-")
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 18:
        raise UsageError(f"{option}: {value!r} is not a whole number from {low} to {high}")
    number = int(value)
    if not low <= number <= high:
        raise UsageError(f"{option}: {number} is not between {low} and {high}")
    return number


def bounded_seconds(text: object, *, option: str, high: float) -> float:
    """A number of seconds, ``0`` to ``high`` (a fraction is fine).

    Raises:
        UsageError: not a finite number in that range (``inf``, ``nan`` and
            negative numbers included).
    """
    value = str(text).strip()
    try:
        seconds = float(value) if value.isascii() else float("nan")
    except ValueError:
        seconds = float("nan")
    if not 0 <= seconds <= high:  # False for nan too
        raise UsageError(f"{option}: {value!r} is not a number of seconds from 0 to {high:g}")
    return seconds
