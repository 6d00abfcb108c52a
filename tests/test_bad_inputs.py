"""The bad-input corpus: every file under tests/bad/ says what `archspec` must report for it.

A case's first lines are comments of the form

    # expect: CODE LINE:COL [message substring]     (several lines: all reported at once, in order)
    # expect: CODE FILE:LINE:COL [...]              (the diagnostic sits in another file, e.g. an import;
                                                     `*` for a pseudo-file such as `<--set NAME>`)
    # expect: CODE - [...]                          (about the file as a whole: no line)
    # run: summary {file} --network nope            (the command; `check {file}` by default)
    # exit: 2                                       (the exit status; by default 2 for I/O codes, else 1,
                                                     0 if only warnings and no --werror)

An input that cannot hold a comment (empty, binary, not UTF-8) has them in a sidecar NAME.expect.
Files under tests/bad/lib/ are helpers that cases import, not cases of their own.

Each case runs through the real CLI in-process (a few through `python -m archspec` as well) and
is checked in every output format: the text report (`file:line:col: error[E###]: message`, the
source line and a caret under the spot), `--format json` and `--format github`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from archspec.cli import main
from archspec.parse import MAX_BYTES

ROOT = Path(__file__).resolve().parent.parent
BAD = ROOT / "tests" / "bad"
CASES = sorted(BAD.glob("*.arch"))
DOCS = ROOT / "docs" / "errors.md"
IO_CODES = {"E001", "E002", "E003", "E004", "E005", "E006", "E212"}
# Run as a separate process too: the installed entry point, start to finish, one of each kind.
SUBPROCESS = {"syntax_expected", "binary", "werror", "unknown_network"}

HEADER = re.compile(r"^(?P<file>.*?)(?::(?P<line>\d+):(?P<column>\d+))?: (?P<severity>error|warning)"
                    r"\[(?P<code>[EW]\d{3})\]: (?P<message>.*)$")
GITHUB = re.compile(r"^::(?P<kind>error|warning) file=(?P<file>[^,:]+)(?:,line=(?P<line>\d+),col=(?P<column>\d+)"
                    r"(?:,endLine=\d+,endColumn=\d+)?)?,title=(?P<code>[EW]\d{3})::(?P<message>[^\r\n]*)$")
EXPECT = re.compile(r"^#?\s*expect:\s*(?P<code>[EW]\d{3})\s+(?P<where>\S+)(?:\s+(?P<message>.*))?$")


@dataclass
class Expected:
    code: str
    file: Path | str | None  # None: the case's own file; "*": any file
    line: int  # 0: about the file as a whole
    column: int
    message: str


@dataclass
class Case:
    path: Path
    expected: list[Expected]
    command: list[str] = field(default_factory=lambda: ["check", "{file}"])
    exit: int = 1

    def argv(self, file: str) -> list[str]:
        return [file if a == "{file}" else a for a in self.command]

    def severity(self, code: str) -> str:
        return "warning" if code.startswith("W") and "--werror" not in self.command else "error"


def load_case(path: Path) -> Case:
    sidecar = path.with_suffix(".expect")
    text = (sidecar if sidecar.exists() else path).read_text(encoding="utf-8")
    case = Case(path, [])
    exit_status = None
    for line in text.splitlines():
        if not line.startswith("#") and not line.startswith("expect:"):
            break
        if m := EXPECT.match(line):
            case.expected.append(_expected(m, path))
        elif line.startswith("# run:"):
            case.command = line.removeprefix("# run:").split()
        elif line.startswith("# exit:"):
            exit_status = int(line.removeprefix("# exit:"))
    assert case.expected, f"{path.name}: no `# expect:` line at the top (or in {sidecar.name})"
    codes = {e.code for e in case.expected}
    case.exit = exit_status if exit_status is not None else (
        2 if codes & IO_CODES else 1 if any(case.severity(c) == "error" for c in codes) else 0)
    return case


def _expected(m: re.Match, path: Path) -> Expected:
    where, file = m["where"], None
    line = column = 0
    if where != "-":
        parts = where.split(":")
        if len(parts) == 3:
            file = "*" if parts[0] == "*" else (path.parent / parts[0]).resolve()
        line, column = int(parts[-2]), int(parts[-1])
    return Expected(m["code"], file, line, column, (m["message"] or "").strip())


@pytest.fixture(autouse=True)
def _tracebacks(monkeypatch):
    """A bug in archspec raises here, with its traceback, instead of exiting 3 with one line."""
    monkeypatch.setenv("ARCHSPEC_TRACEBACK", "1")


def _ids(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


def _run(capsys, argv: list[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _same_file(reported: str, case: Case, want: Expected) -> bool:
    target = want.file or case.path.resolve()
    return target == "*" or (ROOT / reported).resolve() == target


def _matches(case: Case, got: list[dict]) -> None:
    """The diagnostics reported are exactly the expected ones, in the same (sorted) order."""
    shown = "\n".join(f"  {d['code']} {d['line']}:{d['column']} {d['message']}" for d in got)
    assert len(got) == len(case.expected), f"expected {len(case.expected)} diagnostics, got:\n{shown}"
    for d, want in zip(got, case.expected):
        assert d["code"] == want.code, shown
        assert d["severity"] == case.severity(want.code), shown
        assert (int(d["line"] or 0), int(d["column"] or 0)) == (want.line, want.column), shown
        assert want.message in d["message"], shown
        assert _same_file(d["file"], case, want), f"{d['file']} is not {want.file or case.path}"


def parse_text_report(stderr: str) -> list[dict]:
    """The diagnostics of a text report, each with the source line and caret line shown under it."""
    lines = stderr.splitlines()
    found = []
    for i, line in enumerate(lines):
        m = HEADER.match(line)
        if m:
            d = m.groupdict()
            d["source"] = lines[i + 1] if i + 1 < len(lines) and " | " in lines[i + 1] else None
            d["caret"] = lines[i + 2] if d["source"] is not None and i + 2 < len(lines) else None
            found.append(d)
    return found


def _readable(path: Path) -> bool:
    """Whether archspec can quote the file's lines: UTF-8 text, not empty, not binary."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    return bool(text.strip()) and "\0" not in text


