//! Phase 2: every rule about roles and options, checked in one place; all violations are
//! reported together.
//!
//! Rules about types (a `nifti` file on a field that is not an image, a weight that is not a
//! float) are left to the compiler: the expansion names trait bounds at the field's type, so a
//! type alias is judged by what it stands for.

use proc_macro2::Span;
use syn::{Ident, LitStr, Type, Visibility};

use super::parse::{self, Input, OptValue, Role, RoleAttr};
use crate::diag::Errors;

/// A struct that passed validation: one role per field, options checked.
pub struct Model {
    pub ident: Ident,
    pub vis: Visibility,
    pub fields: Vec<Field>,
}

/// One field with its role and options resolved.
pub struct Field {
    pub ident: Ident,
    pub ty: Type,
    pub role: Role,
    pub nifti: Option<LitStr>,
    pub column: String,
    pub subject: bool,
    pub class: bool,
    pub normalize: Option<&'static str>,
    pub dtype: Option<&'static str>,
    pub channel_axis: Option<&'static str>,
}

/// Roles of which a sample has at most one field, with the field that took it first.
struct Unique {
    what: &'static str,
    first: Option<String>,
}

impl Unique {
    fn new(what: &'static str) -> Self {
        Self { what, first: None }
    }

    fn claim(&mut self, field: &Ident, span: Span, errors: &mut Errors) {
        match &self.first {
            None => self.first = Some(field.to_string()),
            Some(first) => errors.at(
                span,
                format!(
                    "a sample has one {}, and field `{first}` is already it; remove this one or \
                     give it another role",
                    self.what
                ),
            ),
        }
    }
}

/// Checks every rule, recording violations in `errors` (which may already hold the parse
/// phase's).
pub fn validate(input: Input, errors: &mut Errors) -> Model {
    if let Some(span) = input.generics {
        errors.at(
            span,
            "`#[derive(Dataset)]` does not take generic parameters; use concrete field types",
        );
    }

    let mut weight = Unique::new("`#[weight]` field");
    let mut group = Unique::new("`#[group]` field");
    let mut class = Unique::new("class label (`#[class]` or `#[target(class)]`)");
    let mut subject = Unique::new("subject id (`#[meta(subject)]`)");
    let mut columns: Vec<(String, String)> = Vec::new();
    let mut fields = Vec::new();

    for field in input.fields {
        let name = field.ident.to_string();
        let Some(first) = field.roles.first() else {
            errors.at(
                field.ident.span(),
                format!(
                    "field `{name}` has no role; mark it {}",
                    parse::list(&[
                        "#[input]",
                        "#[target]",
                        "#[meta]",
                        "#[weight]",
                        "#[group]",
                        "#[class]"
                    ])
                ),
            );
            continue;
        };
        for extra in &field.roles[1..] {
            errors.at(
                extra.span,
                format!(
                    "field `{name}` already has the role `#[{}]`; a field has one role, so keep \
                     one attribute",
                    first.role.name()
                ),
            );
        }

        let role = first.role;
        let mut resolved = Field {
            ident: field.ident.clone(),
            ty: field.ty,
            role,
            nifti: None,
            column: name.clone(),
            subject: false,
            class: role == Role::Class,
            normalize: None,
            dtype: None,
            channel_axis: None,
        };
        let column_span = resolve_options(first, &mut resolved, errors);

        match role {
            Role::Weight => weight.claim(&field.ident, first.span, errors),
            Role::Group => group.claim(&field.ident, first.span, errors),
            _ => {}
        }
        if resolved.class {
            class.claim(&field.ident, first.span, errors);
        }
        if resolved.subject {
            subject.claim(&field.ident, first.span, errors);
        }
        match columns
            .iter()
            .find(|(column, _)| *column == resolved.column)
        {
            Some((column, other)) => errors.at(
                column_span,
                format!(
                    "column `{column}` is already the column of field `{other}`; name another \
                     with `column = \"...\"`"
                ),
            ),
            None => columns.push((resolved.column.clone(), name)),
        }
        fields.push(resolved);
    }

    if !fields.iter().any(|f| f.role == Role::Input) {
        errors.at(
            input.ident.span(),
            format!(
                "`{}` has no `#[input]` field; mark the field the network reads with `#[input]`",
                input.ident
            ),
        );
    }

    Model {
        ident: input.ident,
        vis: input.vis,
        fields,
    }
}

/// Applies the options of a field's role attribute; returns the span of its column name.
fn resolve_options(attr: &RoleAttr, resolved: &mut Field, errors: &mut Errors) -> Span {
    let role = attr.role;
    let mut column_span = resolved.ident.span();
    let mut seen: Vec<String> = Vec::new();
    for opt in &attr.options {
        let key = opt.key.to_string();
        if seen.contains(&key) {
            errors.at(
                opt.key.span(),
                format!("duplicate option `{key}`; keep one"),
            );
            continue;
        }
        seen.push(key.clone());
        if !role.options().contains(&key.as_str()) {
            errors.at(
                opt.key.span(),
                format!(
                    "`#[{}]` takes no option `{key}`; it takes {}",
                    role.name(),
                    parse::list(role.options())
                ),
            );
            continue;
        }
        match &opt.value {
            OptValue::Nifti(lit) => {
                check_template(lit, errors);
                resolved.nifti = Some(lit.clone());
            }
            OptValue::Column(lit) => {
                if lit.value().trim().is_empty() {
                    errors.at(lit.span(), "the column name is empty; name a CSV column");
                }
                resolved.column = lit.value();
                column_span = lit.span();
            }
            OptValue::Subject => resolved.subject = true,
            OptValue::Class => resolved.class = true,
            OptValue::Normalize(v) => resolved.normalize = Some(v),
            OptValue::Dtype(v) => resolved.dtype = Some(v),
            OptValue::ChannelAxis(v) => resolved.channel_axis = Some(v),
        }
    }
    column_span
}

/// A template names a file inside the subject's folder; `{subject}` is its only placeholder.
fn check_template(lit: &LitStr, errors: &mut Errors) {
    let template = lit.value();
    if template.trim().is_empty() {
        errors.at(
            lit.span(),
            "the file template is empty; name the file, such as `nifti = \"t1.nii.gz\"`",
        );
        return;
    }
    let mut rest = template.as_str();
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            errors.at(
                lit.span(),
                "unclosed `{` in the file template; write the placeholder as `{subject}`",
            );
            return;
        };
        let name = &after[..close];
        if name != "subject" {
            errors.at(
                lit.span(),
                format!(
                    "unknown placeholder `{{{name}}}` in the file template; the only \
                     placeholder is `{{subject}}`"
                ),
            );
        }
        rest = &after[close + 1..];
    }
    if template.starts_with('/') {
        errors.at(
            lit.span(),
            "the file template is an absolute path; name the file relative to the subject's folder",
        );
    }
}
