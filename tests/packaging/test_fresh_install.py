"""The built wheel, installed with only the ``operator``, ``ui`` and ``otel`` extras into a fresh
virtual environment, imports every module of ``floxide``, ``floxide_operator`` and ``floxide_worker``.

This is what the image does (``pip install '.[operator,ui,otel]'``); a module that imports a library no
extra declares (as the operator once did with ``jsonschema``) fails here, without Docker. The
import runs outside the repository, so nothing from the source tree can stand in for the install.
"""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("floxide", "floxide_operator", "floxide_worker")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=540, check=False)
    assert result.returncode == 0, f"{' '.join(command)}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def test_the_operator_ui_and_otel_extras_bring_every_import(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    _run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(wheels), str(ROOT)], tmp_path
    )
    (wheel,) = wheels.glob("floxide-*.whl")
    environment = tmp_path / "venv"
    venv.create(environment, with_pip=True)
    python = str(environment / "bin" / "python")
    _run(
        [
            python,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            f"{wheel}[operator,ui,otel]",
        ],
        tmp_path,
    )

    result = subprocess.run(
        [python, "-m", "floxide.importcheck", *PACKAGES],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, (
        f"modules that do not import with only the operator, ui and otel extras:\n{result.stderr}"
    )
    listed = subprocess.run(
        [python, "-c", "import floxide_operator.handlers, floxide_worker.process, sys; print(sys.prefix)"],
        cwd=tmp_path, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert listed.stdout.strip() == str(environment)


def test_importcheck_names_a_module_that_does_not_import(tmp_path: Path) -> None:
    package = tmp_path / "brokenpkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "fine.py").write_text("x = 1\n")
    (package / "needs.py").write_text("import a_library_nobody_declared\n")
    result = subprocess.run(
        [sys.executable, "-m", "floxide.importcheck", "brokenpkg"],
        cwd=tmp_path, capture_output=True, text=True, check=False,
        env={"PYTHONPATH": f"{tmp_path}:{ROOT}", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert result.returncode == 1
    assert "brokenpkg.needs: ModuleNotFoundError" in result.stderr
    assert "brokenpkg.fine" not in result.stderr
