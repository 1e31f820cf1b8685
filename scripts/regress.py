#!/usr/bin/env python3
"""Behaviour regression check: run a fixed set of seeded robustflow commands and
compare every number in their reports between two builds.

    scripts/regress.py run --bin OLD/robustflow --out /tmp/reg-old
    scripts/regress.py run --bin target/release/robustflow --out /tmp/reg-new
    scripts/regress.py compare /tmp/reg-old /tmp/reg-new

`run` writes each command's outputs (report.json, CSV tables, model files' JSON) under
OUT/<case>/, plus stdout. `compare` walks every .json and .csv file of the first tree
and compares it with the same file of the second: every number must be identical
(bit for bit, as printed), strings equal, keys and rows the same; values under keys
that are timings (see TIMING_KEYS) are skipped. It prints each difference and exits 1
if there is one. Only the standard library is used.
"""
import csv
import json
import math
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "datasets")
BC = os.path.join(DATA, "breast_cancer.csv")
IRIS = os.path.join(DATA, "iris.csv")

# Keys (JSON keys or CSV columns) whose values are wall-clock measurements, provenance or
# machine facts, not results.
TIMING_KEYS = re.compile(
    r"(^|_)(secs?|seconds|time|times|elapsed|wall|ms|duration|timestamp|date|threads|"
    r"version|host|cpu|per_sec|rate_hz|started|finished|it_per_s|git_commit)($|_)",
    re.IGNORECASE,
)


def samples(out, name, shift, n=300, d=3):
    """A small seeded Gaussian sample CSV (same bytes on every run)."""
    import random
    rng = random.Random(name)
    path = os.path.join(out, "inputs", name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(",".join(f"x{j}" for j in range(d)) + "\n")
        for _ in range(n):
            f.write(",".join(f"{rng.gauss(shift, 1.0):.6f}" for _ in range(d)) + "\n")
    return path


def cases(out):
    """(name, argv without the binary) for every case; OUT/<name>/ is its directory."""
    d = lambda name: os.path.join(out, name)
    train_common = ["--data", BC, "--seed", "3", "--quiet"]
    sets = [
        ("none", []),
        ("wasserstein_w1", ["--ambiguity", "wasserstein", "--radius", "0.1", "--w1-norm", "l2"]),
        ("wasserstein_sq", ["--ambiguity", "wasserstein", "--penalty", "5", "--solver", "adamw", "--epochs", "3"]),
        ("kl", ["--ambiguity", "kl", "--radius", "0.2"]),
        ("chi2", ["--ambiguity", "chi2", "--radius", "0.2"]),
        ("cvar", ["--ambiguity", "cvar", "--radius", "0.2"]),
        ("mmd_ift", ["--ambiguity", "mmd", "--penalty", "2", "--epochs", "2", "--inner-steps", "5"]),
        ("mmd_rff", ["--ambiguity", "mmd", "--penalty", "2", "--epochs", "2", "--inner-steps", "5",
                     "--inner-flow", "wfr", "--approx", "rff:64"]),
        ("wfr", ["--ambiguity", "wfr", "--penalty", "2", "--epochs", "2", "--inner-steps", "5"]),
        ("mlp_wasserstein", ["--model", "mlp", "--hidden", "8", "--ambiguity", "wasserstein",
                             "--penalty", "5", "--epochs", "2"]),
        ("softmax_iris_kl", ["--model", "softmax", "--ambiguity", "kl", "--radius", "0.1",
                             "--data", IRIS]),
    ]
    out_cases = []
    for name, extra in sets:
        argv = ["train"] + train_common + extra + ["--out", d("train_" + name)]
        if "--data" in extra:  # the later --data wins; keep one
            i = argv.index("--data")
            del argv[i:i + 2]
        out_cases.append(("train_" + name, argv))
    out_cases += [
        ("certify_w1", ["certify", "--model", d("train_wasserstein_w1"), "--data", BC,
                        "--ambiguity", "wasserstein", "--radius", "0.05,0.1", "--quiet",
                        "--report", os.path.join(d("certify_w1"), "report.json")]),
        ("certify_sq", ["certify", "--model", d("train_none"), "--data", BC,
                        "--ambiguity", "wasserstein", "--radius", "0.1",
                        "--quiet", "--report", os.path.join(d("certify_sq"), "report.json")]),
        ("certify_kl", ["certify", "--model", d("train_none"), "--data", BC,
                        "--ambiguity", "kl", "--radius", "0.1", "--quiet",
                        "--report", os.path.join(d("certify_kl"), "report.json")]),
        ("eval_pgd", ["eval", "--model", d("train_none"), "--data", BC, "--attack", "pgd",
                      "--eps", "0.1,0.5", "--quiet",
                      "--report", os.path.join(d("eval_pgd"), "report.json")]),
        ("flow_gaussian", ["flow", "--target", "gaussian", "--flow", "all", "--particles", "64", "--langevin-step", "0.0005",
                           "--steps", "40", "--seed", "1", "--quiet", "--out-dir", d("flow_gaussian")]),
        ("flow_mixture", ["flow", "--target", "mixture", "--particles", "64", "--steps", "30",
                          "--seeds", "2", "--seed", "2", "--quiet", "--out-dir", d("flow_mixture")]),
        ("fitkl_mixture", ["fit-kl", "--target", "mixture", "--method", "all", "--particles", "64",
                           "--steps", "40", "--seed", "1", "--quiet", "--out-dir", d("fitkl_mixture")]),
        ("fitkl_banana", ["fit-kl", "--target", "banana", "--particles", "64", "--steps", "40",
                          "--seed", "4", "--quiet", "--out-dir", d("fitkl_banana")]),
        ("mmd", ["mmd", "--x", samples(out, "x.csv", 0.0), "--y", samples(out, "y.csv", 0.3),
                 "--permutations", "50", "--seed", "1", "--quiet",
                 "--report", os.path.join(d("mmd"), "report.json")]),
        ("bench_quick", ["bench", "--suite", "quick", "--quiet", "--out-dir", d("bench_quick")]),
    ]
    return out_cases


def run(binary, out):
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "binary.txt"), "w") as f:
        f.write(binary)
    failed = 0
    for name, argv in cases(out):
        os.makedirs(os.path.join(out, name), exist_ok=True)
        t = time.time()
        p = subprocess.run([binary] + argv, capture_output=True, text=True)
        with open(os.path.join(out, name, "stdout.txt"), "w") as f:
            f.write(p.stdout)
        with open(os.path.join(out, name, "exit.json"), "w") as f:
            json.dump({"exit_code": p.returncode, "stderr_lines": p.stderr.count("\n")}, f)
        status = "ok" if p.returncode == 0 else f"exit {p.returncode}: {p.stderr.strip()[-300:]}"
        failed += p.returncode != 0
        print(f"{name:22s} {time.time() - t:6.1f} s  {status}", flush=True)
    return failed


