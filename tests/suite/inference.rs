//! The predictor: sliding-window positions and blending, flip averaging, prediction over a
//! dataset, and predictions written as NIfTI on the input image's grid.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use delira::backend::{BackendError, Device, Network, State, StepOutput};
use delira::data::Batch;
use delira::data::{FnDataset, Loader, LoaderConfig, RandomSampler, Record};
use delira::inference::{
    Blend, FlipAveraging, InferenceError, NetworkPredictor, Predict, SlidingWindow, argmax,
    predict_dataset, predict_loader, softmax, window_starts, with_geometry,
};
use delira::io::{Affine, LabelMap, Volume, load_labels, load_volume, save_labels, save_volume};
use ndarray::{ArrayD, ArrayViewD, Axis, IxDyn, ShapeBuilder, concatenate};

type Net = Result<ArrayD<f32>, Infallible>;

/// A network that returns its input.
#[expect(
    clippy::needless_pass_by_value,
    clippy::unnecessary_wraps,
    reason = "the signature of a network as `Predict` takes it"
)]
fn identity(x: ArrayViewD<f32>) -> Net {
    Ok(x.to_owned())
}

/// Integer values, different at every voxel and channel.
fn integers(shape: &[usize]) -> ArrayD<f32> {
    let mut n = 0_i64;
    ArrayD::from_shape_simple_fn(IxDyn(shape), || {
        n += 1;
        ((n * 37) % 101 - 50) as f32
    })
}

/// The same values in Fortran (NIfTI) memory order.
fn fortran(a: &ArrayD<f32>) -> ArrayD<f32> {
    let mut f = ArrayD::zeros(IxDyn(a.shape()).f());
    f.assign(a);
    f
}

fn sliding(window: &[usize], overlap: f64, batch_size: usize, blend: Blend) -> SlidingWindow {
    SlidingWindow::builder()
        .window(window.to_vec())
        .overlap(overlap)
        .batch_size(batch_size)
        .blend(blend)
        .build()
}

/// nnU-Net's Gaussian weight along one axis of a window of `w` voxels (σ = w / 8, centre in the
/// middle).
fn gauss(offset: usize, w: usize) -> f64 {
    let centre = (w as f64 - 1.0) / 2.0;
    let sigma = w as f64 / 8.0;
    (-(offset as f64 - centre).powi(2) / (2.0 * sigma * sigma)).exp()
}

// ---------------------------------------------------------------------------------------------
// Window positions

#[test]
fn window_starts_follow_nnunet() {
    // Every list below is what nnU-Net's `compute_steps_for_sliding_window` gives (run with numpy,
    // `tile_step_size = 1 - overlap`).
    // nnU-Net's own example: 110 voxels, 64-voxel tiles, step 0.5 -> 0, 23, 46.
    assert_eq!(window_starts(110, 64, 0.5), [0, 23, 46]);
    assert_eq!(window_starts(128, 64, 0.5), [0, 32, 64]);
    // Even and odd sizes, the last window flush with the border.
    assert_eq!(window_starts(10, 4, 0.5), [0, 2, 4, 6]);
    assert_eq!(window_starts(9, 4, 0.5), [0, 2, 3, 5]);
    assert_eq!(window_starts(11, 4, 0.25), [0, 2, 5, 7]);
    assert_eq!(window_starts(12, 4, 0.0), [0, 4, 8]);
    assert_eq!(window_starts(13, 4, 0.0), [0, 3, 6, 9]);
    assert_eq!(window_starts(7, 3, 0.0), [0, 2, 4]);
    // 2.5 rounds half to even, as numpy's round.
    assert_eq!(window_starts(9, 4, 0.25), [0, 2, 5]);
    // Windows as large as the axis or larger: one window at 0.
    assert_eq!(window_starts(4, 4, 0.5), [0]);
    assert_eq!(window_starts(3, 4, 0.5), [0]);
    // A step below one voxel is raised to one voxel.
    assert_eq!(window_starts(6, 4, 0.9), [0, 1, 2]);
    // High overlap on a large axis: evenly spread, never more than the target step apart.
    let starts = window_starts(100, 16, 0.75);
    assert_eq!(starts.len(), 22);
    assert!(starts.windows(2).all(|p| p[1] - p[0] <= 4 && p[1] > p[0]));
    assert_eq!(starts.last(), Some(&84));
}

