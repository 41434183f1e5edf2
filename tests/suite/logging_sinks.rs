//! Metric sinks: TensorBoard record framing, CSV and JSON lines.
//!
//! TensorBoard's own reader checks the event contents in `scripts/check-tensorboard`; here the
//! framing (lengths and masked CRC-32C) is checked byte for byte.

use delira::logging::{
    CsvSink, JsonLinesSink, MetricSink, Sinks, TensorBoardWriter, crc32c, grey_image, masked_crc32c,
};
use ndarray::Array3;

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("delira-logging-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn crc32c_matches_the_published_check_values() {
    // RFC 3720 (iSCSI) appendix B.4 test vectors.
    assert_eq!(crc32c(&[0; 32]), 0x8A91_36AA);
    assert_eq!(crc32c(&[0xFF; 32]), 0x62A8_AB43);
    let ascending: Vec<u8> = (0..32).collect();
    assert_eq!(crc32c(&ascending), 0x46DD_794E);
    assert_eq!(crc32c(b""), 0);
    // Masking: rotate right by 15, add 0xa282ead8.
    assert_eq!(
        masked_crc32c(b"123456789"),
        0xE306_9283_u32.rotate_right(15).wrapping_add(0xA282_EAD8)
    );
}

/// Splits an event file into its records, checking every length and CRC.
fn records(bytes: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let length_bytes = &bytes[pos..pos + 8];
        let length = u64::from_le_bytes(length_bytes.try_into().unwrap()) as usize;
        let length_crc = u32::from_le_bytes(bytes[pos + 8..pos + 12].try_into().unwrap());
        assert_eq!(length_crc, masked_crc32c(length_bytes));
        let data = &bytes[pos + 12..pos + 12 + length];
        let data_crc = u32::from_le_bytes(
            bytes[pos + 12 + length..pos + 16 + length]
                .try_into()
                .unwrap(),
        );
        assert_eq!(data_crc, masked_crc32c(data));
        out.push(data);
        pos += 16 + length;
    }
    assert_eq!(pos, bytes.len());
    out
}

#[test]
fn event_files_are_framed_tfrecords_with_a_version_record_first() {
    let dir = scratch("tb");
    let mut writer = TensorBoardWriter::create(&dir).unwrap();
    writer.scalar("loss", 7, 0.25).unwrap();
    writer.histogram("w", 7, &[1.0, f64::NAN, 2.0]).unwrap();
    writer
        .image(
            "img",
            7,
            grey_image(&ndarray::array![[0.0_f32, 1.0]]).view(),
        )
        .unwrap();
    writer.flush().unwrap();

    let bytes = std::fs::read(writer.path()).unwrap();
    let records = records(&bytes);
    assert_eq!(records.len(), 4);
    // Event { wall_time (field 1, fixed64), file_version (field 3) = "brain.Event:2" }.
    assert_eq!(records[0][0], 0x09);
    assert_eq!(&records[0][9..], b"\x1a\x0dbrain.Event:2");
    // The scalar event ends with step 7 and Summary { Value { tag "loss", simple_value 0.25f32 } }:
    // Value = 2 + 4 (tag) + 1 + 4 (float) = 11 bytes, Summary = 2 + 11 = 13 bytes.
    let mut scalar_tail = vec![0x10, 7, 0x2a, 13, 0x0a, 11, 0x0a, 4];
    scalar_tail.extend_from_slice(b"loss");
    scalar_tail.push(0x15);
    scalar_tail.extend_from_slice(&0.25_f32.to_le_bytes());
    assert_eq!(&records[1][9..], scalar_tail.as_slice());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn images_with_unusable_shapes_are_errors() {
    let dir = scratch("tb-image");
    let mut writer = TensorBoardWriter::create(&dir).unwrap();
    let two_channels = Array3::<u8>::zeros((4, 4, 2));
    let error = writer.image("bad", 0, two_channels.view()).unwrap_err();
    assert_eq!(
        error.to_string(),
        "image `bad` has shape [4, 4, 2]; expected [height, width, channels] with 1, 3 or 4 \
         channels and a non-zero size"
    );
    assert!(
        writer
            .image("empty", 0, Array3::<u8>::zeros((0, 4, 1)).view())
            .is_err()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn csv_and_json_lines_hold_exact_values_and_append_on_resume() {
    let dir = scratch("text");
    let (csv, jsonl) = (dir.join("metrics.csv"), dir.join("metrics.jsonl"));
    let values = [
        (0, "loss", 1.0 / 3.0),
        (1, "val,dice \"mean\"", 0.1 + 0.2),
        (2, "loss", f64::INFINITY),
    ];
    {
        let mut sinks = Sinks::default()
            .with(CsvSink::create(&csv).unwrap())
            .with(JsonLinesSink::create(&jsonl).unwrap());
        for &(step, tag, value) in &values[..2] {
            sinks.scalar(tag, step, value).unwrap();
        }
        sinks.histogram("ignored", 0, &[1.0]).unwrap();
        sinks.flush().unwrap();
    }
    // A resumed run appends, without a second header.
    let mut sinks = Sinks::default()
        .with(CsvSink::create(&csv).unwrap())
        .with(JsonLinesSink::create(&jsonl).unwrap());
    sinks.scalar(values[2].1, values[2].0, values[2].2).unwrap();
    sinks.flush().unwrap();

    let text = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(
        text,
        "step,tag,value\n0,loss,0.3333333333333333\n1,\"val,dice \"\"mean\"\"\",0.30000000000000004\n2,loss,inf\n"
    );
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&jsonl)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(
        lines[0]["value"].as_f64().unwrap().to_bits(),
        (1.0_f64 / 3.0).to_bits()
    );
    assert_eq!(lines[1]["tag"], "val,dice \"mean\"");
    assert_eq!(lines[2]["value"], "inf");
    std::fs::remove_dir_all(&dir).unwrap();
}
