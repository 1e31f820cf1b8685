#!/usr/bin/env python3
"""robustflow's training loop against a plain PyTorch loop doing the same work (issue 19).

Data: sklearn make_classification (20 features, 10 informative, class_sep 1, seed 0),
stratified 75/25 split (seed 0), written to CSV with full precision. Model: MLP 20-64-64-1
(ReLU), AdamW lr 1e-3 (weight decay 0), batch 128, 5 epochs, 2 threads, binary
cross-entropy. PyTorch starts from robustflow's initial weights (read from a model saved
after one epoch at lr 1e-300, which leaves every weight bit-identical), standardises with
the training mean and population standard deviation as robustflow does, and runs:

- ERM: forward, loss, backward, AdamW step per minibatch;
- WRM (penalty gamma, K inner steps, step size tau): robustflow's Wasserstein step,
  x <- x - tau / (2 gamma) * (-grad_x l(x) + 2 gamma (x - x0)) from x = x0, K times, then
  the step on mean l(x*);
- WFR (penalty gamma = lambda): the same position step, then the Fisher-Rao step on the
  log-weights, lw <- lw - tau / lambda * (-l + gamma ||x - x0||^2 + lambda (ln n + lw + 1)),
  renormalised; the outer step is on sum_i w_i l(x_i*).

Each epoch both sides compute the mean minibatch loss, the loss and accuracy on the whole
training set and on the test set (robustflow's report.json records these). robustflow's
time is the sum of epochs[].time_s in report.json; PyTorch's the same span of its loop.
Runs alternate (robustflow, torch f32, torch f64) and the table gives medians.

    python3 examples/bench_train.py                      # 2e4 and 1e5 rows, 3 repeats
    python3 examples/bench_train.py --sizes 20000 --reps 1 --workloads erm
    python3 examples/bench_train.py --mmd                # also MMD-DRO at 1e5 (robustflow only)

Writes docs/perf/train.json and docs/perf/train_table.md (paste into docs/PERFORMANCE.md).
Needs torch and scikit-learn (benchmark only, never CI).
"""

import argparse
import json
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def make_data(n, outdir):
    from sklearn.datasets import make_classification
    from sklearn.model_selection import train_test_split

    x, y = make_classification(
        n_samples=n, n_features=20, n_informative=10, class_sep=1.0, random_state=0
    )
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.25, stratify=y, random_state=0)
    paths = []
    for name, xa, ya in (("train", xtr, ytr), ("test", xte, yte)):
        p = Path(outdir) / f"{name}_{n}.csv"
        with open(p, "w") as f:
            f.write(",".join([f"x{j}" for j in range(20)] + ["y"]) + "\n")
            for r, t in zip(xa, ya):
                f.write(",".join(repr(float(v)) for v in r) + f",{int(t)}\n")
        paths.append(p)
    return paths


def read_csv(p):
    a = np.loadtxt(p, delimiter=",", skiprows=1)
    return a[:, :-1], a[:, -1]


def read_safetensors(p):
    raw = Path(p).read_bytes()
    (hl,) = struct.unpack("<Q", raw[:8])
    head = json.loads(raw[8 : 8 + hl])
    out = {}
    for k, v in head.items():
        if k == "__metadata__":
            continue
        s, e = v["data_offsets"]
        assert v["dtype"] == "F64"
        out[k] = np.frombuffer(raw[8 + hl + s : 8 + hl + e], dtype="<f8").reshape(v["shape"])
    return out


def rf_cmd(binary, train, test, out, workload, lr="1e-3", epochs=5, extra=()):
    cmd = [
        str(binary), "--quiet", "--threads", "2", "train",
        "--data", str(train), "--test", str(test), "--target", "y",
        "--model", "mlp", "--hidden", "64,64", "--activation", "relu",
        "--epochs", str(epochs), "--lr", lr, "--batch-size", "128", "--seed", "0",
        # the torch loop runs AdamW at a constant rate (the CLI's default schedule is cosine)
        "--lr-schedule", "constant",
        "--out", str(out),
    ]
    cmd += WORKLOADS[workload]["rf"]
    cmd += list(extra)
    return cmd


WORKLOADS = {
    "erm": {"rf": ["--ambiguity", "none"]},
    "wrm": {"rf": ["--ambiguity", "wasserstein", "--penalty", "1", "--inner-steps", "10",
                   "--inner-step-size", "0.1"]},
    "wfr": {"rf": ["--ambiguity", "wfr", "--penalty", "1", "--inner-steps", "10",
                   "--inner-step-size", "0.1"]},
    "mmd": {"rf": ["--ambiguity", "mmd", "--penalty", "10"]},
}


