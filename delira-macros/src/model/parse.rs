//! Phase 1: the attribute's arguments and the struct into our own model, spans kept.
//!
//! Parsing accepts anything that is well-formed syntax; which keys, layer kinds and arguments
//! exist, duplicates and the rules across fields are checked by [`super::validate`].

use proc_macro2::{Span, TokenStream};
use syn::parse::{ParseStream, Parser};
use syn::spanned::Spanned;
use syn::{Attribute, Expr, Fields, Ident, Item, Token, Type, Visibility};

use crate::diag::Errors;

/// The keys of `#[delira::model(...)]`, in the order the docs list them.
pub const KEYS: [&str; 5] = ["backend", "config", "input", "target", "output"];

/// One `key = value` of the attribute.
pub struct Arg {
    pub key: Ident,
    pub value: ArgValue,
}

pub enum ArgValue {
    /// `backend`, `input`, `target`, `output`: a string literal.
    Text(syn::LitStr),
    /// `config`: a type.
    Type(Box<Type>),
    /// A value that did not parse (already reported): the key counts as given.
    Invalid,
}

/// The struct, as the attribute sees it.
pub struct Input {
    pub ident: Ident,
    pub vis: Visibility,
    /// The span of the generic parameters, when there are any (not supported).
    pub generics: Option<Span>,
    pub fields: Vec<Field>,
}

/// One named field.
pub struct Field {
    pub ident: Ident,
    pub ty: Type,
    /// Every `#[layer]` attribute on the field, in order (validation wants exactly one).
    pub layers: Vec<LayerAttr>,
}

/// A `#[layer(...)]` attribute.
pub struct LayerAttr {
    /// The span of the attribute's name.
    pub span: Span,
    /// The layer call, when the attribute holds one that parses.
    pub call: Option<LayerCall>,
}

/// `kind(arguments)` inside `#[layer(...)]`.
pub struct LayerCall {
    pub kind: Ident,
    /// The span of the parentheses' content, for "wrong number of arguments".
    pub args_span: Span,
    pub args: Vec<LayerArg>,
}

pub enum LayerArg {
    Positional(Expr),
    Keyword(Ident, Expr),
}

/// Parses the attribute's arguments; malformed ones are recorded and skipped.
pub fn parse_args(tokens: TokenStream, errors: &mut Errors) -> Vec<Arg> {
    let mut args = Vec::new();
    let mut value_errors = Errors::default();
    let parser = syn::meta::parser(|meta| {
        let Some(key) = meta.path.get_ident().cloned() else {
            return Err(meta.error(format!("expected a key; use {}", list(&KEYS))));
        };
        if !meta.input.peek(Token![=]) {
            return Err(meta.error(format!(
                "`{key}` takes a value; write `{key} = {}`",
                if key == "config" { "Type" } else { "\"...\"" }
            )));
        }
        let value = meta.value()?;
        let value = if !KEYS.iter().any(|k| key == k) {
            // Reported as an unknown key by validation, whatever the value.
            value.parse::<Expr>()?;
            ArgValue::Invalid
        } else if key == "config" {
            ArgValue::Type(Box::new(value.parse()?))
        } else if value.peek(syn::LitStr) {
            ArgValue::Text(value.parse()?)
        } else {
            let expr: Expr = value.parse()?;
            let found = quote::ToTokens::to_token_stream(&expr).to_string();
            value_errors.at(
                expr.span(),
                format!("`{key}` takes a string literal; write `{key} = \"{found}\"`"),
            );
            ArgValue::Invalid
        };
        args.push(Arg { key, value });
        Ok(())
    });
    let parsed = parser.parse2(tokens);
    errors.extend(value_errors);
    errors.take(parsed);
    args
}

