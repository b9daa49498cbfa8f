"""The core is pure: it imports nothing from the layers above it nor
anything that does I/O on its behalf, and it calls the file system only
where listed here, each with its reason (issue 13).

Walks the import statements of every module of ``libcni_py/core/`` with
:mod:`ast` (function-local imports included): what a module imports is what
it could call.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "libcni_py" / "core"
MODULES = sorted(CORE.glob("*.py"))

#: No core module may import these (or anything under them).
FORBIDDEN = (
    "libcni_py.edges",
    "libcni_py.drivers",
    "libcni_py.tools",
    "libcni_py.runtime",
    "libcni_py.cli",
    "libcni_py.api",
    "libcni_py.netns",
    "trio",
    "pyroute2",
    "subprocess",
)

#: The file-system calls the core still makes, and why they are there.
KNOWN_IO = {
    # loading a conf file or a conf dir: bounded reads (one open, no
    # following of FIFOs) whose errors become ConfigError with the file and
    # what to do; every caller (CLI, library, runtime) loads through here
    ("netconf.py", "os.open"): "reads a conf file, bounded and without blocking on a FIFO",
    ("netconf.py", "os.read"): "reads a conf file, bounded and without blocking on a FIFO",
    ("netconf.py", "os.scandir"): "lists a conf dir (Go's ConfFiles), errors as ConfigError",
    # finding a plugin binary: Go's FindInPath, with its unsafe-directory checks
    ("plugin_call.py", "os.stat"): "looks a plugin binary up in the plugin path (Go's FindInPath)",
    # the JSON schemas shipped inside the package, read once when first used
    ("schema.py", "open"): "reads the package's own JSON schema files",
}
IO_CALLS = {"open", "os.open", "os.read", "os.write", "os.stat", "os.lstat", "os.scandir", "os.listdir", "os.remove"}


def _imports(path: Path) -> set[str]:
    package = "libcni_py.core"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
                found.add(module)
                found.update(f"{module}.{alias.name}" for alias in node.names)
            else:
                found.add(node.module or "")
    return found


def _calls(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name):
                found.add(func.id)
            elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
                found.add(f"{func.value.id}.{func.attr}")
    return found & IO_CALLS


def test_the_walk_sees_relative_imports() -> None:
    assert "libcni_py.errors" in _imports(CORE / "operations.py")
    assert "libcni_py.core.effects" in _imports(CORE / "operations.py")


@pytest.mark.parametrize("module", MODULES, ids=lambda p: p.name)
def test_the_core_imports_nothing_above_it(module: Path) -> None:
    bad = sorted(name for name in _imports(module) for f in FORBIDDEN if name == f or name.startswith(f + "."))
    assert bad == [], f"{module.name} imports {bad}"


@pytest.mark.parametrize("module", MODULES, ids=lambda p: p.name)
def test_the_core_touches_files_only_where_listed(module: Path) -> None:
    unlisted = sorted(call for call in _calls(module) if (module.name, call) not in KNOWN_IO)
    assert unlisted == [], f"{module.name} calls {unlisted}: move the I/O to an edge or list it in KNOWN_IO"


def test_every_listed_exception_is_still_there() -> None:
    for module, call in KNOWN_IO:
        assert call in _calls(CORE / module), f"{module} no longer calls {call}: drop it from KNOWN_IO"