#[test]
fn positions_are_row_major_over_axes() {
    let s = sliding(&[4, 3], 0.5, 1, Blend::Constant);
    // Axis 0: 9 voxels -> 0, 2, 3, 5; axis 1: 5 voxels, window 3, step 1.5 -> 0, 1, 2.
    let expected: Vec<Vec<usize>> = [0, 2, 3, 5]
        .iter()
        .flat_map(|&x| [0, 1, 2].map(|y| vec![x, y]))
        .collect();
    assert_eq!(s.positions(&[9, 5]).unwrap(), expected);
}

// ---------------------------------------------------------------------------------------------
// Blending

#[test]
fn identity_network_returns_the_input() {
    let input = integers(&[2, 13, 10, 7]);
    for overlap in [0.0, 0.25, 0.5, 0.75] {
        for batch_size in [1, 3] {
            let constant = sliding(&[6, 5, 4], overlap, batch_size, Blend::Constant);
            let out = constant.run_array(&mut identity, input.view()).unwrap();
            // Plain averages of equal small integers are exact.
            assert_eq!(out, input, "constant blending, overlap {overlap}");

            let gaussian = sliding(&[6, 5, 4], overlap, batch_size, Blend::default());
            let out = gaussian
                .run_array(&mut identity, fortran(&input).view())
                .unwrap();
            assert_eq!(out.shape(), input.shape());
            // Dozens of windows add their weighted values in float32: some ulp of rounding.
            for (a, b) in out.iter().zip(&input) {
                assert!(
                    (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                    "gaussian blending, overlap {overlap}: {a} for {b}"
                );
            }
        }
    }
}

#[test]
fn identity_network_in_2d_with_a_volume() {
    let affine = Affine([
        [0.0, -2.0, 0.0, 10.0],
        [1.5, 0.0, 0.0, -4.0],
        [0.0, 0.0, 3.0, 7.5],
        [0.0, 0.0, 0.0, 1.0],
    ]);
    let image = Volume::new(integers(&[3, 17, 8]), affine);
    let s = sliding(&[5, 8], 0.5, 4, Blend::Constant);
    let out = s.run(&mut identity, &image).unwrap();
    assert_eq!(out, image);
}

#[test]
fn gaussian_weights_blend_window_constants_as_by_hand() {
    // The image holds 100 x + y; the network answers each window with its first voxel's value,
    // that is 100 × (the window's start along x) + (its start along y).
    let image = ArrayD::from_shape_fn(IxDyn(&[1, 10, 10]), |i| (100 * i[1] + i[2]) as f32);
    let mut start_value = |x: ArrayViewD<f32>| -> Net {
        let mut out = ArrayD::zeros(IxDyn(&[x.shape()[0], 1, 6, 6]));
        for (b, mut window) in out.outer_iter_mut().enumerate() {
            window.fill(x[[b, 0, 0, 0]]);
        }
        Ok(out)
    };
    let s = sliding(&[6, 6], 0.5, 2, Blend::default());
    assert_eq!(window_starts(10, 6, 0.5), [0, 2, 4]);
    let out = s.run_array(&mut start_value, image.view()).unwrap();

    // Voxel (5, 3): along x inside the windows at 0, 2, 4 (offsets 5, 3, 1), along y inside the
    // windows at 0, 2 (offsets 3, 1).
    let mut num = 0.0;
    let mut den = 0.0;
    for (sx, ox) in [(0, 5), (2, 3), (4, 1)] {
        for (sy, oy) in [(0, 3), (2, 1)] {
            let w = gauss(ox, 6) * gauss(oy, 6);
            num += w * f64::from(100 * sx + sy);
            den += w;
        }
    }
    let expected = num / den;
    assert!(
        (f64::from(out[[0, 5, 3]]) - expected).abs() < 1e-4,
        "{} != {expected}",
        out[[0, 5, 3]]
    );

    // The same by explicit numbers: σ = 0.75, centre 2.5, so the offsets 1 and 4 weigh
    // exp(-2) each, offset 0 and 5 exp(-50/9), 2 and 3 exp(-2/9).
    let (edge, mid, inner) = (
        (-50.0_f64 / 9.0).exp(),
        (-2.0_f64).exp(),
        (-2.0_f64 / 9.0).exp(),
    );
    assert!((gauss(5, 6) - edge).abs() < 1e-15 && (gauss(1, 6) - mid).abs() < 1e-15);
    // Voxel (5, 0) lies in the y-window at 0 only, so only the x weights matter.
    let expected = (edge * 0.0 + inner * 200.0 + mid * 400.0) / (edge + inner + mid);
    assert!((f64::from(out[[0, 5, 0]]) - expected).abs() < 1e-4);
    // Voxel (0, 0) is in one window only: its value is that window's.
    assert_eq!(out[[0, 0, 0]], 0.0);
    assert_eq!(out[[0, 9, 9]], 404.0);
}

#[test]
fn constant_blending_averages_window_constants_in_3d() {
    // Along x: 9 voxels, window 4, starts 0, 2, 3, 5; the network answers with its start along x.
    let image = ArrayD::from_shape_fn(IxDyn(&[1, 9, 3, 2]), |i| i[1] as f32);
    let mut start_x = |x: ArrayViewD<f32>| -> Net {
        let mut out = ArrayD::zeros(IxDyn(&[x.shape()[0], 1, 4, 3, 2]));
        for (b, mut window) in out.outer_iter_mut().enumerate() {
            window.fill(x[[b, 0, 0, 0, 0]]);
        }
        Ok(out)
    };
    let s = sliding(&[4, 3, 2], 0.5, 3, Blend::Constant);
    let out = s.run_array(&mut start_x, image.view()).unwrap();
    // x = 3 lies in the windows starting at 0, 2 and 3; x = 4 in those at 2 and 3; x = 5 in
    // those at 2, 3 and 5.
    let expected = [0.0, 0.0, 1.0, 5.0 / 3.0, 2.5, 10.0 / 3.0, 4.0, 5.0, 5.0];
    for (x, e) in expected.into_iter().enumerate() {
        for v in out.index_axis(Axis(1), x) {
            assert!((v - e).abs() < 1e-6, "x = {x}: {v} != {e}");
        }
    }
}

#[test]
fn other_output_channels() {
    // Two input channels, three output channels: sum, difference, a constant 7.
    let mut three = |x: ArrayViewD<f32>| -> Net {
        let a = x.index_axis(Axis(1), 0);
        let b = x.index_axis(Axis(1), 1);
        let sum = (&a + &b).insert_axis(Axis(1));
        let diff = (&a - &b).insert_axis(Axis(1));
        let seven = ArrayD::from_elem(sum.raw_dim(), 7.0_f32);
        Ok(concatenate(Axis(1), &[sum.view(), diff.view(), seven.view()]).unwrap())
    };
    let input = integers(&[2, 11, 6, 5]);
    for blend in [Blend::Constant, Blend::default()] {
        let out = sliding(&[4, 4, 4], 0.5, 5, blend)
            .run_array(&mut three, input.view())
            .unwrap();
        assert_eq!(out.shape(), [3, 11, 6, 5]);
        let a = input.index_axis(Axis(0), 0);
        let b = input.index_axis(Axis(0), 1);
        let expected = [&a + &b, &a - &b, ArrayD::from_elem(a.raw_dim(), 7.0)];
        for (k, e) in expected.iter().enumerate() {
            for (v, w) in out.index_axis(Axis(0), k).iter().zip(e) {
                assert!((v - w).abs() <= 1e-5 * w.abs().max(1.0));
            }
        }
    }
}

#[test]
fn no_output_channel_gives_an_empty_prediction() {
    let mut nothing = |x: ArrayViewD<f32>| -> Net {
        let mut shape = x.shape().to_vec();
        shape[1] = 0;
        Ok(ArrayD::zeros(IxDyn(&shape)))
    };
    let out = sliding(&[4, 4], 0.5, 2, Blend::default())
        .run_array(&mut nothing, integers(&[1, 9, 5]).view())
        .unwrap();
    assert_eq!(out.shape(), [0, 9, 5]);
}

#[test]
fn volume_smaller_than_the_window_is_padded_and_cropped() {
    let input = integers(&[1, 3, 5, 2]);
    let seen = RefCell::new(Vec::new());
    let mut recording = |x: ArrayViewD<f32>| -> Net {
        seen.borrow_mut().push(x.to_owned());
        Ok(x.to_owned())
    };
    let s = SlidingWindow::builder()
        .window(vec![4, 4, 4])
        .blend(Blend::Constant)
        .pad_value(-100.0)
        .build();
    let out = s.run_array(&mut recording, input.view()).unwrap();
    assert_eq!(out, input);

    // x: 3 -> 4 (nothing before, 1 after); y: 5 voxels, starts 0 and 1; z: 2 -> 4 (1 before,
    // 1 after).
    let seen = seen.into_inner();
    assert_eq!(seen.len(), 2);
    for (window, y0) in seen.iter().zip([0, 1]) {
        assert_eq!(window.shape(), [1, 1, 4, 4, 4]);
        for x in 0..4 {
            for y in 0..4 {
                for z in 0..4 {
                    let expected = if x == 3 || z == 0 || z == 3 {
                        -100.0
                    } else {
                        input[[0, x, y + y0, z - 1]]
                    };
                    assert_eq!(window[[0, 0, x, y, z]], expected, "at {x} {y} {z}");
                }
            }
        }
    }
}

#[test]
fn windows_go_to_the_network_in_batches() {
    let calls = RefCell::new(Vec::new());
    let mut counting = |x: ArrayViewD<f32>| -> Net {
        calls.borrow_mut().push(x.shape()[0]);
        Ok(x.to_owned())
    };
    // 3 × 3 × 3 = 27 windows, 4 at a time.
    let s = sliding(&[4, 4, 4], 0.5, 4, Blend::default());
    s.run_array(&mut counting, integers(&[1, 8, 8, 8]).view())
        .unwrap();
    assert_eq!(calls.into_inner(), [4, 4, 4, 4, 4, 4, 3]);
}

#[test]
fn bad_settings_and_outputs_are_errors() {
    let input = integers(&[1, 8, 8]);
    let message = |s: SlidingWindow| {
        s.run_array(&mut identity, input.view())
            .unwrap_err()
            .to_string()
    };
    assert!(message(sliding(&[4, 4, 4], 0.5, 1, Blend::Constant)).contains("has 3 axes"));
    assert!(message(sliding(&[4, 4], 1.0, 1, Blend::Constant)).contains("`overlap` is 1"));
    assert!(message(sliding(&[4, 0], 0.5, 1, Blend::Constant)).contains("at least 1 voxel"));
    assert!(message(sliding(&[4, 4], 0.5, 0, Blend::Constant)).contains("`batch_size` is 0"));
    let bad_sigma = Blend::Gaussian { sigma_scale: -1.0 };
    assert!(message(sliding(&[4, 4], 0.5, 1, bad_sigma)).contains("`sigma_scale` is -1"));

    let s = sliding(&[4, 4], 0.5, 2, Blend::Constant);
    let mut cropping = |x: ArrayViewD<f32>| -> Net {
        Ok(x.slice_each_axis(|a| ndarray::Slice::from(0..a.len.min(3)))
            .to_owned())
    };
    let error = s.run_array(&mut cropping, input.view()).unwrap_err();
    assert!(matches!(error, InferenceError::OutputShape { .. }));
    assert_eq!(
        error.to_string(),
        "the network returned shape [2, 1, 3, 3] for an input of shape [2, 1, 4, 4]; expected \
         [2, K, 4, 4]"
    );

    // K must stay the same from one batch to the next.
    let mut calls = 0;
    let mut changing = |x: ArrayViewD<f32>| -> Net {
        calls += 1;
        let k = if calls == 1 { 1 } else { 2 };
        let mut shape = x.shape().to_vec();
        shape[1] = k;
        Ok(ArrayD::zeros(IxDyn(&shape)))
    };
    let error = s.run_array(&mut changing, input.view()).unwrap_err();
    assert!(
        error.to_string().ends_with("expected [2, 1, 4, 4]"),
        "{error}"
    );

    let mut failing = |_: ArrayViewD<f32>| Err::<ArrayD<f32>, _>("out of memory");
    let error = s.run_array(&mut failing, input.view()).unwrap_err();
    assert_eq!(error.to_string(), "the network failed: out of memory");
}

// ---------------------------------------------------------------------------------------------
// Flip averaging

#[test]
fn flip_averaging_of_an_equivariant_network_is_the_input() {
    let input = integers(&[2, 2, 5, 4, 3]);
    let mut tta = FlipAveraging::all_subsets(identity, &[0, 1, 2]);
    assert_eq!(tta.flips().len(), 8);
    // Sums of 8 equal integers divided by 8 are exact.
    assert_eq!(tta.predict(input.view()).unwrap(), input);
    let mut tta = FlipAveraging::new(identity, vec![vec![2, 0, 2], vec![]]);
    assert_eq!(tta.flips(), [vec![0, 2], vec![]]);
    assert_eq!(tta.predict(fortran(&input).view()).unwrap(), input);
}

#[test]
fn flip_averaging_of_a_ramp_is_its_mean_with_the_mirror() {
    // The network outputs x + 10 y whatever the input: not flip-equivariant.
    let ramp = |x: ArrayViewD<f32>| -> Net {
        let shape = x.shape().to_vec();
        Ok(ArrayD::from_shape_fn(IxDyn(&shape), |i| {
            (i[2] + 10 * i[3]) as f32
        }))
    };
    let input = ArrayD::zeros(IxDyn(&[2, 1, 5, 4]));
    // Flipping x: the back-flipped ramp is (4 - x) + 10 y; the mean is 2 + 10 y.
    let out = FlipAveraging::new(ramp, vec![vec![], vec![0]])
        .predict(input.view())
        .unwrap();
    let expected = ArrayD::from_shape_fn(IxDyn(&[2, 1, 5, 4]), |i| (2 + 10 * i[3]) as f32);
    assert_eq!(out, expected);
    // Every subset of both axes: x averages to 2, y to 1.5.
    let out = FlipAveraging::all_subsets(ramp, &[0, 1])
        .predict(input.view())
        .unwrap();
    assert_eq!(out, ArrayD::from_elem(IxDyn(&[2, 1, 5, 4]), 17.0));
    // Only the flipped prediction: exactly the mirrored ramp.
    let out = FlipAveraging::new(ramp, vec![vec![1]])
        .predict(input.view())
        .unwrap();
    let mirrored = ArrayD::from_shape_fn(IxDyn(&[2, 1, 5, 4]), |i| (i[2] + 10 * (3 - i[3])) as f32);
    assert_eq!(out, mirrored);
}

#[test]
fn flip_averaging_inside_the_sliding_window() {
    let input = integers(&[1, 12, 9, 6]);
    let mut tta = FlipAveraging::all_subsets(identity, &[0, 1, 2]);
    let out = sliding(&[6, 6, 4], 0.5, 2, Blend::default())
        .run_array(&mut tta, input.view())
        .unwrap();
    for (a, b) in out.iter().zip(&input) {
        assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0));
    }
}

