//! The augmentation engine: exactness, geometry, alignment, determinism, intensity values.

use delira::augment::{
    AffineSpec, AugmentError, BiasFieldSpec, BlurSpec, BrightnessSpec, ClipSpec, ContrastSpec,
    CropSpec, ElasticSpec, FlipSpec, GammaSpec, Interpolation, NoiseSpec, OneOfSpec, PadSpec,
    PercentileClipSpec, Pipeline, RangeNormalizeSpec, ResizeSpec, Rot90Spec, SpacingSpec,
    Transform, ZoomSpec,
};
use delira::io::{Affine, LabelMap, Volume};
use delira::random::{Stream, StreamKey};
use ndarray::{ArrayD, Dimension, IxDyn};

fn stream(sample: u64) -> Stream {
    StreamKey::new(11)
        .sample(sample)
        .purpose("augment")
        .stream()
}

/// An oblique-free affine with spacing and an offset, so that translations show.
fn affine(spacing: [f64; 3]) -> Affine {
    let mut a = Affine::from_spacing(spacing);
    a.0[0][3] = -20.0;
    a.0[1][3] = 5.0;
    a.0[2][3] = 3.5;
    a
}

/// A sample whose image holds a distinct value per voxel (a hash of the index) and whose labels
/// are a few classes.
fn sample(shape: &[usize], spacing: [f64; 3]) -> (Volume<f32>, LabelMap) {
    let image = ArrayD::from_shape_fn(IxDyn(shape), |i| {
        let flat: usize = i.slice().iter().fold(0, |acc, &v| acc * 131 + v);
        (flat % 1009) as f32 * 0.25 + 1.0
    });
    let mut label_shape = shape.to_vec();
    label_shape[0] = 1;
    let labels = ArrayD::from_shape_fn(IxDyn(&label_shape), |i| {
        [0u16, 2, 5, 7][(i[1] * 3 + i[2]) % 4]
    });
    (
        Volume::new(image, affine(spacing)),
        LabelMap::new(labels, affine(spacing)),
    )
}

fn apply(p: &Pipeline, s: &mut (Volume<f32>, LabelMap), seed: u64) {
    p.apply(s, &mut stream(seed)).unwrap();
}

const SHAPES: [&[usize]; 2] = [&[2, 9, 8], &[2, 9, 8, 7]];

#[test]
fn identity_parameters_return_the_input_exactly() {
    let pipeline = Pipeline::new([
        AffineSpec::default().into(),
        FlipSpec::new([0, 1]).p(0.0).into(),
        Rot90Spec {
            axes: [0, 1],
            k: Some(0),
        }
        .into(),
        ElasticSpec {
            control_points: 4,
            sigma_mm: [0.0, 0.0],
        }
        .into(),
        GammaSpec { gamma: [1.0, 1.0] }.into(),
        BrightnessSpec::default().into(),
        ContrastSpec { factor: [1.0, 1.0] }.into(),
        NoiseSpec { std: [0.0, 0.0] }.into_gaussian(),
    ]);
    for shape in SHAPES {
        let original = sample(shape, [1.0, 2.0, 3.0]);
        let mut s = original.clone();
        apply(&pipeline, &mut s, 0);
        assert_eq!(s, original);

        // crops, pads and resizes to the same shape are identities too
        let same = shape[1..].to_vec();
        let grid = Pipeline::new([
            CropSpec::center(same.clone()).into(),
            CropSpec::random(same.clone()).into(),
            PadSpec { size: same.clone() }.into(),
            ResizeSpec { shape: same }.into(),
        ]);
        apply(&grid, &mut s, 1);
        assert_eq!(s, original);
    }
}

trait IntoGaussian {
    fn into_gaussian(self) -> Transform;
}

impl IntoGaussian for NoiseSpec {
    fn into_gaussian(self) -> Transform {
        Transform::GaussianNoise(self)
    }
}

#[test]
fn two_flips_are_the_identity() {
    for shape in SHAPES {
        let ndim = shape.len() - 1;
        let original = sample(shape, [1.0, 2.0, 3.0]);
        let axes: Vec<usize> = (0..ndim).collect();
        let flip = Transform::from(FlipSpec::new(axes.clone()).p(1.0));
        let mut s = original.clone();
        apply(&Pipeline::new([flip.clone(), flip.clone()]), &mut s, 0);
        assert_eq!(s, original);

        // one flip reverses the axis and moves the affine onto the far end
        let mut s = original.clone();
        apply(
            &Pipeline::new([FlipSpec::new([0]).p(1.0).into()]),
            &mut s,
            0,
        );
        let n = shape[1];
        for (idx, &v) in s.0.data().indexed_iter() {
            let mut src = idx.slice().to_vec();
            src[1] = n - 1 - src[1];
            assert_eq!(v, original.0.data()[IxDyn(&src)]);
        }
        let a = s.0.affine();
        assert_eq!(a.0[0][0], -1.0);
        assert_eq!(a.0[0][3], -20.0 + (n - 1) as f64);
        assert_eq!(s.1.volume().affine(), a);
    }
}

