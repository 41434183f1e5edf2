//! Loading a gzipped int16 volume of 512 × 512 × 128 (64 MiB of voxels): `load_volume`, the raw
//! reader, and raw inflate of the same bytes with each backend tried. Throughput is in
//! uncompressed voxel bytes per second.
//!
//! The file is written to a temporary folder, or to `$DELIRA_NIFTI_BENCH_FILE` when set (kept,
//! so that `scripts/bench-nifti` can time nibabel on the same file in the same run).

use std::hint::black_box;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use delira::io::{load_volume, nifti};
use delira::random::StreamKey;

const SHAPE: [usize; 3] = [512, 512, 128];

/// Smooth blobs (a head-like ellipsoid with a few brighter and darker regions) plus Gaussian
/// noise, so that the data compresses like an image rather than like zeros.
fn image() -> Vec<i16> {
    let [nx, ny, nz] = SHAPE;
    let mut noise = StreamKey::new(7).purpose("bench-nifti").stream();
    let blobs: [([f64; 3], f64, f64); 5] = [
        ([256.0, 256.0, 64.0], 180.0, 800.0),
        ([200.0, 300.0, 60.0], 50.0, 400.0),
        ([320.0, 220.0, 70.0], 40.0, -300.0),
        ([260.0, 180.0, 40.0], 25.0, 600.0),
        ([150.0, 150.0, 90.0], 30.0, 250.0),
    ];
    let mut out = Vec::with_capacity(nx * ny * nz);
    for z in 0..nz {
        for y in 0..ny {
            for x in 0..nx {
                let p = [x as f64, y as f64, z as f64 * 4.0];
                let value: f64 = blobs
                    .iter()
                    .map(|(c, s, a)| {
                        let d2: f64 = (0..3)
                            .map(|i| (p[i] - c[i] * [1.0, 1.0, 4.0][i]).powi(2))
                            .sum();
                        a * (-d2 / (2.0 * s * s)).exp()
                    })
                    .sum();
                out.push((value + 12.0 * noise.normal()).round() as i16);
            }
        }
    }
    out
}

fn write_file(path: &std::path::Path, voxels: &[i16]) {
    let mut header = vec![0u8; 352];
    header[0..4].copy_from_slice(&348i32.to_le_bytes());
    for (i, d) in [3, SHAPE[0], SHAPE[1], SHAPE[2], 1, 1, 1, 1]
        .into_iter()
        .enumerate()
    {
        header[40 + 2 * i..42 + 2 * i].copy_from_slice(&(d as i16).to_le_bytes());
    }
    header[70..72].copy_from_slice(&4i16.to_le_bytes());
    header[72..74].copy_from_slice(&16i16.to_le_bytes());
    for i in 0..8 {
        header[76 + 4 * i..80 + 4 * i].copy_from_slice(&1f32.to_le_bytes());
    }
    header[108..112].copy_from_slice(&352f32.to_le_bytes());
    header[344..348].copy_from_slice(b"n+1\0");
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    encoder.write_all(&header).unwrap();
    for v in voxels {
        encoder.write_all(&v.to_le_bytes()).unwrap();
    }
    std::fs::write(path, encoder.finish().unwrap()).unwrap();
}

fn bench(c: &mut Criterion) {
    let kept = std::env::var_os("DELIRA_NIFTI_BENCH_FILE").map(PathBuf::from);
    let temporary = kept.is_none().then(|| {
        let dir = std::env::temp_dir().join(format!("delira-bench-nifti-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Cleanup(dir)
    });
    let path = kept.unwrap_or_else(|| temporary.as_ref().unwrap().0.join("volume.nii.gz"));
    let voxels = image();
    write_file(&path, &voxels);
    let compressed = std::fs::read(&path).unwrap();
    let total = 352 + voxels.len() * 2;
    eprintln!(
        "bench file {}: {} MiB of voxels in {:.1} MiB of gzip",
        path.display(),
        (voxels.len() * 2) >> 20,
        compressed.len() as f64 / f64::from(1 << 20)
    );

    // The reader returns exactly what was written.
    let volume = load_volume(&path).unwrap();
    assert_eq!(
        volume.data()[[0, 256, 256, 64]],
        f32::from(voxels[256 + 512 * (256 + 512 * 64)])
    );

    let mut group = c.benchmark_group("nifti_gz_int16_512x512x128");
    group.throughput(Throughput::Bytes((voxels.len() * 2) as u64));
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8))
        .warm_up_time(Duration::from_secs(2));

    group.bench_function("load_volume", |b| {
        b.iter(|| black_box(load_volume(&path).unwrap()));
    });
    group.bench_function("read_raw_i16", |b| {
        b.iter(|| black_box(nifti::read(&path).unwrap()));
    });
    group.bench_function("inflate_libdeflate", |b| {
        b.iter(|| {
            let compressed = std::fs::read(&path).unwrap();
            let mut out = vec![0u8; total];
            let n = libdeflater::Decompressor::new()
                .gzip_decompress(&compressed, &mut out)
                .unwrap();
            black_box((n, out))
        });
    });
    group.bench_function("inflate_zlib_rs", |b| {
        b.iter(|| {
            let compressed = std::fs::read(&path).unwrap();
            let mut out = Vec::with_capacity(total);
            flate2::read::MultiGzDecoder::new(&compressed[..])
                .read_to_end(&mut out)
                .unwrap();
            black_box(out)
        });
    });
    group.finish();
}

/// Removes the temporary folder when the benchmark ends.
struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
