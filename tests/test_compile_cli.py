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
        if path.is_symlink():
            state[str(path.relative_to(root))] = ("link", os.readlink(path))
            continue
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


def with_value(key: str, value: torch.Tensor) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        state = lenet_state()
        state[key] = value
        torch.save(state, path)
    return make


def nan_weights(path: Path) -> None:
    state = lenet_state()
    state["3.weight"][0, 0, 0, 0] = float("nan")
    state["3.weight"][1, 0, 0, 0] = float("inf")
    torch.save(state, path)


def zip_bomb(path: Path) -> None:
    """A torch checkpoint whose archive holds a deflated entry of 256 MiB of zeros: a few hundred KB on disk."""
    import zipfile

    torch.save(lenet_state(), path)
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as zf, zf.open("archive/data/99", "w") as fh:
        block = bytes(1 << 20)
        for _ in range(256):
            fh.write(block)


CHECKPOINTS: dict[str, tuple[Callable[[Path], None], str, int, str]] = {
    # name: (make it, error code, exit status, a phrase of the message)
    "misfit": (misfit, "E601", 1, "missing (1): 11.bias"),
    "garbage": (garbage, "E602", 1, "not a checkpoint"),
    "pickle": (code_running_pickle, "E603", 1, "could run code"),
    "missing": (lambda path: None, "E001", 2, "no such checkpoint file"),
    "other-input": (trained_for_another_input, "E601", 1, "trained for input 1x32x32, not 1x28x28"),
    "nan": (nan_weights, "E611", 1, "`3.weight` holds 2 NaN and infinite values of 2,400"),
    "integer": (with_value("0.weight", torch.zeros(6, 1, 5, 5, dtype=torch.int64)), "E611",
                1, "`0.weight` is a int64 tensor; the network's is float32"),
    "bool": (with_value("0.bias", torch.zeros(6, dtype=torch.bool)), "E611", 1, "`0.bias` is a bool tensor"),
    "complex": (with_value("0.bias", torch.zeros(6, dtype=torch.complex64)), "E611", 1, "is a complex64 tensor"),
    "zip-bomb": (zip_bomb, "E602", 1, "it would take 256.2 MiB once read, more than the 64.9 MiB"),
}


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A folder with an earlier build in out/lenet/ that a failed compile must leave alone, beside a
    user's own file."""
    out = tmp_path / "out" / "lenet"
    out.mkdir(parents=True)
    (out / "lenet.py").write_text("# an earlier build\n")
    (out / "lenet.onnx").write_text("an earlier onnx\n")
    (tmp_path / "out" / "notes.txt").write_text("mine\n")
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
    code, output = cli(capfd, "compile", "specs/torchvision/resnet.arch", "--network", "resnet18", "--weights",
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
    assert sorted(os.listdir(tmp_path / "out")) == ["archspec-manifest.json", "resnext.onnx", "resnext.pt",
                                                    "resnext.pt2", "resnext.py"]
    assert ("verified: torchscript, pt2, onnx equal" in output) == verify
    assert calls == ([1] if verify else [])


# ---- resources and arguments that could only fail deep inside torch --------------------------------


def test_a_network_that_does_not_fit_in_memory_is_refused_before_allocating(tmp_path, capsys, monkeypatch):
    import archspec.codegen.build as build

    monkeypatch.setattr(build, "available_memory", lambda: 100_000)  # bytes; LeNet's weights need 246,824
    out = tmp_path / "out"
    assert main(["compile", "specs/lenet.arch", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "error[E610]" in err and "61,706 parameters" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
    # Compiling holds three copies of the weights and runs batches of 3: 3 * 246,824 bytes of weights
    # and 3 * (3,136 + 62,256) bytes of input and activations.
    need = 3 * 246_824 + 3 * (4 * 28 * 28 + archspec.load(LENET).network.activation_bytes)
    monkeypatch.setattr(build, "available_memory", lambda: need - 1)
    assert main(["compile", "specs/lenet.arch", "-f", "python,torchscript", "-o", str(out)]) == 2
    assert "activations" in capsys.readouterr().err and not out.exists()
    monkeypatch.setattr(build, "available_memory", lambda: need)
    assert main(["compile", "specs/lenet.arch", "-f", "python,torchscript", "-o", str(out)]) == 0


def test_activations_count_too_a_tiny_network_at_a_huge_input(tmp_path, capsys):
    """Four parameters at 100,000 x 100,000: refused before the 120 GB input is allocated."""
    spec = tmp_path / "big.arch"
    spec.write_text("network big() {\n    input [1, 100000, 100000]\n    conv2d(1, kernel=1)\n    relu\n}\n")
    assert main(["compile", str(spec), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "error[E610]" in err and "activations of" in err and not (tmp_path / "out").exists()


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


# ---- the output folder is published as one unit ------------------------------------------------------


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_recompiling_with_fewer_formats_leaves_no_stale_artifact(capfd, tmp_path: Path) -> None:
    """A 5-class `.py` beside the 10-class `.pt` of an earlier compile was possible: the set is replaced whole."""
    out = tmp_path / "lenet"
    assert cli(capfd, "compile", LENET, "-o", str(out), "-f", "python,torchscript")[0] == 0
    assert sorted(os.listdir(out)) == ["archspec-manifest.json", "lenet.pt", "lenet.py"]
    code, output = cli(capfd, "compile", LENET, "-o", str(out), "-f", "python", "--set", "num_classes=5")
    assert code == 0, output
    assert sorted(os.listdir(out)) == ["archspec-manifest.json", "lenet.py"]
    import json

    manifest = json.loads((out / "archspec-manifest.json").read_text())
    assert manifest["files"] == ["lenet.py"] and manifest["overrides"] == {"num_classes": "5"}
    assert [p.name for p in tmp_path.iterdir()] == ["lenet"]  # no staging folder left beside it


def test_a_folder_holding_other_files_is_refused_before_any_work(capfd, tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work\n")
    import archspec.compile as compile_stage

    monkeypatch.setattr(compile_stage, "_module", lambda *a: pytest.fail("work began before the folder was checked"))
    code, output = cli(capfd, "compile", LENET, "-o", str(out))
    assert_clean(code, output, 2, "holds files this compile would remove: thesis.tex", "E604")
    assert _files(out) == {"thesis.tex": b"years of work\n"}


@pytest.mark.parametrize("case", ["dangling-link", "read-only", "working-folder"])
def test_an_unusable_output_folder_is_refused_before_any_work(capfd, tmp_path: Path, monkeypatch, case) -> None:
    import archspec.compile as compile_stage
    import archspec.files as files

    monkeypatch.setattr(compile_stage, "_module", lambda *a: pytest.fail("work began before the folder was checked"))
    if case == "dangling-link":
        (tmp_path / "out").symlink_to(tmp_path / "nowhere")
        target, error, phrase = tmp_path / "out", "E604", "which does not exist"
    elif case == "read-only":  # as a read-only file system answers, for root too
        real = os.access
        monkeypatch.setattr(files.os, "access", lambda p, mode: False if str(p) == str(tmp_path) else real(p, mode))
        target, error, phrase = tmp_path / "out", "E001", "cannot write to"
    else:
        monkeypatch.chdir(tmp_path)
        target, error, phrase = Path("."), "E604", "holds the working folder"
    before = snapshot(tmp_path)
    code, output = cli(capfd, "compile", str(ROOT / LENET), "-o", str(target))
    assert_clean(code, output, 2, phrase, error)
    assert snapshot(tmp_path) == before


def test_a_link_to_a_folder_elsewhere_is_followed(capfd, tmp_path: Path) -> None:
    """Staging happens beside the real folder (its file system), so the swap is a rename, never a copy."""
    elsewhere = Path("/dev/shm") if os.access("/dev/shm", os.W_OK) else tmp_path / "elsewhere"
    real = Path(__import__("tempfile").mkdtemp(prefix="archspec-test-", dir=elsewhere))
    try:
        (tmp_path / "out").symlink_to(real)
        code, output = cli(capfd, "compile", LENET, "-o", str(tmp_path / "out"), "-f", "python")
        assert code == 0, output
        assert (tmp_path / "out").is_symlink() and sorted(os.listdir(real)) == ["archspec-manifest.json", "lenet.py"]
        assert [p.name for p in real.parent.iterdir() if p.name.startswith(f".{real.name}.")] == []
    finally:
        import shutil

        shutil.rmtree(real, ignore_errors=True)


def test_a_swap_that_fails_halfway_puts_the_previous_set_back(capfd, tmp_path: Path, monkeypatch) -> None:
    """Without renameat2, publishing is two renames; if the second fails, the first is undone."""
    import archspec.outdir as outdir

    out = tmp_path / "lenet"
    assert cli(capfd, "compile", LENET, "-o", str(out), "-f", "python,torchscript")[0] == 0
    before = _files(out)
    monkeypatch.setattr(outdir, "_renameat2", lambda a, b: False)
    real_rename = os.rename
    calls = []

    def flaky(a, b):
        calls.append((str(a), str(b)))
        if len(calls) == 2:  # the staging folder onto the target
            raise OSError(28, "No space left on device")
        return real_rename(a, b)
    monkeypatch.setattr(outdir.os, "rename", flaky)
    code, output = cli(capfd, "compile", LENET, "-o", str(out), "-f", "python", "--set", "num_classes=5")
    assert code != 0 and "Traceback" not in output
    assert _files(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["lenet"]


def test_sigterm_during_a_compile_leaves_no_staging_folder(tmp_path: Path) -> None:
    """VGG-11's exports take seconds: SIGTERM arrives while artifacts are being written."""
    import signal
    import time

    out = tmp_path / "vgg11"
    proc = subprocess.Popen([sys.executable, "-m", "archspec", "compile", "specs/vgg11.arch", "-o", str(out)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any(p.name.startswith(".vgg11.staging.") for p in tmp_path.iterdir()):
        time.sleep(0.05)
    time.sleep(0.5)  # into the writing
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert "archspec: terminated" in stderr and "Traceback" not in stderr
    assert list(tmp_path.iterdir()) == []
