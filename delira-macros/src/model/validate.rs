//! Phase 2: every rule about the attribute and the layers, checked in one place; all violations
//! are reported together.
//!
//! Arguments are expressions evaluated when the model is built (they may read the `config`), so
//! only literals are judged here (a literal `0` channels, a string where a number goes); the
//! generated code checks every value again at run time. Type rules (a layer whose kind does not
//! fit the field's type, a missing forward pass) are left to the compiler, at the user's tokens.

use proc_macro2::{Span, TokenStream, TokenTree};
use syn::spanned::Spanned;
use syn::{Expr, Ident, Lit, LitStr, Type, Visibility};

use super::parse::{self, Arg, ArgValue, Input, LayerArg, close_match, list, list_all};
use crate::diag::Errors;

/// How an argument is checked and converted.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// An integer of at least 1 (channels, kernel size, stride).
    Size,
    /// An integer of at least 0 (padding).
    Offset,
    /// An optional index (embedding `padding_idx`).
    Index,
    /// A non-negative number.
    Float,
    /// A `bool` expression.
    Bool,
    /// A string literal naming a padding mode.
    PaddingMode,
    /// Any expression of the field's type (`module`).
    Module,
}

/// One argument of a layer kind.
#[derive(Clone, Copy)]
pub struct Param {
    pub name: &'static str,
    pub class: Class,
}

const fn p(name: &'static str, class: Class) -> Param {
    Param { name, class }
}

/// A layer kind: its positional and keyword arguments, and the runtime options struct the
/// keywords fill.
pub struct Kind {
    pub name: &'static str,
    pub positional: &'static [Param],
    pub keywords: &'static [Param],
    /// The options type and the function giving its defaults, when the kind takes keywords.
    pub options: Option<(&'static str, &'static str)>,
}

const CONV: &[Param] = &[
    p("in_channels", Class::Size),
    p("out_channels", Class::Size),
    p("kernel_size", Class::Size),
];
const CONV_KEYWORDS: &[Param] = &[
    p("stride", Class::Size),
    p("padding", Class::Offset),
    p("dilation", Class::Size),
    p("groups", Class::Size),
    p("bias", Class::Bool),
    p("padding_mode", Class::PaddingMode),
];
const TRANSPOSE_KEYWORDS: &[Param] = &[
    p("stride", Class::Size),
    p("padding", Class::Offset),
    p("output_padding", Class::Offset),
    p("dilation", Class::Size),
    p("groups", Class::Size),
    p("bias", Class::Bool),
];
const BATCH_NORM_KEYWORDS: &[Param] = &[
    p("eps", Class::Float),
    p("momentum", Class::Float),
    p("affine", Class::Bool),
];
const NORM_KEYWORDS: &[Param] = &[p("eps", Class::Float), p("affine", Class::Bool)];
const CONV_OPTIONS: Option<(&str, &str)> = Some(("ConvOptions", "default"));
const TRANSPOSE_OPTIONS: Option<(&str, &str)> = Some(("ConvTransposeOptions", "default"));
const BATCH_NORM_OPTIONS: Option<(&str, &str)> = Some(("BatchNormOptions", "default"));

