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
        let src: Vec<String> = (0..4)
            .map(|j| t.cell(d.train.rows[i] - 1, j).into_owned())
            .collect();
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
        .map(|&r| t.cell(r - 1, 0).parse::<f64>().unwrap())
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
        assert!((y * s + m - t.cell(i, 1).parse::<f64>().unwrap()).abs() < 1e-9);
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

#[test]
fn separate_test_file_uses_the_training_schema() {
    let t = table("mixed.csv", MIXED);
    let t2 = table(
        "test.csv",
        "label,size,colour,age\nyes,3,red,100.0\nno,1,blue,-50.0\n",
    );
    let d = load_tables(&t, Some(&t2), &LoadOptions::default()).unwrap();
    assert_eq!(d.train.len(), 12, "no split: every row trains");
    assert_eq!(d.test.len(), 2);
    let s = &d.schema;
    // age standardised with the training mean and std (6.5, sqrt(143/12)).
    let sd = (143.0f64 / 12.0).sqrt();
    assert!((d.test.x[0] - (100.0 - 6.5) / sd).abs() < 1e-12);
    assert_eq!(s.label_name(d.test.y[0]), "yes");
    let bad = table("bad.csv", "label,size,colour,age\nyes,3,violet,1\n");
    let e = err_string(load_tables(&t, Some(&bad), &LoadOptions::default()).unwrap_err());
    assert!(
        e.contains("bad.csv") && e.contains("row 1") && e.contains("colour"),
        "{e}"
    );
}

fn no_split() -> LoadOptions {
    LoadOptions {
        test_fraction: 0.0,
        ..Default::default()
    }
}

#[test]
fn numeric_labels_are_one_class_per_value() {
    // `1`, `1.0`, `01` and `1e0` are one class, written `1`; classes sort numerically.
    let t = table(
        "l.csv",
        "a,y\n1,1\n2,1.0\n3,01\n4,1e0\n5,0\n6,0.0\n7,2.5\n8,10.5\n",
    );
    let d = load_tables(&t, None, &no_split()).unwrap();
    assert_eq!(d.schema.classes, vec!["0", "1", "2.5", "10.5"]);
    assert_eq!(d.train.y, vec![1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 2.0, 3.0]);
    // At prediction time too, any spelling of a value finds its class.
    let new = table("n.csv", "a,y\n1,1.00\n2,+0\n3,2.50\n");
    assert_eq!(d.schema.apply(&new).unwrap().y, vec![1.0, 0.0, 2.0]);
    // Text labels stay text (exact match), sorted by name.
    let t = table("s.csv", "a,y\n1,b\n2,a\n3,B\n4,a\n");
    let d = load_tables(&t, None, &no_split()).unwrap();
    assert_eq!(d.schema.classes, vec!["B", "a", "b"]);
}

#[test]
fn column_types_follow_the_rule_and_the_flags() {
    // All numbers: numeric; no numbers: categorical; mixed: an error (tests/bad_input.rs).
    let text = "n,c,k,y\n1,red,1,0\n2,blue,2,1\n3,red,1.0,0\n4,blue,02,1\n";
    let t = table("k.csv", text);
    let d = load_tables(&t, None, &no_split()).unwrap();
    assert_eq!(d.schema.features, vec!["n", "c=blue", "c=red", "k"]);
    // --categorical k: one indicator per value (1 and 1.0 are one category); --numeric n.
    let opts = LoadOptions {
        categorical: vec!["k".into()],
        numeric: vec!["n".into()],
        ..no_split()
    };
    let d = load_tables(&t, None, &opts).unwrap();
    assert_eq!(
        d.schema.features,
        vec!["n", "c=blue", "c=red", "k=1", "k=2"]
    );
    // Declared categorical, a column of numbers and text is fine.
    let t = table("m.csv", "a,z,y\n1,1,0\n2,x,1\n3,1.0,0\n4,x,1\n");
    let d = load_tables(
        &t,
        None,
        &LoadOptions {
            categorical: vec!["z".into()],
            ..no_split()
        },
    )
    .unwrap();
    assert_eq!(d.schema.features, vec!["a", "z=1", "z=x"]);
    // The options survive JSON, and options saved before they existed still load.
    let js = serde_json::to_string(&opts).unwrap();
    assert_eq!(serde_json::from_str::<LoadOptions>(&js).unwrap(), opts);
    let old = r#"{"target":null,"task":null,"impute":null,"drop_constant":false,
        "test_fraction":0.25,"val_fraction":0.0,"test_file":null,"seed":0}"#;
    let o: LoadOptions = serde_json::from_str(old).unwrap();
    assert!(o.categorical.is_empty() && o.numeric.is_empty());
}

#[test]
fn dialects_load_to_the_same_dataset() {
    let plain = "a,colour,y\n1.5,red,0\n2,blue,1\n-3,red,0\n4,green,1\n5,blue,0\n6,red,1\n";
    let base = load_tables(&table("p.csv", plain), None, &LoadOptions::default()).unwrap();
    let crlf = plain.replace('\n', "\r\n");
    let bom = format!("\u{feff}{plain}");
    let quoted = "\"a\",\"colour\",\"y\"\n\"1.5\",\"red\",0\n2,\"blue\",1\n-3,red,0\n\n4, green ,1\n5,blue,\"0\"\n6,red,1";
    for text in [crlf.as_str(), bom.as_str(), quoted] {
        let d = load_tables(&table("q.csv", text), None, &LoadOptions::default()).unwrap();
        assert_eq!(d.schema, base.schema, "{text:?}");
        assert_eq!((&d.train, &d.test), (&base.train, &base.test), "{text:?}");
    }
    // Unicode headers name the features.
    let d = load_tables(
        &table(
            "u.csv",
            "größe,farbe,y\n1,rot,0\n2,blau,1\n3,rot,0\n4,blau,1\n",
        ),
        None,
        &no_split(),
    )
    .unwrap();
    assert_eq!(d.schema.features, vec!["größe", "farbe=blau", "farbe=rot"]);
}

