//! Hand-written forward and backward passes of the dense models, for the training loop.
//!
//! A model is `h_0 = x`, `h_{l+1} = sigma(h_l W_l + b_l)` (no `sigma` on the last layer,
//! whose output is the logits `z`), with the losses of [`super`]. For per-row output
//! cotangents `g_L = c_i dl_i/dz_i` (`c_i = 1` for input gradients, the particle weight
//! `w_i` for the outer objective `J = sum_i w_i l_i`) reverse mode is
//!
//! `dW_l = h_l' g_{l+1}`, `db_l = 1' g_{l+1}`, `g_l = (g_{l+1} W_l') * sigma'(h_l)`,
//! `grad_x = g_1 W_0'`,
//!
//! with `sigma'` from the layer's output: `1{h > 0}` (relu), `1` or `h + 1` (elu),
//! `1 - h^2` (tanh); and `dl/dz = sigmoid(z) - y` (binary cross-entropy),
//! `softmax(z) - onehot(y)` (softmax cross-entropy), `2 (z - y)` (squared loss).
//!
//! candle computes the same quantities (it stays the reference: `tests/fast_model.rs`
//! checks values and gradients against its autodiff and against finite differences), but
//! a minibatch of 128 rows makes every candle op a few microseconds of dispatch,
//! allocation and zeroing around a few hundred nanoseconds of arithmetic. Here the three
//! matrix products per layer go straight to `gemm` (single-threaded: the blocks are
//! small) and every intermediate lives in a per-thread workspace that is reused from one
//! call to the next. Large inputs (a whole training set for the epoch metrics) are cut
//! into blocks of [`BLOCK`] rows processed in parallel, so the memory is
//! `O(BLOCK x width)` per thread instead of `O(n x width)`.

use super::{Activation, Head, Model};
use crate::error::Result;
use rayon::prelude::*;
use std::cell::RefCell;

/// Rows per block when a large input is processed block by block.
pub const BLOCK: usize = 1024;

/// The parameters of a [`Model`] as plain row-major `f64` arrays.
#[derive(Debug, Clone)]
pub struct DenseParams {
    /// Layer widths `[d, h_1, ..., n_out]`.
    pub dims: Vec<usize>,
    /// `W_l`, `dims[l] x dims[l + 1]`, row-major.
    pub w: Vec<Vec<f64>>,
    /// `b_l`, `dims[l + 1]`.
    pub b: Vec<Vec<f64>>,
    /// Hidden activation.
    pub act: Activation,
    /// Output head.
    pub head: Head,
}

/// Per-thread scratch: the layer outputs and two cotangent buffers.
#[derive(Default)]
struct Work {
    h: Vec<Vec<f64>>,
    g: Vec<f64>,
    g2: Vec<f64>,
}

thread_local! {
    static WORK: RefCell<Work> = RefCell::new(Work::default());
}

