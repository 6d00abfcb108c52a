"""Hostile inputs that cannot live in tests/bad/ as files: devices, FIFOs, link loops, long import
chains and wide import fans, made here in a temporary folder. Each must end quickly with its
code, its position and exit status 2; none may hang, read without end or be an internal error.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from archspec.cli import main

NET = "network n() { input [1, 8, 8] relu }\n"
QUICK = 10.0  # seconds; each case below takes well under one


def _check(capsys, *argv: str) -> tuple[int, str, float]:
    start = time.perf_counter()
    code = main(["check", *argv])
    took = time.perf_counter() - start
    out, err = capsys.readouterr()
    return code, out + err, took


def _importer(folder: Path, target: str) -> Path:
    path = folder / "main.arch"
    path.write_text(f'import "{target}"\n{NET}')
    return path


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_a_fifo_is_refused_without_blocking(tmp_path, capsys):
    os.mkfifo(tmp_path / "pipe.arch")  # opening it for reading would wait for a writer forever
    code, text, took = _check(capsys, str(tmp_path / "pipe.arch"))
    assert code == 2 and "error[E007]" in text and "is a FIFO" in text and took < QUICK
    code, text, took = _check(capsys, str(_importer(tmp_path, "pipe.arch")))
    assert code == 2 and "main.arch:1:1: error[E007]: cannot import `pipe.arch`" in text and took < QUICK


def test_a_device_is_refused_before_it_is_read(tmp_path, capsys):
    (tmp_path / "zero.arch").symlink_to("/dev/zero")  # reports size 0 and never ends
    code, text, took = _check(capsys, str(tmp_path / "zero.arch"))
    assert code == 2 and "error[E007]" in text and "is a device" in text and took < QUICK
    # As an import it is outside the spec's folder (the link resolves to /dev); allowed, a device still.
    main_spec = _importer(tmp_path, "zero.arch")
    code, text, _ = _check(capsys, str(main_spec))
    assert code == 2 and "error[E216]" in text
    code, text, took = _check(capsys, str(main_spec), "--allow-import-outside")
    assert code == 2 and "main.arch:1:1: error[E007]: cannot import `zero.arch`" in text and took < QUICK


def test_a_loop_of_links_is_an_error_not_a_crash(tmp_path, capsys):
    (tmp_path / "a.arch").symlink_to("b.arch")
    (tmp_path / "b.arch").symlink_to("a.arch")
    code, text, _ = _check(capsys, str(tmp_path / "a.arch"))
    assert code == 2 and "error[E001]: cannot read file: a loop of symbolic links" in text
    code, text, _ = _check(capsys, str(_importer(tmp_path, "a.arch")))
    assert code == 2 and "main.arch:1:1: error[E001]: cannot import `a.arch`" in text


def test_a_long_chain_of_imports_is_refused_at_the_import_that_goes_too_deep(tmp_path, capsys):
    for i in range(1500):
        nxt = f'import "f{i + 1}.arch"\n' if i < 1499 else ""
        (tmp_path / f"f{i}.arch").write_text(f"{nxt}block b{i}() {{ relu }}\n")
    code, text, took = _check(capsys, str(_importer(tmp_path, "f0.arch")))
    assert code == 2 and took < QUICK
    assert "f62.arch:1:1: error[E005]: imports are nested too deeply (a chain of more than 64 files)" in text


def test_thousands_of_imports_load_in_linear_time(tmp_path, capsys):
    """4,000 imports took over two minutes when each one compared its path with every file loaded."""
    def fan(n: int) -> float:
        folder = tmp_path / str(n)
        folder.mkdir()
        for i in range(n):
            (folder / f"f{i}.arch").write_text(f"block b{i}() {{ relu }}\n")
        spec = folder / "main.arch"
        spec.write_text("".join(f'import "f{i}.arch"\n' for i in range(n)) + NET)
        code, text, took = _check(capsys, str(spec))
        assert code == 0, text
        return took

    small, large = fan(250), fan(1900)
    assert large < QUICK
    assert large < 7.6 * small + 0.5, f"{small:.2f}s for 250 imports but {large:.2f}s for 1,900 (7.6x as many)"


def test_too_many_imported_files_are_refused(tmp_path, capsys):
    for i in range(2001):
        (tmp_path / f"f{i}.arch").write_text(f"block b{i}() {{ relu }}\n")
    spec = tmp_path / "main.arch"
    spec.write_text("".join(f'import "f{i}.arch"\n' for i in range(2001)) + NET)
    code, text, took = _check(capsys, str(spec))
    assert code == 2 and "main.arch:2000:1: error[E008]" in text and took < QUICK


def test_an_import_through_a_link_out_of_the_folder_is_refused(tmp_path, capsys):
    """A spec repository can hold a link (`lib -> /etc`): imports are confined by their real path."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.arch").write_text("password: hunter2\n")
    project = tmp_path / "project"
    project.mkdir()
    (project / "lib").symlink_to(outside)
    code, text, _ = _check(capsys, str(_importer(project, "lib/secret.arch")))
    assert code == 2 and "error[E216]" in text and "hunter2" not in text


# ---- CI can always parse --format json ------------------------------------------------------------

@pytest.mark.parametrize("argv, code, want", [
    (["summary", "tests/bad/output_zero.arch", "--format", "json"], 1, "E401"),
    (["summary", "tests/bad/no_such_file.arch", "--format", "json"], 2, "E001"),
    (["summary", "tests/bad/werror.arch", "--format", "json", "--werror"], 1, "W601"),
    (["bench", "tests/bad/output_zero.arch", "--format", "json"], 1, "E401"),
    (["bench", "specs/lenet.arch", "--format", "json", "-o", "."], 2, "E604"),
])
def test_json_output_on_errors_is_json(capsys, argv, code, want):
    import json

    assert main(argv) == code
    out = capsys.readouterr().out
    report = json.loads(out)
    assert report["exit_code"] == code and [d["code"] for d in report["diagnostics"]] == [want]


def test_an_internal_error_under_json_is_json_too(capsys, monkeypatch):
    import json

    import archspec.summary

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")
    monkeypatch.setattr(archspec.summary, "as_dict", broken)
    assert main(["summary", "specs/lenet.arch", "--format", "json"]) == 3
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["exit_code"] == 3 and report["diagnostics"][0]["code"] == "E900"
    assert "internal error: RuntimeError: a bug" in report["diagnostics"][0]["message"]
    assert "this is a bug in archspec" in captured.err
