#!/usr/bin/env python3
"""Issue 13's move: put libcni_py's flat modules into folders named for the layers.

A dev tool, run once and then deleted.  It is written to be rerun on a later
main (with other work merged in: new modules, new tests, new imports), so it
works from rules, not from a list of edits:

1. ``git mv`` every module of :data:`MOVES` that exists (missing ones are
   skipped) -- plus any ``OLD=NEW`` given on the command line (dotted module
   names or paths: ``libcni_py.watch=libcni_py.tools.watch`` or
   ``libcni_py/watch.py=libcni_py/tools/watch.py``) -- and creates the layer
   packages' ``__init__.py`` (:data:`PACKAGES`) where missing.
2. Rewrites every import in libcni_py/, tests/, benchmarks/, examples/, cmd/,
   testdata/, scripts/ (``*.py``): each statement is parsed with ``ast``,
   resolved to absolute module names from the file's OLD place, mapped, and
   written back relative to the file's NEW place (relative stays relative;
   ``from . import plan, spawn`` splits into one statement per package; a
   module whose name changed keeps its local name with ``as``).  Only those
   statements' spans change; the rest of each file stays byte-identical.
3. Rewrites text references in every tracked text file: ``libcni_py.old``
   dotted names (strings checked against ``sys.modules``,
   ``monkeypatch.setattr`` targets, ``python -m``, docstrings, Markdown;
   not ``libcni_py.trace/2``, which is a wire-format name),
   ``libcni_py/old.py`` paths, ``from libcni_py import old`` lines inside
   strings (plugin scripts the tests write) and Markdown, and the relative
   module names of lazy-import tables (``_EXPORTS`` in libcni_py/__init__.py:
   any string naming a moved module relative to the package of a module that
   calls ``__import__``/``import_module``).
4. pyproject.toml: ``[tool.setuptools] packages`` becomes every package under
   libcni_py/ (plus the schemas data folder); package data follows the names.
5. Runs ``ruff check --fix --select I`` and ``ruff format`` on the Python files
   it changed (import order and line length after renames), if ruff is found
   (.venv/bin/ruff or PATH).
6. Checks the result statically: every import into libcni_py resolves to a
   file of the new tree, no old dotted name or path is left; exits 1 if not.

Usage, from the repository root of a clean checkout::

    python3 scripts/relayout.py [--dry-run] [OLD=NEW ...]

Afterwards (manual steps):

* ``rm -rf build && ./scripts/setup`` -- setuptools copies stale files from
  an old ``build/lib`` into the wheel, so the installed ``cnitool`` would
  still carry the old modules and hide a missed import.
* Modules the script reports as "left at the top level" are new ones not in
  the plan: give them a place (rerun with ``OLD=NEW``) or keep them.
* README.md's "Where things are" table is rewritten by hand (the script only
  maps names in it).
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from collections.abc import Callable

PACKAGE = "libcni_py"

#: old module -> new module (PLAN-13.md).  A key maps its submodules too.
MOVES: dict[str, str] = {
    "libcni_py._values": "libcni_py.core.value",
    "libcni_py.names": "libcni_py.core.names",
    "libcni_py.version": "libcni_py.core.version",
    "libcni_py.args": "libcni_py.core.args",
    "libcni_py.gojson": "libcni_py.core.gojson",
    "libcni_py.schema": "libcni_py.core.schema",
    "libcni_py.schemas": "libcni_py.core.schemas",  # package data folder
    "libcni_py.conf": "libcni_py.core.netconf",
    "libcni_py.result": "libcni_py.core.result",
    "libcni_py.request": "libcni_py.core.plugin_input",
    "libcni_py.cache": "libcni_py.core.record",
    "libcni_py.invoke": "libcni_py.core.plugin_call",
    "libcni_py.plan": "libcni_py.core.plan",
    "libcni_py.spawn": "libcni_py.edges.spawn",
    "libcni_py.cachestore": "libcni_py.edges.recordstore",
    "libcni_py.probes": "libcni_py.edges.probes",
    "libcni_py.driver": "libcni_py.drivers.base",
    "libcni_py.exec_sync": "libcni_py.drivers.blocking",
    "libcni_py.exec_trio": "libcni_py.drivers.async_trio",
    "libcni_py.explain": "libcni_py.drivers.dryrun",
    "libcni_py.trace": "libcni_py.tools.trace.tracer",
    "libcni_py.proctrace": "libcni_py.tools.trace.proc",
    "libcni_py.tools.trace_html": "libcni_py.tools.trace.html",
    "libcni_py.confdir_report": "libcni_py.tools.confdir_report",
}

#: the layer packages and their docstrings (written only where no __init__.py exists)
PACKAGES: dict[str, str] = {
    "libcni_py.core": '''"""The pure core: what CNI means, computed without touching the system.