def _check_text(case: Case, code: int, out: str, err: str) -> None:
    assert "Traceback" not in out + err
    got = parse_text_report(err)
    _matches(case, got)
    for d in got:
        where = (ROOT / d["file"]).resolve()
        if not d["line"] or not where.is_file() or not _readable(where):
            continue
        # The source line (a long one cut around the spot), then carets under the reported column.
        assert d["source"] is not None, f"no source line under {d['file']}:{d['line']}"
        assert d["caret"] is not None and d["caret"].strip() and set(d["caret"].strip()) == {"^"}, d
        gutter = d["source"].index(" | ") + 3
        shown, at = d["source"][gutter:], d["caret"].index("^") - gutter
        line = where.read_text(encoding="utf-8").splitlines()[int(d["line"]) - 1].expandtabs(1)
        column = int(d["column"]) - 1
        if shown == line:
            assert at == column, d
        else:
            assert "..." in (shown[:3], shown[-3:]) and shown[at:at + 1] == line[column:column + 1], d
    assert code == case.exit, f"exit status {code}, expected {case.exit}\n{err}"


@pytest.mark.parametrize("path", CASES, ids=_ids(CASES))
def test_bad_input(path: Path, capsys):
    case = load_case(path)
    code, out, err = _run(capsys, case.argv(str(path.relative_to(ROOT))))
    _check_text(case, code, out, err)


@pytest.mark.parametrize("path", [p for p in CASES if p.stem in SUBPROCESS],
                         ids=_ids([p for p in CASES if p.stem in SUBPROCESS]))
