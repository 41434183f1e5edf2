//! `#[derive(Dataset)]`: parse, validate, expand.

mod expand;
mod parse;
mod validate;

use proc_macro2::TokenStream;

use crate::diag::Errors;

/// The derive's whole pipeline. On error, the errors come with a stub of the generated items,
/// so that code using them adds no errors of its own.
pub fn derive(input: &syn::DeriveInput) -> TokenStream {
    let mut errors = Errors::default();
    let model =
        parse::parse(input, &mut errors).map(|input| validate::validate(input, &mut errors));
    match errors.finish(model) {
        Ok(Some(model)) => expand::expand(&model),
        Ok(None) => expand::stub(input),
        Err(errors) => {
            let mut out = errors.to_compile_error();
            out.extend(expand::stub(input));
            out
        }
    }
}
