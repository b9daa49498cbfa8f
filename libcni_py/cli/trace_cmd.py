"""``cnitool trace html|compact FILE``: render a ``--trace-json`` file.

``trace html TRACE.json OUT.html`` writes the page ``--trace-html`` would
have written (a sequence diagram; ``-`` for stdout); ``trace compact
TRACE.json`` prints the lines ``--trace-compact`` would have printed.  So a
trace taken on one machine (``--trace-json``) can be looked at elsewhere.
"""

from __future__ import annotations

import os
import sys

from ._argv import Command, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .main import Context

__all__ = ["run", "spec"]

SPEC = Command(
    "trace",
    ("html|compact", "TRACE.json", "[OUT.html]"),
    "Render a --trace-json file: as an HTML page, or as compact lines.",
    description="  html TRACE.json OUT.html   write a self-contained page: a sequence diagram of the runtime,\n"
    "                             each plugin and the programs it ran, and what each changed ('-': stdout)\n"
    "  compact TRACE.json         print one line per plugin call and per change",
)


def spec(command: str) -> Command:
    """The declaration of ``trace``."""
    return SPEC


def _load(path: str) -> dict[str, Any]:
    """A ``--trace-json`` document, or one clear error."""
    from ..core import gojson
    from ..errors import ArgsError, DecodeError

    try:
        with open(path, "rb") as fh:
            doc = gojson.loads(fh.read())
    except OSError as exc:
        raise ArgsError(f"{path}: cannot read: {exc.strerror}") from None
    except DecodeError as exc:
        raise ArgsError(f"{path}: not JSON: {exc}", hint="give a file written by --trace-json") from None
    if not isinstance(doc, dict) or not str(doc.get("schema", "")).startswith("libcni_py.trace/"):
        raise ArgsError(
            f'{path}: not a --trace-json document (no "schema": "libcni_py.trace/...")',
            hint="give a file written by --trace-json",
        )
    if not isinstance(doc.get("events"), list):
        raise ArgsError(f"{path}: events: expected a list", hint="give a file written by --trace-json")
    return doc


def run(ctx: Context, command: str, values: dict[str, object], positionals: list[str]) -> int:
    """Run ``cnitool trace ...``."""
    if not positionals:
        raise UsageError("expected html or compact")
    verb, args = positionals[0], positionals[1:]
    if verb == "compact":
        if len(args) != 1:
            raise UsageError("compact takes one TRACE.json")
        from ..tools.trace.compact import render as compact

        sys.stdout.write(compact(_load(args[0])))
        return 0
    if verb == "html":
        if len(args) != 2:
            raise UsageError("html takes TRACE.json and OUT.html ('-' for stdout)")
        from ..tools.trace.html import render

        page = render(_load(args[0]))
        if args[1] == "-":
            sys.stdout.write(page)
            return 0
        try:
            fd = os.open(args[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            with open(fd, "w", encoding="utf-8") as fh:
                fh.write(page)
        except OSError as exc:
            raise UsageError(f"cannot write {args[1]}: {exc.strerror}") from None
        return 0
    raise UsageError(f"unknown trace command {verb!r} (expected html or compact)")
