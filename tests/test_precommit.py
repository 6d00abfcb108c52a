"""The pre-commit hooks of .pre-commit-hooks.yaml: their definitions load as pre-commit loads them, each
hook's entry does the right thing on a good and a bad spec, and pre-commit itself runs them (it builds
the hooks' Python environment from a copy of this repository, as a user's pre-commit would)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pre_commit.clientlib import load_manifest

from archspec.cli import COMMANDS, parser

ROOT = Path(__file__).resolve().parent.parent
HOOKS = {h["id"]: h for h in load_manifest(str(ROOT / ".pre-commit-hooks.yaml"))}  # pre-commit's own validation

GOOD = "network good() {\n    input [1, 8, 8]\n    conv2d(4, kernel=3)\n}\n"
UGLY = "network ugly() {\n  input [1, 8, 8]\n  conv2d(4,kernel=3)\n}\n"  # checks, but not in the layout
BAD = "network bad() {\n    input [1, 8, 8]\n    conv2d(4, kernal=3)\n}\n"  # formatted, but E203
BROKEN = "network broken( {\n"  # does not parse


def test_the_hooks_are_defined_as_asked():
    assert set(HOOKS) == {"archspec-check", "archspec-fmt"}
    parser()  # registers every command, the tools' too
    commands = set(COMMANDS)
    for hook in HOOKS.values():
        assert hook["language"] == "python"
        argv = shlex.split(hook["entry"])
        assert argv[0] == "archspec" and argv[1] in commands
        files = re.compile(hook["files"])
        assert files.search("specs/torchvision/resnet.arch") and files.search("a.arch")
        assert not files.search("a.arch.bak") and not files.search("archspec/cli.py")
    assert shlex.split(HOOKS["archspec-check"]["entry"])[1] == "check"
    assert shlex.split(HOOKS["archspec-fmt"]["entry"])[1] == "fmt"


def _specs(folder: Path) -> None:
    for name, text in (("good", GOOD), ("ugly", UGLY), ("bad", BAD), ("broken", BROKEN)):
        (folder / f"{name}.arch").write_text(text)


def _entry(hook: str, folder: Path, *files: str) -> subprocess.CompletedProcess:
    """The hook's entry with the file names appended, run in the project's folder, as pre-commit runs it."""
    argv = shlex.split(HOOKS[hook]["entry"])
    exe = shutil.which(argv[0])
    if exe is None:
        pytest.fail(f"`{argv[0]}` is not on PATH: pip install -e .")
    return subprocess.run([exe, *argv[1:], *files], cwd=folder, capture_output=True, text=True, timeout=120)


def test_each_entry_on_good_and_bad_specs(tmp_path):
    _specs(tmp_path)
    assert _entry("archspec-check", tmp_path, "good.arch", "ugly.arch").returncode == 0
    bad = _entry("archspec-check", tmp_path, "good.arch", "bad.arch")
    assert bad.returncode == 1 and "bad.arch:3:15: error[E203]" in bad.stderr
    broken = _entry("archspec-check", tmp_path, "broken.arch")
    assert broken.returncode == 1 and "broken.arch:1:17: error[E101]" in broken.stderr

    fmt = _entry("archspec-fmt", tmp_path, "good.arch", "bad.arch")
    assert fmt.returncode == 0 and (tmp_path / "good.arch").read_text() == GOOD  # nothing to do: the hook passes
    fmt = _entry("archspec-fmt", tmp_path, "ugly.arch")  # pre-commit fails a hook that changed a file
    assert fmt.returncode == 0 and (tmp_path / "ugly.arch").read_text() == GOOD.replace("good", "ugly")
    fmt = _entry("archspec-fmt", tmp_path, "broken.arch")
    assert fmt.returncode == 1 and (tmp_path / "broken.arch").read_text() == BROKEN


def _git(folder: Path, *argv: str) -> None:
    subprocess.run(["git", "-c", "user.email=ci@example.com", "-c", "user.name=ci", *argv], cwd=folder, check=True,
                   capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def hook_repo(tmp_path_factory) -> Path:
    """This repository as a hook repository: what a user's `repo:` would fetch (the package and its hooks)."""
    repo = tmp_path_factory.mktemp("hooks")
    for name in ("pyproject.toml", "README.md", ".pre-commit-hooks.yaml"):
        shutil.copy(ROOT / name, repo / name)
    shutil.copytree(ROOT / "archspec", repo / "archspec", ignore=shutil.ignore_patterns("__pycache__", "*.cache"))
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "hooks")
    return repo


def _pre_commit(project: Path, repo: Path, hook: str, *files: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PRE_COMMIT_HOME": str(project.parent / "pre-commit-home")}
    return subprocess.run([sys.executable, "-m", "pre_commit", "try-repo", str(repo), hook, "--files", *files],
                          cwd=project, capture_output=True, text=True, env=env, timeout=600)


def test_pre_commit_runs_the_hooks(tmp_path, hook_repo):
    project = tmp_path / "project"
    project.mkdir()
    _specs(project)
    _git(project, "init", "-q")
    _git(project, "add", "-A")
    run = _pre_commit(project, hook_repo, "archspec-check", "good.arch", "ugly.arch")
    assert run.returncode == 0 and re.search(r"archspec check\.+Passed", run.stdout), run.stdout + run.stderr
    run = _pre_commit(project, hook_repo, "archspec-check", "good.arch", "bad.arch")
    assert run.returncode == 1 and re.search(r"archspec check\.+Failed", run.stdout) and "E203" in run.stdout
    run = _pre_commit(project, hook_repo, "archspec-fmt", "good.arch")
    assert run.returncode == 0 and re.search(r"archspec fmt\.+Passed", run.stdout)
    run = _pre_commit(project, hook_repo, "archspec-fmt", "ugly.arch")
    assert run.returncode == 1 and "files were modified by this hook" in run.stdout
    assert (project / "ugly.arch").read_text() == GOOD.replace("good", "ugly")


def test_the_examples_in_docs_ci_use_real_hooks_and_commands():
    import yaml

    text = (ROOT / "docs" / "ci.md").read_text()
    blocks = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", text, re.S)]
    workflow, step, config = blocks
    assert [h["id"] for r in config["repos"] for h in r["hooks"]] == ["archspec-fmt", "archspec-check"]
    runs = [s["run"] for s in workflow["jobs"]["check"]["steps"] if "run" in s] + [step[0]["run"]]
    commands = [line.strip() for run in runs for line in run.splitlines() if line.strip().startswith("archspec ")]
    assert len(commands) == 4
    for command in commands:
        argv = shlex.split(command.split(" > ")[0].split(" || ")[0])[1:]
        args = parser().parse_args(argv)  # argparse exits (SystemExit) on an option that does not exist
        assert args.command in ("check", "fmt", "diff")
    assert {"github", "sarif"} <= {a for c in commands for a in shlex.split(c) if a in ("github", "sarif")}