#[test]
fn flip_axis_beyond_the_input_is_an_error() {
    let mut tta = FlipAveraging::new(identity, vec![vec![2]]);
    let error = tta.predict(integers(&[1, 1, 4, 4]).view()).unwrap_err();
    assert_eq!(
        error.to_string(),
        "input of shape [1, 1, 4, 4] does not fit: flip axis 2 does not exist; the input has 2 \
         spatial axes after `[batch, C]`"
    );
    let mut plain = FlipAveraging::new(identity, vec![vec![]]);
    let error = plain
        .predict(ArrayD::zeros(IxDyn(&[3])).view())
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "input of shape [3] does not fit: a network input needs shape `[batch, C, spatial...]`"
    );
    let mut none = FlipAveraging::new(identity, vec![]);
    assert!(matches!(
        none.predict(integers(&[1, 1, 4, 4]).view()),
        Err(InferenceError::Config(_))
    ));
}

// ---------------------------------------------------------------------------------------------
// Over a dataset

fn images(n: usize) -> FnDataset<impl Fn(usize) -> Result<Record, delira::data::DataError>> {
    FnDataset::new(n, |i| {
        let image = ArrayD::from_shape_fn(IxDyn(&[1, 3, 2]), |v| (i * 10 + v[1] + v[2]) as f32);
        Ok(Record::new()
            .with("image", image)
            .with("id", format!("subject-{i}")))
    })
}

