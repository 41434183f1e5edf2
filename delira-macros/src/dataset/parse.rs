//! Phase 1: `syn`'s derive input into our own model, spans kept.
//!
//! Parsing accepts anything that is well-formed attribute syntax; which options fit which role,
//! duplicates, and rules across fields are checked by [`super::validate`].

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{Attribute, Data, DeriveInput, Fields, Ident, LitStr, Meta, Token, Type, Visibility};

use crate::diag::Errors;

/// The struct, as the derive sees it.
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
    /// Every role attribute on the field, in order (validation wants exactly one).
    pub roles: Vec<RoleAttr>,
}

/// A role attribute such as `#[input(nifti = "t1.nii.gz")]`.
pub struct RoleAttr {
    pub role: Role,
    /// The span of the attribute's name.
    pub span: Span,
    pub options: Vec<Opt>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Input,
    Target,
    Meta,
    Weight,
    Group,
    Class,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::Input,
        Role::Target,
        Role::Meta,
        Role::Weight,
        Role::Group,
        Role::Class,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Role::Input => "input",
            Role::Target => "target",
            Role::Meta => "meta",
            Role::Weight => "weight",
            Role::Group => "group",
            Role::Class => "class",
        }
    }

    fn from_attr(attr: &Attribute) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|r| attr.path().is_ident(r.name()))
    }

    /// The options the role takes, in the order the docs list them.
    pub fn options(self) -> &'static [&'static str] {
        match self {
            Role::Input => &["nifti", "column", "normalize", "dtype", "channel_axis"],
            Role::Target => &[
                "nifti",
                "column",
                "normalize",
                "dtype",
                "channel_axis",
                "class",
            ],
            Role::Meta => &["column", "subject"],
            Role::Weight | Role::Group => &["column"],
            Role::Class => &["column", "dtype"],
        }
    }
}

/// One option inside a role attribute.
pub struct Opt {
    pub key: Ident,
    pub value: OptValue,
}

