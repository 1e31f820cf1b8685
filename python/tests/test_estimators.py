"""The scikit-learn estimators against the CLI on the same data (same code path, so the
same numbers), and the scikit-learn contract."""
import json
import os
import pickle
import re
import subprocess

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import robustflow
from robustflow import RobustClassifier, RobustRegressor
from robustflow._estimators import TRAIN_PARAMS

from conftest import DATA, ROOT, robustflow_bin, run_cli


@pytest.fixture(scope="module")
def bc():
    df = pd.read_csv(DATA)
    return df.iloc[:, :-1], df.iloc[:, -1], df


def _same_default(ours, cli):
    if ours is None or ours is False:
        return cli in (None, "false")
    if isinstance(ours, (int, float)) and not isinstance(ours, bool):
        return float(cli) == float(ours)
    return str(ours) == cli


def test_defaults_match_the_cli():
    # (1) the clap structure of `robustflow train` itself
    clap = dict(robustflow._robustflow.train_defaults())
    for est in (RobustClassifier(), RobustRegressor()):
        params = est.get_params()
        assert set(params) == set(TRAIN_PARAMS)
        for k, v in params.items():
            if isinstance(est, RobustRegressor) and k == "model":
                assert v == "linear"  # the CLI's regression model (documented)
                continue
            cli = clap.get(k.replace("_", "-"))
            assert _same_default(v, cli), (k, v, cli)
    # every train flag is a parameter, except the ones fit() sets
    flags = set(k.replace("-", "_") for k in clap)
    # (--select / --select-by: in Python the radius is chosen by GridSearchCV)
    assert flags - set(TRAIN_PARAMS) <= {"test_fraction", "help", "select", "select_by"}
    # (2) the text of `robustflow train --help`
    help_text = subprocess.run([robustflow_bin(), "train", "--help"], capture_output=True,
                               text=True, check=True).stdout
    shown = {}
    for block in re.split(r"\n(?=\s+-(?:\w, )?-)", help_text):
        m = re.match(r"\s+(?:-\w, )?--([a-z0-9-]+)", block)
        d = re.search(r"\[default: ([^\]]+)\]", block)
        if m and d:
            shown[m.group(1)] = d.group(1)
    assert len(shown) >= 15  # the inner-effort flags give per-command defaults in their text
    for flag, default in shown.items():
        k = flag.replace("-", "_")
        if k in TRAIN_PARAMS:
            assert _same_default(TRAIN_PARAMS[k], default), (flag, default)


def test_fit_equals_cli_train(bc, tmp_path):
    X, y, df = bc
    est = RobustClassifier(ambiguity="wasserstein", w1_norm="l2", radius=0.1).fit(X, y)
    run_cli("train", "--data", DATA, "--test-fraction", "0", "--ambiguity", "wasserstein",
            "--w1-norm", "l2", "--radius", "0.1", "--out", tmp_path / "m")
    rep = json.load(open(tmp_path / "m" / "report.json"))
    assert rep["solver"] == "exact" and rep["n_train"] == len(df)
    assert est.objective_ == rep["objective"]
    cli = robustflow.load(tmp_path / "m")
    np.testing.assert_array_equal(est.predict_proba(X), cli.predict_proba(X))
    np.testing.assert_array_equal(est.predict(X), cli.predict(X))
    assert list(est.classes_) == [0, 1] and list(cli.classes_) == [0, 1]
    assert est.n_features_in_ == 30 and list(est.feature_names_in_) == list(X.columns)


def test_python_model_used_by_cli_eval(bc, tmp_path):
    X, y, _ = bc
    est = RobustClassifier(ambiguity="kl", radius=0.2).fit(X, y)
    est.save(tmp_path / "py")
    run_cli("eval", "--model", tmp_path / "py", "--data", DATA, "--predictions",
            tmp_path / "pred.csv")
    pred = pd.read_csv(tmp_path / "pred.csv")
    p = est.predict_proba(X)
    np.testing.assert_allclose(pred["p_1"].to_numpy(), p[:, 1], rtol=1e-15, atol=0)
    np.testing.assert_array_equal(pred["predicted"].to_numpy(), est.predict(X))