/// 2 x + 1 on every voxel, and the channel sum as a second output channel.
#[expect(
    clippy::needless_pass_by_value,
    clippy::unnecessary_wraps,
    reason = "the signature of a network as `Predict` takes it"
)]
fn two_outputs(x: ArrayViewD<f32>) -> Net {
    let lin = x.mapv(|v| 2.0 * v + 1.0);
    let sum = x.sum_axis(Axis(1)).insert_axis(Axis(1));
    Ok(concatenate(Axis(1), &[lin.view(), sum.view()]).unwrap())
}

fn expected_output(i: usize) -> ArrayD<f32> {
    ArrayD::from_shape_fn(IxDyn(&[2, 3, 2]), |v| {
        let x = (i * 10 + v[1] + v[2]) as f32;
        if v[0] == 0 { 2.0 * x + 1.0 } else { x }
    })
}

#[test]
fn dataset_predictions_in_dataset_order() {
    for workers in [0, 1, 3] {
        let config = LoaderConfig::builder()
            .batch_size(3)
            .workers(workers)
            .drop_last(true)
            .build();
        let predictions = predict_dataset(images(7), config, "image", &mut two_outputs).unwrap();
        assert_eq!(predictions.len(), 7, "drop_last is ignored");
        for (i, p) in predictions.iter().enumerate() {
            assert_eq!(p, &expected_output(i), "sample {i} with {workers} workers");
        }
    }
}

