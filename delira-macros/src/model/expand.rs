//! Phase 3: code generation only. Every rule was checked by [`super::validate`]; what only the
//! compiler can judge (a layer of another type than its field, a missing forward pass) is left to
//! it, spanned at the user's tokens.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::{Ident, Item, Type};

use super::parse::is_layer;
use super::validate::{Class, Layer, Model, PADDING_MODES};

/// The item without its `#[layer]` attributes (the compiler knows no such attribute).
pub fn strip(mut item: Item) -> Item {
    let fields: Vec<&mut syn::Field> = match &mut item {
        Item::Struct(s) => s.fields.iter_mut().collect(),
        Item::Enum(e) => e
            .variants
            .iter_mut()
            .flat_map(|v| v.fields.iter_mut())
            .collect(),
        Item::Union(u) => u.fields.named.iter_mut().collect(),
        _ => Vec::new(),
    };
    for field in fields {
        field.attrs.retain(|a| !is_layer(a));
    }
    item
}

pub fn expand(model: &Model, item: &Item) -> TokenStream {
    let ident = &model.ident;
    let name = ident.to_string();
    let config = config_type(model.config.as_ref());
    let infos = model.layers.iter().map(|layer| {
        let name = layer.ident.unraw().to_string();
        let kind = layer.kind.name;
        let ty = type_text(&layer.ty);
        quote! {
            ::delira::__private::torch::LayerInfo { name: #name, kind: #kind, ty: #ty }
        }
    });
    let builds = model.layers.iter().map(build_layer);
    let fields = model.layers.iter().map(|l| {
        let (field, local) = (&l.ident, local(&l.ident));
        quote!(#field: #local)
    });
    let (input, target, output) = (&model.input, &model.target, &model.output);
    let config_ident = Ident::new("config", Span::call_site());
    let private = quote!(::delira::__private::torch);

    let declared = quote! {
        #[automatically_derived]
        impl #private::DeclaredModel for #ident {
            type Config = #config;

            const NAME: &'static str = #name;

            const LAYERS: &'static [#private::LayerInfo] = &[#(#infos),*];

            fn fields() -> #private::Fields {
                #private::Fields {
                    input: #private::String::from(#input),
                    target: #private::String::from(#target),
                    output: #private::String::from(#output),
                }
            }

            // The options' defaults fill what the keywords leave out, which may be nothing.
            #[allow(clippy::needless_update)]
            fn build(
                __path: &#private::nn::Path<'_>,
                #config_ident: &Self::Config,
            ) -> ::core::result::Result<Self, #private::BackendError> {
                let _ = #config_ident;
                #(#builds)*
                ::core::result::Result::Ok(Self { #(#fields),* })
            }
        }
    };
    let constructors = constructors(model);
    quote! {
        #item
        #declared
        #constructors
    }
}

/// The local holding a built layer: prefixed, so that a layer named `config` does not hide the
/// configuration from the layers after it.
fn local(field: &Ident) -> Ident {
    format_ident!("__built_{}", field.unraw())
}

