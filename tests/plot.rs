//! Plots render to valid PNG files (signature checked) without system fonts.
use robustflow::plot::{line_chart, scatter_weighted, Background, Series, WeightedPoints};

fn is_png(p: &std::path::Path) -> bool {
    let b = std::fs::read(p).unwrap();
    b.len() > 1000 && b[..8] == [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]
}

#[test]
fn line_and_scatter_plots_write_png() {
    let dir = tempfile::tempdir().unwrap();
    let p1 = dir.path().join("curves.png");
    let s = vec![
        Series {
            name: "a".into(),
            points: (0..50)
                .map(|i| (i as f64, (-0.1 * i as f64).exp()))
                .collect(),
        },
        Series {
            name: "b".into(),
            points: (0..50)
                .map(|i| (i as f64, 1.0 / (1.0 + i as f64)))
                .collect(),
        },
    ];
    line_chart(&p1, "test", "updates", "MMD^2", &s, true).unwrap();
    assert!(is_png(&p1));
    let p2 = dir.path().join("particles.png");
    let pts = WeightedPoints {
        name: "mu".into(),
        points: vec![(0.0, 0.0, 0.5), (1.0, 1.0, 0.5), (2.0, 0.0, 0.0)],
        fixed_size: false,
    };
    let f = |x: f64, y: f64| (-(x * x + y * y) / 2.0).exp();
    scatter_weighted(
        &p2,
        "particles",
        &[pts],
        Some(Background {
            f: &f,
            resolution: 40,
        }),
        None,
    )
    .unwrap();
    assert!(is_png(&p2));
    if let Ok(d) = std::env::var("ROBUSTFLOW_PLOT_DIR") {
        std::fs::copy(&p1, format!("{d}/curves.png")).unwrap();
        std::fs::copy(&p2, format!("{d}/particles.png")).unwrap();
    }
}