Values, names, versions, Go-exact JSON, the shipped JSON Schemas, network
configurations, results, each plugin's stdin and environment, the cache
record format, decoding a plugin's answer, and the plans -- the operations
written once as generators that yield effects for a driver to perform.

Rule: the core is pure.  Nothing here imports from ``edges``, ``drivers``,
``tools``, ``runtime`` or ``cli``, nor trio, pyroute2 or subprocess; what a
plan needs from the world it asks for as an effect.  Three exceptions are
left until they move to the edges: ``netconf`` reads conf files,
``plugin_call`` looks plugin binaries up on disk, ``schema`` reads the
shipped schemas.
"""
''',
    "libcni_py.edges": '''"""I/O at the edges: the only code that touches processes, files and the kernel.

Starting plugin processes (``spawn``), the record store on disk with its locks
(``recordstore``), and the read-only probes of network state (``probes``).

Rule: the edges import the core (and ``errors``, ``netns``), never
``drivers``, ``tools``, ``runtime`` or ``cli``; the core never imports them.
"""
''',
    "libcni_py.drivers": '''"""Drivers: they run the core's plans, performing each effect a plan yields.

``blocking`` with plain calls (the one-shot CLI and :class:`libcni_py.CNI`),
``async_trio`` with trio (:class:`libcni_py.AsyncCNI`), and ``dryrun``, which
records the effects and touches nothing (``cnitool explain``); ``base`` holds
what they share.

Rule: drivers import the core and the edges, never ``tools``, ``runtime`` or
``cli``: a tracer is handed to a driver, not imported by it.
"""
''',
    "libcni_py.tools": '''"""Tools for seeing inside: tracing, the conf-dir report, and the like.

Rule: tools may import the core, the edges and the drivers; nothing on the
one-shot path imports a tool at module level -- the CLI and the API load one
only when asked for it, so a plain ``cnitool add`` never pays for it.
"""
''',
    "libcni_py.tools.trace": '''"""Tracing: every step of a plugin call made visible.

``tracer`` observes each effect a driver performs (and renders the text and
JSON traces); ``proc`` finds out, as root, which processes did what.