#[test]
fn a_90_degree_rotation_equals_rot90() {
    // 3D: rotation about axis 2 turns the (0, 1) plane, as rot90 with axes [0, 1] does
    let shapes: [&[usize]; 2] = [&[2, 8, 8], &[2, 7, 7, 5]];
    for shape in shapes {
        let ndim = shape.len() - 1;
        let spacing = [1.5, 1.5, 4.0];
        let original = sample(shape, spacing);
        let mut rotated = original.clone();
        let rotation = AffineSpec::default().rotate_deg_per_axis([[0.0; 2], [0.0; 2], [90.0; 2]]);
        apply(&Pipeline::new([rotation.into()]), &mut rotated, 0);
        let mut turned = original.clone();
        let rot90 = Rot90Spec {
            axes: [0, 1],
            k: Some(1),
        };
        apply(&Pipeline::new([rot90.into()]), &mut turned, 0);
        assert_eq!(rotated.0.data(), turned.0.data(), "{ndim}D image");
        assert_eq!(rotated.1.volume().data(), turned.1.volume().data());
        // the deformation keeps the grid; rot90 changes it
        assert_eq!(rotated.0.affine(), original.0.affine());
        assert_ne!(turned.0.affine(), original.0.affine());

        // rot90 follows numpy: out[i, j] = in[j, n - 1 - i]
        let n = shape[2];
        for (idx, &v) in turned.0.data().indexed_iter() {
            let mut src = idx.slice().to_vec();
            src[1] = idx[2];
            src[2] = n - 1 - idx[1];
            assert_eq!(v, original.0.data()[IxDyn(&src)]);
        }
    }
}

fn dice(a: &[bool], b: &[bool]) -> f64 {
    let both = a.iter().zip(b).filter(|(x, y)| **x && **y).count();
    let total = a.iter().filter(|x| **x).count() + b.iter().filter(|x| **x).count();
    2.0 * both as f64 / total as f64
}

#[test]
fn a_sphere_rotated_on_an_anisotropic_grid_stays_a_sphere() {
    let (n, spacing) = ([80_usize, 80, 40], [1.0, 1.0, 2.0]);
    let centre_of_grid = n.map(|n| (n - 1) as f64 / 2.0);
    let radius = 24.0;
    // sphere centre 10 mm off the grid centre along axis 1
    let offset = [0.0, 10.0, 0.0];
    let sphere = |centre: [f64; 3], ramp: bool| {
        ArrayD::from_shape_fn(IxDyn(&[1, n[0], n[1], n[2]]), move |i| {
            let d: f64 = (0..3)
                .map(|a| ((i[a + 1] as f64 - centre_of_grid[a]) * spacing[a] - centre[a]).powi(2))
                .sum::<f64>()
                .sqrt();
            // a smooth edge 2 mm wide, so that linear interpolation sees the distance
            if ramp {
                ((radius - d) / 2.0 + 0.5).clamp(0.0, 1.0) as f32
            } else {
                f32::from(u8::from(d <= radius))
            }
        })
    };
    let image = Volume::new(sphere(offset, true), Affine::from_spacing(spacing));
    let labels = LabelMap::new(
        sphere(offset, false).mapv(|v| v as u16),
        Affine::from_spacing(spacing),
    );
    let mut s = (image, labels);

    // 30 degrees about axis 0: the plane (1, 2) mixes the fine and the coarse axis
    let angle = 30.0_f64;
    let rotation = AffineSpec::default().rotate_deg_per_axis([[angle; 2], [0.0; 2], [0.0; 2]]);
    apply(&Pipeline::new([rotation.into()]), &mut s, 0);

    let (sin, cos) = angle.to_radians().sin_cos();
    let moved = [0.0, cos * offset[1], sin * offset[1]];
    let truth: Vec<bool> = sphere(moved, false).iter().map(|&v| v > 0.5).collect();
    let from_image: Vec<bool> = s.0.data().iter().map(|&v| v >= 0.5).collect();
    let from_labels: Vec<bool> = s.1.volume().data().iter().map(|&v| v == 1).collect();
    let (di, dl) = (dice(&from_image, &truth), dice(&from_labels, &truth));
    assert!(di > 0.98, "image Dice {di}");
    assert!(dl > 0.98, "label Dice {dl}");
}

/// A pipeline that exercises every spatial transform with random draws.
fn spatial_pipeline(ndim: usize) -> Pipeline {
    let axes: Vec<usize> = (0..ndim).collect();
    let size: Vec<usize> = vec![6; ndim];
    Pipeline::new([
        AffineSpec::default()
            .rotate_deg(25.0)
            .scale(0.8, 1.2)
            .shear(0.1)
            .translate_mm(2.0)
            .into(),
        ElasticSpec {
            control_points: 4,
            sigma_mm: [1.0, 2.0],
        }
        .into(),
        FlipSpec::new(axes).into(),
        Rot90Spec {
            axes: [0, 1],
            k: None,
        }
        .into(),
        ZoomSpec { factor: [0.8, 1.3] }.into(),
        CropSpec::random(size).into(),
    ])
}

#[test]
fn label_maps_keep_their_label_set() {
    for shape in SHAPES {
        let ndim = shape.len() - 1;
        for interpolation in [Interpolation::Linear, Interpolation::Cubic] {
            for seed in 0..8 {
                let mut s = sample(shape, [1.0, 1.5, 2.0]);
                let pipeline = spatial_pipeline(ndim).interpolation(interpolation);
                apply(&pipeline, &mut s, seed);
                let labels = s.1.labels();
                assert!(
                    labels.iter().all(|l| [0, 2, 5, 7].contains(l)),
                    "{labels:?}"
                );
                assert!(labels.len() > 1, "{labels:?}");
                assert!(s.0.data().iter().all(|v| v.is_finite()));
            }
        }
    }
}

