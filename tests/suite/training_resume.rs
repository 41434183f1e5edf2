//! Exact resume after a real `kill -9`: the probe binary trains uninterrupted once; a second run
//! is killed with SIGKILL at an arbitrary step and resumed from its last checkpoint; final weights
//! (bitwise) and the metrics history must equal the uninterrupted run's.

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

const PROBE: &str = env!("CARGO_BIN_EXE_trainer-probe");
/// 4 epochs of 6 batches (22 samples in batches of 4).
const STEPS: u64 = 24;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("delira-resume-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn run_to_end(dir: &Path, kind: &str) -> String {
    let output = Command::new(PROBE).arg(dir).arg(kind).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "probe failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Starts the probe, reads its progress and sends SIGKILL once it has printed `step <kill_at>`.
fn kill_at(dir: &Path, kind: &str, kill_at: u64, delay_ms: u64) {
    let mut child = Command::new(PROBE)
        .arg(dir)
        .arg(kind)
        .arg(delay_ms.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let target = format!("step {kill_at}");
    for line in BufReader::new(stdout).lines() {
        if line.unwrap() == target {
            child.kill().unwrap(); // SIGKILL on Unix
            break;
        }
    }
    let status = child.wait().unwrap();
    assert_eq!(
        status.signal(),
        Some(9),
        "the probe ended before step {kill_at}: {status}"
    );
    assert!(!dir.join("final.safetensors").exists());
}

/// An arbitrary step after the first checkpoint (step 3) and before the end, different from run
/// to run; printed when the test fails.
fn arbitrary_step() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    4 + u64::from(nanos ^ std::process::id()) % (STEPS - 5)
}

fn killed_and_resumed_run_ends_as_the_uninterrupted_one(kind: &str, delay_ms: u64) {
    let whole = scratch(&format!("{kind}-whole"));
    let stdout = run_to_end(&whole, kind);
    assert!(
        stdout.ends_with(&format!("step {STEPS}\ndone after {STEPS} steps\n")),
        "{stdout}"
    );

    let step = arbitrary_step();
    let killed = scratch(&format!("{kind}-killed"));
    kill_at(&killed, kind, step, delay_ms);
    let stdout = run_to_end(&killed, kind);
    let first: u64 = stdout
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("step "))
        .and_then(|n| n.parse().ok())
        .unwrap();
    // Resumed from the newest checkpoint at or before the kill: at most 3 steps repeated.
    assert!(
        first <= step + 1 && first + 3 > step,
        "killed at step {step}, resumed at {first}"
    );

    let weights = std::fs::read(whole.join("final.safetensors")).unwrap();
    let resumed = std::fs::read(killed.join("final.safetensors")).unwrap();
    assert!(
        weights == resumed,
        "final weights differ after a kill at step {step}"
    );
    let history = std::fs::read_to_string(whole.join("history.json")).unwrap();
    let resumed_history = std::fs::read_to_string(killed.join("history.json")).unwrap();
    assert_eq!(history, resumed_history, "killed at step {step}");
    assert!(history.contains("\"accuracy\"") || history.contains("\"dice_mean\""));

    std::fs::remove_dir_all(&whole).unwrap();
    std::fs::remove_dir_all(&killed).unwrap();
}

#[test]
fn linear_run_killed_at_an_arbitrary_step_resumes_exactly() {
    killed_and_resumed_run_ends_as_the_uninterrupted_one("linear", 20);
}

#[cfg(feature = "torch")]
#[test]
fn torch_unet_run_killed_at_an_arbitrary_step_resumes_exactly() {
    killed_and_resumed_run_ends_as_the_uninterrupted_one("unet", 0);
}
