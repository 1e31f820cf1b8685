//! Progress bars on stderr: one constructor for every long-running loop (flow steps,
//! training epochs, benchmark cells). A bar is hidden when `quiet` is set or stderr is
//! not a terminal, so piped and CI output carries no control characters.

use std::io::IsTerminal;

/// A progress bar of `len` units drawn with the indicatif `template` (its `{bar}` drawn
/// with `=> `), or a hidden one when `quiet` is set or stderr is not a terminal.
pub fn bar(len: u64, template: &str, quiet: bool) -> indicatif::ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let b = indicatif::ProgressBar::new(len);
    if let Ok(s) = indicatif::ProgressStyle::with_template(template) {
        b.set_style(s.progress_chars("=> "));
    }
    b
}
