//! Models and losses in candle (f64, CPU): logistic regression (binary), softmax regression
//! (multi-class), an MLP (`--hidden 64,64`, activation elu | relu | tanh) with a binary,
//! multi-class or regression head, and linear regression with the squared loss.
//!
//! With logits `z = f_theta(x)`:
//! - binary cross-entropy, labels `y in {0, 1}`, in the stable form
//!   `l = relu(z) - z y + log(1 + exp(-|z|))` (never `log(sigmoid(z))`, which overflows;
//!   candle's `binary_cross_entropy_with_logit` has that bug, huggingface/candle#2561);
//! - softmax cross-entropy `l = logsumexp(z) - z_y`, with the max subtracted (held
//!   constant in the autodiff graph; it cancels exactly);
//! - squared loss `l = (z - y)^2`.
//!
//! The model implements [`PointLoss`]: the input gradients `grad_x l(theta, x_i, y_i)` of
//! every row come from **one** backward pass over `sum_i l_i` (sample `i`'s loss depends on
//! `x_i` only, so row `i` of the gradient of the sum is its own gradient).
//!
//! A model is saved to a directory as `model.safetensors` (the parameters, bit-exact f64)
//! and `model.json` ([`ModelFile`]: architecture, schema, training configuration, crate
//! version), written as a unit (see [`crate::outputs::AtomicDir`]). Loading validates
//! every field, dimension and value before use ([`check`]).

pub mod check;

use crate::data::Schema;
use crate::dro::PointLoss;
use crate::error::{Error, Result};
use candle_core::{DType, Device, Tensor, Var};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

pub mod fast;
pub use fast::DenseParams;

/// The model family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// Logistic regression (binary classification).
    Logistic,
    /// Softmax (multinomial logistic) regression.
    Softmax,
    /// Multi-layer perceptron.
    Mlp,
    /// Linear regression with the squared loss.
    Linear,
}

impl std::str::FromStr for ModelKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "logistic" | "logreg" => Ok(ModelKind::Logistic),
            "softmax" | "multinomial" => Ok(ModelKind::Softmax),
            "mlp" => Ok(ModelKind::Mlp),
            "linear" | "ols" => Ok(ModelKind::Linear),
            _ => Err(Error::param(
                "model",
                s,
                "expected logistic, softmax, mlp or linear",
            )),
        }
    }
}

/// Hidden-layer activation of an MLP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// `x` for `x > 0`, `exp(x) - 1` otherwise (smooth; the default).
    Elu,
    /// `max(x, 0)`.
    Relu,
    /// `tanh(x)`.
    Tanh,
}

impl std::str::FromStr for Activation {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "elu" => Ok(Activation::Elu),
            "relu" => Ok(Activation::Relu),
            "tanh" => Ok(Activation::Tanh),
            _ => Err(Error::param("activation", s, "expected elu, relu or tanh")),
        }
    }
}

/// The output head and its loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Head {
    /// One logit, binary cross-entropy.
    Binary,
    /// `k` logits, softmax cross-entropy.
    Multi(usize),
    /// One output, squared loss.
    Regression,
}

impl Head {
    /// The number of outputs.
    pub fn n_out(&self) -> usize {
        match self {
            Head::Multi(k) => *k,
            _ => 1,
        }
    }
    /// The head for a task with `n_classes` (None: regression).
    pub fn for_classes(n_classes: Option<usize>) -> Head {
        match n_classes {
            None => Head::Regression,
            Some(2) => Head::Binary,
            Some(k) => Head::Multi(k),
        }
    }
}

/// The architecture of a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Architecture {
    /// The family.
    pub kind: ModelKind,
    /// Input dimension.
    pub input_dim: usize,
    /// Hidden layer widths (MLP only).
    pub hidden: Vec<usize>,
    /// Hidden activation (MLP only).
    pub activation: Activation,
    /// Output head.
    pub head: Head,
}

