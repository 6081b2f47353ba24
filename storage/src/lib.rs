//! spotenc-storage: where a job's objects live, input and output checks,
//! the atomic commit, and cleanup.
//!
//! Layout:
//! - this file: file paths, input/output checks, the commit and cleanup.
//! - [`object`]: the object-store trait with its file and S3 ([`s3`])
//!   implementations and their shared contract suite (`contract`, against
//!   a real Garage server).
//! - [`broker`]: presigned URLs for each lease's `s3://` objects (workers
//!   hold no credentials), and what touches storage with credentials.
//!
//! Intermediate objects live under the job's work directory. The stitched
//! output is written beside the final path under a hidden temporary name and
//! renamed onto it, so nobody ever sees a partial output at the final path;
//! a failed job removes its temporaries and leaves the final path alone.

#![forbid(unsafe_code)]

pub mod broker;
pub mod object;
pub mod s3;

#[cfg(test)]
pub(crate) mod contract;

use std::path::{Component, Path, PathBuf};

use spotenc_proto::domain::OutputObject;
use spotenc_proto::{Error, Result};

fn strip_file_scheme(uri: &str) -> Result<&str> {
    match uri.split_once("://") {
        None => Ok(uri),
        Some(("file", path)) => Ok(path),
        Some((scheme, _)) => Err(Error::invalid(format!(
            "unsupported scheme {scheme:?} in {uri:?} (allowed: file paths)"
        ))),
    }
}

fn absolute_clean(uri: &str, what: &str) -> Result<PathBuf> {
    let path = Path::new(strip_file_scheme(uri)?);
    if !path.is_absolute() {
        return Err(Error::invalid(format!(
            "{what} {uri:?} is not an absolute path"
        )));
    }
    if path.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(Error::invalid(format!("{what} {uri:?} contains '..'")));
    }
    Ok(path.to_path_buf())
}

/// Where local inputs and outputs may lie. Empty roots refuse every local
/// path of that kind: the coordinator fails closed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Files {
    pub input_roots: Vec<PathBuf>,
    pub output_roots: Vec<PathBuf>,
    /// The coordinator's own state and intermediates: never an output.
    pub data_dir: PathBuf,
}

/// Kernel and device trees no job reads from.
const FORBIDDEN: &[&str] = &["/proc", "/sys", "/dev"];

fn canonical(path: &Path, what: &str, uri: &str) -> Result<PathBuf> {
    std::fs::canonicalize(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::invalid(format!("{what} {uri:?}: no such file")),
        _ => Error::invalid(format!("{what} {uri:?}: {e}")),
    })
}

/// `path` (canonical) lies under one of `roots`, each canonicalised.
fn under_roots(path: &Path, roots: &[PathBuf], what: &str, uri: &str) -> Result<()> {
    let key = format!("{what}_roots");
    if roots.is_empty() {
        return Err(Error::invalid(format!(
            "{what} {uri:?} is a local path, and no [files] {key} are configured (local {what}s are off)"
        )));
    }
    let inside = roots
        .iter()
        .any(|r| std::fs::canonicalize(r).is_ok_and(|r| path.starts_with(r)));
    if !inside {
        let list: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
        return Err(Error::invalid(format!(
            "{what} {uri:?} is outside the {key} [{}]",
            list.join(", ")
        )));
    }
    Ok(())
}

/// Checks an input URI and returns its canonical path: an existing regular
/// file under an input root, not in /proc, /sys or /dev. Whether it is a
/// readable video is the probe's job.
pub fn check_input(uri: &str, files: &Files) -> Result<String> {
    let path = canonical(&absolute_clean(uri, "input")?, "input", uri)?;
    if let Some(tree) = FORBIDDEN.iter().find(|f| path.starts_with(f)) {
        return Err(Error::invalid(format!(
            "input {uri:?} is {}, under {tree}: kernel and device files are not media",
            path.display()
        )));
    }
    let meta =
        std::fs::metadata(&path).map_err(|e| Error::invalid(format!("input {uri:?}: {e}")))?;
    if !meta.is_file() {
        let kind = if meta.is_dir() {
            "a directory"
        } else {
            "a FIFO, socket or device"
        };
        return Err(Error::invalid(format!(
            "input {uri:?} is {kind}, not a regular file"
        )));
    }
    under_roots(&path, &files.input_roots, "input", uri)?;
    Ok(path.display().to_string())
}

