//! Metrics against scikit-learn, scipy and hand-computed values.
//!
//! The literals marked "scikit-learn" / "scipy" were computed once with
//! `scripts/reference/training_metrics.py` (scikit-learn 1.x, numpy, scipy in a throw-away venv)
//! and pasted here; the suite itself needs no Python.

use delira::training::metrics::{
    Average, ConfusionMatrix, MetricError, MetricMeans, RunningMean, average_surface_distance,
    dice_per_class, euclidean_distance_transform, hausdorff95, iou_per_class, mean_absolute_error,
    mean_defined, mean_squared_error, roc_auc, roc_auc_ovr, surface_distances,
};
use ndarray::{Array2, Array3, ArrayD, IxDyn, s};

const TRUTH: [i64; 37] = [
    3, 2, 2, 3, 2, 3, 3, 0, 0, 1, 1, 3, 3, 0, 1, 3, 0, 3, 0, 1, 3, 1, 1, 1, 2, 1, 3, 1, 1, 2, 2, 2,
    2, 3, 3, 3, 2,
];
const PREDICTION: [i64; 37] = [
    2, 2, 2, 1, 2, 3, 3, 0, 2, 1, 1, 3, 3, 0, 1, 3, 0, 3, 0, 1, 3, 1, 1, 1, 0, 1, 3, 1, 1, 2, 2, 2,
    2, 3, 3, 3, 2,
];

fn close(actual: f64, expected: f64) {
    assert!((actual - expected).abs() <= 1e-15, "{actual} != {expected}");
}

#[test]
fn confusion_matrix_matches_scikit_learn() {
    let cm = ConfusionMatrix::from_labels(&TRUTH, &PREDICTION, 4).unwrap();
    // scikit-learn: confusion_matrix(truth, pred)
    let expected = [[4, 0, 1, 0], [0, 10, 0, 0], [1, 0, 8, 0], [0, 1, 1, 11]];
    for (t, row) in expected.iter().enumerate() {
        for (p, &count) in row.iter().enumerate() {
            assert_eq!(cm.count(t, p), count, "cell ({t}, {p})");
        }
    }
    assert_eq!(cm.total(), 37);
}

#[test]
fn scores_match_scikit_learn() {
    let cm = ConfusionMatrix::from_labels(&TRUTH, &PREDICTION, 4).unwrap();
    // scikit-learn: accuracy_score, balanced_accuracy_score
    close(cm.accuracy(), 0.891_891_891_891_891_9);
    close(cm.balanced_accuracy(), 0.883_760_683_760_683_8);

    // scikit-learn: precision_recall_fscore_support(average=None, zero_division=0)
    let precision = [0.8, 0.909_090_909_090_909_1, 0.8, 1.0];
    let recall = [0.8, 1.0, 0.888_888_888_888_888_8, 0.846_153_846_153_846_1];
    let f1 = [
        0.8,
        0.952_380_952_380_952_3,
        0.842_105_263_157_894_7,
        0.916_666_666_666_666_6,
    ];
    for class in 0..4 {
        close(cm.precision(class), precision[class]);
        close(cm.recall(class), recall[class]);
        close(cm.f1(class), f1[class]);
    }

    // scikit-learn: precision_recall_fscore_support(average=..., zero_division=0)
    let averages = [
        (
            Average::Macro,
            0.877_272_727_272_727_2,
            0.883_760_683_760_683_8,
            0.877_788_220_551_378_4,
        ),
        (
            Average::Micro,
            0.891_891_891_891_891_9,
            0.891_891_891_891_891_9,
            0.891_891_891_891_891_9,
        ),
        (
            Average::Weighted,
            0.899_754_299_754_299_7,
            0.891_891_891_891_891_9,
            0.892_416_852_943_168_7,
        ),
    ];
    for (average, p, r, f) in averages {
        close(cm.precision_average(average), p);
        close(cm.recall_average(average), r);
        close(cm.f1_average(average), f);
    }
}

#[test]
fn absent_classes_do_not_enter_averages_and_zero_division_gives_zero() {
    // Class 2 never occurs; class 1 is never predicted.
    let cm = ConfusionMatrix::from_labels(&[0, 0, 1], &[0, 0, 0], 3).unwrap();
    assert_eq!(cm.precision(1), 0.0);
    assert_eq!(cm.recall(2), 0.0);
    // Hand: precision 0 = 2/3, class 1 = 0 (zero division); mean over the 2 classes present.
    assert_eq!(cm.precision_average(Average::Macro), (2.0 / 3.0) / 2.0);
    // Recall 1 for class 0 and 0 for class 1; class 2 has no true sample.
    assert_eq!(cm.balanced_accuracy(), 0.5);
    assert_eq!(ConfusionMatrix::new(3).accuracy(), 0.0);
}