#[test]
fn crop_and_pad_shapes_and_offsets_are_exact() {
    // (input size, output size, index of input voxel at output 0), odd and even
    let cases = [
        (7, 4, 1_i64),
        (8, 5, 1),
        (8, 4, 2),
        (7, 3, 2),
        (5, 8, -1),
        (4, 7, -1),
        (4, 8, -2),
        (5, 5, 0),
    ];
    for (n, m, start) in cases {
        for ndim in [2, 3] {
            let mut shape = vec![1, n, 3];
            let mut size = vec![m, 3];
            if ndim == 3 {
                shape.push(2);
                size.push(2);
            }
            let original = sample(&shape, [2.0, 1.0, 1.0]);
            let mut s = original.clone();
            apply(
                &Pipeline::new([CropSpec::center(size.clone()).into()]),
                &mut s,
                0,
            );
            assert_eq!(s.0.spatial_shape(), size.as_slice());
            for (idx, &v) in s.0.data().indexed_iter() {
                let i = idx[1] as i64 + start;
                let want = if (0..n as i64).contains(&i) {
                    let mut src = idx.slice().to_vec();
                    src[1] = i as usize;
                    original.0.data()[IxDyn(&src)]
                } else {
                    0.0
                };
                assert_eq!(v, want, "n={n} m={m} at {idx:?}");
            }
            // the affine moves by the offset in voxels of 2 mm
            assert_eq!(s.0.affine().0[0][3], -20.0 + 2.0 * start as f64);
            assert_eq!(s.1.volume().affine(), s.0.affine());

            if m > n {
                let mut p = original.clone();
                apply(&Pipeline::new([PadSpec { size }.into()]), &mut p, 0);
                assert_eq!(p, s, "pad equals a centred crop that pads");
            }
        }
    }
}

#[test]
fn random_crops_cover_every_position() {
    let mut starts = std::collections::BTreeSet::new();
    for seed in 0..200 {
        let original = sample(&[1, 10, 4], [1.0, 1.0, 1.0]);
        let mut s = original.clone();
        apply(
            &Pipeline::new([CropSpec::random([4, 4]).into()]),
            &mut s,
            seed,
        );
        starts.insert(s.0.affine().0[0][3] as i64 + 20);
    }
    assert_eq!(
        starts.into_iter().collect::<Vec<_>>(),
        [0, 1, 2, 3, 4, 5, 6]
    );
}

#[test]
fn label_crops_contain_the_class() {
    for shape in SHAPES {
        let ndim = shape.len() - 1;
        let mut base = sample(shape, [1.0, 1.0, 1.0]);
        // one voxel of class 9 in a corner
        let labels = base.1.0.data_mut();
        labels.fill(0);
        let corner: Vec<usize> = std::iter::once(0)
            .chain(shape[1..].iter().map(|n| n - 1))
            .collect();
        labels[IxDyn(&corner)] = 9;
        let size = vec![3; ndim];
        for seed in 0..20 {
            let mut s = base.clone();
            let p = Pipeline::new([
                FlipSpec::new([0]).into(),
                CropSpec::label(size.clone(), 9, 1.0).into(),
            ]);
            apply(&p, &mut s, seed);
            assert_eq!(s.1.labels(), [0, 9], "seed {seed}");
        }
        // without the class (or with p = 0) the crop is random and succeeds
        let mut s = base.clone();
        apply(
            &Pipeline::new([CropSpec::label(size.clone(), 4, 1.0).into()]),
            &mut s,
            0,
        );
        assert_eq!(s.0.spatial_shape(), size.as_slice());
        let hits = (0..40)
            .filter(|&seed| {
                let mut s = base.clone();
                apply(
                    &Pipeline::new([CropSpec::label(size.clone(), 9, 0.0).into()]),
                    &mut s,
                    seed,
                );
                s.1.labels().contains(&9)
            })
            .count();
        assert!(hits < 20, "{hits} of 40 random crops hit one corner voxel");
    }
}

#[test]
fn image_and_label_stay_aligned() {
    for shape in SHAPES {
        let ndim = shape.len() - 1;
        for seed in 0..6 {
            let (image, _) = sample(shape, [1.0, 1.5, 2.0]);
            let threshold = 100.0;
            let labels = image
                .data()
                .slice_axis(ndarray::Axis(0), (0..1).into())
                .mapv(|v| u16::from(v > threshold));
            let labels = LabelMap::new(labels, *image.affine());
            let mut s = (image, labels);
            // with nearest-neighbour images the label stays the exact threshold
            let pipeline = spatial_pipeline(ndim)
                .interpolation(Interpolation::Nearest)
                .fill(0.0);
            apply(&pipeline, &mut s, seed);
            let image0 =
                s.0.data()
                    .slice_axis(ndarray::Axis(0), (0..1).into())
                    .to_owned();
            let again = image0.mapv(|v| u16::from(v > threshold));
            assert_eq!(&again, s.1.volume().data(), "{ndim}D seed {seed}");
        }
    }
}

