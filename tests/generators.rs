//! Benchmark data generators: reproducible from the seed, and they have the structure
//! their papers describe.
use robustflow::bench::generators::*;

#[test]
fn generators_are_reproducible_from_seed() {
    assert_eq!(circles(200, true, 7), circles(200, true, 7));
    assert_ne!(circles(200, true, 7), circles(200, true, 8));
    assert_eq!(
        gaussian_shift(100, 5, 2.0, 0.0, 1.0, 3),
        gaussian_shift(100, 5, 2.0, 0.0, 1.0, 3)
    );
    assert_eq!(subpopulation(100, 0.1, 1), subpopulation(100, 0.1, 1));
    assert_eq!(
        RobustLeastSquares::new(4, 0.5),
        RobustLeastSquares::new(4, 0.5)
    );
    assert_eq!(
        RobustLeastSquares::sample_xi(10, 1.0, 2),
        RobustLeastSquares::sample_xi(10, 1.0, 2)
    );
}

#[test]
fn circles_training_set_has_the_gap_and_correct_labels() {
    let r0 = std::f64::consts::SQRT_2;
    let tr = circles(2000, true, 0);
    for (row, y) in tr.x.outer_iter().zip(&tr.y) {
        let r = (row[0] * row[0] + row[1] * row[1]).sqrt();
        assert!(r <= r0 / 1.3 || r >= 1.3 * r0, "point in the gap: r = {r}");
        assert_eq!(*y, if r > r0 { 1.0 } else { 0.0 });
    }
    let te = circles(2000, false, 1);
    let in_gap = te.x.outer_iter().filter(|r| {
        let r = (r[0] * r[0] + r[1] * r[1]).sqrt();
        r > r0 / 1.3 && r < 1.3 * r0
    });
    assert!(in_gap.count() > 100, "the test set covers the gap");
}

#[test]
fn gaussian_shift_moves_the_feature_means() {
    let a = gaussian_shift(4000, 3, 2.0, 0.0, 1.0, 0);
    let b = gaussian_shift(4000, 3, 2.0, 1.5, 1.0, 0);
    let mean = |d: &LabelledData| d.x.mean_axis(ndarray::Axis(0)).unwrap();
    let (ma, mb) = (mean(&a), mean(&b));
    for k in 0..3 {
        assert!(ma[k].abs() < 0.1);
        assert!(
            (mb[k] - ma[k] - 1.5).abs() < 1e-9,
            "same seed, shifted by exactly 1.5"
        );
    }
}

#[test]
fn robust_least_squares_erm_solves_its_normal_equations() {
    let p = RobustLeastSquares::new(0, 0.5);
    let xis = RobustLeastSquares::sample_xi(10, 0.0, 1);
    let th = p.erm(&xis).unwrap();
    let f0 = p.mean_loss(&th, &xis);
    // ERM minimises the training loss: any perturbation raises it
    for j in 0..th.len() {
        for s in [-1e-3, 1e-3] {
            let mut t = th.clone();
            t[j] += s;
            assert!(p.mean_loss(&t, &xis) > f0);
        }
    }
    assert!(xis.iter().all(|x| x.abs() <= 0.5));
}

#[test]
fn csv_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let d = subpopulation(50, 0.3, 2);
    let path = dir.path().join("s.csv");
    d.write_csv(&path).unwrap();
    let t = robustflow::io::read_numeric_csv(&path).unwrap();
    assert_eq!(t.columns, vec!["x1", "x2", "target"]);
    assert_eq!(t.values.nrows(), 50);
    for i in 0..50 {
        assert_eq!(t.values[[i, 0]], d.x[[i, 0]]);
        assert_eq!(t.values[[i, 2]], d.y[i]);
    }
}

#[test]
fn subpopulation_minority_has_a_different_boundary() {
    // accuracy of the rule "class 1 iff x_k > 0"
    let rule = |d: &LabelledData, k: usize| -> f64 {
        let hits =
            d.x.outer_iter()
                .zip(&d.y)
                .filter(|(r, y)| (r[k] > 0.0) == (**y == 1.0))
                .count();
        hits as f64 / d.len() as f64
    };
    let majority = subpopulation(4000, 0.0, 5);
    let minority = subpopulation(4000, 1.0, 5);
    // the majority's label is read off x1 ...
    assert!(rule(&majority, 0) > 0.95, "{}", rule(&majority, 0));
    // ... which points the wrong way on the minority, whose label is read off x2
    assert!(rule(&minority, 0) < 0.25, "{}", rule(&minority, 0));
    assert!(rule(&minority, 1) > 0.95, "{}", rule(&minority, 1));
    // classes stay balanced, and the minority proportion is what was asked for
    let mixed = subpopulation(4000, 0.3, 6);
    let ones = mixed.y.iter().filter(|y| **y == 1.0).count();
    assert_eq!(ones, 2000);
    // P(|x2| > 1.25) is 0.994 for a minority point and 0.211 for a majority point
    let far = mixed.x.outer_iter().filter(|r| r[1].abs() > 1.25).count() as f64 / 4000.0;
    assert!((far - (0.3 * 0.9938 + 0.7 * 0.2113)).abs() < 0.03, "{far}");
}
