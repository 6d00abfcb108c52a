"""Time `archspec compile -f onnx --no-verify` against torch's own ONNX exporter on the same networks.

    python benchmarks/bench_export.py --out benchmarks/export_results.md   # 2 rounds: 8.5 min on 2 shared cores

For torchvision's resnet18 and resnet50 (random weights; the networks of the same names in
specs/torchvision/resnet.arch describe the same modules), in one run, interleaved (each round
runs every measurement once, in a rotated order, so a slow spell of a shared machine hits all
of them alike), best and median of the rounds:

- as commands, interpreter start and imports included: `archspec compile FAMILY.arch --network
  NAME -f onnx --no-verify` beside `python -c` that builds the torchvision model and calls
  `torch.onnx.export` with archspec's settings (dynamo=True, opset 18, optimize=False, a
  dynamic batch axis from a batch-2 example, input `input`, output `logits`);
- in this process, after a warm-up: `compile_spec` (module built from the spec, torch.export,
  the ONNX export, renaming, saving, the ONNX checker and shape inference) beside the same
  `torch.onnx.export` of the torchvision model (its construction included, as the spec's is),
  and the legacy TorchScript-based exporter (dynamo=False, same opset, names and batch axis);
- the stages of one in-process compile, to show where archspec's own time goes;
- onnxruntime (CPU) latency of the three graphs, interleaved, with their node counts.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import zoo

REPO = Path(__file__).resolve().parents[1]
MODELS = ("resnet18", "resnet50")
PACKAGES = ("archspec", "torch", "torchvision", "onnx", "onnxruntime-gpu", "onnxruntime", "onnxscript")

EXPORT = """import torch, torchvision
model = torchvision.models.{name}().eval()
x = torch.randn(2, 3, 224, 224)
torch.onnx.export(model, (x,), {path!r}, dynamo=True, opset_version=18, optimize=False, verbose=False,
                  external_data=False, input_names=["input"], output_names=["logits"],
                  dynamic_shapes=({{0: torch.export.Dim("batch", min=1, max=4096)}},))
"""


@dataclass
class Timing:
    key: str
    times: list[float] = field(default_factory=list)

    @property
    def best(self) -> float:
        return min(self.times)

    @property
    def median(self) -> float:
        return statistics.median(self.times)


@contextlib.contextmanager
def quiet():
    """The exporters print progress and warnings; none of it is the benchmark's output."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def bench_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # installed packages run from their .pyc files
    return env


def run_command(argv: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=REPO, env=bench_env(), capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"bench_export: `{shlex.join(argv)}` failed with status {proc.returncode}:\n{proc.stderr[-3000:]}")
    return elapsed


# ---- the measurements -------------------------------------------------------------------------------


def archspec_inprocess(name: str, out: str) -> None:
    import archspec
    from archspec.compile import Options, compile_spec

    compile_spec(archspec.load(zoo.family_file(name), network=name),
                 Options(formats=("onnx",), out_dir=out, verify=False))


def torch_inprocess(name: str, path: str, dynamo: bool) -> None:
    import torch
    import torchvision

    torch.manual_seed(0)  # the same weights in every export, so the graphs' outputs can be compared
    model = getattr(torchvision.models, name)().eval()
    x = torch.randn(2, 3, 224, 224)
    with quiet():
        if dynamo:
            torch.onnx.export(model, (x,), path, dynamo=True, opset_version=18, optimize=False, verbose=False,
                              external_data=False, input_names=["input"], output_names=["logits"],
                              dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=4096)},))
        else:
            torch.onnx.export(model, (x,), path, dynamo=False, opset_version=18, input_names=["input"],
                              output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})


