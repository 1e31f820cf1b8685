"""Functions over NumPy arrays: ``mmd``, ``flow`` and ``fit_kl`` (the CLI's commands)."""
from __future__ import annotations

import csv
import io
import json

import numpy as np

from . import _robustflow
from ._estimators import to_flags


def _matrix(a, name):
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 1:
        a = a.reshape(-1, 1)
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (rows = points), got shape {a.shape}")
    return np.ascontiguousarray(a)


def _parse_csv(text: str) -> dict:
    """A CSV text as a dict of columns: float arrays, or lists of str for text columns."""
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        return {}
    head, body = rows[0], rows[1:]
    out = {}
    for j, name in enumerate(head):
        col = [r[j] for r in body]
        try:
            out[name] = np.array([float(v) if v != "" else np.nan for v in col])
        except ValueError:
            out[name] = col
    return out


def _outputs(report: str, files) -> dict:
    out = {"report": json.loads(report), "particles": {}}
    for name, text in files:
        cols = _parse_csv(text)
        if name.startswith("particles_"):
            key = name[len("particles_"):-len(".csv")]
            w = cols.pop("weight", None)
            xs = [v for v in cols.values() if isinstance(v, np.ndarray)]
            x = np.column_stack(xs) if xs else np.empty((0, 0))
            out["particles"][key] = {"x": x, "weight": w}
        else:
            out[name[:-len(".csv")]] = cols
    return out


def mmd(x, y, *, kernel: str = "gaussian", bandwidth="median", permutations: int = 500,
        seed: int = 0, approx: str = "exact", gram_budget_mb: int = 2048) -> dict:
    """``robustflow mmd``: the two-sample MMD statistics of ``x`` (n x d) and ``y``
    (m x d) and the permutation-test p-value.

    Returns the CLI's JSON report as a dict: ``mmd2_biased``, ``mmd2_unbiased``,
    ``p_value`` (``None`` with ``permutations=0``), ``kernel``, ``bandwidth``,
    ``median_heuristic``, ``n``, ``m``, ``d``, ``permutations``, ``seed``, ``statistic``,
    ``approx``, ``method``, ``batches``, ``gram_bytes``, ``gram_budget_bytes``,
    ``block_sums``. The GIL is released while it runs.
    """
    x, y = _matrix(x, "x"), _matrix(y, "y")
    flags = to_flags(dict(kernel=kernel, bandwidth=bandwidth, permutations=permutations,
                          seed=seed, approx=approx, gram_budget_mb=gram_budget_mb))
    return json.loads(_robustflow.mmd(x, y, flags))


def flow(target="gaussian", init=None, **kwargs) -> dict:
    """``robustflow flow``: gradient flows of ``1/2 MMD^2(mu, target)`` compared from the
    same initial particles.

    ``target``: a built-in name (gaussian, mixture, mixture100d) or an n x d array of
    target samples; ``init``: ``None`` (the CLI's default), a spec such as
    ``"gaussian:5:1"``, or an array of initial positions. Other keyword arguments are the
    flags of ``robustflow flow`` with underscores (``flow="mmd,ift"``, ``steps``,
    ``step_size``, ``particles``, ``kernel``, ``bandwidth``, ``seed``, ``seeds``, ...).

    Returns ``{"report": report.json, "trace": {column: array}, "summary": {...},
    "particles": {flow: {"x": n x d array, "weight": n array}}}`` (the particles of the
    first seed). The GIL is released while it runs.
    """
    if not isinstance(target, str):
        target = _matrix(target, "target")
    if init is not None and not isinstance(init, str):
        init = _matrix(init, "init")
    if init is not None and isinstance(init, str):
        kwargs["init"] = init
        init = None
    return _outputs(*_robustflow.flow(target, init, to_flags(kwargs)))


def fit_kl(samples=None, weights=None, **kwargs) -> dict:
    """``robustflow fit-kl``: particle approximations of a target by forward-KL flows
    (IFT, WFR, MMD, KSD, FR) against SVGD and Langevin.

    ``samples``: an n x d array of target samples (``weights``: optional n sample
    weights), or ``None`` for a built-in target (``target="mixture"``, ``banana``,
    ``funnel``, ``gaussian``). Other keyword arguments are the flags of ``robustflow
    fit-kl`` with underscores (``method``, ``particles``, ``steps``, ``seed``, ...).

    Returns ``{"report": report.json, "trace": {column: array}, "particles": {method:
    {"x": n x d array, "weight": n array}}}``. The GIL is released while it runs.
    """
    s = None if samples is None else _matrix(samples, "samples")
    w = None
    if weights is not None:
        if s is None:
            raise ValueError("weights need samples")
        w = np.ascontiguousarray(np.asarray(weights, dtype=np.float64).ravel())
    return _outputs(*_robustflow.fit_kl(s, w, to_flags(kwargs)))
