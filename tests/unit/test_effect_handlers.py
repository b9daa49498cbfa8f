"""Every effect has exactly one handler slot, and a driver that forgets one
is refused: by ``mypy --strict`` where it is made, and at run time when it
is instantiated (issue 13)."""

from __future__ import annotations

import inspect
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from libcni_py.core.effects import CORE_EFFECTS, Effect
from libcni_py.drivers.base import Driver, Stepper
from libcni_py.drivers.dryrun import DryRunDriver
from libcni_py.drivers.handlers import Handlers
from libcni_py.drivers.scripted import ScriptedDriver
from libcni_py.runtime.effects import POD_EFFECTS, PodDriver, PodHandlers, ScriptedPodDriver

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "tests" / "typing" / "missing_handler.py"


def _abstract(cls: type) -> set[str]:
    return set(getattr(cls, "__abstractmethods__", ()))


def test_each_effect_names_one_abstract_handler_and_no_handler_is_stale() -> None:
    core = {effect.handler for effect in CORE_EFFECTS}
    pod = {effect.handler for effect in POD_EFFECTS}
    assert len(core) == len(CORE_EFFECTS) and len(pod) == len(POD_EFFECTS)
    assert _abstract(Handlers) == core
    assert _abstract(PodHandlers) == core | pod
    for effect in (*CORE_EFFECTS, *POD_EFFECTS):
        assert issubclass(effect, Effect)
        assert inspect.iscoroutinefunction(getattr(PodHandlers, effect.handler)), effect


@pytest.mark.parametrize("driver", [Driver, PodDriver, DryRunDriver, ScriptedDriver, ScriptedPodDriver])
def test_the_drivers_fill_in_every_handler(driver: type[Stepper]) -> None:
    assert _abstract(driver) == set()


def test_a_forgotten_handler_fails_at_run_time() -> None:
    with pytest.raises(TypeError, match=r"abstract method.*probe_netns"):
        runpy.run_path(str(EXAMPLE))


def test_mypy_names_the_forgotten_handler() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", str(EXAMPLE.relative_to(ROOT))],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stdout.splitlines() == [
        'tests/typing/missing_handler.py:72: error: Cannot instantiate abstract class "ForgetfulDriver" '
        'with abstract attribute "probe_netns"  [abstract]'
    ]
