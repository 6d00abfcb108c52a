"""Time archspec's compiled networks on torch and onnxruntime, beside torchvision's own models.

    python benchmarks/bench_backends.py            # the book's networks and 4 of torchvision's; ~10 minutes
    python benchmarks/bench_backends.py --quick    # lenet, the book's resnet18, torchvision's resnet18
    python benchmarks/bench_backends.py --torchvision classic,new   # and one of each newer family
    python benchmarks/bench_backends.py --no-book --torchvision new,resnet34

Every network of specs/*.arch (the book's), and the torchvision networks `--torchvision` names
(groups: `classic`, the four compared from the start: vgg11, resnet18, resnet50, resnext50_32x4d;
`new`, one network of each family added since, from MobileNetV2 to ViT-B/16, Swin-T and
DeepLabV3-MobileNetV3-Large; `all`, every network of specs/torchvision/ that torchvision builds,
which takes hours here; or names), each from its family file of specs/torchvision/, is compiled by
archspec and timed in one process on the device it finds (cuda if torch sees a GPU, else the CPU): archspec's module
in torch eager and its ONNX export in onnxruntime (TorchScript and torch.compile on request),
and for the torchvision specs also torchvision's hand-written model in torch eager and
torchvision's model exported by `torch.onnx.export` with archspec's exporter settings
(dynamo=True, opset 18, optimize=False) in onnxruntime. The torchvision rows give all four
torchvision's weights, so every backend computes the same function (checked on the first output,
and reported). Networks whose spec takes any input size (segmentation) run at 224x224, where
torchvision's references use 520x520 (benchmarks/zoo.py).

Timing is interleaved: every round visits every network, batch size and backend, the backends
in an order rotated from round to round, so a slow spell of the machine hits them alike. A
cell's figure is its best round (a round's figure is the median of its iterations); the noise
is the spread of the per-round ratios between backends. The device's fp32 matrix-multiply peak
(torch.mm of square matrices, sampled all through every round, the best) scales the GFLOP/s.
The first run of each cell (session creation, compilation) is never timed; nothing else of
ours runs while the clock does, and the garbage collector is off. Rounds past the minimum stop
at the time budget.

On a CUDA machine the same script runs unchanged: torch times with a synchronisation, and
onnxruntime uses the CUDA provider with IO binding, after checking that the session really
started it (onnxruntime-gpu falls back to the CPU with only a log line otherwise).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import io
import json
import math
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import zoo

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks"
QUICK_BOOK = ("lenet", "resnet18")  # of specs/*.arch, with torchvision's resnet18 beside them
BOOK_GLOB = "specs/*.arch"
BOOK_INPUTS = {"unet": (1, 128, 128)}  # book networks whose spec takes any size, at the size timed here
ARCHSPEC = ("torch", "torchscript", "torch-compile", "onnxruntime")
TORCHVISION = ("tv-torch", "tv-onnxruntime")
EQUAL_BAND = 0.05  # best-of-rounds ratios this close to 1 count as equal (or the measured noise, if wider)
SMALL_MACS = 150e6  # networks this light per sample are also timed at batch 32
CELL_TARGET_S = 0.25  # timed work per cell per round
PROVIDERS_STARTED: set[str] = set()  # what onnxruntime's sessions really run on


@dataclass(frozen=True)
class Setting:
    """Where and how everything runs."""

    device: str
    threads: int
    passive: bool  # idle threads sleep at once rather than spin
    tmp: str  # the scratch folder for the artifacts


@dataclass
class Cell:
    """One backend at one batch size of one network, and its timings."""

    net: str
    backend: str
    batch: int
    call: Callable[[], object]
    iters: int = 3
    warm: int = 1  # untimed calls after switching to this cell (caches, thread pools)
    first_s: float = 0.0
    rounds: list[float] = field(default_factory=list)  # median of each round's iterations, seconds

    @property
    def best(self) -> float:
        return min(self.rounds)


@dataclass
class Net:
    key: str  # "resnet18" for specs/resnet18.arch, "torchvision/resnet18" for specs/torchvision/...
    file: str
    macs: int
    input: list[int]
    batches: list[int]
    makers: dict[str, Callable[[int], Callable[[], object]]]  # backend -> batch -> call
    agreement: dict[str, float] = field(default_factory=dict)  # backend -> max abs difference
    onnx_nodes: dict[str, str] = field(default_factory=dict)


# ---- runners: one call of a backend on a fixed input, finished on the device ------------------

def example(shape: list[int], batch: int):
    import torch

    return torch.randn((batch, *shape), generator=torch.Generator().manual_seed(batch))


def torch_maker(model, shape: list[int], device: str):
    import torch

    def make(batch: int):
        x = example(shape, batch).to(device)

        def call():
            with torch.inference_mode():
                y = model(x)
            if device == "cuda":
                torch.cuda.synchronize()
            return y
        return call
    return make


def ort_maker(path: str, shape: list[int], setting: Setting):
    import onnxruntime as ort

    device = setting.device
    wanted = "CUDAExecutionProvider" if device == "cuda" else "CPUExecutionProvider"
    if device == "cuda" and hasattr(ort, "preload_dlls"):
        ort.preload_dlls()
    options = ort.SessionOptions()  # the settings of archspec.bench's worker
    options.intra_op_num_threads = setting.threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if setting.passive:  # onnxruntime's counterpart of OMP_WAIT_POLICY=PASSIVE
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(path, options, providers=[wanted])
    if session.get_providers()[0] != wanted:  # never time the CPU under a GPU provider's name
        sys.exit(f"bench_backends: onnxruntime could not start {wanted} for {path} "
                 f"(it started {', '.join(session.get_providers())})")
    PROVIDERS_STARTED.update(session.get_providers())
    name = session.get_inputs()[0].name

    def make(batch: int):
        x = example(shape, batch).numpy()
        if device != "cuda":
            return lambda: session.run(None, {name: x})[0]  # every output is computed; the first is kept
        binding = session.io_binding()
        binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(x, "cuda", 0))
        for output in session.get_outputs():
            binding.bind_output(output.name, "cuda", 0)

        def call():
            session.run_with_iobinding(binding)
            binding.synchronize_outputs()
            return binding
        return call
    return make


def as_numpy(y):
    if hasattr(y, "copy_outputs_to_cpu"):  # an IO binding
        return y.copy_outputs_to_cpu()[0]
    y = zoo.first_output(y)  # a segmentation model's `out`
    return y.float().cpu().numpy() if hasattr(y, "float") else y


def clock(call: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    call()
    return time.perf_counter() - t0


# ---- the networks: archspec's artifacts, and torchvision's own model beside them ---------------

def networks(quick: bool, book: bool, torchvision: str) -> list[tuple[str, str, bool]]:
    """(file, network, whether it is torchvision's) for every network to time: a file of specs/ may
    define several networks, or none (a file of blocks, such as residual.arch)."""
    if quick:
        return [(f"specs/{n}.arch", n, False) for n in QUICK_BOOK] + [(zoo.family_file("resnet18"), "resnet18", True)]
    out = [(path, name, False) for path, name in zoo.zoo((BOOK_GLOB,))] if book else []
    return out + [(zoo.family_file(name), name, True) for name in zoo.select(torchvision)]


def load_net(path: str, network: str, tv: bool, backends: list[str], setting: Setting) -> Net:
    import archspec

    spec = zoo.load(network) if tv else archspec.load(str(REPO / path), network=network)
    if spec.symbolic:  # a book network that takes any size (U-Net): the size it was first written for
        spec = archspec.load(str(REPO / path), network=network, input=BOOK_INPUTS[network])
    key = ("torchvision/" if tv else "") + spec.name
    if tv:  # the big ones: their comparisons are against torchvision, TorchScript adds only time
        backends = [b for b in backends if b != "torchscript"]
    batches = [1, 8] + ([32] if spec.macs <= SMALL_MACS else [])
    net = Net(key, path, spec.macs, list(spec.network.input_shape), batches, {})
    reference = torchvision_model(spec.name, setting.device) if tv else None
    net.makers.update(archspec_makers(spec, net, backends, setting, reference))
    if tv:
        net.makers["tv-torch"] = torch_maker(reference, net.input, setting.device)
        onnx_path = export_torchvision(reference, net.input, os.path.join(setting.tmp, f"tv_{spec.name}.onnx"))
        net.onnx_nodes["tv-onnxruntime"] = onnx_node_count(onnx_path)
        net.makers["tv-onnxruntime"] = ort_maker(onnx_path, net.input, setting)
    return net


def archspec_makers(spec, net: Net, backends: list[str], setting: Setting, reference) -> dict:
    import torch

    from archspec.compile import Options, compile_spec
    from archspec.export.torchscript import load_torchscript

    device = setting.device
    weights = None
    if reference is not None:  # torchvision's weights, so both sides compute the same function
        weights = os.path.join(setting.tmp, f"{spec.name}.pth")
        torch.save(reference.state_dict(), weights)
    formats = tuple(f for f, b in (("torchscript", "torchscript"), ("onnx", "onnxruntime")) if b in backends)
    out = compile_spec(spec, Options(formats=("python", *formats), out_dir=os.path.join(setting.tmp, net.key),
                                     weights=weights, device=device, verify=False))
    model = spec.to_torch(seed=0).eval().to(device)
    if reference is not None:
        model.load_state_dict(reference.state_dict())
    makers = {}
    if "torch" in backends:
        makers["torch"] = torch_maker(model, net.input, device)
    if "torch-compile" in backends:
        makers["torch-compile"] = torch_maker(torch.compile(model), net.input, device)
    if "torchscript" in backends:
        scripted = load_torchscript(os.path.join(out.out_dir, f"{spec.name}.pt"), device)
        makers["torchscript"] = torch_maker(scripted, net.input, device)
    if "onnxruntime" in backends:
        path = os.path.join(out.out_dir, f"{spec.name}.onnx")
        net.onnx_nodes["onnxruntime"] = onnx_node_count(path)
        makers["onnxruntime"] = ort_maker(path, net.input, setting)
    return makers


def torchvision_model(name: str, device: str):
    import torch

    torch.manual_seed(0)
    return zoo.torchvision_model(name).eval().to(device)


def export_torchvision(model, shape: list[int], path: str) -> str:
    """torchvision's model through `torch.onnx.export`, with the settings archspec's exporter uses (its
    outputs named as archspec names them: `logits`, or the keys of a segmentation model's dict)."""
    import torch

    x = example(shape, 2).to(next(model.parameters()).device)
    with torch.inference_mode():
        names = zoo.output_names(model(x))
    batch = torch.export.Dim("batch", min=1, max=4096)
    with contextlib.redirect_stdout(io.StringIO()):
        torch.onnx.export(model, (x,), path, dynamo=True, opset_version=18, optimize=False, external_data=False,
                          input_names=["input"], output_names=names, dynamic_shapes=({0: batch},))
    return path


def onnx_node_count(path: str) -> str:
    """Nodes, and convolutions whose bias is computed at run time (which stops onnxruntime fusing them)."""
    import onnx

    graph = onnx.load(path, load_external_data=False).graph
    constant = {i.name for i in graph.initializer}
    computed = sum(n.op_type == "Conv" and len(n.input) > 2 and n.input[2] not in constant for n in graph.node)
    return f"{len(graph.node)} ({computed} computed conv biases)" if computed else str(len(graph.node))


# ---- measuring ----------------------------------------------------------------------------------

def prepare(net: Net) -> list[Cell]:
    """Build every cell; its first run is timed apart; its per-call time sets its iterations."""
    cells = []
    for batch in net.batches:
        outputs = {}
        for backend, make in net.makers.items():
            call = make(batch)
            t0 = time.perf_counter()
            y = call()
            first = est = time.perf_counter() - t0
            if first < 0.5:  # a warm-up, not counted; a long first run is warm-up enough
                est = min(clock(call) for _ in range(3))
            iters = max(1 if est > 1.0 else 2 if est > 0.1 else 3, min(30, math.ceil(CELL_TARGET_S / est)))
            cells.append(Cell(net.key, backend, batch, call, iters, 0 if est > 0.05 else 1, first))
            if batch == net.batches[0]:
                outputs[backend] = as_numpy(y)
        if outputs:
            ref = outputs.get("tv-torch", outputs.get("torch", next(iter(outputs.values()))))
            net.agreement = {b: float(abs(o - ref).max()) for b, o in outputs.items()}
    return cells


def run_round(cells: list[Cell], r: int, peak: Callable[[], float], peaks: list[float]) -> None:
    """Every cell once; the backends of a network and batch in an order rotated by the round."""
    groups: dict[tuple[str, int], list[Cell]] = {}
    for c in cells:
        groups.setdefault((c.net, c.batch), []).append(c)
    last = None
    for i, ((net, _), group) in enumerate(groups.items()):
        if net != last:  # the peak too is sampled all through the round, once per network
            peaks.append(peak())
            last = net
        shift = (r + i) % len(group)
        for c in group[shift:] + group[:shift]:
            for _ in range(c.warm):
                c.call()
            times = [clock(c.call) for _ in range(c.iters)]
            c.rounds.append(statistics.median(times))


def matmul_peak(device: str) -> Callable[[], float]:
    """A probe: GFLOP/s of one torch.mm of large square fp32 matrices."""
    import torch

    n = 8192 if device == "cuda" else 1024  # short calls on the CPU, so that some fall in a quiet moment
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)

    def call():
        torch.mm(a, b)
        if device == "cuda":
            torch.cuda.synchronize()
    call()
    return lambda: 2 * n**3 / min(clock(call) for _ in range(3)) / 1e9


def measure(cells: list[Cell], device: str, rounds: tuple[int, int], deadline: float) -> dict:
    """At least rounds[0] rounds, more (up to rounds[1]) while the next one ends before the deadline."""
    low, high = rounds
    probe = matmul_peak(device)
    peaks: list[list[float]] = []
    loads, durations = [], []
    for r in range(high):
        gc.collect()
        gc.disable()
        t0 = time.perf_counter()
        peaks.append([])
        try:
            run_round(cells, r, probe, peaks[-1])
        finally:
            gc.enable()
        durations.append(time.perf_counter() - t0)
        loads.append(os.getloadavg()[0])
        print(f"  round {r + 1}: {durations[-1]:.0f} s, load average {loads[-1]:.1f}", file=sys.stderr)
        if r + 1 >= low and time.perf_counter() + durations[-1] > deadline:
            break
    return {"peak_gflops": max(max(p) for p in peaks), "peak_rounds": [max(p) for p in peaks],
            "peak_samples": sum(map(len, peaks)), "load_per_round": loads, "round_seconds": durations,
            "rounds": len(durations)}


# ---- analysis -------------------------------------------------------------------------------------

def comparisons(nets: list[Net], cells: list[Cell]) -> list[dict]:
    """archspec's export in onnxruntime against each eager torch, and against torchvision's export."""
    by = {(c.net, c.backend, c.batch): c for c in cells}
    pairs = [("onnxruntime", "torch"), ("onnxruntime", "tv-torch"), ("onnxruntime", "tv-onnxruntime"),
             ("torch", "tv-torch"), ("torchscript", "torch"), ("torch-compile", "torch")]
    out = []
    for net in nets:
        for batch in net.batches:
            for a, b in pairs:
                ca, cb = by.get((net.key, a, batch)), by.get((net.key, b, batch))
                if ca and cb:
                    per_round = [x / y for x, y in zip(ca.rounds, cb.rounds)]
                    out.append({"net": net.key, "batch": batch, "a": a, "b": b, "ratio": ca.best / cb.best,
                                "per_round": per_round, "spread": max(per_round) / min(per_round) - 1,
                                "halves": halves(ca.rounds, cb.rounds)})
    return out


def halves(a: list[float], b: list[float]) -> float:
    """How far the best-of-rounds ratio moves between the odd and the even rounds: its own noise."""
    if len(a) < 2:
        return 0.0
    odd, even = min(a[0::2]) / min(b[0::2]), min(a[1::2]) / min(b[1::2])
    return max(odd, even) / min(odd, even) - 1


def verdict(ratio: float, band: float) -> str:
    if ratio <= 1 - EQUAL_BAND:
        return "faster"
    if ratio <= 1 + EQUAL_BAND:
        return "equal"
    return f"within the noise ({band * 100:.0f}%)" if ratio <= 1 + band else "**SLOWER**"


def records(cells: list[Cell], nets: list[Net], peak: float) -> list[dict]:
    macs = {n.key: n.macs for n in nets}
    out = []
    for c in cells:
        flops = 2 * macs[c.net] * c.batch / c.best / 1e9
        out.append({"network": c.net, "backend": c.backend, "batch": c.batch, "best_ms": c.best * 1e3,
                    "median_of_rounds_ms": statistics.median(c.rounds) * 1e3,
                    "round_spread": max(c.rounds) / min(c.rounds) - 1, "rounds_ms": [t * 1e3 for t in c.rounds],
                    "iters_per_round": c.iters, "first_run_ms": c.first_s * 1e3, "throughput": c.batch / c.best,
                    "gflops": flops, "fraction_of_peak": flops / peak})
    return out


# ---- the report -----------------------------------------------------------------------------------

def table(head: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---:" if i else "---" for i in range(len(head))) + "|"]
    return lines + ["| " + " | ".join(r) + " |" for r in rows] + [""]


def ms(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:.2f}" if v >= 1 else f"{v:.3f}"


def contention_note(meta: dict, band: float) -> list[str]:
    """Say so when other work shared the cores: torch's OpenMP threads suffer most from it."""
    load = max([meta["load_before"], *meta["load_per_round"]])
    cores = os.cpu_count() or 1
    lines = []
    if load > cores + 1:  # this run's own threads count too
        lines.append(f"**The machine was oversubscribed during this run** (1-minute load average up to {load:.1f} "
                     f"on {cores} cores: other work shared them). Under oversubscription torch's OpenMP threads, with "
                     "their default wait policy (spin, then sleep), can lose far more than onnxruntime's own thread "
                     "pool; `--passive-wait` makes the idle threads of both sleep at once, which spares torch most of "
                     f"that loss. This run's wait policy: **{meta['wait_policy']}**. Even so, every figure here "
                     "carries the noise below: rerun on a quiet machine before quoting small differences.")
    if band > 0.25:
        lines.append(f"A best-of-rounds ratio moved by {band * 100:.0f}% (median) between the odd and the even "
                     "rounds: too much for firm verdicts; read them as indicative only.")
    return [line for entry in lines for line in (entry, "")]


MARKS = {"faster": "✔", "equal": "✔", "noise": "≈", "SLOWER": "**✘**"}


def mark(ratio: float, band: float) -> str:
    v = verdict(ratio, band)
    return f"{ratio:.2f} " + next(m for k, m in MARKS.items() if k in v)


def headline_section(comps: list[dict], band: float, device: str) -> list[str]:
    ours = [c for c in comps if c["a"] == "onnxruntime" and c["batch"] in (1, 8)]
    misses = sum("SLOWER" in verdict(c["ratio"], band) for c in ours)
    unsure = sum("noise" in verdict(c["ratio"], band) for c in ours)
    summary = (f"{misses} of {len(ours)} comparisons NOT met" if misses else f"all {len(ours)} comparisons met") + \
        (f"; {unsure} of them only within the noise" if unsure else "")
    against = [b for b in ("torch", "tv-torch", "tv-onnxruntime") if any(c["b"] == b for c in ours)]
    head = ["network"] + [f"/ `{b}` at {n}" for b in against for n in (1, 8)]
    rows = []
    for net in dict.fromkeys(c["net"] for c in ours):
        got = {(c["b"], c["batch"]): c["ratio"] for c in ours if c["net"] == net}
        rows.append([net] + [mark(got[b, n], band) if (b, n) in got else "" for b in against for n in (1, 8)])
    return (["## Headline", "",
             f"archspec's ONNX export in onnxruntime (`onnxruntime`) on the {device}, as a ratio of best-of-rounds "
             "times (below 1: it is faster) against torch eager on the same network (`torch`: archspec's module; "
             "`tv-torch`: torchvision's hand-written model) and against torchvision's model exported by "
             "`torch.onnx.export` (`tv-onnxruntime`). The targets: at most 1 against each, at batch 1 and 8. "
             f"✔ faster, or equal within 5%; ≈ slower by more than that but within this run's noise for a "
             f"best-of-rounds ratio ({band * 100:.0f}%, under Noise); ✘ slower. Each ratio's rounds are under "
             "\"Every comparison\".", "",
             f"**Result: {summary}.**", ""] + table(head, rows))


def peak_section(recs: list[dict], meta: dict) -> list[str]:
    best = sorted(recs, key=lambda r: -r["fraction_of_peak"])[:5]
    top = "; ".join(f"{r['network']} `{r['backend']}` batch {r['batch']} {r['fraction_of_peak'] * 100:.0f}%"
                    for r in best)
    over = (" Above 100%: the network ran faster than torch's own matrix multiply did at its best; the peak is "
            "that measured one, not the hardware's." if best[0]["fraction_of_peak"] > 1 else "")
    return ["## Achieved GFLOP/s against the matrix-multiply peak", "",
            f"The device's fp32 peak as torch measures it: **{meta['peak_gflops']:.1f} GFLOP/s** (`torch.mm` of "
            f"square matrices, {'8192' if meta['device'] == 'cuda' else '1024'} wide, sampled before each network in "
            f"every round, the best of {meta['peak_samples'] * 3} calls; per "
            f"round: {', '.join(f'{p:.0f}' for p in meta['peak_rounds'])}). GFLOP/s = 2 x archspec's static MACs x "
            f"batch / best time. Highest fractions: {top}." + over, "",
            "![fraction of peak](plots/fraction_of_peak.png)", ""]


def noise_section(comps: list[dict], recs: list[dict], meta: dict) -> list[str]:
    spreads = sorted(c["spread"] for c in comps)
    split = sorted(c["halves"] for c in comps)
    cells = sorted(r["round_spread"] for r in recs)
    return ["## Noise", "",
            f"- {meta['rounds']} rounds, {', '.join(f'{s:.0f}' for s in meta['round_seconds'])} s each; the "
            f"1-minute load average after each: {', '.join(f'{v:.1f}' for v in meta['load_per_round'])} "
            f"(on {os.cpu_count()} cores; {meta['load_before']:.1f} before the run).",
            f"- A best-of-rounds ratio (what the tables give) is as noisy as it moves between the best of the odd "
            f"rounds and the best of the even rounds: median **{statistics.median(split) * 100:.0f}%**, 90th "
            f"percentile {split[int(0.9 * (len(split) - 1))] * 100:.0f}%, worst {split[-1] * 100:.0f}%. The "
            "headline counts a ratio within the median (or 5%, if larger) of 1 as met.",
            f"- One round's ratio between two backends swings far more: spread (max / min - 1) over the rounds, "
            f"median {statistics.median(spreads) * 100:.0f}%, 90th percentile "
            f"{spreads[int(0.9 * (len(spreads) - 1))] * 100:.0f}%, worst {spreads[-1] * 100:.0f}%.",
            f"- One backend's round medians (worst / best - 1): median {statistics.median(cells) * 100:.0f}%, "
            f"worst {cells[-1] * 100:.0f}%.", ""]


def results_section(recs: list[dict], nets: list[Net]) -> list[str]:
    lines = ["## Every network, batch and backend", "",
             "Best: the best round's median; rounds: the median of the rounds' medians; spread: worst round / best "
             "round - 1; first run: session creation or compilation plus one call, never in the timings.", ""]
    head = ["network", "batch", "backend", "best ms", "rounds ms", "spread", "samples/s", "GFLOP/s", "% of peak",
            "first run ms"]
    rows = [[r["network"], str(r["batch"]), f"`{r['backend']}`", ms(r["best_ms"]), ms(r["median_of_rounds_ms"]),
             f"{r['round_spread'] * 100:.0f}%", f"{r['throughput']:,.1f}", f"{r['gflops']:.1f}",
             f"{r['fraction_of_peak'] * 100:.1f}", f"{r['first_run_ms']:,.0f}"] for r in recs]
    lines += table(head, rows) + ["![latency against batch size](plots/latency_vs_batch.png)", "",
                                  "## The backends compute the same function", "",
                                  "Max abs difference of each backend's output from eager torch at batch 1 "
                                  "(torchvision's model for the torchvision rows; every side has torchvision's "
                                  "weights), and the ONNX graphs' node counts. A convolution whose bias the graph "
                                  "computes at run time (`torch.onnx.export` builds a zero bias for each bias-free "
                                  "convolution from Shape, Expand and CastLike) keeps onnxruntime from folding the "
                                  "batch norm after it into the convolution.", ""]
    rows = [[n.key, ", ".join(f"`{b}` {d:.1e}" for b, d in n.agreement.items()),
             ", ".join(f"`{b}` {k}" for b, k in n.onnx_nodes.items())] for n in nets]
    return lines + table(["network", "max abs difference", "ONNX nodes"], rows)


def comparisons_section(comps: list[dict], band: float) -> list[str]:
    rows = [[c["net"], str(c["batch"]), f"`{c['a']}` / `{c['b']}`", f"{c['ratio']:.3f}", f"{c['halves'] * 100:.0f}%",
             ", ".join(f"{r:.2f}" for r in c["per_round"]), f"{c['spread'] * 100:.0f}%", verdict(c["ratio"], band)]
            for c in comps]
    return (["## Every comparison, with its noise", "",
             "The ratio of best-of-rounds times; odd / even: how far that ratio moves between the best of the odd "
             "rounds and the best of the even ones; each round's own ratio, and their spread (max / min - 1). "
             "Besides the headline's: archspec's eager module against torchvision's (the same layers: expect 1), "
             "and TorchScript or torch.compile (when timed) against eager torch.", ""]
            + table(["network", "batch", "ratio of", "ratio", "odd / even", "per round", "spread", "verdict"], rows))


def inputs_line(env: dict) -> str:
    book = ", ".join(f"{k}, whose spec takes any size, at {'x'.join(map(str, v))}" for k, v in BOOK_INPUTS.items())
    tv = (f"; {', '.join(env['fixed_inputs'])}, whose specs take any size, at "
          f"{'x'.join(map(str, zoo.SYMBOLIC_INPUT))} (torchvision's references run segmentation at 520x520)"
          if env["fixed_inputs"] else "")
    return (f"- Inputs: each spec's own (its `input`), at batch 1 and 8 (and 32 where a sample costs at most "
            f"{SMALL_MACS / 1e6:.0f}M MACs); {book}{tv}.")


def machine_section(env: dict, argv: list[str]) -> list[str]:
    gpu = ("GPU figures: **not measured** here: this machine has no GPU (torch.cuda.is_available() is False). The "
           "script runs the GPU path unchanged where torch sees one: torch eager on cuda, onnxruntime with "
           "CUDAExecutionProvider and IO binding, after checking the session really started that provider."
           if env["device"] == "cpu" else f"Device: {env['gpu']}.")
    return ["## Machine, command and method", "",
            f"- Command: `{' '.join(shlex.quote(a) for a in argv)}`, from the repository root; "
            f"{env['date']}; {env['wall_s']:.0f} s in all.",
            f"- Machine: {env['cpu']}, {env['cores']} cores; {env['platform']}; device **{env['device']}**.",
            f"- {gpu}",
            "- Versions: " + ", ".join(f"{k} {env[k]}" for k in ("python", "archspec", "torch", "torchvision",
                                                                   "onnxruntime", "onnx", "onnxscript")) + ".",
            f"- Threads: {env['threads']} for torch (`torch.set_num_threads`) and onnxruntime "
            f"(`intra_op_num_threads`); onnxruntime providers used: {', '.join(env['providers_used'])}; "
            f"idle threads' wait policy: {env['wait_policy']}.",
            inputs_line(env),
            "- One process, interleaved: each round visits every network, batch and backend, the backends in an "
            "order rotated from round to round; a round's figure for a cell is the median of its iterations "
            f"(enough for about {CELL_TARGET_S} s, 1 to 30; one untimed call first where a call is short). The "
            "per-backend processes and peak memory are `archspec bench`'s job; this script compares speed.",
            f"- Backends: archspec's {', '.join(env['backends'])}, and torchvision's `tv-torch` and `tv-onnxruntime` "
            "for the torchvision specs (which skip TorchScript). TorchScript and `torch-compile` are timed on request "
            "(`--backends`): on this CPU torch.compile takes about a minute per network and batch size to compile; "
            "tests/test_bench.py runs every backend through `archspec bench`.", ""]


ATTENTION = ("torchvision/vit_b_16", "torchvision/swin_t")


def attention_section(comps: list[dict]) -> list[str]:
    """Whether the attention networks' ONNX is slower than torch, and why not (the issue asked why, if so)."""
    ratio = {(c["net"], c["batch"], c["b"]): c["ratio"] for c in comps if c["a"] == "onnxruntime"}
    rows = [[net.split("/")[1], *(f"{ratio[(net, b, peer)]:.2f}" for peer in ("torch", "tv-onnxruntime")
                                  for b in (1, 8))] for net in ATTENTION if (net, 1, "torch") in ratio
            and (net, 8, "tv-onnxruntime") in ratio]
    if not rows:
        return []
    return ["## Attention in onnxruntime", "",
            "ViT's `nn.MultiheadAttention` and Swin's shifted-window attention reach ONNX as torch's exporter "
            "decomposes them: MatMul, Softmax and MatMul with Reshapes and Transposes around them, and the "
            "projections as Gemm/MatMul (12 Softmax nodes for ViT-B/16's 12 layers); torchvision's model, through "
            "the same exporter, ran as fast. In this run onnxruntime was not slower than torch on them (ratios of "
            "best-of-rounds times, below 1: onnxruntime faster):", ""] + \
        table(["network", "/ `torch` at 1", "/ `torch` at 8", "/ `tv-onnxruntime` at 1", "/ `tv-onnxruntime` at 8"],
              rows) + \
        ["onnxruntime's fused attention contrib ops are not used: its transformer optimizer "
         "(`onnxruntime.transformers.optimizer`, model type `vit`) fuses only the GELUs and layer norms of this "
         "graph, not its attention (its patterns do not match this exporter's form); that made ViT-B/16 3.5% faster at "
         "batch 1 and 8 in one run of benchmarks/bench_attention.py (see benchmarks/README.md, \"Attention\").", ""]


def write_report(nets, cells, meta: dict, env: dict, argv: list[str], out: Path) -> dict:
    recs = records(cells, nets, meta["peak_gflops"])
    comps = comparisons(nets, cells)
    band = max(EQUAL_BAND, statistics.median(c["halves"] for c in comps)) if comps else EQUAL_BAND
    plots(recs, nets, meta["peak_gflops"], out / "plots")
    lines = ["# archspec on every backend: benchmark results", "",
             "Written by `benchmarks/bench_backends.py`; rerun it to refresh this file and the plots.", ""]
    if env["device"] == "cpu":
        lines += ["> **GPU figures were not measured: there is no GPU on this machine.** Everything below is "
                  "the CPU. The script runs the GPU path unchanged on a machine with one.", ""]
    lines += headline_section(comps, band, env["device"]) + contention_note(meta, band)
    lines += peak_section(recs, meta) + noise_section(comps, recs, meta)
    lines += attention_section(comps)
    lines += results_section(recs, nets) + comparisons_section(comps, band) + machine_section(env, argv)
    (out / "RESULTS.md").write_text("\n".join(lines))
    data = {"environment": env, "measurement": meta, "equal_band": band, "results": recs, "comparisons": comps,
            "agreement": {n.key: n.agreement for n in nets}, "onnx_nodes": {n.key: n.onnx_nodes for n in nets}}
    (out / "backends_results.json").write_text(json.dumps(data, indent=1) + "\n")
    return data


def plots(recs: list[dict], nets: list[Net], peak: float, folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    plain = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}")
    backends = list(dict.fromkeys(r["backend"] for r in recs))
    colours = {b: plt.cm.tab10(i) for i, b in enumerate(backends)}
    cols = min(4, len(nets))
    rows = math.ceil(len(nets) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.2 * rows), squeeze=False)
    for ax, net in zip(axes.flat, nets):
        for b in backends:
            pts = sorted((r["batch"], r["best_ms"]) for r in recs if r["network"] == net.key and r["backend"] == b)
            if pts:
                ax.plot(*zip(*pts), marker="o", label=b, color=colours[b])
        ax.set(title=net.key, xscale="log", yscale="log", xlabel="batch", ylabel="ms (best of rounds)")
        ax.set_xticks(net.batches, [str(b) for b in net.batches], minor=False)
        ax.set_xticks([], minor=True)
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(plain)
    for ax in axes.flat[len(nets):]:
        ax.axis("off")
    handles = [plt.Line2D([], [], color=colours[b], marker="o", label=b) for b in backends]
    fig.legend(handles=handles, loc="lower center", ncol=len(backends), fontsize=9)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(folder / "latency_vs_batch.png", dpi=90)
    plt.close(fig)
    fraction_plot(recs, nets, backends, colours, peak, folder)


def fraction_plot(recs, nets, backends, colours, peak: float, folder: Path) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 0.45 * len(nets) * len(backends) / 2 + 2), sharey=True)
    for ax, batch in zip(axes, (1, 8)):
        width = 0.8 / len(backends)
        for i, b in enumerate(backends):
            vals = [next((r["fraction_of_peak"] * 100 for r in recs if r["network"] == n.key and r["backend"] == b
                          and r["batch"] == batch), 0) for n in nets]
            ax.barh([k + i * width for k in range(len(nets))], vals, height=width, label=b, color=colours[b])
        ax.set(title=f"batch {batch}", xlabel=f"% of the torch.mm peak ({peak:.0f} GFLOP/s)")
        ax.set_yticks([k + 0.4 - width / 2 for k in range(len(nets))], [n.key for n in nets])
    axes[0].invert_yaxis()  # the axes share y: once is enough
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(folder / "fraction_of_peak.png", dpi=90)
    plt.close(fig)