/// Checks an output URI and returns its canonical path: in an existing
/// directory under an output root, outside the coordinator's data
/// directory, not a directory.
pub fn check_output(uri: &str, files: &Files) -> Result<String> {
    let path = absolute_clean(uri, "output")?;
    let (Some(parent), Some(name)) = (
        path.parent().filter(|p| !p.as_os_str().is_empty()),
        path.file_name(),
    ) else {
        return Err(Error::invalid(format!(
            "output {uri:?} has no directory or name"
        )));
    };
    if !parent.is_dir() {
        return Err(Error::invalid(format!(
            "output directory {} does not exist",
            parent.display()
        )));
    }
    let path = canonical(parent, "output directory of", uri)?.join(name);
    if path.is_dir() {
        return Err(Error::invalid(format!("output {uri:?} is a directory")));
    }
    under_roots(&path, &files.output_roots, "output", uri)?;
    if !files.data_dir.as_os_str().is_empty() {
        if let Ok(data) = std::fs::canonicalize(&files.data_dir) {
            if path.starts_with(&data) {
                return Err(Error::invalid(format!(
                    "output {uri:?} is inside the coordinator's data directory {}",
                    data.display()
                )));
            }
        }
    }
    Ok(path.display().to_string())
}

/// Moves the stitched object onto the final path: its bytes are flushed to
/// disk first and the directory after, so a crash right after the commit
/// cannot leave an empty or short file at the final path. Safe to repeat
/// after a crash: if the temporary is gone and the final path holds the
/// same bytes, the commit already happened.
pub fn commit(stitched: &OutputObject, output: &str) -> std::result::Result<(), String> {
    let tmp = Path::new(&stitched.path);
    let fin = Path::new(output);
    match std::fs::metadata(tmp) {
        Ok(meta) if meta.len() != stitched.size_bytes => {
            return Err(format!(
                "stitched object is {} bytes, expected {}",
                meta.len(),
                stitched.size_bytes
            ))
        }
        Ok(_) => match sync_file(tmp).and_then(|()| std::fs::rename(tmp, fin)) {
            Ok(()) => {
                sync_dir(fin);
                return Ok(());
            }
            // Another coordinator replica may have renamed it first.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("rename onto {output}: {e}")),
        },
        Err(_) => {}
    }
    match std::fs::metadata(fin) {
        Ok(meta) if meta.len() == stitched.size_bytes => {
            let sha = sha256_file(fin).map_err(|e| e.to_string())?;
            if sha == stitched.sha256 {
                Ok(())
            } else {
                Err("stitched object is gone and the output differs".into())
            }
        }
        _ => Err("stitched object is gone".into()),
    }
}

/// Flushes a file's data to disk.
fn sync_file(path: &Path) -> std::io::Result<()> {
    std::fs::File::open(path)?.sync_all()
}

/// Checks, before any rename of a job's commit, that `stitched` can be
/// moved onto `output`: the temporary is there at its size (or the output
/// already holds it), and the output is not a directory and its directory
/// exists. A job whose check fails is failed with nothing replaced.
pub fn check_commit(stitched: &OutputObject, output: &str) -> std::result::Result<(), String> {
    let fin = Path::new(output);
    match std::fs::metadata(&stitched.path) {
        Ok(meta) if meta.len() != stitched.size_bytes => {
            return Err(format!(
                "stitched object for {output} is {} bytes, expected {}",
                meta.len(),
                stitched.size_bytes
            ))
        }
        Ok(_) => {}
        Err(_) => {
            let done = std::fs::metadata(fin).is_ok_and(|m| m.len() == stitched.size_bytes);
            if !done {
                return Err(format!("stitched object for {output} is gone"));
            }
        }
    }
    if std::fs::symlink_metadata(fin).is_ok_and(|m| m.is_dir()) {
        return Err(format!("{output} is a directory"));
    }
    match fin.parent().map(std::fs::metadata) {
        Some(Ok(m)) if m.is_dir() => Ok(()),
        _ => Err(format!("the directory of {output} is gone")),
    }
}