pub enum OptValue {
    Nifti(LitStr),
    Column(LitStr),
    Subject,
    Class,
    Normalize(&'static str),
    Dtype(&'static str),
    ChannelAxis(&'static str),
}

/// Every option any role takes, for the "unknown option" message.
const OPTIONS: [&str; 7] = [
    "nifti",
    "column",
    "normalize",
    "dtype",
    "channel_axis",
    "class",
    "subject",
];

/// Parses the struct. Errors in attributes are recorded in `errors` and parsing goes on past
/// them, so that validation still sees every field; `None` when the input is no struct with
/// named fields.
pub fn parse(input: &DeriveInput, errors: &mut Errors) -> Option<Input> {
    let named = match &input.data {
        Data::Struct(data) => match &data.fields {
            Fields::Named(named) => Some(named),
            Fields::Unnamed(_) | Fields::Unit => {
                errors.at(
                    input.ident.span(),
                    "`#[derive(Dataset)]` needs named fields; give each field a name and a role",
                );
                None
            }
        },
        Data::Enum(data) => {
            errors.at(
                data.enum_token.span,
                "`#[derive(Dataset)]` needs a struct, not an enum; declare one struct per sample",
            );
            None
        }
        Data::Union(data) => {
            errors.at(
                data.union_token.span,
                "`#[derive(Dataset)]` needs a struct, not a union; declare one struct per sample",
            );
            None
        }
    };

    let fields = named?
        .named
        .iter()
        .filter_map(|field| {
            let ident = field.ident.clone()?;
            let roles = field
                .attrs
                .iter()
                .filter_map(|attr| {
                    if let Some(role) = Role::from_attr(attr) {
                        return Some(parse_role(attr, role, errors));
                    }
                    // The compiler reports a misspelt role (`#[inptu]`) as an unknown attribute
                    // and suggests the right one; taking it as meant avoids adding errors.
                    let role = misspelt_role(attr)?;
                    Some(parse_role(attr, role, &mut Errors::default()))
                })
                .collect();
            Some(Field {
                ident,
                ty: field.ty.clone(),
                roles,
            })
        })
        .collect();

    let generics = (!input.generics.params.is_empty()).then(|| input.generics.span());
    Some(Input {
        ident: input.ident.clone(),
        vis: input.vis.clone(),
        generics,
        fields,
    })
}

fn misspelt_role(attr: &Attribute) -> Option<Role> {
    let name = attr.path().get_ident()?.to_string();
    Role::ALL
        .into_iter()
        .find(|role| edit_distance(role.name(), &name) <= 2)
}

fn parse_role(attr: &Attribute, role: Role, errors: &mut Errors) -> RoleAttr {
    let mut options = Vec::new();
    let span = attr.path().span();
    match &attr.meta {
        Meta::Path(_) => {}
        Meta::NameValue(nv) => errors.at(
            nv.eq_token.span,
            format!(
                "`#[{0}]` takes options in parentheses; write `#[{0}(...)]`",
                role.name()
            ),
        ),
        Meta::List(_) => {
            let result = attr.parse_nested_meta(|meta| {
                let Some(key) = meta.path.get_ident().cloned() else {
                    return Err(meta.error(format!(
                        "expected an option name; `#[{}]` takes {}",
                        role.name(),
                        list(role.options())
                    )));
                };
                if let Some(value) = parse_option(&key, &meta, role, errors)? {
                    options.push(Opt { key, value });
                }
                Ok(())
            });
            errors.take(result);
        }
    }
    RoleAttr {
        role,
        span,
        options,
    }
}

/// Parses one option; an unknown name or value is recorded and skipped, so that later options
/// are still checked.
fn parse_option(
    key: &Ident,
    meta: &syn::meta::ParseNestedMeta<'_>,
    role: Role,
    errors: &mut Errors,
) -> syn::Result<Option<OptValue>> {
    let name = key.to_string();
    let choice = |lit: &LitStr, choices: &'static [&'static str], errors: &mut Errors| {
        let value = lit.value();
        let found = choices.iter().copied().find(|c| *c == value);
        if found.is_none() {
            let what = match name.as_str() {
                "normalize" => "normalisation",
                "channel_axis" => "channel axis",
                _ => "dtype",
            };
            errors.at(
                lit.span(),
                format!("unknown {what} `{value}`; expected {}", list(choices)),
            );
        }
        found
    };
    Ok(match name.as_str() {
        "nifti" => Some(OptValue::Nifti(meta.value()?.parse()?)),
        "column" => Some(OptValue::Column(meta.value()?.parse()?)),
        "subject" | "class" => {
            if meta.input.peek(Token![=]) {
                return Err(meta.error(format!("`{name}` takes no value; write just `{name}`")));
            }
            Some(if name == "subject" {
                OptValue::Subject
            } else {
                OptValue::Class
            })
        }
        "normalize" => {
            let lit: LitStr = meta.value()?.parse()?;
            choice(
                &lit,
                &["zscore", "zscore_nonzero", "minmax", "none"],
                errors,
            )
            .map(OptValue::Normalize)
        }
        "dtype" => {
            let lit: LitStr = meta.value()?.parse()?;
            choice(&lit, &["f32", "i64"], errors).map(OptValue::Dtype)
        }
        "channel_axis" => {
            let lit: LitStr = meta.value()?.parse()?;
            choice(&lit, &["first", "last"], errors).map(OptValue::ChannelAxis)
        }
        _ => {
            let hint = if OPTIONS.contains(&name.as_str()) {
                String::new()
            } else {
                close_match(&name).map_or_else(String::new, |c| format!(" (did you mean `{c}`?)"))
            };
            errors.at(
                key.span(),
                format!(
                    "unknown option `{name}` for `#[{}]`{hint}; expected {}",
                    role.name(),
                    list(role.options())
                ),
            );
            if meta.input.peek(Token![=]) {
                meta.value()?.parse::<syn::Expr>()?;
            } else if meta.input.peek(syn::token::Paren) {
                meta.parse_nested_meta(|inner| {
                    if inner.input.peek(Token![=]) {
                        inner.value()?.parse::<syn::Expr>()?;
                    }
                    Ok(())
                })?;
            }
            None
        }
    })
}

/// A known option name within one edit of `name`, for a "did you mean" hint.
fn close_match(name: &str) -> Option<&'static str> {
    OPTIONS.into_iter().find(|o| edit_distance(o, name) <= 2)
}

pub fn edit_distance(a: &str, b: &str) -> usize {
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
    match items {
        [] => "no option".to_owned(),
        [one] => format!("`{one}`"),
        [init @ .., last] => {
            let init: Vec<String> = init.iter().map(|i| format!("`{i}`")).collect();
            format!("{} or `{last}`", init.join(", "))
        }
    }
}
