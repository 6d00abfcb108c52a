"""The project's own code passes its linter, with the rules pinned in pyproject.toml."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_the_code_passes_ruff():
    pytest.importorskip("ruff", reason="ruff comes with the dev extra")
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "archspec", "tests", "benchmarks",
                           "examples"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
