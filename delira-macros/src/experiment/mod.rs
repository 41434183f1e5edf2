//! `experiment!{}`: parse, validate, expand.

mod expand;
mod parse;
mod validate;

use proc_macro2::TokenStream;

use crate::diag::Errors;

/// The macro's whole pipeline. On error, the errors come with a stub of the generated module
/// (when the name could be read), so that code using it adds no errors of its own.
pub fn experiment(tokens: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let input = parse::parse(tokens, &mut errors);
    let name = input.entries.iter().find_map(|e| match &e.value {
        parse::Value::Name(name) => Some(name.clone()),
        _ => None,
    });
    let model = validate::validate(input, &mut errors);
    match errors.finish(model) {
        Ok(Some(model)) => expand::expand(&model),
        Ok(None) => expand::stub(name.as_ref()),
        Err(errors) => {
            let mut out = errors.to_compile_error();
            out.extend(expand::stub(name.as_ref()));
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::{parse, validate};
    use crate::diag::Errors;

    fn messages(tokens: proc_macro2::TokenStream) -> Vec<String> {
        let mut errors = Errors::default();
        let input = parse::parse(tokens, &mut errors);
        validate::validate(input, &mut errors);
        match errors.finish(()) {
            Ok(()) => Vec::new(),
            Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn every_mistake_is_reported_at_once() {
        let found = messages(quote! {
            name: toy,
            data: make(),
            epoch: 3,
            model: |c| net(c),
            optimizer: adagrad(lr = 0.1),
            monitor: max(valid.accuracy),
            early_stopping: 0,
            epochs: 2,
            epochs: 3,
        });
        assert_eq!(
            found,
            [
                "expected one of: `name`, `backend`, `data`, `model`, `split`, `loader`, \
                 `augment`, `optimizer`, `schedule`, `loss`, `metrics`, `monitor`, \
                 `early_stopping`, `epochs`, `seed`, `checkpoint`, `sinks`, `test`, `overfit`, \
                 `params`, `fingerprint`, `predict`",
                "expected one of: `sgd`, `adam`, `adamw`",
                "`epochs` is given twice; keep one",
                "`early_stopping` is 0; give 1 or more",
                "`valid/accuracy` needs a validation part; add `validation = 0.2` to `split`, or \
                 monitor a `train` metric",
            ]
        );
    }

    #[test]
    fn a_complete_declaration_has_no_mistake() {
        let found = messages(quote! {
            name: toy,
            backend: native,
            data: make()?,
            model: |c| net(c),
            split: kfold(4, groups = |d| d.blocks(), validation = 0.25),
            loader: { batch_size: 4, workers: 0 },
            optimizer: sgd(lr = 0.1),
            loss: cross_entropy,
            metrics: [Accuracy::new("logits", "y")],
            monitor: min(valid.loss),
            early_stopping: 3,
            epochs: 5,
            seed: 7,
            checkpoint: { keep_last: 1 },
            sinks: [csv],
        });
        assert_eq!(found, Vec::<String>::new());
    }
}
