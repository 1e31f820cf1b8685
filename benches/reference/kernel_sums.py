#!/usr/bin/env python3
"""NumPy reference for robustflow's kernel-sum benchmark (issue 6).

The vectorised code a Python user writes for the Gaussian witness and its gradient,
    s_i = sum_j v_j k(x_i, y_j),   g_i = sum_j v_j grad_x k(x_i, y_j)
          = -(s_i x_i - (K diag(v)) y)_i / h^2,   k = exp(-|x - y|^2 / (2 h^2)),
with the kernel matrix materialised (squared distances by one matmul) and a matmul for
the gradient. It reads the inputs the Rust benchmark wrote (raw little-endian f64), runs
each case `repeats` times, writes its results next to the inputs (so the Rust side can
check that both computed the same thing) and prints one JSON object per case with the
median wall time.

Usage: kernel_sums.py MANIFEST.json   (written by `cargo run --release --example bench_kernels`)
Run with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset (the environment pins OpenBLAS to AVX2).
"""
import json
import os
import sys
import time

import numpy as np


def witness_grad(x, y, v, h):
    xn = np.einsum("ij,ij->i", x, x)
    yn = np.einsum("ij,ij->i", y, y)
    r2 = xn[:, None] + yn[None, :] - 2.0 * (x @ y.T)
    kv = np.exp(-r2 / (2.0 * h * h)) * v[None, :]
    s = kv.sum(axis=1)
    g = -(s[:, None] * x - kv @ y) / (h * h)
    return s, g


def gemm_gflops(dtype, size=4096, repeats=3):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size)).astype(dtype)
    b = rng.standard_normal((size, size)).astype(dtype)
    a @ b
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        ts.append(time.perf_counter() - t)
    return 2.0 * size**3 / np.median(ts) / 1e9


def main():
    man = json.load(open(sys.argv[1]))
    base = os.path.dirname(os.path.abspath(sys.argv[1]))
    out = {"numpy": np.__version__, "cases": [], "gemm_gflops": {}}
    for dt in ("float64", "float32"):
        out["gemm_gflops"][dt] = gemm_gflops(np.dtype(dt))
    for c in man["cases"]:
        dt = np.dtype(c["dtype"])
        n, m, d = c["n"], c["m"], c["d"]
        x = np.fromfile(os.path.join(base, c["x"]), dtype="<f8").reshape(n, d).astype(dt)
        y = np.fromfile(os.path.join(base, c["y"]), dtype="<f8").reshape(m, d).astype(dt)
        v = np.fromfile(os.path.join(base, c["v"]), dtype="<f8").astype(dt)
        h = dt.type(c["h"])
        s, g = witness_grad(x, y, v, h)  # warm-up, and the result to compare
        ts = []
        for _ in range(c["repeats"]):
            t = time.perf_counter()
            witness_grad(x, y, v, h)
            ts.append(time.perf_counter() - t)
        s.astype("<f8").tofile(os.path.join(base, c["name"] + ".np_s"))
        g.astype("<f8").tofile(os.path.join(base, c["name"] + ".np_g"))
        out["cases"].append({"name": c["name"], "median_s": float(np.median(ts)),
                             "times_s": [float(t) for t in ts]})
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
