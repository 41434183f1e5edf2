//! `#[delira::model(...)]`: parse, validate, expand.

mod expand;
mod parse;
mod validate;

use proc_macro2::TokenStream;

use crate::diag::Errors;

/// The attribute's whole pipeline. On error, the errors come with the struct (without its
/// `#[layer]` attributes) and stubs of the generated constructors, so that code using them adds
/// no errors of its own.
pub fn attribute(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let args = parse::parse_args(args, &mut errors);
    let item: syn::Item = match syn::parse2(item) {
        Ok(item) => item,
        Err(e) => return e.to_compile_error(),
    };
    let config = args.iter().find_map(|arg| match &arg.value {
        parse::ArgValue::Type(ty) if arg.key == "config" => Some(ty.clone()),
        _ => None,
    });
    let model = parse::parse_item(&item, &mut errors)
        .map(|input| validate::validate(args, input, &mut errors));
    let item = expand::strip(item);
    match errors.finish(model) {
        Ok(Some(model)) => expand::expand(&model, &item),
        Ok(None) => expand::stub(&item, config.as_ref()),
        Err(errors) => {
            let mut out = errors.to_compile_error();
            out.extend(expand::stub(&item, config.as_ref()));
            out
        }
    }
}
