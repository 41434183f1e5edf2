//! Procedural macros of [delira](https://docs.rs/delira). Use them through the `delira` crate,
//! which re-exports them: `use delira::Dataset;`.
//!
//! Each macro runs in three phases, one module each:
//!
//! 1. **parse** — `syn`'s input into a model of our own that keeps every span;
//! 2. **validate** — every rule in one place; all violations are collected and reported together,
//!    each at the user's token;
//! 3. **expand** — code generation only, naming nothing but `::core` and `::delira::__private`.
//!
//! On error the macro emits the errors and stubs of the items it would generate, so the user
//! sees the mistake, not a cascade.
//!
// The examples need the `delira` crate, which depends on this one: they run as doctests of
// `delira` instead (see `DeriveDatasetDocs` there).
#![cfg_attr(not(doctest), doc = include_str!("../doc/dataset.md"))]

mod dataset;
mod diag;
mod experiment;
mod model;

use proc_macro::TokenStream;

/// Declares a sample type: the roles of its fields, how they are loaded and collated, and which
/// of them move together under spatial augmentation.
///
#[cfg_attr(not(doctest), doc = include_str!("../doc/dataset.md"))]
#[proc_macro_derive(Dataset, attributes(input, target, meta, weight, group, class))]
pub fn derive_dataset(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    dataset::derive(&input).into()
}

/// Declares a network: a struct whose fields are layers, each with its constructor arguments in
/// `#[layer(...)]`; the forward pass is written by hand.
///
#[cfg_attr(not(doctest), doc = include_str!("../doc/model.md"))]
#[proc_macro_attribute]
pub fn model(args: TokenStream, item: TokenStream) -> TokenStream {
    model::attribute(args.into(), item.into()).into()
}

/// Declares an experiment; see `delira::experiment!` for the documentation.
#[proc_macro]
pub fn experiment(input: TokenStream) -> TokenStream {
    experiment::experiment(input.into()).into()
}
