//! Gives the crate's own tests and examples a run-time path to libtorch (`torch` feature only):
//! torch-sys links libtorch but adds no rpath, and `LD_LIBRARY_PATH` from cargo's `[env]` is not
//! seen by the test runner. Also records the compiler's version for run manifests
//! (`DELIRA_RUSTC_VERSION`).

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-env-changed=RUSTC");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let version = std::process::Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map_or_else(
            || "unknown".to_owned(),
            |out| String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        );
    println!("cargo:rustc-env=DELIRA_RUSTC_VERSION={version}");
    // Set by torch-sys for its direct dependents only.
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
}