def test_decision_function_and_score(bc):
    X, y, _ = bc
    est = RobustClassifier(ambiguity="chi2", radius=0.1).fit(X, y)
    z = est.decision_function(X)
    p = est.predict_proba(X)
    assert z.shape == (len(X),)
    with np.errstate(over="ignore"):  # exp(-z) = inf for very negative z: sigmoid 0
        np.testing.assert_allclose(1 / (1 + np.exp(-z)), p[:, 1], rtol=1e-12)
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-14)
    np.testing.assert_array_equal(est.predict(X), (z > 0).astype(int))
    assert est.score(X, y) == np.mean(est.predict(X) == y) > 0.95


def test_categorical_dataframe_and_string_labels_as_cli(tmp_path):
    rng = np.random.default_rng(0)
    n = 120
    color = rng.choice(["red", "green", "blue"], n)
    x1 = rng.normal(size=n)
    logit = x1 + (color == "red") * 1.5 - (color == "blue")
    lab = np.where(logit + rng.normal(size=n) > 0, "yes", "no")
    df = pd.DataFrame({"x1": x1, "color": color, "label": lab})
    df.to_csv(tmp_path / "d.csv", index=False)
    est = RobustClassifier(ambiguity="wasserstein", w1_norm="l2", radius=0.05)
    est.fit(df[["x1", "color"]], df["label"])
    assert list(est.classes_) == ["no", "yes"]
    assert [f for f in est.schema_["features"]] == ["x1", "color=blue", "color=green", "color=red"]
    run_cli("train", "--data", tmp_path / "d.csv", "--test-fraction", "0", "--ambiguity",
            "wasserstein", "--w1-norm", "l2", "--radius", "0.05", "--out", tmp_path / "m")
    rep = json.load(open(tmp_path / "m" / "report.json"))
    assert abs(est.objective_ - rep["objective"]) <= 1e-12 * abs(rep["objective"])
    run_cli("eval", "--model", tmp_path / "m", "--data", tmp_path / "d.csv", "--predictions",
            tmp_path / "p.csv")
    pred = pd.read_csv(tmp_path / "p.csv")
    np.testing.assert_array_equal(pred["predicted"].to_numpy(), est.predict(df[["x1", "color"]]))
    np.testing.assert_allclose(pred["p_yes"].to_numpy(), est.predict_proba(df[["x1", "color"]])[:, 1],
                               rtol=1e-12)
    # an unknown category is the library's error, as a ValueError
    bad = df[["x1", "color"]].copy()
    bad.loc[3, "color"] = "purple"
    with pytest.raises(ValueError, match="purple"):
        est.predict(bad)


def test_regressor_is_least_squares():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 4))
    y = X @ np.array([1.0, -2.0, 0.5, 0.0]) + 3 + 0.1 * rng.normal(size=200)
    est = RobustRegressor().fit(X, y)
    A = np.column_stack([X, np.ones(len(X))])
    coef = np.linalg.lstsq(A, y, rcond=None)[0]
    np.testing.assert_allclose(est.predict(X), A @ coef, rtol=1e-8, atol=1e-8)
    assert est.score(X, y) > 0.99
    rob = RobustRegressor(ambiguity="wasserstein", w1_norm="l2", radius=0.5).fit(X, y)
    assert rob.objective_ > est.objective_


def test_clone_pipeline_gridsearch(bc):
    X, y, _ = bc
    est = RobustClassifier(ambiguity="wasserstein", w1_norm="l2", radius=0.3)
    c = clone(est)
    assert c.get_params() == est.get_params() and not hasattr(c, "model_")
    pipe = make_pipeline(StandardScaler(), RobustClassifier(ambiguity="kl", radius=0.1))
    assert pipe.fit(X, y).score(X, y) > 0.95
    gs = GridSearchCV(est, {"radius": [0.01, 0.1, 1.0]}, cv=3).fit(X, y)
    assert gs.best_params_["radius"] in (0.01, 0.1, 1.0)
    assert len(gs.cv_results_["mean_test_score"]) == 3
    # a larger radius gives a larger robust objective (nested balls)
    objs = [RobustClassifier(ambiguity="wasserstein", w1_norm="l2", radius=r).fit(X, y).objective_
            for r in (0.01, 0.1, 1.0)]
    assert objs[0] < objs[1] < objs[2]


