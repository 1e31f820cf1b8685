#!/usr/bin/env python3
"""CSV input: robustflow's readers against pandas.read_csv on the same files.

Generates, in a temporary directory, a numeric training file (ROWS x COLS: COLS-1 Gaussian
features written with 17 significant digits and a 0/1 label; header x1..,target) and
times, alternating, in the same run:

* ``robustflow load``  - the training loader (examples/load_csv.rs ``load``: typed columns,
  schema, stratified split, standardised matrices), a whole process;
* ``robustflow table`` - the typed-column reader alone (``RawTable::read``), a whole process;
* ``robustflow numeric`` - the numeric reader of ``mmd`` / ``flow --target``
  (``io::read_numeric_csv``), a whole process;
* ``pandas.read_csv`` - in-process (interpreter start-up and import not counted).

Peak memory is the maximum resident set size reported by ``/usr/bin/time -v`` (for pandas:
a separate ``python3 -c 'pd.read_csv(...)'`` process, import included). Throughput is the
file size over the median time.

Usage: ``python3 examples/bench_loader.py [--rows 1000000] [--cols 20] [--reps 3]``
(builds ``examples/load_csv`` with ``cargo build --release --example load_csv`` unless
``--no-build``). ``run()`` returns the rows of the table, for the end-to-end benchmark.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "target", "release", "examples", "load_csv")


def write_file(path, rows, cols, seed=0):
    """Numeric CSV: cols-1 Gaussian features (17 significant digits) and a 0/1 target."""
    import numpy as np

    rng = np.random.default_rng(seed)
    header = ",".join([f"x{j + 1}" for j in range(cols - 1)] + ["target"])
    with open(path, "w") as f:
        f.write(header + "\n")
        chunk = 100_000
        for start in range(0, rows, chunk):
            m = min(chunk, rows - start)
            x = rng.standard_normal((m, cols - 1))
            y = (x[:, 0] + 0.5 * rng.standard_normal(m) > 0).astype(int)
            fmt = ",".join(["%.17g"] * (cols - 1)) + ",%d"
            np.savetxt(f, np.column_stack([x, y]), fmt=fmt)


def peak_rss_mb(cmd):
    """Run cmd under /usr/bin/time -v; return (stdout, peak RSS in MB, wall seconds,
    CPU seconds = user + system)."""
    t0 = time.perf_counter()
    p = subprocess.run(
        ["/usr/bin/time", "-v"] + cmd, capture_output=True, text=True, check=True
    )
    wall = time.perf_counter() - t0
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr)
    cpu = sum(
        float(x)
        for x in re.findall(r"(?:User|System) time \(seconds\): ([0-9.]+)", p.stderr)
    )
    return p.stdout, (int(m.group(1)) / 1024 if m else float("nan")), wall, cpu


def time_robustflow(path, mode):
    out, rss, wall, cpu = peak_rss_mb([EXAMPLE, path, mode])
    info = json.loads(out.strip().splitlines()[-1])
    return wall, cpu, rss, info


def time_pandas(path):
    import pandas as pd

    t0, c0 = time.perf_counter(), time.process_time()
    df = pd.read_csv(path)
    t, c = time.perf_counter() - t0, time.process_time() - c0
    return t, c, df.shape


def pandas_rss(path):
    code = f"import pandas as pd; pd.read_csv({path!r})"
    return peak_rss_mb([sys.executable, "-c", code])[1]


def run(rows=1_000_000, cols=20, reps=3, build=True, quiet=False, workdir=None):
    """Generate the file, time every reader `reps` times alternating; return table rows
    (dicts: reader, rows, cols, mb, median_s, mb_per_s, rows_per_s, peak_rss_mb)."""
    if build:
        subprocess.run(
            ["cargo", "build", "--release", "--example", "load_csv"],
            cwd=ROOT,
            check=True,
        )
    tmp = tempfile.TemporaryDirectory(dir=workdir)
    path = os.path.join(tmp.name, f"numeric_{rows}x{cols}.csv")
    t0 = time.perf_counter()
    write_file(path, rows, cols)
    mb = os.path.getsize(path) / 1e6
    if not quiet:
        print(
            f"wrote {path}: {rows} rows x {cols} columns, {mb:.0f} MB "
            f"({time.perf_counter() - t0:.0f} s)",
            flush=True,
        )
    readers = ["robustflow load", "robustflow table", "robustflow numeric", "pandas.read_csv"]
    times = {r: [] for r in readers}
    cpus = {r: [] for r in readers}
    rss = {r: [] for r in readers}
    for rep in range(reps):
        order = readers if rep % 2 == 0 else readers[::-1]
        for r in order:
            if r == "pandas.read_csv":
                t, c, shape = time_pandas(path)
                assert shape == (rows, cols), shape
            else:
                t, c, m, info = time_robustflow(path, r.split()[1])
                rss[r].append(m)
                assert info["rows"] == rows, info
            times[r].append(t)
            cpus[r].append(c)
            if not quiet:
                print(f"  rep {rep + 1}: {r:20s} {t:7.2f} s wall, {c:7.2f} s CPU", flush=True)
    rss["pandas.read_csv"].append(pandas_rss(path))
    data_mb = rows * cols * 8 / 1e6
    out = []
    for r in readers:
        med = statistics.median(times[r])
        cpu = statistics.median(cpus[r])
        out.append(
            {
                "reader": r,
                "rows": rows,
                "cols": cols,
                "file_mb": mb,
                "data_f64_mb": data_mb,
                "median_s": med,
                "times_s": times[r],
                "cpu_s": cpu,
                "cpus_s": cpus[r],
                "mb_per_cpu_s": mb / cpu,
                "mb_per_s": mb / med,
                "rows_per_s": rows / med,
                "peak_rss_mb": max(rss[r]),
            }
        )
    tmp.cleanup()
    return out


def table(rows):
    """The markdown table of run()'s rows (ratios against pandas.read_csv)."""
    pandas = next(r for r in rows if r["reader"] == "pandas.read_csv")
    lines = [
        "| reader | wall (s) | MB/s | rows/s | wall speed vs pandas | CPU (s) | MB per CPU-s | CPU speed vs pandas | peak RSS (MB) | peak RSS / data as f64 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['reader']} | {r['median_s']:.2f} | {r['mb_per_s']:.0f} | "
            f"{r['rows_per_s']:.3g} | {pandas['median_s'] / r['median_s']:.2f}x | "
            f"{r['cpu_s']:.2f} | {r['mb_per_cpu_s']:.0f} | {pandas['cpu_s'] / r['cpu_s']:.2f}x | "
            f"{r['peak_rss_mb']:.0f} | {r['peak_rss_mb'] / r['data_f64_mb']:.2f} |"
        )
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--cols", type=int, default=20)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--json", help="also write the rows as JSON to this file")
    a = ap.parse_args()
    rows = run(a.rows, a.cols, a.reps, build=not a.no_build)
    r0 = rows[0]
    print(
        f"\n{r0['rows']} rows x {r0['cols']} columns, {r0['file_mb']:.0f} MB of CSV, "
        f"{r0['data_f64_mb']:.0f} MB as f64; medians of {a.reps} alternating runs\n"
    )
    print(table(rows))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