/// Parses the item. Errors in `#[layer]` attributes are recorded and parsing goes on, so that
/// validation still sees every field; `None` when the item is no struct with named fields.
pub fn parse_item(item: &Item, errors: &mut Errors) -> Option<Input> {
    let strukt = match item {
        Item::Struct(s) => s,
        Item::Enum(e) => {
            errors.at(
                e.enum_token.span,
                "`#[delira::model]` needs a struct, not an enum; declare the layers as the fields \
                 of a struct",
            );
            return None;
        }
        Item::Union(u) => {
            errors.at(
                u.union_token.span,
                "`#[delira::model]` needs a struct, not a union; declare the layers as the fields \
                 of a struct",
            );
            return None;
        }
        other => {
            errors.at(
                other.span(),
                "`#[delira::model]` goes on a struct whose fields are layers",
            );
            return None;
        }
    };
    let Fields::Named(named) = &strukt.fields else {
        errors.at(
            strukt.ident.span(),
            "`#[delira::model]` needs named fields; give each layer a name, which also names its \
             parameters",
        );
        return None;
    };

    let fields = named
        .named
        .iter()
        .filter_map(|field| {
            let ident = field.ident.clone()?;
            let layers = field
                .attrs
                .iter()
                .filter(|a| is_layer(a))
                .map(|attr| parse_layer(attr, errors))
                .collect();
            Some(Field {
                ident,
                ty: field.ty.clone(),
                layers,
            })
        })
        .collect();
    let generics = (!strukt.generics.params.is_empty()).then(|| strukt.generics.span());
    Some(Input {
        ident: strukt.ident.clone(),
        vis: strukt.vis.clone(),
        generics,
        fields,
    })
}

/// Whether `attr` is `#[layer...]`.
pub fn is_layer(attr: &Attribute) -> bool {
    attr.path().is_ident("layer")
}

fn parse_layer(attr: &Attribute, errors: &mut Errors) -> LayerAttr {
    let span = attr.path().span();
    let call = match &attr.meta {
        syn::Meta::List(list) if list.tokens.is_empty() => {
            errors.at(
                list.delimiter.span().join(),
                "expected a layer such as `conv3d(1, 8, 3)` or `module(expression)` inside \
                 `#[layer(...)]`",
            );
            None
        }
        syn::Meta::List(list) => errors.take(parse_call.parse2(list.tokens.clone())),
        syn::Meta::Path(_) | syn::Meta::NameValue(_) => {
            errors.at(
                attr.meta.span(),
                "`#[layer]` takes the layer in parentheses; write `#[layer(conv3d(1, 8, 3))]` or \
                 `#[layer(module(expression))]`",
            );
            None
        }
    };
    LayerAttr { span, call }
}

fn parse_call(input: ParseStream<'_>) -> syn::Result<LayerCall> {
    let kind: Ident = input.parse().map_err(|e| {
        syn::Error::new(
            e.span(),
            "expected a layer kind such as `conv3d` or `module`, followed by its arguments",
        )
    })?;
    if !input.peek(syn::token::Paren) {
        return Err(syn::Error::new(
            kind.span(),
            format!("`{kind}` takes its arguments in parentheses; write `{kind}(...)`"),
        ));
    }
    let content;
    let parens = syn::parenthesized!(content in input);
    let mut args = Vec::new();
    while !content.is_empty() {
        let keyword = content.peek(Ident) && content.peek2(Token![=]) && !content.peek2(Token![==]);
        if keyword {
            let key: Ident = content.parse()?;
            content.parse::<Token![=]>()?;
            args.push(LayerArg::Keyword(key, content.parse()?));
        } else {
            args.push(LayerArg::Positional(content.parse()?));
        }
        if content.is_empty() {
            break;
        }
        content.parse::<Token![,]>()?;
    }
    if !input.is_empty() {
        return Err(input.error("unexpected tokens after the layer; one layer per field"));
    }
    Ok(LayerCall {
        kind,
        args_span: parens.span.join(),
        args,
    })
}

/// A known name within two edits of `name`, for a "did you mean" hint.
pub fn close_match<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .copied()
        .filter(|k| edit_distance(k, name) <= 2)
        .min_by_key(|k| edit_distance(k, name))
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// "`a`, `b` or `c`".
pub fn list(items: &[&str]) -> String {
    joined(items, "or")
}

/// "`a`, `b` and `c`".
pub fn list_all(items: &[&str]) -> String {
    joined(items, "and")
}

fn joined(items: &[&str], conjunction: &str) -> String {
    match items {
        [] => "nothing".to_owned(),
        [one] => format!("`{one}`"),
        [init @ .., last] => {
            let init: Vec<String> = init.iter().map(|i| format!("`{i}`")).collect();
            format!("{} {conjunction} `{last}`", init.join(", "))
        }
    }
}
