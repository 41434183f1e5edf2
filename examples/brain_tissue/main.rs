//! 3D brain-tissue segmentation on real data, declared with `delira::experiment!{}`: the MNI
//! ICBM152 2009a template, four spatial-block folds, a 3D U-Net on the PyTorch backend, and a
//! transfer check on Colin27.
//!
//! ```sh
//! scripts/example                     # provisions data and libtorch, builds, runs `kfold` (quick)
//! scripts/example --full              # the full configuration (`full.toml`)
//! cargo run --release --features torch --example brain_tissue -- [COMMAND] [--full]
//!     [--threads N] [--jobs N] [--data DIR] [--fold K] [--set KEY=VALUE]... [--config FILE]
//!     [--runs DIR] [--run-id ID]
//! ```
//!
//! The commands are the experiment's (`train`, `kfold`, `resume`, `predict`, `report`,
//! `config`; `kfold` when none is given). `--set` changes any setting, the example's own under
//! `params.` (`--set epochs=30 --set params.patches_per_epoch=96 --set params.norm=instance
//! --set optimizer.adam.lr=2e-3`); `config` prints them all. `--full` reads `full.toml`, the
//! settings the full configuration changes (for `kfold`, `train` and `config`: the other commands
//! use the configuration their run pinned); `--threads` is libtorch's thread count (default: the
//! machine's cores) and `--data` the provisioned data folder (default `data`). `kfold --jobs N`
//! trains N folds at a time, each as a `kfold --fold K --no-transfer` process of this program
//! with `threads / N` libtorch threads and its output in `fold-K/job.log`, then prints the table
//! and runs the Colin27 transfer once (on 2 cores, `--jobs 2` trains about 30% faster than one
//! fold at a time with two threads; see [`jobs`]). `--no-transfer` skips the Colin27 transfer.
//!
//! The template at 2 mm (98 × 116 × 94) is labelled 1 = CSF/other, 2 = grey matter, 3 = white
//! matter inside the brain (argmax of the tissue probability maps) and cut into four blocks at the
//! median y and z of the brain. The samples are patch slots: slot `i` cuts its 32³ windows from
//! block `i % 4`, and the split groups the slots by block, so each fold holds out one whole block
//! (the template is left/right symmetric, so only a spatial split does not leak) and the example
//! prints which. Training re-draws every slot's window each epoch, centred on brain tissue with
//! probability 0.9, and augments it (quick: a left/right flip, a small rotation and scaling on 20%
//! of them, brightness ±1%; `full.toml` says what the full configuration changes). The `test:`
//! hook segments the held-out block by sliding windows, averaged over the mirror images of the
//! training flips, and scores it inside the brain mask next to the two-threshold intensity rule
//! fitted on the three training blocks. After `kfold` the best fold's network segments Colin27
//! (`ch2bet`, scaled by its 99th percentile inside the mask, 2 mm); the example reports the
//! fraction of the brain mask labelled grey or white matter, and writes the prediction as NIfTI
//! (on the input's grid and affine) and a mid-slice overlay PNG.
//!
//! Outputs in the run folder `runs/brain_tissue/<id>/` (`--runs`, `--run-id`): `config.toml`,
//! `split.json`, `manifest.json`, `results.csv` and `report.md`/`report.html` (per fold the
//! network's Dice and accuracy, the rule's under `rule_`, and the held-out `block`; mean and
//! standard deviation), `colin27_tissue.nii.gz`, `colin27_overlay.png`, and per fold `fold-K/`
//! (checkpoints, the best one under `best/`, `metrics.csv`, `metrics.jsonl`, TensorBoard events,
//! `result.json`). `predict --fold K --run-id ID` re-scores a trained fold from its best
//! checkpoint (`fold-K/test.json`), writes each test slot's outputs in `fold-K/predictions/`
//! and, by the `predict:` hook, the held-out block's segmentation there as
//! `held_out_tissue.nii.gz` (labels 1–3 on the template's 2 mm grid and affine, 0 outside the
//! block and the brain); `report --run-id ID` rebuilds the tables. The data fingerprint in
//! `manifest.json` (the declared `fingerprint:`) hashes the three MNI template files the patches
//! are cut from, so a run notices a changed template without reading every patch slot.
//!
//! `cargo test --features torch --example brain_tissue` runs the tests the declaration
//! generates (the data fits the model, one batch is overfitted, a checkpoint round-trips, seeded
//! runs repeat, the folds partition the slots, augmentation keeps image and labels aligned) and the
//! example's own (the threshold rule, the `predict:` hook's label map and the 2 mm affine, the
//! declared data fingerprint).