/// Every layer kind, in the order the docs list them.
pub const KINDS: &[Kind] = &[
    Kind {
        name: "conv1d",
        positional: CONV,
        keywords: CONV_KEYWORDS,
        options: CONV_OPTIONS,
    },
    Kind {
        name: "conv2d",
        positional: CONV,
        keywords: CONV_KEYWORDS,
        options: CONV_OPTIONS,
    },
    Kind {
        name: "conv3d",
        positional: CONV,
        keywords: CONV_KEYWORDS,
        options: CONV_OPTIONS,
    },
    Kind {
        name: "conv_transpose1d",
        positional: CONV,
        keywords: TRANSPOSE_KEYWORDS,
        options: TRANSPOSE_OPTIONS,
    },
    Kind {
        name: "conv_transpose2d",
        positional: CONV,
        keywords: TRANSPOSE_KEYWORDS,
        options: TRANSPOSE_OPTIONS,
    },
    Kind {
        name: "conv_transpose3d",
        positional: CONV,
        keywords: TRANSPOSE_KEYWORDS,
        options: TRANSPOSE_OPTIONS,
    },
    Kind {
        name: "linear",
        positional: &[
            p("in_features", Class::Size),
            p("out_features", Class::Size),
        ],
        keywords: &[p("bias", Class::Bool)],
        options: Some(("LinearOptions", "default")),
    },
    Kind {
        name: "batch_norm1d",
        positional: &[p("channels", Class::Size)],
        keywords: BATCH_NORM_KEYWORDS,
        options: BATCH_NORM_OPTIONS,
    },
    Kind {
        name: "batch_norm2d",
        positional: &[p("channels", Class::Size)],
        keywords: BATCH_NORM_KEYWORDS,
        options: BATCH_NORM_OPTIONS,
    },
    Kind {
        name: "batch_norm3d",
        positional: &[p("channels", Class::Size)],
        keywords: BATCH_NORM_KEYWORDS,
        options: BATCH_NORM_OPTIONS,
    },
    Kind {
        name: "group_norm",
        positional: &[p("groups", Class::Size), p("channels", Class::Size)],
        keywords: NORM_KEYWORDS,
        options: Some(("NormOptions", "group")),
    },
    Kind {
        name: "instance_norm",
        positional: &[p("channels", Class::Size)],
        keywords: NORM_KEYWORDS,
        options: Some(("NormOptions", "instance")),
    },
    Kind {
        name: "embedding",
        positional: &[
            p("num_embeddings", Class::Size),
            p("embedding_dim", Class::Size),
        ],
        keywords: &[
            p("padding_idx", Class::Index),
            p("sparse", Class::Bool),
            p("scale_grad_by_freq", Class::Bool),
        ],
        options: Some(("EmbeddingOptions", "default")),
    },
    Kind {
        name: "module",
        positional: &[p("expression", Class::Module)],
        keywords: &[],
        options: None,
    },
];

/// The padding modes of a convolution, as written and as `tch::nn::PaddingMode` variants.
pub const PADDING_MODES: [(&str, &str); 4] = [
    ("zeros", "Zeros"),
    ("reflect", "Reflect"),
    ("replicate", "Replicate"),
    ("circular", "Circular"),
];

/// A model that passed validation.
pub struct Model {
    pub ident: Ident,
    pub vis: Visibility,
    pub config: Option<Type>,
    pub input: String,
    pub target: String,
    pub output: String,
    pub layers: Vec<Layer>,
}

/// One field with its layer resolved.
pub struct Layer {
    pub ident: Ident,
    pub ty: Type,
    pub kind: &'static Kind,
    /// The span of the kind's name in `#[layer(kind(...))]`.
    pub kind_span: Span,
    /// The arguments in the kind's order: every positional one, then the keywords given.
    pub args: Vec<(Param, Expr)>,
}

/// The attribute's keys, once each.
#[derive(Default)]
struct Keys {
    /// Keys given with a value that did not parse (already reported).
    invalid: Vec<String>,
    backend: Option<LitStr>,
    config: Option<Type>,
    input: Option<LitStr>,
    target: Option<LitStr>,
    output: Option<LitStr>,
}