impl Architecture {
    /// Build and validate an architecture for `input_dim` features and `n_classes` classes
    /// (None: regression). `softmax` also accepts two classes; `logistic` needs exactly
    /// two; `linear` needs a regression.
    pub fn new(
        kind: ModelKind,
        input_dim: usize,
        n_classes: Option<usize>,
        hidden: &[usize],
        activation: Activation,
    ) -> Result<Self> {
        crate::error::check_count("input dimension", input_dim)?;
        let head = match (kind, n_classes) {
            (ModelKind::Logistic, Some(2)) => Head::Binary,
            (ModelKind::Logistic, k) => {
                return Err(Error::param(
                    "model",
                    "logistic",
                    &format!(
                        "needs a binary target, got {} (use softmax or mlp)",
                        k.map(|k| format!("{k} classes"))
                            .unwrap_or_else(|| "a regression".into())
                    ),
                ))
            }
            (ModelKind::Softmax, Some(k)) if k >= 2 => Head::Multi(k),
            (ModelKind::Softmax, _) => {
                return Err(Error::param(
                    "model",
                    "softmax",
                    "needs a classification target with >= 2 classes",
                ))
            }
            (ModelKind::Linear, None) => Head::Regression,
            (ModelKind::Linear, Some(_)) => {
                return Err(Error::param(
                    "model",
                    "linear",
                    "is a regression model (use --task regression, or logistic/softmax)",
                ))
            }
            (ModelKind::Mlp, n) => Head::for_classes(n),
        };
        let hidden = if kind == ModelKind::Mlp {
            if hidden.is_empty() {
                return Err(Error::param(
                    "hidden",
                    "",
                    "an MLP needs at least one hidden layer",
                ));
            }
            for &h in hidden {
                crate::error::check_count("hidden", h)?;
            }
            check::check_hidden_budget(hidden)?;
            hidden.to_vec()
        } else {
            Vec::new()
        };
        let mut dims = vec![input_dim];
        dims.extend_from_slice(&hidden);
        dims.push(head.n_out());
        check::check_param_budget(
            if hidden.is_empty() {
                "input dimension"
            } else {
                "hidden"
            },
            &dims,
        )?;
        Ok(Architecture {
            kind,
            input_dim,
            hidden,
            activation,
            head,
        })
    }

    /// The number of classes (None for a regression).
    pub fn n_classes(&self) -> Option<usize> {
        match self.head {
            Head::Binary => Some(2),
            Head::Multi(k) => Some(k),
            Head::Regression => None,
        }
    }
}

/// Stable binary cross-entropy with logits, elementwise:
/// `relu(z) - z y + log(1 + exp(-|z|))`.
pub fn bce_with_logits(z: &Tensor, y: &Tensor) -> Result<Tensor> {
    let soft = z.abs()?.neg()?.exp()?.affine(1.0, 1.0)?.log()?;
    Ok(z.relu()?.sub(&z.mul(y)?)?.add(&soft)?)
}

/// Stable softmax cross-entropy per row: `logsumexp(z_i) - sum_j onehot_ij z_ij`.
pub fn softmax_cross_entropy(z: &Tensor, onehot: &Tensor) -> Result<Tensor> {
    let m = z.max_keepdim(1)?.detach();
    let zc = z.broadcast_sub(&m)?;
    let lse = zc.exp()?.sum_keepdim(1)?.log()?.add(&m)?.squeeze(1)?;
    let zy = z.mul(onehot)?.sum(1)?;
    Ok(lse.sub(&zy)?)
}

/// Fix the thread count candle's CPU matmul asks for, once per process.
///
/// candle 0.11 calls `candle_core::utils::get_num_threads()` on **every** CPU matmul;
/// without `RAYON_NUM_THREADS` in the environment that falls back to
/// `num_cpus::get_physical()`, which reads and parses `/proc/cpuinfo` on each call (tens
/// of microseconds, 40% of a WRM training run's samples). This is an upstream issue; the
/// workaround is to set `RAYON_NUM_THREADS` ourselves, which candle then reads instead.
/// When the variable is unset (or not a positive integer) it is set to `threads`; the
/// first call wins. The CLI calls this from `main` before any thread starts, with
/// `--threads` or the size rayon's global pool will have; [`Model::new`] calls it with the
/// global pool's size, so library users get it too. (Setting an environment variable
/// while other threads read the environment through C's `getenv` is a data race; Rust's
/// own `std::env` accessors are serialised, and nothing in robustflow reads it from C.)
pub fn pin_candle_threads(threads: usize) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let set = std::env::var("RAYON_NUM_THREADS")
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
            .is_some_and(|n| n > 0);
        if !set {
            std::env::set_var("RAYON_NUM_THREADS", threads.max(1).to_string());
        }
    });
}

