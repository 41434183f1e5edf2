//! Code generation for `experiment!{}`: a module named after the experiment holding its typed
//! configuration, the functions that run it, its command line and its tests.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Expr, Ident};

use super::parse::Field;
use super::validate::{Experiment, Split};

/// The generated module.
pub fn expand(e: &Experiment) -> TokenStream {
    let name = &e.name;
    let title = name.to_string();
    let doc = format!(
        "The experiment `{title}` declared with `delira::experiment!{{}}`: its configuration, \
         `run`, `kfold`, `resume`, `test`, the command line (`main`) and generated tests."
    );
    let backend = &e.backend;
    let config = config_type(e);
    let params_setter = e.params.as_ref().map(|params| {
        quote_spanned! {params.span()=>
            /// Sets the experiment's own parameters.
            pub fn params(mut self, params: #params) -> Self { self.0.params = params; self }
        }
    });
    let items = items(e);
    let tests = tests(e);
    quote! {
        #[doc = #doc]
        #[allow(clippy::all, clippy::pedantic, unused_imports, dead_code, private_interfaces)]
        pub mod #name {
            use super::*;
            use ::delira::__private::rt as __rt;

            /// The experiment's name.
            pub const NAME: &str = #title;
            /// The declared backend.
            pub const BACKEND: &str = #backend;

            #config

            impl Config {
                /// A builder starting from the declared values.
                pub fn builder() -> ConfigBuilder {
                    ConfigBuilder(<Self as ::core::default::Default>::default())
                }
            }

            /// Changes settings of a [`Config`] in code.
            pub struct ConfigBuilder(Config);

            impl ConfigBuilder {
                /// Sets the number of epochs.
                pub fn epochs(mut self, epochs: u64) -> Self { self.0.epochs = epochs; self }
                /// Sets the seed.
                pub fn seed(mut self, seed: u64) -> Self { self.0.seed = seed; self }
                /// Sets the loader settings.
                pub fn loader(mut self, loader: __rt::LoaderSettings) -> Self { self.0.loader = loader; self }
                /// Sets the split.
                pub fn split(mut self, split: __rt::SplitConfig) -> Self { self.0.split = split; self }
                /// Sets the optimizer.
                pub fn optimizer(mut self, optimizer: __rt::OptimizerConfig) -> Self { self.0.optimizer = optimizer; self }
                /// Sets the loss.
                pub fn loss(mut self, loss: __rt::LossConfig) -> Self { self.0.loss = loss; self }
                /// Sets the monitored metric.
                pub fn monitor(mut self, monitor: ::core::option::Option<__rt::MonitorConfig>) -> Self { self.0.monitor = monitor; self }
                /// Sets the early-stopping patience.
                pub fn early_stopping(mut self, patience: ::core::option::Option<u64>) -> Self { self.0.early_stopping = patience; self }
                /// Sets the checkpoint policy.
                pub fn checkpoint(mut self, policy: __rt::CheckpointPolicy) -> Self { self.0.checkpoint = policy; self }
                /// Turns progress bars on or off.
                pub fn progress(mut self, on: bool) -> Self { self.0.progress = on; self }
                #params_setter
                /// The configuration.
                pub fn build(self) -> Config { self.0 }
            }

            #items

            #tests
        }
    }
}

