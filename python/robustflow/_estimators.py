"""scikit-learn estimators over robustflow's trainer (see ``robustflow.RobustClassifier``)."""
from __future__ import annotations

import json
import os
import tempfile
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d

from . import _robustflow

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _validate_data
except ImportError:  # pragma: no cover - older scikit-learn
    def _validate_data(est, X="no_validation", y="no_validation", reset=True, **kw):
        if "ensure_all_finite" in kw:
            kw["force_all_finite"] = kw.pop("ensure_all_finite")
        return est._validate_data(X, y, reset=reset, **kw)

# The flags of `robustflow train` that the estimators take as constructor parameters
# (underscores for dashes), with the CLI's defaults. `--data`, `--out`, `--test`,
# `--test-fraction` and `--target` are not parameters: every row given to `fit` is used
# for training. `--task` is fixed by the class.
TRAIN_PARAMS = {
    "impute": None,
    "drop_constant": False,
    "categorical": None,
    "numeric": None,
    "val_fraction": 0.0,
    "model": "logistic",
    "hidden": "64,64",
    "activation": "elu",
    "epochs": 50,
    "lr": 0.01,
    "batch_size": 64,
    "optimizer": None,
    "solver": "auto",
    "tol": 1e-9,
    "lr_schedule": "cosine",
    "stop_tol": None,
    "weight_decay": 0.0,
    "patience": None,
    "seed": 0,
    "ambiguity": "none",
    "radius": None,
    "penalty": None,
    "inner_steps": 20,
    "inner_step_size": 0.1,
    "label_cost": None,
    "inner_flow": "ift",
    "kernel": "gaussian",
    "bandwidth": "median",
    "approx": "exact",
    "extra_support": 0,
    "warm_start": False,
    "w1_norm": None,
    "kl_penalty": None,
    "weight_flow": False,
    "tune_iters": 30,
    "tune_tol": 1e-3,
}

_MEMORY_TARGET = "target"


def _flag_value(v):
    if isinstance(v, (list, tuple)):
        return ",".join(_flag_value(t) for t in v)
    if isinstance(v, (float, np.floating)):
        return repr(float(v))
    if isinstance(v, (np.integer,)):
        return str(int(v))
    return str(v)


def to_flags(params: dict) -> list[str]:
    """CLI flags for keyword parameters: ``radius=0.1`` -> ``--radius 0.1``; ``True`` ->
    the bare flag; ``None`` and ``False`` are left out; lists are comma separated."""
    out = []
    for k, v in params.items():
        if v is None or v is False:
            continue
        flag = "--" + k.replace("_", "-")
        if v is True:
            out.append(flag)
        else:
            out.append(f"{flag}={_flag_value(v)}")
    return out


def _is_dataframe(X) -> bool:
    return hasattr(X, "columns") and hasattr(X, "dtypes") and hasattr(X, "iloc")


def _df_columns(X):
    """Columns of a DataFrame as float64 arrays (numeric, bool) or lists of str/None."""
    if all(dt.kind in "biuf" for dt in X.dtypes):
        # all numeric: one block conversion (the same values as column by column)
        a = np.ascontiguousarray(X.to_numpy(dtype=np.float64, na_value=np.nan).T)
        return list(a)
    cols = []
    for name in X.columns:
        s = X[name]
        kind = s.dtype.kind
        if kind in "biuf":
            cols.append(np.ascontiguousarray(s.to_numpy(dtype=np.float64, na_value=np.nan)))
        else:
            import pandas as pd

            vals = s.astype(object).to_numpy()
            na = pd.isna(s).to_numpy()
            out = [None if m else str(v) for v, m in zip(vals, na)]
            cols.append(out)
    return cols


def _store_params(est, given):
    """Store the constructor's arguments unchanged, one attribute per parameter
    (scikit-learn's rule: ``__init__`` sets exactly its parameters and does nothing else)."""
    for k in TRAIN_PARAMS:
        setattr(est, k, given[k])


def _label_values(classes: list[str]):
    """The model's class names as a NumPy array: numbers when every name is a number."""
    try:
        v = np.array([float(c) for c in classes])
    except ValueError:
        return np.array(classes, dtype=object)
    if np.all(v == np.round(v)):
        return v.astype(np.int64)
    return v


