"""Shared test fixtures: the repository root as working folder, and golden files.

Every text output has a golden file under tests/golden/, paired with its input by name
(golden/summary/lenet.txt and lenet.json are the outputs for specs/lenet.arch).
`pytest --update-golden` rewrites the goldens from the current outputs; read the diff
before committing it.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true", default=False,
                     help="rewrite the golden files under tests/golden from the current outputs")


@pytest.fixture(scope="session", autouse=True)
def repo_root() -> Iterator[Path]:
    """Run every test from the repository root: specs and their imports are named from there.

    Session-scoped (not monkeypatch) so that hypothesis tests may use it too.
    """
    before = os.getcwd()
    os.chdir(ROOT)
    try:
        yield ROOT
    finally:
        os.chdir(before)


@pytest.fixture
def golden(request: pytest.FixtureRequest) -> Callable[[str, str], None]:
    """`golden(name, text)`: text must equal tests/golden/<name>; --update-golden rewrites it."""
    update = request.config.getoption("--update-golden")

    def check(name: str, text: str) -> None:
        path = GOLDEN / name
        if update:
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                path.write_text(text, encoding="utf-8")
            return
        if not path.exists():
            pytest.fail(f"no golden file tests/golden/{name}; create it with `pytest --update-golden`")
        want = path.read_text(encoding="utf-8")
        if text != want:
            diff = "".join(difflib.unified_diff(want.splitlines(keepends=True), text.splitlines(keepends=True),
                                                f"golden/{name}", "output"))
            pytest.fail(f"output differs from tests/golden/{name} (refresh with `pytest --update-golden`):\n"
                        f"{diff}", pytrace=False)

    return check


@pytest.fixture(scope="session", autouse=True)
def no_check_cache() -> Iterator[None]:
    """`archspec check` keeps what it found (archspec/cache.py); in the tests it is off, so no test is
    answered from what another left. tests/test_cache.py turns it on where it tests it."""
    before = os.environ.get("ARCHSPEC_NO_CACHE")
    os.environ["ARCHSPEC_NO_CACHE"] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("ARCHSPEC_NO_CACHE", None)
        else:
            os.environ["ARCHSPEC_NO_CACHE"] = before
