//! Procedural macros of [delira](https://docs.rs/delira). Use them through the `delira` crate,
//! which re-exports them.