mod baseline;
mod colin;
mod evaluate;
mod jobs;
mod predictions;
mod template;
mod train;

use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser as _;
use delira::backend::Network;
use delira::backend::torch::tch;
use delira::data::split::SplitConfig;
use delira::experiment::{Cli, Command, FoldResult, Outcome, execute, execute_with};
use delira::training::BEST_DIR;
use delira::training::checkpoint::{CheckpointWriter, TENSORS_FILE};
use delira::training::schedule::ScheduleConfig;

use crate::evaluate::{Scores, scores_of};
use crate::template::{Template, crop};
use crate::train::{BrainPatches, DATA_DIR, Params, template_fingerprint, unet};

delira::experiment! {
    name: brain_tissue,
    backend: torch,
    params: Params,
    data: |config| BrainPatches::new(config),
    model: |config| unet(config),
    // Four groups in four folds: fold k holds out one whole block.
    split: kfold(4, groups = |data| data.blocks()),
    loader: { batch_size: 4, workers: 1, drop_last: true },
    augment: |data| data.augmentation(),
    optimizer: adam(lr = 3e-3),
    loss: cross_entropy,
    monitor: min(train.loss),
    epochs: 12,
    seed: 42,
    sinks: [csv, jsonl, tensorboard],
    test: |network, data, slots| evaluate::held_out(network, data, slots),
    // The data is the three template files: hashed as files, not patch by patch.
    fingerprint: template_fingerprint(),
    predict: |network, data, slots, dir| predictions::write_held_out(network, data, slots, dir),
    overfit: { steps: 40, loss: 0.8 },
}

/// The full configuration: what it changes of the declared (quick) one.
const FULL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/examples/brain_tissue/full.toml"
);

/// The example's own options, taken out of the command line before the experiment's.
struct Own {
    full: bool,
    threads: usize,
    data: PathBuf,
    /// Folds trained at once by `kfold` (`--jobs N`), each as a process of its own.
    jobs: usize,
    /// Whether `kfold` applies the best network to Colin27 (off for the fold jobs of `--jobs`).
    transfer: bool,
    /// The experiment's command line (`kfold` when no command is given).
    rest: Vec<String>,
}

const COMMANDS: [&str; 11] = [
    "train",
    "kfold",
    "resume",
    "predict",
    "report",
    "config",
    "help",
    "--help",
    "-h",
    "--version",
    "-V",
];

fn own_options(args: impl Iterator<Item = String>) -> Result<Own, Box<dyn Error>> {
    let mut args = args;
    let mut own = Own {
        full: false,
        threads: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        data: PathBuf::from("data"),
        jobs: 1,
        transfer: true,
        rest: args.next().into_iter().collect(),
    };
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("`{name}` needs a value"));
        match arg.as_str() {
            "--full" => own.full = true,
            "--threads" => own.threads = value("--threads")?.parse()?,
            "--data" => own.data = PathBuf::from(value("--data")?),
            "--jobs" => {
                own.jobs = value("--jobs")?.parse()?;
                if own.jobs == 0 {
                    return Err("`--jobs` needs at least one job".into());
                }
            }
            "--no-transfer" => own.transfer = false,
            _ => own.rest.push(arg),
        }
    }
    let command = own
        .rest
        .iter()
        .skip(1)
        .find(|a| COMMANDS.contains(&a.as_str()))
        .cloned();
    if command.is_none() {
        own.rest.insert(1.min(own.rest.len()), "kfold".to_owned());
    }
    // A new run (or `config`) takes the full configuration; `resume`, `predict` and `report` use
    // the one their run pinned.
    let new_run = command
        .as_deref()
        .is_none_or(|c| c == "kfold" || c == "train" || c == "config");
    if own.full && new_run {
        if own
            .rest
            .iter()
            .any(|a| a == "--config" || a.starts_with("--config="))
        {
            return Err("`--full` is the configuration file `full.toml`; drop `--config`".into());
        }
        own.rest.extend(["--config".to_owned(), FULL.to_owned()]);
    }
    Ok(own)
}