/// Checks every rule, recording violations in `errors` (which may already hold the parse
/// phase's). The backend's cargo feature is checked last, and only when nothing else is wrong:
/// the declaration's own mistakes read the same whether or not the feature is on.
pub fn validate(args: Vec<Arg>, input: Input, errors: &mut Errors) -> Model {
    let keys = keys(args, errors);
    if let Some(span) = input.generics {
        errors.at(
            span,
            "`#[delira::model]` does not take generic parameters; read sizes from a `config` \
             type instead",
        );
    }
    let backend = if keys.invalid.iter().any(|k| k == "backend") {
        None
    } else {
        backend(keys.backend.as_ref(), errors)
    };

    let mut layers = Vec::new();
    for field in input.fields {
        let mut attrs = field.layers.into_iter();
        let Some(first) = attrs.next() else {
            errors.at(
                field.ident.span(),
                format!(
                    "field `{}` has no layer; declare it with `#[layer(conv3d(...))]`, another \
                     layer kind, or `#[layer(module(expression))]` for a sub-module",
                    field.ident
                ),
            );
            continue;
        };
        for extra in attrs {
            errors.at(
                extra.span,
                format!(
                    "field `{}` has a second `#[layer]`; a field holds one layer, so declare \
                     another field",
                    field.ident
                ),
            );
        }
        let Some(call) = first.call else { continue };
        if let Some(layer) = layer(field.ident, field.ty, call, errors) {
            layers.push(layer);
        }
    }
    if layers.is_empty() && errors.is_empty() {
        errors.at(
            input.ident.span(),
            format!(
                "model `{}` declares no layer; add fields such as `#[layer(conv3d(1, 8, 3))] \
                 conv: nn::Conv3D`",
                input.ident
            ),
        );
    }
    if keys.config.is_none() {
        for layer in &layers {
            for (_, expr) in &layer.args {
                if let Some(span) = find_ident(expr.to_token_stream_ref(), "config") {
                    errors.at(
                        span,
                        "a layer argument reads `config` but the model declares no configuration \
                         type; add `config = YourConfig` to `#[delira::model(...)]`",
                    );
                }
            }
        }
    }

    let text = |lit: Option<LitStr>, default: &str, errors: &mut Errors| match lit {
        Some(lit) if lit.value().is_empty() => {
            errors.at(lit.span(), "a batch field name cannot be empty");
            String::new()
        }
        Some(lit) => lit.value(),
        None => default.to_owned(),
    };
    let input_field = text(keys.input, "image", errors);
    let target = text(keys.target, "label", errors);
    let output = text(keys.output, "logits", errors);

    if errors.is_empty()
        && let Some((name, span)) = backend
    {
        feature_enabled(name, span, errors);
    }
    Model {
        ident: input.ident,
        vis: input.vis,
        config: keys.config,
        input: input_field,
        target,
        output,
        layers,
    }
}

trait ToTokensRef {
    fn to_token_stream_ref(&self) -> TokenStream;
}

impl ToTokensRef for Expr {
    fn to_token_stream_ref(&self) -> TokenStream {
        quote::ToTokens::to_token_stream(self)
    }
}

/// The span of the first identifier `name` in `tokens`, groups included.
fn find_ident(tokens: TokenStream, name: &str) -> Option<Span> {
    tokens.into_iter().find_map(|tree| match tree {
        TokenTree::Ident(ident) if ident == name => Some(ident.span()),
        TokenTree::Group(group) => find_ident(group.stream(), name),
        _ => None,
    })
}

fn keys(args: Vec<Arg>, errors: &mut Errors) -> Keys {
    let mut keys = Keys::default();
    for arg in args {
        let name = arg.key.to_string();
        let duplicate = match (name.as_str(), arg.value) {
            (known, ArgValue::Invalid) if parse::KEYS.contains(&known) => {
                keys.invalid.push(name.clone());
                false
            }
            ("config", ArgValue::Type(ty)) => keys.config.replace(*ty).is_some(),
            ("backend", ArgValue::Text(lit)) => keys.backend.replace(lit).is_some(),
            ("input", ArgValue::Text(lit)) => keys.input.replace(lit).is_some(),
            ("target", ArgValue::Text(lit)) => keys.target.replace(lit).is_some(),
            ("output", ArgValue::Text(lit)) => keys.output.replace(lit).is_some(),
            _ => {
                let hint = close_match(&name, &parse::KEYS)
                    .map_or_else(String::new, |k| format!(" (did you mean `{k}`?)"));
                errors.at(
                    arg.key.span(),
                    format!(
                        "unknown key `{name}`{hint}; expected {}",
                        list(&parse::KEYS)
                    ),
                );
                false
            }
        };
        if duplicate {
            errors.at(arg.key.span(), format!("duplicate key `{name}`; keep one"));
        }
    }
    keys
}

