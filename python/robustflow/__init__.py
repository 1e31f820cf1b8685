"""robustflow: distributionally robust learning on kernelized gradient flows.

Python bindings of the robustflow Rust library (the same code as the ``robustflow``
command line):

- :class:`RobustClassifier`, :class:`RobustRegressor`: scikit-learn estimators whose
  constructor parameters are the flags of ``robustflow train`` (every ambiguity set and
  model) with the CLI's defaults;
- :func:`certify`: worst-case risk bounds of a fitted estimator at several radii;
- :func:`load` and ``est.save(dir)``: the CLI's model directory (safetensors + JSON);
- :func:`mmd`, :func:`flow`, :func:`fit_kl`: the CLI's commands over NumPy arrays.

Errors of the library are raised as ``ValueError`` with its message; fits, certificates
and flows release the GIL.
"""
from ._robustflow import __version__
from ._estimators import RobustClassifier, RobustRegressor, certify, load
from ._functions import fit_kl, flow, mmd

__all__ = ["RobustClassifier", "RobustRegressor", "certify", "load", "mmd", "flow",
           "fit_kl", "__version__"]
