//! 3D brain-tissue segmentation on real data: the MNI ICBM152 2009a template, four spatial-block
//! folds, a 3D U-Net on the PyTorch backend, and a transfer check on Colin27.
//!
//! ```sh
//! scripts/example                     # provisions data and libtorch, builds, runs the quick configuration
//! scripts/example --full              # the full configuration
//! cargo run --release --features torch --example brain_tissue -- [--full] [--epochs N]
//!     [--patches N] [--batch N] [--lr X] [--norm batch|instance|none] [--foreground P]
//!     [--affine P] [--noise P] [--brightness X]
//!     [--folds K[,K...]] [--evaluate-only] [--threads N] [--data DIR] [--out DIR]
//! ```
//!
//! The template at 2 mm (98 × 116 × 94) is labelled 1 = CSF/other, 2 = grey matter, 3 = white
//! matter inside the brain (argmax of the tissue probability maps) and cut into four blocks at the
//! median y and z of the brain; fold `k` trains on the other three blocks and holds out block `k`
//! (the template is left/right symmetric, so only a spatial split does not leak). Training draws
//! 32³ patches from the training blocks only, centred on brain tissue with probability 0.9, and
//! augments them (flip, a small rotation and scaling on 20% of them, brightness ±1%). After each
//! fold the held-out block is segmented by sliding windows and scored inside the brain mask next
//! to the two-threshold intensity rule fitted on the same training blocks. The best fold's network
//! then segments Colin27 (`ch2bet`, scaled by its 99th percentile inside the mask, 2 mm); the
//! example reports the fraction of the brain mask labelled grey or white matter, and writes the
//! prediction as NIfTI (on the input's grid and affine) and a mid-slice overlay PNG.
//!
//! Outputs under `--out` (default `runs/brain_tissue/<quick|full>`): `folds.csv`,
//! `best.safetensors` (the best fold's network state), `colin27_tissue.nii.gz`,
//! `colin27_overlay.png`, and per fold the trainer's run folder `fold<k>/` (checkpoints,
//! `metrics.csv`, `metrics.jsonl`, TensorBoard events).

mod baseline;
mod colin;
mod evaluate;
mod template;
mod train;

use std::error::Error;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use delira::backend::Network;
use delira::backend::torch::tch;
use delira::models::torch::Norm;
use delira::training::checkpoint::{CheckpointWriter, TENSORS_FILE};

use crate::evaluate::{Scores, predict_block, score, tissue_labels};
use crate::template::{Template, crop, load_template};
use crate::train::{RunConfig, fold_patches, train, unet};

/// Command-line options.
struct Options {
    config: RunConfig,
    data: PathBuf,
    out: PathBuf,
    threads: usize,
    /// The folds to run (all by default).
    folds: Option<Vec<usize>>,
    /// Evaluate the newest checkpoint of every fold instead of training.
    evaluate_only: bool,
}

fn options() -> Result<Options, Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let (mut config, mut data, mut out) = (RunConfig::quick(), PathBuf::from("data"), None);
    let mut threads = 1;
    let mut epochs = None;
    let mut folds = None;
    let mut evaluate_only = false;
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("`{name}` needs a value"));
        match arg.as_str() {
            "--full" => config = RunConfig::full(),
            "--evaluate-only" => evaluate_only = true,
            "--data" => data = PathBuf::from(value("--data")?),
            "--out" => out = Some(PathBuf::from(value("--out")?)),
            "--threads" => threads = value("--threads")?.parse()?,
            "--epochs" => epochs = Some(value("--epochs")?.parse()?),
            "--patches" => config.patches_per_epoch = value("--patches")?.parse()?,
            "--affine" => config.affine_p = value("--affine")?.parse()?,
            "--brightness" => config.brightness = value("--brightness")?.parse()?,
            "--noise" => config.noise_p = value("--noise")?.parse()?,
            "--lr" => config.lr = value("--lr")?.parse()?,
            "--batch" => config.batch_size = value("--batch")?.parse()?,
            "--foreground" => config.foreground_p = value("--foreground")?.parse()?,
            "--norm" => {
                config.norm = match value("--norm")?.as_str() {
                    "batch" => Norm::Batch,
                    "instance" => Norm::Instance,
                    "none" => Norm::None,
                    other => {
                        return Err(
                            format!("unknown norm `{other}`; use batch, instance or none").into(),
                        );
                    }
                }
            }
            "--folds" => {
                folds = Some(
                    value("--folds")?
                        .split(',')
                        .map(str::parse)
                        .collect::<Result<Vec<usize>, _>>()?,
                );
            }
            other => {
                return Err(format!(
                    "unknown argument `{other}`; use --full, --epochs N, --patches N, --batch N, \
                     --lr X, --norm batch|instance|none, --foreground P, --affine P, --noise P, \
                     --brightness X, \
                     --folds K[,K...], --evaluate-only, \
                     --threads N, --data DIR, --out DIR"
                )
                .into());
            }
        }
    }
    if let Some(epochs) = epochs {
        config.epochs = epochs;
    }
    let out = out.unwrap_or_else(|| PathBuf::from("runs/brain_tissue").join(config.name));
    Ok(Options {
        config,
        data,
        out,
        threads,
        folds,
        evaluate_only,
    })
}

