//! Seeded splits: the stratified split of a set of rows ([`stratified_split`]) and the
//! train / validation / test partition of a load ([`split_positions`]).
//!
//! A classification is split per class, so every part keeps the class proportions up to
//! rounding: in each class `c` with `n_c` rows, a shuffled `round(frac n_c)` go to the
//! held-out part. The test part is split off first (seed `seed`), then the validation part
//! from the rest (seed `seed + 1`).

use super::LoadOptions;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::collections::BTreeMap;

/// Seeded stratified split of `0..n`: per class (or per whole set for a regression,
/// `labels = None`), a shuffled `round(frac * n_c)` indices go to the second part. Returns
/// `(first, second)`, each sorted.
pub fn stratified_split(
    labels: Option<&[usize]>,
    n: usize,
    frac: f64,
    seed: u64,
) -> (Vec<usize>, Vec<usize>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for i in 0..n {
        let g = labels.map(|l| l[i]).unwrap_or(0);
        groups.entry(g).or_default().push(i);
    }
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for (_, mut g) in groups {
        g.shuffle(&mut rng);
        let k = ((g.len() as f64) * frac).round() as usize;
        let k = k.min(g.len());
        b.extend_from_slice(&g[..k]);
        a.extend_from_slice(&g[k..]);
    }
    a.sort_unstable();
    b.sort_unstable();
    (a, b)
}

/// The train, validation and test positions (indices into the `n` rows kept) of a load:
/// with `split_test` false (a separate test file) every row is a training or validation
/// row. `strat`: the class of each row (None for a regression).
pub(super) fn split_positions(
    strat: Option<&[usize]>,
    n: usize,
    split_test: bool,
    opts: &LoadOptions,
) -> (Vec<usize>, Vec<usize>, Vec<usize>) {
    let (train_pos, test_pos) = if !split_test {
        ((0..n).collect(), Vec::new())
    } else {
        stratified_split(strat, n, opts.test_fraction, opts.seed)
    };
    let (train_pos, val_pos) = if opts.val_fraction > 0.0 {
        let sub: Option<Vec<usize>> = strat.map(|l| train_pos.iter().map(|&p| l[p]).collect());
        let (a, b) = stratified_split(
            sub.as_deref(),
            train_pos.len(),
            opts.val_fraction,
            opts.seed.wrapping_add(1),
        );
        (
            a.iter().map(|&k| train_pos[k]).collect::<Vec<_>>(),
            b.iter().map(|&k| train_pos[k]).collect::<Vec<_>>(),
        )
    } else {
        (train_pos, Vec::new())
    };
    (train_pos, val_pos, test_pos)
}