#[test]
fn loader_predictions_carry_their_dataset_index() {
    let config = LoaderConfig::builder().batch_size(2).workers(2).build();
    let sampler = RandomSampler::new((0..9).collect(), 5);
    let loader = Loader::new(images(9), sampler, config).unwrap();
    let mut by_index = BTreeMap::new();
    let mut order = Vec::new();
    predict_loader(&loader, "image", &mut two_outputs, |index, p| {
        order.push(index);
        by_index.insert(index, p);
        Ok::<_, Infallible>(())
    })
    .unwrap();
    assert_eq!(by_index.len(), 9);
    assert_ne!(order, (0..9).collect::<Vec<_>>(), "the sampler shuffles");
    for (i, p) in by_index {
        assert_eq!(p, expected_output(i));
    }
}

#[test]
fn whole_volumes_of_a_dataset_by_sliding_window() {
    // Images of different sizes, one per batch, each predicted whole by 4 × 4 × 4 windows.
    let sizes = [[5, 6, 4], [9, 3, 7], [4, 4, 4]];
    let data = FnDataset::new(3, move |i| {
        let [x, y, z] = sizes[i];
        Ok(Record::new().with("image", integers(&[2, x, y, z])))
    });
    let sliding = sliding(&[4, 4, 4], 0.5, 3, Blend::Constant);
    let mut whole = sliding.tiled(two_outputs);
    let config = LoaderConfig::builder().batch_size(1).workers(1).build();
    let predictions = predict_dataset(data, config, "image", &mut whole).unwrap();
    for (p, [x, y, z]) in predictions.iter().zip(sizes) {
        let image = integers(&[1, 2, x, y, z]);
        let expected = two_outputs(image.view())
            .unwrap()
            .index_axis_move(Axis(0), 0);
        assert_eq!(p, &expected);
    }
}