/// A candle model: dense layers `(W_l, b_l)` with `W_l` of shape `in x out`.
///
/// `clone()` shares the parameter storage (candle `Var`s); use [`Model::deep_clone`] for an
/// independent copy.
#[derive(Debug, Clone)]
pub struct Model {
    /// The architecture.
    pub arch: Architecture,
    layers: Vec<(Var, Var)>,
    device: Device,
}

fn shape_err(what: &str, got: usize, want: usize) -> Error {
    Error::Shape(format!("{what}: got {got} values, expected {want}"))
}

impl Model {
    /// A freshly initialised model: weights uniform in `+-1/sqrt(fan_in)`, biases zero,
    /// drawn from a `StdRng` seeded with `seed` (reproducible).
    pub fn new(arch: Architecture, seed: u64) -> Result<Self> {
        pin_candle_threads(rayon::current_num_threads());
        let device = Device::Cpu;
        let mut rng = StdRng::seed_from_u64(seed);
        let mut dims = vec![arch.input_dim];
        dims.extend_from_slice(&arch.hidden);
        dims.push(arch.head.n_out());
        let mut layers = Vec::new();
        for w in dims.windows(2) {
            let (i, o) = (w[0], w[1]);
            let a = 1.0 / (i as f64).sqrt();
            let wv: Vec<f64> = (0..i * o).map(|_| rng.random_range(-a..a)).collect();
            let wt = Var::from_tensor(&Tensor::from_vec(wv, (i, o), &device)?)?;
            let bt = Var::from_tensor(&Tensor::zeros(o, DType::F64, &device)?)?;
            layers.push((wt, bt));
        }
        Ok(Model {
            arch,
            layers,
            device,
        })
    }

    /// The trainable variables, in order `W_0, b_0, W_1, b_1, ...`.
    pub fn vars(&self) -> Vec<Var> {
        self.layers
            .iter()
            .flat_map(|(w, b)| [w.clone(), b.clone()])
            .collect()
    }

    /// Parameter names, in the order of [`Model::vars`] (`l0.weight`, `l0.bias`, ...).
    pub fn var_names(&self) -> Vec<String> {
        (0..self.layers.len())
            .flat_map(|l| [format!("l{l}.weight"), format!("l{l}.bias")])
            .collect()
    }

    /// The number of scalar parameters.
    pub fn n_params(&self) -> usize {
        self.vars().iter().map(|v| v.elem_count()).sum()
    }

    /// All parameters flattened in the order of [`Model::vars`].
    pub fn params_flat(&self) -> Result<Vec<f64>> {
        let mut out = Vec::new();
        for v in self.vars() {
            out.extend(v.as_tensor().flatten_all()?.to_vec1::<f64>()?);
        }
        Ok(out)
    }

    /// Overwrite all parameters from a flat vector (order of [`Model::vars`]).
    pub fn set_params_flat(&self, p: &[f64]) -> Result<()> {
        if p.len() != self.n_params() {
            return Err(shape_err("parameters", p.len(), self.n_params()));
        }
        let mut k = 0;
        for v in self.vars() {
            let n = v.elem_count();
            let t = Tensor::from_slice(&p[k..k + n], v.shape(), &self.device)?;
            v.set(&t)?;
            k += n;
        }
        Ok(())
    }

    /// A deep copy with its own parameter storage.
    pub fn deep_clone(&self) -> Result<Self> {
        let m = Model::new(self.arch.clone(), 0)?;
        m.set_params_flat(&self.params_flat()?)?;
        Ok(m)
    }

