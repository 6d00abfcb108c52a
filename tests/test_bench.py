"""`archspec bench`: its JSON report and table, and its refusals of what the machine cannot do.

Every run here is tiny (LeNet, a few iterations) and on the CPU. The one test that needs a GPU
runs the CUDA path for real where torch sees one, and is skipped with the reason elsewhere.
onnxruntime-gpu lists its GPU providers even on a machine without a GPU and falls back to the
CPU with only a log line; the tests check that archspec notices and refuses, rather than
report a CPU figure under a GPU provider's name.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import archspec
from archspec.bench import BACKENDS, Plan, as_table, check_request, run_worker, summarise
from archspec.cli import main
from archspec.compile import Options, compile_spec
from archspec.errors import ArchError

ROOT = Path(__file__).resolve().parent.parent
LENET = "specs/lenet.arch"
TINY = ["--iters", "3", "--warmup", "1"]
RECORD_KEYS = {"backend": str, "batch": int, "device": str, "median_ms": float, "p10_ms": float, "p90_ms": float,
               "min_ms": float, "iters": int, "throughput": float, "gflops": float, "first_run_ms": float,
               "peak_rss_mb": float}
GPU = torch.cuda.is_available()


def bench(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """`archspec bench` as a user types it, in a process of its own."""
    return subprocess.run([sys.executable, "-m", "archspec", "bench", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One JSON run at batch 1 and 2 on the default backends, with `-o` beside stdout."""
    out = tmp_path_factory.mktemp("bench") / "report.json"
    proc = bench(LENET, "--batch", "1,2", *TINY, "--format", "json", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    stdout = json.loads(proc.stdout)
    return {"stdout": stdout, "file": json.loads(out.read_text()), "raw": proc.stdout, "raw_file": out.read_text()}


# ---- the JSON report -------------------------------------------------------------------------


def test_json_has_the_environment(report: dict) -> None:
    env = report["stdout"]["environment"]
    assert env["archspec"] == archspec.__version__
    assert env["torch"] == torch.__version__
    import onnxruntime

    assert env["onnxruntime"] == onnxruntime.__version__
    assert env["device"] == "cpu" and env["dtype"] == "fp32"
    assert isinstance(env["cpu"], str) and env["cpu"]
    assert isinstance(env["torch_threads"], int) and env["torch_threads"] >= 1
    assert env["providers_requested"] == ["cpu"]
    assert env["providers_used"] == ["CPUExecutionProvider"]  # what the session really started
    load = env["load_average_1min"]
    assert set(load) == {"start", "end"} and all(isinstance(v, float) and v >= 0 for v in load.values())


def test_json_has_one_record_per_backend_and_batch(report: dict) -> None:
    r = report["stdout"]
    assert r["network"] == "lenet" and r["input"] == [1, 28, 28]
    assert r["macs_per_sample"] == archspec.load(LENET).macs
    got = [(x["backend"], x["batch"]) for x in r["results"]]
    assert got == [(b, n) for b in ("torch", "torchscript", "onnxruntime") for n in (1, 2)]
    assert all(c["ok"] for c in r["verification"]["checks"])


def test_json_records_types_and_values(report: dict) -> None:
    r = report["stdout"]
    for rec in r["results"]:
        for key, kind in RECORD_KEYS.items():
            assert isinstance(rec[key], kind), (key, rec[key])
        assert rec["device"] == "cpu" and rec["iters"] == 3
        assert 0 < rec["min_ms"] <= rec["p10_ms"] <= rec["median_ms"] <= rec["p90_ms"]
        batch, median_s = rec["batch"], rec["median_ms"] / 1e3
        assert rec["throughput"] == pytest.approx(batch / rec["median_ms"] * 1e3, rel=1e-9)
        assert rec["gflops"] == pytest.approx(2 * r["macs_per_sample"] * batch / median_s / 1e9, rel=1e-9)
        want = ["CPUExecutionProvider"] if rec["backend"] == "onnxruntime" else None
        assert rec["providers"] == want


def test_each_backend_reports_its_own_peak_memory(report: dict) -> None:
    """Each worker's peak is its own: not the parent's (which holds torch and the compiled model)."""
    peak = {rec["backend"]: rec["peak_rss_mb"] for rec in report["stdout"]["results"]}
    assert 0 < peak["onnxruntime"] < peak["torch"], peak  # onnxruntime's process never imports torch


def test_output_file_is_the_same_json(report: dict) -> None:
    assert report["file"] == report["stdout"]
    assert report["raw_file"] == report["raw"]


def test_table_lists_every_record(report: dict) -> None:
    table = as_table(report["stdout"])
    lines = table.splitlines()
    assert lines[0].startswith("lenet (specs/lenet.arch), input [1, 28, 28], 416,520 MACs per sample; cpu")
    assert lines[2].split()[:3] == ["backend", "batch", "median"]
    rows = [line.split() for line in lines[4:10]]
    for row, rec in zip(rows, report["stdout"]["results"]):
        assert row[:3] == [rec["backend"], str(rec["batch"]), f"{rec['median_ms']:.2f}"]
    assert lines[-2].startswith("onnxruntime providers used: CPUExecutionProvider; verified before timing")
    assert re.fullmatch(r"load average \(1 min\): [\d.]+ at the start, [\d.]+ at the end, on \d+ cores.*", lines[-1])


def test_summarise_arithmetic() -> None:
    rec = summarise("torch", 4, [0.004, 0.002, 0.003, 0.001, 0.005], 0.5, 1_000_000, {"device": "cpu"})
    assert rec["median_ms"] == pytest.approx(3.0)
    assert rec["min_ms"] == pytest.approx(1.0) and rec["p10_ms"] == pytest.approx(1.4)
    assert rec["p90_ms"] == pytest.approx(4.6)
    assert rec["throughput"] == pytest.approx(4 / 0.003)
    assert rec["gflops"] == pytest.approx(2 * 1_000_000 * 4 / 0.003 / 1e9)
    assert rec["first_run_ms"] == pytest.approx(500.0)


# ---- every backend, through the command, as text ------------------------------------------------


def test_every_backend_runs_on_the_cpu() -> None:
    """torch.compile included: its first run (the compilation) is slow on the CPU, reported apart."""
    start = time.perf_counter()
    proc = bench(LENET, "--batch", "1", "--iters", "2", "--warmup", "1", "--threads", "1",
                 "--backends", ",".join(BACKENDS))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "cpu" in lines[0] and "threads 1" in lines[0]
    rows = {row[0]: row for row in map(str.split, lines[4:]) if len(row) == 10 and row[0] in BACKENDS}
    assert set(rows) == set(BACKENDS)
    for row in rows.values():
        assert row[1] == "1" and float(row[2]) > 0
    assert float(rows["torch-compile"][8]) > float(rows["torch-compile"][2])  # the compile is in the first run
    print(f"every backend on the CPU in {time.perf_counter() - start:.0f} s")


# ---- refusals: nothing this machine cannot do is reported as done ------------------------------


def test_gpu_provider_on_cpu_device_is_refused(capsys: pytest.CaptureFixture) -> None:
    assert main(["bench", LENET, "--ort-providers", "cuda"]) == 2
    err = capsys.readouterr().err
    assert "error[E805]" in err and "provider cuda needs --device cuda" in err


def test_cpu_provider_alone_on_a_cuda_device_is_refused(capsys: pytest.CaptureFixture) -> None:
    # Checked before the GPU is looked for, so this holds on machines with and without one.
    assert main(["bench", LENET, "--device", "cuda", "--ort-providers", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "error[E805]" in err and "onnxruntime on the CPU beside torch on the GPU" in err


def test_cuda_device_without_a_gpu_is_refused(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    if GPU:  # this machine has one: take it away for this test
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["bench", LENET, "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert "error[E804]" in err and "no CUDA GPU is visible" in err and "torch.cuda.is_available() is False" in err


def test_fp16_on_the_cpu_is_refused(capsys: pytest.CaptureFixture) -> None:
    assert main(["bench", LENET, "--dtype", "fp16"]) == 2
    err = capsys.readouterr().err
    assert "error[E803]" in err and "--dtype fp16 needs --device cuda" in err


def test_unknown_provider_is_refused() -> None:
    with pytest.raises(ArchError) as exc:
        check_request("cpu", "fp32", ["warp"])
    assert exc.value.diagnostics[0].code == "E802" and exc.value.exit_code == 2


def test_unknown_provider_on_the_command_line(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["bench", LENET, "--ort-providers", "warp"])
    assert exc.value.code == 2
    assert "unknown provider 'warp'; choose from tensorrt, cuda, cpu" in capsys.readouterr().err


def test_provider_that_cannot_start_is_detected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """onnxruntime starts the CPU provider instead, saying so only in a log line: the worker must refuse."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # no GPU for the worker, even on a machine with one
    spec = archspec.load(LENET)
    compiled = compile_spec(spec, Options(formats=("onnx",), out_dir=str(tmp_path / "lenet"), verify=False))
    plan = Plan(backend="onnxruntime", artifacts={"onnx": str(Path(compiled.out_dir) / "lenet.onnx")},
                input_shape=list(spec.network.input_shape), batches=[1], macs=spec.macs, device="cpu",
                providers=["cuda"], warmup=1, iters=2)
    with pytest.raises(ArchError) as exc:
        run_worker(plan)
    diag = exc.value.diagnostics[0]
    assert diag.code == "E801" and exc.value.exit_code == 1
    assert "could not start CUDAExecutionProvider (it started CPUExecutionProvider)" in diag.message


# ---- the GPU path, where there is a GPU ----------------------------------------------------------


@pytest.mark.skipif(not GPU, reason="no CUDA GPU on this machine (torch.cuda.is_available() is False)")
def test_gpu_path() -> None:
    proc = bench(LENET, "--device", "cuda", "--batch", "1,2", *TINY, "--backends", "torch,onnxruntime",
                 "--format", "json")
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert r["environment"]["gpu"] == torch.cuda.get_device_name(0)
    assert "CUDAExecutionProvider" in r["environment"]["providers_used"]  # the CPU provider is always listed too
    for rec in r["results"]:
        assert rec["device"] == "cuda"
        if rec["backend"] == "onnxruntime":
            assert rec["providers"][0] == "CUDAExecutionProvider"
        else:
            assert rec["torch_peak_allocated_mb"] > 0


@pytest.mark.parametrize("where, code, text", [
    ("missing/r.json", "E001", "does not exist"),
    (".", "E604", "is a folder, not a file"),
])
def test_an_output_that_cannot_be_written_is_refused_before_timing(capsys: pytest.CaptureFixture, tmp_path: Path,
                                                                   where: str, code: str, text: str) -> None:
    out = tmp_path / where
    assert main(["bench", LENET, "--iters", "1", "--warmup", "0", "--backends", "torch", "-o", str(out)]) == 2
    captured = capsys.readouterr()
    assert f"error[{code}]" in captured.err and text in captured.err
    assert "torch" not in captured.out  # refused before any timing: no table
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written, no temporary left


@pytest.mark.parametrize("seconds", ["nan", "inf", "-1", "0", "abc"])
def test_seconds_must_be_a_finite_positive_number(capsys: pytest.CaptureFixture, seconds: str) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["bench", LENET, "--seconds", seconds])
    assert exc.value.code == 2 and "--seconds" in capsys.readouterr().err


def test_the_report_file_is_written_whole_and_readable(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    assert main(["bench", LENET, "--iters", "1", "--warmup", "0", "--backends", "torch", "--batch", "1",
                 "-o", str(out)]) == 0
    assert json.loads(out.read_text())["results"][0]["backend"] == "torch"
    assert out.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_a_gpu_table_shows_the_devices_memory_and_says_when_it_is_unknown(report: dict) -> None:
    gpu = json.loads(json.dumps(report["stdout"]))  # a copy, made to look like a CUDA run
    gpu["environment"].update(device="cuda", gpu="NVIDIA H100")
    for i, rec in enumerate(gpu["results"]):
        rec["gpu_memory_mb"] = None if i == 0 else 1234.0
    lines = as_table(gpu).splitlines()
    assert "cuda (NVIDIA H100)" in lines[0] and lines[2].split()[-2:] == ["GPU", "MB"]
    assert lines[4].split()[-1] == "n/a" and lines[5].split()[-1] == "1234"
    cpu_lines = as_table(report["stdout"]).splitlines()
    assert cpu_lines[2].endswith("peak RSS MB") and "n/a" not in "\n".join(cpu_lines[4:])