# ---- the run ----------------------------------------------------------------------------------------

def environment(device: str, threads: int, nets: list[Net]) -> dict:
    from importlib import metadata

    import onnxruntime
    import torch

    import archspec

    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), cpu)
    env = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "device": device, "cpu": cpu,
           "cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
           "archspec": archspec.__version__, "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
           "threads": threads, "torch_threads": torch.get_num_threads(),
           "providers_used": sorted(PROVIDERS_STARTED)}
    for pkg in ("torchvision", "onnx", "onnxscript"):
        env[pkg] = metadata.version(pkg)
    if device == "cuda":
        env["gpu"] = torch.cuda.get_device_name(0)
    return env


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="lenet, the book's resnet18 and torchvision's, 3 rounds")
    ap.add_argument("--torchvision", default="classic", metavar="NAMES",
                    help="torchvision networks, comma-separated names and groups: classic (vgg11, resnet18, "
                         "resnet50, resnext50_32x4d), new (one of each family added since: " + ", ".join(zoo.NEW) +
                         "), all (every one torchvision builds: hours here); default classic")
    ap.add_argument("--book", action=argparse.BooleanOptionalAction, default=True,
                    help="the networks of specs/*.arch too (default: yes)")
    ap.add_argument("--backends", default="torch,onnxruntime",
                    help="archspec's backends: torch, torchscript, torch-compile, onnxruntime (default "
                         "torch,onnxruntime); torchvision's two are added for the torchvision specs")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads for torch and onnxruntime (default 2)")
    ap.add_argument("--rounds", default="3,8", metavar="MIN,MAX", help="timed rounds (default 3,8)")
    ap.add_argument("--budget", type=float, default=None,
                    help="seconds for the whole run: rounds past the minimum stop there (default 150 quick, 540)")
    ap.add_argument("--out", default=str(OUT), help="the folder for RESULTS.md, the JSON and plots/")
    ap.add_argument("--passive-wait", action="store_true",
                    help="idle threads sleep at once instead of spinning, in torch (OMP_WAIT_POLICY=PASSIVE) and "
                         "onnxruntime (allow_spinning 0): fairer to both on a machine shared with other work")
    args = ap.parse_args()
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    if args.passive_wait:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"  # read when torch's OpenMP starts, so before `import torch`
    import torch

    torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    backends = [b for b in args.backends.split(",") if b in ARCHSPEC]
    rounds = tuple(int(x) for x in args.rounds.split(","))
    deadline = started + (args.budget or (150.0 if args.quick else 540.0))
    nets, cells = [], []
    with tempfile.TemporaryDirectory(prefix="archspec-bench-") as tmp:
        for path, network, tv in networks(args.quick, args.book, args.torchvision):
            t0 = time.perf_counter()
            net = load_net(path, network, tv, backends, Setting(device, args.threads, args.passive_wait, tmp))
            nets.append(net)
            cells += prepare(net)
            print(f"{net.key}: ready in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        meta = measure(cells, device, (rounds[0], rounds[-1]), deadline)
    meta.update(device=device, load_before=load_before,
                wait_policy="passive" if args.passive_wait else "the default (spinning, then sleeping)")
    env = environment(device, args.threads, nets)
    env.update(backends=backends, wait_policy=meta["wait_policy"],
               fixed_inputs=[n.key for n in nets if n.key.startswith("torchvision/") and
                             zoo.input_of(n.key.split("/", 1)[1])])
    env["wall_s"] = time.perf_counter() - started
    argv = ["python", "benchmarks/bench_backends.py", *sys.argv[1:]]
    data = write_report(nets, cells, meta, env, argv, Path(args.out))
    for c in data["comparisons"]:
        if c["a"] == "onnxruntime":
            print(f"{c['net']:28} batch {c['batch']:>2}  {c['a']}/{c['b']:15} {c['ratio']:.3f}  "
                  f"{verdict(c['ratio'], data['equal_band'])}")


if __name__ == "__main__":
    main()
