"""How every cnitool command prints JSON: one indentation for all (four
spaces, as Go's ``cnitool add`` prints its result with
``json.MarshalIndent(result, "", "    ")``), plain dicts with sorted keys
and :class:`~libcni_py.core.gojson.Struct` s in their fixed order, so that
the same state prints the same bytes."""

from __future__ import annotations

import sys

__all__ = ["JSON_INDENT", "dumps", "print_json"]

#: The indentation of every JSON document cnitool prints or writes.
JSON_INDENT = "    "


def dumps(value: object) -> str:
    """``value`` as cnitool prints JSON (no trailing newline)."""
    from ..core import gojson

    return gojson.dumps(value, indent=JSON_INDENT)


def print_json(value: object) -> None:
    """Print ``value`` as JSON on stdout, with a newline."""
    sys.stdout.write(dumps(value) + "\n")
    sys.stdout.flush()