/// `Config` and its `Default` (the declared values): the runtime's settings, and with `params:`
/// the user's parameters as the field `params` (the table `[params]` when serialised).
fn config_type(e: &Experiment) -> TokenStream {
    let declared = declared_settings(e);
    let common = quote! {
        #[automatically_derived]
        impl ::core::ops::Deref for Config {
            type Target = __rt::Settings;
            fn deref(&self) -> &__rt::Settings {
                &self.settings
            }
        }

        #[automatically_derived]
        impl ::core::ops::DerefMut for Config {
            fn deref_mut(&mut self) -> &mut __rt::Settings {
                &mut self.settings
            }
        }
    };
    let Some(params) = &e.params else {
        return quote! {
            /// The typed configuration: every setting of the run, serialisable, unknown keys
            /// rejected; `Default` gives the declared values, `builder()` changes some in code.
            #[derive(Clone, Debug, PartialEq, __rt::serde::Serialize, __rt::serde::Deserialize)]
            #[serde(crate = "::delira::__private::rt::serde", transparent)]
            pub struct Config {
                /// The runtime's settings (also reached through `Deref`).
                pub settings: __rt::Settings,
            }

            #[automatically_derived]
            impl ::core::default::Default for Config {
                fn default() -> Self {
                    Config { settings: { #declared } }
                }
            }

            #common
        };
    };
    let check = quote_spanned! {params.span()=> __rt::assert_params::<#params>(); };
    quote! {
        /// The typed configuration: every setting of the run and the experiment's own
        /// parameters (`params`, the table `[params]`), serialisable, unknown keys rejected;
        /// `Default` gives the declared values, `builder()` changes some in code.
        #[derive(Clone, Debug)]
        pub struct Config {
            /// The runtime's settings (also reached through `Deref`).
            pub settings: __rt::Settings,
            /// The experiment's own parameters.
            pub params: #params,
        }

        const _: fn() = || { #check };

        #[automatically_derived]
        impl ::core::default::Default for Config {
            fn default() -> Self {
                Config {
                    settings: { #declared },
                    params: <#params as ::core::default::Default>::default(),
                }
            }
        }

        #[automatically_derived]
        impl ::core::cmp::PartialEq for Config {
            fn eq(&self, other: &Self) -> bool {
                self.settings == other.settings && __rt::same_params(&self.params, &other.params)
            }
        }

        #[automatically_derived]
        impl __rt::serde::Serialize for Config {
            fn serialize<__S: __rt::serde::Serializer>(
                &self,
                serializer: __S,
            ) -> ::core::result::Result<__S::Ok, __S::Error> {
                __rt::serialize_with_params(&self.settings, &self.params, serializer)
            }
        }

        #[automatically_derived]
        impl<'de> __rt::serde::Deserialize<'de> for Config {
            fn deserialize<__D: __rt::serde::Deserializer<'de>>(
                deserializer: __D,
            ) -> ::core::result::Result<Self, __D::Error> {
                let (settings, params) = __rt::deserialize_with_params(deserializer)?;
                ::core::result::Result::Ok(Config { settings, params })
            }
        }

        #common
    }
}

/// The generated module without anything the user wrote, emitted next to the errors so that code
/// using it adds no errors of its own.
pub fn stub(name: Option<&Ident>) -> TokenStream {
    let Some(name) = name else {
        return TokenStream::new();
    };
    quote! {
        #[allow(dead_code)]
        pub mod #name {
            /// The experiment's name.
            pub const NAME: &str = "";
            /// Runs the command line.
            pub fn main() -> ::std::process::ExitCode { ::std::process::ExitCode::FAILURE }
        }
    }
}

fn fields(fields: &[Field], target: &TokenStream) -> TokenStream {
    let sets = fields.iter().map(|f| {
        let key = &f.key;
        let value = &f.value;
        if key == "every_steps" {
            quote_spanned! {value.span()=> #target.#key = ::core::option::Option::Some(#value); }
        } else {
            quote_spanned! {value.span()=> #target.#key = #value; }
        }
    });
    quote! { #(#sets)* }
}

fn declared_settings(e: &Experiment) -> TokenStream {
    let mut sets = Vec::new();
    if let Some(epochs) = &e.epochs {
        sets.push(quote! { __s.epochs = #epochs; });
    }
    if let Some(seed) = &e.seed {
        sets.push(quote! { __s.seed = #seed; });
    }
    sets.push(fields(&e.loader, &quote!(__s.loader)));
    sets.push(fields(&e.checkpoint, &quote!(__s.checkpoint)));
    sets.push(split_config(&e.split));
    if let Some((kind, args)) = &e.optimizer {
        let (variant, config) = match kind.to_string().as_str() {
            "sgd" => ("Sgd", "SgdConfig"),
            "adamw" => ("AdamW", "AdamWConfig"),
            _ => ("Adam", "AdamConfig"),
        };
        let variant = format_ident!("{}", variant, span = kind.span());
        let config = format_ident!("{}", config, span = kind.span());
        let body = fields(args, &quote!(__c));
        sets.push(quote! {
            let mut __c = <__rt::#config as ::core::default::Default>::default();
            #body
            __s.optimizer = __rt::OptimizerConfig::#variant(__c);
        });
    }
    if let Some((kind, args)) = &e.loss {
        let pair = match kind.to_string().as_str() {
            "cross_entropy" => Some(("CrossEntropy", "CrossEntropyConfig")),
            "bce_with_logits" => Some(("BceWithLogits", "BceWithLogitsConfig")),
            "dice" => Some(("Dice", "DiceConfig")),
            "dice_ce" => Some(("DiceCe", "DiceCeConfig")),
            "focal" => Some(("Focal", "FocalConfig")),
            _ => None,
        };
        if let Some((variant, config)) = pair {
            let variant = format_ident!("{}", variant, span = kind.span());
            let config = format_ident!("{}", config, span = kind.span());
            let body = fields(args, &quote!(__c));
            sets.push(quote! {
                let mut __c = <__rt::#config as ::core::default::Default>::default();
                #body
                __s.loss = __rt::LossConfig::#variant(__c);
            });
        } else {
            let variant = if kind == "mse" {
                quote!(Mse)
            } else {
                quote!(L1)
            };
            sets.push(quote! { __s.loss = __rt::LossConfig::#variant; });
        }
    }
    if let Some(schedule) = &e.schedule {
        sets.push(quote_spanned! {schedule.span()=> __s.schedule = ::core::option::Option::Some(#schedule); });
    }
    if let Some((mode, metric)) = &e.monitor {
        let mode = if mode == "max" {
            quote!(Max)
        } else {
            quote!(Min)
        };
        sets.push(quote! {
            __s.monitor = ::core::option::Option::Some(
                __rt::MonitorConfig::new(#metric, __rt::Mode::#mode));
        });
    }
    if let Some(patience) = &e.early_stopping {
        sets.push(quote! { __s.early_stopping = ::core::option::Option::Some(#patience); });
    }
    if let Some(sinks) = &e.sinks {
        let kinds = sinks.iter().map(|s| match s.to_string().as_str() {
            "csv" => quote!(__rt::SinkKind::Csv),
            "jsonl" => quote!(__rt::SinkKind::Jsonl),
            _ => quote!(__rt::SinkKind::Tensorboard),
        });
        sets.push(quote! { __s.sinks = ::std::vec![#(#kinds),*]; });
    }
    quote! {
        let mut __s = <__rt::Settings as ::core::default::Default>::default();
        #(#sets)*
        __s
    }
}

fn split_config(split: &Split) -> TokenStream {
    let group = split.groups.is_some();
    let stratify = split.labels.is_some();
    let validation = split.validation.as_ref().map_or_else(
        || quote!(::core::option::Option::None),
        |v| {
            quote_spanned! {v.span()=>
                ::core::option::Option::Some(__rt::ValidationConfig {
                    size: __rt::ValidationSize::Fraction(#v),
                    stratify: #stratify,
                    group: #group,
                })
            }
        },
    );
    if split.kind == "holdout" {
        let fraction = split
            .size
            .as_ref()
            .map_or_else(|| quote!(0.2), |s| quote!(#s));
        quote! {
            __s.split = __rt::SplitConfig::Holdout(__rt::HoldoutConfig {
                test_fraction: #fraction,
                seed: __s.seed,
                stratify: #stratify,
                group: #group,
                validation: #validation,
            });
        }
    } else {
        let k = split
            .size
            .as_ref()
            .map_or_else(|| quote!(5), |s| quote!(#s));
        let shuffle = split
            .shuffle
            .as_ref()
            .map_or_else(|| quote!(true), |s| quote!(#s));
        quote! {
            __s.split = __rt::SplitConfig::KFold(__rt::KFoldConfig {
                k: #k,
                shuffle: #shuffle,
                seed: __s.seed,
                stratify: #stratify,
                group: #group,
                validation: #validation,
            });
        }
    }
}

/// Code that binds `__data` (an `Arc` of the declared dataset, its concrete type kept so that the
/// user's closures over it type-check) inside a function returning `Result<_, ExperimentError>`.
fn load_data(e: &Experiment) -> TokenStream {
    let data = &e.data;
    if let Expr::Closure(_) = data {
        return quote_spanned! {data.span()=>
            let __data = __rt::Arc::new(__rt::data_from(&*__config, #data)?);
        };
    }
    quote! {
        let __data = __rt::Arc::new({
            let __load = || -> ::core::result::Result<_, __rt::Box<dyn ::std::error::Error>> {
                ::core::result::Result::Ok(#data)
            };
            __load().map_err(|e| __rt::data_error(&e))?
        });
    }
}

/// Code that binds `__net`, the declared network for `__config`.
fn make_model(e: &Experiment) -> TokenStream {
    let model = &e.model;
    let call = if let Expr::Closure(_) = model {
        quote_spanned! {model.span()=> __rt::model_from(&*__config, #model) }
    } else {
        quote_spanned! {model.span()=> __rt::model_value(#model) }
    };
    quote! { let mut __net = #call?; }
}

/// Code that binds `__split`, the declared split of `__data` with `__config`.
fn make_split(e: &Experiment) -> TokenStream {
    let mut targets = Vec::new();
    if let Some(groups) = &e.split.groups {
        targets.push(quote_spanned! {groups.span()=>
            let __groups = __rt::from_data(&*__data, #groups);
            let __targets = __targets.with_groups(&__groups)?;
        });
    }
    if let Some(labels) = &e.split.labels {
        targets.push(quote_spanned! {labels.span()=>
            let __labels = __rt::from_data(&*__data, #labels);
            let __targets = __targets.with_labels(&__labels)?;
        });
    }
    quote! {
        let __split = {
            let __targets = __rt::SplitTargets::new(__rt::Dataset::len(&*__data));
            #(#targets)*
            __config.split.split(&__targets)?
        };
    }
}

fn make_augment(e: &Experiment) -> TokenStream {
    e.augment.as_ref().map_or_else(
        || quote!(::core::option::Option::None),
        |a| match a {
            // One argument: a function of the dataset that makes the transform.
            Expr::Closure(closure) if closure.inputs.len() == 1 => quote_spanned! {a.span()=>
                ::core::option::Option::Some(__rt::transform_made(&*__data, #a))
            },
            _ => quote_spanned! {a.span()=>
                ::core::option::Option::Some(__rt::transform_for(&*__data, #a))
            },
        },
    )
}

fn make_metrics(e: &Experiment) -> TokenStream {
    let metrics = e.metrics.iter().map(|m| {
        quote_spanned! {m.span()=> {
            let __m: __rt::Box<dyn __rt::Metric> = __rt::Box::new(#m);
            __m
        }}
    });
    quote! { ::std::vec![#(#metrics),*] }
}

/// Code that binds `__job`, fold `__fold` of `__split` in `__dir`, on data whose fingerprint is
/// `__data_fingerprint`.
fn make_job(augment: &TokenStream) -> TokenStream {
    quote! {
        let __job = __rt::FoldJob {
            augment: #augment,
            data: __rt::Arc::clone(&__data),
            fold: __fold,
            indices: &__split.folds()[__fold],
            dir: __dir,
            settings: &__config.settings,
            fingerprint: __data_fingerprint,
        };
    }
}

/// Code that binds `__fingerprint`, the fingerprint of `__data`: every sample hashed, or the
/// declared `fingerprint`.
fn make_fingerprint(e: &Experiment) -> TokenStream {
    match &e.fingerprint {
        None => quote! {
            let __fingerprint = __rt::data_fingerprint(&*__data, __config.progress)?;
        },
        Some(closure @ Expr::Closure(_)) => quote_spanned! {closure.span()=>
            let __fingerprint = __rt::fingerprint_from(&*__data, #closure)?;
        },
        Some(value) => {
            let take = quote_spanned! {value.span()=> __rt::fingerprint_value(__value) };
            quote! {
                let __fingerprint = {
                    let __make = || -> ::core::result::Result<_, __rt::Box<dyn ::std::error::Error>> {
                        ::core::result::Result::Ok(#value)
                    };
                    let __value = __make().map_err(|e| __rt::fingerprint_failed(&e))?;
                    #take?
                };
            }
        }
    }
}

/// Code that calls the declared `predict` hook after the default outputs were written to
/// `__predictions`.
fn predict_hook(e: &Experiment) -> TokenStream {
    e.predict.as_ref().map_or_else(TokenStream::new, |hook| {
        quote_spanned! {hook.span()=>
            __rt::predict_with(
                __trainer.network_mut(), &*__job.data, &__job.indices.test, &__predictions, #hook)?;
        }
    })
}

#[allow(clippy::too_many_lines)]
fn items(e: &Experiment) -> TokenStream {
    let load_data = load_data(e);
    let make_model = make_model(e);
    let make_split = make_split(e);
    let metrics = make_metrics(e);
    let train_job = make_job(&make_augment(e));
    let plain_job = make_job(&quote!(::core::option::Option::None));
    let test_metrics = match &e.test {
        Some(test) => quote_spanned! {test.span()=>
            __result.metrics = __rt::test_with(
                __trainer.network_mut(), &*__job.data, &__job.indices.test, #test)?;
        },
        None => quote!(),
    };
    let predict_metrics = if let Some(test) = &e.test {
        quote_spanned! {test.span()=>
            __rt::test_with(__trainer.network_mut(), &*__job.data, &__job.indices.test, #test)?
        }
    } else {
        quote! { __job.evaluate_test(&mut __trainer)? }
    };
    let make_fingerprint = make_fingerprint(e);
    let predict_hook = predict_hook(e);
    quote! {
        /// The experiment, as the runtime drives it.
        #[derive(Clone, Copy, Debug, Default)]
        pub struct Experiment;

        #[automatically_derived]
        impl __rt::Experiment for Experiment {
            type Config = Config;

            fn name(&self) -> &str {
                NAME
            }

            fn declared(&self) -> Config {
                <Config as ::core::default::Default>::default()
            }

            fn seed(&self, config: &Config) -> u64 {
                config.seed
            }

            fn data(&self, __config: &Config) -> ::core::result::Result<(usize, ::std::string::String), __rt::ExperimentError> {
                #load_data
                let __n = __rt::Dataset::len(&*__data);
                #make_fingerprint
                ::core::result::Result::Ok((__n, __fingerprint))
            }

            fn split(&self, __config: &Config) -> ::core::result::Result<__rt::Split, __rt::ExperimentError> {
                #load_data
                #make_split
                ::core::result::Result::Ok(__split)
            }

            fn train_fold(
                &self,
                __config: &Config,
                __split: &__rt::Split,
                __fold: usize,
                __dir: &::std::path::Path,
                resume: bool,
                __data_fingerprint: &str,
            ) -> ::core::result::Result<__rt::FoldResult, __rt::ExperimentError> {
                #load_data
                #train_job
                #make_model
                let (mut __result, mut __trainer) = __job.run(__net, #metrics, resume)?;
                #test_metrics
                ::core::result::Result::Ok(__result)
            }

            fn predict_fold(
                &self,
                __config: &Config,
                __split: &__rt::Split,
                __fold: usize,
                __dir: &::std::path::Path,
                __data_fingerprint: &str,
            ) -> ::core::result::Result<(), __rt::ExperimentError> {
                #load_data
                #plain_job
                #make_model
                let mut __trainer = __job.best(__net, #metrics)?;
                let __metrics: __rt::BTreeMap<::std::string::String, f64> = #predict_metrics;
                __rt::write_test_metrics(__dir, &__metrics)?;
                let __predictions = __dir.join(__rt::PREDICTIONS_DIR);
                __job.write_predictions(__trainer.network_mut(), &__predictions)?;
                #predict_hook
                ::core::result::Result::Ok(())
            }
        }

        fn __cli(command: __rt::Command, runs: &::std::path::Path, run_id: ::core::option::Option<&str>) -> __rt::Cli {
            __rt::Cli {
                command,
                options: __rt::RunOptions {
                    config: ::core::option::Option::None,
                    set: ::std::vec::Vec::new(),
                    runs: runs.to_path_buf(),
                    run_id: run_id.map(::std::string::ToString::to_string),
                },
            }
        }

        /// Trains and tests fold `fold` with `config` in a new run under `runs` (or in run
        /// `run_id`, which it joins).
        pub fn run(
            config: Config,
            runs: &::std::path::Path,
            run_id: ::core::option::Option<&str>,
            fold: usize,
        ) -> ::core::result::Result<__rt::FoldResult, __rt::ExperimentError> {
            let __cli = __cli(__rt::Command::Train { fold }, runs, run_id);
            __rt::first_fold(__rt::execute_with(&Experiment, config, &__cli)?, fold)
        }

        /// Trains and tests every fold with `config`, then writes the run's report; returns its
        /// summary.
        pub fn kfold(
            config: Config,
            runs: &::std::path::Path,
            run_id: ::core::option::Option<&str>,
        ) -> ::core::result::Result<__rt::Summary, __rt::ExperimentError> {
            let __cli = __cli(__rt::Command::Kfold { fold: ::core::option::Option::None }, runs, run_id);
            __rt::summary_of(__rt::execute_with(&Experiment, config, &__cli)?, runs)
        }

        /// Continues fold `fold` of run `run_id` (the newest when `None`) from its newest
        /// checkpoint, with the configuration the run was started with.
        pub fn resume(
            runs: &::std::path::Path,
            run_id: ::core::option::Option<&str>,
            fold: usize,
        ) -> ::core::result::Result<__rt::FoldResult, __rt::ExperimentError> {
            let __cli = __cli(__rt::Command::Resume { fold }, runs, run_id);
            __rt::first_fold(__rt::execute(&Experiment, &__cli)?, fold)
        }

        /// Applies the best (or newest) model of fold `fold` of run `run_id` (the newest run
        /// when `None`) to the fold's test part: writes the declared `test`'s or the metrics'
        /// values to `fold-K/test.json`, every network output of each test sample to
        /// `fold-K/predictions/<index>.safetensors`, then runs the declared `predict` hook;
        /// returns the path of `test.json`.
        pub fn test(
            runs: &::std::path::Path,
            run_id: ::core::option::Option<&str>,
            fold: usize,
        ) -> ::core::result::Result<::std::path::PathBuf, __rt::ExperimentError> {
            let __cli = __cli(__rt::Command::Predict { fold }, runs, run_id);
            __rt::execute(&Experiment, &__cli)?;
            let __run = __rt::RunDir::open(runs, NAME, run_id)?;
            ::core::result::Result::Ok(__run.fold_dir(fold).join("test.json"))
        }

        /// Runs the command line given by `args` (the program's name first).
        pub fn cli<I, T>(args: I) -> ::core::result::Result<__rt::Outcome, ::std::string::String>
        where
            I: ::core::iter::IntoIterator<Item = T>,
            T: ::core::convert::Into<::std::ffi::OsString> + ::core::clone::Clone,
        {
            let __cli = <__rt::Cli as __rt::clap::Parser>::try_parse_from(args).map_err(|e| e.to_string())?;
            __rt::execute(&Experiment, &__cli).map_err(|e| __rt::error_chain(&e))
        }

        /// The command line of the running program: prints the outcome, or the error with its
        /// causes, and exits accordingly.
        pub fn main() -> ::std::process::ExitCode {
            __rt::finish(cli(::std::env::args_os()))
        }
    }
}

// A code template: long by nature, one test after the other.
#[allow(clippy::too_many_lines)]
fn tests(e: &Experiment) -> TokenStream {
    let load_data = load_data(e);
    let make_model = make_model(e);
    let make_split = make_split(e);
    let augment = make_augment(e);
    let steps = e
        .overfit_steps
        .as_ref()
        .map_or_else(|| quote!(100), |s| quote!(#s));
    let threshold = e.overfit_loss.as_ref().map_or_else(
        || quote!(::core::option::Option::None),
        |l| quote!(::core::option::Option::Some(#l)),
    );
    let checked = |name: &str, body: TokenStream| {
        let name = format_ident!("{}", name);
        quote! {
            #[test]
            fn #name() {
                let __check = || -> ::core::result::Result<(), ::std::string::String> {
                    let __config = &<Config as ::core::default::Default>::default();
                    let __setup = || -> ::core::result::Result<_, __rt::ExperimentError> {
                        #load_data
                        #make_split
                        ::core::result::Result::Ok((__data, __split))
                    };
                    let (__data, __split) = __setup().map_err(|e| __rt::error_chain(&e))?;
                    #body
                    ::core::result::Result::Ok(())
                };
                if let ::core::result::Result::Err(message) = __check() {
                    ::core::panic!("{message}");
                }
            }
        }
    };
    let model = quote! {
        (|| -> ::core::result::Result<_, __rt::ExperimentError> {
            #make_model
            ::core::result::Result::Ok(__net)
        })().map_err(|e| __rt::error_chain(&e))?
    };
    let batches = quote! {
        let __batches = |n: usize| -> ::core::result::Result<::std::vec::Vec<__rt::Batch>, ::std::string::String> {
            let __dir = ::std::env::temp_dir();
            let __job = __rt::FoldJob {
                augment: ::core::option::Option::None,
                data: __rt::Arc::clone(&__data),
                fold: 0,
                indices: &__split.folds()[0],
                dir: &__dir,
                settings: &__config.settings,
                fingerprint: "",
            };
            let __loader = __job.loader(&__job.indices.train, true).map_err(|e| e.to_string())?;
            __loader.epoch(0).take(n).map(|b| b.map_err(|e| e.to_string())).collect()
        };
    };
    let scratch = quote! {
        let __dir = ::std::env::temp_dir().join(::std::format!("delira-{}-check-{}", NAME, ::std::process::id()));
    };
    let shapes = checked(
        "data_loads_and_fits_the_model",
        quote! {
            #batches
            let __batch = __batches(1)?.remove(0);
            let mut __net = #model;
            __rt::checks::data_fits_model(&mut __net, &__batch)?;
        },
    );
    let overfit = checked(
        "one_batch_can_be_overfitted",
        quote! {
            #batches
            let __batch = __batches(1)?.remove(0);
            let mut __net = #model;
            __rt::checks::overfit_one_batch(&mut __net, &__batch, #steps, #threshold)?;
        },
    );
    let checkpoint = checked(
        "a_checkpoint_round_trips_exactly",
        quote! {
            #batches
            #scratch
            let __batch = __batches(1)?.remove(0);
            let mut __trained = #model;
            for _ in 0..2 {
                __rt::Network::train_step(&mut __trained, &__batch).map_err(|e| e.to_string())?;
            }
            let mut __fresh = #model;
            let __checked = __rt::checks::checkpoint_round_trip(&mut __trained, &mut __fresh, &__batch, &__dir);
            let _ = ::std::fs::remove_dir_all(&__dir);
            __checked?;
        },
    );
    let seeded = checked(
        "two_seeded_runs_are_identical",
        quote! {
            #batches
            let __batches = __batches(3)?;
            let mut __a = #model;
            let mut __b = #model;
            __rt::checks::seeded_runs_repeat(&mut __a, &mut __b, &__batches)?;
        },
    );
    let folds = checked(
        "folds_are_disjoint_and_cover_the_data",
        quote! {
            if __split.n() != __rt::Dataset::len(&*__data) {
                return ::core::result::Result::Err(::std::format!(
                    "the split covers {} samples, the data has {}", __split.n(), __rt::Dataset::len(&*__data)));
            }
            __rt::checks::folds_partition(&__split)?;
        },
    );
    let aligned = e.augment.as_ref().map(|_| {
        checked("augmentation_keeps_image_and_label_aligned", quote! {
            let __first = __split.folds()[0].train[0];
            let __sample = __rt::Dataset::get(&*__data, __first).map_err(|e| e.to_string())?;
            if let ::core::option::Option::Some(__augment) = #augment {
                __rt::checks::augmentation_keeps_alignment(&__sample, &*__augment, __config.seed)?;
            }
        })
    });
    quote! {
        /// The tests every declared experiment gets.
        #[cfg(test)]
        mod generated_tests {
            use super::*;
            #shapes
            #overfit
            #checkpoint
            #seeded
            #folds
            #aligned
        }
    }
}
