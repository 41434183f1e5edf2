//! `experiment!{}`'s input as written: `key: value` entries, each value parsed by its key's own
//! grammar, every span kept. A mistake in one entry is recorded and parsing goes on with the next,
//! so one compile shows every mistake.

use proc_macro2::TokenTree;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Expr, Ident, LitInt, Token, braced, bracketed, parenthesized};

use crate::diag::Errors;

/// The keys of the input and of the values' small grammars.
pub mod kw {
    syn::custom_keyword!(name);
    syn::custom_keyword!(backend);
    syn::custom_keyword!(data);
    syn::custom_keyword!(model);
    syn::custom_keyword!(split);
    syn::custom_keyword!(loader);
    syn::custom_keyword!(augment);
    syn::custom_keyword!(optimizer);
    syn::custom_keyword!(schedule);
    syn::custom_keyword!(loss);
    syn::custom_keyword!(metrics);
    syn::custom_keyword!(monitor);
    syn::custom_keyword!(early_stopping);
    syn::custom_keyword!(epochs);
    syn::custom_keyword!(seed);
    syn::custom_keyword!(checkpoint);
    syn::custom_keyword!(sinks);
    syn::custom_keyword!(test);
    syn::custom_keyword!(overfit);
    syn::custom_keyword!(params);
    syn::custom_keyword!(fingerprint);
    syn::custom_keyword!(predict);

    syn::custom_keyword!(torch);
    syn::custom_keyword!(tensorflow);
    syn::custom_keyword!(native);

    syn::custom_keyword!(kfold);
    syn::custom_keyword!(holdout);

    syn::custom_keyword!(sgd);
    syn::custom_keyword!(adam);
    syn::custom_keyword!(adamw);

    syn::custom_keyword!(cross_entropy);
    syn::custom_keyword!(bce_with_logits);
    syn::custom_keyword!(dice);
    syn::custom_keyword!(dice_ce);
    syn::custom_keyword!(focal);
    syn::custom_keyword!(mse);
    syn::custom_keyword!(l1);

    syn::custom_keyword!(min);
    syn::custom_keyword!(max);

    syn::custom_keyword!(csv);
    syn::custom_keyword!(jsonl);
    syn::custom_keyword!(tensorboard);
}

/// One `key: value` entry.
pub struct Entry {
    /// The key as written.
    pub key: Ident,
    /// Its value.
    pub value: Value,
}

/// A value, by key.
pub enum Value {
    /// `name: brain_tissue`
    Name(Ident),
    /// `backend: torch`
    Backend(Ident),
    /// `data: expr`
    Data(Expr),
    /// `model: |config| expr` or `model: expr`
    Model(Expr),
    /// `split: kfold(4, groups = |data| ..., validation = 0.2)`
    Split(Call),
    /// `loader: { batch_size: 4, workers: 2 }`
    Loader(Vec<Field>),
    /// `augment: expr`
    Augment(Expr),
    /// `optimizer: adam(lr = 1e-3)`
    Optimizer(Call),
    /// `schedule: expr`
    Schedule(Expr),
    /// `loss: dice_ce`
    Loss(Call),
    /// `metrics: [expr, ...]`
    Metrics(Vec<Expr>),
    /// `monitor: max(valid.dice_mean)`
    Monitor(Monitor),
    /// `early_stopping: 8`
    EarlyStopping(LitInt),
    /// `epochs: 30`
    Epochs(LitInt),
    /// `seed: 42`
    Seed(LitInt),
    /// `checkpoint: { keep_last: 2 }`
    Checkpoint(Vec<Field>),
    /// `sinks: [csv, jsonl]`
    Sinks(Vec<Ident>),
    /// `test: |network, data, indices| expr`
    Test(Expr),
    /// `overfit: { steps: 100, loss: 0.05 }`
    Overfit(Vec<Field>),
    /// `params: BrainParams`
    Params(Box<syn::Type>),
    /// `fingerprint: expr` or `fingerprint: |data| expr`
    Fingerprint(Expr),
    /// `predict: |network, data, indices, dir| expr`
    Predict(Expr),
}

/// `name`, `name(positional, key = value, ...)`.
pub struct Call {
    /// The name.
    pub name: Ident,
    /// Arguments without a name, in order.
    pub positional: Vec<Expr>,
    /// Arguments with a name, in order.
    pub named: Vec<Field>,
}