#[test]
fn a_smooth_image_and_its_threshold_stay_aligned_under_linear_interpolation() {
    let (n, spacing) = ([40_usize, 36, 20], [1.0, 1.2, 2.5]);
    let image = ArrayD::from_shape_fn(IxDyn(&[1, n[0], n[1], n[2]]), |i| {
        let x = i[1] as f32 * 0.3;
        let y = i[2] as f32 * 0.25;
        let z = i[3] as f32 * 0.4;
        (x.sin() + y.cos() + 0.5 * z.sin()) * 10.0
    });
    let labels = image.mapv(|v| u16::from(v > 3.0));
    let mut s = (
        Volume::new(image, Affine::from_spacing(spacing)),
        LabelMap::new(labels, Affine::from_spacing(spacing)),
    );
    apply(&spatial_pipeline(3), &mut s, 3);
    let a: Vec<bool> = s.0.data().iter().map(|&v| v > 3.0).collect();
    let b: Vec<bool> = s.1.volume().data().iter().map(|&v| v == 1).collect();
    let d = dice(&a, &b);
    assert!(d > 0.9, "Dice {d}");
}

#[test]
fn same_stream_same_output_on_any_number_of_threads() {
    let pipeline = spatial_pipeline(3)
        .then(Transform::ZScore)
        .then(GammaSpec { gamma: [0.7, 1.5] })
        .then(Transform::GaussianNoise(NoiseSpec { std: [0.1, 0.2] }))
        .then(Transform::RicianNoise(NoiseSpec { std: [0.1, 0.2] }));
    let big = sample(&[2, 40, 30, 20], [1.0, 1.0, 2.0]);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let mut s = big.clone();
            apply(&pipeline, &mut s, 5);
            s
        })
    };
    let one = run(1);
    assert_eq!(one, run(4));
    assert_eq!(one, run(1));
    let mut other = big.clone();
    apply(&pipeline, &mut other, 6);
    assert_ne!(one.0.data(), other.0.data());
}

#[test]
fn draws_of_a_transform_do_not_depend_on_its_neighbours() {
    let base = sample(&[1, 12, 10, 8], [1.0, 1.0, 1.0]);
    let flip = Transform::from(FlipSpec::new([0, 1, 2]));
    // a gamma that draws its exponent and one that draws nothing: the flips must agree
    let run = |gamma: [f64; 2], seed: u64| {
        let mut s = base.clone();
        let p = Pipeline::new([GammaSpec { gamma }.into(), flip.clone()]);
        apply(&p, &mut s, seed);
        s.1
    };
    let mut differs = false;
    for seed in 0..8 {
        let drawn = run([0.5, 2.0], seed);
        assert_eq!(drawn, run([1.0, 1.0], seed), "seed {seed}");
        differs |= drawn != base.1;
    }
    assert!(differs, "some flips must happen");
}

#[test]
fn channels_are_transformed_alike() {
    for shape in [&[3_usize, 12, 10][..], &[3, 12, 10, 8]] {
        let ndim = shape.len() - 1;
        let mut s = sample(shape, [1.0, 1.0, 2.0]);
        // channel k is (k + 1) times channel 0
        let c0 = s.0.data().index_axis(ndarray::Axis(0), 0).to_owned();
        for k in 1..3 {
            s.0.data_mut()
                .index_axis_mut(ndarray::Axis(0), k)
                .assign(&(&c0 * (k + 1) as f32));
        }
        apply(&spatial_pipeline(ndim), &mut s, 2);
        let out = s.0.data();
        let o0 = out.index_axis(ndarray::Axis(0), 0);
        for k in 1..3 {
            let ok = out.index_axis(ndarray::Axis(0), k);
            for (a, b) in o0.iter().zip(ok.iter()) {
                assert!((a * (k + 1) as f32 - b).abs() <= 1e-3 * b.abs().max(1.0));
            }
        }
    }
}

/// An image whose channel `a` holds the physical coordinate along world axis `a`.
fn coordinates(shape: &[usize], affine: Affine) -> Volume<f32> {
    let ndim = shape.len();
    let mut full = vec![ndim];
    full.extend_from_slice(shape);
    let data = ArrayD::from_shape_fn(IxDyn(&full), |i| {
        let mut p = [0.0; 3];
        for a in 0..ndim {
            p[a] = i[a + 1] as f64;
        }
        affine.apply(p)[i[0]] as f32
    });
    Volume::new(data, affine)
}

/// Checks that every voxel with a full neighbourhood inside holds its own physical coordinate.
fn assert_positions_kept(v: &Volume<f32>, tolerance: f32) {
    let ndim = v.spatial_ndim();
    let mut checked = 0;
    for (idx, &value) in v.data().indexed_iter() {
        let mut p = [0.0; 3];
        for a in 0..ndim {
            p[a] = idx[a + 1] as f64;
        }
        let want = v.affine().apply(p)[idx[0]] as f32;
        if value != 0.0 || want.abs() < 1e-6 {
            assert!(
                (value - want).abs() <= tolerance,
                "at {idx:?}: {value} vs {want}"
            );
            checked += 1;
        }
    }
    assert!(
        checked > v.data().len() / 4,
        "{checked} of {}",
        v.data().len()
    );
}