#[test]
fn merged_batches_equal_one_matrix() {
    let mut merged = ConfusionMatrix::from_labels(&TRUTH[..10], &PREDICTION[..10], 4).unwrap();
    merged.merge(&ConfusionMatrix::from_labels(&TRUTH[10..], &PREDICTION[10..], 4).unwrap());
    assert_eq!(
        merged,
        ConfusionMatrix::from_labels(&TRUTH, &PREDICTION, 4).unwrap()
    );
}

#[test]
fn labels_out_of_range_are_errors_and_add_nothing() {
    let mut cm = ConfusionMatrix::new(2);
    let error = cm.add(&[0, 1, 2], &[0, 1, 1]).unwrap_err();
    assert_eq!(
        error,
        MetricError::ClassOutOfRange {
            what: "confusion matrix",
            label: 2,
            classes: 2
        }
    );
    assert_eq!(cm.total(), 0);
    let error = cm.add(&[0, -1], &[0, 1]).unwrap_err();
    assert!(
        error.to_string().contains("label -1 is outside 0..2"),
        "{error}"
    );
    assert!(matches!(
        cm.add(&[0, 1], &[0]),
        Err(MetricError::ShapeMismatch { .. })
    ));
}

#[test]
fn binary_roc_auc_with_ties_matches_scikit_learn() {
    let truth = [
        1, 0, 1, 1, 0, 1, 1, 1, 1, 1, 0, 0, 1, 0, 1, 1, 0, 1, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 1, 0,
    ];
    let scores = [
        0.4, 0.0, 0.8, 0.6, 0.3, 0.5, 0.8, 0.3, 0.5, 0.3, 0.1, 0.6, 0.7, 0.3, 0.6, 0.8, 0.2, 0.7,
        0.4, 0.2, 0.3, 0.8, 0.8, 0.4, 0.9, 0.3, 0.5, 0.5, 0.4, 0.3,
    ];
    // scikit-learn: roc_auc_score(truth, scores)
    close(roc_auc(&truth, &scores).unwrap(), 0.844_907_407_407_407_4);
    // f32 scores give the same ordering and ties.
    let scores32: Vec<f32> = scores.iter().map(|&s| s as f32).collect();
    close(roc_auc(&truth, &scores32).unwrap(), 0.844_907_407_407_407_4);
}

#[test]
fn roc_auc_needs_both_classes_and_finite_scores() {
    assert_eq!(
        roc_auc(&[1, 1], &[0.2, 0.3]).unwrap_err(),
        MetricError::OneSided {
            class: 1,
            positives: 2,
            negatives: 0
        }
    );
    assert!(matches!(
        roc_auc(&[0, 1], &[0.2, f64::NAN]),
        Err(MetricError::NotFinite { position: 1, .. })
    ));
    assert!(matches!(
        roc_auc(&[0, 2], &[0.2, 0.3]),
        Err(MetricError::ClassOutOfRange { .. })
    ));
}