    /// An `n x d` input tensor from row-major data.
    pub fn input(&self, x: &[f64]) -> Result<Tensor> {
        let d = self.arch.input_dim;
        if !x.len().is_multiple_of(d) {
            return Err(Error::Shape(format!(
                "{} input values is not a multiple of the dimension {d}",
                x.len()
            )));
        }
        check::check_activation_budget(&self.arch, x.len() / d)?;
        Ok(Tensor::from_slice(x, (x.len() / d, d), &self.device)?)
    }

    /// The logits (or regression output) `n x n_out`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        let last = self.layers.len() - 1;
        for (l, (w, b)) in self.layers.iter().enumerate() {
            h = h.matmul(w.as_tensor())?.broadcast_add(b.as_tensor())?;
            if l < last {
                h = match self.arch.activation {
                    Activation::Elu => h.elu(1.0)?,
                    Activation::Relu => h.relu()?,
                    Activation::Tanh => h.tanh()?,
                };
            }
        }
        Ok(h)
    }

    fn check_labels(&self, y: &[f64], n: usize) -> Result<()> {
        if y.len() != n {
            return Err(shape_err("labels", y.len(), n));
        }
        if let Some(k) = self.arch.n_classes() {
            if let Some((i, v)) = y
                .iter()
                .enumerate()
                .find(|(_, v)| !(v.fract() == 0.0 && **v >= 0.0 && (**v as usize) < k))
            {
                return Err(Error::param(
                    "label",
                    v,
                    &format!("sample {i}: expected a class index in 0..{k}"),
                ));
            }
        } else if let Some(v) = y.iter().find(|v| !v.is_finite()) {
            return Err(Error::param("label", v, "regression labels must be finite"));
        }
        Ok(())
    }

    /// Per-sample losses as a tensor of shape `(n,)` (differentiable in `x` and theta).
    pub fn loss_tensor(&self, x: &Tensor, y: &[f64]) -> Result<Tensor> {
        let n = x.dim(0)?;
        self.check_labels(y, n)?;
        let z = self.forward(x)?;
        match self.arch.head {
            Head::Binary => {
                let yt = Tensor::from_slice(y, n, &self.device)?;
                bce_with_logits(&z.squeeze(1)?, &yt)
            }
            Head::Multi(k) => {
                let mut oh = vec![0.0; n * k];
                for (i, &c) in y.iter().enumerate() {
                    oh[i * k + c as usize] = 1.0;
                }
                let oh = Tensor::from_vec(oh, (n, k), &self.device)?;
                softmax_cross_entropy(&z, &oh)
            }
            Head::Regression => {
                let yt = Tensor::from_slice(y, n, &self.device)?;
                Ok(z.squeeze(1)?.sub(&yt)?.sqr()?)
            }
        }
    }

    /// Raw outputs `n x n_out` as rows.
    pub fn outputs(&self, x: &[f64]) -> Result<Vec<Vec<f64>>> {
        let d = self.arch.input_dim;
        if !x.len().is_multiple_of(d) {
            return Err(Error::Shape(format!(
                "{} input values is not a multiple of the dimension {d}",
                x.len()
            )));
        }
        let k = self.arch.head.n_out();
        let z = DenseParams::of(self)?.outputs(x);
        Ok(z.chunks_exact(k).map(|r| r.to_vec()).collect())
    }

    /// Check that `x` holds `y.len()` rows of the input dimension and that the labels are
    /// valid for the head.
    pub(crate) fn check_rows(&self, x: &[f64], y: &[f64]) -> Result<()> {
        let d = self.arch.input_dim;
        if !x.len().is_multiple_of(d) {
            return Err(Error::Shape(format!(
                "{} input values is not a multiple of the dimension {d}",
                x.len()
            )));
        }
        self.check_labels(y, x.len() / d)
    }

    /// Class probabilities per row (binary: `[1 - p, p]`); empty rows for a regression.
    pub fn predict_proba(&self, x: &[f64]) -> Result<Vec<Vec<f64>>> {
        let z = self.outputs(x)?;
        Ok(match self.arch.head {
            Head::Binary => z
                .iter()
                .map(|r| {
                    let p = 1.0 / (1.0 + (-r[0]).exp());
                    vec![1.0 - p, p]
                })
                .collect(),
            Head::Multi(_) => z
                .iter()
                .map(|r| {
                    let m = r.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let e: Vec<f64> = r.iter().map(|v| (v - m).exp()).collect();
                    let s: f64 = e.iter().sum();
                    e.iter().map(|v| v / s).collect()
                })
                .collect(),
            Head::Regression => vec![Vec::new(); z.len()],
        })
    }

    /// Predictions: the class index (as `f64`) of largest probability, or the regression
    /// output (in the model's, i.e. standardised, units).
    pub fn predict(&self, x: &[f64]) -> Result<Vec<f64>> {
        let d = self.arch.input_dim;
        if !x.len().is_multiple_of(d) {
            return Err(Error::Shape(format!(
                "{} input values is not a multiple of the dimension {d}",
                x.len()
            )));
        }
        Ok(self.predictions_from(&DenseParams::of(self)?.outputs(x)))
    }

    /// Per-sample losses and predictions (as [`Model::predict`], in the model's units)
    /// from **one** forward pass, in blocks of [`fast::BLOCK`] rows: what the trainer's
    /// epoch metrics need.
    pub fn losses_and_predictions(&self, x: &[f64], y: &[f64]) -> Result<(Vec<f64>, Vec<f64>)> {
        self.check_rows(x, y)?;
        let p = DenseParams::of(self)?;
        let z = p.outputs(x);
        Ok((p.losses_from_outputs(&z, y), self.predictions_from(&z)))
    }

    fn predictions_from(&self, z: &[f64]) -> Vec<f64> {
        let k = self.arch.head.n_out();
        match self.arch.head {
            Head::Binary => z.iter().map(|v| if *v > 0.0 { 1.0 } else { 0.0 }).collect(),
            Head::Multi(_) => z
                .chunks_exact(k)
                .map(|r| {
                    let mut best = 0;
                    for j in 1..r.len() {
                        if r[j] > r[best] {
                            best = j;
                        }
                    }
                    best as f64
                })
                .collect(),
            Head::Regression => z.to_vec(),
        }
    }

    /// Save the parameters (`model.safetensors`) and `meta` (`model.json`) into `dir`, as a
    /// unit (see [`crate::outputs::AtomicDir`]).
    pub fn save(&self, dir: impl AsRef<Path>, meta: &ModelFile) -> Result<()> {
        self.save_with(dir, meta, &[])
    }

    /// Like [`Model::save`], with extra files `(name, bytes)` written into the same unit
    /// (e.g. `report.json`).
    pub fn save_with(
        &self,
        dir: impl AsRef<Path>,
        meta: &ModelFile,
        extra: &[(&str, Vec<u8>)],
    ) -> Result<()> {
        let dir = dir.as_ref();
        let mut allowed = vec!["model.json", "model.safetensors"];
        allowed.extend(extra.iter().map(|(n, _)| *n));
        let unit = crate::outputs::AtomicDir::begin(dir, &allowed)?;
        let mut meta = meta.clone();
        meta.arch = self.arch.clone();
        let mut json = serde_json::to_string_pretty(&meta)?;
        json.push('\n');
        unit.write("model.json", json.as_bytes())?;
        for (name, bytes) in extra {
            unit.write(name, bytes)?;
        }
        let tensors: HashMap<String, Tensor> = self
            .var_names()
            .into_iter()
            .zip(self.vars())
            .map(|(n, v)| (n, v.as_tensor().clone()))
            .collect();
        candle_core::safetensors::save(&tensors, unit.tmp_path().join("model.safetensors"))
            .map_err(|e| Error::Data {
                path: dir.join("model.safetensors"),
                row: None,
                col: None,
                msg: format!("cannot write the weights: {e}"),
            })?;
        unit.sync_file("model.safetensors", "model.json")?;
        unit.commit()
    }

    /// Load a model directory written by [`Model::save`]: `model.json` and
    /// `model.safetensors` are read and fully validated ([`check`]) before use; errors
    /// name the file.
    pub fn load(dir: impl AsRef<Path>) -> Result<(Self, ModelFile)> {
        let dir = dir.as_ref();
        let jpath = dir.join("model.json");
        let text = read_limited(&jpath, check::MAX_JSON_BYTES)?;
        let meta = ModelFile::parse(&text, &jpath)?;
        let spath = dir.join("model.safetensors");
        let dims = check::layer_dims(&meta.arch);
        // validated by ModelFile::parse: no overflow, within the budget
        let n_params = check::param_count(&dims).unwrap_or(usize::MAX) as u64;
        let bytes = read_limited(&spath, n_params * 8 + check::SAFETENSORS_HEADER_SLACK)?;
        let model = Model::from_safetensors(meta.arch.clone(), &bytes, &spath)?;
        Ok((model, meta))
    }

    /// Build a model of architecture `arch` from the bytes of a `model.safetensors` file
    /// (`path` names it in errors): every tensor `l{i}.weight`, `l{i}.bias` must be present
    /// with the architecture's shape, dtype f64 and finite values. The architecture must
    /// have been checked ([`ModelFile::parse`] does).
    pub fn from_safetensors(arch: Architecture, bytes: &[u8], path: &Path) -> Result<Self> {
        let err = |msg: String| Error::Data {
            path: path.to_path_buf(),
            row: None,
            col: None,
            msg,
        };
        check::check_architecture(&arch, path)?;
        let tensors = candle_core::safetensors::load_buffer(bytes, &Device::Cpu)
            .map_err(|e| err(format!("not a valid safetensors file: {e}")))?;
        let dims = check::layer_dims(&arch);
        let n_layers = dims.len() - 1;
        let expected: Vec<String> = (0..n_layers)
            .flat_map(|l| [format!("l{l}.weight"), format!("l{l}.bias")])
            .collect();
        if let Some(extra) = tensors.keys().find(|k| !expected.contains(k)) {
            return Err(err(format!(
                "unexpected tensor {extra:?} (the architecture in model.json has {n_layers} layers)"
            )));
        }
        let device = Device::Cpu;
        let mut layers = Vec::with_capacity(n_layers);
        for (l, w) in dims.windows(2).enumerate() {
            let mut pair = Vec::with_capacity(2);
            for (name, shape) in [
                (format!("l{l}.weight"), vec![w[0], w[1]]),
                (format!("l{l}.bias"), vec![w[1]]),
            ] {
                let t = tensors
                    .get(&name)
                    .ok_or_else(|| err(format!("tensor {name} missing")))?;
                if t.dims() != shape.as_slice() || t.dtype() != DType::F64 {
                    return Err(err(format!(
                        "tensor {name}: shape {:?} {:?}, expected {shape:?} f64 (the architecture in model.json)",
                        t.dims(),
                        t.dtype(),
                    )));
                }
                let v = t
                    .flatten_all()
                    .and_then(|f| f.to_vec1::<f64>())
                    .map_err(|e| err(format!("tensor {name}: {e}")))?;
                if let Some(k) = v.iter().position(|a| !a.is_finite()) {
                    return Err(err(format!(
                        "tensor {name}: value {k} is {}, not finite",
                        v[k]
                    )));
                }
                let t = Tensor::from_vec(v, shape.as_slice(), &device)?;
                pair.push(Var::from_tensor(&t)?);
            }
            let b = pair.pop().expect("two tensors per layer");
            let w = pair.pop().expect("two tensors per layer");
            layers.push((w, b));
        }
        Ok(Model {
            arch,
            layers,
            device,
        })
    }
}

