#!/usr/bin/env python3
"""End-to-end benchmark of robustflow's front door (issue 15): whole `robustflow`
processes, as a user runs them, against the Python reference they would write, in the
same run, alternating, medians of repetitions.

(a) `robustflow mmd --x A.csv --y B.csv --permutations 1` at n = m = 1e4, d = 2 and
    d = 100 (CSV values written with 17 significant digits), against the faster of
    NumPy (`exp(-D / (2 h^2)).mean()` on materialised squared-distance matrices) and
    PyTorch (`torch.cdist`), computing the same biased MMD^2 in-process with the data
    already loaded, with robustflow's bandwidth. Targets: >= 6x at d = 2, >= 2x at d = 100.
(b) `robustflow mmd --approx rff:1024 --permutations 10` at n = m = 2e5, d = 10 (two
    ~40 MB CSVs) against `pandas.read_csv` of both files followed by the same
    random-feature statistics (observed + 10 permutations) in NumPy; robustflow's peak
    memory (`/usr/bin/time -v`) must stay under 4x the data as f64 plus 300 MB.
(c) `robustflow flow --target FILE.csv --target-samples 1000` on a 50,000-row target:
    wall time and the reported noise floor (non-zero, reproducible with the seed).
(d) the error of `--approx rff:D` / `nystrom:M` against the exact biased and unbiased
    MMD^2 for a range of D and M (n = m = 4000, d = 2 and 10), mean over 3 seeds.

If /work/wt/data/examples/bench_loader.py (the CSV-loader benchmark) or
examples/bench_loader.py exists, its `run()` is imported and run too.

Usage: python3 examples/bench_front_door.py [--bin target/release/robustflow]
       [--reps 5] [--json docs/perf/front_door.json] [--only a,b,c]

The NumPy reference runs with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset (the
machine's values mis-tune OpenBLAS); every other command runs in the caller's env.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

# ------------------------------------------------------------------ references (child code)

NUMPY_MMD = r"""
import sys, time, json, numpy as np
x = np.load(sys.argv[1]); y = np.load(sys.argv[2]); h = float(sys.argv[3])
def sqd(a, b):
    return (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
t0 = time.perf_counter()
g = 1.0 / (2.0 * h * h)
kxx = np.exp(-sqd(x, x) * g).mean()
kyy = np.exp(-sqd(y, y) * g).mean()
kxy = np.exp(-sqd(x, y) * g).mean()
mmd2 = kxx + kyy - 2.0 * kxy
t1 = time.perf_counter()
print(json.dumps({"time_s": t1 - t0, "mmd2": float(mmd2)}))
"""

TORCH_MMD = r"""
import sys, time, json, numpy as np, torch
x = torch.from_numpy(np.load(sys.argv[1])); y = torch.from_numpy(np.load(sys.argv[2]))
h = float(sys.argv[3])
t0 = time.perf_counter()
g = 1.0 / (2.0 * h * h)
kxx = torch.exp(-torch.cdist(x, x).pow(2) * g).mean()
kyy = torch.exp(-torch.cdist(y, y).pow(2) * g).mean()
kxy = torch.exp(-torch.cdist(x, y).pow(2) * g).mean()
mmd2 = (kxx + kyy - 2.0 * kxy).item()
t1 = time.perf_counter()
print(json.dumps({"time_s": t1 - t0, "mmd2": mmd2, "threads": torch.get_num_threads()}))
"""

# pandas.read_csv of both files, then the random-feature statistics: the observed biased
# MMD^2 and 10 permutation statistics, |Phi' s|^2 with D frequencies (features in row
# chunks, never the N x 2D matrix).
PANDAS_RFF = r"""
import sys, time, json, numpy as np, pandas as pd
fx, fy, h, nf, perms = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
t0 = time.perf_counter()
x = pd.read_csv(fx, header=None).to_numpy(dtype=np.float64)
y = pd.read_csv(fy, header=None).to_numpy(dtype=np.float64)
t1 = time.perf_counter()
n, m, d = x.shape[0], y.shape[0], x.shape[1]
z = np.concatenate([x, y])
rng = np.random.default_rng(0)
omega = rng.standard_normal((nf, d)) / h
cols = [np.r_[np.full(n, 1.0 / n), np.full(m, -1.0 / m)]]
labels = np.r_[np.ones(n, bool), np.zeros(m, bool)]
for _ in range(perms):
    rng.shuffle(labels)
    cols.append(np.where(labels, 1.0 / n, -1.0 / m))
v = np.stack(cols, 1)
e = np.zeros((v.shape[1], 2 * nf))
for i in range(0, n + m, 8192):
    u = z[i:i + 8192] @ omega.T
    vt = v[i:i + 8192].T
    e[:, :nf] += vt @ np.cos(u)
    e[:, nf:] += vt @ np.sin(u)
q = (e * e).sum(1) / nf
obs = q[0]
p = (1 + (q[1:] >= obs * (1 - 1e-12)).sum()) / (1 + perms)
t2 = time.perf_counter()
print(json.dumps({"time_s": t2 - t0, "read_s": t1 - t0, "stat_s": t2 - t1,
                  "mmd2": float(obs), "p_value": float(p)}))
"""


def numpy_env():
    env = dict(os.environ)
    env.pop("OPENBLAS_CORETYPE", None)
    env.pop("OPENBLAS_L2_SIZE", None)
    return env


def run_child(code, args, env=None):
    out = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        capture_output=True, text=True, env=env, check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def timed(cmd, env=None):
    """Wall time of a whole process; its stdout."""
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    t = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed:\n{out.stderr}")
    return t, out.stdout


def peak_rss_mb(cmd):
    """Peak resident set size (MB) of a whole process by /usr/bin/time -v."""
    out = subprocess.run(["/usr/bin/time", "-v", *map(str, cmd)], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    for line in out.stderr.splitlines():
        if "Maximum resident set size" in line:
            return int(line.split(":")[1]) / 1024.0
    raise RuntimeError("no Maximum resident set size in /usr/bin/time output")


def write_csv(path, a):
    """17 significant digits, as a user's tools would write full-precision doubles."""
    np.savetxt(path, a, fmt="%.17g", delimiter=",")


def med(v):
    return statistics.median(v)


def torch_available():
    try:
        subprocess.run([sys.executable, "-c", "import torch"], check=True, capture_output=True)
        return True
    except subprocess.CalledProcessError:
        return False


# ------------------------------------------------------------------ (a)

def bench_exact(bin_, tmp, d, reps, have_torch):
    n = 10_000
    rng = np.random.default_rng(d)
    x = rng.standard_normal((n, d))
    y = rng.standard_normal((n, d))
    y[:, 0] += 0.1
    fx, fy = tmp / f"x{d}.csv", tmp / f"y{d}.csv"
    write_csv(fx, x)
    write_csv(fy, y)
    # the references load the same values (parsed back from the CSVs), as .npy
    xs, ys = np.loadtxt(fx, delimiter=","), np.loadtxt(fy, delimiter=",")
    nx, ny = tmp / f"x{d}.npy", tmp / f"y{d}.npy"
    np.save(nx, xs.reshape(n, d))
    np.save(ny, ys.reshape(n, d))
    rep = tmp / f"mmd{d}.json"
    cmd = [bin_, "mmd", "--x", fx, "--y", fy, "--permutations", "1", "--report", rep]
    timed(cmd)  # warm-up (page cache) and the bandwidth
    r = json.loads(rep.read_text())
    h = r["bandwidth"]
    rf, npy, tor = [], [], []
    np_val = t_val = None
    for _ in range(reps):
        rf.append(timed(cmd)[0])
        o = run_child(NUMPY_MMD, [nx, ny, h], env=numpy_env())
        npy.append(o["time_s"])
        np_val = o["mmd2"]
        if have_torch:
            o = run_child(TORCH_MMD, [nx, ny, h], env=numpy_env())
            tor.append(o["time_s"])
            t_val = o["mmd2"]
    ref = min(med(npy), med(tor)) if tor else med(npy)
    return {
        "d": d, "n": n, "m": n, "bandwidth": h,
        "robustflow_s": med(rf), "robustflow_all_s": rf,
        "numpy_s": med(npy), "numpy_all_s": npy,
        "torch_s": med(tor) if tor else None, "torch_all_s": tor,
        "reference": "torch" if tor and med(tor) < med(npy) else "numpy",
        "ratio": ref / med(rf),
        "mmd2_robustflow": r["mmd2_biased"], "mmd2_numpy": np_val, "mmd2_torch": t_val,
        "method": r["method"], "p_value": r["p_value"],
        "target": 6.0 if d == 2 else 2.0,
    }


# ------------------------------------------------------------------ (b)

def bench_rff(bin_, tmp, reps):
    n, d, nf, perms = 200_000, 10, 1024, 10
    rng = np.random.default_rng(7)
    x = rng.standard_normal((n, d))
    y = rng.standard_normal((n, d))
    y[:, 0] += 0.05
    fx, fy = tmp / "x_rff.csv", tmp / "y_rff.csv"
    write_csv(fx, x)
    write_csv(fy, y)
    mb = (fx.stat().st_size + fy.stat().st_size) / 1e6
    rep = tmp / "rff.json"
    cmd = [bin_, "mmd", "--x", fx, "--y", fy, "--approx", f"rff:{nf}",
           "--permutations", str(perms), "--report", rep]
    timed(cmd)  # warm-up
    r = json.loads(rep.read_text())
    h = r["bandwidth"]
    rf, pd_ = [], []
    ref = None
    for _ in range(reps):
        rf.append(timed(cmd)[0])
        ref = run_child(PANDAS_RFF, [fx, fy, h, nf, perms], env=numpy_env())
        pd_.append(ref["time_s"])
    rss = peak_rss_mb(cmd)
    data_mb = 2 * n * d * 8 / 2**20
    limit = 4 * data_mb + 300
    # the exact statistic on the same files would take (n+m)^2 kernel evaluations; the
    # approximation's accuracy is documented in docs/PERFORMANCE.md (approximation table)
    return {
        "n": n, "m": n, "d": d, "features": nf, "permutations": perms, "csv_mb": mb,
        "robustflow_s": med(rf), "robustflow_all_s": rf,
        "pandas_numpy_s": med(pd_), "pandas_numpy_all_s": pd_,
        "pandas_read_s": ref["read_s"], "numpy_stat_s": ref["stat_s"],
        "ratio": med(pd_) / med(rf),
        "peak_rss_mb": rss, "data_f64_mib": data_mb, "rss_limit_mb": limit,
        "mmd2_robustflow": r["mmd2_biased"], "mmd2_numpy": ref["mmd2"],
        "p_value_robustflow": r["p_value"], "p_value_numpy": ref["p_value"],
        "method": r["method"], "approx": r["approx"],
    }


# ------------------------------------------------------------------ (c)

def bench_flow(bin_, tmp, reps):
    rows = 50_000
    rng = np.random.default_rng(3)
    t = rng.standard_normal((rows, 2)) @ np.array([[1.0, 0.5], [0.0, 0.8]])
    ft = tmp / "target50k.csv"
    write_csv(ft, t)
    times, floors = [], []
    for r in range(reps):
        out = tmp / f"flow{r}"
        cmd = [bin_, "--quiet", "flow", "--target", ft, "--target-samples", "1000",
               "--flow", "mmd,mmd-noise", "--steps", "500", "--seed", "0", "--out-dir", out]
        times.append(timed(cmd)[0])
        rep = json.loads((out / "report.json").read_text())
        floors.append(rep["floor_mmd2"]["median"])
        ttr = rep["config"].get("target_training_rows")
    out = tmp / "flow_seed1"
    timed([bin_, "--quiet", "flow", "--target", ft, "--target-samples", "1000",
           "--flow", "mmd,mmd-noise", "--steps", "500", "--seed", "1", "--out-dir", out])
    other = json.loads((out / "report.json").read_text())["floor_mmd2"]["median"]
    return {
        "rows": rows, "target_samples": 1000, "training_rows": ttr,
        "flows": "mmd,mmd-noise", "steps": 500,
        "robustflow_s": med(times), "robustflow_all_s": times,
        "floor_mmd2_seed0": floors, "floor_mmd2_seed1": other,
        "reproducible": len(set(floors)) == 1,
    }


# ------------------------------------------------------------------ (d) approximation error

def bench_approx(bin_, tmp, seeds=3):
    """|approx - exact| / exact of the biased and unbiased MMD^2 for a range of D and M,
    mean over feature seeds, at n = m = 4000, d = 2 and d = 10, a mean shift of 0.2."""
    out = []
    for d in (2, 10):
        n = 4000
        rng = np.random.default_rng(100 + d)
        x = rng.standard_normal((n, d))
        y = rng.standard_normal((n, d))
        y[:, 0] += 0.2
        fx, fy = tmp / f"ax{d}.csv", tmp / f"ay{d}.csv"
        write_csv(fx, x)
        write_csv(fy, y)
        rep = tmp / "ap.json"

        def stat(approx, seed):
            t, _ = timed([bin_, "mmd", "--x", fx, "--y", fy, "--permutations", "0",
                          "--approx", approx, "--seed", str(seed), "--report", rep])
            r = json.loads(rep.read_text())
            return t, r["mmd2_biased"], r["mmd2_unbiased"]

        t_ex, b_ex, u_ex = stat("exact", 0)
        rows = [{"d": d, "approx": "exact", "rel_err_biased": 0.0, "rel_err_unbiased": 0.0,
                 "time_s": t_ex, "mmd2_biased": b_ex}]
        for approx in ["rff:64", "rff:256", "rff:1024", "rff:4096",
                       "nystrom:50", "nystrom:200", "nystrom:800", "nystrom:3200"]:
            eb, eu, ts = [], [], []
            for seed in range(seeds):
                t, b, u = stat(approx, seed)
                eb.append(abs(b - b_ex) / b_ex)
                eu.append(abs(u - u_ex) / abs(u_ex))
                ts.append(t)
            rows.append({"d": d, "approx": approx, "rel_err_biased": float(np.mean(eb)),
                         "rel_err_unbiased": float(np.mean(eu)), "time_s": med(ts),
                         "mmd2_biased": b_ex})
        for r in rows:
            print(f"(d) d={d} {r['approx']:>13}: rel. error biased {r['rel_err_biased']:.2e}, "
                  f"unbiased {r['rel_err_unbiased']:.2e}, {r['time_s']:.2f} s", flush=True)
        out.extend(rows)
    return out


# ------------------------------------------------------------------ tables

def markdown(res):
    """The end-to-end and approximation tables of docs/PERFORMANCE.md."""
    out = []
    if "a" in res or "b" in res or "c" in res:
        out += ["| command (whole process) | robustflow | reference (same run) | ratio | target | met |",
                "|---|---|---|---|---|---|"]
    for r in res.get("a", []):
        ref = f"NumPy {r['numpy_s']:.2f} s" + (f", PyTorch {r['torch_s']:.2f} s" if r["torch_s"] else "")
        out.append(f"| `mmd --permutations 1`, n = m = 1e4, d = {r['d']} ({r['method']}) | "
                   f"{r['robustflow_s']:.2f} s | {ref} (biased MMD^2 in-process, data loaded) | "
                   f"{r['ratio']:.1f}x vs {r['reference']} | >= {r['target']:.0f}x | "
                   f"{'yes' if r['ratio'] >= r['target'] else 'no'} |")
    if "b" in res:
        r = res["b"]
        out.append(f"| `mmd --approx rff:1024 --permutations 10`, n = m = 2e5, d = 10 ({r['csv_mb']:.0f} MB CSV) | "
                   f"{r['robustflow_s']:.2f} s, peak RSS {r['peak_rss_mb']:.0f} MB | pandas.read_csv + NumPy "
                   f"{r['pandas_numpy_s']:.2f} s (read {r['pandas_read_s']:.2f} s) | {r['ratio']:.1f}x | "
                   f"faster, RSS <= {r['rss_limit_mb']:.0f} MB | "
                   f"{'yes' if r['ratio'] > 1 and r['peak_rss_mb'] <= r['rss_limit_mb'] else 'no'} |")
    if "c" in res:
        r = res["c"]
        out.append(f"| `flow --target 50k.csv --target-samples 1000` ({r['flows']}, {r['steps']} updates) | "
                   f"{r['robustflow_s']:.2f} s, floor {r['floor_mmd2_seed0'][0]:.3e} | - | - | seconds, floor > 0 | "
                   f"{'yes' if r['floor_mmd2_seed0'][0] > 0 and r['reproducible'] else 'no'} |")
    if "d" in res:
        out += ["", "| d | approx | rel. error biased MMD^2 | rel. error unbiased MMD^2 | time (whole process) |",
                "|---|---|---|---|---|"]
        for r in res["d"]:
            out.append(f"| {r['d']} | {r['approx']} | {r['rel_err_biased']:.1e} | "
                       f"{r['rel_err_unbiased']:.1e} | {r['time_s']:.2f} s |")
    return "\n".join(out)


# ------------------------------------------------------------------ main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=str(ROOT / "target/release/robustflow"))
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--json", default=str(ROOT / "docs/perf/front_door.json"))
    ap.add_argument("--only", default="a,b,c,d,loader")
    a = ap.parse_args()
    parts = set(a.only.split(","))
    have_torch = torch_available()
    res = {"torch_available": have_torch, "reps": a.reps, "cpus": os.cpu_count()}
    if not have_torch:
        print("PyTorch is not importable: the reference of (a) is NumPy alone")
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        if "a" in parts:
            res["a"] = [bench_exact(a.bin, tmp, d, a.reps, have_torch) for d in (2, 100)]
            for r in res["a"]:
                print(f"(a) d={r['d']}: robustflow {r['robustflow_s']:.3f} s, numpy {r['numpy_s']:.3f} s, "
                      f"torch {r['torch_s'] if r['torch_s'] is None else round(r['torch_s'], 3)} s, "
                      f"ratio {r['ratio']:.2f}x (target {r['target']}x); "
                      f"MMD2 {r['mmd2_robustflow']:.12e} vs numpy {r['mmd2_numpy']:.12e}; method {r['method']}",
                      flush=True)
        if "b" in parts:
            r = res["b"] = bench_rff(a.bin, tmp, a.reps)
            print(f"(b) rff:1024, 10 permutations, n=m=2e5, d=10 ({r['csv_mb']:.0f} MB of CSV): "
                  f"robustflow {r['robustflow_s']:.2f} s vs pandas+numpy {r['pandas_numpy_s']:.2f} s "
                  f"(read {r['pandas_read_s']:.2f} s) = {r['ratio']:.2f}x; peak RSS {r['peak_rss_mb']:.0f} MB "
                  f"(limit {r['rss_limit_mb']:.0f} MB); MMD2 {r['mmd2_robustflow']:.4e} vs {r['mmd2_numpy']:.4e}",
                  flush=True)
        if "c" in parts:
            r = res["c"] = bench_flow(a.bin, tmp, max(1, min(a.reps, 3)))
            print(f"(c) flow --target 50k-row CSV --target-samples 1000: {r['robustflow_s']:.2f} s, "
                  f"noise floor {r['floor_mmd2_seed0'][0]:.3e} (seed 1: {r['floor_mmd2_seed1']:.3e}), "
                  f"reproducible: {r['reproducible']}", flush=True)
        if "d" in parts:
            res["d"] = bench_approx(a.bin, tmp)
    if "loader" in parts:
        for p in (Path("/work/wt/data/examples/bench_loader.py"), ROOT / "examples/bench_loader.py"):
            if p.exists():
                sys.path.insert(0, str(p.parent))
                try:
                    import bench_loader  # noqa: E402
                    res["loader"] = bench_loader.run()
                except Exception as e:  # report, do not hide the other results
                    res["loader"] = {"error": repr(e)}
                    print(f"bench_loader.run() failed: {e!r}")
                break
    print(markdown(res))
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(res, indent=2, default=str))
    print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
