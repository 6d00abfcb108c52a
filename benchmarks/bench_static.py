"""Time archspec's static path against `import torch` and torchinfo, and show that it scales linearly.

    python benchmarks/bench_static.py --rounds 5 --out benchmarks/static_results.md

Every command runs as a subprocess, interpreter start included, as a user would type it. The
commands are interleaved: each round runs every one of them once, in a rotated order, so a slow
spell of the machine hits all of them alike; the tables give the best round, the median and the
spread (worst / best - 1). A warm-up round runs first and is not counted: it fills the page
cache, the bytecode cache (the harness drops PYTHONDONTWRITEBYTECODE, so archspec runs from
.pyc files as any installed package does) and lark's grammar cache.

Measured in one run: `python -c "import torch"`; `archspec check` of the whole zoo in one
command; `archspec summary --format json` of each torchvision spec beside torchinfo's summary of
the same torchvision model (its imports and the model's construction included, as a user pays
them); and a generated network of N residual blocks, N = 125 .. 1000, both as commands and
in-process (a worker process times each stage after its imports, so the cost per block shows).
"""

from __future__ import annotations

import argparse
import datetime
import glob
import importlib.util
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TORCHVISION = ("vgg11", "resnet18", "resnet50", "resnext50_32x4d")
BLOCKS = (125, 250, 500, 1000)
ZOO_GLOBS = ("specs/*.arch", "specs/torchvision/*.arch")
REQUIRED_RATIO = 0.2  # the zoo check may take at most a fifth of `import torch`
NNEF_MS = 90  # the aim: the NNEF tools validate VGG-11's shapes in about this, per command
PACKAGES = ("archspec", "lark", "pydantic", "pydantic-core", "torch", "torchvision", "torchinfo")
HEAVY = ("torch", "torchvision", "onnx", "onnxruntime", "numpy")  # never on the static path

TORCHINFO = ("import torchinfo, torchvision; s = torchinfo.summary(torchvision.models.{name}(), "
             "input_size=(1, 3, 224, 224), verbose=0); print(s.total_params)")

# The scaling network: a stem, N residual blocks (specs/residual.arch, imported), a head.
DEEP = """import "residual.arch"

network deep{n}() {{
    input [3, 32, 32]
    conv2d(64, kernel=3, padding=1)  batchnorm2d  relu
    repeat {n} {{ residual(64) }}
    adaptive_avgpool2d(1)  flatten  linear(10)
}}
"""


@dataclass
class Cmd:
    key: str
    shown: str  # the command as a user would type it
    argv: list[str]
    times: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # user + system time of the process
    outputs: list[str] = field(default_factory=list)

    @property
    def best(self) -> float:
        return min(self.times)

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def spread(self) -> float:
        return max(self.times) / min(self.times) - 1


def archspec_cmd(key: str, *args: str, shown: str | None = None) -> Cmd:
    return Cmd(key, f"python -m archspec {shown or ' '.join(args)}", [sys.executable, "-m", "archspec", *args])


def python_cmd(key: str, code: str) -> Cmd:
    return Cmd(key, f"python -c {shlex.quote(code)}", [sys.executable, "-c", code])


def zoo_files() -> list[str]:
    return [f for pattern in ZOO_GLOBS for f in sorted(glob.glob(pattern, root_dir=REPO))]


def deep_specs(folder: Path, blocks: list[int]) -> dict[int, str]:
    (folder / "residual.arch").write_text((REPO / "specs" / "residual.arch").read_text())
    paths = {}
    for n in blocks:
        path = folder / f"deep{n}.arch"
        path.write_text(DEEP.format(n=n))
        paths[n] = str(path)
    return paths


