"""mmd / flow / fit_kl over NumPy arrays: closed forms and the CLI's reports."""
import json

import numpy as np
import pytest

import robustflow

from conftest import run_cli


def _mmd2_biased(x, y, h):
    def k(a, b):
        r2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        return np.exp(-r2 / (2 * h * h))
    return k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean()


def test_mmd_matches_the_formula_and_the_cli(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3))
    y = rng.normal(size=(50, 3)) + 0.5
    r = robustflow.mmd(x, y, bandwidth=1.3, permutations=99, seed=4)
    assert r["mmd2_biased"] == pytest.approx(_mmd2_biased(x, y, 1.3), rel=1e-12)
    assert (r["n"], r["m"], r["d"]) == (60, 50, 3)
    assert 0 < r["p_value"] <= 0.05
    np.savetxt(tmp_path / "x.csv", x, delimiter=",", fmt="%.17g")
    np.savetxt(tmp_path / "y.csv", y, delimiter=",", fmt="%.17g")
    run_cli("mmd", "--x", tmp_path / "x.csv", "--y", tmp_path / "y.csv", "--bandwidth", "1.3",
            "--permutations", "99", "--seed", "4", "--report", tmp_path / "r.json")
    cli = json.load(open(tmp_path / "r.json"))
    for k in ("mmd2_biased", "mmd2_unbiased", "p_value", "bandwidth", "block_sums"):
        assert r[k] == cli[k], k
    with pytest.raises(ValueError, match="kernel"):
        robustflow.mmd(x, y, kernel="nope")


def test_flow_on_an_array_target(capfd):
    rng = np.random.default_rng(1)
    target = rng.normal(size=(80, 2))
    out = robustflow.flow(target, flow="mmd,wfr", steps=40, particles=30, seed=2, seeds=2)
    # the results are returned, nothing is printed (the CLI's summary table is not)
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""
    rep = out["report"]
    assert set(out["particles"]) == {"mmd", "wfr"}
    for name, p in out["particles"].items():
        assert p["x"].shape == (30, 2)
        assert p["weight"].sum() == pytest.approx(1.0, abs=1e-9)
        assert rep["flows"][name]["final_energy"] < out["trace"]["energy"][
            [i for i, f in enumerate(out["trace"]["flow"]) if f == name][0]]
    with pytest.raises(ValueError):
        robustflow.flow(target, flow="nope", steps=10)


def test_fit_kl_on_samples(capfd):
    rng = np.random.default_rng(3)
    s = np.concatenate([rng.normal(-3, 1, size=(100, 1)), rng.normal(3, 1, size=(100, 1))])
    out = robustflow.fit_kl(s, method="wfr", particles=20, steps=30, seed=0, seeds=2)
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""
    assert "wfr" in out["particles"]
    p = out["particles"]["wfr"]
    assert p["x"].shape == (20, 1)
    assert p["weight"].sum() == pytest.approx(1.0, abs=1e-9)
    assert "methods" in out["report"]