def jobs(tmp: Path) -> dict[str, callable]:
    """key -> a function that runs one measurement and returns its seconds."""
    out: dict[str, callable] = {}
    for name in MODELS:
        spec = zoo.family_file(name)
        cmd_dir, cmd_onnx = str(tmp / "cmd" / name), str(tmp / f"tv_cmd_{name}.onnx")
        out[f"{name}:archspec-command"] = lambda spec=spec, name=name, d=cmd_dir: run_command(
            [sys.executable, "-m", "archspec", "compile", spec, "--network", name, "-f", "onnx", "--no-verify",
             "-o", d])
        out[f"{name}:torch-command"] = lambda name=name, p=cmd_onnx: run_command(
            [sys.executable, "-c", EXPORT.format(name=name, path=p)])
        out[f"{name}:archspec-inprocess"] = lambda name=name: timed(archspec_inprocess, name, str(tmp / "in" / name))
        out[f"{name}:torch-inprocess"] = lambda name=name: timed(torch_inprocess, name, str(tmp / f"tv_{name}.onnx"),
                                                               True)
        out[f"{name}:legacy-inprocess"] = lambda name=name: timed(torch_inprocess, name,
                                                                str(tmp / f"legacy_{name}.onnx"), False)
    return out


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def stages(name: str, tmp: Path) -> dict[str, float]:
    """One in-process compile of the spec with torchvision's weights (seed 0), stage by stage.

    What compile_spec does with `-f onnx --weights`; the graph it writes is the one timed in
    onnxruntime beside torchvision's own exports of the same weights.
    """
    import torch
    import torchvision

    import archspec
    from archspec.codegen import build_module, spec_hash
    from archspec.export.onnx import check_onnx, export_onnx, save_onnx
    from archspec.export.pt2 import export_program
    from archspec.export.weights import fit, read_checkpoint

    torch.manual_seed(0)
    weights = str(tmp / f"tv_{name}.pth")
    torch.save(getattr(torchvision.models, name)().state_dict(), weights)

    t: dict[str, float] = {}
    start = time.perf_counter()
    spec = archspec.load(zoo.family_file(name), network=name)
    t["load and check the spec"] = time.perf_counter() - start
    start = time.perf_counter()
    module = build_module(spec, seed=0).eval()
    t["build the module (codegen, exec, weight init)"] = time.perf_counter() - start
    start = time.perf_counter()
    fit(module, read_checkpoint(weights)[0], weights)
    t["read and fit the checkpoint"] = time.perf_counter() - start
    start = time.perf_counter()
    program = export_program(module, spec.network.input_shape, None)
    t["torch.export"] = time.perf_counter() - start
    path = str(tmp / f"stages_{name}.onnx")
    start = time.perf_counter()
    model = export_onnx(program, path, spec.network, 18, {"archspec.spec_sha256": spec_hash(spec.sources.texts)})
    t["torch.onnx.export of the program, renaming"] = time.perf_counter() - start
    start = time.perf_counter()
    save_onnx(model, path)
    t["save"] = time.perf_counter() - start
    start = time.perf_counter()
    check_onnx(path, spec.network)
    t["ONNX checker (full) and shape inference"] = time.perf_counter() - start
    return t


def latency(paths: dict[str, str], rounds: int, runs: int, batch: int) -> dict[str, dict]:
    """Median and best onnxruntime latency (ms) per graph, interleaved run by run."""
    import numpy as np
    import onnx
    import onnxruntime as ort

    x = np.random.default_rng(0).standard_normal((batch, 3, 224, 224)).astype(np.float32)
    sessions = {k: ort.InferenceSession(p, providers=["CPUExecutionProvider"]) for k, p in paths.items()}
    outputs = {k: s.run(None, {s.get_inputs()[0].name: x})[0] for k, s in sessions.items()}
    ref = next(iter(outputs.values()))
    times: dict[str, list[float]] = {k: [] for k in sessions}
    for _ in range(rounds):
        for k, s in sessions.items():
            feed = {s.get_inputs()[0].name: x}
            for _ in range(3):
                s.run(None, feed)
            for _ in range(runs):
                start = time.perf_counter()
                s.run(None, feed)
                times[k].append((time.perf_counter() - start) * 1e3)
    info = {}
    for k, p in paths.items():
        model = onnx.load(p, load_external_data=False)
        ops = Counter(n.op_type for n in model.graph.node)
        so = ort.SessionOptions()  # what onnxruntime makes of the graph, short of hardware-specific layouts
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        so.optimized_model_filepath, so.log_severity_level = p + ".ort.onnx", 3
        ort.InferenceSession(p, so, providers=["CPUExecutionProvider"])
        loaded = Counter(n.op_type for n in onnx.load(so.optimized_model_filepath).graph.node)
        info[k] = {"median": statistics.median(times[k]), "best": min(times[k]), "nodes": len(model.graph.node),
                   "bn": ops.get("BatchNormalization", 0), "conv": ops.get("Conv", 0),
                   "loaded": sum(loaded.values()), "loaded_bn": loaded.get("BatchNormalization", 0),
                   "size": os.path.getsize(p), "max_diff": float(np.abs(outputs[k] - ref).max()),
                   "init": [i.name for i in model.graph.initializer if "onnx::" in i.name or "conv" in i.name][:2],
                   "conv_node": next((n.name for n in model.graph.node if n.op_type == "Conv"), "")}
    return info


