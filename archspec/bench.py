"""`archspec bench`: the same model on every backend, timed honestly, as result records.

Each backend runs in a process of its own (one process cannot tell backends' peak memory
apart), on the same input, in eval/inference mode. Inside a worker nothing but the model
runs in the timed loop: no compilation, verification or disk I/O. The first run (module or
session creation plus one inference) is reported apart and never mixed into the median.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import error, io_error

BACKENDS = ("torch", "torch-compile", "torchscript", "onnxruntime")
PROVIDERS = {"tensorrt": "TensorrtExecutionProvider", "cuda": "CUDAExecutionProvider", "cpu": "CPUExecutionProvider"}
SUPPORTS = {"fp32": BACKENDS, "int8": ("onnxruntime",), "fp16": ("onnxruntime",), "bf16": ("torch", "torch-compile")}


@dataclass
class Plan:
    """What one worker process runs: one backend over several batch sizes."""

    backend: str
    artifacts: dict[str, str]  # format -> path
    input_shape: list[int]
    batches: list[int]
    macs: int  # per sample, archspec's static count
    device: str = "cpu"
    providers: list[str] = field(default_factory=lambda: ["cpu"])
    dtype: str = "fp32"
    warmup: int = 5
    iters: int | None = 30
    seconds: float | None = None
    threads: int | None = None
    channels_last: bool = False
    precision: str = "fp32"  # int8, fp16: their ONNX models; bf16: bf16 weights, channels-last (archspec/precision)


def percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    k = (len(xs) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def summarise(backend: str, batch: int, times_s: list[float], first_s: float, macs: int, extra: dict) -> dict:
    med = statistics.median(times_s)
    return {
        "backend": backend, "batch": batch, **extra,
        "median_ms": med * 1e3, "p10_ms": percentile(times_s, 0.1) * 1e3, "p90_ms": percentile(times_s, 0.9) * 1e3,
        "min_ms": min(times_s) * 1e3, "iters": len(times_s), "throughput": batch / med,
        "gflops": 2 * macs * batch / med / 1e9, "first_run_ms": first_s * 1e3,
    }


# ---- the worker: runs inside its own process ------------------------------------------------

def _loop(timed, plan: Plan) -> list[float]:
    for _ in range(plan.warmup):
        timed()
    times: list[float] = []
    deadline = time.perf_counter() + plan.seconds if plan.seconds else None
    while True:
        times.append(timed())
        if deadline is not None:
            if time.perf_counter() >= deadline and len(times) >= 3:
                return times
        elif len(times) >= (plan.iters or 30):
            return times


def _torch_model(plan: Plan):
    import torch

    if plan.backend == "torchscript":
        from .export.torchscript import load_torchscript

        return load_torchscript(plan.artifacts["torchscript"])
    from .codegen.build import instantiate, load_source

    source = open(plan.artifacts["python"]).read()
    model = instantiate(load_source(source, "bench_" + str(abs(hash(source)))))
    if plan.backend == "torch-compile" and plan.precision == "bf16":
        # Inductor's freezing (weights as constants, oneDNN's prepacked bf16 convolutions), a static graph per
        # batch: 1.2-2x faster than plain torch.compile on the CPU (benchmarks/RESULTS_precision.md). This
        # process runs this plan only, so the global setting touches nothing else.
        torch._inductor.config.freezing = True
        return torch.compile(model.eval(), dynamic=False)
    if plan.backend == "torch-compile":
        model = torch.compile(model.eval())
    return model


def worker(plan: Plan) -> list[dict]:
    """Time one backend at each batch size: [first run, warm-up, timed loop] per batch."""
    prepare = _ort(plan) if plan.backend == "onnxruntime" else _torch(plan)
    base_rss = _peak_rss_kb()
    out = []
    for batch in plan.batches:
        t0 = time.perf_counter()
        timed, extra = prepare(batch)
        timed()
        first = time.perf_counter() - t0
        times = _loop(timed, plan)
        peak = _peak_rss_kb()
        extra = {**extra, "peak_rss_mb": round(peak / 1024, 1), "rss_growth_mb": round((peak - base_rss) / 1024, 1)}
        if plan.device == "cuda" and plan.backend != "onnxruntime":
            import torch

            extra["torch_peak_allocated_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        out.append(summarise(plan.backend, batch, times, first, plan.macs, extra))
    return out


def _peak_rss_kb() -> int:
    """This process's own peak resident memory, in KiB.

    Not getrusage's ru_maxrss: Linux carries it across exec, so a worker started by a parent
    that holds torch and the compiled model would report the parent's peak as its own.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    import resource

    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb // 1024 if sys.platform == "darwin" else kb  # macOS counts bytes


