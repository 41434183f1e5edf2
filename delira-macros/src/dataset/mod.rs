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

#[cfg(test)]
mod tests {
    use syn::parse_quote;

    use super::{parse, validate};
    use crate::diag::Errors;

    /// The messages the derive reports for `input`, in order.
    fn messages(input: &syn::DeriveInput) -> Vec<String> {
        let mut errors = Errors::default();
        if let Some(parsed) = parse::parse(input, &mut errors) {
            validate::validate(parsed, &mut errors);
        }
        match errors.finish(()) {
            Ok(()) => Vec::new(),
            Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn every_mistake_of_a_struct_is_reported() {
        let input = parse_quote! {
            struct Subject {
                #[input(nifti = "a.nii", nifti = "b.nii", normalise = "zscore")]
                t1: Volume<f32>,
                #[target(subject)]
                seg: LabelMap,
                #[weight] w: f32,
                #[weight] v: f32,
                age: f32,
            }
        };
        assert_eq!(
            messages(&input),
            [
                "unknown option `normalise` for `#[input]` (did you mean `normalize`?); expected \
                 `nifti`, `column`, `normalize`, `dtype` or `channel_axis`",
                "duplicate option `nifti`; keep one",
                "`#[target]` takes no option `subject`; it takes `nifti`, `column`, `normalize`, \
                 `dtype`, `channel_axis` or `class`",
                "a sample has one `#[weight]` field, and field `w` is already it; remove this one \
                 or give it another role",
                "field `age` has no role; mark it `#[input]`, `#[target]`, `#[meta]`, \
                 `#[weight]`, `#[group]` or `#[class]`",
            ]
        );
    }

    #[test]
    fn a_valid_struct_has_no_error_and_expands_to_the_impls() {
        let input: syn::DeriveInput = parse_quote! {
            pub struct Subject {
                #[input(nifti = "{subject}_t1.nii.gz", normalize = "zscore")]
                t1: Volume<f32>,
                #[meta(subject)]
                id: String,
            }
        };
        assert!(messages(&input).is_empty());
        let code = super::derive(&input).to_string();
        for item in [
            "impl :: delira :: __private :: DeclaredSample for Subject",
            "impl :: delira :: __private :: Sample for Subject",
            "impl :: delira :: __private :: Augmentable for Subject",
            "impl :: delira :: __private :: ByteSize for Subject",
            "pub fn load_dir",
            "pub fn load_csv",
            ":: delira :: __private :: assert_normalize :: < Volume < f32 > >",
            ":: delira :: __private :: assert_subject_id :: < String >",
        ] {
            assert!(code.contains(item), "`{item}` is missing from {code}");
        }
        assert!(!code.contains("compile_error"));
    }

    #[test]
    fn on_error_the_stub_keeps_the_generated_names() {
        let input: syn::DeriveInput = parse_quote! {
            struct Subject { #[target] seg: LabelMap }
        };
        let code = super::derive(&input).to_string();
        assert!(code.contains("compile_error"));
        assert!(code.contains("fn load_dir"));
        assert!(code.contains("impl :: delira :: __private :: Sample for Subject"));
    }

    #[test]
    fn hints_and_lists() {
        assert_eq!(parse::list(&["a"]), "`a`");
        assert_eq!(parse::list(&["a", "b", "c"]), "`a`, `b` or `c`");
        assert_eq!(parse::edit_distance("nifti", "nifty"), 1);
        assert_eq!(parse::edit_distance("column", "colum"), 1);
        assert_eq!(parse::edit_distance("input", "inptu"), 2);
        assert_eq!(parse::edit_distance("meta", "doc"), 4);
    }
}