#[test]
fn old_model_schemas_load_and_match_numbers_by_value() {
    // A schema as written before labels and categories were normalised: classes "0.0" /
    // "1.0", a category "01".
    let old = r#"{"target":"y","task":"classification",
        "columns":[{"name":"a","encoder":{"type":"numeric","fill":null}},
                   {"name":"k","encoder":{"type":"onehot","categories":["01","x"],"fill":null}}],
        "dropped":[],"features":["a","k=01","k=x"],"mean":[2.0,0.5,0.5],"std":[1.0,0.5,0.5],
        "classes":["0.0","1.0"],"target_scale":null,"impute":null}"#;
    let s: robustflow::data::Schema = serde_json::from_str(old).unwrap();
    let t = table("n.csv", "a,k,y\n1,1,1\n3,x,0.0\n2,01,1.0\n");
    let d = s.apply(&t).unwrap();
    assert_eq!(d.y, vec![1.0, 0.0, 1.0]);
    assert_eq!(d.x, vec![-1.0, 1.0, -1.0, 1.0, -1.0, 1.0, 0.0, 1.0, -1.0]);
    // A schema whose scaler is shorter than its features is an error, not a panic.
    let mut bad = s.clone();
    bad.std.pop();
    let e = err_string(bad.apply(&t).unwrap_err());
    assert!(e.contains("2 standard deviations for 3 features"), "{e}");
    let mut bad = s;
    bad.mean[0] = f64::NAN;
    assert!(bad.apply(&t).is_err());
}

#[test]
fn mean_std_is_stable_and_matches_the_two_pass_formula() {
    use robustflow::data::mean_std;
    let v: Vec<f64> = (0..1000)
        .map(|i| ((i * 37 % 101) as f64).sin() * 3.0 + 1.0)
        .collect();
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let s = (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n).sqrt();
    let (m2, s2) = mean_std(&v);
    assert!((m - m2).abs() < 1e-12 && (s - s2).abs() < 1e-12);
    // Scaling the data scales the result, up to the edge of f64 (no overflow).
    for c in [1e150, 1e200, 1e300, -1e307] {
        let w: Vec<f64> = v.iter().map(|x| x * c).collect();
        let (mc, sc) = mean_std(&w);
        assert!(mc.is_finite() && sc.is_finite(), "{c}");
        assert!((mc / c - m).abs() < 1e-9 * m.abs().max(1.0), "{c}: {mc}");
        assert!((sc / c.abs() - s).abs() < 1e-9 * s, "{c}: {sc}");
    }
}

#[test]
fn headerless_file_at_prediction_time_is_named() {
    let t = table("mixed.csv", MIXED);
    let d = load_tables(&t, None, &no_split()).unwrap();
    let new = table("noheader.csv", "1.0,red,3,yes\n2.0,blue,1,no\n");
    let e = err_string(d.schema.apply(&new).unwrap_err());
    assert!(
        e.contains("noheader.csv") && e.contains("not a header") && e.contains("row 0"),
        "{e}"
    );
}

/// The loader against a direct computation on a random numeric table: train-only mean and
/// standard deviation, z-scores, labels, rows.
#[test]
fn loader_matches_a_direct_computation() {
    let mut text = String::from("f1,f2,f3,y\n");
    let mut raw = Vec::new();
    let mut state = 12345u64;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 11) as f64 / (1u64 << 53) as f64) * 20.0 - 10.0
    };
    for i in 0..200 {
        let r = [next(), next() * 1e6, next() * 1e-6];
        text.push_str(&format!("{:e},{:e},{:e},{}\n", r[0], r[1], r[2], i % 3));
        raw.push((r, i % 3));
    }
    let t = table("rand.csv", &text);
    let d = load_tables(
        &t,
        None,
        &LoadOptions {
            test_fraction: 0.3,
            seed: 7,
            ..Default::default()
        },
    )
    .unwrap();
    let rows: Vec<usize> = d.train.rows.iter().map(|r| r - 1).collect();
    for j in 0..3 {
        let v: Vec<f64> = rows.iter().map(|&i| raw[i].0[j]).collect();
        let n = v.len() as f64;
        let m = v.iter().sum::<f64>() / n;
        let s = (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n).sqrt();
        assert!((d.schema.mean[j] - m).abs() <= 1e-12 * s, "mean {j}");
        assert!((d.schema.std[j] - s).abs() <= 1e-12 * s, "std {j}");
        for (k, &i) in rows.iter().enumerate() {
            let z = (raw[i].0[j] - m) / s;
            assert!((d.train.x[k * 3 + j] - z).abs() < 1e-9, "z {i} {j}");
        }
    }
    for (k, &i) in rows.iter().enumerate() {
        assert_eq!(d.train.y[k], raw[i].1 as f64);
    }
    assert_eq!(d.train.len() + d.test.len(), 200);
}