fn main() -> ExitCode {
    if std::env::var_os("RUST_LOG").is_some() {
        delira::logging::install_subscriber();
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn Error>> {
    let own = own_options(std::env::args())?;
    // As many libtorch threads as cores by default; on a machine shared with other work, fewer
    // (`--threads 1`) are faster: two OpenMP threads competing with two builds on the 2-core
    // machine made a training step about three times slower.
    tch::set_num_threads(own.threads as i32);
    let _ = DATA_DIR.set(own.data.clone());
    let cli = Cli::parse_from(&own.rest);
    match cli.command {
        Command::Kfold { fold } => kfold(&cli, fold, &own),
        Command::Train { .. } => {
            let config = training_config(&cli)?;
            print_outcome(&execute_with(&brain_tissue::Experiment, config, &cli)?);
            Ok(())
        }
        _ => {
            print_outcome(&execute(&brain_tissue::Experiment, &cli)?);
            Ok(())
        }
    }
}

/// The configuration of a new run: the declaration, `--config` and `--set`; the learning-rate
/// schedule, unless set, is cosine annealing over the run's epochs to 1% of the optimizer's rate.
fn training_config(cli: &Cli) -> Result<brain_tissue::Config, Box<dyn Error>> {
    let mut config = cli.options.resolve(brain_tissue::Config::default())?;
    if config.schedule.is_none() {
        config.schedule = Some(ScheduleConfig::CosineAnnealing {
            t_max: config.epochs,
            eta_min: config.optimizer.learning_rate() / 100.0,
        });
    }
    config.progress = true;
    Ok(config)
}

fn print_outcome(outcome: &Outcome) {
    match outcome {
        Outcome::Trained { run, folds, .. } => {
            println!("run {}", run.display());
            for fold in folds {
                print_fold(fold.fold, true, fold, None);
            }
        }
        Outcome::Predicted { dir } => {
            let path = dir.join("test.json");
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            println!("test metrics in {}:\n{text}", path.display());
        }
        Outcome::Reported(summary) => println!("{}", summary.to_markdown(&[])),
        Outcome::Config(text) => print!("{text}"),
    }
}

/// `kfold`: every fold (or `--fold K`) as a job of one run, the fold table, then the best
/// fold's network on Colin27.
fn kfold(cli: &Cli, only: Option<usize>, own: &Own) -> Result<(), Box<dyn Error>> {
    let started = Instant::now();
    let config = training_config(cli)?;
    print_configuration(&config, own);
    let k = match &config.split {
        SplitConfig::KFold(kfold) => kfold.k,
        SplitConfig::Holdout(_) => 1,
    };
    let folds: Vec<usize> = only.map_or_else(|| (0..k).collect(), |fold| vec![fold]);

    let (run, results) = if own.jobs > 1 && folds.len() > 1 {
        jobs::fold_jobs(cli, &folds, own)?
    } else {
        let mut job = cli.clone();
        let mut results = Vec::new();
        let mut run = PathBuf::new();
        for &fold in &folds {
            job.command = Command::Kfold { fold: Some(fold) };
            let fold_started = Instant::now();
            let outcome = execute_with(&brain_tissue::Experiment, config.clone(), &job)?;
            let seconds = fold_started.elapsed().as_secs_f64();
            let Outcome::Trained {
                run: dir,
                folds: trained,
                ..
            } = outcome
            else {
                return Err("`kfold` trains".into());
            };
            for result in trained {
                print_fold(fold, results.is_empty(), &result, Some(seconds));
                results.push(result);
            }
            // The later folds join the run the first one made.
            job.options.run_id = dir.file_name().map(|id| id.to_string_lossy().into_owned());
            run = dir;
        }
        (run, results)
    };
    check_blocks(&results)?;
    print_summary(&results);
    if !own.transfer {
        return Ok(());
    }

    let best = results
        .iter()
        .max_by(|a, b| mean_dice(a).total_cmp(&mean_dice(b)))
        .ok_or("no fold was trained")?;
    let mut network = best_network(&config, &run.join(format!("fold-{}", best.fold)))?;
    let template = BrainPatches::new(&config)?.template;
    transfer(
        &template,
        &own.data,
        &run,
        &config.params,
        &mut network,
        best.fold,
    )?;
    println!(
        "\nwall time {:.1} min; results.csv, report.md and the Colin27 outputs in {}",
        started.elapsed().as_secs_f64() / 60.0,
        run.display()
    );
    Ok(())
}

fn print_configuration(config: &brain_tissue::Config, own: &Own) {
    let name = if own.full { "full" } else { "quick" };
    let changed = if own
        .rest
        .iter()
        .any(|a| a == "--set" || a.starts_with("--set="))
    {
        " with --set"
    } else {
        ""
    };
    let p = &config.params;
    println!(
        "configuration `{name}`{changed}: U-Net depth {} base {} (norm {}), {} epochs of {} \
         patches of {}³ (batch {}), foreground p {}, Adam lr {} (cosine), {} torch threads",
        p.depth,
        p.base,
        format!("{:?}", p.norm).to_lowercase(),
        config.epochs,
        p.patches_per_epoch,
        p.patch,
        config.loader.batch_size,
        p.foreground_p,
        config.optimizer.learning_rate(),
        own.threads
    );
}

/// The network of the best checkpoint of a fold's folder.
fn best_network(
    config: &brain_tissue::Config,
    fold_dir: &Path,
) -> Result<delira::backend::torch::TorchNetwork<delira::models::torch::UNet>, Box<dyn Error>> {
    let checkpoints = CheckpointWriter::new(fold_dir.join(BEST_DIR));
    let entry = checkpoints
        .latest()?
        .ok_or_else(|| format!("no checkpoint in {}", checkpoints.root().display()))?;
    let state = delira::backend::State::load(entry.path.join(TENSORS_FILE))?;
    let mut network = unet(config)?;
    network.import_state(&state)?;
    Ok(network)
}

/// The four blocks: fold `k` holds out the block its test slots name.
pub fn print_blocks(template: &Template) {
    println!("\n block  y range   z range   brain voxels");
    for (k, block) in template.blocks.iter().enumerate() {
        let brain = crop(&template.labels, block)
            .iter()
            .filter(|&&l| l > 0)
            .count();
        println!(
            "{k:>6}  {:>3}..{:<3}  {:>3}..{:<3}  {brain:>12}",
            block[1].start, block[1].end, block[2].start, block[2].end
        );
    }
}

fn mean_dice(result: &FoldResult) -> f64 {
    scores_of(&result.metrics, "").mean_dice()
}

fn held_out_block(result: &FoldResult) -> Option<usize> {
    result.metrics.get("block").map(|&b| b as usize)
}

/// Every fold held out a different block.
fn check_blocks(results: &[FoldResult]) -> Result<(), Box<dyn Error>> {
    for (i, a) in results.iter().enumerate() {
        for b in &results[i + 1..] {
            if held_out_block(a) == held_out_block(b) {
                return Err(format!(
                    "folds {} and {} hold out the same block {:?}",
                    a.fold,
                    b.fold,
                    held_out_block(a)
                )
                .into());
            }
        }
    }
    Ok(())
}

/// One fold's row and its threshold rule's; `seconds` is the fold's wall time where it was
/// timed (`kfold`), left blank otherwise.
fn print_fold(fold: usize, header: bool, result: &FoldResult, seconds: Option<f64>) {
    if header {
        println!(
            "\n                   block  Dice other    GM      WM   accuracy   fold s  last loss"
        );
    }
    let row = |s: &Scores| {
        format!(
            "{:>10.4}  {:>6.4}  {:>6.4}  {:>8.2}%",
            s.dice[0],
            s.dice[1],
            s.dice[2],
            100.0 * s.accuracy
        )
    };
    let last_loss = result
        .history
        .get("train/loss")
        .and_then(|curve| curve.last())
        .map_or(f64::NAN, |&(_, loss)| loss);
    let block = held_out_block(result).map_or_else(|| "?".to_owned(), |b| b.to_string());
    let seconds = seconds.map_or_else(String::new, |s| format!("{s:.0}"));
    println!(
        "fold {fold} U-Net     {block:>5}  {}  {seconds:>7}  {last_loss:>9.4}",
        row(&scores_of(&result.metrics, ""))
    );
    println!(
        "fold {fold} threshold {block:>5}  {}",
        row(&scores_of(&result.metrics, "rule_"))
    );
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let values: Vec<f64> = values.collect();
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

fn print_summary(results: &[FoldResult]) {
    let avg = |prefix: &str| {
        let scores: Vec<Scores> = results
            .iter()
            .map(|r| scores_of(&r.metrics, prefix))
            .collect();
        Scores {
            dice: std::array::from_fn(|c| mean(scores.iter().map(|s| s.dice[c]))),
            accuracy: mean(scores.iter().map(|s| s.accuracy)),
        }
    };
    let (net, rule) = (avg(""), avg("rule_"));
    let beats = results
        .iter()
        .filter(|r| mean_dice(r) > scores_of(&r.metrics, "rule_").mean_dice())
        .count();
    println!(
        "mean   U-Net            {:>10.4}  {:>6.4}  {:>6.4}  {:>8.2}%\nmean   threshold        \
         {:>10.4}  {:>6.4}  {:>6.4}  {:>8.2}%",
        net.dice[0],
        net.dice[1],
        net.dice[2],
        100.0 * net.accuracy,
        rule.dice[0],
        rule.dice[1],
        rule.dice[2],
        100.0 * rule.accuracy
    );
    println!(
        "the U-Net's mean Dice beats the threshold rule's on {beats} of {} held-out blocks",
        results.len()
    );
}

/// The best network and the threshold rule (fitted on all four blocks) on Colin27.
fn transfer(
    template: &Template,
    data: &Path,
    out: &Path,
    params: &Params,
    network: &mut impl Network,
    best_fold: usize,
) -> Result<(), Box<dyn Error>> {
    let started = Instant::now();
    let colin = colin::load(&data.join("colin27"))?;
    let thresholds = baseline::fit(
        template
            .t1
            .iter()
            .copied()
            .zip(template.labels.iter().copied()),
    );
    let rule = colin::threshold_labels(&colin, thresholds);
    let labels = colin::segment(network, &colin, params)?;
    println!(
        "\nColin27 (ch2bet, 2 mm {:?}, {} mask voxels): fraction of the brain mask labelled GM or \
         WM\n  U-Net (fold {best_fold})  {:.1}%\n  threshold rule  {:.1}%  (thresholds {:.3}, {:.3} \
         fitted on the whole template)",
        colin.t1.shape(),
        colin.mask.iter().filter(|&&m| m).count(),
        100.0 * colin::tissue_fraction(&labels, &colin.mask),
        100.0 * colin::tissue_fraction(&rule, &colin.mask),
        thresholds.low,
        thresholds.high
    );
    let nifti = out.join("colin27_tissue.nii.gz");
    let png = out.join("colin27_overlay.png");
    colin::write_prediction(&colin, &labels, &nifti)?;
    colin::write_overlay(&colin, &labels, &rule, &png)?;
    println!(
        "  wrote {} and {} (left: threshold rule, right: U-Net) in {:.1} s",
        nifti.display(),
        png.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