/// `key: value` in braces or `key = value` in a call.
pub struct Field {
    /// The key.
    pub key: Ident,
    /// The value.
    pub value: Expr,
}

/// `max(valid.dice_mean)`.
pub struct Monitor {
    /// `min` or `max`.
    pub mode: Ident,
    /// `train` or `valid`.
    pub part: Ident,
    /// The metric's name.
    pub metric: Ident,
}

/// The whole input: the entries that parsed.
pub struct Input {
    /// The entries, in order.
    pub entries: Vec<Entry>,
}

/// Parses the input, recording every entry's mistake in `errors`.
pub fn parse(tokens: proc_macro2::TokenStream, errors: &mut Errors) -> Input {
    let parser = |input: ParseStream<'_>| Ok(parse_entries(input, errors));
    match syn::parse::Parser::parse2(parser, tokens) {
        Ok(entries) => Input { entries },
        Err(error) => {
            errors.push(error);
            Input {
                entries: Vec::new(),
            }
        }
    }
}

fn parse_entries(input: ParseStream<'_>, errors: &mut Errors) -> Vec<Entry> {
    let mut entries = Vec::new();
    while !input.is_empty() {
        match parse_entry(input) {
            Ok(entry) => entries.push(entry),
            Err(error) => {
                errors.push(error);
                skip_to_next_entry(input);
            }
        }
        if input.is_empty() {
            break;
        }
        if let Err(error) = input.parse::<Token![,]>() {
            errors.push(syn::Error::new(
                error.span(),
                "expected `,` between entries; write `key: value,` once per line",
            ));
            skip_to_next_entry(input);
        }
    }
    entries
}

/// After a mistake: drops tokens up to the `,` that precedes the next `key:` (or the end).
fn skip_to_next_entry(input: ParseStream<'_>) {
    let _ = input.step(|cursor| {
        let mut rest = *cursor;
        while let Some((tree, next)) = rest.token_tree() {
            if let TokenTree::Punct(p) = &tree
                && p.as_char() == ','
                && starts_entry(next)
            {
                return Ok(((), rest));
            }
            rest = next;
        }
        Ok(((), rest))
    });
}

fn starts_entry(cursor: syn::buffer::Cursor<'_>) -> bool {
    let Some((_, after_ident)) = cursor.ident() else {
        return false;
    };
    match after_ident.punct() {
        Some((colon, after)) if colon.as_char() == ':' => {
            !matches!(after.punct(), Some((p, _)) if p.as_char() == ':')
                && colon.spacing() == proc_macro2::Spacing::Alone
        }
        _ => false,
    }
}

fn parse_entry(input: ParseStream<'_>) -> syn::Result<Entry> {
    let lookahead = input.lookahead1();
    macro_rules! keys {
        ($($kw:ident => $parse:expr),* $(,)?) => {
            $(if lookahead.peek(kw::$kw) {
                let key: kw::$kw = input.parse()?;
                let key = Ident::new(stringify!($kw), key.span);
                input.parse::<Token![:]>()?;
                let value = $parse;
                return Ok(Entry { key, value });
            })*
        };
    }
    keys! {
        name => Value::Name(input.parse()?),
        backend => Value::Backend(parse_backend(input)?),
        data => Value::Data(input.parse()?),
        model => Value::Model(input.parse()?),
        split => Value::Split(parse_split(input)?),
        loader => Value::Loader(parse_fields(input)?),
        augment => Value::Augment(input.parse()?),
        optimizer => Value::Optimizer(parse_optimizer(input)?),
        schedule => Value::Schedule(input.parse()?),
        loss => Value::Loss(parse_loss(input)?),
        metrics => Value::Metrics(parse_list(input)?),
        monitor => Value::Monitor(input.parse()?),
        early_stopping => Value::EarlyStopping(input.parse()?),
        epochs => Value::Epochs(input.parse()?),
        seed => Value::Seed(input.parse()?),
        checkpoint => Value::Checkpoint(parse_fields(input)?),
        sinks => Value::Sinks(parse_sinks(input)?),
        test => Value::Test(input.parse()?),
        overfit => Value::Overfit(parse_fields(input)?),
        params => Value::Params(Box::new(input.parse()?)),
        fingerprint => Value::Fingerprint(input.parse()?),
        predict => Value::Predict(input.parse()?),
    }
    Err(lookahead.error())
}