def test_bad_input_as_a_process(path: Path):
    case = load_case(path)
    proc = subprocess.run([sys.executable, "-m", "archspec", *case.argv(str(path.relative_to(ROOT)))],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    _check_text(case, proc.returncode, proc.stdout, proc.stderr)


def _checks(paths: list[Path]) -> list[Path]:
    return [p for p in paths if load_case(p).command[0] == "check"]


@pytest.mark.parametrize("path", _checks(CASES), ids=_ids(_checks(CASES)))
def test_bad_input_as_json(path: Path, capsys):
    case = load_case(path)
    code, out, err = _run(capsys, case.argv(str(path.relative_to(ROOT))) + ["--format", "json"])
    assert err == "" and "Traceback" not in out
    report = json.loads(out)
    _matches(case, report["diagnostics"])
    assert report["exit_code"] == code == case.exit
    assert report["errors"] == sum(d["severity"] == "error" for d in report["diagnostics"])


@pytest.mark.parametrize("path", _checks(CASES), ids=_ids(_checks(CASES)))
def test_bad_input_for_github(path: Path, capsys):
    case = load_case(path)
    code, out, err = _run(capsys, case.argv(str(path.relative_to(ROOT))) + ["--format", "github"])
    assert "Traceback" not in out + err
    got = [m.groupdict() for m in map(GITHUB.match, out.splitlines()) if m]
    _matches(case, [{**d, "severity": d["kind"], "message": d["message"].replace("%0A", "\n").replace("%25", "%")}
                    for d in got])
    assert code == case.exit


def test_github_annotations_escape_what_would_break_them(capsys, tmp_path):
    odd = tmp_path / "a,b:c%d.arch"
    odd.write_text("network n() {\n    input [1, 4, 4]\n    conv2d(2, kernel=5)\n}\n")
    code, out, err = _run(capsys, ["check", str(odd), "--format", "github"])
    assert code == 1 and len(out.splitlines()) == 1
    m = GITHUB.match(out.strip())
    assert m and m["code"] == "E401" and (m["line"], m["column"]) == ("3", "5")
    assert m["file"].replace("%2C", ",").replace("%3A", ":").replace("%25", "%") == str(odd)
    assert ",endLine=3,endColumn=24," in out and "%0Ainput shape [1, 4, 4]" in m["message"]


# ---- I/O errors that no file in the corpus can stand for ---------------------------------

def test_missing_file(capsys, tmp_path):
    code, out, err = _run(capsys, ["check", str(tmp_path / "nope.arch")])
    assert (code, err.strip()) == (2, f"{tmp_path / 'nope.arch'}: error[E001]: no such file")


def test_directory(capsys, tmp_path):
    code, out, err = _run(capsys, ["check", str(tmp_path)])
    assert code == 2 and "error[E006]" in err and "is a directory" in err and len(err.splitlines()) == 1


def test_huge_file(capsys, tmp_path):
    huge = tmp_path / "huge.arch"
    huge.write_text("# " + "x" * MAX_BYTES + "\n")
    code, out, err = _run(capsys, ["check", str(huge)])
    assert code == 2 and "error[E004]: file is too large" in err and len(err.splitlines()) == 1


def test_unreadable_file(capsys, tmp_path, monkeypatch):
    locked = tmp_path / "locked.arch"
    locked.write_text("network n() { input [1] relu }\n")
    locked.chmod(0)
    try:
        if os.access(locked, os.R_OK):
            # root reads any file whatever its mode (CI runs as root): make the read fail as the
            # kernel would for another user, so the error path is still exercised.
            real = os.open

            def denied(path, *args, **kwargs):
                if str(path) == str(locked):
                    raise PermissionError(13, "Permission denied", str(path))
                return real(path, *args, **kwargs)
            monkeypatch.setattr(os, "open", denied)
        code, out, err = _run(capsys, ["check", str(locked)])
    finally:
        locked.chmod(0o644)
    assert code == 2 and "error[E001]: cannot read file: Permission denied" in err
    assert len(err.splitlines()) == 1 and out == ""


def test_every_file_is_checked_and_the_worst_status_wins(capsys):
    good, bad, missing = "specs/lenet.arch", "tests/bad/output_zero.arch", "tests/bad/no_such.arch"
    code, out, err = _run(capsys, ["check", good, bad])
    assert code == 1 and "lenet: ok" in out and "error[E401]" in err
    code, out, err = _run(capsys, ["check", good, bad, missing])
    assert code == 2 and "lenet: ok" in out and "error[E401]" in err and "error[E001]" in err


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["check"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["check", "specs/lenet.arch", "--input", "0,1"])
    assert exc.value.code == 2


# ---- the corpus and the docs cover every code ----------------------------------------------

# The static front end: what `archspec check` runs. Codegen, export and bench errors need torch
# or onnx and a built module; their own tests make them.
FRONT_END = ["parse.py", "files.py", "loader.py", "evaluate.py", "layers.py", "shapes.py", "api.py", "cli.py",
             "passes"]


def _codes_in(paths: list[Path]) -> set[str]:
    files = [f for p in paths for f in ([p] if p.is_file() else sorted(p.rglob("*.py")))]
    return {c for f in files for c in re.findall(r'"([EW]\d{3})"', f.read_text(encoding="utf-8"))}


def test_the_corpus_covers_every_code_of_the_front_end():
    covered = {e.code for p in CASES for e in load_case(p).expected}
    covered |= {"E001", "E004", "E006"}  # made by the tests above: missing file, huge file, directory
    covered |= {"E007", "E008"}  # made by tests/test_hostile.py: a FIFO or device, 2,001 imported files
    front = {c for c in _codes_in([ROOT / "archspec" / f for f in FRONT_END]) if c[1] in "012345" or c[0] == "W"}
    assert front - covered == set()


def test_every_code_is_exercised_by_some_test():
    """The back end's codes (E6xx compile, E7xx train, E8xx bench) are made by their own tests."""
    tests = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "tests").glob("test_*.py"))
    covered = {e.code for p in CASES for e in load_case(p).expected} | set(re.findall(r"[EW]\d{3}", tests))
    assert _codes_in([ROOT / "archspec"]) - covered == set()


