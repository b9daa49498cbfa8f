"""The public surface: what ``libcni_py`` exports, and what importing it costs."""

from __future__ import annotations

import subprocess
import sys

from support import REPO

import libcni_py


def test_every_exported_name_resolves() -> None:
    assert sorted(libcni_py.__all__) == sorted(libcni_py._EXPORTS)
    for name in libcni_py.__all__:
        assert getattr(libcni_py, name) is not None, name


def test_error_tree_has_one_root() -> None:
    from libcni_py import errors

    for name in errors.__all__:
        value = getattr(errors, name)
        if isinstance(value, type):
            assert issubclass(value, errors.CNIError), name


def test_one_shot_paths_import_nothing_heavy() -> None:
    code = (
        "import sys; import libcni_py; from libcni_py import CNI, load_network, RuntimeConf; "
        "import libcni_py.cli.main, libcni_py.cli.ops, libcni_py.drivers.blocking; "
        "heavy = [m for m in ('trio', 'pyroute2', 'jsonschema', 'subprocess', 'dataclasses', 'typing', 'argparse') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert proc.stdout.strip() == "", f"imported on the one-shot path: {proc.stdout.strip()}"


def test_async_api_imports_trio_only_when_used() -> None:
    code = "import sys; from libcni_py import AsyncCNI; AsyncCNI(); print('trio' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert proc.stdout.strip() == "False"
