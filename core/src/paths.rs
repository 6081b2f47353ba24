//! Names of a job's objects: the per-attempt name of an intermediate
//! object and the hidden temporary an output is stitched into. Pure string
//! work; the object stores in `spotenc-storage` act on these names.

use std::path::Path;

/// Inserts `.a{attempt}` before the extension: `chunk-00003.nut` becomes
/// `chunk-00003.a2.nut`.
pub fn attempt_path(base: &str, attempt: u32) -> String {
    let (dir, name) = base.rsplit_once('/').map_or(("", base), |(d, n)| (d, n));
    let named = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => format!("{stem}.a{attempt}.{ext}"),
        _ => format!("{name}.a{attempt}"),
    };
    if dir.is_empty() && !base.starts_with('/') {
        named
    } else {
        format!("{dir}/{named}")
    }
}

/// The hidden temporary name beside `output` that a job stitches into.
pub fn temp_output(output: &str, job_id: &str) -> String {
    let path = Path::new(output);
    let name = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let dir = path.parent().unwrap_or(Path::new("/"));
    dir.join(format!(".{name}.{job_id}.part"))
        .display()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempt_paths_keep_the_extension() {
        assert_eq!(
            attempt_path("/w/j/chunk-00003.nut", 2),
            "/w/j/chunk-00003.a2.nut"
        );
        assert_eq!(
            attempt_path("/o/.out.mp4.j1.part", 1),
            "/o/.out.mp4.j1.a1.part"
        );
    }
}
