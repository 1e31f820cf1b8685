from os import PathLike
from typing import Any, Literal, Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

__version__: str

Ambiguity = Literal["none", "wasserstein", "kl", "chi2", "cvar", "mmd", "wfr"]

class _RobustBase(BaseEstimator):
    impute: Literal["mean", "drop"] | None
    drop_constant: bool
    categorical: Sequence[str] | str | None
    numeric: Sequence[str] | str | None
    val_fraction: float
    model: str
    hidden: str | Sequence[int]
    activation: Literal["elu", "relu", "tanh"]
    epochs: int
    lr: float
    batch_size: int
    optimizer: Literal["adamw", "sgd"] | None
    solver: Literal["auto", "exact", "adamw", "sgd"]
    tol: float
    lr_schedule: Literal["constant", "cosine", "plateau"]
    stop_tol: float | None
    weight_decay: float
    patience: int | None
    seed: int
    ambiguity: Ambiguity
    radius: float | None
    penalty: float | None
    inner_steps: int
    inner_step_size: float
    label_cost: float | None
    inner_flow: Literal["ift", "wfr", "w"]
    kernel: Literal["gaussian", "imq", "laplace"]
    bandwidth: str | float
    approx: str
    extra_support: int
    warm_start: bool
    w1_norm: Literal["l1", "l2", "linf"] | None
    kl_penalty: float | None
    weight_flow: bool
    tune_iters: int
    tune_tol: float
    n_features_in_: int
    feature_names_in_: NDArray[np.object_]
    model_: Any
    @property
    def report_(self) -> dict[str, Any]: ...
    @property
    def objective_(self) -> float | None: ...
    @property
    def schema_(self) -> dict[str, Any]: ...
    def save(self, path: str | PathLike[str]) -> None: ...
    def certify(self, X: Any, y: ArrayLike, ambiguity: str = ..., radius: float | Sequence[float] = ..., **kwargs: Any) -> dict[str, list[Any]]: ...

class RobustClassifier(ClassifierMixin, _RobustBase):
    classes_: NDArray[Any]
    def __init__(self, *, impute: Literal["mean", "drop"] | None = None, drop_constant: bool = False,
                 categorical: Sequence[str] | str | None = None, numeric: Sequence[str] | str | None = None,
                 val_fraction: float = 0.0, model: str = "logistic", hidden: str | Sequence[int] = "64,64",
                 activation: str = "elu", epochs: int = 50, lr: float = 0.01, batch_size: int = 64,
                 optimizer: str | None = None, solver: str = "auto", tol: float = 1e-9,
                 lr_schedule: str = "cosine", stop_tol: float | None = None, weight_decay: float = 0.0,
                 patience: int | None = None, seed: int = 0, ambiguity: Ambiguity = "none",
                 radius: float | None = None, penalty: float | None = None, inner_steps: int = 20,
                 inner_step_size: float = 0.1, label_cost: float | None = None, inner_flow: str = "ift",
                 kernel: str = "gaussian", bandwidth: str | float = "median", approx: str = "exact",
                 extra_support: int = 0, warm_start: bool = False, w1_norm: str | None = None,
                 kl_penalty: float | None = None, weight_flow: bool = False, tune_iters: int = 30,
                 tune_tol: float = 1e-3) -> None: ...
    def fit(self, X: Any, y: ArrayLike) -> RobustClassifier: ...
    def predict(self, X: Any) -> NDArray[Any]: ...
    def predict_proba(self, X: Any) -> NDArray[np.float64]: ...
    def predict_log_proba(self, X: Any) -> NDArray[np.float64]: ...
    def decision_function(self, X: Any) -> NDArray[np.float64]: ...

class RobustRegressor(RegressorMixin, _RobustBase):
    def __init__(self, *, impute: Literal["mean", "drop"] | None = None, drop_constant: bool = False,
                 categorical: Sequence[str] | str | None = None, numeric: Sequence[str] | str | None = None,
                 val_fraction: float = 0.0, model: str = "linear", hidden: str | Sequence[int] = "64,64",
                 activation: str = "elu", epochs: int = 50, lr: float = 0.01, batch_size: int = 64,
                 optimizer: str | None = None, solver: str = "auto", tol: float = 1e-9,
                 lr_schedule: str = "cosine", stop_tol: float | None = None, weight_decay: float = 0.0,
                 patience: int | None = None, seed: int = 0, ambiguity: Ambiguity = "none",
                 radius: float | None = None, penalty: float | None = None, inner_steps: int = 20,
                 inner_step_size: float = 0.1, label_cost: float | None = None, inner_flow: str = "ift",
                 kernel: str = "gaussian", bandwidth: str | float = "median", approx: str = "exact",
                 extra_support: int = 0, warm_start: bool = False, w1_norm: str | None = None,
                 kl_penalty: float | None = None, weight_flow: bool = False, tune_iters: int = 30,
                 tune_tol: float = 1e-3) -> None: ...
    def fit(self, X: Any, y: ArrayLike) -> RobustRegressor: ...
    def predict(self, X: Any) -> NDArray[np.float64]: ...

def certify(model: RobustClassifier | RobustRegressor, X: Any, y: ArrayLike, ambiguity: str = "wasserstein",
            radius: float | Sequence[float] = (0.1,), **kwargs: Any) -> dict[str, list[Any]]: ...
def load(path: str | PathLike[str]) -> RobustClassifier | RobustRegressor: ...
def mmd(x: ArrayLike, y: ArrayLike, *, kernel: str = "gaussian", bandwidth: str | float = "median",
        permutations: int = 500, seed: int = 0, approx: str = "exact", gram_budget_mb: int = 2048) -> dict[str, Any]: ...
def flow(target: str | ArrayLike = "gaussian", init: str | ArrayLike | None = None, **kwargs: Any) -> dict[str, Any]: ...
def fit_kl(samples: ArrayLike | None = None, weights: ArrayLike | None = None, **kwargs: Any) -> dict[str, Any]: ...