// Pasted verbatim from Python's repr, so a reader can diff them against the script's output.
#[rustfmt::skip]
#[allow(clippy::unreadable_literal)]
const OVR_PROBABILITIES: [[f64; 4]; 37] = [
    [0.3557185490016383, 0.1631743123238329, 0.14713927737143728, 0.3339678613030914],
    [0.22732973089297992, 0.03471823500909888, 0.3700373238765093, 0.36791471022141187],
    [0.022186813405949864, 0.43470762773975263, 0.14576105743571105, 0.39734450141858657],
    [0.0911100949169385, 0.46245845538857, 0.24189816939416908, 0.20453328030032253],
    [0.2752043063486606, 0.3336432004893353, 0.33114624263326226, 0.06000625052874194],
    [0.12471806547547006, 0.05518936970228341, 0.4390044015857038, 0.38108816323654265],
    [0.29820545138975807, 0.14197864978031746, 0.16782134586779274, 0.3919945529621317],
    [0.777901132171674, 0.04232773520151716, 0.12972952960814318, 0.050041603018665504],
    [0.4931311108689773, 0.15893468812986536, 0.1258319845119376, 0.22210221648921968],
    [0.14601617426611452, 0.7056098906476852, 0.05353895681891238, 0.09483497826728784],
    [0.5640865974169209, 0.24713061837368747, 0.03760197008147723, 0.15118081412791426],
    [0.5437533150210389, 0.031099731227242303, 0.10806162120943473, 0.31708533254228405],
    [0.021356593384156203, 0.25912399678451703, 0.12138120785561729, 0.5981382019757095],
    [0.41108143174561523, 0.3067051801948301, 0.1135002964255742, 0.1687130916339805],
    [0.054453220614345745, 0.2190938173278241, 0.6271179514132575, 0.09933501064457265],
    [0.23712350370379726, 0.17124757679741776, 0.11394952178335158, 0.47767939771543344],
    [0.7624908811108392, 0.06699649825883855, 0.07787183308179445, 0.09264078754852763],
    [0.3511725446986775, 0.21385117676122817, 0.15875619021516632, 0.276220088324928],
    [0.15613471358510267, 0.3586036842032928, 0.36472186064226236, 0.12053974156934208],
    [0.10535321958483654, 0.5999689554184963, 0.14069850121074376, 0.15397932378592338],
    [0.03943122658670786, 0.2829156194477021, 0.017878209908109042, 0.6597749440574809],
    [0.07022865916532077, 0.4600998413901613, 0.2805726535897676, 0.1890988458547503],
    [0.08434825156158314, 0.21952352613115944, 0.6000542373088295, 0.09607398499842791],
    [0.0845568092150618, 0.8885193916644871, 0.016544134768151624, 0.010379664352299298],
    [0.1882188040487319, 0.1518194531590888, 0.509028010599597, 0.15093373219258235],
    [0.16054246629839808, 0.37449546567126374, 0.3213141328413867, 0.1436479351889516],
    [0.020301926545313303, 0.17414324001952958, 0.09877045081926879, 0.7067843826158883],
    [0.10706633961031245, 0.6682649912020836, 0.10602771825573826, 0.11864095093186568],
    [0.1994288242201243, 0.33598780604142525, 0.23418602377156625, 0.2303973459668842],
    [0.38599318278790007, 0.012652687907273972, 0.5547741528317766, 0.04657997647304935],
    [0.16028451912863645, 0.03813438577178567, 0.45979760245275736, 0.34178349264682056],
    [0.10796473205239213, 0.12714616893711378, 0.3929043940513486, 0.3719847049591454],
    [0.28186802993090515, 0.03189648695726155, 0.6460255144158116, 0.04020996869602169],
    [0.004245584979013481, 0.0645346752574517, 0.41608013757566037, 0.5151396021878744],
    [0.03422893721442179, 0.04316013390438452, 0.34248584944125243, 0.5801250794399413],
    [0.08030690050827327, 0.07255860070507678, 0.07953972412194411, 0.7675947746647059],
    [0.2791445855450604, 0.19931117123701259, 0.2537359654872301, 0.2678082777306969],
];

#[test]
fn one_vs_rest_roc_auc_matches_scikit_learn() {
    let scores = Array2::from_shape_fn((37, 4), |(i, j)| OVR_PROBABILITIES[i][j]);
    // scikit-learn: roc_auc_score(truth, probs, multi_class="ovr", average="macro")
    close(
        roc_auc_ovr(&TRUTH, &scores).unwrap(),
        0.887_810_973_748_473_8,
    );
}

#[test]
fn dice_and_iou_follow_the_empty_class_rules() {
    // 3 × 3 maps; class 0 background, 1 overlapping, 2 only predicted, 3 nowhere.
    let truth = ndarray::array![[0, 1, 1], [0, 1, 1], [0, 0, 0]];
    let prediction = ndarray::array![[0, 0, 1], [0, 1, 1], [2, 0, 0]];
    let dice = dice_per_class(&truth, &prediction, 4).unwrap();
    // Hand: class 0 |T|=5 |P|=5 |T∩P|=4; class 1 |T|=4 |P|=3 |T∩P|=3.
    assert_eq!(dice, [Some(8.0 / 10.0), Some(6.0 / 7.0), Some(0.0), None]);
    let iou = iou_per_class(&truth, &prediction, 4).unwrap();
    assert_eq!(iou, [Some(4.0 / 6.0), Some(3.0 / 4.0), Some(0.0), None]);
    assert_eq!(mean_defined(&dice), Some((0.8 + 6.0 / 7.0 + 0.0) / 3.0));
    // u16 label maps work the same way.
    let truth16 = truth.mapv(|v| v as u16);
    let prediction16 = prediction.mapv(|v| v as u16);
    assert_eq!(dice_per_class(&truth16, &prediction16, 4).unwrap(), dice);
}