/// `dst (m x n) = [dst +] lhs (m x k) rhs (k x n)` with explicit strides (row, column).
#[allow(clippy::too_many_arguments)]
fn gemm_into(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f64],
    accumulate: bool,
    lhs: &[f64],
    lhs_rs: usize,
    lhs_cs: usize,
    rhs: &[f64],
    rhs_rs: usize,
    rhs_cs: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(0.0);
        }
        return;
    }
    assert!(dst.len() >= m * n);
    assert!(lhs.len() > (m - 1) * lhs_rs + (k - 1) * lhs_cs);
    assert!(rhs.len() > (k - 1) * rhs_rs + (n - 1) * rhs_cs);
    // SAFETY: the asserts above cover every index gemm reads or writes (dst is m x n
    // contiguous row-major, lhs and rhs are addressed through the given strides).
    unsafe {
        gemm::gemm::<f64>(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

/// `log(1 + exp(-|z|))`, in the same operation order as the candle loss.
#[inline]
fn softplus_neg_abs(z: f64) -> f64 {
    ((-z.abs()).exp() + 1.0).ln()
}

impl DenseParams {
    /// Copy the current parameters out of `model`.
    pub fn of(model: &Model) -> Result<Self> {
        let mut dims = vec![model.arch.input_dim];
        dims.extend_from_slice(&model.arch.hidden);
        dims.push(model.arch.head.n_out());
        let mut w = Vec::with_capacity(model.layers.len());
        let mut b = Vec::with_capacity(model.layers.len());
        for (wl, bl) in &model.layers {
            w.push(wl.as_tensor().flatten_all()?.to_vec1::<f64>()?);
            b.push(bl.as_tensor().to_vec1::<f64>()?);
        }
        Ok(DenseParams {
            dims,
            w,
            b,
            act: model.arch.activation,
            head: model.arch.head,
        })
    }

    fn n_layers(&self) -> usize {
        self.w.len()
    }

    /// The number of outputs.
    pub fn n_out(&self) -> usize {
        *self.dims.last().expect("at least one layer")
    }

    /// Forward `m` rows of `x` into `work.h` (layer outputs; the last is the logits).
    fn forward_into(&self, x: &[f64], m: usize, work: &mut Work) {
        let nl = self.n_layers();
        if work.h.len() < nl {
            work.h.resize_with(nl, Vec::new);
        }
        for l in 0..nl {
            let (ni, no) = (self.dims[l], self.dims[l + 1]);
            let (before, rest) = work.h.split_at_mut(l);
            let out = &mut rest[0];
            if out.len() < m * no {
                out.resize(m * no, 0.0);
            }
            let out = &mut out[..m * no];
            for row in out.chunks_exact_mut(no) {
                row.copy_from_slice(&self.b[l]);
            }
            let input: &[f64] = if l == 0 { x } else { &before[l - 1][..m * ni] };
            gemm_into(m, no, ni, out, true, input, ni, 1, &self.w[l], no, 1);
            if l + 1 < nl {
                match self.act {
                    Activation::Relu => out.iter_mut().for_each(|v| *v = v.max(0.0)),
                    Activation::Elu => out.iter_mut().for_each(|v| {
                        if *v <= 0.0 {
                            *v = v.exp() - 1.0
                        }
                    }),
                    Activation::Tanh => out.iter_mut().for_each(|v| *v = v.tanh()),
                }
            }
        }
    }

    /// Per-row losses from the logits `z` (`m x n_out`) into `loss`, and, when `g` is
    /// given, `c_i dl_i/dz_i` into `g` (`c = None`: 1).
    fn head_losses(
        &self,
        z: &[f64],
        y: &[f64],
        loss: &mut [f64],
        g: Option<(&mut [f64], Option<&[f64]>)>,
    ) {
        let k = self.n_out();
        match self.head {
            Head::Binary => {
                for i in 0..y.len() {
                    let (zi, yi) = (z[i], y[i]);
                    loss[i] = zi.max(0.0) - zi * yi + softplus_neg_abs(zi);
                }
                if let Some((g, c)) = g {
                    for i in 0..y.len() {
                        let s = 1.0 / (1.0 + (-z[i]).exp());
                        g[i] = (s - y[i]) * c.map_or(1.0, |c| c[i]);
                    }
                }
            }
            Head::Multi(_) => {
                let mut g = g;
                for i in 0..y.len() {
                    let zi = &z[i * k..(i + 1) * k];
                    let yi = y[i] as usize;
                    let mx = zi.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let se: f64 = zi.iter().map(|v| (v - mx).exp()).sum();
                    loss[i] = se.ln() + mx - zi[yi];
                    if let Some((g, c)) = g.as_mut() {
                        let ci = c.map_or(1.0, |c| c[i]);
                        let gi = &mut g[i * k..(i + 1) * k];
                        for (j, gv) in gi.iter_mut().enumerate() {
                            let p = (zi[j] - mx).exp() / se;
                            *gv = (p - if j == yi { 1.0 } else { 0.0 }) * ci;
                        }
                    }
                }
            }
            Head::Regression => {
                for i in 0..y.len() {
                    let r = z[i] - y[i];
                    loss[i] = r * r;
                }
                if let Some((g, c)) = g {
                    for i in 0..y.len() {
                        g[i] = 2.0 * (z[i] - y[i]) * c.map_or(1.0, |c| c[i]);
                    }
                }
            }
        }
    }

    /// Reverse pass from the output cotangents in `work.g` (`m x n_out`): input gradients
    /// into `dx` (when given) and parameter gradients accumulated into `pg` (when given,
    /// `[dW_0, db_0, dW_1, ...]`).
    fn backward(
        &self,
        x: &[f64],
        m: usize,
        work: &mut Work,
        mut dx: Option<&mut [f64]>,
        mut pg: Option<&mut [Vec<f64>]>,
    ) {
        let nl = self.n_layers();
        for l in (0..nl).rev() {
            let (ni, no) = (self.dims[l], self.dims[l + 1]);
            let g = &work.g[..m * no];
            let input: &[f64] = if l == 0 { x } else { &work.h[l - 1][..m * ni] };
            if let Some(pg) = pg.as_deref_mut() {
                // dW_l += h_l' g  (ni x no): lhs h_l' has row stride 1, column stride ni.
                gemm_into(ni, no, m, &mut pg[2 * l], true, input, 1, ni, g, no, 1);
                let db = &mut pg[2 * l + 1];
                for row in g.chunks_exact(no) {
                    for (a, b) in db.iter_mut().zip(row) {
                        *a += b;
                    }
                }
            }
            if l == 0 && dx.is_none() {
                break;
            }
            // g_l = g W_l'  (m x ni): rhs W_l' has row stride 1, column stride no.
            if work.g2.len() < m * ni {
                work.g2.resize(m * ni, 0.0);
            }
            let out: &mut [f64] = if l == 0 {
                dx.as_deref_mut().expect("checked above")
            } else {
                &mut work.g2[..m * ni]
            };
            gemm_into(m, ni, no, out, false, g, no, 1, &self.w[l], 1, no);
            if l > 0 {
                let h = &work.h[l - 1][..m * ni];
                match self.act {
                    Activation::Relu => out.iter_mut().zip(h).for_each(|(o, h)| {
                        if *h <= 0.0 {
                            *o = 0.0
                        }
                    }),
                    Activation::Elu => out.iter_mut().zip(h).for_each(|(o, h)| {
                        if *h <= 0.0 {
                            *o *= h + 1.0
                        }
                    }),
                    Activation::Tanh => out.iter_mut().zip(h).for_each(|(o, h)| *o *= 1.0 - h * h),
                }
                std::mem::swap(&mut work.g, &mut work.g2);
            }
        }
    }

    /// Per-row losses of `m = y.len()` rows (labels already checked).
    pub fn losses(&self, x: &[f64], y: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; y.len()];
        self.for_blocks(x, y, &mut out, None, |p, xb, yb, lb, _| {
            WORK.with(|w| {
                let work = &mut *w.borrow_mut();
                let m = yb.len();
                p.forward_into(xb, m, work);
                let z = &work.h[p.n_layers() - 1][..m * p.n_out()];
                p.head_losses(z, yb, lb, None);
            })
        });
        out
    }

    /// Per-row losses and their input gradients (`m x d`).
    pub fn losses_and_grads(&self, x: &[f64], y: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let mut out = vec![0.0; y.len()];
        let mut dx = vec![0.0; x.len()];
        self.for_blocks(x, y, &mut out, Some(&mut dx), |p, xb, yb, lb, gb| {
            WORK.with(|w| {
                let work = &mut *w.borrow_mut();
                let m = yb.len();
                let k = p.n_out();
                p.forward_into(xb, m, work);
                if work.g.len() < m * k {
                    work.g.resize(m * k, 0.0);
                }
                let Work { h, g, .. } = work;
                p.head_losses(
                    &h[p.n_layers() - 1][..m * k],
                    yb,
                    lb,
                    Some((&mut g[..m * k], None)),
                );
                p.backward(xb, m, work, gb, None);
            })
        });
        (out, dx)
    }

    /// The outer objective's pieces at fixed particles: per-row losses and the gradient
    /// of `sum_i c_i l_i` with respect to every parameter (`[dW_0, db_0, dW_1, ...]`,
    /// each row-major like the parameter).
    pub fn weighted_param_grads(
        &self,
        x: &[f64],
        y: &[f64],
        c: &[f64],
        pg: &mut Vec<Vec<f64>>,
    ) -> Vec<f64> {
        let nl = self.n_layers();
        pg.resize_with(2 * nl, Vec::new);
        for l in 0..nl {
            pg[2 * l].clear();
            pg[2 * l].resize(self.dims[l] * self.dims[l + 1], 0.0);
            pg[2 * l + 1].clear();
            pg[2 * l + 1].resize(self.dims[l + 1], 0.0);
        }
        let d = self.dims[0];
        let k = self.n_out();
        let mut loss = vec![0.0; y.len()];
        WORK.with(|w| {
            let work = &mut *w.borrow_mut();
            // Blocks in sequence (parameter gradients accumulate across them).
            for (s, e) in (0..y.len())
                .step_by(BLOCK)
                .map(|s| (s, (s + BLOCK).min(y.len())))
            {
                let m = e - s;
                let xb = &x[s * d..e * d];
                self.forward_into(xb, m, work);
                if work.g.len() < m * k {
                    work.g.resize(m * k, 0.0);
                }
                let Work { h, g, .. } = work;
                self.head_losses(
                    &h[nl - 1][..m * k],
                    &y[s..e],
                    &mut loss[s..e],
                    Some((&mut g[..m * k], Some(&c[s..e]))),
                );
                self.backward(xb, m, work, None, Some(&mut pg[..]));
            }
        });
        loss
    }

    /// Per-row losses from raw outputs `z` (`m x n_out`, from [`DenseParams::outputs`]).
    pub fn losses_from_outputs(&self, z: &[f64], y: &[f64]) -> Vec<f64> {
        let mut loss = vec![0.0; y.len()];
        self.head_losses(z, y, &mut loss, None);
        loss
    }

    /// Raw outputs (`m x n_out`, row-major).
    pub fn outputs(&self, x: &[f64]) -> Vec<f64> {
        let d = self.dims[0];
        let k = self.n_out();
        let m = x.len() / d;
        let mut out = vec![0.0; m * k];
        let run = |xb: &[f64], ob: &mut [f64]| {
            WORK.with(|w| {
                let work = &mut *w.borrow_mut();
                let mb = xb.len() / d;
                self.forward_into(xb, mb, work);
                ob.copy_from_slice(&work.h[self.n_layers() - 1][..mb * k]);
            })
        };
        if m <= BLOCK {
            run(x, &mut out);
        } else {
            x.par_chunks(BLOCK * d)
                .zip(out.par_chunks_mut(BLOCK * k))
                .for_each(|(xb, ob)| run(xb, ob));
        }
        out
    }

    /// Run `f(self, x_block, y_block, loss_block, dx_block)` over blocks of at most
    /// [`BLOCK`] rows (in parallel when there are several).
    fn for_blocks<F>(&self, x: &[f64], y: &[f64], loss: &mut [f64], dx: Option<&mut [f64]>, f: F)
    where
        F: Fn(&Self, &[f64], &[f64], &mut [f64], Option<&mut [f64]>) + Sync,
    {
        let d = self.dims[0];
        let m = y.len();
        if m <= BLOCK {
            f(self, x, y, loss, dx);
            return;
        }
        match dx {
            None => x
                .par_chunks(BLOCK * d)
                .zip(y.par_chunks(BLOCK))
                .zip(loss.par_chunks_mut(BLOCK))
                .for_each(|((xb, yb), lb)| f(self, xb, yb, lb, None)),
            Some(dx) => x
                .par_chunks(BLOCK * d)
                .zip(y.par_chunks(BLOCK))
                .zip(loss.par_chunks_mut(BLOCK))
                .zip(dx.par_chunks_mut(BLOCK * d))
                .for_each(|(((xb, yb), lb), gb)| f(self, xb, yb, lb, Some(gb))),
        }
    }
}