class _RobustBase(BaseEstimator):
    """Shared implementation (see RobustClassifier / RobustRegressor)."""

    _task = "classification"

    # ----- inputs -----------------------------------------------------------------------
    def _finite(self):
        return "allow-nan" if self.impute is not None else True

    def _frame(self, X, reset: bool):
        """Validate X (scikit-learn's rules) and return (names, columns) for the library."""
        if _is_dataframe(X):
            _validate_data(self, X, reset=reset, dtype=None, ensure_all_finite=False,
                           ensure_min_samples=2 if reset else 1)
            if hasattr(self, "feature_names_in_"):
                names = [str(c) for c in X.columns]
            else:
                names = [f"x{j}" for j in range(X.shape[1])]
            cols = _df_columns(X)
            return names, cols
        X = _validate_data(self, X, reset=reset, dtype=np.float64,
                           ensure_all_finite=self._finite(),
                           ensure_min_samples=2 if reset else 1)
        if hasattr(self, "feature_names_in_"):
            names = [str(c) for c in self.feature_names_in_]
        else:
            names = [f"x{j}" for j in range(X.shape[1])]
        cols = [np.ascontiguousarray(X[:, j]) for j in range(X.shape[1])]
        return names, cols

    def _flags(self) -> list[str]:
        p = {k: getattr(self, k) for k in TRAIN_PARAMS}
        p["task"] = self._task
        for k in ("categorical", "numeric"):
            if isinstance(p[k], str):
                p[k] = [p[k]]
            if p[k] is not None and len(p[k]) == 0:
                p[k] = None
        return to_flags(p)

    def _target_name(self, y, names):
        name = getattr(y, "name", None)
        name = str(name) if name is not None else _MEMORY_TARGET
        while name in names:
            name = "_" + name
        return name

    # ----- fitted model ----------------------------------------------------------------
    def _check(self):
        check_is_fitted(self, "model_")

    @property
    def report_(self) -> dict:
        """The training report (the CLI's ``report.json``) as a dict."""
        self._check()
        return json.loads(self.model_.report_json())

    @property
    def objective_(self) -> float | None:
        """The training objective reached (``report.json``'s ``objective``)."""
        return self.report_.get("objective")

    @property
    def schema_(self) -> dict:
        """The data schema (features after encoding, scaler, classes, encoders)."""
        self._check()
        return json.loads(self.model_.schema_json())

    def save(self, path) -> None:
        """Save as a model directory (``model.safetensors``, ``model.json``,
        ``report.json``) that ``robustflow eval``, ``certify`` and ``predict`` read."""
        self._check()
        self.model_.save(os.fspath(path))

    def certify(self, X, y, ambiguity: str = "wasserstein", radius=(0.1,), **kwargs) -> dict:
        """See :func:`robustflow.certify`."""
        return certify(self, X, y, ambiguity=ambiguity, radius=radius, **kwargs)

    # ----- pickling: the compiled model as the bytes of its directory ------------------
    def __getstate__(self):
        state = self.__dict__.copy()
        m = state.get("model_")
        if m is not None:
            with tempfile.TemporaryDirectory() as d:
                p = os.path.join(d, "m")
                m.save(p)
                files = {}
                for f in ("model.json", "model.safetensors", "report.json"):
                    with open(os.path.join(p, f), "rb") as fh:
                        files[f] = fh.read()
            state["model_"] = ("robustflow-model-dir", files)
        return state

    def __setstate__(self, state):
        m = state.get("model_")
        if isinstance(m, tuple) and m and m[0] == "robustflow-model-dir":
            f = m[1]
            state["model_"] = _robustflow.Model.from_bytes(
                f["model.json"], f["model.safetensors"], f.get("report.json"))
        self.__dict__.update(state)