#[test]
fn dataset_errors_name_field_and_sample() {
    let config = LoaderConfig::builder().batch_size(2).build();
    let error = predict_dataset(images(3), config.clone(), "t1", &mut two_outputs).unwrap_err();
    assert_eq!(
        error.to_string(),
        "sample 0 has no f32 field `t1`; its fields are [\"image\", \"id\"]"
    );

    let loader = Loader::new(
        images(5),
        delira::data::SequentialSampler::new(5),
        config.clone(),
    )
    .unwrap();
    let error = predict_loader(&loader, "image", &mut two_outputs, |index, _| {
        if index == 3 { Err("disk full") } else { Ok(()) }
    })
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "the prediction of sample 3 could not be handled: disk full"
    );

    let mut first_only = |x: ArrayViewD<f32>| -> Net { Ok(x.index_axis(Axis(0), 0).to_owned()) };
    let error = predict_dataset(images(3), config, "image", &mut first_only).unwrap_err();
    assert!(
        matches!(error, InferenceError::OutputShape { .. }),
        "{error}"
    );
}

// ---------------------------------------------------------------------------------------------
// Writing predictions

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "delira-inference-{name}-{}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn predictions_written_as_nifti_keep_the_image_affine() {
    let affine = Affine([
        [-1.25, 0.0, 0.0, 90.0],
        [0.0, 1.25, 0.125, -126.0],
        [0.0, -0.125, 1.5, -72.0],
        [0.0, 0.0, 0.0, 1.0],
    ]);
    // The sform is stored as float32, so the affine's entries are chosen exact in float32.
    // A 1-channel image in NIfTI memory order; a 3-class "network": x, y and z ramps scaled.
    let image = Volume::new(fortran(&integers(&[1, 9, 8, 7])), affine);
    let mut three = |x: ArrayViewD<f32>| -> Net {
        let b = x.shape()[0];
        let mut shape = vec![b, 3];
        shape.extend_from_slice(&x.shape()[2..]);
        Ok(ArrayD::from_shape_fn(IxDyn(&shape), |i| {
            x[[i[0], 0, i[2], i[3], i[4]]] * (i[1] as f32 - 1.0) * 0.1
        }))
    };
    let logits = sliding(&[4, 4, 4], 0.5, 8, Blend::default())
        .run(&mut three, &image)
        .unwrap();
    let probabilities = softmax(&logits);
    let labels = argmax(&probabilities).unwrap();
    assert_eq!(probabilities.affine(), &affine);
    assert_eq!(labels.volume().affine(), &affine);

    // Class 2 where the image is positive, class 0 where it is negative; where it is 0 the three
    // logits are 0, a three-way tie that goes to the lowest class, 0.
    for (l, v) in labels.volume().data().iter().zip(image.data()) {
        let expected = match v.partial_cmp(&0.0).unwrap() {
            std::cmp::Ordering::Greater => 2,
            _ => 0,
        };
        assert_eq!(*l, expected, "value {v}");
    }
    // Probabilities sum to 1.
    for s in probabilities.data().sum_axis(Axis(0)) {
        assert!((s - 1.0).abs() < 1e-6);
    }

    let dir = TempDir::new("write");
    let prob_path = dir.0.join("probabilities.nii.gz");
    let label_path = dir.0.join("labels.nii");
    save_volume(&prob_path, &probabilities).unwrap();
    save_labels(&label_path, &labels).unwrap();
    let back = load_volume(&prob_path).unwrap();
    assert_eq!(back.affine(), &affine);
    assert_eq!(back.data(), probabilities.data());
    let back: LabelMap = load_labels(&label_path).unwrap();
    assert_eq!(back, labels);
}

