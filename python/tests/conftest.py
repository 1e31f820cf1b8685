import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "datasets", "breast_cancer.csv")


def robustflow_bin():
    """The CLI built by `cargo test --release` / `cargo build --release` (or $ROBUSTFLOW_BIN)."""
    p = os.environ.get("ROBUSTFLOW_BIN") or os.path.join(ROOT, "target", "release", "robustflow")
    if not os.path.exists(p):
        p = shutil.which("robustflow") or p
    if not os.path.exists(p):
        pytest.fail(f"the robustflow CLI is needed at {p}: run `cargo build --release` first")
    return p


def run_cli(*args, cwd=None):
    r = subprocess.run([robustflow_bin(), "--quiet", *map(str, args)], capture_output=True,
                       text=True, cwd=cwd)
    if r.returncode != 0:
        raise AssertionError(f"robustflow {' '.join(map(str, args))} failed:\n{r.stderr}")
    return r
