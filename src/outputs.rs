//! Safe outputs: directories written as a unit, and outputs that never overwrite inputs.
//!
//! **Atomic directories** ([`AtomicDir`]). A model directory is a set of files that only
//! make sense together (`model.safetensors` with the `model.json` that describes it). It
//! is written as a whole:
//!
//! 1. every file goes into a fresh temporary directory beside the target,
//!    `.NAME.tmp-PID-NANOS`, and is synced (`fsync`); the directory is synced too;
//! 2. if the target exists it is renamed aside to `.NAME.old-PID-NANOS`;
//! 3. the temporary directory is renamed to the target and the parent directory synced;
//! 4. the old directory is removed.
//!
//! A reader therefore sees the old directory, the new one, or (if the process dies
//! between steps 2 and 3) no directory at all: never a mix of old and new files. Stale
//! `.NAME.tmp-*` / `.NAME.old-*` directories of processes that are no longer running are
//! removed by the next save to the same target. All files get the same mode (the
//! process's default for new files, `0644` under the usual umask). An existing target that
//! holds files other than the ones robustflow writes there is never replaced: that is an
//! error, so a mistyped `--out` cannot delete user data.
//!
//! **Outputs never overwrite inputs** ([`OutputGuard`]). Each command lists its input files
//! and its outputs; an output that is the same file as an input (compared on canonical
//! paths and, on Unix, on device and inode, so symlinks and hard links are caught), or an
//! output directory that would be replaced while holding an input, is an error naming both
//! flags.