#[test]
fn plain_array_predictions_take_the_reference_geometry() {
    let affine = Affine::from_spacing([0.5, 0.5, 2.0]);
    let image = Volume::new(integers(&[1, 4, 3, 2]), affine);
    let config = LoaderConfig::builder().batch_size(1).build();
    let data = FnDataset::new(1, move |_| {
        Ok(Record::new().with("image", integers(&[1, 4, 3, 2])))
    });
    let mut net = |x: ArrayViewD<f32>| -> Net { Ok(x.mapv(|v| v * 0.5)) };
    let mut predictions = predict_dataset(data, config, "image", &mut net).unwrap();
    let placed = with_geometry(predictions.remove(0), &image).unwrap();

    let dir = TempDir::new("geometry");
    let path = dir.0.join("prediction.nii");
    save_volume(&path, &placed).unwrap();
    let back = load_volume(&path).unwrap();
    assert_eq!(back.affine(), &affine);
    assert_eq!(back.data(), &image.data().mapv(|v| v * 0.5));

    let error = with_geometry(ArrayD::zeros(IxDyn(&[2, 4, 3])), &image).unwrap_err();
    assert_eq!(
        error.to_string(),
        "input of shape [2, 4, 3] does not fit: a prediction for an image of spatial shape \
         [4, 3, 2] needs shape [K, 4, 3, 2]"
    );
}

/// What nibabel reads from `path`: shape, affine and `get_fdata()` in file (Fortran) order.
fn nibabel(path: &Path) -> (Vec<usize>, Vec<Vec<f64>>, Vec<f64>) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let python = root.join(".venv/bin/python");
    assert!(
        python.is_file(),
        "the Python environment with nibabel is missing at {}; run `scripts/provision-data`",
        python.display()
    );
    let out = Command::new(python)
        .arg(root.join("scripts/nibabel_reference.py"))
        .arg("--dump")
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dump: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let numbers = |v: &serde_json::Value| -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    let shape = numbers(&dump["shape"])
        .iter()
        .map(|&n| n as usize)
        .collect();
    let affine = dump["affine"]
        .as_array()
        .unwrap()
        .iter()
        .map(numbers)
        .collect();
    (shape, affine, numbers(&dump["voxels"]))
}

/// The voxels of a channel-first array in NIfTI file order (x fastest, channels slowest).
fn file_order<T: Copy>(data: &ArrayD<T>) -> Vec<T> {
    let mut axes = vec![0];
    axes.extend((1..data.ndim()).rev());
    data.view()
        .permuted_axes(IxDyn(&axes))
        .iter()
        .copied()
        .collect()
}