/// Read a file of at most `limit` bytes as bytes (UTF-8 checked by the caller); errors name
/// the path. The size is checked before reading, so a huge file is an error, not an abort.
fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let len = std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len();
    if len > limit {
        return Err(Error::Data {
            path: path.to_path_buf(),
            row: None,
            col: None,
            msg: format!(
                "the file is {len} bytes, more than the {limit} bytes a model of this size can need"
            ),
        });
    }
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

/// The contents of `model.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelFile {
    /// The format version of this file.
    pub format: u32,
    /// The robustflow version that wrote it.
    pub crate_version: String,
    /// The architecture.
    pub arch: Architecture,
    /// The data schema (columns, encoders, scaler, label map).
    pub schema: Option<Schema>,
    /// The training configuration (free-form JSON).
    pub training: serde_json::Value,
}

impl ModelFile {
    /// Parse and validate the contents of a `model.json` (`path` names it in errors):
    /// format version, architecture and schema ([`check`]). The bytes need not be UTF-8
    /// (invalid UTF-8 is an error).
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Self> {
        let err = |msg: String| Error::Data {
            path: path.to_path_buf(),
            row: None,
            col: None,
            msg,
        };
        let text = std::str::from_utf8(bytes)
            .map_err(|e| err(format!("not a robustflow model.json: not UTF-8 text ({e})")))?;
        // The version first, so a newer format gets a version message, not a field error.
        let v: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| err(format!("not a robustflow model.json: {e}")))?;
        match v.get("format").and_then(|f| f.as_u64()) {
            Some(f) if f == check::FORMAT_VERSION as u64 => {}
            Some(f) => {
                return Err(err(format!(
                    "format {f}; this robustflow ({}) reads format {} (written by robustflow {})",
                    env!("CARGO_PKG_VERSION"),
                    check::FORMAT_VERSION,
                    v.get("crate_version")
                        .and_then(|c| c.as_str())
                        .unwrap_or("unknown")
                )))
            }
            None => {
                return Err(err(
                    "not a robustflow model.json: no numeric `format` field".into(),
                ))
            }
        }
        let meta: ModelFile = serde_json::from_value(v)
            .map_err(|e| err(format!("not a robustflow model.json: {e}")))?;
        check::check_architecture(&meta.arch, path)?;
        if let Some(s) = &meta.schema {
            check::check_schema(s, &meta.arch, path)?;
        }
        Ok(meta)
    }

    /// A model file for `arch` and `schema`, stamped with this crate's version.
    pub fn new(arch: Architecture, schema: Option<Schema>, training: serde_json::Value) -> Self {
        ModelFile {
            format: check::FORMAT_VERSION,
            crate_version: env!("CARGO_PKG_VERSION").to_string(),
            arch,
            schema,
            training,
        }
    }
}

