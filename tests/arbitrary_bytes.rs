//! Property tests (issue 16): arbitrary bytes as a CSV file, as `model.json` or as
//! `model.safetensors` make the loaders return an error (or, for bytes that happen to be a
//! valid file, a well-formed result), never panic. A panic fails the test: the property
//! is the returned `Result`, not a caught unwind.

use proptest::prelude::*;
use robustflow::data::RawTable;
use robustflow::io::read_numeric_csv;
use robustflow::model::{Architecture, Model, ModelFile, ModelKind};
use robustflow::train::TrainedModel;
use std::path::Path;
use std::sync::OnceLock;

/// The three files of a small valid model directory (trained through the library).
fn valid_model() -> &'static (Vec<u8>, Vec<u8>, Vec<u8>) {
    static M: OnceLock<(Vec<u8>, Vec<u8>, Vec<u8>)> = OnceLock::new();
    M.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("d.csv");
        let mut s = String::from("a,b,colour,y\n");
        for i in 0..24 {
            let c = i % 2;
            s.push_str(&format!(
                "{},{},{},{}\n",
                i as f64 * 0.1 + c as f64,
                (i * 7 % 5) as f64,
                ["red", "blue", "green"][i % 3],
                c
            ));
        }
        std::fs::write(&csv, s).unwrap();
        let data = robustflow::data::load(&csv, &robustflow::data::LoadOptions::default()).unwrap();
        let params = robustflow::train::TrainParams::default()
            .epochs(1)
            .quiet(true)
            .validate()
            .unwrap();
        let t = robustflow::train::Trainer::new(params).fit(&data).unwrap();
        let out = dir.path().join("m");
        t.save(&out).unwrap();
        let r = |f: &str| std::fs::read(out.join(f)).unwrap();
        (r("model.json"), r("model.safetensors"), r("report.json"))
    })
}