class RobustClassifier(ClassifierMixin, _RobustBase):
    """A distributionally robust classifier (robustflow ``train --task classification``).

    Every flag of ``robustflow train`` that describes the model, the solver or the
    ambiguity set is a constructor parameter with the flag's name (dashes as underscores)
    and the CLI's default; see ``robustflow train --help`` for each one. The main ones:

    ambiguity : {"none", "wasserstein", "kl", "chi2", "cvar", "mmd", "wfr"}, default "none"
        The ambiguity set (``none`` is empirical risk minimisation).
    radius : float, optional
        Constraint form: the radius of the set, in the standardised feature space.
    penalty : float, optional
        Penalty form: the multiplier lambda.
    w1_norm : {"l1", "l2", "linf"}, optional
        ``wasserstein``: the 1-Wasserstein set with this norm cost (exact convex solver).
    model : {"logistic", "softmax", "mlp"}, default "logistic"
        ``logistic`` with more than two classes is multinomial logistic regression (the
        CLI's ``--model softmax``; the CLI refuses ``logistic`` there).
    solver : {"auto", "exact", "adamw", "sgd"}, default "auto"
    seed : int, default 0

    Inputs: NumPy arrays (float) or pandas DataFrames; a DataFrame column that is not
    numeric (object, string, category) is one-hot encoded exactly as the CSV loader does;
    features are standardised with the training rows' mean and standard deviation. All
    rows passed to ``fit`` are used for training (``--test-fraction 0``); ``val_fraction``
    holds out a validation part for early stopping. Labels may be numbers or strings;
    ``classes_`` is ``numpy.unique(y)``.

    Attributes: ``classes_``, ``n_features_in_``, ``feature_names_in_`` (DataFrames),
    ``model_`` (the compiled model), ``report_`` (the CLI's ``report.json`` as a dict),
    ``objective_``, ``schema_``.

    ``sklearn.utils.estimator_checks.check_estimator`` passes (54 checks for the
    classifier, 51 for the regressor, scikit-learn 1.9) with no check skipped by
    robustflow (``expected_failed_checks`` is empty). scikit-learn itself skips
    ``check_array_api_input`` (it needs ``SCIPY_ARRAY_API=1`` and an estimator that
    declares Array API support; these take NumPy / pandas only) and does not run the
    sample-weight checks, as ``fit`` takes no ``sample_weight`` (``train`` has no row
    weights).

    Errors of the library (bad parameters, bad data, a diverging solver) are raised as
    ``ValueError`` with the library's message.
    """

    _task = "classification"

    def __init__(self, *, impute=None, drop_constant=False, categorical=None, numeric=None,
                 val_fraction=0.0, model="logistic", hidden="64,64", activation="elu",
                 epochs=50, lr=0.01, batch_size=64, optimizer=None, solver="auto", tol=1e-9,
                 lr_schedule="cosine", stop_tol=None, weight_decay=0.0, patience=None, seed=0,
                 ambiguity="none", radius=None, penalty=None, inner_steps=20,
                 inner_step_size=0.1, label_cost=None, inner_flow="ift", kernel="gaussian",
                 bandwidth="median", approx="exact", extra_support=0, warm_start=False,
                 w1_norm=None, kl_penalty=None, weight_flow=False, tune_iters=30,
                 tune_tol=1e-3):
        _store_params(self, locals())

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = self.impute is not None
        return tags

    def _more_tags(self):  # scikit-learn < 1.6
        return {"allow_nan": self.impute is not None}

    def fit(self, X, y):
        """Fit on features ``X`` (n x d array or DataFrame) and labels ``y`` (n)."""
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None")
        names, cols = self._frame(X, reset=True)
        yname = self._target_name(y, names)
        y = column_or_1d(y, warn=True)
        if len(y) != len(cols[0]):
            raise ValueError(f"X has {len(cols[0])} rows but y has {len(y)} labels")
        check_classification_targets(y)
        classes, yi = np.unique(y, return_inverse=True)
        self.classes_ = classes
        if y.dtype.kind in "biuf":
            ycol = np.ascontiguousarray(y, dtype=np.float64)
            self._label_index = False
        else:
            # Text labels: the library sorts numeric-looking names by value; pass indices
            # into classes_ so that its class order is classes_'s.
            ycol = np.ascontiguousarray(yi, dtype=np.float64)
            self._label_index = True
        flags = self._flags()
        if self.model == "logistic" and len(classes) > 2:
            # multinomial logistic regression (the CLI asks for --model softmax here)
            flags = [f for f in flags if not f.startswith("--model=")] + ["--model=softmax"]
        self.model_ = _robustflow.train(names, cols, ycol, yname, flags)
        k = len(self.model_.classes())
        if k != len(classes):
            raise ValueError(f"internal: the model has {k} classes, y has {len(classes)}")
        return self

    def predict(self, X):
        """Predicted labels (values of ``classes_``)."""
        self._check()
        names, cols = self._frame(X, reset=False)
        idx = self.model_.predict(names, cols).astype(np.int64)
        return self.classes_[idx]

    def predict_proba(self, X):
        """Class probabilities, n x len(classes_), columns in the order of ``classes_``."""
        self._check()
        names, cols = self._frame(X, reset=False)
        return self.model_.predict_proba(names, cols)

    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def decision_function(self, X):
        """The logit of ``classes_[1]`` (binary, shape n) or the class logits (n x k)."""
        self._check()
        names, cols = self._frame(X, reset=False)
        z = self.model_.decision_function(names, cols)
        return z[:, 0] if z.shape[1] == 1 else z


