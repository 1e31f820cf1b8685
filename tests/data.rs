//! Data loading: encoders round-trip, train-only scaling, stratified splits, clear errors.

use robustflow::data::{load_tables, stratified_split, Impute, LoadOptions, RawTable, Shift, Task};
use robustflow::Error;
use std::path::Path;

fn table(name: &str, text: &str) -> RawTable {
    RawTable::parse(Path::new(name), text).unwrap()
}

fn err_string(e: Error) -> String {
    format!("{e}")
}

const MIXED: &str = "age,colour,size,label\n\
1.0,red,3,yes\n2.0,blue,1,no\n3.0,green,4,yes\n4.0,red,1,no\n5.0,blue,5,yes\n6.0,green,9,no\n\
7.0,red,2,yes\n8.0,blue,6,no\n9.0,green,5,yes\n10.0,red,3,no\n11.0,blue,5,yes\n12.0,green,8,no\n";

#[test]
fn one_hot_and_label_maps_round_trip() {
    let t = table("mixed.csv", MIXED);
    let opts = LoadOptions {
        test_fraction: 0.0,
        ..LoadOptions::default()
    };
    let d = load_tables(&t, None, &opts).unwrap();
    let s = &d.schema;
    assert_eq!(s.target, "label");
    assert_eq!(s.classes, vec!["no".to_string(), "yes".to_string()]);
    assert_eq!(
        s.features,
        vec!["age", "colour=blue", "colour=green", "colour=red", "size"]
    );
    // Undo the scaling and decode every row back to its text.
    for (i, row) in d.train.x.chunks(d.train.d).enumerate() {
        let raw: Vec<f64> = row
            .iter()
            .zip(s.mean.iter().zip(&s.std))
            .map(|(v, (m, sd))| v * sd + m)
            .collect();
        let src = &t.rows[d.train.rows[i] - 1];
        assert!((raw[0] - src[0].parse::<f64>().unwrap()).abs() < 1e-12);
        let cats = ["blue", "green", "red"];
        let hot: Vec<usize> = (0..3)
            .filter(|&k| (raw[1 + k] - 1.0).abs() < 1e-9)
            .collect();
        assert_eq!(hot.len(), 1, "exactly one indicator is hot");
        for k in 0..3 {
            assert!(raw[1 + k].abs() < 1e-9 || (raw[1 + k] - 1.0).abs() < 1e-9);
        }
        assert_eq!(cats[hot[0]], src[1]);
        assert_eq!(s.label_name(d.train.y[i]), src[3]);
    }
    // The schema survives JSON and re-encodes the same file identically.
    let js = serde_json::to_string(s).unwrap();
    let s2: robustflow::data::Schema = serde_json::from_str(&js).unwrap();
    assert_eq!(&s2, s);
    let again = s2.apply(&t).unwrap();
    assert_eq!(again.x, d.train.x);
    assert_eq!(again.y, d.train.y);
}