#[test]
fn grid_changes_keep_every_voxel_at_its_physical_position() {
    let mut oblique = affine([1.0, 1.5, 2.5]);
    oblique.0[0][3] = 3.0;
    for shape in [&[12_usize, 10][..], &[12, 10, 7]] {
        let ndim = shape.len();
        let axes: Vec<usize> = (0..ndim).collect();
        let transforms: Vec<Transform> = vec![
            FlipSpec::new(axes.clone()).into(),
            Rot90Spec {
                axes: [0, ndim - 1],
                k: None,
            }
            .into(),
            CropSpec::random(vec![7; ndim]).into(),
            PadSpec {
                size: vec![9; ndim],
            }
            .into(),
            ResizeSpec {
                shape: vec![11; ndim],
            }
            .into(),
            ZoomSpec { factor: [0.7, 1.4] }.into(),
            SpacingSpec {
                spacing_mm: vec![1.3; ndim],
            }
            .into(),
        ];
        for seed in 0..5 {
            for t in &transforms {
                let mut v = coordinates(shape, oblique);
                Pipeline::new([t.clone()])
                    .apply(&mut v, &mut stream(seed))
                    .unwrap();
                assert_positions_kept(&v, 5e-3);
            }
            let mut v = coordinates(shape, oblique);
            Pipeline::new(transforms.clone())
                .apply(&mut v, &mut stream(seed))
                .unwrap();
            assert_positions_kept(&v, 5e-3);
        }
    }
}

#[test]
fn resampling_to_a_spacing_sets_it_exactly() {
    for shape in [&[1_usize, 20, 15][..], &[1, 20, 15, 9]] {
        let ndim = shape.len() - 1;
        let mut s = sample(shape, [1.0, 1.5, 3.0]);
        let target = vec![2.0; ndim];
        apply(
            &Pipeline::new([SpacingSpec {
                spacing_mm: target.clone(),
            }
            .into()]),
            &mut s,
            0,
        );
        for (got, want) in s.0.spacing().iter().zip(&target) {
            assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        }
        let want_shape: Vec<usize> = [10, 11, 14][..ndim].to_vec();
        assert_eq!(s.0.spatial_shape(), want_shape.as_slice());
        assert_eq!(s.1.volume().spatial_shape(), want_shape.as_slice());
    }
}

#[test]
fn translation_moves_content_by_millimetres() {
    // 4 mm along axis 2 of 2 mm voxels is 2 voxels
    let spacing = [1.0, 1.0, 2.0];
    let mut v = coordinates(&[6, 6, 10], Affine::from_spacing(spacing));
    let shift = AffineSpec {
        translate_mm: [[0.0; 2], [0.0; 2], [4.0; 2]],
        ..AffineSpec::default()
    };
    Pipeline::new([shift.into()])
        .apply(&mut v, &mut stream(0))
        .unwrap();
    // the grid stays; the content moved up by 4 mm, so voxel z shows what was at z - 2
    assert_eq!(*v.affine(), Affine::from_spacing(spacing));
    for (idx, &value) in v.data().indexed_iter() {
        if idx[0] == 2 {
            let want = if idx[3] >= 2 {
                (idx[3] as f32 - 2.0) * 2.0
            } else {
                0.0
            };
            assert_eq!(value, want, "{idx:?}");
        }
    }
}

#[test]
fn scaling_about_the_centre_in_millimetres() {
    // scale 2 about the centre: the voxel at physical offset d from the centre shows d / 2
    let spacing = [1.0, 3.0, 1.0];
    let mut v = coordinates(&[9, 9, 9], Affine::from_spacing(spacing));
    let centre: Vec<f32> = (0..3).map(|a| (4.0 * spacing[a]) as f32).collect();
    let zoom = AffineSpec::default().scale(2.0, 2.0);
    Pipeline::new([zoom.into()])
        .apply(&mut v, &mut stream(0))
        .unwrap();
    for (idx, &value) in v.data().indexed_iter() {
        let a = idx[0];
        let position = idx[a + 1] as f32 * spacing[a] as f32;
        let want = centre[a] + (position - centre[a]) / 2.0;
        assert!((value - want).abs() < 1e-4, "{idx:?}: {value} vs {want}");
    }
}

#[test]
fn elastic_displacements_are_isotropic_in_millimetres() {
    // spacing 1 x 1 x 3 mm: the displacement in mm must be alike along every axis
    let spacing = [1.0, 1.0, 3.0];
    let shape = [40, 40, 14];
    let mut rms = [0.0_f64; 3];
    let mut counts = [0_usize; 3];
    for seed in 0..6 {
        let mut v = coordinates(&shape, Affine::from_spacing(spacing));
        let elastic = ElasticSpec {
            control_points: 5,
            sigma_mm: [3.0, 3.0],
        };
        Pipeline::new([elastic.into()])
            .apply(&mut v, &mut stream(seed))
            .unwrap();
        for (idx, &value) in v.data().indexed_iter() {
            let inner = (1..4).all(|a| idx[a] >= 4 && idx[a] + 4 < shape[a - 1]);
            if inner {
                let a = idx[0];
                let d = f64::from(value) - idx[a + 1] as f64 * spacing[a];
                rms[a] += d * d;
                counts[a] += 1;
            }
        }
    }
    let rms: Vec<f64> = (0..3).map(|a| (rms[a] / counts[a] as f64).sqrt()).collect();
    for &r in &rms {
        assert!((0.5..2.0).contains(&r), "{rms:?}");
    }
    let ratio = rms[2] / rms[0];
    assert!((0.6..1.6).contains(&ratio), "{rms:?}");
}

