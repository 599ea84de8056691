"""Every ``check_*`` in ``course_utils.exercises``, tried with the untouched stub every exercise starts as.

The stub raises ``NotImplementedError``: the check must say "not implemented yet" and return False, never raise,
so the student notebook carries on.

The topic modules' own tests try the specific wrong answers of each exercise; this one makes sure no check is missed.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import course_utils.exercises as exercises_package


def _all_checks() -> list[tuple[str, object]]:
    found = []
    for info in pkgutil.iter_modules(exercises_package.__path__):
        module = importlib.import_module(f"course_utils.exercises.{info.name}")
        for name, fn in inspect.getmembers(module, inspect.isfunction):
            if name.startswith("check_") and fn.__module__ == module.__name__:
                found.append((f"{info.name}.{name}", fn))
    return sorted(found)


CHECKS = _all_checks()


def _stub(*args, **kwargs):
    raise NotImplementedError()


def _required_positional(fn) -> int:
    return sum(
        1
        for p in inspect.signature(fn).parameters.values()
        if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    )


def test_every_check_takes_the_students_function_alone():
    assert CHECKS, "no check_* functions found in course_utils.exercises"
    assert [name for name, fn in CHECKS if _required_positional(fn) != 1] == []


@pytest.mark.parametrize(("name", "check_fn"), CHECKS, ids=[name for name, _ in CHECKS])
def test_stub_gets_not_implemented_yet(name, check_fn, capsys):
    assert not check_fn(_stub)
    assert "not implemented yet" in capsys.readouterr().out


@pytest.mark.parametrize("mode", ["autograde", "validate"])
@pytest.mark.parametrize(("name", "check_fn"), CHECKS, ids=[name for name, _ in CHECKS])
def test_stub_fails_the_check_while_nbgrader_grades(name, check_fn, mode, monkeypatch, capsys):
    # nbgrader scores a test cell by whether it raised: the stub must raise there, or it would earn full points.
    monkeypatch.setenv("NBGRADER_EXECUTION", mode)
    with pytest.raises(NotImplementedError, match="not implemented"):
        check_fn(_stub)
    assert "not implemented yet" not in capsys.readouterr().out


def test_grading_reads_nbgraders_variable(monkeypatch):
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    assert not exercises_package.grading()
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    assert exercises_package.grading()
    monkeypatch.setenv("NBGRADER_EXECUTION", "")
    assert not exercises_package.grading()
