"""Time archspec's static path against `import torch` and torchinfo, and show that it scales linearly.

    python benchmarks/bench_static.py --rounds 5 --out benchmarks/static_results.md

Every command runs as a subprocess, interpreter start included, as a user would type it. The
commands are interleaved: each round runs every one of them once, in a rotated order, so a slow
spell of the machine hits all of them alike; the tables give the best round, the median and the
spread (worst / best - 1). A warm-up round runs first and is not counted: it fills the page
cache, the bytecode cache (the harness drops PYTHONDONTWRITEBYTECODE, so archspec runs from
.pyc files as any installed package does) and lark's grammar cache.

Measured in one run: `python -c "import torch"`; `archspec check` of the whole zoo in one
command (every network of every file of specs/ and specs/torchvision/, where a family file holds
many), afresh (`--no-cache`) and answered from its cache (filled by the warm-up round; its output
must equal the check's); in-process, the same check file by file, with the layers of every network counted, so the
cost per layer of each family shows; `archspec summary --format json` of several torchvision
networks (`--network NAME` of their family files) beside torchinfo's summary of the same
torchvision model (its imports and the model's construction included, as a user pays them); and
two generated networks of N blocks, N = 125 .. 1000, both as commands and in-process (a worker
process times each stage after its imports, so the cost per block shows): the book's residual
block (specs/residual.arch) and torchvision's ViT encoder block (specs/torchvision/vit.arch:
layer norm, multi-head attention, an MLP).
"""

from __future__ import annotations

import argparse
import datetime
import gc
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

import zoo

REPO = Path(__file__).resolve().parents[1]
# summary against torchinfo: the four compared from the start, and three of the newer kinds of network
# (squeeze-excitation and hardswish; layer norm and permutes; attention)
TORCHVISION = (*zoo.CLASSIC, "mobilenet_v3_large", "convnext_tiny", "vit_b_16")
BLOCKS = (125, 250, 500, 1000)
ZOO_GLOBS = zoo.ZOO_GLOBS
REQUIRED_RATIO = 0.2  # the zoo check may take at most a fifth of `import torch`
NNEF_MS = 90  # the aim: the NNEF tools validate VGG-11's shapes in about this, per command
PACKAGES = ("archspec", "lark", "pydantic", "pydantic-core", "torch", "torchvision", "torchinfo")
HEAVY = ("torch", "torchvision", "onnx", "onnxruntime", "numpy")  # never on the static path

TORCHINFO = ("import torchinfo, torchvision; s = torchinfo.summary(torchvision.models.{name}(), "
             "input_size=(1, 3, 224, 224), verbose=0); print(s.total_params)")

# The scaling networks, each importing the file that defines its block (copied beside it):
# kind -> (that file, the spec of N blocks)
DEEP = {
    # a stem, N residual blocks of the book (specs/residual.arch), a head
    "residual": ("specs/residual.arch", """import "residual.arch"

network deep{n}() {{
    input [3, 32, 32]
    conv2d(64, kernel=3, padding=1)  batchnorm2d  relu
    repeat {n} {{ residual(64) }}
    adaptive_avgpool2d(1)  flatten  linear(10)
}}
"""),
    # the same with symbolic sizes (`input [3, H, W]`): shapes are expressions, comparisons constraints
    "residual_hw": ("specs/residual.arch", """import "residual.arch"

network deep_hw{n}() {{
    input [3, H, W]
    conv2d(64, kernel=3, padding=1)  batchnorm2d  relu
    repeat {n} {{ residual(64) }}
    adaptive_avgpool2d(1)  flatten  linear(10)
}}
"""),
    # 16 tokens of 64 features through N of torchvision's ViT encoder blocks (4 heads, an MLP of 128), a head
    "vit": ("specs/torchvision/vit.arch", """import "vit.arch"

network deepvit{n}() {{
    input [16, 64]
    repeat {n} {{ encoder_block(4, 64, 128, 0.0, 0.0) }}
    layernorm(eps=1e-6)  select(0)  linear(10)
}}
"""),
}


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