#[test]
fn nibabel_reads_the_written_prediction() {
    let affine = Affine([
        [0.0, -0.75, 0.0, 12.5],
        [1.25, 0.0, 0.0, -30.0],
        [0.0, 0.0, 2.0, 4.0],
        [0.0, 0.0, 0.0, 1.0],
    ]);
    let image = Volume::new(integers(&[1, 6, 5, 4]), affine);
    let mut three = |x: ArrayViewD<f32>| -> Net {
        let scaled: Vec<ArrayD<f32>> = [-0.5_f32, 0.0, 0.25]
            .iter()
            .map(|&f| x.mapv(|v| v * f))
            .collect();
        let views: Vec<_> = scaled.iter().map(|a| a.view()).collect();
        Ok(concatenate(Axis(1), &views).unwrap())
    };
    let logits = sliding(&[4, 4, 4], 0.5, 4, Blend::default())
        .run(&mut three, &image)
        .unwrap();
    let probabilities = softmax(&logits);
    let labels = argmax(&probabilities).unwrap();

    let dir = TempDir::new("nibabel");
    let prob_path = dir.0.join("probabilities.nii.gz");
    let label_path = dir.0.join("labels.nii.gz");
    save_volume(&prob_path, &probabilities).unwrap();
    save_labels(&label_path, &labels).unwrap();

    let expected_affine: Vec<Vec<f64>> = affine.0.iter().map(|r| r.to_vec()).collect();
    let (shape, read_affine, voxels) = nibabel(&prob_path);
    assert_eq!(shape, [6, 5, 4, 3]);
    assert_eq!(read_affine, expected_affine);
    // float32 on disk: nibabel's values, rounded to f32 (JSON's decimals are not exact in f64),
    // are the written ones.
    let read: Vec<f32> = voxels.iter().map(|&v| v as f32).collect();
    assert_eq!(read, file_order(probabilities.data()));

    let (shape, read_affine, voxels) = nibabel(&label_path);
    assert_eq!(shape, [6, 5, 4]);
    assert_eq!(read_affine, expected_affine);
    let written: Vec<f64> = file_order(labels.volume().data())
        .into_iter()
        .map(f64::from)
        .collect();
    assert_eq!(voxels, written);
    // Positive voxels are class 2, negative ones class 0.
    assert!(written.contains(&0.0) && written.contains(&2.0) && !written.contains(&1.0));
}

// ---------------------------------------------------------------------------------------------
// A backend network as the predictor

/// A stand-in backend network: `logits` = `image` + its batch position, counting eval steps.
#[derive(Default)]
struct Shift {
    eval_steps: usize,
}

impl Network for Shift {
    fn train_step(&mut self, _: &Batch) -> Result<StepOutput, BackendError> {
        Err(BackendError::Config {
            what: "test",
            problem: "prediction must not train".to_owned(),
        })
    }

    fn eval_step(&mut self, batch: &Batch) -> Result<StepOutput, BackendError> {
        self.eval_steps += 1;
        let image = batch
            .f32("image")
            .ok_or_else(|| BackendError::MissingField {
                field: "image".to_owned(),
                available: batch.names().map(str::to_owned).collect(),
            })?;
        let mut logits = image.clone();
        for (b, mut item) in logits.outer_iter_mut().enumerate() {
            item.mapv_inplace(|v| v + b as f32);
        }
        let mut out = StepOutput::default();
        out.predictions.insert("logits".to_owned(), logits);
        Ok(out)
    }

    fn learning_rate(&self) -> f64 {
        0.0
    }

    fn set_learning_rate(&mut self, _: f64) {}

    fn export_state(&self) -> Result<State, BackendError> {
        Ok(State::new())
    }

    fn import_state(&mut self, _: &State) -> Result<(), BackendError> {
        Ok(())
    }

    fn parameter_count(&self) -> usize {
        0
    }

    fn device(&self) -> Device {
        Device::Cpu
    }
}

#[test]
fn a_backend_network_predicts_through_its_eval_step() {
    let mut network = Shift::default();
    let input = integers(&[3, 1, 4, 2]);
    let out = NetworkPredictor::new(&mut network, "image", "logits")
        .predict(input.view())
        .unwrap();
    let expected = ArrayD::from_shape_fn(IxDyn(&[3, 1, 4, 2]), |i| input[&i] + i[0] as f32);
    assert_eq!(out, expected);

    // One window per call: the batch position is 0 everywhere, so the volume comes back.
    let image = Volume::new(
        integers(&[1, 9, 6, 5]),
        Affine::from_spacing([1.0, 2.0, 3.0]),
    );
    let mut predictor = NetworkPredictor::new(&mut network, "image", "logits");
    let out = sliding(&[4, 4, 4], 0.5, 1, Blend::Constant)
        .run(&mut predictor, &image)
        .unwrap();
    assert_eq!(out, image);
    // Windows: 4 along x (9 voxels), 2 along y (6), 2 along z (5).
    assert_eq!(network.eval_steps, 1 + 4 * 2 * 2);
}

#[test]
fn backend_errors_and_missing_predictions_are_reported() {
    let mut network = Shift::default();
    let input = integers(&[1, 1, 2, 2]);
    let error = NetworkPredictor::new(&mut network, "t1", "logits")
        .predict(input.view())
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "the network failed: the batch has no field `image`; it holds [\"t1\"]"
    );
    let error = NetworkPredictor::new(&mut network, "image", "probabilities")
        .predict(input.view())
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "the network failed: the eval step returned no prediction `probabilities`; it returned \
         [\"logits\"]"
    );
}