/// The network of the newest checkpoint in `run_dir` (a fold trained before).
fn trained_network(
    config: &RunConfig,
    run_dir: &std::path::Path,
) -> Result<delira::backend::torch::TorchNetwork<delira::models::torch::UNet>, Box<dyn Error>> {
    let checkpoints = CheckpointWriter::new(run_dir.join("checkpoints"));
    let entry = checkpoints.latest()?.ok_or_else(|| {
        format!(
            "no checkpoint in {}; train the fold first (drop --evaluate-only)",
            checkpoints.root().display()
        )
    })?;
    let state = delira::backend::State::load(entry.path.join(TENSORS_FILE))?;
    let mut network = unet(config)?;
    network.import_state(&state)?;
    println!("fold network from {}", entry.path.display());
    Ok(network)
}

/// One fold's figures.
struct FoldResult {
    fold: usize,
    network: Scores,
    baseline: Scores,
    train_seconds: f64,
    final_loss: f64,
}

fn main() -> Result<(), Box<dyn Error>> {
    let started = Instant::now();
    if std::env::var_os("RUST_LOG").is_some() {
        delira::logging::install_subscriber();
    }
    let Options {
        config,
        data,
        out,
        threads,
        folds,
        evaluate_only,
    } = options()?;
    // One libtorch thread by default: on the shared 2-core machine two OpenMP threads that
    // compete with other processes made a training step about three times slower.
    tch::set_num_threads(threads as i32);
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    println!(
        "configuration `{}`: U-Net depth {} base {}, {} epochs of {} patches of {}³ (batch {}), \
         foreground p {}, Adam lr {} (cosine), {threads} torch threads",
        config.name,
        config.depth,
        config.base,
        config.epochs,
        config.patches_per_epoch,
        config.patch,
        config.batch_size,
        config.foreground_p,
        config.lr
    );

    let template = load_template(&data.join("mni"))?;
    print_blocks(&template);

    let mut results = Vec::new();
    let mut best: Option<(f64, usize, delira::backend::State)> = None;
    let folds = folds.unwrap_or_else(|| (0..template.blocks.len()).collect());
    if let Some(&bad) = folds.iter().find(|&&k| k >= template.blocks.len()) {
        return Err(format!(
            "fold {bad} does not exist; use 0..{}",
            template.blocks.len()
        )
        .into());
    }
    for &fold in &folds {
        let run_dir = out.join(format!("fold{fold}"));
        let (result, network) = run_fold(&template, &config, fold, &run_dir, evaluate_only)?;
        print_fold(fold, results.is_empty(), &result);
        let mean = result.network.mean_dice();
        if best.as_ref().is_none_or(|(b, _, _)| mean > *b) {
            best = Some((mean, fold, network.export_state()?));
        }
        results.push(result);
    }
    print_summary(&results);
    write_csv(&results, &out)?;

    let (_, best_fold, state) = best.ok_or("no fold was trained")?;
    state.save(out.join("best.safetensors"))?;
    let mut network = unet(&config)?;
    network.import_state(&state)?;
    transfer(&template, &data, &out, &config, &mut network, best_fold)?;
    println!(
        "\nwall time {:.1} min; outputs in {}",
        started.elapsed().as_secs_f64() / 60.0,
        out.display()
    );
    Ok(())
}