def _torch(plan: Plan):
    import torch

    if plan.threads:
        torch.set_num_threads(plan.threads)
    dev = torch.device(plan.device)
    dtype = torch.float16 if plan.dtype == "fp16" else torch.bfloat16 if plan.precision == "bf16" else torch.float32
    channels_last = plan.channels_last or plan.precision == "bf16"
    cache: list = []

    def prepare(batch: int):
        if not cache:  # module creation counts in the first run of the first batch
            m = _torch_model(plan).eval().to(dev)
            if plan.dtype == "fp16" or plan.precision == "bf16":
                m = m.to(dtype)  # before torch.compile's first call, which compiles what it is then given
            if channels_last and plan.backend != "torchscript":
                m = m.to(memory_format=torch.channels_last)
            cache.append(m)
        m = cache[0]
        x = torch.randn(batch, *plan.input_shape, device=dev, dtype=dtype)
        if channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)

        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

            def timed() -> float:
                with torch.inference_mode():
                    start.record()
                    m(x)
                    end.record()
                end.synchronize()
                return start.elapsed_time(end) / 1e3
        else:
            def timed() -> float:
                t0 = time.perf_counter()
                with torch.inference_mode():
                    m(x)
                return time.perf_counter() - t0
        return timed, {"device": plan.device, "providers": None, "precision": plan.precision}
    return prepare


def _ort(plan: Plan):
    import numpy as np
    import onnxruntime as ort

    wanted = [PROVIDERS[p] for p in plan.providers]
    if any(p != "CPUExecutionProvider" for p in wanted) and hasattr(ort, "preload_dlls"):
        ort.preload_dlls()  # onnxruntime-gpu finds the CUDA libraries of the torch wheels only this way
    options = ort.SessionOptions()
    if plan.threads:
        options.intra_op_num_threads = plan.threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    model = plan.artifacts["onnx" if plan.precision == "fp32" else "onnx." + plan.precision]
    session = ort.InferenceSession(model, options, providers=wanted)
    got = session.get_providers()
    missing = [p for p in wanted if p not in got]
    if missing:  # onnxruntime falls back to the CPU with only a log line: check what it really got
        raise RuntimeError(f"onnxruntime could not start {', '.join(missing)} (it started {', '.join(got)}); "
                           "refusing to report another provider's figure as this one's")
    name, out_name = session.get_inputs()[0].name, session.get_outputs()[0].name
    np_dtype = np.float16 if plan.dtype == "fp16" else np.float32

    def prepare(batch: int):
        x = np.random.default_rng(0).standard_normal((batch, *plan.input_shape)).astype(np_dtype)
        if plan.device == "cuda":  # IO binding: input and output stay on the device
            binding = session.io_binding()
            binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(x, "cuda", 0))
            binding.bind_output(out_name, "cuda", 0)

            def timed() -> float:
                t0 = time.perf_counter()
                session.run_with_iobinding(binding)
                binding.synchronize_outputs()
                return time.perf_counter() - t0
        else:
            def timed() -> float:
                t0 = time.perf_counter()
                session.run(None, {name: x})
                return time.perf_counter() - t0
        return timed, {"device": plan.device, "providers": got, "precision": plan.precision}
    return prepare