/// Makes a rename durable.
fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent() {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

fn sha256_file(path: &Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    let mut f = std::fs::File::open(path)?;
    std::io::copy(&mut f, &mut hasher)?;
    Ok(hex::encode(hasher.finalize()))
}

/// Removes a job's temporaries beside `output`.
pub fn remove_temporaries(output: &str, job_id: &str) {
    let path = Path::new(output);
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let prefix = format!(".{}.{job_id}.", name.to_string_lossy());
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with(&prefix) && n.ends_with("part") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spotenc_core::paths::{attempt_path, temp_output};

    /// Roots at `dir/in` and `dir/out`, data under `dir/data`.
    fn confined(dir: &Path) -> Files {
        for d in ["in", "out", "data"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        Files {
            input_roots: vec![dir.join("in")],
            output_roots: vec![dir.join("out"), dir.join("data")],
            data_dir: dir.join("data"),
        }
    }

    #[test]
    fn hostile_and_relative_inputs_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let files = confined(dir.path());
        for bad in [
            "http://169.254.169.254/latest",
            "relative.mp4",
            "/a/../etc/passwd",
            "concat:/a|/b",
        ] {
            assert!(check_input(bad, &files).is_err(), "{bad}");
        }
        let a = dir.path().join("in/a.mp4");
        std::fs::write(&a, b"x").unwrap();
        let canonical = std::fs::canonicalize(&a).unwrap().display().to_string();
        let uri = format!("file://{}", a.display());
        assert_eq!(check_input(&uri, &files).unwrap(), canonical);
    }

    // Regression: any client could make workers read any file the service
    // user could reach, and the coordinator rename outputs onto any path.
    #[test]
    fn local_paths_are_confined_to_their_roots() {
        let dir = tempfile::tempdir().unwrap();
        let files = confined(dir.path());
        let outside = dir.path().join("secret.mp4");
        std::fs::write(&outside, b"x").unwrap();
        let e = check_input(outside.to_str().unwrap(), &files).unwrap_err();
        assert!(e.to_string().contains("outside the input_roots"), "{e}");
        assert!(
            e.to_string()
                .contains(&dir.path().join("in").display().to_string()),
            "{e}"
        );
        // A symlink inside a root that points outside it is outside.
        let link = dir.path().join("in/link.mp4");
        std::os::unix::fs::symlink(&outside, &link).unwrap();
        assert!(check_input(link.to_str().unwrap(), &files).is_err());
        let e = check_output(dir.path().join("keep.txt").to_str().unwrap(), &files).unwrap_err();
        assert!(e.to_string().contains("outside the output_roots"), "{e}");
        // The data directory is never an output, even under an output root.
        let e = check_output(dir.path().join("data/o.mp4").to_str().unwrap(), &files).unwrap_err();
        assert!(e.to_string().contains("data directory"), "{e}");
        // No roots: local paths are off.
        let e = check_input(outside.to_str().unwrap(), &Files::default()).unwrap_err();
        assert!(e.to_string().contains("no [files] input_roots"), "{e}");
        // Not a regular file.
        let e = check_input(dir.path().join("in").to_str().unwrap(), &files).unwrap_err();
        assert!(e.to_string().contains("a directory"), "{e}");
        let fifo = dir.path().join("in/pipe.mp4");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let e = check_input(fifo.to_str().unwrap(), &files).unwrap_err();
        assert!(e.to_string().contains("FIFO"), "{e}");
        let proc_files = Files {
            input_roots: vec!["/".into()],
            ..files.clone()
        };
        let e = check_input("/proc/self/environ", &proc_files).unwrap_err();
        assert!(e.to_string().contains("/proc"), "{e}");
        let e = check_input(dir.path().join("in/none.mp4").to_str().unwrap(), &files).unwrap_err();
        assert!(e.to_string().contains("no such file"), "{e}");
    }

    #[test]
    fn output_must_be_in_an_existing_directory() {
        let dir = tempfile::tempdir().unwrap();
        let files = confined(dir.path());
        let ok = dir.path().join("out/o.mp4");
        assert!(check_output(ok.to_str().unwrap(), &files).is_ok());
        // Spellings of one file come out as one canonical path.
        let a = check_output(&format!("file://{}", ok.display()), &files).unwrap();
        let b = check_output(&format!("{}/out/./o.mp4", dir.path().display()), &files).unwrap();
        let c = check_output(&format!("{}/out//o.mp4", dir.path().display()), &files).unwrap();
        assert_eq!((a.clone(), b), (c, a));
        let missing = dir.path().join("out/nope/o.mp4");
        let e = check_output(missing.to_str().unwrap(), &files).unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
    }

    #[test]
    fn commit_is_repeatable_and_cleanup_removes_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let fin = dir.path().join("o.mp4").display().to_string();
        let tmp = attempt_path(&temp_output(&fin, "j1"), 1);
        std::fs::write(&tmp, b"stitched").unwrap();
        let obj = OutputObject {
            path: tmp.clone(),
            size_bytes: 8,
            sha256: sha256_file(Path::new(&tmp)).unwrap(),
            frames: 1,
            ..Default::default()
        };
        commit(&obj, &fin).unwrap();
        commit(&obj, &fin).unwrap();
        assert_eq!(std::fs::read(&fin).unwrap(), b"stitched");

        let stale = attempt_path(&temp_output(&fin, "j2"), 3);
        std::fs::write(&stale, b"x").unwrap();
        remove_temporaries(&fin, "j2");
        assert!(!Path::new(&stale).exists());
        assert!(Path::new(&fin).exists());
    }
}
