//! Gives the crate's own tests and examples a run-time path to libtorch (`torch` feature only):
//! torch-sys links libtorch but adds no rpath, and `LD_LIBRARY_PATH` from cargo's `[env]` is not
//! seen by the test runner.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    // Set by torch-sys for its direct dependents only.
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
}