fn dir() -> &'static Path {
    Path::new("prop-model")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Arbitrary bytes as a CSV: `Err`, or a table whose shape and values are consistent.
    #[test]
    fn arbitrary_bytes_as_csv(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.csv");
        std::fs::write(&p, &bytes).unwrap();
        match read_numeric_csv(&p) {
            Ok(t) => {
                prop_assert_eq!(t.columns.len(), t.values.ncols());
                prop_assert!(t.values.nrows() >= 1);
                prop_assert!(t.values.iter().all(|v| v.is_finite()));
            }
            Err(e) => prop_assert!(e.to_string().contains("x.csv"), "{}", e),
        }
        if let Ok(text) = std::str::from_utf8(&bytes) {
            match RawTable::parse(&p, text) {
                Ok(t) => {
                    prop_assert!(t.n_rows() >= 1);
                    prop_assert!(!t.columns.is_empty());
                    // every cell of the table can be read back (no out-of-range storage)
                    for i in 0..t.n_rows() {
                        for j in 0..t.columns.len() {
                            let _ = t.cell(i, j);
                        }
                    }
                }
                Err(e) => prop_assert!(e.to_string().contains("x.csv"), "{}", e),
            }
        }
    }

    /// Text made of CSV-ish pieces (delimiters, quotes, numbers, NA tokens, newlines): the
    /// same property on inputs much closer to real files.
    #[test]
    fn csvish_text(pieces in proptest::collection::vec(
        prop_oneof![
            Just(","), Just(";"), Just("\t"), Just("\""), Just("\n"), Just("\r\n"),
            Just("1"), Just("-2.5e3"), Just("1e400"), Just("NA"), Just("nan"), Just("abc"),
            Just("\u{feff}"), Just(" "), Just("é"), Just("0"),
        ], 0..60)) {
        let text: String = pieces.concat();
        let p = Path::new("y.csv");
        if let Ok(t) = robustflow::io::parse_numeric_csv(&text, p) {
            prop_assert!(t.values.iter().all(|v| v.is_finite()));
        }
        if let Ok(t) = RawTable::parse(p, &text) {
            prop_assert!(t.n_rows() >= 1);
            for i in 0..t.n_rows() {
                for j in 0..t.columns.len() {
                    let _ = t.cell(i, j);
                }
            }
        }
    }

    /// Arbitrary bytes as `model.json`: always `Err` (naming the file).
    #[test]
    fn arbitrary_bytes_as_model_json(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let (_, st, _) = valid_model();
        let e = ModelFile::parse(&bytes, &dir().join("model.json")).unwrap_err();
        prop_assert!(e.to_string().contains("model.json"), "{}", e);
        let e = TrainedModel::from_bytes(&bytes, st, None, dir()).unwrap_err();
        prop_assert!(e.to_string().contains("model.json"), "{}", e);
    }

    /// A valid `model.json` with one byte replaced, or truncated: `Err` naming the file,
    /// or a model that passed every check (its outputs have the right shape).
    #[test]
    fn mutated_model_json(pos in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<bool>()) {
        let (json, st, _) = valid_model();
        let mut j = json.clone();
        let i = pos.index(j.len());
        if cut { j.truncate(i) } else { j[i] = byte }
        match TrainedModel::from_bytes(&j, st, None, dir()) {
            Ok(m) => {
                let d = m.model.arch.input_dim;
                prop_assert_eq!(m.schema.mean.len(), d);
                prop_assert_eq!(m.schema.std.len(), d);
                prop_assert!(m.schema.std.iter().all(|s| s.is_finite() && *s > 0.0));
                let out = m.model.outputs(&vec![0.1; 3 * d]).unwrap();
                prop_assert_eq!(out.len(), 3);
            }
            Err(e) => prop_assert!(e.to_string().contains("prop-model"), "{}", e),
        }
    }

    /// Arbitrary bytes as `model.safetensors`: always `Err` naming the file.
    #[test]
    fn arbitrary_bytes_as_safetensors(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let (json, _, _) = valid_model();
        let e = TrainedModel::from_bytes(json, &bytes, None, dir()).unwrap_err();
        prop_assert!(e.to_string().contains("model.safetensors"), "{}", e);
    }

    /// A valid `model.safetensors` with bytes replaced, or truncated: a truncation is
    /// always an error naming the file; a replaced byte gives an error or a model whose
    /// weights are all finite.
    #[test]
    fn mutated_safetensors(pos in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<bool>()) {
        let (json, st, _) = valid_model();
        let mut s = st.clone();
        let i = pos.index(s.len());
        if cut { s.truncate(i) } else { s[i] = byte }
        match TrainedModel::from_bytes(json, &s, None, dir()) {
            Ok(m) => {
                prop_assert!(!cut);
                prop_assert!(m.model.params_flat().unwrap().iter().all(|v| v.is_finite()));
            }
            Err(e) => prop_assert!(e.to_string().contains("model.safetensors"), "{}", e),
        }
    }

    /// Arbitrary bytes as `report.json` of an otherwise valid model: `Err` naming it.
    #[test]
    fn arbitrary_bytes_as_report(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let (json, st, _) = valid_model();
        let e = TrainedModel::from_bytes(json, st, Some(&bytes), dir()).unwrap_err();
        prop_assert!(e.to_string().contains("report.json"), "{}", e);
    }
}

/// The valid files round-trip (so the properties above start from a real model), and the
/// library refuses an architecture beyond the budget before allocating.
#[test]
fn valid_model_loads_and_budget_holds() {
    let (json, st, report) = valid_model();
    let m = TrainedModel::from_bytes(json, st, Some(report), dir()).unwrap();
    assert_eq!(m.model.arch.input_dim, m.schema.features.len());
    let e = Architecture::new(
        ModelKind::Mlp,
        1 << 20,
        Some(2),
        &[1 << 10],
        robustflow::model::Activation::Elu,
    )
    .unwrap_err();
    assert!(e.to_string().contains("memory budget"), "{e}");
    // A model built by hand with an architecture never checked by `Architecture::new`
    // is still refused by the safetensors loader.
    let mut arch = Architecture::new(
        ModelKind::Logistic,
        2,
        Some(2),
        &[],
        robustflow::model::Activation::Elu,
    )
    .unwrap();
    arch.input_dim = usize::MAX;
    let e = Model::from_safetensors(arch, st, Path::new("x/model.safetensors")).unwrap_err();
    assert!(e.to_string().contains("memory budget"), "{e}");
}