Rule: as for all tools -- loaded only when a trace is asked for.
"""
''',
}

#: where Python files are rewritten
PY_ROOTS = ("libcni_py", "tests", "benchmarks", "examples", "cmd", "testdata", "scripts")

SELF = Path(__file__).resolve()


def sh(*argv: str, check: bool = True) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        sys.exit(f"relayout: {' '.join(argv)} failed:\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def is_python(path: Path, text: str) -> bool:
    """A Python file: ``*.py``, or a script whose first line runs python (the test plugins)."""
    return path.suffix == ".py" or (not path.suffix and re.match(r"#![^\n]*python", text) is not None)


def in_package(name: str | None) -> bool:
    return name is not None and (name == PACKAGE or name.startswith(PACKAGE + "."))


def to_dotted(spec: str) -> str:
    """``libcni_py/tools/x.py`` or ``libcni_py.tools.x`` -> ``libcni_py.tools.x``."""
    spec = spec.strip().rstrip("/")
    if "/" in spec or spec.endswith(".py"):
        spec = spec.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
    return spec


def source_of(module: str) -> Path | None:
    """The file or folder that holds ``module`` in the working tree, if any."""
    base = Path(*module.split("."))
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if base.is_dir():
        return base
    return None


class _File(NamedTuple):
    """One Python file being rewritten: its text and where it lives, before and after."""

    path: Path
    src: str
    lines: list[str]
    offset: Callable[[int, int], int]
    old_pkg: str | None
    new_pkg: str | None


class Relayout:
    def __init__(self, moves: dict[str, str]) -> None:
        self.moves = moves
        self._keys = sorted(moves, key=len, reverse=True)
        self.old_modules = self._scan_modules()
        self.warnings: list[str] = []
        olds = sorted((k[len(PACKAGE) + 1 :] for k in moves), key=len, reverse=True)
        alt = "|".join(re.escape(o) for o in olds)
        # libcni_py.old (and its attributes), not libcni_py.oldx, x.libcni_py.old, libcni_py.old/2
        self.dotted_re = re.compile(rf"(?<![\w.]){PACKAGE}\.({alt})(?![\w/])")
        paths = []
        for old, new in moves.items():
            src = source_of(old) if Path(PACKAGE).is_dir() else None
            o, n = old.replace(".", "/"), new.replace(".", "/")
            if src is not None and src.is_dir():
                paths.append((rf"(?<![\w/.]){re.escape(o)}(?![\w.])", n))
            else:
                paths.append((rf"(?<![\w/.]){re.escape(o)}\.py(?!\w)", n + ".py"))
        self.path_res = [(re.compile(p), n) for p, n in paths]
        self.from_line_re = re.compile(rf"^([ \t]*)from {PACKAGE} import ([\w ,]+?)[ \t]*$", re.MULTILINE)

    # -- names ---------------------------------------------------------------

    def _scan_modules(self) -> set[str]:
        found = {PACKAGE}
        for path in Path(PACKAGE).rglob("*"):
            if "__pycache__" in path.parts:
                continue
            if path.suffix == ".py":
                found.add(".".join(path.with_suffix("").parts).removesuffix(".__init__"))
            elif path.is_dir() and (path / "__init__.py").exists():
                found.add(".".join(path.parts))
        return found

    def map(self, name: str) -> str:
        for key in self._keys:
            if name == key or name.startswith(key + "."):
                return self.moves[key] + name[len(key) :]
        return name

    @staticmethod
    def module_of(path: Path) -> tuple[str, bool] | None:
        """(dotted module name, is a package) of a file under libcni_py/, else None."""
        if path.parts[0] != PACKAGE:
            return None
        parts = path.with_suffix("").parts
        if parts[-1] == "__init__":
            return ".".join(parts[:-1]), True
        return ".".join(parts), False

    # -- Python files --------------------------------------------------------

    def rewrite_python(self, path: Path, src: str) -> str:
        tree = ast.parse(src, filename=str(path))
        lines = src.split("\n")
        starts = [0]
        for line in lines:
            starts.append(starts[-1] + len(line) + 1)

        def offset(lineno: int, col: int) -> int:
            return starts[lineno - 1] + len(lines[lineno - 1].encode()[:col].decode())

        mod = self.module_of(path)
        old_pkg = new_pkg = None
        if mod is not None:
            name, is_pkg = mod
            old_pkg = name if is_pkg else name.rpartition(".")[0]
            new_name = self.map(name)
            new_pkg = new_name if is_pkg else new_name.rpartition(".")[0]

        edits: list[tuple[int, int, str]] = []
        lazy_tables = mod is not None and any(
            form in src for form in ('__import__(f"{__name__}.', '__import__(f"{__package__}.', 'import_module(f".')
        )
        in_fstring = {id(n) for j in ast.walk(tree) if isinstance(j, ast.JoinedStr) for n in ast.walk(j)}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                edit = self._import_from(node, _File(path, src, lines, offset, old_pkg, new_pkg))
                if edit is not None:
                    edits.append(edit)
            elif (
                lazy_tables
                and isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and id(node) not in in_fstring
                and re.fullmatch(r"[A-Za-z_][\w.]*", node.value)
                and old_pkg is not None
                and new_pkg is not None
            ):
                old_full = f"{old_pkg}.{node.value}"
                if old_full in self.old_modules and self.map(old_full) != old_full:
                    new_full = self.map(old_full)
                    if not new_full.startswith(new_pkg + "."):
                        self.warnings.append(f"{path}:{node.lineno}: {node.value!r} leaves its package; fix by hand")
                        continue
                    begin = offset(node.lineno, node.col_offset)
                    end = offset(node.end_lineno or node.lineno, node.end_col_offset or 0)
                    text = src[begin:end]
                    quote = text[0]
                    if text != f"{quote}{node.value}{quote}":
                        continue
                    edits.append((begin, end, f"{quote}{new_full[len(new_pkg) + 1 :]}{quote}"))
        for begin, end, text in sorted(edits, reverse=True):
            src = src[:begin] + text + src[end:]
        return self.rewrite_text(src)

    def _import_from(self, node: ast.ImportFrom, file: _File) -> tuple[int, int, str] | None:
        src, offset, lines, old_pkg, new_pkg, path = (
            file.src,
            file.offset,
            file.lines,
            file.old_pkg,
            file.new_pkg,
            file.path,
        )
        if node.level:
            if old_pkg is None:
                return None  # a relative import outside libcni_py: not ours
            parts = old_pkg.split(".")
            if node.level - 1 >= len(parts):
                return None
            base = ".".join(parts[: len(parts) - (node.level - 1)])
            if node.module:
                base += "." + node.module
        else:
            base = node.module or ""
        if not in_package(base):
            return None
        groups: dict[str, list[str]] = {}
        names_changed = False
        for alias in node.names:
            full = f"{base}.{alias.name}"
            if alias.name != "*" and full in self.old_modules:
                new_full = self.map(full)
                new_base, _, new_name = new_full.rpartition(".")
                bind = alias.asname or alias.name
                text = new_name if new_name == bind else f"{new_name} as {bind}"
                if new_name != alias.name:
                    names_changed = True
            else:
                new_base = self.map(base)
                text = alias.name if alias.asname is None else f"{alias.name} as {alias.asname}"
            groups.setdefault(new_base, []).append(text)

        def spec(target: str) -> str:
            if node.level and new_pkg is not None:
                here, there = new_pkg.split("."), target.split(".")
                common = 0
                while common < min(len(here), len(there)) and here[common] == there[common]:
                    common += 1
                return "." * (len(here) - common + 1) + ".".join(there[common:])
            return target

        old_spec = "." * node.level + (node.module or "")
        begin = offset(node.lineno, node.col_offset)
        end = offset(node.end_lineno or node.lineno, node.end_col_offset or 0)
        segment = src[begin:end]
        if len(groups) == 1 and not names_changed:
            new_spec = spec(next(iter(groups)))
            if new_spec == old_spec:
                return None
            match = re.match(r"from(\s+)([.\w]+)", segment)
            if match is None or match.group(2) != old_spec:
                self.warnings.append(f"{path}:{node.lineno}: unexpected import text, left alone")
                return None
            return begin, end, f"from{match.group(1)}{new_spec}{segment[match.end() :]}"
        if "#" in segment:
            self.warnings.append(f"{path}:{node.lineno}: comments inside the import were dropped")
        line = lines[node.lineno - 1]
        prefix = line[: len(line.encode()[: node.col_offset].decode())]
        joiner = "\n" + prefix if not prefix.strip() else "; "
        text = joiner.join(f"from {spec(target)} import {', '.join(names)}" for target, names in sorted(groups.items()))
        return begin, end, text

    # -- any text ------------------------------------------------------------

    def rewrite_text(self, text: str) -> str:
        text = self.dotted_re.sub(lambda m: self.map(f"{PACKAGE}.{m.group(1)}"), text)
        for pattern, new in self.path_res:
            text = pattern.sub(new, text)
        return self.from_line_re.sub(self._from_line, text)

    def _from_line(self, match: re.Match[str]) -> str:
        """``from libcni_py import a, b as c`` written as text (a plugin script in a string, Markdown)."""
        indent, names = match.group(1), match.group(2)
        groups: dict[str, list[str]] = {}
        for item in (n.strip() for n in names.split(",")):
            if not item:
                return match.group(0)
            name, _, asname = (p.strip() for p in item.partition(" as "))
            full = f"{PACKAGE}.{name}"
            if full in self.old_modules and self.map(full) != full:
                new_base, _, new_name = self.map(full).rpartition(".")
                bind = asname or name
                groups.setdefault(new_base, []).append(new_name if new_name == bind else f"{new_name} as {bind}")
            else:
                groups.setdefault(PACKAGE, []).append(item)
        if list(groups) == [PACKAGE]:
            return match.group(0)
        return "\n".join(f"{indent}from {base} import {', '.join(items)}" for base, items in sorted(groups.items()))

    # -- pyproject -----------------------------------------------------------

    def rewrite_pyproject(self, text: str, packages: list[str]) -> str:
        text = self.rewrite_text(text)
        listed = "[\n" + "".join(f'    "{p}",\n' for p in packages) + "]"
        new, count = re.subn(r"(?m)^packages = \[[^\]]*\]", lambda _m: f"packages = {listed}", text)
        if count != 1:
            self.warnings.append("pyproject.toml: no `packages = [...]` under [tool.setuptools]; fix by hand")
        return new

    # -- checking ------------------------------------------------------------

    def check(self, files: list[Path]) -> list[str]:
        modules = self._scan_modules()
        problems = []
        for path in files:
            if path.is_symlink() or not path.is_file() or path.parts[0] not in PY_ROOTS:
                continue
            try:
                text = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue
            if not is_python(path, text):
                continue
            tree = ast.parse(text, filename=str(path))
            mod = self.module_of(path)
            pkg = None if mod is None else (mod[0] if mod[1] else mod[0].rpartition(".")[0])
            for node in ast.walk(tree):
                targets = []
                if not isinstance(node, (ast.Import, ast.ImportFrom)):
                    continue
                if isinstance(node, ast.Import):
                    targets = [a.name for a in node.names]
                else:
                    if node.level:
                        if pkg is None:
                            continue
                        parts = pkg.split(".")
                        base = ".".join(parts[: len(parts) - (node.level - 1)])
                        base += "." + node.module if node.module else ""
                    else:
                        base = node.module or ""
                    targets = [base]
                for target in targets:
                    if in_package(target) and target not in modules:
                        problems.append(f"{path}:{node.lineno}: imports {target}, which does not exist")
        return problems


def main(argv: list[str]) -> int:
    dry_run = "--dry-run" in argv
    extra = [a for a in argv if a != "--dry-run"]
    if not Path("pyproject.toml").is_file() or not Path(PACKAGE, "__init__.py").is_file():
        sys.exit("relayout: run me from the root of a libcni_py checkout")
    if sh("git", "status", "--porcelain", "--untracked-files=no").strip() and not dry_run:
        sys.exit("relayout: the work tree has changes; run me on a clean checkout")

    moves = dict(MOVES)
    for item in extra:
        old, sep, new = item.partition("=")
        if not sep:
            sys.exit(f"relayout: {item!r}: give extra moves as OLD=NEW")
        moves[to_dotted(old)] = to_dotted(new)

    active: dict[str, str] = {}
    for old, new in moves.items():
        if source_of(old) is None:
            print(f"relayout: skip {old} (not here)")
            continue
        if source_of(new) is not None:
            sys.exit(f"relayout: {new} exists already; refusing to move {old} onto it")
        active[old] = new
    for package in PACKAGES:
        if Path(*package.split(".")).with_suffix(".py").exists():
            sys.exit(f"relayout: {package} is a module here, but the plan makes it a package; move it first (OLD=NEW)")
    tool = Relayout(active)

    tracked = [Path(p) for p in sh("git", "ls-files", "-z").split("\0") if p]
    new_text: dict[Path, str] = {}
    for path in tracked:
        if path.is_symlink() or not path.is_file() or path.resolve() == SELF or path.name == "pyproject.toml":
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        if is_python(path, text) and path.parts[0] in PY_ROOTS:
            updated = tool.rewrite_python(path, text)
        elif path.suffix == ".py":
            continue
        else:
            updated = tool.rewrite_text(text)
        if updated != text:
            new_text[path] = updated

    sources = {old: source_of(old) for old in active}

    def new_path(path: Path) -> Path:
        for old, new in active.items():
            src = sources[old]
            assert src is not None
            dst = Path(*new.split("."))
            if src.is_file() and path == src:
                return dst.with_suffix(".py")
            if src.is_dir() and src in path.parents:
                return dst / path.relative_to(src)
        return path

    for path in sorted(new_text):
        print(f"relayout: rewrite {path}" + (f" -> {new_path(path)}" if new_path(path) != path else ""))
    if dry_run:
        for old, new in active.items():
            print(f"relayout: would move {sources[old]} -> {new}")
        for warning in tool.warnings:
            print(f"relayout: WARNING {warning}")
        return 0

    # move (remember the targets first: source_of() looks at the tree)
    plan = [(sources[old], old, new) for old, new in active.items()]
    renamed = {p: new_path(p) for p in new_text}
    for src, _old, new in plan:
        assert src is not None
        dst = Path(*new.split(".")) if src.is_dir() else Path(*new.split(".")).with_suffix(".py")
        dst.parent.mkdir(parents=True, exist_ok=True)
        sh("git", "mv", str(src), str(dst))
        print(f"relayout: git mv {src} {dst}")
    for package, doc in PACKAGES.items():
        init = Path(*package.split("."), "__init__.py")
        if init.exists():
            print(f"relayout: keep {init} (exists)")
            continue
        init.parent.mkdir(parents=True, exist_ok=True)
        init.write_text(doc, encoding="utf-8")
        sh("git", "add", str(init))
        print(f"relayout: create {init}")
    for path, text in new_text.items():
        renamed[path].write_text(text, encoding="utf-8")

    # pyproject: every package, plus the data folder of the schemas
    packages = sorted(
        {".".join(p.parent.parts) for p in Path(PACKAGE).rglob("__init__.py") if "__pycache__" not in p.parts}
        | {tool.map(f"{PACKAGE}.schemas")}
    )
    pyproject = Path("pyproject.toml")
    text = pyproject.read_text(encoding="utf-8")
    updated = tool.rewrite_pyproject(text, packages)
    if updated != text:
        pyproject.write_text(updated, encoding="utf-8")
        print("relayout: rewrite pyproject.toml")

    changed = sorted(
        {str(p) for p in renamed.values() if p.suffix == ".py"}
        | {str(Path(*pkg.split("."), "__init__.py")) for pkg in PACKAGES}
    )
    ruff = ".venv/bin/ruff" if os.access(".venv/bin/ruff", os.X_OK) else shutil.which("ruff")
    if ruff:
        sh(ruff, "check", "--fix", "--select", "I", "--quiet", *changed, check=False)
        sh(ruff, "format", "--quiet", *changed)
        print(f"relayout: {ruff} sorted imports and formatted {len(changed)} files")
    else:
        tool.warnings.append("ruff not found: run `ruff check --fix --select I . && ruff format .`")
    sh("git", "add", "--", "pyproject.toml", *[str(p) for p in renamed.values()], *changed)

    # what is left
    public = {"__init__", "api", "errors", "netns", "skel"}
    left = sorted(p.stem for p in Path(PACKAGE).glob("*.py") if p.stem not in public)
    if left:
        print(f"relayout: left at the top level (not in the plan): {', '.join(left)}")
    all_files = [renamed.get(p, new_path(p)) for p in tracked] + [
        Path(*pkg.split("."), "__init__.py") for pkg in PACKAGES
    ]
    problems = tool.check(all_files)
    leftovers = []
    for path in all_files:
        if path.is_symlink() or not path.is_file() or path.resolve() == SELF:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        if tool.rewrite_text(text) != text:
            leftovers.append(f"{path}: still names an old module")
    for line in tool.warnings + problems + leftovers:
        print(f"relayout: WARNING {line}")
    return 1 if problems or leftovers else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