impl PointLoss for Model {
    fn dim(&self) -> usize {
        self.arch.input_dim
    }
    fn n_classes(&self) -> Option<usize> {
        self.arch.n_classes()
    }
    fn losses(&self, x: &[f64], y: &[f64]) -> Result<Vec<f64>> {
        self.check_rows(x, y)?;
        Ok(DenseParams::of(self)?.losses(x, y))
    }
    fn losses_and_grads(&self, x: &[f64], y: &[f64]) -> Result<(Vec<f64>, Vec<f64>)> {
        self.check_rows(x, y)?;
        Ok(DenseParams::of(self)?.losses_and_grads(x, y))
    }
    /// `(w, b)` of a model without hidden layers and one output (logistic, linear).
    fn linear_weights(&self) -> Option<(Vec<f64>, f64)> {
        if self.layers.len() != 1 || self.arch.head.n_out() != 1 {
            return None;
        }
        let (w, b) = &self.layers[0];
        let w = w.as_tensor().flatten_all().ok()?.to_vec1::<f64>().ok()?;
        let b = b.as_tensor().flatten_all().ok()?.to_vec1::<f64>().ok()?;
        Some((w, *b.first()?))
    }
    /// 1 for logistic regression (the logistic loss is 1-Lipschitz in the score); `None`
    /// otherwise (the squared loss is not Lipschitz).
    fn score_lipschitz(&self) -> Option<f64> {
        (self.layers.len() == 1 && matches!(self.arch.head, Head::Binary)).then_some(1.0)
    }
    /// `W` (`k x d`), `b` and the loss of a model without hidden layers.
    fn affine(&self) -> Option<crate::dro::w2exact::Affine> {
        use crate::dro::w2exact::{Affine, AffineLoss};
        if self.layers.len() != 1 {
            return None;
        }
        let (w, b) = &self.layers[0];
        let wt = w.as_tensor().to_vec2::<f64>().ok()?; // d x k
        let b = b.as_tensor().flatten_all().ok()?.to_vec1::<f64>().ok()?;
        let (d, k) = (wt.len(), b.len());
        let mut wk = vec![0.0; k * d];
        for (j, row) in wt.iter().enumerate() {
            for (c, v) in row.iter().enumerate() {
                wk[c * d + j] = *v;
            }
        }
        let loss = match self.arch.head {
            Head::Binary => AffineLoss::Logistic,
            Head::Multi(_) => AffineLoss::Softmax,
            Head::Regression => AffineLoss::Squared,
        };
        Some(Affine {
            loss,
            w: wk,
            b,
            k,
            d,
        })
    }
    /// A proven bound on the Lipschitz constant of `x -> grad_x l(x, y)`.
    ///
    /// Each weight matrix's spectral norm is bounded by `min(||W||_F, sqrt(||W||_1
    /// ||W||_inf))`. Through a hidden layer `h' = sigma(W h + b)` with `|sigma'| <= 1` and
    /// `sigma'` `S`-Lipschitz (`S = 1` for elu, `4 / (3 sqrt 3)` for tanh; relu has no
    /// Lipschitz derivative: no bound), the Lipschitz constant `L` of the map and the
    /// Lipschitz constant `B` of its Jacobian follow `L' = ||W|| L`,
    /// `B' = S (||W|| L)^2 + ||W|| B` (from `L = 1`, `B = 0` at the input); the output
    /// layer gives `L_z = ||W|| L`, `B_z = ||W|| B`. The loss on the logits has gradient
    /// norm at most `G` and Hessian norm at most `H` (binary cross-entropy `G = 1`,
    /// `H = 1/4`; softmax cross-entropy `G = sqrt 2`, `H = 1/2`), so the input gradient is
    /// `H L_z^2 + G B_z`-Lipschitz. The squared loss has an unbounded gradient: no bound
    /// unless the model is linear (`B_z = 0`, bound `2 L_z^2`).
    fn input_smoothness(&self) -> std::result::Result<f64, String> {
        let s_act = match self.arch.activation {
            _ if self.layers.len() == 1 => 0.0,
            Activation::Elu => 1.0,
            Activation::Tanh => 4.0 / (3.0 * 3f64.sqrt()),
            Activation::Relu => {
                return Err(
                    "relu has no Lipschitz derivative: the loss's input gradient is not \
                     Lipschitz (train with --activation elu or tanh for a certificate)"
                        .into(),
                )
            }
        };
        let mut lip = 1.0f64;
        let mut beta = 0.0f64;
        let last = self.layers.len() - 1;
        for (l, (w, _)) in self.layers.iter().enumerate() {
            let wt = w
                .as_tensor()
                .to_vec2::<f64>()
                .map_err(|e| format!("cannot read the weights: {e}"))?;
            let fro = wt.iter().flatten().map(|v| v * v).sum::<f64>().sqrt();
            let rows = wt
                .iter()
                .map(|r| r.iter().map(|v| v.abs()).sum::<f64>())
                .fold(0.0, f64::max);
            let ncol = wt.first().map(|r| r.len()).unwrap_or(0);
            let cols = (0..ncol)
                .map(|c| wt.iter().map(|r| r[c].abs()).sum::<f64>())
                .fold(0.0, f64::max);
            let norm = fro.min((rows * cols).sqrt());
            if l < last {
                let nl = norm * lip;
                beta = s_act * nl * nl + norm * beta;
                lip = nl;
            } else {
                lip *= norm;
                beta *= norm;
            }
        }
        let (g, h) = match self.arch.head {
            Head::Binary => (1.0, 0.25),
            Head::Multi(_) => (2f64.sqrt(), 0.5),
            Head::Regression if beta == 0.0 => return Ok(2.0 * lip * lip),
            Head::Regression => {
                return Err(
                    "the squared loss has an unbounded gradient: its input gradient through \
                     hidden layers is not Lipschitz"
                        .into(),
                )
            }
        };
        let v = h * lip * lip + g * beta;
        if v.is_finite() {
            Ok(v)
        } else {
            Err(format!("the smoothness bound overflows ({v})"))
        }
    }
}