def deep_specs(folder: Path, blocks: list[int]) -> dict[str, dict[int, str]]:
    """kind -> N -> the path of a generated network of N blocks of that kind."""
    paths: dict[str, dict[int, str]] = {}
    for kind, (imported, text) in DEEP.items():
        (folder / kind).mkdir()
        (folder / kind / Path(imported).name).write_text((REPO / imported).read_text())
        paths[kind] = {}
        for n in blocks:
            path = folder / kind / f"deep{kind.replace('residual', '')}{n}.arch"
            path.write_text(text.format(n=n))
            paths[kind][n] = str(path)
    return paths


def commands(deep: dict[str, dict[int, str]], with_torch: bool, cache_dir: str) -> list[Cmd]:
    cmds = [python_cmd("python", "pass"),
            archspec_cmd("zoo", "check", "--no-cache", *zoo_files(), shown="check --no-cache " + " ".join(ZOO_GLOBS)),
            archspec_cmd("zoo_cached", "check", "--cache-dir", cache_dir, *zoo_files(),
                         shown="check --cache-dir DIR " + " ".join(ZOO_GLOBS))]
    for name in TORCHVISION:
        family = zoo.family_file(name)
        cmds.append(archspec_cmd(f"summary:{name}", "summary", "--format", "json", "--network", name, family))
    for kind, sizes in deep.items():
        for n, path in sizes.items():
            shown = Path(path).name
            cmds.append(archspec_cmd(f"deep_check:{kind}:{n}", "check", "--no-cache", path,
                                     shown=f"check --no-cache {shown}"))
            cmds.append(archspec_cmd(f"deep_summary:{kind}:{n}", "summary", "--format", "json", path,
                                     shown=f"summary --format json {shown}"))
    me = str(Path(__file__).resolve())
    cmds.append(Cmd("worker_zoo", "python benchmarks/bench_static.py --worker zoo (in-process, after imports)",
                    [sys.executable, me, "--worker", "zoo", *zoo_files()]))
    every = [p for sizes in deep.values() for p in sizes.values()]
    cmds.append(Cmd("worker_deep", "python benchmarks/bench_static.py --worker deep (in-process stages)",
                    [sys.executable, me, "--worker", "deep", *every]))
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
    from archspec.api import build
    from archspec.errors import Sources
    from archspec.loader import load_file
    from archspec.parse import parse_text
    from archspec.passes import Overrides, expand, resolve, run_passes
    from archspec.summary import as_dict

    parse_text("network warm() { input [1] relu }")  # load the grammar before the clock starts
    gc.disable()  # as the static commands run (archspec/cli.py STATIC): the cycle collector paused
    if kind == "zoo":  # what `archspec check` does with the zoo, less the imports and the printing
        files, start = {}, time.perf_counter()
        for path in paths:
            t0, sources = time.perf_counter(), Sources()
            program = resolve(load_file(path, sources))
            names = [n for n in program.own if program.definitions[n].kind == "network"]
            built = [build(program, sources, name, Overrides()).network for name in names]
            files[path] = {"seconds": time.perf_counter() - t0, "networks": names,
                           "layers": built}  # counted below, off the clock
        total = time.perf_counter() - start
        for entry in files.values():
            entry["layers"] = [count_layers(net.graph) for net in entry["layers"]]
        print(json.dumps({"zoo": total, "files": files}))
        return
    imported = {str(p) for q in paths for p in Path(q).parent.glob("*.arch") if not p.name.startswith("deep")}
    for path in sorted(imported):
        load_file(path, Sources())  # each imported block file parsed once first, as for every N alike
    out = {}
    for path in paths:
        t0 = time.perf_counter()
        program = resolve(load_file(path, Sources()))
        t1 = time.perf_counter()
        net = run_passes(expand(program, Path(path).stem, Overrides()))
        t2 = time.perf_counter()
        json.dumps(as_dict(net, 1), indent=2)
        t3 = time.perf_counter()
        out[path] = {"parse": t1 - t0, "shapes": t2 - t1, "check": t2 - t0, "summary": t3 - t0,
                     "layers": count_layers(net.graph)}
    print(json.dumps(out))


def count_layers(graph) -> int:
    """Layers of the registry in a network's dataflow graph, those inside blocks and groups included
    (not its inputs, nor the anonymous add, mul and concat nodes that combine branches)."""
    return sum((node.kind == "layer") + (count_layers(node.body) if node.body is not None else 0)
               for node in graph.nodes)


