"""`archspec compile` from the command line: bad checkpoints, outputs and options are clean errors
with their exit status and leave the file system as it was; good weights and --no-verify work.

Most cases call `archspec.cli.main` in this process (torch is imported once); a few run the
real command in a subprocess to show that what a user sees has no traceback either.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import numpy as np

import archspec
from archspec.cli import main

ROOT = Path(__file__).resolve().parent.parent
LENET = "specs/lenet.arch"


def cli(capfd: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """(exit status, stdout + stderr) of `archspec ARGS`, run in this process."""
    try:
        code = main(list(args))
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    out, err = capfd.readouterr()
    return code, out + err


def snapshot(root: Path) -> dict[str, tuple]:
    """Every file and folder under root with its size, mtime and content hash."""
    state: dict[str, tuple] = {}
    for path in sorted(root.rglob("*")):
        st = path.stat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
        state[str(path.relative_to(root))] = (path.is_dir(), st.st_size if path.is_file() else 0, st.st_mtime_ns,
                                             digest)
    return state


# ---- checkpoints that must be refused ------------------------------------------------------------


def lenet_state() -> dict[str, torch.Tensor]:
    return archspec.load(LENET).to_torch().state_dict()


def misfit(path: Path) -> None:
    state = lenet_state()
    del state["11.bias"]
    state["0.weight"] = torch.zeros(6, 1, 3, 3)
    torch.save(state, path)


def garbage(path: Path) -> None:
    path.write_bytes(bytes(range(256)) * 8)


class Payload:
    """Unpickling this would create the folder named by MARKER: code run by loading a checkpoint."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def code_running_pickle(path: Path) -> None:
    state: dict = dict(lenet_state())
    state["0.weight"] = Payload(str(path.parent / "MARKER"))
    torch.save(state, path)


def trained_for_another_input(path: Path) -> None:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in lenet_state().items()}, str(path),
              metadata={"archspec.network": "lenet", "archspec.input": "1,32,32"})


CHECKPOINTS: dict[str, tuple[Callable[[Path], None], str, int, str]] = {
    # name: (make it, error code, exit status, a phrase of the message)
    "misfit": (misfit, "E601", 1, "missing (1): 11.bias"),
    "garbage": (garbage, "E602", 1, "not a checkpoint"),
    "pickle": (code_running_pickle, "E603", 1, "could run code"),
    "missing": (lambda path: None, "E001", 2, "no such checkpoint file"),
    "other-input": (trained_for_another_input, "E601", 1, "trained for input 1x32x32, not 1x28x28"),
}


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A folder with an earlier build in out/lenet/ that a failed compile must leave alone."""
    out = tmp_path / "out" / "lenet"
    out.mkdir(parents=True)
    (out / "lenet.py").write_text("# an earlier build\n")
    (out / "notes.txt").write_text("mine\n")
    (tmp_path / "out" / "a-file").write_text("not a folder\n")
    return tmp_path


def assert_clean(code: int, output: str, want_code: int, phrase: str, error: str | None = None) -> None:
    assert code == want_code, output
    assert "Traceback" not in output and "internal error" not in output, output
    assert phrase in output, output
    if error:
        assert f"error[{error}]" in output, output


@pytest.mark.parametrize("case", sorted(CHECKPOINTS))
def test_a_bad_checkpoint_is_refused_and_nothing_is_written(capfd, workspace: Path, case: str) -> None:
    make, error, status, phrase = CHECKPOINTS[case]
    ckpt = workspace / f"{case}.ckpt"
    make(ckpt)
    before = snapshot(workspace)
    code, output = cli(capfd, "compile", LENET, "--weights", str(ckpt), "-o", str(workspace / "out" / "lenet"))
    assert_clean(code, output, status, phrase, error)
    assert snapshot(workspace) == before
    assert not (workspace / "MARKER").exists()


def test_a_failed_compile_creates_no_parent_folders(capfd, workspace: Path) -> None:
    garbage(workspace / "garbage.ckpt")
    before = snapshot(workspace)
    code, output = cli(capfd, "compile", LENET, "--weights", str(workspace / "garbage.ckpt"), "-o",
                       str(workspace / "out" / "new" / "deeper" / "lenet"))
    assert_clean(code, output, 1, "not a checkpoint", "E602")
    assert snapshot(workspace) == before


# ---- options and outputs that must be refused ------------------------------------------------------

USAGE: dict[str, tuple[list[str], str | None, str]] = {
    # name: (arguments after the spec, error code or None for argparse, a phrase of the message)
    "out-is-a-file": (["-o", "{ws}/out/a-file"], "E604", "is a file, not a folder"),
    "unknown-format": (["-f", "python,tflite", "-o", "{ws}/out/lenet"], None, "unknown format 'tflite'"),
    "opset-too-old": (["--opset", "17", "-o", "{ws}/out/lenet"], "E606", "opset 17 is too old"),
    "opset-too-new": (["--opset", str(onnx.defs.onnx_opset_version() + 1), "-o", "{ws}/out/lenet"], "E606",
                      "is newer than this onnx"),
}


@pytest.mark.parametrize("case", sorted(USAGE))
def test_a_usage_error_exits_2_and_writes_nothing(capfd, workspace: Path, case: str) -> None:
    args, error, phrase = USAGE[case]
    before = snapshot(workspace)
    code, output = cli(capfd, "compile", LENET, *(a.format(ws=workspace) for a in args))
    assert_clean(code, output, 2, phrase, error)
    assert snapshot(workspace) == before


@pytest.mark.parametrize("case", ["pickle", "out-is-a-file", "unknown-format", "opset-too-old"])
def test_the_real_command_prints_no_traceback(workspace: Path, case: str) -> None:
    if case in CHECKPOINTS:
        make, error, status, phrase = CHECKPOINTS[case]
        make(workspace / "c.ckpt")
        args = ["--weights", str(workspace / "c.ckpt"), "-o", str(workspace / "out" / "lenet")]
    else:
        args, error, phrase = USAGE[case]
        args, status = [a.format(ws=workspace) for a in args], 2
    before = snapshot(workspace)
    proc = subprocess.run([sys.executable, "-m", "archspec", "compile", LENET, *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False)
    assert_clean(proc.returncode, proc.stdout + proc.stderr, status, phrase, error)
    assert proc.stdout == ""
    assert snapshot(workspace) == before
    assert not (workspace / "MARKER").exists()


# ---- what must work ----------------------------------------------------------------------------------


def test_torchvision_weights_compile_and_onnx_equals_torchvision(capfd, tmp_path: Path) -> None:
    """A plain torch.save(model.state_dict()) of torchvision's resnet18, non-trivial batch norm stats."""
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    tv = torchvision.models.resnet18(weights=None).eval()
    with torch.no_grad():
        for m in tv.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    torch.save(tv.state_dict(), tmp_path / "tv_resnet18.pth")
    out = tmp_path / "out"
    code, output = cli(capfd, "compile", "specs/torchvision/resnet18.arch", "--weights",
                       str(tmp_path / "tv_resnet18.pth"), "-f", "onnx", "-o", str(out))
    assert code == 0, output
    assert "verified: onnx equal" in output
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        want = tv(x).numpy()
    session = ort.InferenceSession(str(out / "resnet18.onnx"), providers=["CPUExecutionProvider"])
    (got,) = session.run(["logits"], {"input": x.numpy()})
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    meta = {p.key: p.value for p in onnx.load(str(out / "resnet18.onnx"), load_external_data=False).metadata_props}
    assert meta["archspec.weights"] == "tv_resnet18.pth"