def commands(deep: dict[int, str], with_torch: bool) -> list[Cmd]:
    cmds = [python_cmd("python", "pass"),
            archspec_cmd("zoo", "check", *zoo_files(), shown="check " + " ".join(ZOO_GLOBS))]
    for name in TORCHVISION:
        cmds.append(archspec_cmd(f"summary:{name}", "summary", "--format", "json", f"specs/torchvision/{name}.arch"))
    for n, path in deep.items():
        cmds.append(archspec_cmd(f"deep_check:{n}", "check", path, shown=f"check deep{n}.arch"))
        cmds.append(archspec_cmd(f"deep_summary:{n}", "summary", "--format", "json", path,
                                 shown=f"summary --format json deep{n}.arch"))
    me = str(Path(__file__).resolve())
    cmds.append(Cmd("worker_zoo", "python benchmarks/bench_static.py --worker zoo (in-process, after imports)",
                    [sys.executable, me, "--worker", "zoo", *zoo_files()]))
    cmds.append(Cmd("worker_deep", "python benchmarks/bench_static.py --worker deep (in-process stages)",
                    [sys.executable, me, "--worker", "deep", *deep.values()]))
    if with_torch:
        cmds.append(python_cmd("torch", "import torch"))
        for name in TORCHVISION:
            cmd = python_cmd(f"torchinfo:{name}", TORCHINFO.format(name=name))
            cmd.shown = f"python -c '... torchinfo.summary(torchvision.models.{name}(), ...)'"
            cmds.append(cmd)
    return cmds


def bench_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # installed packages run from their .pyc files
    return env


