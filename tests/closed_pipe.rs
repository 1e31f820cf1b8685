//! Writing to a closed pipe (`robustflow train ... | head -1`) ends the process quietly
//! (SIGPIPE at its default action), never with a panic ("failed printing to stdout").

use std::io::Read;
use std::process::{Command, Stdio};

#[test]
fn a_closed_stdout_is_not_a_panic() {
    let out = tempfile::tempdir().unwrap();
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/breast_cancer.csv");
    for _ in 0..3 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_robustflow"))
            .args(["train", "--quiet", "--data", data, "--out"])
            .arg(out.path().join("m"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // close the reading end before the child prints its summary
        drop(child.stdout.take());
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        let status = child.wait().unwrap();
        assert!(!err.contains("panicked"), "stderr: {err}");
        assert_ne!(status.code(), Some(101), "stderr: {err}");
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            // either it finished before noticing, or SIGPIPE ended it
            assert!(
                status.success() || status.signal() == Some(libc::SIGPIPE),
                "status {status:?}, stderr: {err}"
            );
        }
    }
}
