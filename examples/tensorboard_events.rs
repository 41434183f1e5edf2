//! Writes a TensorBoard event file with known scalars, an image and a histogram into the folder
//! given as the first argument; `scripts/check-tensorboard` reads it back with TensorBoard's own
//! reader and checks every tag, step and value.

use delira::logging::{MetricSink, TensorBoardWriter};
use ndarray::Array3;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    delira::logging::install_subscriber();
    let dir = std::env::args()
        .nth(1)
        .ok_or("usage: tensorboard_events <output folder>")?;
    let mut writer = TensorBoardWriter::create(&dir)?;

    for step in 0..5_u32 {
        writer.scalar("train/loss", u64::from(step), 1.0 / f64::from(step + 1))?;
    }
    for (step, dice) in [(0, 0.5), (2, 0.625), (4, 0.75)] {
        writer.scalar("val/dice", step, dice)?;
    }
    // 2 rows × 3 columns, RGB: pixel (r, c) = (40 r + 10 c, 255 - 40 r, 7 c).
    let image = Array3::from_shape_fn((2, 3, 3), |(r, c, k)| match k {
        0 => (40 * r + 10 * c) as u8,
        1 => (255 - 40 * r) as u8,
        _ => (7 * c) as u8,
    });
    writer.image("sample/slice", 3, image.view())?;
    let values: Vec<f64> = (0..=10).map(f64::from).collect();
    writer.histogram("weights/conv1", 1, &values)?;
    writer.flush()?;
    println!("{}", writer.path().display());
    Ok(())
}
