//! PNG plots: learning curves and confusion matrices.
//!
//! Drawn with `plotters` into memory, encoded as PNG and written through a temporary file that
//! is renamed into place. Text uses `DejaVu Sans Mono`, embedded in the crate (Bitstream Vera
//! licence, see `assets/fonts/DejaVu-LICENSE.txt`), so plotting needs no system fonts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ndarray::Array3;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::LoggingError;
use super::tensorboard::encode_png;
use crate::training::metrics::ConfusionMatrix;

const FONT: &str = "sans-serif";
static FONT_BYTES: &[u8] = include_bytes!("../../assets/fonts/DejaVuSansMono.ttf");

fn register_font() -> Result<(), LoggingError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(LoggingError::Encode {
            what: "embedded font".into(),
            message: "not a usable font".into(),
        })
    }
}

fn draw_error(what: &str) -> impl Fn(&dyn std::fmt::Display) -> LoggingError + '_ {
    move |e| LoggingError::Encode {
        what: what.to_owned(),
        message: e.to_string(),
    }
}

/// Renders `draw` on a white RGB canvas and writes it to `path` as PNG, atomically.
fn render(
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(
        &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    ) -> Result<(), LoggingError>,
) -> Result<(), LoggingError> {
    register_font()?;
    let what = path.display().to_string();
    let mut buffer = vec![0_u8; size.0 as usize * size.1 as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buffer, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| draw_error(&what)(&e))?;
        draw(&root)?;
        root.present().map_err(|e| draw_error(&what)(&e))?;
    }
    let image = Array3::from_shape_vec((size.1 as usize, size.0 as usize, 3), buffer)
        .map_err(|e| draw_error(&what)(&e))?;
    let png = encode_png(&what, &image.view())?;
    write_atomically(path, &png)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), LoggingError> {
    let io = |source| LoggingError::Io {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    crate::io::write_atomically(path, bytes).map_err(io)
}

/// A named line of `(epoch, value)` points.
pub type Series<'a> = (&'a str, &'a [(u64, f64)]);

/// Draws one chart with a line per series (`name`, points `(epoch, value)`); non-finite values
/// are left out.
pub fn learning_curve(
    path: impl AsRef<Path>,
    metric: &str,
    series: &[Series<'_>],
) -> Result<(), LoggingError> {
    let path = path.as_ref();
    let what = path.display().to_string();
    let finite: Vec<(&str, Vec<(f64, f64)>)> = series
        .iter()
        .map(|(name, points)| {
            let points = points
                .iter()
                .filter(|(_, v)| v.is_finite())
                .map(|&(e, v)| (e as f64, v));
            (*name, points.collect())
        })
        .collect();
    let all = finite.iter().flat_map(|(_, p)| p.iter());
    let (mut x_max, mut y_min, mut y_max) = (1.0_f64, f64::INFINITY, f64::NEG_INFINITY);
    for &(x, y) in all {
        x_max = x_max.max(x);
        y_min = y_min.min(y);
        y_max = y_max.max(y);
    }
    if !y_min.is_finite() {
        (y_min, y_max) = (0.0, 1.0);
    }
    let pad = ((y_max - y_min) * 0.05).max(1e-9);

    render(path, (800, 500), |root| {
        let error = draw_error(&what);
        let mut chart = ChartBuilder::on(root)
            .caption(metric, (FONT, 26))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(72)
            .build_cartesian_2d(0.0..x_max, (y_min - pad)..(y_max + pad))
            .map_err(|e| error(&e))?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc(metric)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .draw()
            .map_err(|e| error(&e))?;
        for (index, (name, points)) in finite.iter().enumerate() {
            let color = Palette99::pick(index).to_rgba();
            chart
                .draw_series(LineSeries::new(
                    points.iter().copied(),
                    color.stroke_width(2),
                ))
                .map_err(|e| error(&e))?
                .label(*name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font((FONT, 16))
            .draw()
            .map_err(|e| error(&e))
    })
}

/// One learning-curve PNG per metric in `dir`, from tagged histories such as `train/loss` and
/// `val/loss` (grouped by the part after the last `/`; the part before names the line).
/// Returns the files written, in metric order.
///
/// ```
/// use std::collections::BTreeMap;
/// let dir = std::env::temp_dir().join(format!("delira-doc-curves-{}", std::process::id()));
/// let history = BTreeMap::from([
///     ("train/loss".to_owned(), vec![(0, 1.0), (1, 0.6), (2, 0.4)]),
///     ("val/loss".to_owned(), vec![(0, 1.1), (1, 0.8), (2, 0.7)]),
///     ("val/dice".to_owned(), vec![(0, 0.2), (1, 0.5), (2, 0.6)]),
/// ]);
/// let written = delira::logging::plot::learning_curves(&dir, &history).unwrap();
/// assert_eq!(written, [dir.join("dice.png"), dir.join("loss.png")]);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub fn learning_curves(
    dir: impl AsRef<Path>,
    history: &BTreeMap<String, Vec<(u64, f64)>>,
) -> Result<Vec<PathBuf>, LoggingError> {
    let mut metrics: BTreeMap<&str, Vec<Series<'_>>> = BTreeMap::new();
    for (tag, points) in history {
        let (series, metric) = tag.rsplit_once('/').unwrap_or((tag.as_str(), tag.as_str()));
        metrics
            .entry(metric)
            .or_default()
            .push((series, points.as_slice()));
    }
    let mut written = Vec::new();
    for (metric, series) in metrics {
        let file: String = metric
            .chars()
            .map(|c| {
                if c.is_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = dir.as_ref().join(format!("{file}.png"));
        learning_curve(&path, metric, &series)?;
        written.push(path);
    }
    Ok(written)
}

/// The colour of a cell whose row fraction is `fraction` (white to dark blue).
pub fn cell_color(fraction: f64) -> [u8; 3] {
    let t = fraction.clamp(0.0, 1.0);
    let mix = |from: f64, to: f64| (from + (to - from) * t).round() as u8;
    [mix(255.0, 8.0), mix(255.0, 48.0), mix(255.0, 107.0)]
}

/// The layout of a confusion-matrix plot: where cell (row, column) lies, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatrixLayout {
    /// Left edge of the grid.
    pub left: i32,
    /// Top edge of the grid.
    pub top: i32,
    /// Side of one cell.
    pub cell: i32,
}

impl MatrixLayout {
    fn for_classes(classes: usize) -> Self {
        let cell = (560 / classes.max(1)).clamp(24, 120) as i32;
        Self {
            left: 150,
            top: 70,
            cell,
        }
    }

    /// The image size for `classes` classes.
    pub fn size(classes: usize) -> (u32, u32) {
        let layout = Self::for_classes(classes);
        let grid = layout.cell * classes as i32;
        (
            (layout.left + grid + 30) as u32,
            (layout.top + grid + 90) as u32,
        )
    }

    /// The layout used for `classes` classes.
    pub fn of(classes: usize) -> Self {
        Self::for_classes(classes)
    }

    /// The centre of cell (true class `row`, predicted class `column`).
    pub fn centre(&self, row: usize, column: usize) -> (i32, i32) {
        let x = self.left + column as i32 * self.cell + self.cell / 2;
        let y = self.top + row as i32 * self.cell + self.cell / 2;
        (x, y)
    }
}

/// Draws a confusion matrix: rows are true classes, columns predicted classes, each cell shows
/// its count and is shaded by its share of the row ([`cell_color`]). `class_names` labels the
/// classes (indices are used where it is shorter).
pub fn confusion_matrix(
    path: impl AsRef<Path>,
    matrix: &ConfusionMatrix,
    class_names: &[&str],
) -> Result<(), LoggingError> {
    let path = path.as_ref();
    let what = path.display().to_string();
    let classes = matrix.classes();
    let layout = MatrixLayout::of(classes);
    let name = |c: usize| {
        class_names
            .get(c)
            .map_or_else(|| c.to_string(), |n| (*n).to_owned())
    };

    render(path, MatrixLayout::size(classes), |root| {
        let error = draw_error(&what);
        let centred = |size: u32, color: &'static RGBColor| {
            TextStyle::from((FONT, size).into_font())
                .color(color)
                .pos(Pos::new(HPos::Center, VPos::Center))
        };
        let grid = layout.cell * classes as i32;
        let title_y = layout.top / 2;
        root.draw(&Text::new(
            "confusion matrix",
            (layout.left + grid / 2, title_y),
            centred(22, &BLACK),
        ))
        .map_err(|e| error(&e))?;
        for row in 0..classes {
            let support = matrix.support(row);
            for column in 0..classes {
                let count = matrix.count(row, column);
                let fraction = if support == 0 {
                    0.0
                } else {
                    count as f64 / support as f64
                };
                let (x, y) = layout.centre(row, column);
                let half = layout.cell / 2;
                let rect = Rectangle::new([(x - half, y - half), (x + half, y + half)], {
                    let [r, g, b] = cell_color(fraction);
                    RGBColor(r, g, b).filled()
                });
                root.draw(&rect).map_err(|e| error(&e))?;
                let ink: &'static RGBColor = if fraction > 0.5 { &WHITE } else { &BLACK };
                let size = (layout.cell / 3).clamp(10, 24) as u32;
                root.draw(&Text::new(count.to_string(), (x, y), centred(size, ink)))
                    .map_err(|e| error(&e))?;
            }
            let (_, y) = layout.centre(row, 0);
            root.draw(&Text::new(
                name(row),
                (layout.left - 50, y),
                centred(15, &BLACK),
            ))
            .map_err(|e| error(&e))?;
        }
        for column in 0..classes {
            let (x, _) = layout.centre(0, column);
            let y = layout.top + grid + 18;
            root.draw(&Text::new(name(column), (x, y), centred(15, &BLACK)))
                .map_err(|e| error(&e))?;
        }
        let label_y = layout.top + grid + 52;
        root.draw(&Text::new(
            "predicted",
            (layout.left + grid / 2, label_y),
            centred(17, &BLACK),
        ))
        .map_err(|e| error(&e))?;
        root.draw(&Text::new(
            "true",
            (layout.left - 110, layout.top + grid / 2),
            centred(17, &BLACK),
        ))
        .map_err(|e| error(&e))?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(path: &Path) -> (u32, Vec<u8>) {
        let decoder = png::Decoder::new(std::fs::File::open(path).unwrap());
        let mut reader = decoder.read_info().unwrap();
        let mut pixels = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut pixels).unwrap();
        assert_eq!(info.color_type, png::ColorType::Rgb);
        (info.width, pixels)
    }

    #[test]
    fn cells_are_shaded_by_their_share_of_the_row() {
        let path = std::env::temp_dir().join(format!("delira-cm-unit-{}.png", std::process::id()));
        let truth = [0, 0, 0, 0, 1, 1, 2];
        let prediction = [0, 0, 0, 1, 1, 1, 0];
        let matrix = ConfusionMatrix::from_labels(&truth, &prediction, 3).unwrap();
        confusion_matrix(&path, &matrix, &[]).unwrap();
        let (width, pixels) = decode(&path);
        let layout = MatrixLayout::of(3);
        for row in 0..3 {
            for column in 0..3 {
                // A point inside the cell, away from the count printed at its centre.
                let (x, y) = layout.centre(row, column);
                let (x, y) = (
                    (x - layout.cell / 2 + 4) as usize,
                    (y - layout.cell / 2 + 4) as usize,
                );
                let offset = (y * width as usize + x) * 3;
                let support = matrix.support(row);
                let fraction = if support == 0 {
                    0.0
                } else {
                    matrix.count(row, column) as f64 / support as f64
                };
                assert_eq!(
                    pixels[offset..offset + 3],
                    cell_color(fraction),
                    "cell ({row}, {column})"
                );
            }
        }
        std::fs::remove_file(&path).unwrap();
    }
}