def test_every_code_is_documented():
    documented = set(re.findall(r"^#+ .*?\b([EW]\d{3})\b", DOCS.read_text(encoding="utf-8"), re.M))
    used = _codes_in([ROOT / "archspec"]) | {e.code for p in CASES for e in load_case(p).expected}
    assert used - documented == set(), "add these codes to docs/errors.md"


def test_werror_fails_the_network_it_promotes_and_says_so(capsys):
    warned, clean = "tests/bad/linear_on_4d.arch", "specs/lenet.arch"
    code, out, err = _run(capsys, ["check", warned, clean])
    assert code == 0 and "n: ok" in out and "warning[W601]" in err
    code, out, err = _run(capsys, ["check", "--werror", warned, clean])
    assert code == 1 and "error[W601]" in err and err.count("W601") == 1
    assert f"{warned}: n: failed, 1 warning treated as errors (--werror)" in out
    assert "n: ok" not in out and "lenet: ok" in out


def test_a_flood_of_errors_is_cut_short_in_text_but_whole_in_json(capsys, tmp_path):
    flood = tmp_path / "flood.arch"
    flood.write_text("network n() {\n    input [3, 8, 8]\n" + "    foo\n" * 150 + "}\n")
    code, out, err = _run(capsys, ["check", str(flood)])
    assert code == 1 and err.count("error[E201]") == 100
    assert err.rstrip().endswith("archspec: 50 more diagnostics not shown (--format json lists them all)")
    code, out, err = _run(capsys, ["check", str(flood), "--format", "json"])
    assert len(json.loads(out)["diagnostics"]) == 150
