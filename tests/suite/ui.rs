//! Compile-fail tests of the macros' diagnostics: one mistake per file under `tests/ui/<macro>/`,
//! named after the mistake, with the expected compiler output next to it (`.stderr`); files named
//! `pass-*.rs` must compile and run. Regenerate the snapshots with `TRYBUILD=overwrite` and review
//! each one: the toolchain is pinned, so they are stable.

use std::path::PathBuf;

fn cases(dir: &str) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .collect();
    files.sort();
    files.into_iter().partition(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("pass-"))
    })
}

/// Runs every case under `dir`: at least `min_failing` compile-fail cases must be there; a case
/// for which `skip` says yes is left out (a declaration that is right in this build).
fn check(dir: &str, min_failing: usize, skip: impl Fn(&PathBuf) -> bool) {
    let (pass, fail) = cases(dir);
    assert!(
        fail.len() >= min_failing,
        "the compile-fail cases went missing: {fail:?}"
    );
    let t = trybuild::TestCases::new();
    for case in &pass {
        t.pass(case);
    }
    for case in fail.iter().filter(|case| !skip(case)) {
        t.compile_fail(case);
    }
}

#[test]
fn dataset_diagnostics() {
    check("tests/ui/dataset", 20, |_| false);
}

#[test]
fn model_diagnostics() {
    // With the feature on, this declaration is right and compiles.
    check("tests/ui/model", 30, |case| {
        cfg!(feature = "torch") && case.ends_with("feature-not-enabled.rs")
    });
}

#[test]
fn experiment_diagnostics() {
    check("tests/ui/experiment", 13, |_| false);
}
