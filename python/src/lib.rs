//! Python bindings of robustflow (`robustflow._robustflow`). Calls only
//! `robustflow::api`; the scikit-learn estimators are written in Python on top of these
//! functions (python/robustflow/__init__.py). Library errors become `ValueError` with the
//! library's message; fits, certificates and flows run with the GIL released.

use numpy::{
    PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyList;
use robustflow::api;

fn err(e: robustflow::Error) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// A column from Python: a 1-D float64 array (NaN = missing) or a list of str / None.
fn column(ob: &Bound<'_, PyAny>) -> PyResult<api::Column> {
    if let Ok(a) = ob.extract::<PyReadonlyArray1<'_, f64>>() {
        return Ok(api::Column::Numeric(a.as_array().to_vec()));
    }
    let list = ob.cast::<PyList>().map_err(|_| {
        PyValueError::new_err("a column must be a 1-D float64 array or a list of str/None")
    })?;
    let mut v = Vec::with_capacity(list.len());
    for item in list.iter() {
        if item.is_none() {
            v.push(None);
        } else {
            v.push(Some(item.extract::<String>()?));
        }
    }
    Ok(api::Column::Text(v))
}

fn frame(names: Vec<String>, cols: &Bound<'_, PyList>) -> PyResult<api::Frame> {
    let columns = cols
        .iter()
        .map(|c| column(&c))
        .collect::<PyResult<Vec<_>>>()?;
    Ok(api::Frame { names, columns })
}

fn rows2d<'py>(
    py: Python<'py>,
    rows: Vec<Vec<f64>>,
    k: usize,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let n = rows.len();
    let flat: Vec<f64> = rows.into_iter().flatten().collect();
    if flat.len() != n * k {
        return Err(PyValueError::new_err(format!(
            "internal: {} outputs for {n} rows x {k}",
            flat.len()
        )));
    }
    PyArray1::from_vec(py, flat).reshape([n, k])
}

/// A trained robustflow model (the CLI's model directory in memory).
#[pyclass(module = "robustflow._robustflow", frozen)]
struct Model {
    inner: api::Model,
}

#[pymethods]
impl Model {
    /// Load a model directory written by `robustflow train` or `Model.save`.
    #[staticmethod]
    fn load(py: Python<'_>, dir: std::path::PathBuf) -> PyResult<Model> {
        let inner = py.detach(|| api::Model::load(&dir)).map_err(err)?;
        Ok(Model { inner })
    }

    /// Build from the bytes of model.json, model.safetensors and report.json.
    #[staticmethod]
    #[pyo3(signature = (model_json, safetensors, report_json=None))]
    fn from_bytes(
        model_json: &[u8],
        safetensors: &[u8],
        report_json: Option<&[u8]>,
    ) -> PyResult<Model> {
        let inner = api::Model::from_bytes(model_json, safetensors, report_json).map_err(err)?;
        Ok(Model { inner })
    }

    /// Save as a model directory (model.safetensors, model.json, report.json).
    fn save(&self, py: Python<'_>, dir: std::path::PathBuf) -> PyResult<()> {
        py.detach(|| self.inner.save(&dir)).map_err(err)
    }

    /// Feature column names of the schema.
    fn columns(&self) -> Vec<String> {
        self.inner.columns()
    }

    /// Target column name.
    fn target(&self) -> String {
        self.inner.target().to_string()
    }

    /// Class names in output order (empty for a regression).
    fn classes(&self) -> Vec<String> {
        self.inner.classes()
    }

    /// Predictions: class indices (float) or responses.
    fn predict<'py>(
        &self,
        py: Python<'py>,
        names: Vec<String>,
        cols: &Bound<'py, PyList>,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let f = frame(names, cols)?;
        let p = py.detach(|| self.inner.predict(&f)).map_err(err)?;
        Ok(PyArray1::from_vec(py, p))
    }

    /// Class probabilities (n x k).
    fn predict_proba<'py>(
        &self,
        py: Python<'py>,
        names: Vec<String>,
        cols: &Bound<'py, PyList>,
    ) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let f = frame(names, cols)?;
        let k = self.inner.classes().len();
        let p = py.detach(|| self.inner.predict_proba(&f)).map_err(err)?;
        rows2d(py, p, k)
    }

    /// Raw outputs (n x n_out): logit, class logits or standardised response.
    fn decision_function<'py>(
        &self,
        py: Python<'py>,
        names: Vec<String>,
        cols: &Bound<'py, PyList>,
    ) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let f = frame(names, cols)?;
        let p = py
            .detach(|| self.inner.decision_function(&f))
            .map_err(err)?;
        let k = p.first().map_or(1, |r| r.len());
        rows2d(py, p, k)
    }

    /// Certificate rows as a JSON string (list of objects).
    fn certify(
        &self,
        py: Python<'_>,
        names: Vec<String>,
        cols: &Bound<'_, PyList>,
        y: &Bound<'_, PyAny>,
        flags: Vec<String>,
    ) -> PyResult<String> {
        let f = frame(names, cols)?;
        let y = column(y)?;
        let rows = py
            .detach(|| self.inner.certify(&f, &y, &flags))
            .map_err(err)?;
        serde_json::to_string(&rows).map_err(|e| PyValueError::new_err(e.to_string()))
    }

    /// Training report (report.json) as a JSON string.
    fn report_json(&self) -> PyResult<String> {
        self.inner.report_json().map_err(err)
    }

    /// Schema as a JSON string.
    fn schema_json(&self) -> PyResult<String> {
        self.inner.schema_json().map_err(err)
    }

    /// Training hyper-parameters as a JSON string.
    fn params_json(&self) -> PyResult<String> {
        self.inner.params_json().map_err(err)
    }
}