/// A 3 × 3 × 3 box at `start` in a 12³ grid.
fn cube(start: [usize; 3]) -> Array3<bool> {
    let mut mask = Array3::from_elem((12, 12, 12), false);
    mask.slice_mut(s![
        start[0]..start[0] + 3,
        start[1]..start[1] + 3,
        start[2]..start[2] + 3
    ])
    .fill(true);
    mask
}

#[test]
fn surface_distances_of_shifted_boxes_are_hand_computed() {
    // Every voxel of a 3³ cube except its centre is surface: 9 + 8 + 9 voxels per layer along the
    // shift. Shifting a cube by 3 voxels along one axis puts its layers 1, 2 and 3 voxels from the
    // other cube's nearest face, so the directed distances are 9 × 1, 8 × 2, 9 × 3 voxel steps.
    let spacing = [2.0, 1.0, 0.5];
    let truth = cube([2, 2, 2]);

    let along_x = cube([5, 2, 2]);
    // NumPy percentile 95 of 26 values: rank 23.75 lies among the 9 largest (3 steps × 2 mm).
    assert_eq!(hausdorff95(&truth, &along_x, &spacing).unwrap(), Some(6.0));
    assert_eq!(
        average_surface_distance(&truth, &along_x, &spacing).unwrap(),
        Some((9.0 * 2.0 + 8.0 * 4.0 + 9.0 * 6.0) / 26.0)
    );

    let along_z = cube([2, 2, 5]);
    assert_eq!(hausdorff95(&truth, &along_z, &spacing).unwrap(), Some(1.5));
    assert_eq!(
        average_surface_distance(&truth, &along_z, &spacing).unwrap(),
        Some((9.0 * 0.5 + 8.0 * 1.0 + 9.0 * 1.5) / 26.0)
    );

    let distances = surface_distances(&truth, &along_z, &spacing)
        .unwrap()
        .unwrap();
    assert_eq!(distances.prediction_to_truth.len(), 26);
    assert_eq!(distances.truth_to_prediction.len(), 26);
}

const MASK_TRUTH: &str = "000000000000000000000000000000001110000011110000111100001111000011110111111011110000000000000000000000000000000011000000111000001111000011100000111000001111000000000000000000000000000000000000000000000000000000000000000000001110000011110000000000000000000000000000000000000000000000000000000000000000000001110000111100000000000000000000000000000000000000000000000000000000001100000001111100001111100000000000000000000000000000000000000000000000000000011111111111111111100011110000000000000000000000000000000000000001000000011000000111111011110111110000111100001000000011000000111000001111000001111001001111010011111100011001000000000000000011100000111100001111000111111111011111110011111100111001000100010000000100000001111100001111000001110001011111110111101101110011001100010000000000000001000000110111000101110001011100010011000101110001011100010011000000110000000100010001001101110011011100110110000100100000011100000111000000111000001110000001100100011001";
const MASK_PREDICTION: &str = "000000000000000000000000110000001110000111111111000001110000001100000011000001110000000000000000000000001100000011100000111000111000001100000011000000110000001100000000000000000000000000000000100000001100000010000001100000110000001100000011000000000000000000000000000000000000000010000000100000011100000111000001110000011000001100000000000000000000000000000000000000001100000011100000111100001111000010000111000000000000000000000000000000001000000011111000111111001111100011111000110011110000001100000000000000001000000011100000111110001111110011111000111110001110011111000011100000001000000011000000111000001111000011111000111110001111100011100011110000011000000000000000000000001110000011110000111110001111100010011000110000111100001110000000000000000010000000100000001000000000000000001000000010001100001110000011000000110110001101110011011100110000000100000001000000001000000110000111000001110000011101110111011111110111111100000111000000110000001110000011";

fn mask(bits: &str) -> ArrayD<bool> {
    ArrayD::from_shape_vec(
        IxDyn(&[12, 10, 8]),
        bits.bytes().map(|b| b == b'1').collect(),
    )
    .unwrap()
}