# ---- where the zoo check's time goes: one more run, with -X importtime -------------------------

@dataclass
class Imports:
    total: float  # seconds, summed over every module imported (importtime's own overhead included)
    by_package: dict[str, float]
    count: int
    heavy: list[str]  # HEAVY modules that were imported: none, on the static path


def import_profile(env: dict[str, str]) -> Imports:
    argv = [sys.executable, "-X", "importtime", "-m", "archspec", "check", "--no-cache", *zoo_files()]
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


def zoo_stats(c: dict[str, Cmd]) -> dict[str, dict]:
    """file -> its networks, their layers and the best-of-rounds in-process seconds of checking the file."""
    runs = [json.loads(out) for out in c["worker_zoo"].outputs]
    files = runs[0]["files"]
    return {path: {"networks": len(v["networks"]), "layers": sum(v["layers"]),
                   "seconds": min(run["files"][path]["seconds"] for run in runs)} for path, v in files.items()}


def group_of(path: str) -> str:
    """Which kind of network a zoo file holds, for the cost per layer."""
    name = Path(path).name
    if not path.startswith("specs/torchvision/"):
        return "the book's networks (specs/*.arch)"
    return next((g for g, names in GROUPS.items() if name in names), "torchvision's CNN families")


GROUPS = {"torchvision's vision transformers (vit, swin)": ("vit.arch", "swin.arch"),
          "torchvision's segmentation and FPN (symbolic sizes)": ("segmentation.arch", "fpn.arch")}
# The previous run's figures (static_results.md at commit 9023222, 2026-11-26: 17 files, 14 networks), quoted
# so that this file can be read against them.
EARLIER = ("2026-11-30 (commit e83a81a, before block calls were reused and the cache): the zoo check 1,452 ms, "
           "1.09x import torch; 178 µs a residual block and 343 µs a ViT encoder block at 1000")


def per_layer(rows: list[dict]) -> str:
    return f"{sum(r['seconds'] for r in rows) / sum(r['layers'] for r in rows) * 1e6:.1f} µs"


def headline(c: dict[str, Cmd], with_torch: bool, scaling: dict, files: dict[str, dict]) -> list[str]:
    zoo = c["zoo"]
    nets = sum(": ok, input" in line for line in zoo.outputs[-1].splitlines())
    layers = sum(f["layers"] for f in files.values())
    lines = ["## Headline", "",
             (f"- `archspec check` of the whole zoo ({len(zoo_files())} files, {nets} networks, {layers:,} layers) "
              f"in one command, interpreter start included: **{ms(zoo.best)}** (best of {len(zoo.times)} rounds; "
              f"median {ms(zoo.median)}; CPU time {ms(min(zoo.cpu))})."),
             (f"- The same, answered from `archspec check`'s cache (filled by the warm-up round: no file changed "
              f"since): **{ms(c['zoo_cached'].best)}** (median {ms(c['zoo_cached'].median)}; CPU time "
              f"{ms(min(c['zoo_cached'].cpu))}); its output is checked equal to the check's."),
             f"- `python -c pass`, the interpreter alone: {ms(c['python'].best)}."]
    if with_torch:
        torch = c["torch"]
        ratio, med, cpu = zoo.best / torch.best, zoo.median / torch.median, min(zoo.cpu) / min(torch.cpu)
        verdict = "met" if ratio <= REQUIRED_RATIO else "NOT met"
        warm = c["zoo_cached"].best / torch.best
        lines += [(f"- `python -c \"import torch\"`: {ms(torch.best)} (median {ms(torch.median)}). Zoo check / "
                  f"import torch = **{ratio:.3f}** (medians {med:.3f}, CPU times {cpu:.3f}); the requirement is at "
                  f"most {REQUIRED_RATIO} (= {ms(torch.best * REQUIRED_RATIO)} here): **{verdict}** for a check of "
                  f"every file afresh; answered from the cache, **{warm:.3f}**: "
                  f"**{'met' if warm <= REQUIRED_RATIO else 'NOT met'}**.")]
        ratios = ", ".join(f"{n} {c[f'summary:{n}'].best / c[f'torchinfo:{n}'].best:.3f}" for n in TORCHVISION)
        lines.append(f"- `archspec summary --format json` / torchinfo's summary of the same torchvision model, "
                     f"both as commands: {ratios}.")
    lines.append(f"- The aim, the NNEF tools' {NNEF_MS} ms per command (measured on another machine): the zoo "
                 f"check takes {zoo.best * 1000 / NNEF_MS:.1f}x that here; the interpreter alone takes "
                 f"{ms(c['python'].best)} of it.")
    groups: dict[str, list[dict]] = {}
    for path, f in files.items():
        groups.setdefault(group_of(path), []).append(f)
    lines.append(f"- Cost per layer, in-process (load, resolve, expand, the passes): the whole zoo "
                 f"{per_layer(list(files.values()))}; " + "; ".join(f"{g} {per_layer(rows)}"
                                                                      for g, rows in groups.items()) + ".")
    for kind, stats in scaling.items():
        big, half = max(stats), max(stats) // 2
        if half in stats:
            t_big, t_half = stats[big]["check"], stats[half]["check"]
            lines.append(f"- Scaling, in-process check, {DEEP_TITLES[kind]}: {big} blocks / {half} = "
                         f"**{t_big / t_half:.2f}x** (linear is 2.00x); {t_big / big * 1e6:.0f} µs per block, "
                         f"{t_big / stats[big]['layers'] * 1e6:.1f} µs per layer at {big}.")
    lines.append(f"- The previous run of this benchmark, {EARLIER}.")
    return lines + [""]


