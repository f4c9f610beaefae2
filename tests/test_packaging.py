"""What a regular (non-editable) install ships: every module of the source tree, in the wheel.

A hand-written package list once left ``pytest_unlearn.certified`` out of the wheel, and the
README's first command crashed after ``pip install .`` while every editable-install test
passed. The wheel is built here exactly as pip builds it for a user, then compared with the
source tree. (``.ci/run`` also installs it into a fresh venv and runs the suite from an empty
directory.)
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import REPO_ROOT

#: Source folder -> the package it ships as (setup.py's mapping, restated as the spec).
SHIPPED_FOLDERS = {
    "pytest_unlearn": "pytest_unlearn",
    "conformance": "pytest_unlearn.conformance",
    "fixtures": "pytest_unlearn.fixtures",
}


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """The file names inside a wheel built from this checkout."""
    out = tmp_path_factory.mktemp("wheel")
    # Built from a copy: setuptools leaves build/ behind in the tree it builds, and a stale
    # build/lib would put modules deleted since into the next wheel.
    source = tmp_path_factory.mktemp("source") / "pytest-unlearn"
    skip = (".git", ".venv*", "build", "dist", "__pycache__", "*.egg-info", ".hypothesis")
    shutil.copytree(REPO_ROOT, source, ignore=shutil.ignore_patterns(*skip))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--quiet", "--wheel-dir", str(out), str(source)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    (wheel,) = out.glob("pytest_unlearn-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


def _source_modules() -> set[str]:
    """Every ``.py`` file of the shipped folders, as the path it must have in the wheel."""
    expected = set()
    for folder, package in SHIPPED_FOLDERS.items():
        root = REPO_ROOT / folder
        for path in root.rglob("*.py"):
            if "__pycache__" in path.parts:
                continue
            inside = path.relative_to(root).as_posix()
            expected.add(f"{package.replace('.', '/')}/{inside}")
    return expected


def test_every_source_module_is_in_the_wheel(wheel_names: set[str]) -> None:
    missing = sorted(_source_modules() - wheel_names)
    assert not missing, f"modules missing from the wheel: {missing}"


def test_every_package_data_file_is_in_the_wheel(wheel_names: set[str]) -> None:
    """Data the plugin reads at run time (the measured conclusive sizes, py.typed) ships too."""
    root = REPO_ROOT / "pytest_unlearn"
    data = {
        f"pytest_unlearn/{path.relative_to(root).as_posix()}"
        for path in root.rglob("*")
        if path.is_file() and path.suffix not in (".py", ".pyc") and "__pycache__" not in path.parts
    }
    assert data, "expected package data (conclusive_sizes.json, py.typed)"
    assert data <= wheel_names, f"missing from the wheel: {sorted(data - wheel_names)}"


def test_the_wheel_holds_no_module_outside_the_shipped_folders(wheel_names: set[str]) -> None:
    shipped = {n for n in wheel_names if n.endswith(".py")}
    assert shipped == _source_modules()


def test_the_wheel_registers_the_pytest_plugin_entry_point(wheel_names: set[str]) -> None:
    assert any(n.endswith(".dist-info/entry_points.txt") for n in wheel_names)


def test_the_discovery_finds_a_new_subpackage_without_a_list_to_update(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Adding a subpackage needs no edit anywhere: setup.py finds it (no hand-kept list)."""
    for folder in (*SHIPPED_FOLDERS, "pytest_unlearn/brand_new", "fixtures/extra"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "__init__.py").write_text("")
    spec = importlib.util.spec_from_file_location("setup_discovery", REPO_ROOT / "setup.py")
    assert spec is not None and spec.loader is not None
    setup_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(setup_module)
    monkeypatch.chdir(tmp_path)
    packages, package_dir = setup_module.discover()
    assert "pytest_unlearn.brand_new" in packages
    assert "pytest_unlearn.fixtures.extra" in packages
    assert package_dir["pytest_unlearn.fixtures.extra"] == "fixtures/extra"