class RobustRegressor(RegressorMixin, _RobustBase):
    """A distributionally robust regressor (robustflow ``train --task regression``).

    The parameters are those of :class:`RobustClassifier` (the flags of ``robustflow
    train`` with the CLI's defaults), except ``model``, whose default here is ``"linear"``
    (the CLI's regression model; ``mlp`` is the other choice). The response is
    standardised for training and predictions are in original units. Attributes:
    ``n_features_in_``, ``feature_names_in_``, ``model_``, ``report_``, ``objective_``,
    ``schema_``.
    """

    _task = "regression"

    def __init__(self, *, impute=None, drop_constant=False, categorical=None, numeric=None,
                 val_fraction=0.0, model="linear", hidden="64,64", activation="elu",
                 epochs=50, lr=0.01, batch_size=64, optimizer=None, solver="auto", tol=1e-9,
                 lr_schedule="cosine", stop_tol=None, weight_decay=0.0, patience=None, seed=0,
                 ambiguity="none", radius=None, penalty=None, inner_steps=20,
                 inner_step_size=0.1, label_cost=None, inner_flow="ift", kernel="gaussian",
                 bandwidth="median", approx="exact", extra_support=0, warm_start=False,
                 w1_norm=None, kl_penalty=None, weight_flow=False, tune_iters=30,
                 tune_tol=1e-3):
        _store_params(self, locals())

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = self.impute is not None
        return tags

    def _more_tags(self):  # scikit-learn < 1.6
        return {"allow_nan": self.impute is not None}

    def fit(self, X, y):
        """Fit on features ``X`` (n x d array or DataFrame) and responses ``y`` (n)."""
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None")
        names, cols = self._frame(X, reset=True)
        yname = self._target_name(y, names)
        y = column_or_1d(y, warn=True)
        if len(y) != len(cols[0]):
            raise ValueError(f"X has {len(cols[0])} rows but y has {len(y)} responses")
        try:
            ycol = np.ascontiguousarray(y, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise ValueError(f"the response y must be numeric: {e}") from None
        if not np.all(np.isfinite(ycol)):
            raise ValueError("Input y contains NaN or infinity.")
        self.model_ = _robustflow.train(names, cols, ycol, yname, self._flags())
        return self

    def predict(self, X):
        """Predicted responses (original units)."""
        self._check()
        names, cols = self._frame(X, reset=False)
        return self.model_.predict(names, cols)


def _label_column(est, y):
    """Labels as the library saw them at fit time."""
    y = column_or_1d(y)
    if isinstance(est, RobustClassifier) and getattr(est, "_label_index", False):
        idx = np.searchsorted(est.classes_, y)
        idx = np.clip(idx, 0, len(est.classes_) - 1)
        bad = est.classes_[idx] != y
        if np.any(bad):
            raise ValueError(f"unknown label {y[np.argmax(bad)]!r} (classes: {list(est.classes_)})")
        return np.ascontiguousarray(idx, dtype=np.float64)
    if y.dtype.kind in "biuf":
        return np.ascontiguousarray(y, dtype=np.float64)
    return [None if v is None else str(v) for v in y]


def certify(model, X, y, ambiguity: str = "wasserstein", radius=(0.1,), **kwargs) -> dict:
    """``robustflow certify`` on labelled rows: the worst-case risk of a fitted estimator
    over an ambiguity set at each radius.

    ``ambiguity`` is one of wasserstein, kl, chi2, cvar, mmd; ``radius`` one number or a
    list; the other keyword arguments are the flags of ``robustflow certify`` with
    underscores (``norm="l2"``, ``label_cost``, ``inner_steps``, ``inner_step_size``,
    ``inner_flow``, ``kernel``, ``bandwidth``, ``extra_support``, ``tune_iters``,
    ``tune_tol``, ``seed``). Radii are in the standardised feature space the model sees.

    Returns a dict of lists, one entry per radius, with the columns of the CLI's report:
    ``ambiguity, radius, lower_bound, upper_bound, upper_bound_note, closed_form,
    radius_reached, multiplier, empirical_risk`` (``None`` where there is none);
    ``pandas.DataFrame(result)`` makes it a table.
    """
    model._check()
    names, cols = model._frame(X, reset=False)
    radii = np.atleast_1d(np.asarray(radius, dtype=np.float64))
    flags = to_flags({"ambiguity": ambiguity, "radius": [float(r) for r in radii], **kwargs})
    rows = json.loads(model.model_.certify(names, cols, _label_column(model, y), flags))
    keys = ["ambiguity", "radius", "lower_bound", "upper_bound", "upper_bound_note",
            "closed_form", "radius_reached", "multiplier", "empirical_risk"]
    return {k: [r.get(k) for r in rows] for k in keys}


def load(path):
    """Load a model directory written by ``robustflow train`` or ``save`` as a fitted
    :class:`RobustClassifier` or :class:`RobustRegressor` (constructor parameters from the
    model's training settings where they have one)."""
    m = _robustflow.Model.load(os.fspath(path))
    classes = m.classes()
    est = RobustClassifier() if classes else RobustRegressor()
    try:
        p = json.loads(m.params_json())
        for k in ("epochs", "lr", "batch_size", "seed", "weight_decay", "tol", "patience"):
            if k in p and isinstance(p[k], (int, float)):
                setattr(est, k, p[k])
    except (ValueError, TypeError):
        pass
    est.model_ = m
    cols = m.columns()
    est.n_features_in_ = len(cols)
    if cols != [f"x{j}" for j in range(len(cols))]:
        est.feature_names_in_ = np.array(cols, dtype=object)
    if classes:
        est.classes_ = _label_values(classes)
        est._label_index = False
    return est