def run_rf(binary, train, test, workload, extra=()):
    with tempfile.TemporaryDirectory() as td:
        cmd = ["/usr/bin/time", "-f", "%e %U %S %M"] + rf_cmd(
            binary, train, test, Path(td) / "m", workload, extra=extra)
        t0 = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        tl = r.stderr.strip().splitlines()[-1].split() if r.stderr.strip() else ["0"] * 4
        if r.returncode != 0:
            raise SystemExit(f"robustflow failed: {' '.join(cmd)}\n{r.stderr}")
        rep = json.loads((Path(td) / "m" / "report.json").read_text())
    return {
        "time": sum(e["time_s"] for e in rep["epochs"]),
        "wall": wall,
        "cpu_s": float(tl[1]) + float(tl[2]),
        "peak_rss_mb": float(tl[3]) / 1024.0,
        "loss": rep["epochs"][-1]["loss"],
        "robust_loss": rep["epochs"][-1]["robust_loss"],
        "test_loss": rep["test"]["loss"],
        "test_acc": rep["test"]["accuracy"],
    }


def initial_weights(binary, train, test):
    with tempfile.TemporaryDirectory() as td:
        cmd = rf_cmd(binary, train, test, Path(td) / "m", "erm", lr="1e-300", epochs=1)
        subprocess.run(cmd, check=True, capture_output=True)
        return read_safetensors(Path(td) / "m" / "model.safetensors")