# ---- the report ----------------------------------------------------------------------------------------


def _git(*args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)
    return proc.stdout.strip()


def _read(path: str) -> str:
    with contextlib.suppress(OSError):
        return Path(path).read_text()
    return ""


def machine(argv: list[str], rounds: int, load: tuple[str, str]) -> list[str]:
    versions = []
    for name in PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions.append(f"{name} {metadata.version(name)}")
    cpu = next((ln.split(":", 1)[1].strip() for ln in _read("/proc/cpuinfo").splitlines()
                if ln.startswith("model name")), platform.processor() or "unknown")
    kb = next((ln.split()[1] for ln in _read("/proc/meminfo").splitlines() if ln.startswith("MemTotal")), "")
    mem = f", {int(kb) / 2**20:.0f} GiB RAM" if kb.isdigit() else ""
    commit = _git("rev-parse", "--short", "HEAD")
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    return ["## Machine and command", "",
            f"- Command: `{shlex.join(['python', *argv])}`, from the repository root",
            (f"- Date: {datetime.datetime.now().isoformat(timespec='seconds')}; commit "
             f"{commit or 'unknown'}{' (with uncommitted changes)' if dirty else ''}; "
             f"{rounds} rounds after a warm-up of the in-process measurements"),
            f"- Machine: {cpu}; {len(os.sched_getaffinity(0))} cores{mem}; {platform.platform()}; no GPU used",
            (f"- Load average (1 min) at the start {load[0]}, at the end {load[1]}: the machine is shared, "
             "so the medians wander more than the best rounds"),
            f"- Python {platform.python_version()}; {', '.join(versions)}", ""]


def summary(timings: dict[str, Timing], stage_times: dict[str, dict[str, float]], lat: dict[str, dict]) -> list[str]:
    """The findings, computed from the tables below."""
    out = ["## Summary", ""]
    exporter = ("torch.export", "torch.onnx.export of the program, renaming")
    for name in MODELS:
        best = {k.split(":", 1)[1]: v.best for k, v in timings.items() if k.startswith(f"{name}:")}
        own = sum(v for k, v in stage_times[name].items() if k not in exporter)
        ms = {k.split(":", 1)[1]: v["median"] for k, v in lat.items() if k.startswith(f"{name}:")}
        out.append(
            f"- {name}: archspec in-process takes {best['archspec-inprocess'] / best['torch-inprocess']:.2f}x "
            f"torch.onnx.export's time (best rounds), as a command "
            f"{best['archspec-command'] / best['torch-command']:.2f}x; "
            f"of one compile's {sum(stage_times[name].values()):.1f} s, {own:.1f} s are archspec's own (spec, module, "
            f"checkpoint, save, checker), the rest torch.export and the exporter. The legacy exporter is "
            f"{best['torch-inprocess'] / best['legacy-inprocess']:.1f}x faster than the dynamo one. onnxruntime median "
            f"latency: archspec's graph {ms['archspec (dynamo)']:.0f} ms, the legacy graph "
            f"{ms['torchvision, legacy']:.0f} ms, torchvision's own dynamo graph (optimize=False) "
            f"{ms['torchvision, dynamo']:.0f} ms.")
    return out + [""]


def _cell(t: Timing) -> str:
    return f"{t.best:.2f} ({t.median:.2f})"