#[test]
fn integer_labels_are_ordered_numerically() {
    let t = table("i.csv", "a,y\n1,10\n2,2\n3,10\n4,2\n5,1\n6,1\n");
    let d = load_tables(
        &t,
        None,
        &LoadOptions {
            test_fraction: 0.0,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(d.schema.classes, vec!["1", "2", "10"]);
}

#[test]
fn scaler_is_fitted_on_train_only() {
    // A strong trend in the feature so the test part has a different mean.
    let mut s = String::from("x,y\n");
    for i in 0..100 {
        s.push_str(&format!("{},{}\n", (i * i) as f64 / 10.0, i % 2));
    }
    let t = table("trend.csv", &s);
    let d = load_tables(
        &t,
        None,
        &LoadOptions {
            test_fraction: 0.3,
            seed: 3,
            ..Default::default()
        },
    )
    .unwrap();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let tr = mean(&d.train.x);
    let te = mean(&d.test.x);
    let sd =
        (d.train.x.iter().map(|v| (v - tr).powi(2)).sum::<f64>() / d.train.len() as f64).sqrt();
    assert!(tr.abs() < 1e-12, "train mean {tr}");
    assert!((sd - 1.0).abs() < 1e-12, "train std {sd}");
    assert!(te.abs() > 1e-3, "test mean is not forced to 0: {te}");
    // The saved mean is the mean of the training rows only.
    let raw_train: Vec<f64> = d
        .train
        .rows
        .iter()
        .map(|&r| t.rows[r - 1][0].parse::<f64>().unwrap())
        .collect();
    assert!((d.schema.mean[0] - mean(&raw_train)).abs() < 1e-9);
}

#[test]
fn stratified_split_keeps_proportions() {
    // 3 unbalanced classes.
    let labels: Vec<usize> = (0..200)
        .map(|i| {
            if i < 120 {
                0
            } else if i < 170 {
                1
            } else {
                2
            }
        })
        .collect();
    for seed in 0..5 {
        for frac in [0.2, 0.25, 0.33] {
            let (a, b) = stratified_split(Some(&labels), labels.len(), frac, seed);
            assert_eq!(a.len() + b.len(), 200);
            for c in 0..3 {
                let n_c = labels.iter().filter(|&&l| l == c).count() as f64;
                let in_b = b.iter().filter(|&&i| labels[i] == c).count() as f64;
                assert!(
                    (in_b - frac * n_c).abs() <= 1.0,
                    "class {c}: {in_b} vs {}",
                    frac * n_c
                );
            }
            let (a2, b2) = stratified_split(Some(&labels), labels.len(), frac, seed);
            assert_eq!((a, b), (a2, b2), "seeded");
        }
    }
}

#[test]
fn missing_values_are_an_error_naming_rows_and_columns() {
    let t = table(
        "m.csv",
        "a,b,y\n1,2,0\n2,,1\n3,NA,0\n4,5,1\nNaN,1,0\n6,2,1\n",
    );
    let e = err_string(load_tables(&t, None, &LoadOptions::default()).unwrap_err());
    assert!(e.contains("m.csv"), "{e}");
    assert!(e.contains("row 2"), "{e}");
    assert!(e.contains("column 2 (b)"), "{e}");
    assert!(e.contains("row 3 column 2 (b)"), "{e}");
    assert!(e.contains("row 5 column 1 (a)"), "{e}");
    assert!(e.contains("3 missing"), "{e}");
    // Impute mean: the filled value is the training mean of the column.
    let d = load_tables(
        &t,
        None,
        &LoadOptions {
            impute: Some(Impute::Mean),
            test_fraction: 0.0,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(d.train.len(), 6);
    // Impute drop: three rows go.
    let d = load_tables(
        &t,
        None,
        &LoadOptions {
            impute: Some(Impute::Drop),
            test_fraction: 0.0,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(d.train.rows, vec![1, 4, 6]);
}

#[test]
fn unknown_category_at_prediction_time_is_an_error() {
    let t = table("mixed.csv", MIXED);
    let d = load_tables(
        &t,
        None,
        &LoadOptions {
            test_fraction: 0.0,
            ..Default::default()
        },
    )
    .unwrap();
    let new = table(
        "new.csv",
        "age,colour,size,label\n1.0,red,3,yes\n2.0,purple,1,no\n",
    );
    let e = err_string(d.schema.apply(&new).unwrap_err());
    assert!(e.contains("new.csv"), "{e}");
    assert!(e.contains("row 2"), "{e}");
    assert!(e.contains("column 2 (colour)"), "{e}");
    assert!(e.contains("unknown category \"purple\""), "{e}");
    let new = table("new.csv", "age,colour,size,label\n1.0,red,3,maybe\n");
    let e = err_string(d.schema.apply(&new).unwrap_err());
    assert!(
        e.contains("unknown label \"maybe\"") && e.contains("row 1"),
        "{e}"
    );
}

#[test]
fn missing_or_renamed_column_at_prediction_time_is_an_error() {
    let t = table("mixed.csv", MIXED);
    let d = load_tables(
        &t,
        None,
        &LoadOptions {
            test_fraction: 0.0,
            ..Default::default()
        },
    )
    .unwrap();
    let new = table("renamed.csv", "age,color,size,label\n1.0,red,3,yes\n");
    let e = err_string(d.schema.apply(&new).unwrap_err());
    assert!(
        e.contains("renamed.csv") && e.contains("colour") && e.contains("missing"),
        "{e}"
    );
    // Column order does not matter; extra columns are ignored.
    let new = table(
        "reorder.csv",
        "size,label,extra,colour,age\n3,yes,zz,red,1.0\n",
    );
    let a = d.schema.apply(&new).unwrap();
    let b = d
        .schema
        .apply(&table("x.csv", "age,colour,size,label\n1.0,red,3,yes\n"))
        .unwrap();
    assert_eq!(a.x, b.x);
}

#[test]
fn constant_column_is_an_error_or_dropped() {
    let t = table("c.csv", "a,k,y\n1,7,0\n2,7,1\n3,7,0\n4,7,1\n5,7,0\n6,7,1\n");
    let e = err_string(load_tables(&t, None, &LoadOptions::default()).unwrap_err());
    assert!(
        e.contains("c.csv") && e.contains("column 2 (k)") && e.contains("constant"),
        "{e}"
    );
    let d = load_tables(
        &t,
        None,
        &LoadOptions {
            drop_constant: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(d.schema.features, vec!["a"]);
    assert_eq!(d.schema.dropped, vec!["k"]);
}

#[test]
fn one_class_only_is_an_error() {
    let t = table("one.csv", "a,y\n1,cat\n2,cat\n3,cat\n");
    let e = err_string(load_tables(&t, None, &LoadOptions::default()).unwrap_err());
    assert!(
        e.contains("one.csv") && e.contains("column 2 (y)") && e.contains("one class"),
        "{e}"
    );
}

#[test]
fn nonexistent_target_is_an_error() {
    let t = table("t.csv", "a,b,y\n1,2,0\n2,3,1\n");
    let e = err_string(
        load_tables(
            &t,
            None,
            &LoadOptions {
                target: Some("label".into()),
                ..Default::default()
            },
        )
        .unwrap_err(),
    );
    assert!(
        e.contains("t.csv") && e.contains("\"label\"") && e.contains("not found"),
        "{e}"
    );
    assert!(e.contains("a,b,y"), "lists the columns: {e}");
}

#[test]
fn regression_target_is_standardised_and_restored() {
    let t = table("r.csv", "a,y\n1,10\n2,20\n3,30\n4,40\n");
    let d = load_tables(
        &t,
        None,
        &LoadOptions {
            task: Some(Task::Regression),
            test_fraction: 0.0,
            ..Default::default()
        },
    )
    .unwrap();
    let (m, s) = d.schema.target_scale.unwrap();
    assert!((m - 25.0).abs() < 1e-12);
    for (i, &y) in d.train.y.iter().enumerate() {
        assert!((y * s + m - t.rows[i][1].parse::<f64>().unwrap()).abs() < 1e-9);
    }
}

#[test]
fn shift_moves_means_and_scales() {
    let f = vec!["a".to_string(), "b".to_string()];
    let s = Shift::parse("*+0.5,b*2", &f).unwrap();
    let mut x = vec![0.0, 1.0, -1.0, 2.0];
    s.apply(&mut x);
    assert_eq!(x, vec![0.5, 2.5, -0.5, 4.5]);
    assert!(Shift::parse("zz+1", &f).is_err());
    assert!(Shift::parse("a^2", &f).is_err());
}