def breakdown_section(c: dict[str, Cmd], imports: Imports, files: dict[str, dict]) -> list[str]:
    work = min(json.loads(out)["zoo"] for out in c["worker_zoo"].outputs)
    nets = sum(f["networks"] for f in files.values())
    layers = sum(f["layers"] for f in files.values())
    top = sorted(imports.by_package.items(), key=lambda kv: -kv[1])[:10]
    rows = [[f"`{name}`", ms(t), f"{t / imports.total * 100:.0f}%"] for name, t in top]
    heavy = ", ".join(imports.heavy) if imports.heavy else "none"
    per_file = [[f"`{path}`", group_of(path), str(f["networks"]), f"{f['layers']:,}", ms(f["seconds"]),
                 f"{f['seconds'] / f['layers'] * 1e6:.1f} µs" if f["layers"] else ""] for path, f in files.items()]
    return (["## Where the zoo check's time goes", "",
             f"- The interpreter alone (`python -c pass`): {ms(c['python'].best)}.",
             (f"- Imports: {imports.count} modules, {ms(imports.total)} in one extra run with `-X importtime` "
             f"(which adds overhead of its own). Of {', '.join(HEAVY)}: {heavy} imported."),
             (f"- The work itself, in-process after the imports (load, resolve, expand, the passes; {nets} networks, "
             f"{layers:,} layers): {ms(work)} (best of the rounds), {work / layers * 1e6:.1f} µs a layer."), "",
             "Import time by top-level package (self time of its modules, summed):", ""]
            + table(["package", "import time", "share"], rows)
            + ["File by file, in-process (a file's time includes parsing the files it imports; best of the rounds; "
               "layers: the registry's layers of every network the file defines, those inside blocks included):", ""]
            + table(["file", "kind", "networks", "layers", "check", "per layer"], per_file))


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


DEEP_TITLES = {"residual": "the book's residual block", "vit": "torchvision's ViT encoder block",
               "residual_hw": "the book's residual block at a symbolic size (input [3, H, W])"}


def scaling_stats(c: dict[str, Cmd], deep: dict[str, dict[int, str]]) -> dict[str, dict[int, dict[str, float]]]:
    """kind -> N -> best-of-rounds in-process stage times."""
    runs = [json.loads(out) for out in c["worker_deep"].outputs]
    return {kind: {n: {stage: min(run[path][stage] for run in runs) for stage in runs[0][path]}
                   for n, path in sizes.items()} for kind, sizes in deep.items()}