#[test]
fn elastic_leaves_the_plane_of_a_2d_image() {
    let mut v = coordinates(&[20, 16], Affine::from_spacing([1.0, 2.0, 1.0]));
    let before = v.clone();
    let elastic = ElasticSpec {
        control_points: 4,
        sigma_mm: [2.0, 2.0],
    };
    Pipeline::new([elastic.into()])
        .apply(&mut v, &mut stream(1))
        .unwrap();
    assert_eq!(v.data().shape(), [2, 20, 16]);
    assert_eq!(v.affine(), before.affine());
    assert_ne!(v.data(), before.data());
}

fn image(shape: &[usize], f: impl Fn(usize) -> f32) -> Volume<f32> {
    let n: usize = shape.iter().product();
    let data = ArrayD::from_shape_vec(IxDyn(shape), (0..n).map(f).collect()).unwrap();
    Volume::new(data, Affine::IDENTITY)
}

fn mean_std(v: &[f32]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
    let var = v
        .iter()
        .map(|&x| (f64::from(x) - mean).powi(2))
        .sum::<f64>()
        / n;
    (mean, var.sqrt())
}

#[test]
fn normalisations_give_exact_statistics() {
    for shape in [&[2_usize, 30, 20][..], &[2, 12, 10, 9]] {
        let mut v = image(shape, |i| ((i * 37) % 101) as f32 * 0.5 - 7.0);
        Transform::ZScore.apply(&mut v, &mut stream(0)).unwrap();
        for c in v.data().outer_iter() {
            let (m, s) = mean_std(&c.iter().copied().collect::<Vec<_>>());
            assert!(m.abs() < 1e-5 && (s - 1.0).abs() < 1e-5, "{m} {s}");
        }
        let range = RangeNormalizeSpec {
            low: -1.0,
            high: 1.0,
        };
        Transform::from(range)
            .apply(&mut v, &mut stream(0))
            .unwrap();
        for c in v.data().outer_iter() {
            let min = c.iter().copied().fold(f32::INFINITY, f32::min);
            let max = c.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            assert!(
                (min + 1.0).abs() < 1e-6 && (max - 1.0).abs() < 1e-6,
                "{min} {max}"
            );
        }
    }
}

#[test]
fn percentile_clip_matches_numpy_percentiles() {
    // values 0..=100 shuffled: the 2.5th percentile is 2.5, the 97.5th is 97.5
    let mut v = image(&[1, 101, 1], |i| ((i * 37) % 101) as f32);
    let clip = PercentileClipSpec {
        lower: 2.5,
        upper: 97.5,
    };
    Transform::from(clip).apply(&mut v, &mut stream(0)).unwrap();
    let min = v.data().iter().copied().fold(f32::INFINITY, f32::min);
    let max = v.data().iter().copied().fold(f32::NEG_INFINITY, f32::max);
    assert_eq!((min, max), (2.5, 97.5));
    assert_eq!(v.data().iter().filter(|&&x| x == 2.5).count(), 3);
}

#[test]
fn gamma_contrast_brightness_and_clip_follow_their_formulas() {
    let original = image(&[1, 10, 10], |i| i as f32 * 0.1 + 2.0);
    let (lo, hi) = (2.0_f32, 2.0 + 99.0 * 0.1);
    let check = |t: Transform, f: &dyn Fn(f32) -> f32| {
        let mut v = original.clone();
        t.apply(&mut v, &mut stream(0)).unwrap();
        for (&a, &b) in original.data().iter().zip(v.data()) {
            assert!(
                (f(a) - b).abs() < 2e-5 * f(a).abs().max(1.0),
                "{a}: {b} vs {}",
                f(a)
            );
        }
    };
    check(GammaSpec { gamma: [1.7, 1.7] }.into(), &|x| {
        lo + (hi - lo) * ((x - lo) / (hi - lo)).powf(1.7)
    });
    let mean = original.data().mean().unwrap();
    check(ContrastSpec { factor: [0.5, 0.5] }.into(), &|x| {
        mean + 0.5 * (x - mean)
    });
    let bright = BrightnessSpec {
        multiply: [2.0, 2.0],
        add: [-1.0, -1.0],
    };
    check(bright.into(), &|x| 2.0 * x - 1.0);
    check(ClipSpec { min: 3.0, max: 5.0 }.into(), &|x| {
        x.clamp(3.0, 5.0)
    });
}

