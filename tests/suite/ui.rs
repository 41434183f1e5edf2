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

#[test]
fn dataset_diagnostics() {
    let (pass, fail) = cases("tests/ui/dataset");
    assert!(
        fail.len() >= 20,
        "the compile-fail cases went missing: {fail:?}"
    );
    let t = trybuild::TestCases::new();
    for case in &pass {
        t.pass(case);
    }
    for case in &fail {
        t.compile_fail(case);
    }
}

#[test]
fn model_diagnostics() {
    let (pass, fail) = cases("tests/ui/model");
    assert!(
        fail.len() >= 30,
        "the compile-fail cases went missing: {fail:?}"
    );
    let t = trybuild::TestCases::new();
    for case in &pass {
        t.pass(case);
    }
    for case in &fail {
        // With the feature on, this declaration is right and compiles.
        if cfg!(feature = "torch") && case.ends_with("feature-not-enabled.rs") {
            continue;
        }
        t.compile_fail(case);
    }
}

#[test]
fn experiment_diagnostics() {
    let (pass, fail) = cases("tests/ui/experiment");
    assert!(
        fail.len() >= 9,
        "the compile-fail cases went missing: {fail:?}"
    );
    let t = trybuild::TestCases::new();
    for case in &pass {
        t.pass(case);
    }
    for case in &fail {
        t.compile_fail(case);
    }
}