/// Train a model: feature names, feature columns, target column, target name, CLI flags.
#[pyfunction]
fn train(
    py: Python<'_>,
    names: Vec<String>,
    cols: &Bound<'_, PyList>,
    y: &Bound<'_, PyAny>,
    target: String,
    flags: Vec<String>,
) -> PyResult<Model> {
    let f = frame(names, cols)?;
    let y = column(y)?;
    let inner = py
        .detach(|| api::train_flags(&f, &y, &target, &flags))
        .map_err(err)?;
    Ok(Model { inner })
}

/// The defaults of `robustflow train`'s flags: {flag-name: default text}.
#[pyfunction]
fn train_defaults() -> Vec<(String, String)> {
    api::train_defaults()
}

/// `robustflow mmd` on two samples (n x d, m x d); returns the JSON report string.
#[pyfunction]
fn mmd(
    py: Python<'_>,
    x: PyReadonlyArray2<'_, f64>,
    y: PyReadonlyArray2<'_, f64>,
    flags: Vec<String>,
) -> PyResult<String> {
    let d = x.shape()[1];
    if y.shape()[1] != d {
        return Err(PyValueError::new_err(format!(
            "x has {d} columns, y has {}",
            y.shape()[1]
        )));
    }
    let xv = x.as_array().iter().copied().collect::<Vec<f64>>();
    let yv = y.as_array().iter().copied().collect::<Vec<f64>>();
    let r = py.detach(|| api::mmd(&xv, &yv, d, &flags)).map_err(err)?;
    Ok(r.to_string())
}

fn sample(ob: &Bound<'_, PyAny>) -> PyResult<api::Sample> {
    if let Ok(s) = ob.extract::<String>() {
        return Ok(api::Sample::Named(s));
    }
    let a = ob.extract::<PyReadonlyArray2<'_, f64>>()?;
    let d = a.shape()[1];
    Ok(api::Sample::Points(
        a.as_array().iter().copied().collect(),
        d,
    ))
}

fn output(o: api::CommandOutput) -> (String, Vec<(String, String)>) {
    (o.report.to_string(), o.csv)
}

/// `robustflow flow`: target (name or n x d array), init (None, spec or array), flags.
/// Returns (report JSON, [(csv file name, text)]).
#[pyfunction]
#[pyo3(signature = (target, init, flags))]
fn flow(
    py: Python<'_>,
    target: &Bound<'_, PyAny>,
    init: Option<&Bound<'_, PyAny>>,
    flags: Vec<String>,
) -> PyResult<(String, Vec<(String, String)>)> {
    let t = sample(target)?;
    let i = init.map(sample).transpose()?;
    let o = py
        .detach(|| api::flow(&t, i.as_ref(), &flags))
        .map_err(err)?;
    Ok(output(o))
}

/// `robustflow fit-kl`: samples (None or n x d array), weights (None or n), flags.
#[pyfunction]
#[pyo3(signature = (samples, weights, flags))]
fn fit_kl(
    py: Python<'_>,
    samples: Option<PyReadonlyArray2<'_, f64>>,
    weights: Option<PyReadonlyArray1<'_, f64>>,
    flags: Vec<String>,
) -> PyResult<(String, Vec<(String, String)>)> {
    let s = samples.map(|a| {
        (
            a.as_array().iter().copied().collect::<Vec<f64>>(),
            a.shape()[1],
        )
    });
    let w = weights.map(|a| a.as_array().to_vec());
    let o = py
        .detach(|| {
            api::fit_kl(
                s.as_ref().map(|(x, d)| (x.as_slice(), *d, w.as_deref())),
                &flags,
            )
        })
        .map_err(err)?;
    Ok(output(o))
}

/// The compiled part of the `robustflow` package.
#[pymodule]
fn _robustflow(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Model>()?;
    m.add_function(wrap_pyfunction!(train, m)?)?;
    m.add_function(wrap_pyfunction!(train_defaults, m)?)?;
    m.add_function(wrap_pyfunction!(mmd, m)?)?;
    m.add_function(wrap_pyfunction!(flow, m)?)?;
    m.add_function(wrap_pyfunction!(fit_kl, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
