//! The crate layers as Cargo resolves them: the pure core links no async
//! runtime, RPC, Redis or AWS; the coordinator image's lean build
//! (`spotenc-cli --no-default-features`) links no FFmpeg, kube, plotters
//! or allocator; and no crate depends on one above it.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

/// The packages `cargo tree -e normal` lists for `args`.
fn tree(args: &[&str]) -> BTreeSet<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(root)
        .args(["tree", "-e", "normal", "--prefix", "none", "--locked"])
        .args(args)
        .output()
        .expect("run cargo tree");
    assert!(
        out.status.success(),
        "cargo tree {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

fn assert_none(got: &BTreeSet<String>, what: &str, banned: &[&str]) {
    let found: Vec<&String> = got
        .iter()
        .filter(|p| banned.iter().any(|b| p.starts_with(b)))
        .collect();
    assert!(found.is_empty(), "{what} links {found:?}");
}

#[test]
fn the_core_is_pure() {
    let got = tree(&["-p", "spotenc-core"]);
    assert!(got.contains("spotenc-proto"), "{got:?}");
    assert_none(
        &got,
        "spotenc-core",
        &["tokio", "tonic", "redis", "aws-", "hyper", "spotenc-store"],
    );
}

#[test]
fn the_coordinator_image_build_is_lean() {
    let got = tree(&["-p", "spotenc-cli", "--no-default-features"]);
    assert!(got.contains("spotenc-coordinator"), "{got:?}");
    assert_none(
        &got,
        "spotenc-cli --no-default-features",
        &[
            "ffmpeg",
            "spotenc-media",
            "spotenc-worker",
            "kube",
            "k8s-openapi",
            "spotenc-operator",
            "plotters",
            "mimalloc",
            "libmimalloc",
            "spotenc-fleetsim",
        ],
    );
}

#[test]
fn dependencies_point_down() {
    // Each crate with what it must never link: the layers above it.
    let above: &[(&str, &[&str])] = &[
        (
            "spotenc-core",
            &[
                "spotenc-store",
                "spotenc-storage",
                "spotenc-coordinator",
                "spotenc-fleetsim",
                "spotenc-deploy",
            ],
        ),
        (
            "spotenc-store",
            &[
                "spotenc-storage",
                "spotenc-coordinator",
                "spotenc-fleetsim",
                "spotenc-deploy",
            ],
        ),
        (
            "spotenc-storage",
            &["spotenc-store", "spotenc-coordinator", "spotenc-fleetsim"],
        ),
        (
            "spotenc-fleetsim",
            &[
                "spotenc-store",
                "spotenc-storage",
                "spotenc-coordinator",
                "spotenc-deploy",
            ],
        ),
        (
            "spotenc-deploy",
            &[
                "spotenc-store",
                "spotenc-storage",
                "spotenc-coordinator",
                "spotenc-fleetsim",
            ],
        ),
        (
            "spotenc-operator",
            &[
                "spotenc-store",
                "spotenc-storage",
                "spotenc-coordinator",
                "spotenc-fleetsim",
                "redis",
                "aws-",
            ],
        ),
    ];
    for (krate, banned) in above {
        assert_none(&tree(&["-p", krate]), krate, banned);
    }
}