def test_errors_are_value_errors(bc):
    X, y, _ = bc
    with pytest.raises(ValueError, match="ambiguity"):
        RobustClassifier(ambiguity="nope").fit(X, y)
    with pytest.raises(ValueError, match="radius"):
        RobustClassifier(ambiguity="wasserstein", w1_norm="l2", radius=-1.0).fit(X, y)
    Xn = X.to_numpy().copy()
    Xn[5, 2] = np.nan
    with pytest.raises(ValueError):
        RobustClassifier().fit(Xn, y)
    # with impute=mean, missing values are the library's business (as in the CLI)
    assert RobustClassifier(impute="mean").fit(Xn, y).predict(Xn).shape == (len(Xn),)
    with pytest.raises(ValueError, match="one class"):
        RobustClassifier().fit(X.iloc[:10], np.zeros(10))


def test_save_load_pickle_round_trip(bc, tmp_path):
    X, y, _ = bc
    est = RobustClassifier(ambiguity="cvar", radius=0.5).fit(X, y)
    est.save(tmp_path / "m")
    back = robustflow.load(tmp_path / "m")
    np.testing.assert_array_equal(back.predict_proba(X), est.predict_proba(X))
    assert back.report_ == est.report_
    p = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(p.predict_proba(X), est.predict_proba(X))
    assert p.get_params() == est.get_params()


def test_certify_brackets_and_matches_cli(bc, tmp_path):
    X, y, _ = bc
    est = RobustClassifier().fit(X, y)
    c = robustflow.certify(est, X, y, ambiguity="wasserstein", radius=[0.0, 0.1, 0.5], norm="l2")
    assert c["radius"] == [0.0, 0.1, 0.5]
    for lo, cf, up in zip(c["lower_bound"], c["closed_form"], c["upper_bound"]):
        assert lo <= cf + 1e-9 and (up is None or cf <= up + 1e-9)
    assert c["closed_form"][0] == pytest.approx(c["empirical_risk"][0], rel=1e-12)
    assert c["closed_form"][0] < c["closed_form"][1] < c["closed_form"][2]
    est.save(tmp_path / "m")
    run_cli("certify", "--model", tmp_path / "m", "--data", DATA, "--ambiguity", "wasserstein",
            "--radius", "0,0.1,0.5", "--norm", "l2", "--report", tmp_path / "c.json")
    rows = json.load(open(tmp_path / "c.json"))["rows"]
    assert [r["closed_form"] for r in rows] == c["closed_form"]
    assert [r["lower_bound"] for r in rows] == c["lower_bound"]
    assert pd.DataFrame(est.certify(X, y, ambiguity="kl", radius=0.1)).shape == (1, 9)


def test_multiclass_softmax():
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    est = RobustClassifier(model="softmax", ambiguity="kl", radius=0.05).fit(X, y)
    assert est.decision_function(X).shape == (150, 3)
    assert est.predict_proba(X).shape == (150, 3)
    np.testing.assert_array_equal(est.predict(X), est.classes_[est.predict_proba(X).argmax(1)])
    assert est.score(X, y) > 0.9


def test_gil_released_during_fit():
    """Python threads keep running while a fit runs in another thread (the library
    releases the GIL), and fits in threads give the same model as one after another."""
    import threading

    rng = np.random.default_rng(0)
    X = rng.normal(size=(1000, 10))
    y = (X[:, 0] + rng.normal(size=1000) > 0).astype(int)
    est = RobustClassifier(model="mlp", hidden="32", epochs=10, ambiguity="wasserstein",
                           penalty=1.0, inner_steps=5)
    done = threading.Event()
    fitted = []

    def work():
        fitted.append(clone(est).fit(X, y))
        done.set()

    t = threading.Thread(target=work)
    t.start()
    ticks = 0
    while not done.is_set():
        ticks += 1  # pure-Python work: only runs while the fit does not hold the GIL
        sum(range(1000))
    t.join()
    assert ticks > 100, ticks
    np.testing.assert_array_equal(fitted[0].predict_proba(X), clone(est).fit(X, y).predict_proba(X))