/// The backend's name and span, when it is one delira has.
fn backend(lit: Option<&LitStr>, errors: &mut Errors) -> Option<(&'static str, Span)> {
    let Some(lit) = lit else {
        errors.at(
            Span::call_site(),
            "`#[delira::model]` needs a backend; write `#[delira::model(backend = \"torch\")]`",
        );
        return None;
    };
    match lit.value().as_str() {
        "torch" => Some(("torch", lit.span())),
        "tensorflow" => {
            errors.at(
                lit.span(),
                "the `tensorflow` backend is not available for models yet; declare the model \
                 with `backend = \"torch\"` for now",
            );
            None
        }
        other => {
            let hint = close_match(other, &["torch", "tensorflow"])
                .map_or_else(String::new, |k| format!(" (did you mean `{k}`?)"));
            errors.at(
                lit.span(),
                format!("unknown backend `{other}`{hint}; expected `torch`"),
            );
            None
        }
    }
}

fn feature_enabled(backend: &str, span: Span, errors: &mut Errors) {
    let enabled = backend == "torch" && cfg!(feature = "torch");
    if !enabled {
        errors.at(
            span,
            format!(
                "the `{backend}` backend is not compiled in; enable the cargo feature \
                 `{backend}` of `delira` (`delira = {{ features = [\"{backend}\"] }}`)"
            ),
        );
    }
}

fn layer(ident: Ident, ty: Type, call: parse::LayerCall, errors: &mut Errors) -> Option<Layer> {
    let name = call.kind.to_string();
    let Some(kind) = KINDS.iter().find(|k| k.name == name) else {
        let names: Vec<&str> = KINDS.iter().map(|k| k.name).collect();
        let hint = close_match(&name, &names)
            .map_or_else(String::new, |k| format!(" (did you mean `{k}`?)"));
        errors.at(
            call.kind.span(),
            format!(
                "unknown layer kind `{name}`{hint}; expected {}",
                list(&names)
            ),
        );
        return None;
    };

    let mut positional = Vec::new();
    let mut keywords: Vec<(Param, Ident, Expr)> = Vec::new();
    let mut ok = true;
    for arg in call.args {
        match arg {
            LayerArg::Positional(expr) => {
                if let Some((_, key, _)) = keywords.last() {
                    errors.at(
                        expr.span(),
                        format!(
                            "positional argument after keyword `{key}`; write the positional \
                             arguments first"
                        ),
                    );
                    ok = false;
                }
                positional.push(expr);
            }
            LayerArg::Keyword(key, expr) => {
                let key_name = key.to_string();
                let Some(param) = kind.keywords.iter().find(|p| p.name == key_name) else {
                    unknown_keyword(kind, &key, errors);
                    ok = false;
                    continue;
                };
                if keywords.iter().any(|(p, ..)| p.name == key_name) {
                    errors.at(
                        key.span(),
                        format!("duplicate keyword `{key_name}`; keep one"),
                    );
                    ok = false;
                    continue;
                }
                keywords.push((*param, key, expr));
            }
        }
    }

    if positional.len() != kind.positional.len() {
        let names: Vec<&str> = kind.positional.iter().map(|p| p.name).collect();
        let count = kind.positional.len();
        errors.at(
            call.args_span,
            format!(
                "`{name}` takes {count} positional argument{} ({}), found {}",
                if count == 1 { "" } else { "s" },
                list_all(&names),
                positional.len()
            ),
        );
        return None;
    }

    let mut args = Vec::new();
    for (param, expr) in kind.positional.iter().zip(positional) {
        ok &= check_literal(name.as_str(), *param, &expr, errors);
        args.push((*param, expr));
    }
    for (param, _, expr) in keywords {
        ok &= check_literal(name.as_str(), param, &expr, errors);
        args.push((param, expr));
    }
    ok.then(|| Layer {
        ident,
        ty,
        kind,
        kind_span: call.kind.span(),
        args,
    })
}