def _gpu_memory_mb(pid: int) -> float | None:
    """The GPU memory the device reports for a process (onnxruntime's is invisible to torch)."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.splitlines():
        p, _, mem = line.partition(",")
        if p.strip() == str(pid):
            return float(mem)
    return None


def run_worker(plan: Plan, timeout: float = 1800) -> list[dict]:
    """Run one plan in a fresh process; its stdout is a JSON list of records."""
    cmd = [sys.executable, "-m", "archspec.bench", json.dumps(asdict(plan))]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise error("E801", f"the {plan.backend} backend did not finish within {timeout:.0f} s") from None
    if proc.returncode != 0:
        reason = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise error("E801", f"the {plan.backend} backend failed: {reason}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def environment(device: str, dtype: str, threads: int | None, providers: list[str]) -> dict[str, Any]:
    from . import __version__

    env: dict[str, Any] = {"archspec": __version__, "python": platform.python_version(),
                           "platform": platform.platform(), "cpu": _cpu_name(), "cpu_count": os.cpu_count(),
                           "device": device, "dtype": dtype, "threads": threads, "providers_requested": providers}
    try:
        import torch

        env["torch"] = torch.__version__
        env["torch_threads"] = threads or torch.get_num_threads()
        if device == "cuda" and torch.cuda.is_available():
            env["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    try:
        import onnxruntime

        env["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    from .precision.cpu import features

    env["cpu_features"] = features()  # what decides int8 and bf16 speed (VNNI, AMX, AVX-512 BF16)
    return env


def _load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def _cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def check_request(device: str, dtype: str, providers: list[str]) -> None:
    """Refuse, before anything runs, what this machine cannot do: never fall back silently."""
    unknown = [p for p in providers if p not in PROVIDERS]
    if unknown:
        raise io_error("E802", f"unknown onnxruntime provider {', '.join(unknown)}; choose from "
                               + ", ".join(PROVIDERS))
    if dtype == "fp16" and device != "cuda":
        raise io_error("E803", "--dtype fp16 needs --device cuda: half precision convolutions are not supported "
                               "by the CPU backends")
    if device == "cuda" and providers and all(p == "cpu" for p in providers):
        raise io_error("E805", "--device cuda with --ort-providers cpu would time onnxruntime on the CPU beside torch "
                               "on the GPU; give a GPU provider first (--ort-providers cuda,cpu or tensorrt,cuda,cpu)")
    if device == "cuda":
        try:
            import torch
        except ImportError:
            raise io_error("E804", "--device cuda needs torch with CUDA") from None
        if not torch.cuda.is_available():
            raise io_error("E804", "--device cuda was asked for, but no CUDA GPU is visible "
                                   f"(torch {torch.__version__}, torch.cuda.is_available() is False)")
    else:
        gpu = [p for p in providers if p != "cpu"]
        if gpu:
            raise io_error("E805", f"provider {', '.join(gpu)} needs --device cuda")
    if any(p != "cpu" for p in providers):
        import onnxruntime as ort

        have = ort.get_available_providers()
        absent = [p for p in providers if PROVIDERS[p] not in have]
        if absent:
            raise io_error("E805", f"this onnxruntime ({ort.__version__}) has no {', '.join(absent)} provider; it "
                                   f"has {', '.join(have)}")


@dataclass
class BenchOptions:
    batches: list[int] = field(default_factory=lambda: [1, 8])
    backends: list[str] = field(default_factory=lambda: ["torch", "torchscript", "onnxruntime"])
    device: str = "cpu"
    providers: list[str] | None = None  # default: cuda for --device cuda, else cpu
    dtype: str = "fp32"
    warmup: int = 5
    iters: int | None = 30
    seconds: float | None = None
    threads: int | None = None
    channels_last: bool = False
    precisions: list[str] = field(default_factory=lambda: ["fp32"])  # each on every backend in SUPPORTS
    precision: Any = None  # precision.options.PrecisionOptions: how int8, fp16, bf16 are built and evaluated
    weights: str | None = None  # for the accuracy reports (the timed modules' weights do not change their speed)


def bench_spec(spec, opts: BenchOptions, progress=None) -> dict[str, Any]:
    """Compile (verified) into a scratch folder, then time every backend, each in its own process."""
    import tempfile

    from .codegen.build import check_memory
    from .compile import Options, compile_spec

    providers = opts.providers or (["cuda"] if opts.device == "cuda" else ["cpu"])
    check_request(opts.device, opts.dtype, providers)
    if opts.device == "cpu":  # the largest batch timed, before minutes of compiling
        check_memory(spec, batch=max(opts.batches), copies=3)
    runs = _runs(opts.precisions, opts.backends)
    need = ["python"] + (["torchscript"] if ("fp32", "torchscript") in runs else []) + \
        (["onnx"] if any(b == "onnxruntime" for _, b in runs) else []) + (["pt2"] if "bf16" in opts.precisions else [])
    steps = len(runs) + 1
    with tempfile.TemporaryDirectory(prefix="archspec-bench-") as tmp:
        if progress:
            progress(0, steps, "compiling and verifying")
        compiled = compile_spec(spec, Options(formats=tuple(need), out_dir=os.path.join(tmp, spec.name),
                                              device=opts.device, dtype=opts.dtype, weights=opts.weights,
                                              precision=opts.precision))
        suffixes = {"python": ".py", "torchscript": ".pt", "onnx": ".onnx", "onnx.int8": ".int8.onnx",
                    "onnx.fp16": ".fp16.onnx"}
        artifacts = {fmt: os.path.join(compiled.out_dir, spec.name + suffix) for fmt, suffix in suffixes.items()
                     if spec.name + suffix in compiled.files}
        records: list[dict] = []
        load_start = _load_average()
        for i, (precision, backend) in enumerate(runs, start=1):
            if progress:
                progress(i, steps, f"{backend} {precision} at batch {', '.join(map(str, opts.batches))}")
            plan = Plan(backend=backend, artifacts=artifacts, input_shape=list(spec.network.input_shape),
                        batches=list(opts.batches), macs=spec.macs, device=opts.device,
                        providers=providers, dtype=opts.dtype, warmup=opts.warmup, iters=opts.iters,
                        seconds=opts.seconds, threads=opts.threads, channels_last=opts.channels_last,
                        precision=precision)
            records += run_worker(plan)
        _accuracy_beside(records, compiled.reports)
        if progress:
            progress(steps, steps, "done")
    env = environment(opts.device, opts.dtype, opts.threads, providers)
    env["providers_used"] = sorted({p for r in records for p in (r.get("providers") or [])})
    # Other work on the machine moves timings by several times: say how busy it was.
    env["load_average_1min"] = {"start": load_start, "end": _load_average()}
    tol = "rtol 1e-2, atol 1e-2 (fp16)" if opts.dtype == "fp16" else "rtol 1e-4, atol 1e-5"
    return {"network": spec.name, "file": spec.network.file, "input": list(spec.network.input_shape),
            "macs_per_sample": spec.macs, "environment": env,
            "verification": {"tolerance": tol, "checks": [asdict(c) for c in compiled.checks]},
            "results": records}


def _runs(precisions: list[str], backends: list[str]) -> list[tuple[str, str]]:
    """(precision, backend) for every backend of `backends` that runs each precision; E626 for one none runs."""
    runs = [(p, b) for p in precisions for b in backends if b in SUPPORTS[p]]
    for p in precisions:
        if not any(q == p for q, _ in runs):
            raise io_error("E626", f"--precision {p} runs on {' and '.join(SUPPORTS[p])}, which --backends does not "
                                   "name: add it")
    return runs


def _accuracy_beside(records: list[dict], reports: list[dict]) -> None:
    """Each low-precision record gets its report's accuracy figures (from the compile that made it)."""
    by = {r["precision"]: r for r in reports}
    for rec in records:
        rep = by.get(rec.get("precision"))
        if rep is None and rec.get("precision") == "fp32" and reports and reports[0]["evaluation"]["labels"]:
            ev = reports[0]["evaluation"]  # the reference every report measured against
            rec["accuracy"] = {"top1": ev["fp32_top1"], "fp32_top1": ev["fp32_top1"], "agreement": None,
                               "samples": ev["samples"], "evaluated_on": reports[0]["evaluated_on"]}
        elif rep is not None:
            ev = rep["evaluation"]
            rec["accuracy"] = {"top1": ev["top1"], "fp32_top1": ev["fp32_top1"], "agreement": ev["agreement"],
                               "samples": ev["samples"], "evaluated_on": rep["evaluated_on"]}


