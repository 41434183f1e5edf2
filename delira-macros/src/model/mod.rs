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
        parse::ArgValue::Type(ty) if arg.key == "config" => Some((**ty).clone()),
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

#[cfg(test)]
mod tests {
    use proc_macro2::TokenStream;
    use quote::quote;

    use super::{parse, validate};
    use crate::diag::Errors;

    /// The messages the attribute reports for `args` on `item`, in order.
    fn messages(args: TokenStream, item: TokenStream) -> Vec<String> {
        let mut errors = Errors::default();
        let args = parse::parse_args(args, &mut errors);
        let item: syn::Item = syn::parse2(item).unwrap();
        if let Some(input) = parse::parse_item(&item, &mut errors) {
            validate::validate(args, input, &mut errors);
        }
        match errors.finish(()) {
            Ok(()) => Vec::new(),
            Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    const FEATURE_OFF: &str = "the `torch` backend is not compiled in; enable the cargo feature \
                               `torch` of `delira` (`delira = { features = [\"torch\"] }`)";

    #[test]
    fn every_mistake_of_a_declaration_is_reported_and_the_feature_last() {
        let found = messages(
            quote!(backend = "torch", inptu = "t1", input = "t1"),
            quote! {
                struct Net {
                    #[layer(conv3d(1, 8, 3, stride = 0, padding = "1"))]
                    a: Conv3D,
                    #[layer(linear(config.width))]
                    b: Linear,
                    #[layer(instance_norm(8, affine = true, eps = 1e-5))]
                    c: GroupNorm,
                }
            },
        );
        assert_eq!(
            found,
            [
                "unknown key `inptu` (did you mean `input`?); expected `backend`, `config`, \
                 `input`, `target` or `output`",
                "`stride` of `conv3d` is 0; use a positive number",
                "`padding` of `conv3d` takes an integer",
                "`linear` takes 2 positional arguments (`in_features` and `out_features`), found 1",
            ]
        );
    }

    #[test]
    fn a_valid_declaration_expands_to_the_trait_and_constructors() {
        let args = quote!(backend = "torch", config = Spec, output = "scores");
        let item = quote! {
            pub struct Net {
                #[layer(conv3d(config.c, 8, 3, padding_mode = "circular"))]
                conv: nn::Conv3D,
                #[layer(module(Block::new(path, config.c)?))]
                block: Block,
            }
        };
        let found = messages(args.clone(), item.clone());
        if cfg!(feature = "torch") {
            assert!(found.is_empty(), "{found:?}");
        } else {
            assert_eq!(found, [FEATURE_OFF]);
            return;
        }
        let code = super::attribute(args, item).to_string();
        for piece in [
            "impl :: delira :: __private :: torch :: DeclaredModel for Net",
            "type Config = Spec ;",
            "const NAME : & 'static str = \"Net\" ;",
            "LayerInfo { name : \"conv\" , kind : \"conv3d\" , ty : \"nn::Conv3D\" }",
            "LayerInfo { name : \"block\" , kind : \"module\" , ty : \"Block\" }",
            "__layer . conv3d (& (__path / \"conv\") , __layer . size (\"in_channels\" , config . c) ?",
            ":: delira :: __private :: torch :: nn :: PaddingMode :: Circular",
            "let path = & (__path / \"block\") ;",
            "output : :: delira :: __private :: torch :: String :: from (\"scores\")",
            "input : :: delira :: __private :: torch :: String :: from (\"image\")",
            "pub fn new (path : & :: delira :: __private :: torch :: nn :: Path < '_ > , config : & Spec ,)",
            "pub fn network (config : & Spec ,",
        ] {
            assert!(code.contains(piece), "`{piece}` is missing from {code}");
        }
        assert!(!code.contains("compile_error"));
        assert!(
            !code.contains("# [layer"),
            "the `#[layer]` attributes stay: {code}"
        );
    }

    #[test]
    fn on_error_the_struct_is_kept_without_its_layer_attributes() {
        let code = super::attribute(
            quote!(backend = "torch"),
            quote! {
                struct Net {
                    #[layer(conv9d(1, 8, 3))]
                    conv: Conv3D,
                }
            },
        )
        .to_string();
        assert!(code.contains("compile_error"));
        assert!(code.contains("struct Net { conv : Conv3D , }"), "{code}");
        assert_eq!(code.contains("fn new"), cfg!(feature = "torch"));
    }

    #[test]
    fn hints_and_lists() {
        assert_eq!(parse::list(&["a", "b", "c"]), "`a`, `b` or `c`");
        assert_eq!(parse::list_all(&["a", "b"]), "`a` and `b`");
        assert_eq!(
            parse::close_match("conv4d", &["conv1d", "conv3d"]),
            Some("conv1d")
        );
        assert_eq!(
            parse::close_match("batchnorm3d", &["batch_norm3d"]),
            Some("batch_norm3d")
        );
        assert_eq!(parse::close_match("dense", &["linear"]), None);
    }
}
