//! `kfold --jobs N`: the folds of one run trained as separate processes of the example, `N` at a
//! time. On the 2-core machine two one-thread fold jobs train about 30% more patches per second
//! in total than one fold with two threads (libtorch's small 3D convolutions do not keep two
//! threads busy).

use std::collections::{BTreeMap, VecDeque};
use std::error::Error;
use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};
use std::time::{Duration, Instant};

use delira::experiment::{Cli, FoldResult, RunDir};

use crate::{Own, print_fold};

/// The log of a fold job, in its fold folder (appended to by every job of the fold).
pub const JOB_LOG: &str = "job.log";

/// The arguments of the process that trains `fold` of run `id` (after the program's name): the
/// experiment's settings of `cli` (`--config`, or `--full` where it came from there, every
/// `--set`, `--runs`), the example's `--data`, `threads` libtorch threads and no Colin27 transfer
/// (the parent applies the best fold once all are done).
pub fn job_args(cli: &Cli, own: &Own, fold: usize, id: &str, threads: usize) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![
        "kfold".into(),
        "--fold".into(),
        fold.to_string().into(),
        "--run-id".into(),
        id.into(),
        "--runs".into(),
        cli.options.runs.clone().into(),
        "--threads".into(),
        threads.to_string().into(),
        "--data".into(),
        own.data.clone().into(),
        "--no-transfer".into(),
    ];
    if own.full {
        args.push("--full".into());
    } else if let Some(config) = &cli.options.config {
        args.extend(["--config".into(), config.clone().into()]);
    }
    for assignment in &cli.options.set {
        args.extend(["--set".into(), assignment.into()]);
    }
    args
}

/// How often the running jobs' progress is printed.
const STATUS_EVERY: Duration = Duration::from_mins(1);

/// The last progress line of a job's log (`epoch 12/175 batch 8/40 | loss 0.1 | ...`), up to
/// its loss; `None` before the first one.
fn last_progress(log: &Path) -> Option<String> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let mut file = File::open(log).ok()?;
    let length = file.metadata().ok()?.len();
    file.seek(SeekFrom::Start(length.saturating_sub(4096)))
        .ok()?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail).ok()?;
    progress_in(&String::from_utf8_lossy(&tail))
}

/// The last line of `text` that starts with `epoch `, cut after its second field (the loss).
fn progress_in(text: &str) -> Option<String> {
    let line = text
        .split(['\n', '\r'])
        .rev()
        .find(|line| line.starts_with("epoch "))?;
    Some(line.split(" | ").take(2).collect::<Vec<_>>().join(", "))
}

/// A running fold job.
struct Job {
    fold: usize,
    child: Child,
    started: Instant,
    log: PathBuf,
}

impl Job {
    fn start(
        program: &Path,
        args: &[OsString],
        fold: usize,
        dir: &Path,
    ) -> Result<Self, Box<dyn Error>> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let log = dir.join(JOB_LOG);
        // Appended to: a later job of the same fold (a refused re-run, say) keeps what the
        // earlier ones wrote.
        let out = File::options()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone()?;
        let child = Process::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| {
                format!(
                    "starting the job of fold {fold} ({}): {e}",
                    program.display()
                )
            })?;
        Ok(Self {
            fold,
            child,
            started: Instant::now(),
            log,
        })
    }
}

