"""Eager latency of each generated specs/torchvision/ module against torchvision's hand-written one.

    python benchmarks/bench_codegen.py --out benchmarks/codegen_results.md   # about 12 minutes on 2 cores
    python benchmarks/bench_codegen.py --networks new,resnet34               # groups and names

The networks: the four compared from the start (`classic`: vgg11, resnet18, resnet50,
resnext50_32x4d) and one of each family added since (`new`: MobileNetV2, MobileNetV3-Large,
EfficientNet-B0, RegNetY-400MF, ConvNeXt-Tiny, DenseNet-121, ViT-B/16, Swin-T and
DeepLabV3-MobileNetV3-Large), each loaded from its family file of specs/torchvision/ at its spec's
input (224x224, 299x299 for Inception v3; the segmentation network, whose spec takes any size, at
224x224 where torchvision's references use 520x520: see benchmarks/zoo.py).

Both models hold the same weights (torchvision's, loaded strictly into the generated module),
run in eval mode under torch.no_grad() on 2 threads. The two are interleaved: each round times
a few iterations of one, then of the other, alternating which goes first, so that a slow spell
of the machine hits both alike. A round's ratio is generated / torchvision; the table gives the
ratio of the best rounds (min / min), the median of the per-round ratios and their spread (the
run-to-run noise). The target: the generated module is at most 2% slower beyond that noise.
Each round also records the process's CPU time, whose ratio other work on a shared machine
disturbs far less than the wall clock's.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision
import zoo

import archspec

NETWORKS = "classic,new"
TARGET = 1.02


@dataclass
class Result:
    network: str
    input: tuple[int, ...]
    batch: int
    iters: int
    ours: list[float]  # wall-clock seconds per iteration, one per round
    theirs: list[float]
    ours_cpu: list[float]  # the process's CPU seconds per iteration, one per round
    theirs_cpu: list[float]

    @property
    def ratios(self) -> list[float]:
        return [a / b for a, b in zip(self.ours, self.theirs)]

    @property
    def cpu_ratio(self) -> float:
        """The median per-round ratio of CPU time: what each model costs, barely moved by other work."""
        return statistics.median(a / b for a, b in zip(self.ours_cpu, self.theirs_cpu))

    @property
    def best_ratio(self) -> float:
        return min(self.ours) / min(self.theirs)

    @property
    def noise(self) -> float:
        """Half the spread of the per-round ratios."""
        return (max(self.ratios) - min(self.ratios)) / 2

    @property
    def within(self) -> bool:
        return min(self.best_ratio, statistics.median(self.ratios)) <= TARGET + self.noise


def per_iteration(model: torch.nn.Module, x: torch.Tensor, iters: int) -> tuple[float, float]:
    """(wall-clock, CPU) seconds per iteration."""
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(iters):
        model(x)
    return (time.perf_counter() - start) / iters, (time.process_time() - cpu) / iters


def pair(name: str) -> tuple[torch.nn.Module, torch.nn.Module, tuple[int, ...]]:
    """The generated module and torchvision's, with torchvision's weights in both, and the input shape."""
    torch.manual_seed(0)
    theirs = zoo.torchvision_model(name).eval()  # random weights: nothing is downloaded
    spec = zoo.load(name)
    ours = spec.to_torch().eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    return ours, theirs, tuple(spec.network.input_shape)


def bench(name: str, batch: int, rounds: int, round_seconds: float) -> Result:
    ours, theirs, shape = pair(name)
    x = torch.randn(batch, *shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        # the same network (a segmentation model's dicts of outputs are compared key by key)
        torch.testing.assert_close(ours(x), theirs(x), rtol=1e-4, atol=1e-5)
        per_iteration(ours, x, 1), per_iteration(theirs, x, 1)  # warm-up
        once = min(per_iteration(theirs, x, 1)[0] for _ in range(3))
        iters = max(1, round(round_seconds / once))
        res = Result(name, shape, batch, iters, [], [], [], [])
        for r in range(rounds):
            order = ((ours, res.ours, res.ours_cpu), (theirs, res.theirs, res.theirs_cpu))
            for model, wall, cpu in order if r % 2 == 0 else order[::-1]:
                w, c = per_iteration(model, x, iters)
                wall.append(w)
                cpu.append(c)
    print(f"{name:16} batch {batch}: ratio {res.best_ratio:.3f} (median {statistics.median(res.ratios):.3f}, "
          f"per-round {min(res.ratios):.3f}..{max(res.ratios):.3f}; CPU time {res.cpu_ratio:.3f}), "
          f"{iters} iters/round", flush=True)
    return res


def sized(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


def machine() -> list[str]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            names = [ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    versions = (f"Python {platform.python_version()}, torch {torch.__version__}, torchvision "
                f"{torchvision.__version__}, archspec {archspec.__version__}; {platform.platform()}")
    threads = f"torch threads: {torch.get_num_threads()}; OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}"
    return [f"- CPU: {cpu}, {os.cpu_count()} logical cores; {threads}", f"- {versions}"]


def report(results: list[Result], args: argparse.Namespace, seconds: float, loads: tuple) -> str:
    command = "python benchmarks/bench_codegen.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    when = f"{datetime.date.today().isoformat()}, {seconds:.0f} s in all"
    method = (f"Eval mode, torch.no_grad(), the same weights (torchvision's) in both, each network at its spec's "
              f"input (the segmentation network, whose spec takes any size, at {sized(zoo.SYMBOLIC_INPUT)}; "
              f"torchvision's references use 520x520). {args.rounds} rounds, "
              "each timing the given iterations of one model, then of the other (which goes first "
              "alternates). Times are the best round's, per iteration. The ratio is generated / torchvision: "
              "of the best rounds, and the median and range of the per-round ratios; the noise is half that "
              f"range. Target: at most {TARGET} beyond the noise. The CPU-time ratio is the median per-round "
              "ratio of the process's CPU time (all threads): what each model costs, which other work on the "
              "machine moves far less than it moves the wall clock.")
    header = ("| network | input | batch | iters/round | generated ms | torchvision ms | ratio (best) | median ratio "
              "| per-round range | noise | within target | CPU-time ratio |")
    lines = [
        "# Generated modules against torchvision: eager latency",
        "",
        f"Command: `{command.strip()}` (from the repository root), {when}.",
        "",
        *machine(),
        f"- load average at the start and the end: {loads[0]:.2f}, {loads[1]:.2f}",
        "",
        method,
        "",
        header,
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(f"| {r.network} | {sized(r.input)} | {r.batch} | {r.iters} | {min(r.ours) * 1e3:.1f} "
                     f"| {min(r.theirs) * 1e3:.1f} | {r.best_ratio:.3f} | {statistics.median(r.ratios):.3f} "
                     f"| {min(r.ratios):.3f}..{max(r.ratios):.3f} "
                     f"| ±{r.noise:.3f} | {'yes' if r.within else 'no'} | {r.cpu_ratio:.3f} |")
    noisy = [f"{r.network} at batch {r.batch}" for r in results if r.noise > TARGET - 1]
    if noisy:
        caveat = (f"The noise exceeds the {TARGET - 1:.0%} being tested for {len(noisy)} of {len(results)} rows "
                  f"({', '.join(noisy)}): there a 'yes' says only that no difference stood out of the noise. "
                  "Run again on a quiet machine (a load average below the thread count) to resolve 2%.")
        lines += ["", caveat]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--networks", default=NETWORKS,
                   help="comma-separated torchvision names and groups: classic, new, all (default classic,new)")
    p.add_argument("--batches", default="1,8", help="comma-separated batch sizes (default 1,8)")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--round-seconds", type=float, default=0.4,
                   help="about how long each model runs per round; sets the iterations (default 0.4)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", help="write the Markdown table here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    start, load0 = time.perf_counter(), os.getloadavg()[0]
    results = [bench(name, int(b), args.rounds, args.round_seconds)
               for name in zoo.select(args.networks) for b in args.batches.split(",")]
    text = report(results, args, time.perf_counter() - start, (load0, os.getloadavg()[0]))
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    print(text)
    return 0 if all(r.within for r in results) else 1


if __name__ == "__main__":
    if "OMP_WAIT_POLICY" not in os.environ:
        # Idle OpenMP workers should sleep, not spin: on a shared machine spinning workers make
        # 2-thread timings up to ten times slower and erratic, on a quiet one sleeping costs next to
        # nothing. OpenMP reads this when torch loads it, so start again with it set.
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
    sys.exit(main())
