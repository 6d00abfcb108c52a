"""`archspec check`'s cache (archspec/cache.py): a file that checked clean is answered without parsing
it again, with what the check printed then, until it, a file it imports, the options or archspec
itself change. Each test counts the files actually checked (cli._check_file) and holds every cached
answer to a fresh check's, in text and in JSON.

The rest of the suite runs with the cache off (conftest.py), so that no test is answered from an
entry another test left.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from archspec import cache, cli

ROOT = Path(__file__).resolve().parent.parent
ZOO = sorted(str(p.relative_to(ROOT)) for p in [*ROOT.glob("specs/*.arch"), *ROOT.glob("specs/torchvision/*.arch")])

PARTS = """block stage(c: int) {
    conv2d(c, kernel=3, padding=1)  batchnorm2d  relu
}
"""
NET = """import "parts.arch"

network small(num_classes: int = 10) {
    input [3, 32, 32]
    stage(8)
    maxpool2d(2)
    stage(16)
    adaptive_avgpool2d(1)  flatten
    linear(num_classes)
}
"""


@pytest.fixture
def checked(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The files each run really checked (not answered from the cache), in order."""
    monkeypatch.delenv("ARCHSPEC_NO_CACHE", raising=False)
    monkeypatch.delenv("ARCHSPEC_CACHE_DIR", raising=False)
    seen: list[str] = []
    real = cli._check_file

    def spy(args, path, *rest):
        seen.append(path)
        return real(args, path, *rest)

    monkeypatch.setattr(cli, "_check_file", spy)
    return seen


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = cli.main(["check", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    (tmp_path / "parts.arch").write_text(PARTS, encoding="utf-8")
    path = tmp_path / "small.arch"
    path.write_text(NET, encoding="utf-8")
    return path


def test_a_clean_file_is_answered_from_the_cache(spec: Path, tmp_path: Path, checked: list[str],
                                                 capsys: pytest.CaptureFixture) -> None:
    where = str(tmp_path / "cache")
    first = run(capsys, "--cache-dir", where, str(spec))
    assert first[0] == 0 and "small: ok" in first[1]
    second = run(capsys, "--cache-dir", where, str(spec))
    assert second == first
    assert checked == [str(spec)], "the second run was answered from the cache"
    as_json = run(capsys, "--cache-dir", where, "--format", "json", str(spec))
    fresh = run(capsys, "--no-cache", "--format", "json", str(spec))
    assert as_json == fresh and json.loads(as_json[1])["files"][0]["networks"][0]["name"] == "small"
    assert checked == [str(spec), str(spec)], "--no-cache checks afresh"
    marks = sorted(p.name for p in Path(where).iterdir() if not p.name.endswith(".json"))
    assert marks == [".gitignore", "CACHEDIR.TAG"]
    assert (Path(where) / ".gitignore").read_text().splitlines()[-1] == "*"


def test_a_cached_answer_imports_neither_the_parser_nor_the_ir(spec: Path, tmp_path: Path) -> None:
    env = {**os.environ, "ARCHSPEC_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("ARCHSPEC_NO_CACHE", None)
    probe = ("import sys; from archspec.cli import main; code = main(['check', sys.argv[1]]); print(code, "
             "sorted(m for m in ('archspec.ir', 'archspec.parse', 'lark', 'pydantic') if m in sys.modules))")
    runs = [subprocess.run([sys.executable, "-c", probe, str(spec)], capture_output=True, text=True, env=env,
                           cwd=tmp_path, timeout=60) for _ in range(2)]
    assert runs[0].stdout.splitlines()[-1] == "0 ['archspec.ir', 'archspec.parse', 'lark', 'pydantic']"
    assert runs[1].stdout.splitlines()[-1] == "0 []"
    assert runs[0].stdout.splitlines()[0] == runs[1].stdout.splitlines()[0]


def test_an_edit_to_the_file_or_to_an_import_is_checked_afresh(spec: Path, tmp_path: Path, checked: list[str],
                                                               capsys: pytest.CaptureFixture) -> None:
    where = str(tmp_path / "cache")
    before = run(capsys, "--cache-dir", where, str(spec))
    (tmp_path / "parts.arch").write_text(PARTS.replace("kernel=3, padding=1", "kernel=5, padding=2"))
    after_import = run(capsys, "--cache-dir", where, str(spec))
    assert after_import != before and after_import == run(capsys, "--no-cache", str(spec))
    spec.write_text(NET.replace("stage(16)", "stage(24)"))
    after_edit = run(capsys, "--cache-dir", where, str(spec))
    assert after_edit != after_import and after_edit == run(capsys, "--no-cache", str(spec))
    assert run(capsys, "--cache-dir", where, str(spec)) == after_edit
    assert len(checked) == 5, "three changes (first run, import, file) and two --no-cache runs; the last was cached"


def test_options_are_part_of_what_is_kept(spec: Path, tmp_path: Path, checked: list[str],
                                          capsys: pytest.CaptureFixture) -> None:
    where = str(tmp_path / "cache")
    variants = [(), ("--set", "num_classes=5"), ("--input", "3,64,48"), ("--target", "onnx")]
    first = [run(capsys, "--cache-dir", where, *v, str(spec)) for v in variants]
    assert len({r[1] for r in first[:3]}) == 3, "each option changes what is printed"
    again = [run(capsys, "--cache-dir", where, *v, str(spec)) for v in variants]
    assert again == first and len(checked) == len(variants)
    moved = tmp_path / "elsewhere"  # the lines name the file as given: another path is another entry
    moved.mkdir()
    for name in ("small.arch", "parts.arch"):
        (moved / name).write_text((tmp_path / name).read_text())
    other = run(capsys, "--cache-dir", where, str(moved / "small.arch"))
    assert str(moved / "small.arch") in other[1] and len(checked) == len(variants) + 1


@pytest.mark.parametrize("text, code", [
    (NET.replace("stage(16)", "stage(16, wrong=1)"), 1),  # an error
    (NET.replace("linear(num_classes)", "linear(num_classes)\n    assert params < 10"), 1),  # a failed assert
])
def test_a_file_with_diagnostics_is_never_kept(spec: Path, tmp_path: Path, checked: list[str], text: str, code: int,
                                               capsys: pytest.CaptureFixture) -> None:
    where = tmp_path / "cache"
    spec.write_text(text)
    first = run(capsys, "--cache-dir", str(where), str(spec))
    assert first[0] == code and "error[E" in first[2]
    assert run(capsys, "--cache-dir", str(where), str(spec)) == first
    assert len(checked) == 2
    assert not where.exists() or not list(where.glob("*.json"))


def test_a_warning_is_reported_every_time(tmp_path: Path, checked: list[str], capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "warn.arch"
    path.write_text("network warn() {\n    input [3, 8, 8]\n    linear(4)\n    flatten  linear(2)\n}\n")  # W601
    first = run(capsys, "--cache-dir", str(tmp_path / "cache"), str(path))
    if "warning[" not in first[2]:
        pytest.fail(f"the spec was meant to warn: {first}")
    assert run(capsys, "--cache-dir", str(tmp_path / "cache"), str(path)) == first and len(checked) == 2


def test_another_archspec_does_not_read_this_ones_entries(spec: Path, tmp_path: Path, checked: list[str],
                                                          capsys: pytest.CaptureFixture,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    where = str(tmp_path / "cache")
    first = run(capsys, "--cache-dir", where, str(spec))
    monkeypatch.setattr(cache, "_fingerprint", "another archspec")
    assert run(capsys, "--cache-dir", where, str(spec)) == first
    assert len(checked) == 2


def test_a_damaged_entry_is_checked_afresh_and_replaced(spec: Path, tmp_path: Path, checked: list[str],
                                                        capsys: pytest.CaptureFixture) -> None:
    where = tmp_path / "cache"
    first = run(capsys, "--cache-dir", str(where), str(spec))
    (entry,) = where.glob("*.json")
    for damage in ("{not json", json.dumps({"archspec": cache.fingerprint(), "file": str(spec), "read": 3}), ""):
        entry.write_text(damage)
        assert run(capsys, "--cache-dir", str(where), str(spec)) == first
        assert json.loads(entry.read_text())["lines"] == first[1].splitlines()
    assert len(checked) == 4


def test_a_cache_folder_that_cannot_be_written_is_passed_over(spec: Path, tmp_path: Path, checked: list[str],
                                                              capsys: pytest.CaptureFixture) -> None:
    blocked = tmp_path / "a file"
    blocked.write_text("not a folder")
    first = run(capsys, "--cache-dir", str(blocked / "cache"), str(spec))
    assert first[0] == 0 and "small: ok" in first[1] and first[2] == ""
    assert blocked.read_text() == "not a folder"


def test_no_cache_by_option_or_environment_keeps_nothing(spec: Path, tmp_path: Path, checked: list[str],
                                                         capsys: pytest.CaptureFixture,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    where = tmp_path / "cache"
    run(capsys, "--no-cache", "--cache-dir", str(where), str(spec))
    monkeypatch.setenv("ARCHSPEC_NO_CACHE", "1")
    run(capsys, "--cache-dir", str(where), str(spec))
    run(capsys, "--cache-dir", str(where), str(spec))
    assert not where.exists() and len(checked) == 3
    monkeypatch.delenv("ARCHSPEC_NO_CACHE")
    monkeypatch.setenv("ARCHSPEC_CACHE_DIR", str(where))
    run(capsys, str(spec))
    assert len(list(where.glob("*.json"))) == 1


def test_every_zoo_file_answers_from_the_cache_as_it_checks(tmp_path: Path, checked: list[str],
                                                           capsys: pytest.CaptureFixture) -> None:
    where = str(tmp_path / "cache")
    for fmt in ("text", "json"):
        fresh = run(capsys, "--no-cache", "--format", fmt, *ZOO)
        assert fresh[0] == 0
        assert run(capsys, "--cache-dir", where, "--format", fmt, *ZOO) == fresh
    assert len(checked) == 3 * len(ZOO), "the JSON run was answered from what the text run kept"


def test_entries_are_written_with_the_umask_and_leave_no_temporary(spec: Path, tmp_path: Path, checked: list[str],
                                                                    capsys: pytest.CaptureFixture) -> None:
    from archspec.files import file_mode

    where = tmp_path / "cache"
    run(capsys, "--cache-dir", str(where), str(spec))
    files = sorted(where.iterdir())
    assert [p.suffix for p in files].count(".json") == 1 and len(files) == 3, files
    for p in files:
        assert p.stat().st_mode & 0o777 == file_mode(), p