def test_trained_metadata_is_kept_but_never_replaces_the_compiles_own(capfd, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in lenet_state().items()}, str(tmp_path / "lenet.safetensors"),
              metadata={"archspec.input": "1,28,28", "archspec.overrides": "none", "archspec.classes": '["a"]'})
    code, output = cli(capfd, "compile", LENET, "--weights", str(tmp_path / "lenet.safetensors"), "-f", "onnx",
                       "-o", str(tmp_path / "out"))
    assert code == 0, output
    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "out" / "lenet.onnx")).metadata_props}
    assert meta["archspec.input"] == "[1, 28, 28]" and meta["archspec.overrides"] == "{}"
    assert meta["archspec.classes"] == '["a"]' and meta["archspec.weights"] == "lenet.safetensors"


@pytest.mark.parametrize("verify", [True, False], ids=["verified", "no-verify"])
def test_no_verify_skips_verification(capfd, monkeypatch, tmp_path: Path, verify: bool) -> None:
    """Both variants on the same spec, so that --durations shows what verification costs."""
    import archspec.export.verify as verification

    calls = []
    real = verification.verify
    monkeypatch.setattr(verification, "verify", lambda *a, **k: calls.append(1) or real(*a, **k))
    code, output = cli(capfd, "compile", "specs/resnext.arch", "-o", str(tmp_path / "out"),
                       *([] if verify else ["--no-verify"]))
    assert code == 0, output
    assert sorted(os.listdir(tmp_path / "out")) == ["resnext.onnx", "resnext.pt", "resnext.pt2", "resnext.py"]
    assert ("verified: torchscript, pt2, onnx equal" in output) == verify
    assert calls == ([1] if verify else [])


# ---- resources and arguments that could only fail deep inside torch --------------------------------


def test_a_network_that_does_not_fit_in_memory_is_refused_before_allocating(tmp_path, capsys, monkeypatch):
    import archspec.codegen.build as build

    monkeypatch.setattr(build, "available_memory", lambda: 100_000)  # bytes; LeNet's weights need 246,824
    out = tmp_path / "out"
    assert main(["compile", "specs/lenet.arch", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "error[E610]" in err and "61,706 parameters need" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
    monkeypatch.setattr(build, "available_memory", lambda: 300_000)
    assert main(["compile", "specs/lenet.arch", "-f", "python,torchscript", "-o", str(out)]) == 0


@pytest.mark.parametrize("seed", ["99999999999999999999", "-1", "x"])
def test_a_seed_out_of_range_is_a_usage_error(seed, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["compile", "specs/lenet.arch", "--seed", seed])
    assert exc.value.code == 2 and "--seed" in capsys.readouterr().err


def test_port_weights_without_safetensors_says_what_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "safetensors.torch", None)  # as if the package were not installed
    assert main(["port-weights", "specs/lenet.arch", "--from", "x.pth", "-o", str(tmp_path / "y.safetensors")]) == 2
    err = capsys.readouterr().err
    assert "error[E609]" in err and "pip install 'archspec[torch]'" in err and not list(tmp_path.iterdir())