def run_torch(w0, data, workload, dtype_name, seed=0, threads=2):
    import torch

    torch.set_num_threads(threads)
    dt = {"f32": torch.float32, "f64": torch.float64}[dtype_name]
    xtr, ytr, xte, yte = data
    mean = xtr.mean(0)
    std = xtr.std(0)
    xtr_t = torch.tensor((xtr - mean) / std, dtype=dt)
    xte_t = torch.tensor((xte - mean) / std, dtype=dt)
    ytr_t = torch.tensor(ytr, dtype=dt)
    yte_t = torch.tensor(yte, dtype=dt)
    lin = []
    for l in range(3):
        w = torch.tensor(w0[f"l{l}.weight"], dtype=dt)
        m = torch.nn.Linear(w.shape[0], w.shape[1], dtype=dt)
        with torch.no_grad():
            m.weight.copy_(w.T)
            m.bias.copy_(torch.tensor(w0[f"l{l}.bias"], dtype=dt))
        lin.append(m)
    model = torch.nn.Sequential(lin[0], torch.nn.ReLU(), lin[1], torch.nn.ReLU(), lin[2])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
                            weight_decay=0.0)
    bce = torch.nn.BCEWithLogitsLoss(reduction="none")
    gen = torch.Generator().manual_seed(seed)
    n = len(ytr_t)
    gamma, steps, tau = 1.0, 10, 0.1
    alpha = 1.0 / (2.0 * gamma)
    lam = gamma

    def per_sample(xb, yb):
        return bce(model(xb).squeeze(1), yb)

    total = 0.0
    for _epoch in range(5):
        t0 = time.perf_counter()
        perm = torch.randperm(n, generator=gen)
        sl, nb = 0.0, 0
        for s in range(0, n, 128):
            idx = perm[s : s + 128]
            xb, yb = xtr_t[idx], ytr_t[idx]
            if workload == "erm":
                l = per_sample(xb, yb)
                obj = l.mean()
                clean = obj.detach()
            else:
                with torch.no_grad():
                    clean = per_sample(xb, yb).mean()
                x = xb.clone()
                lw = torch.full((len(yb),), -np.log(len(yb)), dtype=dt)
                for _ in range(steps):
                    x.requires_grad_(True)
                    l = per_sample(x, yb)
                    (g,) = torch.autograd.grad(l.sum(), x)
                    with torch.no_grad():
                        x = x - tau * alpha * (-g + 2.0 * gamma * (x - xb))
                    if workload == "wfr":
                        with torch.no_grad():
                            l2 = per_sample(x, yb)
                            gv = -l2 + gamma * ((x - xb) ** 2).sum(1) + lam * (
                                np.log(len(yb)) + lw + 1.0)
                            lw = lw - tau / lam * gv
                            lw = lw - torch.logsumexp(lw, 0)
                x = x.detach()
                l = per_sample(x, yb)
                if workload == "wfr":
                    obj = (lw.exp() * l).sum()
                else:
                    obj = l.mean()
            opt.zero_grad(set_to_none=True)
            obj.backward()
            opt.step()
            sl += float(clean)
            nb += 1
        with torch.no_grad():
            ltr = per_sample(xtr_t, ytr_t)
            acc_tr = float(((model(xtr_t).squeeze(1) > 0).to(dt) == ytr_t).to(dt).mean())
            lte = per_sample(xte_t, yte_t).mean()
            acc_te = float(((model(xte_t).squeeze(1) > 0).to(dt) == yte_t).to(dt).mean())
            _ = (ltr.mean(), acc_tr, acc_te)
        total += time.perf_counter() - t0
    return {"time": total, "loss": sl / nb, "test_loss": float(lte), "test_acc": acc_te}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=str(ROOT / "target/release/robustflow"))
    ap.add_argument("--base-binary", default=None,
                    help="a second robustflow binary (e.g. the base commit) timed alongside")
    ap.add_argument("--sizes", default="20000,100000")
    ap.add_argument("--workloads", default="erm,wrm,wfr")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--mmd", action="store_true", help="also time MMD-DRO at the largest size")
    ap.add_argument("--mmd-reps", type=int, default=1)
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--no-f64", action="store_true", help="skip torch f64")
    ap.add_argument("--torch-threads", type=int, default=2,
                    help="torch.set_num_threads (2 as robustflow's --threads 2; on a loaded "
                         "machine 2 OpenMP threads can be 20x slower than 1)")
    ap.add_argument("--out", default=str(ROOT / "docs/perf"))
    a = ap.parse_args()
    sizes = [int(float(s)) for s in a.sizes.split(",")]
    workloads = a.workloads.split(",")
    results = []
    with tempfile.TemporaryDirectory() as td:
        for n in sizes:
            train, test = make_data(n, td)
            xtr, ytr = read_csv(train)
            xte, yte = read_csv(test)
            data = (xtr, ytr, xte, yte)
            w0 = initial_weights(a.binary, train, test)
            for wl in workloads:
                runs = {"robustflow": [], "torch f32": [], "torch f64": []}
                if a.base_binary:
                    runs["robustflow base"] = []
                for rep in range(a.reps):
                    runs["robustflow"].append(run_rf(a.binary, train, test, wl))
                    if a.base_binary:
                        runs["robustflow base"].append(run_rf(a.base_binary, train, test, wl))
                    if not a.no_torch:
                        runs["torch f32"].append(
                            run_torch(w0, data, wl, "f32", threads=a.torch_threads))
                        if not a.no_f64:
                            runs["torch f64"].append(
                                run_torch(w0, data, wl, "f64", threads=a.torch_threads))
                    print(n, wl, rep, {k: round(v[-1]["time"], 3) for k, v in runs.items() if v},
                          flush=True)
                row = {"rows": n, "n_train": len(ytr), "workload": wl}
                for k, v in runs.items():
                    if v:
                        row[k] = {
                            "median_time_s": statistics.median(r["time"] for r in v),
                            "times": [r["time"] for r in v],
                            "loss": v[-1]["loss"],
                            "test_loss": v[-1]["test_loss"],
                            "test_acc": v[-1]["test_acc"],
                            "peak_rss_mb": v[-1].get("peak_rss_mb"),
                            "cpu_s": v[-1].get("cpu_s"),
                        }
                results.append(row)
                print(json.dumps(row), flush=True)
        if a.mmd:
            n = max(sizes)
            train, test = make_data(n, td)
            row = {"rows": n, "workload": "mmd"}
            for key, b in (("robustflow", a.binary), ("robustflow base", a.base_binary)):
                if b:
                    v = [run_rf(b, train, test, "mmd") for _ in range(a.mmd_reps)]
                    row[key] = {"median_time_s": statistics.median(r["time"] for r in v),
                                "times": [r["time"] for r in v], "loss": v[-1]["loss"],
                                "cpu_s": [r["cpu_s"] for r in v],
                                "test_loss": v[-1]["test_loss"]}
            results.append(row)
            print(json.dumps(row), flush=True)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "train.json").write_text(json.dumps(results, indent=1))
    lines = ["| workload | rows (train) | robustflow (s) | torch f32 (s) | torch f64 (s) | "
             "robustflow / torch f32 | final batch loss rf / f32 / f64 | test loss rf / f32 |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        if r["workload"] == "mmd":
            continue
        rf, f32, f64 = r.get("robustflow"), r.get("torch f32"), r.get("torch f64")
        fmt = lambda d, k="median_time_s": f"{d[k]:.2f}" if d else "-"
        ratio = f"**{rf['median_time_s'] / f32['median_time_s']:.2f}x**" if rf and f32 else "-"
        losses = " / ".join(f"{d['loss']:.4f}" if d else "-" for d in (rf, f32, f64))
        tl = " / ".join(f"{d['test_loss']:.4f}" if d else "-" for d in (rf, f32))
        lines.append(f"| {r['workload'].upper()} | {r['rows']} ({r['n_train']}) | {fmt(rf)} | "
                     f"{fmt(f32)} | {fmt(f64)} | {ratio} | {losses} | {tl} |")
    for r in results:
        if r["workload"] == "mmd":
            base = r.get("robustflow base")
            lines.append("")
            lines.append(f"MMD-DRO (IFT, penalty 10) at {r['rows']} rows: robustflow "
                         f"{r['robustflow']['median_time_s']:.1f} s"
                         + (f", base {base['median_time_s']:.1f} s "
                            f"({base['median_time_s'] / r['robustflow']['median_time_s']:.2f}x)"
                            if base else ""))
    (out / "train_table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
