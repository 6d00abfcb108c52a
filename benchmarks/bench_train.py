"""Reproduce the book's Fashion-MNIST results with `archspec train`, then check the compiled ONNX.

    apt-get install dataset-fashion-mnist
    python benchmarks/bench_train.py --out benchmarks/train_results.md

1. `archspec data fashion-mnist` unpacks Debian's gzip files into a temporary root, checking
   the decompressed contents against the SHA-256s the project pins;
2. `archspec train specs/lenet.arch --preset book --device auto` and the same for
   specs/lenet_bn.arch: the book's recipe (SGD, lr 0.1, batch 128, Xavier init, 28x28 in
   [0, 1]) for 10 epochs each, in this process, with torch.set_num_threads(--threads); and,
   when a CUDA GPU is present, the book's ResNet-18 at 96x96 (`--preset book`: lr 0.01,
   resize 96) on it. Without a GPU ResNet-18 is not run (on a CPU it would take hours), and
   the results say so;
3. a plain torch loop of the book's LeNet recipe (torchvision's Resize + ToTensor per image,
   a DataLoader, no Lightning) for one epoch on the same data: the time an epoch costs
   without archspec and Lightning, measured on the same machine in the same run;
4. each best checkpoint is compiled by `archspec compile --weights best.safetensors -f onnx`
   (at the input size the run trained at), and its accuracy over the whole test set, resized
   as in training, is counted in torch and in onnxruntime.

On a machine shared with other busy processes, run it with OMP_WAIT_POLICY=PASSIVE in the
environment: OpenMP threads that spin while they wait for a core slow every step down many
times over (the results record the setting and the load average).

The book reports 0.73 validation accuracy for LeNet after 10 epochs, 0.87-0.88 for LeNet with
batch normalisation and 0.90-0.92 for ResNet-18; the bands checked here are 0.70-0.80,
0.85-0.92 and 0.87-0.94.

For a quick check of the script itself on small data (the bands then fail, exit 1):

    python benchmarks/bench_train.py --no-pins --from DIR_OF_SMALL_GZ_FILES --epochs 1 --networks lenet
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from archspec.cli import main as archspec_main
from archspec.train.unpack import DEBIAN_DIR

BANDS = {"lenet": (0.70, 0.80, "0.73"), "lenet_bn": (0.85, 0.92, "0.87-0.88"),
         "resnet18": (0.87, 0.94, "0.90-0.92")}
ONNX_TOLERANCE = 0.001


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--from", dest="source", default=DEBIAN_DIR, help="the four Fashion-MNIST .gz files")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--networks", default="lenet,lenet_bn", help="networks trained on any device")
    ap.add_argument("--gpu-networks", default="resnet18", help="networks trained only when a CUDA GPU is "
                    "present (too slow for a CPU); '' for none")
    ap.add_argument("--work", default=None, help="keep the data and runs here (default: a temporary folder)")
    ap.add_argument("--out", default=None, help="write the results as markdown here")
    ap.add_argument("--pins", action=argparse.BooleanOptionalAction, default=True,
                    help="check the pinned SHA-256s (off only for small test data)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(args.work or tempfile.mkdtemp(prefix="bench_train."))
    root = work / "data"
    t = time.perf_counter()
    if args.pins:
        assert archspec_main(["data", "fashion-mnist", "--from", args.source, "--to", str(root)]) == 0
    else:
        root = Path(args.source)
    unpack_s = time.perf_counter() - t
    results = {"machine": machine(args.threads), "unpack_seconds": unpack_s, "runs": {}}
    results["plain_loop"] = plain_loop(root, args.threads)
    print(f"plain torch loop: {results['plain_loop']['seconds']:.1f} s for one LeNet epoch", flush=True)
    gpu = torch.cuda.is_available()
    for name in filter(None, args.networks.split(",") + (args.gpu_networks.split(",") if gpu else [])):
        results["runs"][name] = run(name, root, work, args.epochs)
    results["not_run"] = [] if gpu else [n for n in args.gpu_networks.split(",") if n]
    text = markdown(results, args.epochs)
    print(text)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    return 0 if all(r["ok"] for r in results["runs"].values()) else 1


def run(name: str, root: Path, work: Path, epochs: int) -> dict:
    out = work / "runs" / name
    code = archspec_main(["train", str(REPO / "specs" / f"{name}.arch"), "--preset", "book", "--epochs", str(epochs),
                          "--data", f"fashion-mnist:{root}", "--device", "auto", "--workers", "0", "-o", str(out)])
    assert code == 0, f"archspec train {name} failed ({code})"
    summary = json.loads((out / "summary.json").read_text())
    best = out / "best.safetensors"
    size = ",".join(map(str, summary["spec"]["input"]))
    assert archspec_main(["compile", str(REPO / "specs" / f"{name}.arch"), "--input", size, "--weights", str(best),
                          "-f", "onnx", "-o", str(work / "onnx" / name)]) == 0
    torch_acc, ort_acc = test_accuracy(summary, root, best, work / "onnx" / name / f"{name}.onnx")
    lo, hi, _ = BANDS.get(name, (0, 1, "?"))
    last = summary["last_val_acc"]
    # on the CPU torch here repeats train's own count exactly; a GPU's kernels may tip a sample or two
    same = 1e-9 if summary["device"]["accelerator"] == "cpu" else ONNX_TOLERANCE
    return {"summary": summary, "torch_acc": torch_acc, "onnx_acc": ort_acc,
            "ok": lo <= last <= hi and abs(torch_acc - ort_acc) <= ONNX_TOLERANCE
            and abs(torch_acc - summary["best_val_acc"]) <= same}


def test_accuracy(summary: dict, root: Path, weights: Path, onnx_path: Path) -> tuple[float, float]:
    """Accuracy of the best weights over the whole test set: the torch module, and the ONNX in onnxruntime.

    The network is built and the images resized for the input size the run recorded in its
    summary (28x28 for LeNet, 96x96 for the book's ResNet-18), as `archspec train` fed them.
    """
    import onnxruntime as ort
    from torch.utils.data import DataLoader

    import archspec
    from archspec.export.weights import read_checkpoint
    from archspec.train.data import cached, load
    from archspec.train.module import scale
    from archspec.train.recipe import Source

    spec_record = summary["spec"]
    shape = tuple(spec_record["input"])
    spec = archspec.load(str(REPO / "specs" / f"{spec_record['network']}.arch"), input=shape)  # no --set here
    device = "cuda" if summary["device"]["accelerator"] == "cuda" and torch.cuda.is_available() else "cpu"
    net = spec.to_torch().eval()
    net.load_state_dict(read_checkpoint(str(weights))[0])
    net.to(device)
    val = cached(load(Source("fashion-mnist", str(root)), shape).val)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0].name
    right_torch = right_onnx = total = 0
    for x, y in DataLoader(val, batch_size=500):
        xb = scale(x)
        with torch.no_grad():
            right_torch += int((net(xb.to(device)).argmax(1).cpu() == y).sum())
        right_onnx += int((session.run(None, {feed: xb.numpy()})[0].argmax(1) == y.numpy()).sum())
        total += len(y)
    return right_torch / total, right_onnx / total


def plain_loop(root: Path, threads: int) -> dict:
    """One epoch of the book's LeNet recipe in plain torch: per-image Resize + ToTensor, SGD, then validation."""
    from torch.nn import functional as F
    from torch.utils.data import DataLoader, Dataset
    from torchvision import transforms as T

    import archspec
    from archspec.train.data import fashion_mnist
    from archspec.train.module import init_xavier

    class Book(Dataset):
        def __init__(self, x, y):
            self.x, self.y, self.tf = x, y, T.Compose([T.Resize((28, 28)), T.ToTensor()])

        def __len__(self):
            return len(self.y)

        def __getitem__(self, i):
            from PIL import Image

            return self.tf(Image.fromarray(self.x[i].numpy())), int(self.y[i])

    (xt, yt), (xv, yv) = fashion_mnist(root)
    torch.manual_seed(0)
    net = init_xavier(archspec.load(str(REPO / "specs/lenet.arch")).to_torch(), 0)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    t = time.perf_counter()
    for x, y in DataLoader(Book(xt, yt), batch_size=128, shuffle=True):
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    train_s = time.perf_counter() - t
    right = 0
    with torch.no_grad():
        for x, y in DataLoader(Book(xv, yv), batch_size=128):
            right += int((net(x).argmax(1) == y).sum())
    return {"seconds": time.perf_counter() - t, "train_seconds": train_s, "val_acc": right / len(yv)}


def machine(threads: int) -> dict:
    import lightning
    import torchvision

    return {"date": datetime.date.today().isoformat(), "python": platform.python_version(),
            "torch": torch.__version__, "torchvision": torchvision.__version__, "lightning": lightning.__version__,
            "cpus": os.cpu_count(), "threads": threads, "processor": platform.processor() or platform.machine(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "load_average": list(os.getloadavg()), "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "")}


def markdown(r: dict, epochs: int) -> str:
    m = r["machine"]
    busy = m["load_average"][0] > m["cpus"]
    lines = ["# `archspec train`: the book's Fashion-MNIST results, reproduced", "",
             (f"Measured {m['date']} by `python benchmarks/bench_train.py`: {m['cpus']} CPU cores, "
             f"torch.set_num_threads({m['threads']})"
             f"{', OMP_WAIT_POLICY=' + m['omp_wait_policy'] if m['omp_wait_policy'] else ''}, "
             f"{'GPU ' + m['gpu'] if m['gpu'] else 'no GPU'}; torch {m['torch']}, torchvision {m['torchvision']}, "
             f"lightning {m['lightning']}, Python {m['python']}. Load average at the start "
             f"{m['load_average'][0]:.1f} on {m['cpus']} cores"
             f"{' (other work shared the machine)' if busy else ''}."), "",
             (f"Data: Debian's dataset-fashion-mnist, unpacked by `archspec data` with the pinned SHA-256s checked "
             f"({r['unpack_seconds']:.1f} s). Recipe: `--preset book`, {epochs} epochs, batch 128, plain SGD, "
             "Xavier-uniform init, pixels in [0, 1]; validation on the 10,000 test images every epoch."), ""]
    names = list(r["runs"])
    lines += ["## Validation accuracy and seconds per epoch", "",
              "| epoch | " + " | ".join(f"{n} val acc | {n} s" for n in names) + " |",
              "|---:|" + "---:|---:|" * len(names)]
    for e in range(epochs):
        cells = []
        for n in names:
            h = r["runs"][n]["summary"]["history"]
            cells += [f"{h[e]['val_acc']:.4f}", f"{h[e]['seconds']:.1f}"] if e < len(h) else ["", ""]
        lines.append(f"| {e + 1} | " + " | ".join(cells) + " |")
    lines += ["", "## Results", "",
              ("| network | last val acc | book | band | best (epoch) | s/epoch | samples/s | test acc, torch | "
              "test acc, ONNX | ok |"), "|---|---:|---:|---|---:|---:|---:|---:|---:|---|"]
    for n in names:
        x = r["runs"][n]
        s = x["summary"]
        lo, hi, book = BANDS.get(n, (0, 1, "?"))
        lines.append(f"| {n} | {s['last_val_acc']:.4f} | {book} | {lo:.2f}-{hi:.2f} | {s['best_val_acc']:.4f} "
                     f"({s['best_epoch']}) | {s['seconds_per_epoch']:.1f} | {s['samples_per_second']:,.0f} | "
                     f"{x['torch_acc']:.4f} | {x['onnx_acc']:.4f} | {'yes' if x['ok'] else 'NO'} |")
    for n in r["not_run"]:
        lo, hi, book = BANDS.get(n, (0, 1, "?"))
        lines += ["", (f"{n} (the book's {book}, band {lo:.2f}-{hi:.2f}): the GPU reproduction was not run because "
                       "there is no GPU on this machine (`torch.cuda.is_available()` is false); the script trains "
                       f"{n} only on a CUDA GPU.")]
    p = r["plain_loop"]
    lines += ["", ("The ONNX column is the best checkpoint compiled by `archspec compile --weights "
              "best.safetensors -f onnx` and run in onnxruntime over the whole test set; it must be within "
              f"{ONNX_TOLERANCE} of torch's, which must equal the best validation accuracy `train` recorded."), "",
              "## The same epoch without archspec or Lightning", "",
              (f"A plain torch loop of the book's LeNet recipe (per-image Resize + ToTensor in a DataLoader, SGD): "
              f"{p['train_seconds']:.1f} s to train one epoch, {p['seconds']:.1f} s with validation "
              f"(val acc {p['val_acc']:.4f} after one epoch). `archspec train` decodes the images once, keeps "
              "them in memory as uint8 and scales them per batch (the same floats), so its epoch costs the "
              "network's arithmetic and Lightning's bookkeeping only."), "",
              ("Times are wall-clock seconds on this machine as it was"
               + (f", with other processes busy (load average {m['load_average'][0]:.1f} on {m['cpus']} cores at "
                  "the start): compare the two loops measured in the same run, not figures from a quiet machine."
                  if busy else f" (load average {m['load_average'][0]:.1f} on {m['cpus']} cores at the start). The "
                  "machine is shared: compare the two loops measured in the same run.")), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
