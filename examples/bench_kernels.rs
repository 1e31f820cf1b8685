//! Kernel-sum benchmark against NumPy, measured side by side in one run (issue 6).
//!
//! ```text
//! cargo run --release --example bench_kernels -- [--quick] [--out DIR] [--no-numpy]
//! ```
//!
//! For each case (Gaussian witness + gradient, `n = m`, `d`, f64 / f32) it prints
//! robustflow's median time, NumPy's median time (the materialised-matrix code of
//! `benches/reference/kernel_sums.py`, run on the same inputs in the same run, with
//! `OPENBLAS_CORETYPE` / `OPENBLAS_L2_SIZE` unset for that command), their ratio, the
//! nominal GFLOP/s (`4 d + 6` FLOP per pair) and its fraction of the GEMM peak measured in this
//! run (the larger of the `gemm` crate at 2000^3 and NumPy/OpenBLAS at 4096^3), and the
//! largest difference between the two results. Then the engine's paths and
//! SIMD levels, the growth with `n` and `d` (log-log PNG), random Fourier features at
//! `n = m = 1e5` and their error at `n = 1e4`, and the MMD-prox weight step against a W
//! step's sums (`--prox-only` runs that part alone). Results go to `DIR/results.json`, `DIR/table.md`, `DIR/scaling.png`
//! (default `DIR = docs/perf`).