fn print_blocks(template: &Template) {
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

/// Trains on the blocks other than `fold`, segments block `fold` and scores it and the threshold
/// rule.
fn run_fold(
    template: &Template,
    config: &RunConfig,
    fold: usize,
    run_dir: &std::path::Path,
    evaluate_only: bool,
) -> Result<(FoldResult, impl Network), Box<dyn Error>> {
    let held_out = &template.blocks[fold];
    let train_blocks: Vec<_> = template
        .blocks
        .iter()
        .enumerate()
        .filter(|&(k, _)| k != fold)
        .map(|(_, b)| b.clone())
        .collect();

    let thresholds = baseline::fit(train_blocks.iter().flat_map(|b| {
        crop(&template.t1, b)
            .into_iter()
            .copied()
            .zip(crop(&template.labels, b).into_iter().copied())
            .collect::<Vec<_>>()
    }));
    let truth = crop(&template.labels, held_out);
    let image = crop(&template.t1, held_out);
    let rule = ndarray::Zip::from(&image)
        .and(&truth)
        .map_collect(|&v, &t| if t > 0 { thresholds.label(v) } else { 0 });
    let baseline = score(&truth, &rule.view())?;

    let (mut network, trained) = if evaluate_only {
        (trained_network(config, run_dir)?, train::Trained::default())
    } else {
        let patches = fold_patches(template, &train_blocks, config)?;
        train(unet(config)?, &patches, config, fold, run_dir)?
    };
    let logits = predict_block(
        &mut network,
        &template.t1,
        held_out,
        config.patch,
        config.patch / 2,
    )?;
    let prediction = tissue_labels(&logits, &truth.mapv(|t| t > 0).view());
    let scores = score(&truth, &prediction.view())?;
    Ok((
        FoldResult {
            fold,
            network: scores,
            baseline,
            train_seconds: trained.seconds,
            final_loss: trained.losses.last().copied().unwrap_or(f64::NAN),
        },
        network,
    ))
}

fn print_fold(fold: usize, header: bool, r: &FoldResult) {
    if header {
        println!("\n                  Dice other    GM      WM   accuracy   train s  last loss");
    }
    let row = |who: &str, s: &Scores| {
        format!(
            "{who:<16}  {:>10.4}  {:>6.4}  {:>6.4}  {:>8.2}%",
            s.dice[0],
            s.dice[1],
            s.dice[2],
            100.0 * s.accuracy
        )
    };
    println!(
        "fold {fold} U-Net     {}  {:>8.0}  {:>9.4}",
        &row("", &r.network)[16..],
        r.train_seconds,
        r.final_loss
    );
    println!("fold {fold} threshold {}", &row("", &r.baseline)[16..]);
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let values: Vec<f64> = values.collect();
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

fn print_summary(results: &[FoldResult]) {
    let avg = |pick: &dyn Fn(&FoldResult) -> Scores| Scores {
        dice: std::array::from_fn(|c| mean(results.iter().map(|r| pick(r).dice[c]))),
        accuracy: mean(results.iter().map(|r| pick(r).accuracy)),
    };
    let (net, rule) = (avg(&|r| r.network), avg(&|r| r.baseline));
    let beats = results
        .iter()
        .filter(|r| r.network.mean_dice() > r.baseline.mean_dice())
        .count();
    println!(
        "mean   U-Net     {:>10.4}  {:>6.4}  {:>6.4}  {:>8.2}%\nmean   threshold {:>10.4}  \
         {:>6.4}  {:>6.4}  {:>8.2}%",
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

fn write_csv(results: &[FoldResult], out: &std::path::Path) -> Result<(), Box<dyn Error>> {
    let mut csv =
        String::from("fold,method,dice_other,dice_gm,dice_wm,accuracy,train_seconds,final_loss\n");
    for r in results {
        let fold = r.fold;
        for (method, s, seconds, loss) in [
            ("unet", &r.network, r.train_seconds, r.final_loss),
            ("threshold", &r.baseline, 0.0, f64::NAN),
        ] {
            writeln!(
                csv,
                "{fold},{method},{:.6},{:.6},{:.6},{:.6},{seconds:.1},{loss:.6}",
                s.dice[0], s.dice[1], s.dice[2], s.accuracy
            )?;
        }
    }
    let path = out.join("folds.csv");
    delira::io::write_atomically(&path, csv.as_bytes())?;
    Ok(())
}

/// The best network and the threshold rule (fitted on all four blocks) on Colin27.
fn transfer(
    template: &Template,
    data: &std::path::Path,
    out: &std::path::Path,
    config: &RunConfig,
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
    let labels = colin::segment(network, &colin, config.patch)?;
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