#[test]
fn surface_distances_of_random_blobs_match_scipy() {
    let (truth, prediction) = (mask(MASK_TRUTH), mask(MASK_PREDICTION));
    let spacing = [1.5, 0.8, 2.0];
    // scipy, MONAI's recipe: edges = m ^ binary_erosion(m); distance_transform_edt(~edges,
    // sampling=spacing); max of the two directed 95th percentiles; pooled mean for the ASSD.
    let distances = surface_distances(&truth, &prediction, &spacing)
        .unwrap()
        .unwrap();
    assert_eq!(distances.prediction_to_truth.len(), 261);
    assert_eq!(distances.truth_to_prediction.len(), 254);
    let hd95 = hausdorff95(&truth, &prediction, &spacing).unwrap().unwrap();
    assert!((hd95 - 3.2).abs() < 1e-12, "{hd95}");
    let assd = average_surface_distance(&truth, &prediction, &spacing)
        .unwrap()
        .unwrap();
    assert!((assd - 1.161_010_185_619_619_8).abs() < 1e-12, "{assd}");

    // scipy: distance_transform_edt(~truth, sampling=spacing)
    let edt = euclidean_distance_transform(&truth, &spacing).unwrap();
    assert!(
        (edt.sum() - 1_570.568_883_620_658_2).abs() < 1e-9,
        "{}",
        edt.sum()
    );
    let max = edt.iter().copied().fold(0.0, f64::max);
    assert!((max - 6.573_431_371_817_919).abs() < 1e-12, "{max}");
}

#[test]
fn empty_masks_follow_the_documented_rules() {
    let empty = Array3::from_elem((4, 4, 4), false);
    let mut one = empty.clone();
    one[[1, 1, 1]] = true;
    let spacing = [1.0; 3];
    assert_eq!(hausdorff95(&empty, &empty, &spacing).unwrap(), None);
    assert_eq!(
        hausdorff95(&empty, &one, &spacing).unwrap(),
        Some(f64::INFINITY)
    );
    assert_eq!(
        hausdorff95(&one, &empty, &spacing).unwrap(),
        Some(f64::INFINITY)
    );
    assert_eq!(
        average_surface_distance(&empty, &empty, &spacing).unwrap(),
        None
    );
    assert_eq!(
        average_surface_distance(&one, &one, &spacing).unwrap(),
        Some(0.0)
    );
    assert_eq!(surface_distances(&empty, &one, &spacing).unwrap(), None);
    let edt = euclidean_distance_transform(&empty, &spacing).unwrap();
    assert!(edt.iter().all(|d| d.is_infinite()));
}

#[test]
fn spacing_must_fit_the_volume() {
    let mask = Array3::from_elem((2, 2, 2), true);
    for spacing in [&[1.0, 1.0][..], &[1.0, 0.0, 1.0], &[1.0, f64::NAN, 1.0]] {
        let error = hausdorff95(&mask, &mask, spacing).unwrap_err();
        assert!(
            matches!(error, MetricError::Spacing { ndim: 3, .. }),
            "{error}"
        );
    }
}

#[test]
fn regression_errors_are_hand_computed() {
    let truth = ndarray::array![[0.0_f32, 1.0], [2.0, -3.0]];
    let prediction = ndarray::array![[0.5_f32, 1.0], [0.0, -1.0]];
    assert_eq!(
        mean_absolute_error(&truth, &prediction).unwrap(),
        (0.5 + 0.0 + 2.0 + 2.0) / 4.0
    );
    assert_eq!(
        mean_squared_error(&truth, &prediction).unwrap(),
        (0.25 + 0.0 + 4.0 + 4.0) / 4.0
    );
    let wrong = ndarray::array![[0.0_f32, 1.0]];
    assert!(matches!(
        mean_squared_error(&truth, &wrong),
        Err(MetricError::ShapeMismatch { .. })
    ));
    let empty = ndarray::Array1::<f64>::zeros(0);
    assert!(matches!(
        mean_absolute_error(&empty, &empty),
        Err(MetricError::Empty { .. })
    ));
}

#[test]
fn running_means_average_over_samples_not_batches() {
    // Ten per-sample losses in batches of 4, 4 and 2.
    let losses = [0.5, 1.5, 2.0, 4.0, 1.0, 1.0, 3.0, 3.0, 10.0, 20.0];
    let mut mean = RunningMean::default();
    let mut means = MetricMeans::default();
    for batch in losses.chunks(4) {
        let batch_mean = batch.iter().sum::<f64>() / batch.len() as f64;
        mean.add(batch_mean, batch.len());
        means.add("loss", batch_mean, batch.len());
    }
    let per_sample = losses.iter().sum::<f64>() / 10.0;
    assert_eq!(mean.mean(), Some(per_sample));
    assert_eq!(means.means()["loss"], per_sample);
    // The mean of batch means would be (2 + 2 + 15) / 3, which the accumulator must not give.
    assert_ne!(per_sample, (2.0 + 2.0 + 15.0) / 3.0);
    assert_eq!(mean.samples(), 10);

    // The state survives serialisation exactly (a checkpoint mid-epoch).
    let json = serde_json::to_string(&means).unwrap();
    assert_eq!(serde_json::from_str::<MetricMeans>(&json).unwrap(), means);
    assert_eq!(RunningMean::default().mean(), None);
}