def export_table(timings: dict[str, Timing]) -> list[str]:
    lines = ["## Export time", "",
             ("Seconds, best of the rounds (median in brackets). *Ratio* is archspec over `torch.onnx.export` "
              "of the torchvision model with the same settings; archspec's time includes its ONNX checker and "
              "shape-inference pass, which the bare exporter does not run."), "",
             ("| network | `archspec compile -f onnx --no-verify` | `torch.onnx.export` script | ratio | "
              "archspec in-process | `torch.onnx.export` in-process | ratio | legacy exporter in-process |"),
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name in MODELS:
        t = {k.split(":", 1)[1]: v for k, v in timings.items() if k.startswith(f"{name}:")}
        lines.append(f"| {name} | {_cell(t['archspec-command'])} | {_cell(t['torch-command'])} | "
                     f"{t['archspec-command'].best / t['torch-command'].best:.2f} | {_cell(t['archspec-inprocess'])} | "
                     f"{_cell(t['torch-inprocess'])} | "
                     f"{t['archspec-inprocess'].best / t['torch-inprocess'].best:.2f} | "
                     f"{_cell(t['legacy-inprocess'])} |")
    return [*lines, ""]


def stage_table(stage_times: dict[str, dict[str, float]]) -> list[str]:
    lines = ["## Where archspec's in-process time goes", "",
             "One compile of each spec with torchvision's weights, stage by stage, seconds (after the rounds).", "",
             "| stage | " + " | ".join(MODELS) + " |", "|---|" + "---:|" * len(MODELS)]
    for stage in next(iter(stage_times.values())):
        lines.append(f"| {stage} | " + " | ".join(f"{stage_times[m][stage]:.2f}" for m in MODELS) + " |")
    lines.append("| total | " + " | ".join(f"{sum(stage_times[m].values()):.2f}" for m in MODELS) + " |")
    return [*lines, ""]


def latency_table(lat: dict[str, dict], batch: int) -> list[str]:
    lines = [f"## onnxruntime latency of the exported graphs (CPU, batch {batch})", "",
             ("Milliseconds per run, median (best), runs interleaved between the graphs; default session options "
              "(all graph optimisations). *Nodes, BN once loaded*: the graph after onnxruntime's extended "
              "optimisations, its batch-norm fusion among them. All three graphs hold the same weights "
              "(torchvision's, seed 0); *max diff* is the largest absolute difference of the logits from "
              "archspec's graph."), "",
             ("| network | graph | median ms | best ms | nodes | Conv | BatchNormalization | nodes, BN once loaded | "
              "MB | max diff | a Conv node | a weight name |"),
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for key, v in lat.items():
        name, graph = key.split(":", 1)
        weight = v["init"][0] if v["init"] else ""
        lines.append(f"| {name} | {graph} | {v['median']:.1f} | {v['best']:.1f} | {v['nodes']} | {v['conv']} | "
                     f"{v['bn']} | {v['loaded']}, {v['loaded_bn']} | {v['size'] / 2**20:.1f} | {v['max_diff']:.1g} | "
                     f"`{v['conv_node']}` | `{weight}` |")
    return [*lines, ""]


def report(timings: dict[str, Timing], stage_times: dict[str, dict[str, float]], lat: dict[str, dict],
           argv: list[str], rounds: int, load: tuple[str, str], batch: int) -> str:
    lines = ["# ONNX export: archspec against torch.onnx.export", "",
             "Generated by `benchmarks/bench_export.py`; every figure below comes from one run of it.", "",
             *summary(timings, stage_times, lat), *export_table(timings), *stage_table(stage_times),
             *latency_table(lat, batch), *machine(argv, rounds, load)]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--runs", type=int, default=10, help="onnxruntime runs per graph per round")
    p.add_argument("--batch", type=int, default=1, help="the batch of the onnxruntime runs")
    p.add_argument("--out", help="write the Markdown report here")
    args = p.parse_args()
    os.chdir(REPO)
    load_start = (_read("/proc/loadavg").split() or ["?"])[0]
    with tempfile.TemporaryDirectory(prefix="bench_export.") as tmp_name:
        tmp = Path(tmp_name)
        todo = jobs(tmp)
        timings = {k: Timing(k) for k in todo}
        for key, fn in todo.items():  # warm-up: imports, the exporters' first-call costs; not counted
            if key.endswith("inprocess") and key.startswith(MODELS[0]):
                print(f"  warm-up {key}", file=sys.stderr)
                fn()
        keys = list(todo)
        for r in range(args.rounds):
            shift = r * len(keys) // args.rounds  # rotate the order so no measurement always runs first
            for key in keys[shift:] + keys[:shift]:
                timings[key].times.append(todo[key]())
                print(f"  round {r + 1}/{args.rounds} {key}: {timings[key].times[-1]:.2f}s", file=sys.stderr)
        stage_times = {}
        for name in MODELS:
            with quiet():
                stage_times[name] = stages(name, tmp)
        lat = {}
        for name in MODELS:
            lat.update({f"{name}:{k}": v for k, v in latency({
                "archspec (dynamo)": str(tmp / f"stages_{name}.onnx"),
                "torchvision, dynamo": str(tmp / f"tv_{name}.onnx"),
                "torchvision, legacy": str(tmp / f"legacy_{name}.onnx")}, args.rounds, args.runs, args.batch).items()})
    load_end = (_read("/proc/loadavg").split() or ["?"])[0]
    text = report(timings, stage_times, lat, sys.argv, args.rounds, (load_start, load_end), args.batch)
    if args.out:
        Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