def scaling_section(c: dict[str, Cmd], stats: dict[str, dict[int, dict[str, float]]]) -> list[str]:
    rows = []
    for kind, sizes in stats.items():
        prev = None
        for n, s in sizes.items():
            marginal = "" if prev is None else f"{(s['check'] - sizes[prev]['check']) / (n - prev) * 1e6:.0f} µs"
            growth = "" if prev is None else f"{s['check'] / sizes[prev]['check']:.2f}x"
            rows.append([kind, str(n), f"{int(s['layers']):,}", ms(c[f"deep_check:{kind}:{n}"].best),
                         ms(c[f"deep_summary:{kind}:{n}"].best), ms(s["parse"]), ms(s["shapes"]), ms(s["check"]),
                         ms(s["summary"]), f"{s['check'] / n * 1e6:.0f} µs", f"{s['check'] / s['layers'] * 1e6:.1f} µs",
                         marginal, growth])
            prev = n
    return (["## Scaling: generated networks of N blocks", "",
             ("`residual`: `repeat N { residual(64) }` between a stem and a head, importing specs/residual.arch; "
              "`residual_hw`: the same with `input [3, H, W]` (symbolic sizes: every shape an expression in H and "
              "W, every comparison a constraint). `vit`: `repeat N { encoder_block(4, 64, 128, 0.0, 0.0) }` "
              "(torchvision's ViT encoder block: layer norms, multi-head attention, an MLP) on 16 tokens of 64 "
              "features, then a layer norm and a head, importing specs/torchvision/vit.arch. The two command "
              "columns include interpreter start and imports; "
              "the in-process columns are a worker's stage times after its imports (parse: load + resolve; shapes: "
              "expand, naming, inference, asserts; check: both; summary: check + the JSON text). Best of the rounds. "
              "Linear scaling shows as a constant marginal cost per block and a check time that doubles with N."), ""]
            + table(["kind", "N", "layers", "check (cmd)", "summary json (cmd)", "parse", "shapes", "check", "summary",
                     "check / block", "check / layer", "marginal / block", "check vs previous N"], rows))


def noise_section(cmds: list[Cmd]) -> list[str]:
    rows = [[f"`{cmd.shown}`" if len(cmd.shown) < 90 else f"`{cmd.shown[:87]}...`", ms(cmd.best), ms(cmd.median),
             ms(max(cmd.times)), f"{cmd.spread * 100:.0f}%", ms(min(cmd.cpu))] for cmd in cmds]
    return (["## Every command, with its noise", "",
             ("Wall times over the rounds; spread is worst / best - 1. This machine's timings swing (other work "
             "shares its cores), so compare best-of-rounds figures; CPU time (user + system) moves less."), ""]
            + table(["command", "best", "median", "worst", "spread", "CPU best"], rows))


def machine_section(argv: list[str], rounds: int, loads: tuple[float, float]) -> list[str]:
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
            (f"- Load average (1 minute) at the start {loads[0]:.2f}, at the end {loads[1]:.2f} (the machine is "
             "shared; this run's own commands count too)"),
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


def report(cmds: list[Cmd], deep: dict[str, dict[int, str]], with_torch: bool, imports: Imports,
           argv: list[str], rounds: int, loads: tuple[float, float]) -> str:
    c = {cmd.key: cmd for cmd in cmds}
    stats, files = scaling_stats(c, deep), zoo_stats(c)
    lines = ["# archspec's static path: benchmark results", "",
             "Written by `benchmarks/bench_static.py`; rerun it to refresh this file.", ""]
    lines += headline(c, with_torch, stats, files) + breakdown_section(c, imports, files)
    if with_torch:
        lines += summary_section(c)
    else:
        lines += ["torch, torchvision or torchinfo is not installed: the torch rows were skipped.", ""]
    lines += scaling_section(c, stats) + noise_section(cmds) + machine_section(argv, rounds, loads)
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
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="archspec-bench-") as tmp:
        deep = deep_specs(Path(tmp), blocks)
        cmds = commands(deep, with_torch, str(Path(tmp) / "cache"))  # the warm-up round fills the cache
        measure(cmds, args.rounds, env)
    c = {cmd.key: cmd for cmd in cmds}
    if set(c["zoo_cached"].outputs) != set(c["zoo"].outputs):
        sys.exit("bench_static: the zoo check answered from the cache printed something else than the check")
    imports = import_profile(env)
    argv = ["python", "benchmarks/bench_static.py", *sys.argv[1:]]
    text = report(cmds, deep, with_torch, imports, argv, args.rounds, (load0, os.getloadavg()[0]))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