fn unknown_keyword(kind: &Kind, key: &Ident, errors: &mut Errors) {
    let key_name = key.to_string();
    let names: Vec<&str> = kind.keywords.iter().map(|p| p.name).collect();
    if names.is_empty() {
        errors.at(
            key.span(),
            format!(
                "`{}` takes no keyword arguments, found `{key_name}`",
                kind.name
            ),
        );
        return;
    }
    let hint = close_match(&key_name, &names)
        .map_or_else(String::new, |k| format!(" (did you mean `{k}`?)"));
    errors.at(
        key.span(),
        format!(
            "unknown keyword `{key_name}` for `{}`{hint}; expected {}",
            kind.name,
            list(&names)
        ),
    );
}

/// A literal's value, with a minus sign folded in.
enum Literal {
    Int(i128),
    Float,
    Bool,
    Str(LitStr),
    Other,
}

fn literal(expr: &Expr) -> Option<Literal> {
    match expr {
        Expr::Lit(lit) => Some(match &lit.lit {
            Lit::Int(int) => int
                .base10_parse::<i128>()
                .map_or(Literal::Other, Literal::Int),
            Lit::Float(_) => Literal::Float,
            Lit::Bool(_) => Literal::Bool,
            Lit::Str(s) => Literal::Str(s.clone()),
            _ => Literal::Other,
        }),
        Expr::Unary(unary) if matches!(unary.op, syn::UnOp::Neg(_)) => {
            match literal(&unary.expr)? {
                Literal::Int(v) => Some(Literal::Int(-v)),
                Literal::Float => Some(Literal::Float),
                _ => Some(Literal::Other),
            }
        }
        Expr::Paren(paren) => literal(&paren.expr),
        Expr::Group(group) => literal(&group.expr),
        _ => None,
    }
}

/// Checks what can be known of an argument before run time; `false` after an error.
fn check_literal(kind: &str, param: Param, expr: &Expr, errors: &mut Errors) -> bool {
    let name = param.name;
    let literal = literal(expr);
    let problem = match (param.class, literal) {
        (Class::PaddingMode, Some(Literal::Str(s))) => {
            let value = s.value();
            let names: Vec<&str> = PADDING_MODES.iter().map(|m| m.0).collect();
            (!names.contains(&value.as_str()))
                .then(|| format!("unknown padding mode `{value}`; expected {}", list(&names)))
        }
        (Class::PaddingMode, _) => Some(format!(
            "`{name}` of `{kind}` must be a string literal: {}",
            list(&PADDING_MODES.map(|m| m.0))
        )),
        (Class::Float, Some(Literal::Int(v))) if v < 0 => Some(format!(
            "`{name}` of `{kind}` is {v}; use zero or a positive number"
        )),
        (_, None)
        | (Class::Float, Some(Literal::Int(_) | Literal::Float))
        | (Class::Bool, Some(Literal::Bool)) => None,
        (Class::Size | Class::Offset | Class::Index, Some(Literal::Int(v))) => {
            let least = i128::from(param.class == Class::Size);
            (v < least).then(|| {
                format!(
                    "`{name}` of `{kind}` is {v}; use {}",
                    if least == 1 {
                        "a positive number"
                    } else {
                        "zero or a positive number"
                    }
                )
            })
        }
        (Class::Size | Class::Offset | Class::Index, Some(_)) => {
            Some(format!("`{name}` of `{kind}` takes an integer"))
        }
        (Class::Float, Some(_)) => Some(format!("`{name}` of `{kind}` takes a number")),
        (Class::Bool, Some(_)) => Some(format!("`{name}` of `{kind}` takes `true` or `false`")),
        (Class::Module, Some(_)) => Some(
            "`module` takes an expression that builds the sub-module, such as \
             `module(Block::new(path, 8))`; `path` is the layer's `nn::Path`"
                .to_owned(),
        ),
    };
    match problem {
        Some(problem) => {
            errors.at(expr.span(), problem);
            false
        }
        None => true,
    }
}
