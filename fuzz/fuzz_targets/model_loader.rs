//! Arbitrary bytes as a model directory: the input is `[len_lo, len_hi, model.json
//! (len bytes), model.safetensors (the rest)]`. Loading returns `Ok` or `Err`, never
//! panics or aborts; an accepted model can be run.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let n = (u16::from_le_bytes([data[0], data[1]]) as usize).min(data.len() - 2);
    let (json, st) = data[2..].split_at(n);
    let dir = Path::new("fuzz-model");
    let _ = robustflow::model::ModelFile::parse(json, &dir.join("model.json"));
    if let Ok(m) = robustflow::train::TrainedModel::from_bytes(json, st, None, dir) {
        let d = m.model.arch.input_dim;
        if d <= 4096 {
            let x = vec![0.5; 2 * d];
            let p = m.model.outputs(&x).expect("a validated model runs");
            assert_eq!(p.len(), 2);
        }
    }
});