fn parse_backend(input: ParseStream<'_>) -> syn::Result<Ident> {
    let lookahead = input.lookahead1();
    if lookahead.peek(kw::torch) || lookahead.peek(kw::tensorflow) || lookahead.peek(kw::native) {
        input.call(syn::ext::IdentExt::parse_any)
    } else {
        Err(lookahead.error())
    }
}

fn parse_split(input: ParseStream<'_>) -> syn::Result<Call> {
    let lookahead = input.lookahead1();
    if lookahead.peek(kw::kfold) || lookahead.peek(kw::holdout) {
        input.parse()
    } else {
        Err(lookahead.error())
    }
}

fn parse_optimizer(input: ParseStream<'_>) -> syn::Result<Call> {
    let lookahead = input.lookahead1();
    if lookahead.peek(kw::sgd) || lookahead.peek(kw::adam) || lookahead.peek(kw::adamw) {
        input.parse()
    } else {
        Err(lookahead.error())
    }
}

fn parse_loss(input: ParseStream<'_>) -> syn::Result<Call> {
    let lookahead = input.lookahead1();
    let known = lookahead.peek(kw::cross_entropy)
        || lookahead.peek(kw::bce_with_logits)
        || lookahead.peek(kw::dice)
        || lookahead.peek(kw::dice_ce)
        || lookahead.peek(kw::focal)
        || lookahead.peek(kw::mse)
        || lookahead.peek(kw::l1);
    if known {
        input.parse()
    } else {
        Err(lookahead.error())
    }
}

fn parse_sinks(input: ParseStream<'_>) -> syn::Result<Vec<Ident>> {
    let content;
    bracketed!(content in input);
    let mut sinks = Vec::new();
    while !content.is_empty() {
        let lookahead = content.lookahead1();
        if lookahead.peek(kw::csv) || lookahead.peek(kw::jsonl) || lookahead.peek(kw::tensorboard) {
            sinks.push(content.parse()?);
        } else {
            return Err(lookahead.error());
        }
        if content.is_empty() {
            break;
        }
        content.parse::<Token![,]>()?;
    }
    Ok(sinks)
}

fn parse_list(input: ParseStream<'_>) -> syn::Result<Vec<Expr>> {
    let content;
    bracketed!(content in input);
    let items = Punctuated::<Expr, Token![,]>::parse_terminated(&content)?;
    Ok(items.into_iter().collect())
}

/// `{ key: value, ... }`.
fn parse_fields(input: ParseStream<'_>) -> syn::Result<Vec<Field>> {
    let content;
    braced!(content in input);
    let mut fields = Vec::new();
    while !content.is_empty() {
        let key: Ident = content.parse()?;
        content.parse::<Token![:]>()?;
        let value: Expr = content.parse()?;
        fields.push(Field { key, value });
        if content.is_empty() {
            break;
        }
        content.parse::<Token![,]>()?;
    }
    Ok(fields)
}

impl Parse for Call {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let name = input.call(syn::ext::IdentExt::parse_any)?;
        let mut call = Self {
            name,
            positional: Vec::new(),
            named: Vec::new(),
        };
        if !input.peek(syn::token::Paren) {
            return Ok(call);
        }
        let content;
        parenthesized!(content in input);
        while !content.is_empty() {
            if content.peek(Ident) && content.peek2(Token![=]) && !content.peek2(Token![==]) {
                let key: Ident = content.parse()?;
                content.parse::<Token![=]>()?;
                call.named.push(Field {
                    key,
                    value: content.parse()?,
                });
            } else if call.named.is_empty() {
                call.positional.push(content.parse()?);
            } else {
                return Err(content.error("positional arguments come before `key = value` ones"));
            }
            if content.is_empty() {
                break;
            }
            content.parse::<Token![,]>()?;
        }
        Ok(call)
    }
}

impl Parse for Monitor {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let lookahead = input.lookahead1();
        if !(lookahead.peek(kw::min) || lookahead.peek(kw::max)) {
            return Err(lookahead.error());
        }
        let mode: Ident = input.parse()?;
        let content;
        parenthesized!(content in input);
        let part: Ident = content.parse()?;
        content.parse::<Token![.]>()?;
        let metric: Ident = content.parse()?;
        if !content.is_empty() {
            return Err(
                content.error("expected `)` after the metric, as in `max(valid.dice_mean)`")
            );
        }
        Ok(Self { mode, part, metric })
    }
}