use ndarray::Array2;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use robustflow::energy::{Energy, MmdEnergy};
use robustflow::flow::{
    FlowStep, Ift, MmdProx, ProxSolver, QpMethod, QpOptions, QpReport, StepContext, Wasserstein,
};
use robustflow::kernel::engine::sums_with;
use robustflow::kernel::rff::RandomFourierFeatures;
use robustflow::kernel::{
    kernel_sums_with_grad, mmd2, EngineOptions, Kernel, PathChoice, SimdLevel,
};
use robustflow::measure::Particles;
use robustflow::plot::{line_chart, Series};
use serde_json::json;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// Median wall time (s) of `reps` runs after one warm-up.
fn time_it<F: FnMut()>(reps: usize, mut f: F) -> f64 {
    f();
    median(
        (0..reps)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

fn reps_for(pairs: f64, quick: bool) -> usize {
    let r = if pairs > 5e8 {
        3
    } else if pairs > 5e7 {
        5
    } else {
        9
    };
    if quick {
        r.min(3)
    } else {
        r
    }
}

fn gauss(rng: &mut StdRng, len: usize, shift: f64) -> Vec<f64> {
    (0..len)
        .map(|_| rng.sample::<f64, _>(StandardNormal) + shift)
        .collect()
}

fn gemm_peak<T: robustflow::kernel::Real>(size: usize) -> f64 {
    let a: Vec<T> = (0..size * size)
        .map(|i| T::from_f64(((i * 7) % 13) as f64 * 0.1))
        .collect();
    let b = a.clone();
    let mut c = vec![T::ZERO; size * size];
    let t = time_it(5, || unsafe {
        gemm::gemm::<T>(
            size,
            size,
            size,
            c.as_mut_ptr(),
            1,
            size as isize,
            false,
            a.as_ptr(),
            1,
            size as isize,
            b.as_ptr(),
            1,
            size as isize,
            T::ZERO,
            T::ONE,
            false,
            false,
            false,
            gemm::Parallelism::Rayon(0),
        )
    });
    2.0 * (size as f64).powi(3) / t / 1e9
}

fn write_f64(path: &Path, v: &[f64]) {
    let bytes: Vec<u8> = v.iter().flat_map(|a| a.to_le_bytes()).collect();
    std::fs::write(path, bytes).expect("write input");
}

fn read_f64(path: &Path) -> Vec<f64> {
    std::fs::read(path)
        .map(|b| {
            b.chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                .collect()
        })
        .unwrap_or_default()
}

struct Case {
    name: String,
    n: usize,
    d: usize,
    f32: bool,
    secs: f64,
    path: String,
    s: Vec<f64>,
    g: Vec<f64>,
}

/// The MMD-prox weight step (exact simplex QP) against one W step's kernel sums
/// (witness + gradient over `n + m` sources, uniform weights) at `d = 2`, Gaussian `h = 1`,
/// `tau beta = 0.1`, `x ~ N(0, I)`, target sample `y ~ N(1, I)`, `m = n`:
/// a cold step from uniform weights (default solver: active set; and FISTA with the budget
/// of 500 iterations, the previous default), then 30 IFT iterations (`alpha = 1`,
/// `tau = 0.1`; 10 at `n = 1e4`), where each prox step starts from the previous weights.
/// At every iteration, on the same state: the W step and the prox step of an energy
/// without the target-potential cache (each step alone, the prox paying for `b = K_xy v`),
/// then the same two steps of the flow itself (cache on: the prox step computes the
/// target potential with its gradient, the W step after it reuses them), over iterations
/// 2..30. This VM's speed drifts by up to 2x within minutes, so each timed step is paired
/// with a timing of the W sums taken right beside it, and every ratio reported is the
/// median of the per-pair ratios (times are medians too).
fn prox_section(rng: &mut StdRng) -> Vec<serde_json::Value> {
    let mut prox_rows = Vec::new();
    let timed = |f: &mut dyn FnMut()| {
        let t = Instant::now();
        f();
        t.elapsed().as_secs_f64()
    };
    for &n in &[500usize, 2000, 10000] {
        let d = 2;
        let xp = Array2::from_shape_vec((n, d), gauss(rng, n * d, 0.0)).unwrap();
        let yp = Array2::from_shape_vec((n, d), gauss(rng, n * d, 1.0)).unwrap();
        let energy = MmdEnergy::new(
            Kernel::gaussian(1.0).unwrap(),
            Particles::uniform(yp).unwrap(),
        )
        .unwrap();
        let plain = energy.clone().with_potential_cache(false);
        let mu0 = Particles::uniform(xp).unwrap();
        let w_sums = || {
            timed(&mut || {
                std::hint::black_box(plain.first_variation(&mu0, true).unwrap());
            })
        };
        w_sums();
        // Cold step (uniform weights): pairs (step, W sums).
        let cold = |opts: QpOptions, reps: usize| {
            let mut rep = QpReport::default();
            let (mut ts, mut ratios) = (Vec::new(), Vec::new());
            for _ in 0..reps {
                let mut mu = mu0.clone();
                let mut r = StdRng::seed_from_u64(0);
                let mut ctx = StepContext {
                    step: 0,
                    tau: 0.1,
                    rng: &mut r,
                };
                let mut p = MmdProx::new(1.0)
                    .unwrap()
                    .with_solver(ProxSolver::Exact(opts))
                    .unwrap();
                let mut info = robustflow::flow::StepInfo::default();
                let t = timed(&mut || info = p.apply(&mut mu, &plain, &mut ctx).unwrap());
                rep = info.qp.unwrap_or_default();
                let ws = w_sums();
                ts.push(t);
                ratios.push(t / ws);
            }
            (median(ts), median(ratios), rep)
        };
        let (t_as, q_as, r_as) = cold(QpOptions::default(), 7);
        // FISTA (the previous default) for comparison; at n = 1e4 its 500 matrix-free
        // products take minutes, so it is not run there.
        let (t_fi, q_fi, r_fi) = if n <= 2000 {
            cold(
                QpOptions {
                    method: QpMethod::Fista,
                    ..QpOptions::default()
                },
                3,
            )
        } else {
            (f64::NAN, f64::NAN, QpReport::default())
        };
        // Along an IFT flow: the prox step starts from the previous step's weights. Per
        // iteration, on the same state: W sums at uniform weights, the W step and the prox
        // step alone (cache off), then the flow's own W and prox steps (cache on; the W
        // step reuses the potential the previous prox step computed).
        let mut mu = mu0.clone();
        let mut ift = Ift {
            w: Wasserstein::new(1.0).unwrap(),
            prox: MmdProx::new(1.0).unwrap(),
        };
        let mut r = StdRng::seed_from_u64(1);
        let mut ws_t = Vec::new();
        let mut cols: [Vec<f64>; 4] = Default::default(); // W alone, prox alone, W, prox
        let mut ratio_prox = Vec::new();
        let mut ratio_iter = Vec::new();
        let (mut its, mut rounds, mut supp) = (0usize, 0usize, 0usize);
        let steps = if n <= 2000 { 30 } else { 10 };
        for k in 0..steps {
            let mut ctx = StepContext {
                step: k,
                tau: 0.1,
                rng: &mut r,
            };
            let ws = w_sums();
            let mut alone = mu.clone();
            let tw_plain = timed(&mut || {
                ift.w.clone().step(&mut alone, &plain, &mut ctx).unwrap();
            });
            let tw = timed(&mut || {
                ift.w.step(&mut mu, &energy, &mut ctx).unwrap();
            });
            assert_eq!(alone.x_slice(), mu.x_slice(), "the cache changed the step");
            let mut alone = mu.clone();
            let mut p = ift.prox.clone();
            let tp_plain = timed(&mut || {
                p.apply(&mut alone, &plain, &mut ctx).unwrap();
            });
            let mut info = robustflow::flow::StepInfo::default();
            let tp = timed(&mut || info = ift.prox.apply(&mut mu, &energy, &mut ctx).unwrap());
            let last = info.qp.unwrap_or_default();
            assert_eq!(alone.weights(), mu.weights(), "the cache changed the step");
            if k >= 1 {
                ws_t.push(ws);
                for (c, t) in cols.iter_mut().zip([tw_plain, tp_plain, tw, tp]) {
                    c.push(t);
                }
                ratio_prox.push(tp_plain / ws);
                ratio_iter.push((tp + tw) / ws);
                its += last.iterations;
                rounds += last.rounds;
            }
            supp = last.support;
        }
        let per = (steps - 1) as f64;
        let [tw_plain, tp_plain, tw, tp] = cols.map(median);
        let (w_step, q_prox, q_iter) = (median(ws_t), median(ratio_prox), median(ratio_iter));
        println!(
            "  MMD-prox n={n}: W step's sums {:.2} ms | cold exact step (active set) {:.2} ms = {:.2}x, support {}, FW gap {:.1e}, {} steps | FISTA {:.2} ms = {:.1}x, FW gap {:.1e}, {} its",
            w_step * 1e3, t_as * 1e3, q_as, r_as.support, r_as.fw_gap, r_as.iterations,
            t_fi * 1e3, q_fi, r_fi.fw_gap, r_fi.iterations,
        );
        println!(
            "    along IFT: prox step alone {:.2} ms = {:.2}x the W sums ({:.0} active-set steps, {:.1} pricing rounds), W step alone {:.2} ms | in the flow (cache): prox {:.2} ms + W {:.2} ms, IFT iteration = {:.2}x the W sums; final support {supp}",
            tp_plain * 1e3, q_prox, its as f64 / per, rounds as f64 / per, tw_plain * 1e3,
            tp * 1e3, tw * 1e3, q_iter
        );
        prox_rows.push(json!({"n": n, "d": d, "w_sums_secs": w_step,
            "prox_secs": t_as, "prox_over_w_sums": q_as, "support": r_as.support,
            "fw_gap": r_as.fw_gap, "iterations": r_as.iterations,
            "fista_secs": t_fi, "fista_over_w_sums": q_fi, "fista_fw_gap": r_fi.fw_gap,
            "fista_iterations": r_fi.iterations,
            "flow_prox_alone_secs": tp_plain, "flow_prox_alone_over_w_sums": q_prox,
            "flow_w_step_alone_secs": tw_plain,
            "flow_prox_secs": tp, "flow_w_step_secs": tw, "flow_iteration_over_w_sums": q_iter,
            "flow_prox_iterations": its as f64 / per, "flow_prox_rounds": rounds as f64 / per,
            "flow_support": supp}));
    }
    prox_rows
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let numpy = !args.iter().any(|a| a == "--no-numpy");
    let out_dir = args
        .iter()
        .position(|a| a == "--out")
        .map(|i| PathBuf::from(&args[i + 1]))
        .unwrap_or_else(|| PathBuf::from("docs/perf"));
    std::fs::create_dir_all(&out_dir)?;
    let threads = rayon::current_num_threads();
    let simd = SimdLevel::detect();
    println!("robustflow kernel benchmark: {threads} threads, SIMD {simd}, quick = {quick}");

    if args.iter().any(|a| a == "--prox-only") {
        let mut rng = StdRng::seed_from_u64(42);
        let rows = prox_section(&mut rng);
        robustflow::io::write_json_atomic(
            out_dir.join("mmd_prox.json"),
            &json!({"mmd_prox": rows}),
        )?;
        return Ok(());
    }
    let mut peak64 = gemm_peak::<f64>(if quick { 1000 } else { 2000 });
    let mut peak32 = gemm_peak::<f32>(if quick { 1000 } else { 2000 });
    println!("GEMM peak (gemm crate, {threads} threads): f64 {peak64:.0} GFLOP/s, f32 {peak32:.0} GFLOP/s");

    // ---------------------------------------------------------------- main table
    let big = if quick { 2000 } else { 10000 };
    let tmp = tempfile::tempdir()?;
    let mut rng = StdRng::seed_from_u64(42);
    let mut cases: Vec<Case> = Vec::new();
    let mut manifest = Vec::new();
    for &d in &[2usize, 10, 100] {
        let n = big;
        let x = gauss(&mut rng, n * d, 0.0);
        let y = gauss(&mut rng, n * d, 0.5);
        let v: Vec<f64> = (0..n)
            .map(|j| if j % 2 == 0 { 1.0 } else { -0.5 } / n as f64)
            .collect();
        let h = (d as f64).sqrt();
        let k = Kernel::gaussian(h)?;
        let stem = format!("n{n}_d{d}");
        write_f64(&tmp.path().join(format!("{stem}.x")), &x);
        write_f64(&tmp.path().join(format!("{stem}.y")), &y);
        write_f64(&tmp.path().join(format!("{stem}.v")), &v);
        let reps = reps_for((n * n) as f64, quick);
        let path = format!("{:?}", EngineOptions::default().resolve_path(&k, d)?).to_lowercase();
        for f32 in [false, true] {
            let name = format!("{stem}_{}", if f32 { "f32" } else { "f64" });
            let (secs, s, g) = if f32 {
                let x32: Vec<f32> = x.iter().map(|&a| a as f32).collect();
                let y32: Vec<f32> = y.iter().map(|&a| a as f32).collect();
                let v32: Vec<f32> = v.iter().map(|&a| a as f32).collect();
                let o = EngineOptions::default();
                let secs = time_it(reps, || {
                    std::hint::black_box(sums_with(&k, &x32, &y32, &v32, d, true, &o).unwrap());
                });
                let (s, g) = sums_with(&k, &x32, &y32, &v32, d, true, &o)?;
                (
                    secs,
                    s.iter().map(|&a| a as f64).collect(),
                    g.iter().map(|&a| a as f64).collect(),
                )
            } else {
                let secs = time_it(reps, || {
                    std::hint::black_box(kernel_sums_with_grad(&k, &x, &y, &v, d).unwrap());
                });
                let (s, g) = kernel_sums_with_grad(&k, &x, &y, &v, d)?;
                (secs, s, g)
            };
            println!("  robustflow {name}: {:.2} ms ({path})", secs * 1e3);
            manifest.push(json!({
                "name": name, "n": n, "m": n, "d": d, "h": h,
                "dtype": if f32 { "float32" } else { "float64" },
                "x": format!("{stem}.x"), "y": format!("{stem}.y"), "v": format!("{stem}.v"),
                "repeats": reps,
            }));
            cases.push(Case {
                name,
                n,
                d,
                f32,
                secs,
                path: path.clone(),
                s,
                g,
            });
        }
    }

    // ---------------------------------------------------------------- NumPy
    let mut np_times = std::collections::HashMap::new();
    let mut np_meta = json!(null);
    if numpy {
        let man_path = tmp.path().join("manifest.json");
        std::fs::write(&man_path, serde_json::to_vec(&json!({"cases": manifest}))?)?;
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/reference/kernel_sums.py");
        let out = std::process::Command::new("python3")
            .arg(&script)
            .arg(&man_path)
            .env_remove("OPENBLAS_CORETYPE")
            .env_remove("OPENBLAS_L2_SIZE")
            .output();
        match out {
            Ok(o) if o.status.success() => {
                let v: serde_json::Value = serde_json::from_slice(&o.stdout)?;
                for c in v["cases"].as_array().into_iter().flatten() {
                    np_times.insert(
                        c["name"].as_str().unwrap_or("").to_string(),
                        c["median_s"].as_f64().unwrap_or(f64::NAN),
                    );
                }
                np_meta = json!({"numpy": v["numpy"], "gemm_gflops": v["gemm_gflops"]});
                // The peak is the better of the two GEMMs measured in this run (the
                // conservative denominator for "% of GEMM peak").
                let np64 = v["gemm_gflops"]["float64"].as_f64().unwrap_or(0.0);
                let np32 = v["gemm_gflops"]["float32"].as_f64().unwrap_or(0.0);
                println!("GEMM peak (NumPy/OpenBLAS, same run): f64 {np64:.0} GFLOP/s, f32 {np32:.0} GFLOP/s; the table uses the larger of the two");
                peak64 = peak64.max(np64);
                peak32 = peak32.max(np32);
            }
            Ok(o) => eprintln!(
                "numpy reference failed: {}",
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => eprintln!("could not run python3: {e}"),
        }
    }

    // ---------------------------------------------------------------- paths and SIMD levels
    let mut paths_rows = Vec::new();
    {
        let n = big / 2;
        for &d in &[2usize, 10, 100] {
            let x = gauss(&mut rng, n * d, 0.0);
            let y = gauss(&mut rng, n * d, 0.5);
            let v = vec![1.0 / n as f64; n];
            let k = Kernel::gaussian((d as f64).sqrt())?;
            let reps = reps_for((n * n) as f64, quick).min(3);
            for path in [PathChoice::Streamed, PathChoice::Tiled] {
                for level in SimdLevel::all_available() {
                    if path == PathChoice::Tiled && level != simd {
                        continue; // the tiled path's time is gemm's; its epilogue is small
                    }
                    if d == 100 && path == PathChoice::Streamed && level == SimdLevel::Baseline {
                        continue; // slow and uninformative: the tiled path is used at d = 100
                    }
                    let o = EngineOptions {
                        path,
                        simd: Some(level),
                    };
                    let t = time_it(reps, || {
                        std::hint::black_box(sums_with(&k, &x, &y, &v, d, true, &o).unwrap());
                    });
                    println!(
                        "  path {path:?} simd {level} n={n} d={d}: {:.2} ms",
                        t * 1e3
                    );
                    paths_rows.push(json!({"n": n, "d": d, "path": format!("{path:?}"), "simd": level.to_string(), "secs": t}));
                }
            }
        }
    }

    // ---------------------------------------------------------------- growth with n and d
    let ns: Vec<usize> = if quick {
        vec![500, 1000, 2000, 4000]
    } else {
        vec![1000, 2000, 5000, 10000]
    };
    let mut series = Vec::new();
    let mut scaling_rows = Vec::new();
    for &d in &[2usize, 10, 100] {
        let mut pts = Vec::new();
        for &n in &ns {
            let x = gauss(&mut rng, n * d, 0.0);
            let y = gauss(&mut rng, n * d, 0.5);
            let v = vec![1.0 / n as f64; n];
            let k = Kernel::gaussian((d as f64).sqrt())?;
            let t = time_it(reps_for((n * n) as f64, quick), || {
                std::hint::black_box(kernel_sums_with_grad(&k, &x, &y, &v, d).unwrap());
            });
            println!(
                "  scaling d={d} n={n}: {:.3} ms, {:.2} ns/pair",
                t * 1e3,
                t * 1e9 / (n * n) as f64
            );
            pts.push(((n as f64).log10(), t));
            scaling_rows.push(json!({"n": n, "d": d, "secs": t}));
        }
        series.push(Series {
            name: format!("d = {d} (f64)"),
            points: pts,
        });
    }
    line_chart(
        out_dir.join("scaling.png"),
        "Gaussian witness + gradient, n = m (2 threads, shared machine)",
        "log10 n",
        "seconds (log scale)",
        &series,
        true,
    )?;

    // ---------------------------------------------------------------- random features
    let (rff_n, rff_d, nf) = (if quick { 20000 } else { 100_000 }, 10usize, 1024usize);
    let k10 = Kernel::gaussian((rff_d as f64).sqrt())?;
    let x = gauss(&mut rng, rff_n * rff_d, 0.0);
    let y = gauss(&mut rng, rff_n * rff_d, 0.5);
    let w = vec![1.0 / rff_n as f64; rff_n];
    let rff = RandomFourierFeatures::new(&k10, rff_d, nf, 7)?;
    let z_pi = rff.embedding(&y, &w)?;
    let mut xs = x.clone();
    let tau = 1.0;
    let rff_step = time_it(3, || {
        // one MMD (Wasserstein) flow step: embedding, witness gradient, move
        let z_mu = rff.embedding(&xs, &w).unwrap();
        let delta: Vec<f64> = z_mu.iter().zip(&z_pi).map(|(a, b)| a - b).collect();
        let (_, g) = rff.witness(&xs, &delta, true).unwrap();
        for (xi, gi) in xs.iter_mut().zip(&g) {
            *xi -= tau * gi;
        }
    });
    println!(
        "  RFF MMD-flow step n=m={rff_n} d={rff_d} D={nf}: {:.3} s",
        rff_step
    );
    // error against the exact sums at n = 1e4 (or 2000 quick)
    let ne = if quick { 2000 } else { 10000 };
    let xe = &x[..ne * rff_d];
    let ye = &y[..ne * rff_d];
    let we = vec![1.0 / ne as f64; ne];
    let exact_mmd = mmd2(&k10, xe, &we, ye, &we, rff_d)?;
    let mut src = xe.to_vec();
    src.extend_from_slice(ye);
    let mut sw = we.clone();
    sw.extend(we.iter().map(|a| -a));
    let (_, g_exact) = kernel_sums_with_grad(&k10, xe, &src, &sw, rff_d)?;
    let gnorm = g_exact.iter().map(|a| a * a).sum::<f64>().sqrt();
    let mut rff_err = Vec::new();
    for &nf in &[64usize, 256, 1024, 4096] {
        let mut me = Vec::new();
        let mut ge = Vec::new();
        for seed in 0..3 {
            let r = RandomFourierFeatures::new(&k10, rff_d, nf, seed)?;
            let zx = r.embedding(xe, &we)?;
            let zy = r.embedding(ye, &we)?;
            let delta: Vec<f64> = zx.iter().zip(&zy).map(|(a, b)| a - b).collect();
            let m2: f64 = delta.iter().map(|a| a * a).sum();
            let (_, g) = r.witness(xe, &delta, true)?;
            me.push((m2 - exact_mmd).abs() / exact_mmd);
            ge.push(
                g.iter()
                    .zip(&g_exact)
                    .map(|(a, b)| (a - b).powi(2))
                    .sum::<f64>()
                    .sqrt()
                    / gnorm,
            );
        }
        let (me, ge) = (median(me), median(ge));
        println!("  RFF D={nf} n={ne}: MMD^2 rel. error {me:.3e}, witness-gradient rel. L2 error {ge:.3e}");
        rff_err.push(json!({"features": nf, "n": ne, "mmd2_rel_err": me, "grad_rel_l2_err": ge}));
    }

    // ---------------------------------------------------------------- MMD-prox vs W step
    let prox_rows = prox_section(&mut rng);
    let _ = (quick, numpy);

    // ---------------------------------------------------------------- table
    let mut md = String::new();
    writeln!(md, "| n = m | d | dtype | path | robustflow (ms) | NumPy (ms) | NumPy / robustflow | GFLOP/s | % of GEMM peak | max rel. diff |").unwrap();
    writeln!(md, "|---|---|---|---|---|---|---|---|---|---|").unwrap();
    let mut table_rows = Vec::new();
    for c in &cases {
        let pairs = (c.n * c.n) as f64;
        let gflops = (4 * c.d + 6) as f64 * pairs / c.secs / 1e9;
        let peak = if c.f32 { peak32 } else { peak64 };
        let np = np_times.get(&c.name).copied();
        let np_s = read_f64(&tmp.path().join(format!("{}.np_s", c.name)));
        let np_g = read_f64(&tmp.path().join(format!("{}.np_g", c.name)));
        let diff = if np_s.len() == c.s.len() && np_g.len() == c.g.len() {
            let scale_s = c.s.iter().fold(0.0f64, |a, b| a.max(b.abs()));
            let scale_g = c.g.iter().fold(0.0f64, |a, b| a.max(b.abs()));
            let ds =
                c.s.iter()
                    .zip(&np_s)
                    .fold(0.0f64, |a, (p, q)| a.max((p - q).abs()))
                    / scale_s;
            let dg =
                c.g.iter()
                    .zip(&np_g)
                    .fold(0.0f64, |a, (p, q)| a.max((p - q).abs()))
                    / scale_g;
            ds.max(dg)
        } else {
            f64::NAN
        };
        writeln!(
            md,
            "| {} | {} | {} | {} | {:.1} | {} | {} | {:.0} | {:.0}% | {:.1e} |",
            c.n,
            c.d,
            if c.f32 { "f32" } else { "f64" },
            c.path,
            c.secs * 1e3,
            np.map(|t| format!("{:.1}", t * 1e3)).unwrap_or("-".into()),
            np.map(|t| format!("{:.1}x", t / c.secs))
                .unwrap_or("-".into()),
            gflops,
            100.0 * gflops / peak,
            diff
        )
        .unwrap();
        table_rows.push(json!({"name": c.name, "n": c.n, "d": c.d, "f32": c.f32, "path": c.path,
            "secs": c.secs, "numpy_secs": np, "gflops": gflops, "peak_gflops": peak, "max_rel_diff": diff}));
    }
    println!("\n{md}");
    std::fs::write(out_dir.join("table.md"), &md)?;
    let results = json!({
        "threads": threads, "simd": simd.to_string(), "quick": quick,
        "gemm_peak_gflops": {"f64": peak64, "f32": peak32},
        "numpy": np_meta, "table": table_rows, "paths": paths_rows, "scaling": scaling_rows,
        "rff": {"n": rff_n, "d": rff_d, "features": nf, "step_secs": rff_step, "errors": rff_err},
        "mmd_prox": prox_rows,
    });
    robustflow::io::write_json_atomic(out_dir.join("results.json"), &results)?;
    println!("wrote {}", out_dir.display());
    Ok(())
}