def is_num(s):
    try:
        float(s)
        return True
    except ValueError:
        return False


NORMALISE = []  # (prefix, placeholder) pairs applied to strings before comparing


def norm(v):
    if isinstance(v, str):
        for prefix, placeholder in NORMALISE:
            v = v.replace(prefix, placeholder)
    return v


def same_value(a, b):
    a, b = norm(a), norm(b)
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b and type(a) == type(b)


def cmp_json(a, b, path, diffs):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if TIMING_KEYS.search(k):
                continue
            if k not in a or k not in b:
                diffs.append(f"{path}.{k}: only in {'new' if k in b else 'old'}")
            else:
                cmp_json(a[k], b[k], f"{path}.{k}", diffs)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            diffs.append(f"{path}: length {len(a)} vs {len(b)}")
        for i, (x, y) in enumerate(zip(a, b)):
            cmp_json(x, y, f"{path}[{i}]", diffs)
    elif not same_value(a, b):
        diffs.append(f"{path}: {a!r} vs {b!r}")


def cmp_csv(fa, fb, rel, diffs):
    with open(fa, newline="") as f:
        ra = list(csv.reader(f))
    with open(fb, newline="") as f:
        rb = list(csv.reader(f))
    if not ra or not rb:
        if ra != rb:
            diffs.append(f"{rel}: one file empty")
        return
    ha, hb = ra[0], rb[0]
    if ha != hb:
        diffs.append(f"{rel}: header {ha} vs {hb}")
        return
    if len(ra) != len(rb):
        diffs.append(f"{rel}: {len(ra) - 1} rows vs {len(rb) - 1}")
    skip = {i for i, h in enumerate(ha) if TIMING_KEYS.search(h)}
    for r, (x, y) in enumerate(zip(ra[1:], rb[1:]), start=2):
        for c, (u, v) in enumerate(zip(x, y)):
            if c in skip or norm(u) == norm(v):
                continue
            diffs.append(f"{rel}:{r}:{ha[c] if c < len(ha) else c}: {u} vs {v}")


def compare(old, new):
    diffs = []
    for root in (old, new):
        binary = os.path.join(root, "binary.txt")
        if os.path.exists(binary):
            NORMALISE.append((open(binary).read(), "<BIN>"))
        NORMALISE.append((os.path.abspath(root), "<OUT>"))
    checked = 0
    for dirpath, _, files in os.walk(old):
        for fn in sorted(files):
            fa = os.path.join(dirpath, fn)
            rel = os.path.relpath(fa, old)
            fb = os.path.join(new, rel)
            if not (fn.endswith(".json") or fn.endswith(".csv")):
                continue
            if not os.path.exists(fb):
                diffs.append(f"{rel}: missing in new")
                continue
            checked += 1
            if fn.endswith(".json"):
                with open(fa) as f:
                    ja = json.load(f)
                with open(fb) as f:
                    jb = json.load(f)
                cmp_json(ja, jb, rel, diffs)
            else:
                cmp_csv(fa, fb, rel, diffs)
    for dirpath, _, files in os.walk(new):
        for fn in files:
            rel = os.path.relpath(os.path.join(dirpath, fn), new)
            if (fn.endswith(".json") or fn.endswith(".csv")) and not os.path.exists(os.path.join(old, rel)):
                diffs.append(f"{rel}: only in new")
    for line in diffs[:200]:
        print(line)
    print(f"{checked} files compared, {len(diffs)} differences")
    return 1 if diffs else 0


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "run":
        import argparse
        ap = argparse.ArgumentParser(prog="regress.py run")
        ap.add_argument("--bin", required=True)
        ap.add_argument("--out", required=True)
        a = ap.parse_args(sys.argv[2:])
        sys.exit(1 if run(os.path.abspath(a.bin), os.path.abspath(a.out)) else 0)
    if len(sys.argv) == 4 and sys.argv[1] == "compare":
        sys.exit(compare(sys.argv[2], sys.argv[3]))
    print(__doc__)
    sys.exit(2)


if __name__ == "__main__":
    main()