/// The configuration type, `()` when the model declares none.
fn config_type(config: Option<&Type>) -> TokenStream {
    config.map_or_else(|| quote!(()), |ty| quote!(#ty))
}

/// The type as written, without the spaces of a token stream (`nn::Conv3D`).
fn type_text(ty: &Type) -> String {
    let text = quote!(#ty).to_string();
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ' ' {
            let next = chars.peek().copied();
            let prev = out.chars().last();
            let joins = |c: Option<char>| matches!(c, Some(':' | '<' | '>' | '&' | '(' | ')'));
            if joins(next) || joins(prev) || next == Some(',') {
                continue;
            }
        }
        out.push(c);
    }
    out
}

/// `let <field>: <type> = <the layer built from its arguments>;`
fn build_layer(layer: &Layer) -> TokenStream {
    let private = quote!(::delira::__private::torch);
    let (ident, ty) = (&layer.ident, &layer.ty);
    let name = ident.unraw().to_string();
    let local = local(ident);
    let kind = layer.kind.name;
    let span = layer.kind_span;
    let path = quote!(&(__path / #name));

    let value = if kind == "module" {
        let expr = &layer.args[0].1;
        let path_ident = Ident::new("path", Span::call_site());
        quote_spanned! {span=>
            __layer.module(|| {
                let #path_ident = #path;
                let _ = #path_ident;
                ::core::result::Result::Ok(#expr)
            })?
        }
    } else {
        let method = Ident::new(kind, span);
        let positional = layer.args[..layer.kind.positional.len()]
            .iter()
            .map(|(param, expr)| argument(param.name, param.class, expr));
        let options = layer.kind.options.map(|(options, defaults)| {
            let (options, defaults) = (format_ident!("{options}"), format_ident!("{defaults}"));
            let keywords = layer.args[layer.kind.positional.len()..]
                .iter()
                .map(|(param, expr)| {
                    let field = Ident::new(param.name, Span::call_site());
                    let value = argument(param.name, param.class, expr);
                    quote!(#field: #value)
                });
            quote! {
                #private::#options {
                    #(#keywords,)*
                    ..#private::#options::#defaults()
                }
            }
        });
        quote_spanned! {span=>
            __layer.#method(#path, #(#positional,)* #options)?
        }
    };
    quote! {
        let #local: #ty = {
            let __layer = #private::Layer::new(#name, #kind);
            #value
        };
    }
}

/// An argument converted and checked at run time.
fn argument(name: &str, class: Class, expr: &syn::Expr) -> TokenStream {
    match class {
        Class::Size => quote!(__layer.size(#name, #expr)?),
        Class::Offset => quote!(__layer.offset(#name, #expr)?),
        Class::Index => {
            quote!(::core::option::Option::Some(__layer.offset(#name, #expr)?))
        }
        Class::Float => quote!(__layer.float(#name, #expr)?),
        Class::Bool | Class::Module => quote!(#expr),
        Class::PaddingMode => {
            let written = match expr {
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(s),
                    ..
                }) => s.value(),
                _ => String::new(),
            };
            let variant = PADDING_MODES
                .iter()
                .find(|m| m.0 == written)
                .map_or("Zeros", |m| m.1);
            let variant = Ident::new(variant, Span::call_site());
            quote!(::delira::__private::torch::nn::PaddingMode::#variant)
        }
    }
}

/// The generated `new` and `network`.
fn constructors(model: &Model) -> TokenStream {
    // Spanned at the struct's name: a missing forward pass (`TorchModel`) is reported there.
    let declared = quote_spanned! {model.ident.span()=>
        ::delira::__private::torch::network::<Self>
    };
    constructor_items(
        &model.ident,
        &model.vis,
        model.config.as_ref(),
        &quote! {
            <Self as ::delira::__private::torch::DeclaredModel>::build(path, config)
        },
        &quote! {
            #declared(
                device,
                config,
                optimizer.into(),
                loss.into(),
            )
        },
    )
}

fn constructor_items(
    ident: &Ident,
    vis: &syn::Visibility,
    config: Option<&Type>,
    new_body: &TokenStream,
    network_body: &TokenStream,
) -> TokenStream {
    let private = quote!(::delira::__private::torch);
    let (config_param, config_arg, config_doc) = match config {
        Some(ty) => (quote!(config: &#ty,), quote!(), " from `config`"),
        None => (quote!(), quote!(let config = &();), ""),
    };
    let new_doc = format!(
        "Builds the layers{config_doc} under `path`: layer `x` gets the variables `x.weight`, \
         `x.bias`, ... Fails, naming the layer, when an argument is out of range."
    );
    let network_doc = format!(
        "The network: the layers built{config_doc} on `device`, with `optimizer` and `loss`, \
         reading and reporting the batch fields of the declaration."
    );
    quote! {
        #[automatically_derived]
        impl #ident {
            #[doc = #new_doc]
            #vis fn new(
                path: &#private::nn::Path<'_>,
                #config_param
            ) -> ::core::result::Result<Self, #private::BackendError> {
                #config_arg
                #new_body
            }

            #[doc = #network_doc]
            #vis fn network(
                #config_param
                device: #private::Device,
                optimizer: impl ::core::convert::Into<#private::OptimizerConfig>,
                loss: impl ::core::convert::Into<#private::LossConfig>,
            ) -> ::core::result::Result<#private::TorchNetwork<Self>, #private::BackendError> {
                #config_arg
                #network_body
            }
        }
    }
}

/// What is emitted next to the errors: the item, and where the backend is compiled in, the
/// generated constructors with no behaviour, so that code using them adds no errors of its own.
pub fn stub(item: &Item, config: Option<&Type>) -> TokenStream {
    let mut out = quote!(#item);
    if !cfg!(feature = "torch") {
        return out;
    }
    let Item::Struct(strukt) = item else {
        return out;
    };
    if !strukt.generics.params.is_empty() {
        return out;
    }
    let unreachable = quote!(::core::unreachable!("`#[delira::model]` reported an error"));
    out.extend(constructor_items(
        &strukt.ident,
        &strukt.vis,
        config,
        &quote!(let _ = (path, config); #unreachable),
        &quote!(let _ = (config, device, optimizer, loss); #unreachable),
    ));
    out
}