def run_once(cmd: Cmd, env: dict[str, str]) -> tuple[float, float, str]:
    """Wall time, CPU time (user + system, the child's alone: commands run one at a time) and stdout."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd.argv, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"bench_static: `{cmd.shown}` failed with status {proc.returncode}:\n{proc.stderr[-3000:]}")
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return elapsed, cpu, proc.stdout


def measure(cmds: list[Cmd], rounds: int, env: dict[str, str]) -> None:
    for cmd in cmds:  # warm-up, not counted
        run_once(cmd, env)
    for r in range(rounds):
        shift = r * len(cmds) // rounds  # rotate the order so no command always runs first
        for cmd in cmds[shift:] + cmds[:shift]:
            elapsed, cpu, out = run_once(cmd, env)
            cmd.times.append(elapsed)
            cmd.cpu.append(cpu)
            cmd.outputs.append(out)
        print(f"  round {r + 1}/{rounds} done", file=sys.stderr)


# ---- the in-process workers: times after the imports, one JSON object per run -----------------

def worker(kind: str, paths: list[str]) -> None:
    from archspec.errors import Sources
    from archspec.loader import load_file
    from archspec.parse import parse_text
    from archspec.passes import Overrides, expand, resolve, run_passes
    from archspec.summary import as_dict

    parse_text("network warm() { input [1] relu }")  # load the grammar before the clock starts
    if kind == "zoo":  # what `archspec check` does with the zoo, less the imports and the printing
        start = time.perf_counter()
        for path in paths:
            program = resolve(load_file(path, Sources()))
            for name in program.own:
                if program.definitions[name].kind == "network":
                    run_passes(expand(program, name, Overrides()))
        print(json.dumps({"zoo": time.perf_counter() - start}))
        return
    for path in sorted({str(Path(p).parent / "residual.arch") for p in paths}):
        load_file(path, Sources())  # the imported block file, parsed once, as for every N alike
    out = {}
    for path in paths:
        t0 = time.perf_counter()
        program = resolve(load_file(path, Sources()))
        t1 = time.perf_counter()
        net = run_passes(expand(program, None, Overrides()))
        t2 = time.perf_counter()
        json.dumps(as_dict(net, 1), indent=2)
        t3 = time.perf_counter()
        out[path] = {"parse": t1 - t0, "shapes": t2 - t1, "check": t2 - t0, "summary": t3 - t0,
                     "layers": _count_layers(net.root)}
    print(json.dumps(out))


def _count_layers(node) -> int:
    return (node.kind == "layer") + sum(_count_layers(c) for c in node.children)


# ---- where the zoo check's time goes: one more run, with -X importtime -------------------------

@dataclass
class Imports:
    total: float  # seconds, summed over every module imported (importtime's own overhead included)
    by_package: dict[str, float]
    count: int
    heavy: list[str]  # HEAVY modules that were imported: none, on the static path


def import_profile(env: dict[str, str]) -> Imports:
    argv = [sys.executable, "-X", "importtime", "-m", "archspec", "check", *zoo_files()]
    proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    by_package: dict[str, float] = {}
    names = set()
    for line in proc.stderr.splitlines():
        parts = line.removeprefix("import time:").split("|")
        if len(parts) != 3 or not parts[0].strip().isdigit():
            continue
        name = parts[2].strip()
        names.add(name)
        root = name.split(".")[0]
        by_package[root] = by_package.get(root, 0.0) + int(parts[0]) / 1e6
    heavy = sorted(n for n in names if n.split(".")[0] in HEAVY)
    return Imports(sum(by_package.values()), by_package, len(names), heavy)


# ---- the report --------------------------------------------------------------------------------

def ms(seconds: float) -> str:
    v = seconds * 1000
    return f"{v:,.0f} ms" if v >= 100 else f"{v:.1f} ms"


def table(head: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---:" if i else "---" for i in range(len(head))) + "|"]
    return lines + ["| " + " | ".join(r) + " |" for r in rows] + [""]


def headline(c: dict[str, Cmd], with_torch: bool, scaling: dict) -> list[str]:
    zoo = c["zoo"]
    nets = sum(": ok, input" in line for line in zoo.outputs[-1].splitlines())
    lines = ["## Headline", "",
             (f"- `archspec check` of the whole zoo ({len(zoo_files())} files, {nets} networks) in one command, "
             f"interpreter start included: **{ms(zoo.best)}** (best of {len(zoo.times)} rounds; median "
             f"{ms(zoo.median)}; CPU time {ms(min(zoo.cpu))})."),
             f"- `python -c pass`, the interpreter alone: {ms(c['python'].best)}."]
    if with_torch:
        torch = c["torch"]
        ratio, med, cpu = zoo.best / torch.best, zoo.median / torch.median, min(zoo.cpu) / min(torch.cpu)
        verdict = "met" if ratio <= REQUIRED_RATIO else "NOT met"
        lines += [(f"- `python -c \"import torch\"`: {ms(torch.best)} (median {ms(torch.median)}). Zoo check / "
                  f"import torch = **{ratio:.3f}** (medians {med:.3f}, CPU times {cpu:.3f}); the requirement is at "
                  f"most {REQUIRED_RATIO} (= {ms(torch.best * REQUIRED_RATIO)} here): **{verdict}**.")]
        ratios = ", ".join(f"{n} {c[f'summary:{n}'].best / c[f'torchinfo:{n}'].best:.3f}" for n in TORCHVISION)
        lines.append(f"- `archspec summary --format json` / torchinfo's summary of the same torchvision model, "
                     f"both as commands: {ratios}.")
    lines.append(f"- The aim, the NNEF tools' {NNEF_MS} ms per command (measured on another machine): the zoo "
                 f"check takes {zoo.best * 1000 / NNEF_MS:.1f}x that here; the interpreter alone takes "
                 f"{ms(c['python'].best)} of it.")
    big, half = max(scaling), max(scaling) // 2
    if half in scaling:
        t_big, t_half = scaling[big]["check"], scaling[half]["check"]
        lines.append(f"- Scaling, in-process check: {big} residual blocks / {half} = **{t_big / t_half:.2f}x** "
                     f"(linear is 2.00x); {t_big / big * 1e6:.0f} µs per block at {big}.")
    return lines + [""]


def breakdown_section(c: dict[str, Cmd], imports: Imports) -> list[str]:
    work = min(json.loads(out)["zoo"] for out in c["worker_zoo"].outputs)
    nets = sum(": ok, input" in line for line in c["zoo"].outputs[-1].splitlines())
    top = sorted(imports.by_package.items(), key=lambda kv: -kv[1])[:10]
    rows = [[f"`{name}`", ms(t), f"{t / imports.total * 100:.0f}%"] for name, t in top]
    heavy = ", ".join(imports.heavy) if imports.heavy else "none"
    return (["## Where the zoo check's time goes", "",
             f"- The interpreter alone (`python -c pass`): {ms(c['python'].best)}.",
             (f"- Imports: {imports.count} modules, {ms(imports.total)} in one extra run with `-X importtime` "
             f"(which adds overhead of its own). Of {', '.join(HEAVY)}: {heavy} imported."),
             (f"- The work itself, in-process after the imports (load, resolve, expand, the passes; {nets} networks): "
             f"{ms(work)} (best of the rounds)."), "",
             "Import time by top-level package (self time of its modules, summed):", ""]
            + table(["package", "import time", "share"], rows))


def summary_section(c: dict[str, Cmd]) -> list[str]:
    rows = []
    for n in TORCHVISION:
        ours, theirs = c[f"summary:{n}"], c[f"torchinfo:{n}"]
        params = json.loads(ours.outputs[-1])["totals"]["params"]
        theirs_params = int(theirs.outputs[-1].split()[-1])
        agree = "yes" if params == theirs_params else f"NO ({params:,} vs {theirs_params:,})"
        rows.append([n, ms(ours.best), ms(theirs.best), f"{ours.best / theirs.best:.3f}",
                     f"{theirs.best / ours.best:.1f}x", f"{params:,}", agree])
    return (["## `archspec summary --format json` vs torchinfo", "",
             ("torchinfo: `torchinfo.summary(torchvision.models.NAME(), input_size=(1, 3, 224, 224), verbose=0)` in "
             "a fresh interpreter, imports and the model's construction included, as a user pays them. "
             "Best of the rounds."), ""]
            + table(["model", "archspec summary", "torchinfo", "ratio", "speed-up", "params", "params agree"], rows))


def scaling_stats(c: dict[str, Cmd], deep: dict[int, str]) -> dict[int, dict[str, float]]:
    """Best-of-rounds in-process stage times for each N."""
    runs = [json.loads(out) for out in c["worker_deep"].outputs]
    return {n: {stage: min(run[path][stage] for run in runs) for stage in runs[0][path]} for n, path in deep.items()}


def scaling_section(c: dict[str, Cmd], stats: dict[int, dict[str, float]]) -> list[str]:
    rows, prev = [], None
    for n, s in stats.items():
        marginal = "" if prev is None else f"{(s['check'] - stats[prev]['check']) / (n - prev) * 1e6:.0f} µs"
        growth = "" if prev is None else f"{s['check'] / stats[prev]['check']:.2f}x"
        rows.append([str(n), f"{int(s['layers']):,}", ms(c[f"deep_check:{n}"].best), ms(c[f"deep_summary:{n}"].best),
                     ms(s["parse"]), ms(s["shapes"]), ms(s["check"]), ms(s["summary"]),
                     f"{s['check'] / n * 1e6:.0f} µs", marginal, growth])
        prev = n
    return (["## Scaling: a generated network of N residual blocks", "",
             ("`repeat N { residual(64) }` between a stem and a head, importing specs/residual.arch. The two command "
             "columns include interpreter start and imports; the in-process columns are a worker's stage times after "
             "its imports (parse: load + resolve; shapes: expand, naming, inference, asserts; check: both; summary: "
             "check + the JSON text). Best of the rounds. Linear scaling shows as a constant marginal cost per block "
             "and a check time that doubles with N."), ""]
            + table(["N", "layers", "check (cmd)", "summary json (cmd)", "parse", "shapes", "check", "summary",
                     "check / block", "marginal / block", "check vs previous N"], rows))


def noise_section(cmds: list[Cmd]) -> list[str]:
    rows = [[f"`{cmd.shown}`" if len(cmd.shown) < 90 else f"`{cmd.shown[:87]}...`", ms(cmd.best), ms(cmd.median),
             ms(max(cmd.times)), f"{cmd.spread * 100:.0f}%", ms(min(cmd.cpu))] for cmd in cmds]
    return (["## Every command, with its noise", "",
             ("Wall times over the rounds; spread is worst / best - 1. This machine's timings swing (other work "
             "shares its cores), so compare best-of-rounds figures; CPU time (user + system) moves less."), ""]
            + table(["command", "best", "median", "worst", "spread", "CPU best"], rows))


def machine_section(argv: list[str], rounds: int) -> list[str]:
    versions = []
    for name in PACKAGES:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} (not installed)")
    cpu = next((line.split(":", 1)[1].strip() for line in _read("/proc/cpuinfo").splitlines()
                if line.startswith("model name")), platform.processor() or "unknown")
    commit = _git("rev-parse", "--short", "HEAD")
    dirty = " (with uncommitted changes)" if _git("status", "--porcelain", "--untracked-files=no") else ""
    return ["## Machine and command", "",
            f"- Command: `{' '.join(shlex.quote(a) for a in argv)}`, from the repository root",
            (f"- Date: {datetime.datetime.now().isoformat(timespec='seconds')}; commit {commit}{dirty}; "
            f"{rounds} rounds after a warm-up round"),
            (f"- Machine: {cpu}; nproc {len(os.sched_getaffinity(0))} (cpu_count {os.cpu_count()}); "
            f"{platform.platform()}"),
            f"- Python {platform.python_version()} ({platform.python_implementation()}), {sys.executable}",
            f"- Packages: {', '.join(versions)}",
            ("- Environment: as given, less PYTHONDONTWRITEBYTECODE, so every package runs from its bytecode "
            "cache as an installed one does"), ""]


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return ""


def report(cmds: list[Cmd], deep: dict[int, str], with_torch: bool, imports: Imports, argv: list[str],
           rounds: int) -> str:
    c = {cmd.key: cmd for cmd in cmds}
    stats = scaling_stats(c, deep)
    lines = ["# archspec's static path: benchmark results", "",
             "Written by `benchmarks/bench_static.py`; rerun it to refresh this file.", ""]
    lines += headline(c, with_torch, stats) + breakdown_section(c, imports)
    if with_torch:
        lines += summary_section(c)
    else:
        lines += ["torch, torchvision or torchinfo is not installed: the torch rows were skipped.", ""]
    lines += scaling_section(c, stats) + noise_section(cmds) + machine_section(argv, rounds)
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5, help="timed rounds after the warm-up (default 5)")
    ap.add_argument("--out", default="benchmarks/static_results.md", help="the markdown results file")
    ap.add_argument("--blocks", default=",".join(map(str, BLOCKS)), help="sizes of the generated network")
    ap.add_argument("--no-torch", action="store_true", help="skip import torch and torchinfo")
    ap.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker[0], args.worker[1:])
        return
    have = all(importlib.util.find_spec(m) for m in ("torch", "torchvision", "torchinfo"))
    with_torch = have and not args.no_torch
    blocks = sorted(int(b) for b in args.blocks.split(","))
    env = bench_env()
    with tempfile.TemporaryDirectory(prefix="archspec-bench-") as tmp:
        deep = deep_specs(Path(tmp), blocks)
        cmds = commands(deep, with_torch)
        measure(cmds, args.rounds, env)
    imports = import_profile(env)
    argv = ["python", "benchmarks/bench_static.py", *sys.argv[1:]]
    text = report(cmds, deep, with_torch, imports, argv, args.rounds)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