def as_table(report: dict[str, Any]) -> str:
    env = report["environment"]
    where = env.get("gpu") or env.get("cpu", "")
    head = (f"{report['network']} ({report['file']}), input {report['input']}, {report['macs_per_sample']:,} MACs per "
            f"sample; {env['device']} ({where}), {env['dtype']}, threads {env.get('torch_threads', env['threads'])}")
    gpu = env["device"] == "cuda"
    precise = any(r.get("precision", "fp32") != "fp32" for r in report["results"])  # columns only when useful
    scored = any("accuracy" in r for r in report["results"])
    cols = ("backend", *(("precision",) if precise else ()), "batch", "median ms", "p10 ms", "p90 ms", "min ms",
            "samples/s", "GFLOP/s", "first run ms", "GPU MB" if gpu else "peak RSS MB",
            *(("top-1 %", "agrees %") if scored else ()))
    rows = [cols]
    for r in report["results"]:
        mem = r.get("gpu_memory_mb") if gpu else r["peak_rss_mb"]
        acc = r.get("accuracy") or {}
        rows.append((r["backend"], *((r.get("precision", "fp32"),) if precise else ()), str(r["batch"]),
                     f"{r['median_ms']:.2f}", f"{r['p10_ms']:.2f}",
                     f"{r['p90_ms']:.2f}", f"{r['min_ms']:.2f}", f"{r['throughput']:.1f}", f"{r['gflops']:.1f}",
                     f"{r['first_run_ms']:.0f}", "n/a" if mem is None else f"{mem:.0f}",
                     *((_pct(acc.get("top1")), _pct(acc.get("agreement"))) if scored else ())))
    widths = [max(len(row[i]) for row in rows) for i in range(len(cols))]
    lines = ["  ".join(c.ljust(w) if i < 1 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()
             for row in rows]
    providers = ", ".join(env.get("providers_used") or []) or "none"
    extra = []
    if env.get("cpu_features"):
        from .precision.cpu import describe

        extra.append(f"CPU features: {describe(env['cpu_features'])}")
    if scored:
        on = next(r["accuracy"]["evaluated_on"] for r in report["results"] if "accuracy" in r)
        extra.append(f"top-1 and agreement with fp32 from the compile's accuracy reports, on {on}")
    return "\n".join([head, "", lines[0], "-" * len(lines[0]), *lines[1:], "", *extra,
                      f"onnxruntime providers used: {providers}; verified before timing "
                      f"({report['verification']['tolerance']})", _load_line(env)]) + "\n"


def _pct(x: float | None) -> str:
    return "" if x is None else f"{x:.2f}"


def _load_line(env: dict[str, Any]) -> str:
    load = env.get("load_average_1min") or {}
    if load.get("start") is None:
        return "load average: unknown"
    line = f"load average (1 min): {load['start']:.2f} at the start, {load['end']:.2f} at the end, on " \
           f"{env.get('cpu_count')} cores"
    busy = max(load["start"], load["end"] or 0) > (env.get("cpu_count") or 1)
    return line + ("; above the core count other work shared the machine, so the timings are noisy" if busy else "")


def _main() -> None:
    plan = Plan(**json.loads(sys.argv[1]))
    try:
        records = worker(plan)
    except Exception as exc:  # reported by the parent as one line
        print(f"{type(exc).__name__}: {exc}".replace("\n", " "), file=sys.stderr)
        sys.exit(1)
    if plan.device == "cuda":
        # The device's own figure for this process: onnxruntime's memory is invisible to torch. Both
        # torch's caching allocator and onnxruntime's arena keep what they reached, so after the runs
        # the process holds its peak. Where nvidia-smi cannot see the process (some containers),
        # torch's own peak is the fallback for the torch backends; onnxruntime's stays unknown.
        mem, source = _gpu_memory_mb(os.getpid()), "nvidia-smi"
        if mem is None and plan.backend != "onnxruntime" and "torch" in sys.modules:
            import torch

            mem, source = round(torch.cuda.max_memory_reserved() / 2**20, 1), "torch.cuda.max_memory_reserved"
        for r in records:
            r["gpu_memory_mb"] = mem
            r["gpu_memory_source"] = source if mem is not None else None
    print(json.dumps(records))


if __name__ == "__main__":
    _main()


__all__ = ["BACKENDS", "PROVIDERS", "Plan", "check_request", "environment", "run_worker", "summarise"]