use crate::error::{Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Environment variable of the fault-injection test hook: `after-files` aborts the process
/// after the new files are written (before any rename), `after-aside` aborts after the old
/// directory is renamed aside (before the new one is renamed in). For tests only.
pub const FAULT_ENV: &str = "ROBUSTFLOW_TEST_ABORT_SAVE";

fn fault(stage: &str) {
    if std::env::var(FAULT_ENV).is_ok_and(|v| v == stage) {
        eprintln!("{FAULT_ENV}={stage}: aborting the save");
        std::process::abort();
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    // Directories can be opened read-only and fsync'd on Unix; elsewhere this is a no-op.
    #[cfg(unix)]
    {
        let f = std::fs::File::open(dir).map_err(|e| Error::io(dir, e))?;
        f.sync_all().map_err(|e| Error::io(dir, e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{}-{nanos}", std::process::id())
}

/// Whether the process `pid` may still be running (on Linux: `/proc/PID` exists; where
/// that cannot be told, assume it is not, so stale directories are cleaned).
fn pid_alive(pid: u32) -> bool {
    pid == std::process::id()
        || (Path::new("/proc/self").exists() && Path::new(&format!("/proc/{pid}")).exists())
}

/// A directory being written as a unit; see the module documentation.
#[derive(Debug)]
pub struct AtomicDir {
    target: PathBuf,
    tmp: PathBuf,
    allowed: Vec<String>,
    done: bool,
}

impl AtomicDir {
    /// Start writing `target`. `allowed` are the file names robustflow writes there: an
    /// existing target holding anything else is refused (checked now, before any work).
    /// Stale temporaries of dead processes beside the target are removed.
    pub fn begin(target: impl AsRef<Path>, allowed: &[&str]) -> Result<Self> {
        let target = target.as_ref().to_path_buf();
        let name = target
            .file_name()
            .ok_or_else(|| Error::Other(format!("{}: not a directory path", target.display())))?
            .to_string_lossy()
            .to_string();
        let parent = parent_of(&target);
        std::fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
        let allowed: Vec<String> = allowed.iter().map(|s| s.to_string()).collect();
        check_replaceable(&target, &allowed)?;
        clean_stale(&parent, &name);
        let tmp = parent.join(format!(".{name}.tmp-{}", unique_suffix()));
        std::fs::create_dir(&tmp).map_err(|e| Error::io(&tmp, e))?;
        Ok(AtomicDir {
            target,
            tmp,
            allowed,
            done: false,
        })
    }

    /// The temporary directory (files written here by other writers must be synced with
    /// [`AtomicDir::sync_file`]).
    pub fn tmp_path(&self) -> &Path {
        &self.tmp
    }

    /// Write `name` with `bytes` into the temporary directory, synced.
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let p = self.tmp.join(name);
        let mut f = std::fs::File::create(&p).map_err(|e| Error::io(&p, e))?;
        f.write_all(bytes).map_err(|e| Error::io(&p, e))?;
        f.sync_all().map_err(|e| Error::io(&p, e))?;
        Ok(())
    }

    /// Sync a file another writer put into the temporary directory, and give it the mode
    /// of a file this process creates (`like`, a file written with [`AtomicDir::write`]).
    pub fn sync_file(&self, name: &str, like: &str) -> Result<()> {
        let p = self.tmp.join(name);
        let mode = std::fs::metadata(self.tmp.join(like))
            .map_err(|e| Error::io(self.tmp.join(like), e))?
            .permissions();
        std::fs::set_permissions(&p, mode).map_err(|e| Error::io(&p, e))?;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&p)
            .map_err(|e| Error::io(&p, e))?;
        f.sync_all().map_err(|e| Error::io(&p, e))?;
        Ok(())
    }

    /// Put the new directory in place of the target (see the module documentation).
    pub fn commit(mut self) -> Result<()> {
        sync_dir(&self.tmp)?;
        fault("after-files");
        // Re-check: the target may have been created or filled while we wrote.
        check_replaceable(&self.target, &self.allowed)?;
        let parent = parent_of(&self.target);
        let name = self
            .target
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let old = if self.target.exists() {
            let old = parent.join(format!(".{name}.old-{}", unique_suffix()));
            std::fs::rename(&self.target, &old).map_err(|e| Error::io(&self.target, e))?;
            fault("after-aside");
            Some(old)
        } else {
            None
        };
        if let Err(e) = std::fs::rename(&self.tmp, &self.target) {
            // Put the old directory back, best effort.
            if let Some(o) = &old {
                let _ = std::fs::rename(o, &self.target);
            }
            return Err(Error::io(&self.target, e));
        }
        self.done = true;
        sync_dir(&parent)?;
        if let Some(o) = old {
            let _ = std::fs::remove_dir_all(&o);
        }
        Ok(())
    }
}

impl Drop for AtomicDir {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_dir_all(&self.tmp);
        }
    }
}

/// Check, before any work, that a model directory may be written at `target`: it does not
/// exist, or it is a directory holding only the files of a model.
pub fn check_model_dir_target(target: &Path) -> Result<()> {
    let allowed: Vec<String> = ["model.json", "model.safetensors", "report.json"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    check_replaceable(target, &allowed)
}

/// An existing `target` may be replaced when it is a directory holding only `allowed`
/// names (and stale `.*.tmp*` files of older saves).
fn check_replaceable(target: &Path, allowed: &[String]) -> Result<()> {
    let meta = match std::fs::symlink_metadata(target) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(target, e)),
    };
    if !meta.is_dir() {
        return Err(Error::Other(format!(
            "{}: exists and is not a directory; robustflow writes a model directory there",
            target.display()
        )));
    }
    let mut foreign = Vec::new();
    for entry in std::fs::read_dir(target).map_err(|e| Error::io(target, e))? {
        let entry = entry.map_err(|e| Error::io(target, e))?;
        let n = entry.file_name().to_string_lossy().to_string();
        let stale_tmp = n.starts_with('.') && n.contains(".tmp");
        if !allowed.contains(&n) && !stale_tmp {
            foreign.push(n);
        }
    }
    if !foreign.is_empty() {
        foreign.sort();
        return Err(Error::Other(format!(
            "{}: exists and holds files robustflow did not write there ({}); a model directory is replaced as a whole, so choose a new or empty directory",
            target.display(),
            foreign.join(", ")
        )));
    }
    Ok(())
}

/// Remove `.NAME.tmp-PID-*` and `.NAME.old-PID-*` directories of dead processes in `parent`.
fn clean_stale(parent: &Path, name: &str) {
    let Ok(rd) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in rd.flatten() {
        let n = entry.file_name().to_string_lossy().to_string();
        for kind in ["tmp", "old"] {
            let prefix = format!(".{name}.{kind}-");
            if let Some(rest) = n.strip_prefix(&prefix) {
                let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
                if pid.is_some_and(|p| !pid_alive(p)) {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
    }
}

/// One input file of a command, as identified for comparison.
#[derive(Debug, Clone)]
struct Input {
    flag: String,
    path: PathBuf,
    canonical: PathBuf,
    #[cfg(unix)]
    id: Option<(u64, u64)>,
}

/// Refuses outputs that would overwrite inputs; see the module documentation.
#[derive(Debug, Clone, Default)]
pub struct OutputGuard {
    inputs: Vec<Input>,
}

fn canonical_maybe_missing(p: &Path) -> PathBuf {
    if let Ok(c) = p.canonicalize() {
        return c;
    }
    // The file does not exist yet: canonicalise the nearest existing ancestor.
    let mut rest = Vec::new();
    let mut cur = p.to_path_buf();
    loop {
        if let Ok(c) = cur.canonicalize() {
            let mut out = c;
            for r in rest.iter().rev() {
                out.push(r);
            }
            return out;
        }
        match (cur.file_name().map(|n| n.to_os_string()), cur.parent()) {
            (Some(n), Some(par)) => {
                rest.push(n);
                cur = if par.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    par.to_path_buf()
                };
            }
            _ => return p.to_path_buf(),
        }
    }
}

#[cfg(unix)]
fn file_id(p: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()))
}

