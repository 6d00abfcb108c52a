"""Time `archspec lsp`'s re-check after a one-character edit of specs/torchvision/resnet.arch
(network resnet50), beside the cold command line.

    OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_lsp.py --out benchmarks/lsp_results.md

Cold: `archspec check` of the file (its 15 networks, what CI runs) and `archspec summary --network
resnet50 --format json` (one network), each a new process, interpreter start included.

Warm: one server, driven over stdio by archspec/lsp/client.py with real JSON-RPC messages. The file
is opened, a hover on `network resnet50` makes it the focus network, and then each edit is one
character, written as an incremental didChange; the figure is the time from writing the message
to the server's publishDiagnostics for that version arriving (read by a thread that stamps each
message as it comes), so it holds the server's whole work: reading the message, applying it,
parsing, resolving, expanding resnet50, shaping, and writing the diagnostics back.

The edits, taken in turn so that a slow spell of the machine hits all alike, each followed by its
undo (so every edit starts from the file as it is):
  block      a space in `bottleneck`, added and removed: the block's item is parsed again and
             resnet50, which reads it, expanded again
  error      `kernel=1` -> `kernel=9` in `bottleneck`: a shape error (E402; expansion stops early)
  fix        and back to `kernel=1`: resnet50 expanded whole again
  variant    `1000` -> `1001` in resnet50's own line and back: that line parsed, resnet50 expanded
  elsewhere  the same in resnet18's line: parsed, but resnet50 does not read it and is kept
Typing: the edits come --gap seconds apart (default 0.05 s, a fast typist), before the server
starts checking the file's other networks. Pausing: they come just after that background check
has begun (server.REST_DELAY + 20 ms), so each edit has to stop it first.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from archspec.lsp.client import Client  # noqa: E402
from archspec.lsp.server import REST_DELAY  # noqa: E402

SPEC = REPO / "specs" / "torchvision" / "resnet.arch"
TARGET_MS = 20.0
KINDS = ("block", "error", "variant", "elsewhere")


def stats(ms: list[float]) -> dict[str, float]:
    ms = sorted(ms)
    return {"n": len(ms), "best": ms[0], "median": statistics.median(ms), "p90": ms[int(0.9 * (len(ms) - 1))],
            "worst": ms[-1]}


def cold(rounds: int) -> dict[str, dict[str, float]]:
    commands = {
        "archspec check --no-cache resnet.arch (15 networks)": ["archspec", "check", "--no-cache", str(SPEC)],
        "archspec summary --network resnet50 --format json": ["archspec", "summary", str(SPEC), "--network",
                                                               "resnet50", "--format", "json"],
    }
    times: dict[str, list[float]] = {k: [] for k in commands}
    for r in range(rounds + 1):  # the first round warms the page and bytecode caches; not counted
        for name, cmd in commands.items():
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True, cwd=REPO)
            if r:
                times[name].append((time.perf_counter() - t0) * 1e3)
    return {k: stats(v) for k, v in times.items()}


class Edits:
    """The one-character edits, each as (line, character, old, new), toggled on every use."""

    def __init__(self, text: str) -> None:
        lines = text.splitlines()

        def at(needle: str, offset: int) -> tuple[int, int]:
            i = next(n for n, line in enumerate(lines) if needle in line)
            return i, lines[i].index(needle) + offset

        conv1 = "conv1 = conv2d(width, kernel=1, bias=false)"
        self.places = {
            "block": (*at(conv1, conv1.index("bias")), "", " "),
            "error": (*at(conv1, conv1.index("kernel=1") + 7), "1", "9"),
            "variant": (*at("network resnet50(num_classes: int = 1000)", 39), "0", "1"),
            "elsewhere": (*at("network resnet18(num_classes: int = 1000)", 39), "0", "1"),
        }
        self.state = {k: False for k in self.places}

    def next(self, kind: str) -> tuple[str, tuple[int, int], tuple[int, int]]:
        line, col, old, new = self.places[kind]
        done = self.state[kind]
        self.state[kind] = not done
        if done:  # undo
            old, new = new, old
        return new, (line, col), (line, col + len(old))


def warm(rounds: int, gap: float) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    client = Client(cwd=str(REPO))
    try:
        client.initialize(str(REPO))
        text = SPEC.read_text(encoding="utf-8")
        uri = client.open(str(SPEC), text)
        client.diagnostics(uri, 1)
        line = next(i for i, x in enumerate(text.splitlines()) if x.startswith("network resnet50"))
        client.request("textDocument/hover", {"textDocument": {"uri": uri}, "position": {"line": line, "character": 9}})
        time.sleep(1.5)  # let the first check of the other networks finish
        edits = Edits(text)
        times: dict[str, list[float]] = {k: [] for k in (*KINDS, "fix")}
        version = 1
        for r in range(rounds):
            order = KINDS[r % len(KINDS):] + KINDS[: r % len(KINDS)]
            for kind in order:
                for name in (kind, "fix" if kind == "error" else kind):  # the edit, then its undo
                    new, start, end = edits.next(kind)
                    version += 1
                    sent = client.change(uri, version, new, start, end)
                    at, _ = client.diagnostics(uri, version)
                    times[name].append((at - sent) * 1e3)
                    time.sleep(gap)
        _, hover_s = client.request_timed("textDocument/hover", {"textDocument": {"uri": uri},
                                                                 "position": {"line": line, "character": 9}})
    finally:
        client.close()
    return {k: stats(v) for k, v in times.items()}, {"hover after the edits": hover_s * 1e3}


def inprocess(rounds: int) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """Where a `block` edit's time goes, in the server's own process (no protocol): the edited item
    parsed, the program loaded and resolved, resnet50 expanded and shaped. Each edit adds one more
    space than the last at the `block` place, so every text is new and exactly one item is parsed.
    Wall time, and the CPU time of the thread (which a busy machine's other processes do not inflate)."""
    from archspec.api import build
    from archspec.errors import Sources
    from archspec.lsp.analysis import Analyzer
    from archspec.passes import Overrides

    text = SPEC.read_text(encoding="utf-8")
    line, col, _, _ = Edits(text).places["block"]
    at = sum(len(x) for x in text.splitlines(keepends=True)[:line]) + col
    edited = [text[:at] + " " * k + text[at:] for k in range(1, 2 * rounds + 1)]
    analyzer = Analyzer()
    analyzer.analyse(str(SPEC), text, "resnet50")
    names = ("parse (the edited item)", "load and resolve", "expand and shape resnet50", "all of it (Analyzer.analyse)")
    wall: dict[str, list[float]] = {k: [] for k in names}
    cpu: dict[str, list[float]] = {k: [] for k in names}

    def timed(name: str, fn, *args):
        w, c = time.perf_counter(), time.thread_time()
        out = fn(*args)
        wall[name].append((time.perf_counter() - w) * 1e3)
        cpu[name].append((time.thread_time() - c) * 1e3)
        return out

    for r in range(rounds):
        parsed = timed(names[0], analyzer.items.parse, edited[2 * r], str(SPEC))
        program = timed(names[1], analyzer._load, str(SPEC), edited[2 * r], parsed.source)
        timed(names[2], build, program, Sources(), "resnet50", Overrides())
        timed(names[3], analyzer.analyse, str(SPEC), edited[2 * r + 1], "resnet50")
    return ({k: stats(v) for k, v in wall.items()}, {k: stats(v) for k, v in cpu.items()})


def table(rows: dict[str, dict[str, float]]) -> list[str]:
    out = ["| what | n | best | median | p90 | worst |", "|---|---:|---:|---:|---:|---:|"]
    for name, s in rows.items():
        out.append(f"| {name} | {s['n']} | {s['best']:.1f} ms | {s['median']:.1f} ms | {s['p90']:.1f} ms | "
                   f"{s['worst']:.1f} ms |")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=25, help="edits of each kind (default 25)")
    p.add_argument("--cold-rounds", type=int, default=7, help="runs of each cold command (default 7)")
    p.add_argument("--gap", type=float, default=0.05, help="seconds between edits while typing (default 0.05)")
    p.add_argument("--out", help="write the results (markdown) here too")
    args = p.parse_args()
    load_before = os.getloadavg()
    started = time.time()
    typing, extra = warm(args.rounds, args.gap)
    pausing, _ = warm(max(4, args.rounds // 3), REST_DELAY + 0.02)
    parts, parts_cpu = inprocess(args.rounds)
    cold_rows = cold(args.cold_rounds)
    medians = [s["median"] for s in typing.values()]
    lines = [
        "# `archspec lsp`: re-checking resnet.arch after a one-character edit",
        "",
        "Written by `benchmarks/bench_lsp.py`; rerun it to refresh this file.",
        "",
        f"- When: {datetime.datetime.fromtimestamp(started):%Y-%m-%d %H:%M}; took {time.time() - started:.0f} s.",
        f"- Machine: {platform.machine()}, {os.cpu_count()} CPUs (shared), Python {platform.python_version()}; "
        f"load average {load_before[0]:.1f} before and {os.getloadavg()[0]:.1f} after.",
        f"- `OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}`, "
        f"`OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}`.",
        "",
        "## Headline",
        "",
        f"- Median re-check of resnet50 after a one-character edit, while typing: "
        f"**{min(medians):.1f} to {max(medians):.1f} ms** by kind of edit (the aim: {TARGET_MS:.0f} ms; "
        f"{'met' if max(medians) <= TARGET_MS else 'not met'} at the median; p90 up to "
        f"{max(s['p90'] for s in typing.values()):.1f} ms).",
        f"- The same edits just after a pause, each stopping the background check of the other networks: "
        f"medians {min(s['median'] for s in pausing.values()):.1f} to "
        f"{max(s['median'] for s in pausing.values()):.1f} ms.",
        f"- Cold, a new process each time: `archspec summary --network resnet50` "
        f"{cold_rows['archspec summary --network resnet50 --format json']['median']:.0f} ms, "
        "`archspec check --no-cache` of the file "
        f"{cold_rows['archspec check --no-cache resnet.arch (15 networks)']['median']:.0f} ms (medians).",
        f"- A hover after the edits: {extra['hover after the edits']:.1f} ms.",
        f"- In-process, a `block` edit costs {parts_cpu['all of it (Analyzer.analyse)']['median']:.1f} ms of CPU "
        f"(median; best {parts_cpu['all of it (Analyzer.analyse)']['best']:.1f} ms), of which expanding resnet50 "
        f"{parts_cpu['expand and shape resnet50']['median']:.1f} ms; its wall time on this machine was "
        f"{parts['all of it (Analyzer.analyse)']['median']:.1f} ms (median).",
        "",
        f"## Warm server, typing (edits {args.gap * 1000:.0f} ms apart)",
        "",
        *table(typing),
        "",
        f"## Warm server, just after a pause (edits {(REST_DELAY + 0.02) * 1000:.0f} ms apart)",
        "",
        *table(pausing),
        "",
        "## Where a `block` edit's time goes, in-process",
        "",
        "Wall time:",
        "",
        *table(parts),
        "",
        "CPU time of the server's thread (what the work costs on a machine with a core to spare):",
        "",
        *table(parts_cpu),
        "",
        "## Cold command line",
        "",
        *table(cold_rows),
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        from archspec.files import write_text

        write_text(args.out, text)


if __name__ == "__main__":
    main()