/// Trains `folds` of one run (`--run-id`, or a new one) as `kfold --fold K` jobs of this
/// program, `own.jobs` at a time with `own.threads / own.jobs` libtorch threads each; prints each
/// fold's row as the jobs end, in fold order. The first job pins the run's configuration,
/// manifest and split; the others start once the split is on disk. After a failed job no new
/// one starts, the running ones finish (their checkpoints stay, `resume` continues them), and
/// the error names the fold and its log. Returns the run folder and the folds' results.
pub fn fold_jobs(
    cli: &Cli,
    folds: &[usize],
    own: &Own,
) -> Result<(PathBuf, Vec<FoldResult>), Box<dyn Error>> {
    let run = RunDir::create(
        &cli.options.runs,
        crate::brain_tissue::NAME,
        cli.options.run_id.as_deref(),
    )?;
    let id = run
        .path()
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .ok_or("the run folder has no name")?;
    let threads = (own.threads / own.jobs).max(1);
    let program = std::env::current_exe()?;
    println!(
        "\n{} folds as up to {} jobs at a time, {threads} torch thread(s) each; run {}, each \
         job's output in fold-K/{JOB_LOG}",
        folds.len(),
        own.jobs,
        run.path().display()
    );

    let mut waiting: VecDeque<usize> = folds.iter().copied().collect();
    let mut running: Vec<Job> = Vec::new();
    let mut seconds = BTreeMap::new();
    let mut failure: Option<String> = None;
    let mut reported = Instant::now();
    loop {
        while failure.is_none()
            && running.len() < own.jobs
            && (running.is_empty() || run.split_path().is_file())
            && let Some(fold) = waiting.pop_front()
        {
            let args = job_args(cli, own, fold, &id, threads);
            running.push(Job::start(&program, &args, fold, &run.fold_dir(fold))?);
            println!("fold {fold} started");
        }
        if running.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
        if reported.elapsed() >= STATUS_EVERY {
            reported = Instant::now();
            let status: Vec<String> = running
                .iter()
                .map(|job| {
                    let last = last_progress(&job.log).unwrap_or_else(|| "starting".to_owned());
                    format!("fold {}: {last}", job.fold)
                })
                .collect();
            println!("{}", status.join("; "));
        }
        let mut still = Vec::with_capacity(running.len());
        for mut job in running.drain(..) {
            match job.child.try_wait()? {
                None => still.push(job),
                Some(status) if status.success() => {
                    let elapsed = job.started.elapsed().as_secs_f64();
                    println!("fold {} finished in {elapsed:.0} s", job.fold);
                    seconds.insert(job.fold, elapsed);
                }
                Some(status) => {
                    failure.get_or_insert_with(|| {
                        format!(
                            "the job of fold {} failed ({status}); its output is in {}",
                            job.fold,
                            job.log.display()
                        )
                    });
                }
            }
        }
        running = still;
    }
    if let Some(failure) = failure {
        return Err(failure.into());
    }

    let finished = run.read_fold_results()?;
    let mut results = Vec::with_capacity(folds.len());
    for &fold in folds {
        let result = finished
            .iter()
            .find(|result| result.fold == fold)
            .cloned()
            .ok_or_else(|| {
                format!(
                    "the job of fold {fold} left no result in {}",
                    run.fold_dir(fold).display()
                )
            })?;
        print_fold(
            fold,
            results.is_empty(),
            &result,
            seconds.get(&fold).copied(),
        );
        results.push(result);
    }
    // Each job aggregated the folds finished when it ended; once more, now that all are.
    run.aggregate()?;
    Ok((run.path().to_owned(), results))
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;
    use delira::experiment::{Cli, Command};

    use super::job_args;
    use crate::own_options;

    fn own(args: &[&str]) -> crate::Own {
        own_options(args.iter().map(|&a| a.to_owned())).unwrap()
    }

    #[test]
    fn a_fold_job_gets_the_settings_of_the_run() {
        let parent = own(&[
            "brain_tissue",
            "--jobs",
            "2",
            "--threads",
            "2",
            "--data",
            "/d",
            "--set",
            "epochs=3",
            "--runs",
            "/r",
            "--set",
            "params.base=4",
        ]);
        assert_eq!((parent.jobs, parent.threads, parent.transfer), (2, 2, true));
        let cli = Cli::parse_from(&parent.rest);
        let args = job_args(&cli, &parent, 3, "run-a", 1);
        let mut line = vec!["brain_tissue".to_owned()];
        line.extend(args.iter().map(|a| a.to_string_lossy().into_owned()));
        let child = own(&line.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!((child.jobs, child.threads, child.transfer), (1, 1, false));
        assert_eq!(child.data, std::path::PathBuf::from("/d"));
        let job = Cli::parse_from(&child.rest);
        assert_eq!(job.command, Command::Kfold { fold: Some(3) });
        assert_eq!(job.options.run_id.as_deref(), Some("run-a"));
        assert_eq!(job.options.runs, std::path::PathBuf::from("/r"));
        assert_eq!(job.options.set, ["epochs=3", "params.base=4"]);
        assert_eq!(job.options.config, None);
    }

    #[test]
    fn the_status_line_is_the_last_progress_line_up_to_its_loss() {
        let log = "MNI ...\nepoch 3/12 batch 36/40 | loss 0.5 | 10.1 samples/s | eta 1s\n\
                   epoch 3/12 done | train/loss 0.49\nepoch 4/12 batch 4/40 | loss 0.4812 | \
                   10.3 samples/s | eta 14s | data stall 0%\n";
        assert_eq!(
            super::progress_in(log).as_deref(),
            Some("epoch 4/12 batch 4/40, loss 0.4812")
        );
        assert_eq!(
            super::progress_in("epoch 1/2 done | train/loss 0.7").as_deref(),
            Some("epoch 1/2 done, train/loss 0.7")
        );
        assert_eq!(super::progress_in("MNI template read\n"), None);
        assert_eq!(
            super::last_progress(std::path::Path::new("/no/such/job.log")),
            None
        );
    }

    #[test]
    fn a_fold_job_of_the_full_configuration_reads_full_toml() {
        let parent = own(&["brain_tissue", "kfold", "--full", "--jobs", "2"]);
        let cli = Cli::parse_from(&parent.rest);
        assert_eq!(cli.options.config.as_deref(), Some(crate::FULL.as_ref()));
        let args = job_args(&cli, &parent, 0, "run-b", 1);
        let mut line = vec!["brain_tissue".to_owned()];
        line.extend(args.iter().map(|a| a.to_string_lossy().into_owned()));
        let child = own(&line.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(child.full);
        let job = Cli::parse_from(&child.rest);
        // `--full` once: the job's own `full.toml`, not a second `--config`.
        assert_eq!(job.options.config.as_deref(), Some(crate::FULL.as_ref()));
        assert!(
            own_options(
                ["brain_tissue", "--jobs", "0"]
                    .map(str::to_owned)
                    .into_iter()
            )
            .is_err()
        );
    }
}