impl OutputGuard {
    /// An empty guard.
    pub fn new() -> Self {
        Self::default()
    }

    /// Register an input file (or, for a model, each of its files) under its flag.
    pub fn input(mut self, flag: &str, path: impl AsRef<Path>) -> Self {
        let path = path.as_ref().to_path_buf();
        self.inputs.push(Input {
            flag: flag.to_string(),
            canonical: canonical_maybe_missing(&path),
            #[cfg(unix)]
            id: file_id(&path),
            path,
        });
        self
    }

    /// Register the files of a model directory as inputs of `flag`.
    pub fn model_dir(self, flag: &str, dir: impl AsRef<Path>) -> Self {
        let dir = dir.as_ref();
        ["model.json", "model.safetensors", "report.json"]
            .iter()
            .fold(self, |g, f| g.input(flag, dir.join(f)))
    }

    fn clash(&self, flag: &str, out: &Path, inp: &Input, how: &str) -> Error {
        Error::param(
            flag,
            out.display(),
            &format!(
                "{how} the input `--{}` {}; choose another output path",
                inp.flag,
                inp.path.display()
            ),
        )
    }

    /// Check one output file of `flag`.
    pub fn file(&self, flag: &str, out: impl AsRef<Path>) -> Result<()> {
        let out = out.as_ref();
        let c = canonical_maybe_missing(out);
        #[cfg(unix)]
        let oid = file_id(out);
        for inp in &self.inputs {
            #[cfg(unix)]
            let same_id = oid.is_some() && oid == inp.id;
            #[cfg(not(unix))]
            let same_id = false;
            if c == inp.canonical || same_id {
                return Err(self.clash(flag, out, inp, "would overwrite"));
            }
        }
        Ok(())
    }

    /// Check an output directory of `flag` that is replaced as a whole: no input may lie
    /// inside it.
    pub fn replaced_dir(&self, flag: &str, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        let c = canonical_maybe_missing(dir);
        for inp in &self.inputs {
            if inp.canonical.starts_with(&c) {
                return Err(self.clash(flag, dir, inp, "would replace a directory holding"));
            }
        }
        Ok(())
    }

    /// Check the files a command writes into the directory `dir` of `flag`: each
    /// `(prefix, suffix)` pattern matches the written names `prefix*suffix`.
    pub fn files_in(
        &self,
        flag: &str,
        dir: impl AsRef<Path>,
        patterns: &[(&str, &str)],
    ) -> Result<()> {
        let dir = dir.as_ref();
        let c = canonical_maybe_missing(dir);
        for inp in &self.inputs {
            let (Some(parent), Some(name)) = (inp.canonical.parent(), inp.canonical.file_name())
            else {
                continue;
            };
            let name = name.to_string_lossy();
            if parent == c
                && patterns.iter().any(|(p, s)| {
                    name.len() >= p.len() + s.len() && name.starts_with(p) && name.ends_with(s)
                })
            {
                return Err(self.clash(flag, &dir.join(&*name), inp, "would overwrite"));
            }
        }
        Ok(())
    }

    /// Check several output files at once, and that they are distinct from each other.
    pub fn files(&self, outs: &[(&str, &Path)]) -> Result<()> {
        for (k, (flag, p)) in outs.iter().enumerate() {
            self.file(flag, p)?;
            for (flag2, q) in &outs[..k] {
                if canonical_maybe_missing(p) == canonical_maybe_missing(q) {
                    return Err(Error::param(
                        flag,
                        p.display(),
                        &format!("is also the output `--{flag2}`; give distinct output paths"),
                    ));
                }
            }
        }
        Ok(())
    }
}
