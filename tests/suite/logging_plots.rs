//! Progress lines and PNG plots.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use delira::logging::plot::{MatrixLayout, cell_color, confusion_matrix, learning_curves};
use delira::logging::progress::Progress;
use delira::training::metrics::ConfusionMatrix;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn plain_progress_lines_report_loss_rate_eta_and_data_stall() {
    let captured = Captured::default();
    let mut progress = Progress::lines(2, Arc::new(Mutex::new(captured.clone())));
    progress.start_epoch(0, 20);
    for batch in 0..20 {
        // 4 samples per batch except a last batch of 2; 50 ms waiting and 150 ms computing.
        let samples = if batch == 19 { 2 } else { 4 };
        progress.batch(
            1.0,
            samples,
            Duration::from_millis(50),
            Duration::from_millis(150),
        );
    }
    progress.finish_epoch(&BTreeMap::from([
        ("loss".to_owned(), 1.0),
        ("val_dice".to_owned(), 0.5),
    ]));

    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // One line every 2 batches (a tenth of 20), then the epoch line.
    assert_eq!(lines.len(), 11);
    assert_eq!(
        lines[0],
        "epoch 1/2 batch 2/20 | loss 1.0000 | 20.0 samples/s | eta 4s | data stall 25%"
    );
    assert_eq!(
        lines[9],
        "epoch 1/2 batch 20/20 | loss 1.0000 | 19.5 samples/s | eta 0s | data stall 25%"
    );
    assert_eq!(lines[10], "epoch 1/2 done | loss 1.0000 | val_dice 0.5000");
}

fn png_size(path: &std::path::Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(&bytes[12..16], b"IHDR");
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    (width, height)
}

#[test]
fn learning_curves_and_confusion_matrices_are_written_as_png() {
    let dir = std::env::temp_dir().join(format!("delira-plots-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let epochs = 0..12_u64;
    let history = BTreeMap::from([
        (
            "train/loss".to_owned(),
            epochs
                .clone()
                .map(|e| (e, 1.2 * 0.8_f64.powi(e as i32)))
                .collect(),
        ),
        (
            "val/loss".to_owned(),
            epochs
                .clone()
                .map(|e| (e, 1.3 * 0.85_f64.powi(e as i32) + 0.1))
                .collect(),
        ),
        (
            "val/dice".to_owned(),
            epochs
                .map(|e| (e, 1.0 - 0.9 * 0.75_f64.powi(e as i32)))
                .chain([(12, f64::NAN)])
                .collect(),
        ),
    ]);
    let written = learning_curves(&dir, &history).unwrap();
    assert_eq!(written, [dir.join("dice.png"), dir.join("loss.png")]);
    for path in &written {
        assert_eq!(png_size(path), (800, 500));
    }

    let truth = [0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 2];
    let prediction = [0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 2, 0];
    let matrix = ConfusionMatrix::from_labels(&truth, &prediction, 3).unwrap();
    let path = dir.join("confusion.png");
    confusion_matrix(&path, &matrix, &["csf", "grey", "white"]).unwrap();
    assert_eq!(png_size(&path), MatrixLayout::size(3));
    assert!(!dir.join("confusion.png.partial").exists());
    if std::env::var_os("DELIRA_KEEP_PLOTS").is_none() {
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn cell_colours_run_from_white_to_dark_blue() {
    assert_eq!(cell_color(0.0), [255, 255, 255]);
    assert_eq!(cell_color(1.0), [8, 48, 107]);
    assert_eq!(cell_color(0.5), [132, 152, 181]);
    assert_eq!(cell_color(2.0), cell_color(1.0));
}