#[test]
fn a_fused_chain_equals_the_transforms_one_by_one() {
    let original = image(&[2, 33, 17, 9], |i| ((i * 7919) % 1000) as f32 * 0.01);
    let chain: Vec<Transform> = vec![
        Transform::ZScore,
        GammaSpec { gamma: [0.6, 1.6] }.into(),
        ContrastSpec { factor: [0.7, 1.3] }.into(),
        BrightnessSpec {
            multiply: [0.9, 1.1],
            add: [-0.2, 0.2],
        }
        .into(),
        ClipSpec {
            min: -1.0,
            max: 2.5,
        }
        .into(),
        RangeNormalizeSpec {
            low: 0.0,
            high: 1.0,
        }
        .into(),
    ];
    let mut fused = original.clone();
    Pipeline::new(chain)
        .apply(&mut fused, &mut stream(4))
        .unwrap();
    let min = fused.data().iter().copied().fold(f32::INFINITY, f32::min);
    let max = fused
        .data()
        .iter()
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    assert!(min.abs() < 1e-6 && (max - 1.0).abs() < 1e-6);

    // with fixed parameters, one fused pipeline equals six separate runs
    let fixed: Vec<Transform> = vec![
        Transform::ZScore,
        GammaSpec { gamma: [1.3, 1.3] }.into(),
        ContrastSpec { factor: [0.8, 0.8] }.into(),
        BrightnessSpec {
            multiply: [1.05, 1.05],
            add: [0.1, 0.1],
        }
        .into(),
        ClipSpec {
            min: -1.0,
            max: 2.5,
        }
        .into(),
        RangeNormalizeSpec {
            low: 0.0,
            high: 1.0,
        }
        .into(),
    ];
    let mut at_once = original.clone();
    Pipeline::new(fixed.clone())
        .apply(&mut at_once, &mut stream(4))
        .unwrap();
    let mut one_by_one = original.clone();
    for t in &fixed {
        t.apply(&mut one_by_one, &mut stream(4)).unwrap();
    }
    for (a, b) in at_once.data().iter().zip(one_by_one.data()) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
}

#[test]
fn noise_has_the_drawn_strength() {
    let zeros = image(&[1, 64, 64, 16], |_| 0.0);
    let mut g = zeros.clone();
    Transform::GaussianNoise(NoiseSpec { std: [0.5, 0.5] })
        .apply(&mut g, &mut stream(0))
        .unwrap();
    let (m, s) = mean_std(g.data().as_slice().unwrap());
    assert!(m.abs() < 0.01 && (s - 0.5).abs() < 0.01, "{m} {s}");

    // Rician noise on a zero signal is Rayleigh: mean sigma * sqrt(pi / 2)
    let mut r = zeros.clone();
    Transform::RicianNoise(NoiseSpec { std: [0.5, 0.5] })
        .apply(&mut r, &mut stream(0))
        .unwrap();
    let (m, _) = mean_std(r.data().as_slice().unwrap());
    let want = 0.5 * (std::f64::consts::PI / 2.0).sqrt();
    assert!((m - want).abs() < 0.01, "{m} vs {want}");
    assert!(r.data().iter().all(|&x| x >= 0.0));
}

#[test]
fn blur_has_the_width_in_millimetres() {
    // an impulse blurred with sigma 2 mm on 1 x 2 mm voxels: variance 4 and 1 voxels squared
    let mut v = image(&[1, 41, 21], |i| f32::from(u8::from(i == 20 * 21 + 10)));
    v.set_affine(Affine::from_spacing([1.0, 2.0, 1.0]));
    let blur = BlurSpec {
        sigma_mm: [2.0, 2.0],
    };
    Transform::from(blur).apply(&mut v, &mut stream(0)).unwrap();
    let data = v.data();
    let total: f64 = data.iter().map(|&x| f64::from(x)).sum();
    assert!((total - 1.0).abs() < 1e-5, "{total}");
    let var = |axis: usize, centre: f64| {
        data.indexed_iter()
            .map(|(i, &x)| f64::from(x) * (i[axis] as f64 - centre).powi(2))
            .sum::<f64>()
    };
    assert!((var(1, 20.0) - 4.0).abs() < 0.05, "{}", var(1, 20.0));
    assert!((var(2, 10.0) - 1.0).abs() < 0.05, "{}", var(2, 10.0));

    // a constant stays constant (mirrored borders)
    let mut c = image(&[1, 9, 8, 7], |_| 3.0);
    Transform::from(BlurSpec {
        sigma_mm: [1.5, 1.5],
    })
    .apply(&mut c, &mut stream(0))
    .unwrap();
    assert!(c.data().iter().all(|&x| (x - 3.0).abs() < 1e-5));
}

#[test]
fn bias_field_is_smooth_positive_and_keeps_zero() {
    for shape in [&[1_usize, 20, 18][..], &[1, 12, 10, 8]] {
        let mut v = image(shape, |_| 1.0);
        Transform::from(BiasFieldSpec::default())
            .apply(&mut v, &mut stream(2))
            .unwrap();
        let data = v.data();
        assert!(data.iter().all(|&x| x > 0.0));
        assert!(data.iter().any(|&x| (x - 1.0).abs() > 0.01));
        // neighbours differ little: the field is smooth
        let lane = data.index_axis(ndarray::Axis(0), 0);
        let first: Vec<f32> = lane
            .lanes(ndarray::Axis(0))
            .into_iter()
            .next()
            .unwrap()
            .to_vec();
        for w in first.windows(2) {
            assert!((w[0] / w[1] - 1.0).abs() < 0.2);
        }
        let mut z = image(shape, |_| 0.0);
        Transform::from(BiasFieldSpec::default())
            .apply(&mut z, &mut stream(2))
            .unwrap();
        assert!(z.data().iter().all(|&x| x == 0.0));
    }
}

