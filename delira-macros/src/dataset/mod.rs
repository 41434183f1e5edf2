//! `#[derive(Dataset)]`: parse, validate, expand.

mod expand;
mod parse;
mod validate;

use proc_macro2::TokenStream;

/// The derive's whole pipeline. On error, the errors come with a stub of the generated items,
/// so that code using them adds no errors of its own.
pub fn derive(input: &syn::DeriveInput) -> TokenStream {
    match parse::parse(input).and_then(validate::validate) {
        Ok(model) => expand::expand(&model),
        Err(errors) => {
            let mut out = errors.to_compile_error();
            out.extend(expand::stub(input));
            out
        }
    }
}