#[test]
fn every_transform_runs_in_2d_and_3d() {
    let all = |ndim: usize| -> Vec<Transform> {
        let axes: Vec<usize> = (0..ndim).collect();
        vec![
            AffineSpec::default().rotate_deg(20.0).shear(0.1).into(),
            ElasticSpec::default().into(),
            FlipSpec::new(axes).into(),
            Rot90Spec {
                axes: [1, 0],
                k: None,
            }
            .into(),
            CropSpec::random(vec![5; ndim]).into(),
            CropSpec::label(vec![5; ndim], 5, 0.9).into(),
            PadSpec {
                size: vec![12; ndim],
            }
            .into(),
            ResizeSpec {
                shape: vec![7; ndim],
            }
            .into(),
            ZoomSpec { factor: [0.5, 1.5] }.into(),
            SpacingSpec {
                spacing_mm: vec![0.8; ndim],
            }
            .into(),
            Transform::GaussianNoise(NoiseSpec { std: [0.1, 0.5] }),
            Transform::RicianNoise(NoiseSpec { std: [0.1, 0.5] }),
            BiasFieldSpec::default().into(),
            GammaSpec { gamma: [0.5, 2.0] }.into(),
            ContrastSpec { factor: [0.5, 1.5] }.into(),
            BrightnessSpec {
                multiply: [0.9, 1.1],
                add: [-1.0, 1.0],
            }
            .into(),
            BlurSpec {
                sigma_mm: [0.5, 1.5],
            }
            .into(),
            Transform::ZScore,
            RangeNormalizeSpec {
                low: 0.0,
                high: 1.0,
            }
            .into(),
            PercentileClipSpec {
                lower: 1.0,
                upper: 99.0,
            }
            .into(),
            ClipSpec { min: 0.0, max: 5.0 }.into(),
            OneOfSpec {
                transforms: vec![Transform::ZScore, FlipSpec::new([0]).into()],
                weights: Some(vec![1.0, 3.0]),
            }
            .into(),
            Transform::Sequence(vec![
                Transform::ZScore,
                GammaSpec { gamma: [1.2, 1.2] }.into(),
            ])
            .with_probability(0.5),
        ]
    };
    for shape in SHAPES {
        let ndim = shape.len() - 1;
        for (k, t) in all(ndim).into_iter().enumerate() {
            for interpolation in [Interpolation::Linear, Interpolation::Cubic] {
                let mut s = sample(shape, [1.0, 1.5, 2.0]);
                let p = Pipeline::new([t.clone()]).interpolation(interpolation);
                p.apply(&mut s, &mut stream(k as u64)).unwrap();
                assert_eq!(s.0.spatial_ndim(), ndim, "{t:?}");
                assert_eq!(s.0.spatial_shape(), s.1.volume().spatial_shape(), "{t:?}");
                assert_eq!(s.0.channels(), 2);
                assert!(s.0.data().iter().all(|v| v.is_finite()), "{t:?}");
                assert!(
                    s.1.labels().iter().all(|l| [0, 2, 5, 7].contains(l)),
                    "{t:?}"
                );
            }
        }
    }
}

#[test]
fn pipelines_round_trip_through_json() {
    let pipeline = spatial_pipeline(3)
        .then(Transform::ZScore)
        .then(PercentileClipSpec {
            lower: 0.5,
            upper: 99.5,
        })
        .interpolation(Interpolation::Cubic)
        .fill(-1.0);
    let text = serde_json::to_string(&pipeline).unwrap();
    let back: Pipeline = serde_json::from_str(&text).unwrap();
    assert_eq!(back, pipeline);
    let err = serde_json::from_str::<Pipeline>(r#"{"transforms": [], "fil": 1.0}"#).unwrap_err();
    assert!(err.to_string().contains("unknown field `fil`"), "{err}");
    let err =
        serde_json::from_str::<Transform>(r#"{"gamma": {"gamma": [1, 2], "p": 1}}"#).unwrap_err();
    assert!(err.to_string().contains("unknown field `p`"), "{err}");
}

#[test]
fn bad_parameters_and_samples_give_errors() {
    let mut s = sample(&[1, 6, 5, 4], [1.0, 1.0, 1.0]);
    let err = Transform::from(FlipSpec::new([3]).p(1.0))
        .apply(&mut s, &mut stream(0))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "`flip`: axis 3 does not exist in a 3D volume; use 0..3"
    );
    let err = Transform::from(CropSpec::center([4, 4]))
        .apply(&mut s, &mut stream(0))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "`crop`: need 3 positive sizes for a 3D volume, got [4, 4]"
    );
    let huge = ResizeSpec {
        shape: vec![1 << 20, 1 << 20, 8],
    };
    let err = Transform::from(huge)
        .apply(&mut s, &mut stream(0))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the output grid [1048576, 1048576, 8] has more than 4294967296 voxels; check the sizes \
         of crop, pad, resize, zoom and spacing"
    );
    let (image, _) = sample(&[1, 6, 5, 4], [1.0, 1.0, 1.0]);
    let (_, labels) = sample(&[1, 6, 5, 3], [1.0, 1.0, 1.0]);
    let mut mismatched = (image, labels);
    let err = Transform::ZScore
        .apply(&mut mismatched, &mut stream(0))
        .unwrap_err();
    assert!(
        matches!(err, AugmentError::ShapeMismatch { index: 1, .. }),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "field 1 has spatial shape [6, 5, 3] but field 0 has [6, 5, 4]; the images and label \
         maps of a sample must share one grid"
    );
}
