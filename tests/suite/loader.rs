//! The threaded loader: order, determinism, failures, shutdown, bounded prefetch, stall.

use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use delira::data::{
    Batch, CollateError, DataError, Dataset, DatasetExt, FnDataset, LazyDataset, Loader,
    LoaderConfig, LoaderError, Record, Sampler, SequentialSampler, Value,
};
use delira::io::IoError;
use delira::random::{Stream, StreamKey};
use ndarray::{ArrayD, arr0};

/// Far more than any test here needs; reached only when the loader hangs.
const GUARD: Duration = Duration::from_mins(1);

/// Runs `body` on its own thread and fails the test if it takes longer than `limit`, so that a
/// hanging loader fails instead of blocking the suite.
fn within<T: Send + 'static>(limit: Duration, body: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let runner = std::thread::spawn(move || {
        let _ = tx.send(body());
    });
    match rx.recv_timeout(limit) {
        Ok(value) => value,
        Err(RecvTimeoutError::Disconnected) => match runner.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the body sends its result before it ends"),
        },
        Err(RecvTimeoutError::Timeout) => panic!("the loader did not finish within {limit:?}"),
    }
}

fn record(i: usize) -> Record {
    Record::new()
        .with(
            "image",
            ArrayD::from_shape_fn(vec![1, 3, 4], |d| (i * 100 + d[1] * 4 + d[2]) as f32),
        )
        .with("label", arr0((i % 3) as i64).into_dyn())
        .with("id", format!("s{i}"))
}

/// Adds Gaussian noise and flips the image along its last axis with probability one half.
#[allow(clippy::unnecessary_wraps)] // the signature of a loader transform
fn noisy_flip(mut sample: Record, stream: &mut Stream) -> Result<Record, DataError> {
    let flip = stream.bernoulli(0.5);
    if let Some(Value::F32(image)) = sample.get_mut("image") {
        image.mapv_inplace(|v| v + stream.normal() as f32);
        if flip {
            image.invert_axis(ndarray::Axis(2));
        }
    }
    Ok(sample)
}

/// A shuffled order that depends on the epoch.
struct Shuffled(usize);

impl Sampler for Shuffled {
    fn epoch_indices(&self, epoch: u64) -> Vec<usize> {
        let mut stream = StreamKey::new(5).epoch(epoch).purpose("sampler").stream();
        stream.permutation(self.0)
    }

    fn len(&self) -> usize {
        self.0
    }
}

fn config(batch_size: usize, workers: usize) -> LoaderConfig {
    LoaderConfig::builder()
        .batch_size(batch_size)
        .workers(workers)
        .seed(11)
        .build()
}

fn collect_epoch<D>(loader: &Loader<D, Shuffled>, epoch: u64) -> Vec<Batch>
where
    D: Dataset<Item = Record> + 'static,
{
    loader.epoch(epoch).map(Result::unwrap).collect()
}

#[test]
fn batches_are_bit_identical_for_any_worker_count() {
    within(GUARD, || {
        // Samples take different times, so that workers finish out of order.
        let data = || {
            FnDataset::new(23, |i| {
                std::thread::sleep(Duration::from_micros(((i * 7) % 5) as u64 * 300));
                Ok(record(i))
            })
        };
        let runs: Vec<Vec<Vec<Batch>>> = [0, 1, 4]
            .into_iter()
            .map(|workers| {
                let loader = Loader::new(data(), Shuffled(23), config(5, workers))
                    .unwrap()
                    .with_transform(noisy_flip);
                (0..2).map(|epoch| collect_epoch(&loader, epoch)).collect()
            })
            .collect();
        assert_eq!(runs[0], runs[1]);
        assert_eq!(runs[0], runs[2]);

        // The transform of sample i in epoch e uses exactly the documented stream.
        for (epoch, batches) in runs[0].iter().enumerate() {
            for batch in batches {
                let expected: Vec<Record> = batch
                    .indices()
                    .iter()
                    .map(|&i| {
                        let key = StreamKey::new(11).epoch(epoch as u64).sample(i as u64);
                        noisy_flip(record(i), &mut key.purpose("transform").stream()).unwrap()
                    })
                    .collect();
                let expected = Batch::collate(expected)
                    .unwrap()
                    .with_indices(batch.indices().to_vec());
                assert_eq!(*batch, expected);
            }
        }
        // Another epoch draws other noise.
        assert_ne!(runs[0][0], runs[0][1]);
    });
}

#[test]
fn batches_come_in_sampler_order() {
    within(GUARD, || {
        let data = FnDataset::new(50, |i| {
            // Early samples are the slowest, so later batches finish first.
            std::thread::sleep(Duration::from_micros((50 - i as u64) * 40));
            Ok(record(i))
        });
        let sampler = Shuffled(50);
        let expected = sampler.epoch_indices(3);
        let loader = Loader::new(data, sampler, config(4, 4)).unwrap();
        let batches = collect_epoch(&loader, 3);
        assert_eq!(batches.len(), 13);
        let order: Vec<usize> = batches.iter().flat_map(|b| b.indices().to_vec()).collect();
        assert_eq!(order, expected);
        for batch in &batches {
            let ids: Vec<String> = batch.indices().iter().map(|i| format!("s{i}")).collect();
            assert_eq!(batch.text("id").unwrap(), ids);
            let labels: Vec<i64> = batch.indices().iter().map(|&i| (i % 3) as i64).collect();
            assert_eq!(batch.i64("label").unwrap().as_slice().unwrap(), labels);
        }
    });
}

#[test]
fn six_hundred_samples_in_sevens() {
    within(GUARD, || {
        for (drop_last, batches, last) in [(false, 86, 5), (true, 85, 7)] {
            let data = FnDataset::new(600, |i| {
                Ok(Record::new().with("i", arr0(i as i64).into_dyn()))
            });
            let config = LoaderConfig::builder()
                .batch_size(7)
                .workers(2)
                .drop_last(drop_last)
                .build();
            let loader = Loader::new(data, SequentialSampler::new(600), config).unwrap();
            assert_eq!(loader.num_batches(), batches);
            let out: Vec<Batch> = loader.epoch(0).map(Result::unwrap).collect();
            assert_eq!(out.len(), batches);
            assert_eq!(out.last().unwrap().len(), last);
            let seen: Vec<i64> = out
                .iter()
                .flat_map(|b| b.i64("i").unwrap().iter().copied().collect::<Vec<_>>())
                .collect();
            let expected: Vec<i64> = (0..(batches - 1) * 7 + last).map(|i| i as i64).collect();
            assert_eq!(seen, expected);
        }
    });
}

/// A dataset whose sample 13 cannot be read.
fn with_unreadable_file() -> impl Dataset<Item = Record> {
    FnDataset::new(30, |i| {
        if i == 13 {
            Err(DataError::Io(IoError::File {
                path: "subjects/s13/t1.nii.gz".into(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            }))
        } else {
            Ok(record(i))
        }
    })
}

#[test]
fn an_io_error_names_the_sample_and_ends_the_epoch() {
    within(GUARD, || {
        for workers in [0, 1, 3] {
            let loader = Loader::new(
                with_unreadable_file(),
                SequentialSampler::new(30),
                config(5, workers),
            )
            .unwrap();
            let out: Vec<_> = loader.epoch(0).collect();
            assert_eq!(out.len(), 3, "two batches, then the error, then nothing");
            assert!(out[0].is_ok() && out[1].is_ok());
            let err = out[2].as_ref().unwrap_err();
            assert_eq!(
                err.to_string(),
                "sample 13 (batch 2 of epoch 0) failed: subjects/s13/t1.nii.gz: no such file"
            );
            assert!(matches!(
                err,
                LoaderError::Sample {
                    index: 13,
                    batch: 2,
                    epoch: 0,
                    cause: DataError::Io(_)
                }
            ));
        }
    });
}

#[test]
fn a_panic_in_the_transform_names_the_sample() {
    within(GUARD, || {
        for workers in [0, 2] {
            let data = FnDataset::new(20, |i| Ok(record(i)));
            let loader = Loader::new(data, SequentialSampler::new(20), config(4, workers))
                .unwrap()
                .with_transform(|sample: Record, _: &mut Stream| {
                    let id = sample.get("id").cloned();
                    assert!(
                        id != Some(Value::from("s9")),
                        "intensity window is empty for s9"
                    );
                    Ok(sample)
                });
            let mut epoch = loader.epoch(0);
            assert!(epoch.next().unwrap().is_ok());
            assert!(epoch.next().unwrap().is_ok());
            let err = epoch.next().unwrap();
            assert!(epoch.next().is_none());
            assert!(epoch.next().is_none());
            let err = err.unwrap_err();
            assert_eq!(
                err.to_string(),
                "sample 9 (batch 2 of epoch 0) panicked: intensity window is empty for s9"
            );
        }
    });
}

#[test]
fn a_failure_stops_slow_workers_promptly() {
    let loads = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&loads);
    let (elapsed, out) = within(Duration::from_secs(20), move || {
        let data = FnDataset::new(100, move |i| {
            counted.fetch_add(1, Ordering::SeqCst);
            if i == 5 {
                return Err(DataError::msg("corrupt header"));
            }
            std::thread::sleep(Duration::from_millis(200));
            Ok(record(i))
        });
        let loader = Loader::new(data, SequentialSampler::new(100), config(4, 4)).unwrap();
        let start = Instant::now();
        let out: Vec<Result<Batch, String>> = loader
            .epoch(0)
            .map(|r| r.map_err(|e| e.to_string()))
            .collect();
        // The iterator is dropped here; its threads are joined.
        (start.elapsed(), out)
    });
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].as_ref().unwrap().indices(), [0, 1, 2, 3]);
    assert_eq!(
        out[1].as_ref().unwrap_err(),
        "sample 5 (batch 1 of epoch 0) failed: corrupt header"
    );
    assert!(
        elapsed < Duration::from_secs(1),
        "the epoch took {elapsed:?} to fail and stop"
    );
    // Work stopped: at most the default two batches were handed out beyond the delivered one.
    let loaded = loads.load(Ordering::SeqCst);
    assert!((6..=12).contains(&loaded), "{loaded} samples were loaded");
}

/// Counts the threads that have loaded a sample and are still alive.
struct LiveThreads(Arc<AtomicUsize>);

impl Drop for LiveThreads {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

thread_local! {
    static REGISTERED: RefCell<Option<LiveThreads>> = const { RefCell::new(None) };
}

fn register(live: &Arc<AtomicUsize>) {
    REGISTERED.with(|slot| {
        let mut slot = slot.borrow_mut();
        if slot.is_none() {
            live.fetch_add(1, Ordering::SeqCst);
            *slot = Some(LiveThreads(Arc::clone(live)));
        }
    });
}

#[test]
fn no_worker_thread_outlives_its_epoch() {
    within(GUARD, || {
        let live = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&live);
        let data = Arc::new(FnDataset::new(40, move |i| {
            register(&counter);
            std::thread::sleep(Duration::from_millis(2));
            if i == 30 {
                Err(DataError::msg("bad"))
            } else {
                Ok(record(i))
            }
        }));
        let loader =
            Loader::new(Arc::clone(&data), SequentialSampler::new(40), config(2, 3)).unwrap();

        // Dropped early, after one batch.
        let mut epoch = loader.epoch(0);
        assert!(epoch.next().unwrap().is_ok());
        assert!(live.load(Ordering::SeqCst) > 0);
        drop(epoch);
        assert_eq!(live.load(Ordering::SeqCst), 0);

        // Run until the error, iterator kept alive: the threads are already gone.
        let mut epoch = loader.epoch(1);
        let results: Vec<_> = epoch.by_ref().collect();
        assert_eq!(results.len(), 16);
        assert!(results[15].is_err());
        assert_eq!(live.load(Ordering::SeqCst), 0);
        drop(epoch);

        // A complete epoch over the first 30 samples.
        let subset = data.subset((0..30).collect()).unwrap();
        let loader = Loader::new(subset, SequentialSampler::new(30), config(2, 3)).unwrap();
        let mut epoch = loader.epoch(0);
        assert_eq!(epoch.by_ref().map(Result::unwrap).count(), 15);
        assert_eq!(live.load(Ordering::SeqCst), 0);
    });
}

#[test]
fn prefetch_bounds_the_samples_loaded_ahead() {
    within(GUARD, || {
        let loads = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&loads);
        let data = FnDataset::new(200, move |i| {
            counted.fetch_add(1, Ordering::SeqCst);
            Ok(record(i))
        });
        let (batch_size, prefetch) = (4, 3);
        let config = LoaderConfig::builder()
            .batch_size(batch_size)
            .workers(4)
            .prefetch(prefetch)
            .build();
        let loader = Loader::new(data, SequentialSampler::new(200), config).unwrap();
        let mut epoch = loader.epoch(0);
        for delivered in 1..=10 {
            assert!(epoch.next().unwrap().is_ok());
            let bound = (delivered + prefetch) * batch_size;
            // Give the workers every chance to run ahead, then check they did, but no further.
            let deadline = Instant::now() + Duration::from_secs(10);
            while loads.load(Ordering::SeqCst) < bound && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            std::thread::sleep(Duration::from_millis(5));
            assert_eq!(loads.load(Ordering::SeqCst), bound);
        }
    });
}

#[test]
fn the_stall_is_the_wait_for_data() {
    within(GUARD, || {
        // Slow data loaded on the calling thread: the consumer waits for all of it.
        let slow = FnDataset::new(6, |i| {
            std::thread::sleep(Duration::from_millis(30));
            Ok(record(i))
        });
        let loader = Loader::new(slow, SequentialSampler::new(6), config(3, 0)).unwrap();
        let mut epoch = loader.epoch(0);
        assert_eq!(epoch.by_ref().count(), 2);
        let stats = epoch.stats().clone();
        assert_eq!(stats.stalls().len(), 2);
        assert!(
            stats
                .stalls()
                .iter()
                .all(|&s| s >= Duration::from_millis(90))
        );
        assert_eq!(stats.total_stall(), stats.stalls()[0] + stats.stalls()[1]);
        assert!(stats.stall_fraction() > 0.9 && stats.stall_fraction() <= 1.0);

        // Instant data, prefetched while the consumer works: the wait is far shorter.
        let loads = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&loads);
        let instant = FnDataset::new(6, move |i| {
            counted.fetch_add(1, Ordering::SeqCst);
            Ok(record(i))
        });
        let loader = Loader::new(instant, SequentialSampler::new(6), config(3, 2)).unwrap();
        let mut epoch = loader.epoch(0);
        while loads.load(Ordering::SeqCst) < 6 {
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(epoch.by_ref().count(), 2);
        let fast = epoch.stats();
        assert!(fast.stalls().iter().all(|&s| s < Duration::from_millis(60)));
        assert!(fast.total_stall() < stats.total_stall() / 3);
        assert!(fast.stall_fraction() < 0.5);
    });
}

#[test]
fn a_shape_mismatch_names_the_batch_field_and_shapes() {
    within(GUARD, || {
        for workers in [0, 2] {
            let data = FnDataset::new(8, |i| {
                let side = if i == 6 { 5 } else { 4 };
                Ok(Record::new().with("image", ArrayD::<f32>::zeros(vec![1, side, 4])))
            });
            let loader = Loader::new(data, SequentialSampler::new(8), config(4, workers)).unwrap();
            let out: Vec<_> = loader.epoch(0).collect();
            assert_eq!(out.len(), 2);
            let err = out[1].as_ref().unwrap_err();
            assert_eq!(
                err.to_string(),
                "batch 1 of epoch 0 (samples [4, 5, 6, 7]) could not be collated: field `image` has shape \
                 [1, 5, 4] in sample 2 of the batch but [1, 4, 4] in sample 0; crop, pad or \
                 resample the samples to one shape"
            );
            assert!(matches!(
                err,
                LoaderError::Collate {
                    cause: CollateError::Shape { position: 2, .. },
                    ..
                }
            ));
        }
    });
}

#[test]
fn invalid_configurations_are_rejected() {
    let data = || FnDataset::new(3, |i| Ok(record(i)));
    let zero_batch = LoaderConfig::builder().batch_size(0).build();
    let err = Loader::new(data(), SequentialSampler::new(3), zero_batch)
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "invalid loader configuration: `batch_size` is 0; set it to 1 or more"
    );
    let zero_prefetch = LoaderConfig::builder()
        .batch_size(2)
        .workers(2)
        .prefetch(0)
        .build();
    let err = Loader::new(data(), SequentialSampler::new(3), zero_prefetch)
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "invalid loader configuration: `prefetch` is 0 with 2 workers; set it to 1 or more"
    );
}

#[test]
fn a_lazy_subset_loads_only_its_samples_once_per_epoch() {
    within(GUARD, || {
        let loads: Arc<Vec<AtomicUsize>> = Arc::new((0..20).map(|_| AtomicUsize::new(0)).collect());
        let counted = Arc::clone(&loads);
        let lazy = LazyDataset::new((0..20).collect::<Vec<usize>>(), move |&i: &usize| {
            counted[i].fetch_add(1, Ordering::SeqCst);
            Ok(record(i))
        });
        let chosen = vec![17, 3, 8, 11, 2];
        let subset = lazy.subset(chosen.clone()).unwrap();
        assert!(loads.iter().all(|n| n.load(Ordering::SeqCst) == 0));
        let loader = Loader::new(subset, SequentialSampler::new(5), config(2, 2)).unwrap();
        for epoch in 0..2 {
            let batches: Vec<Batch> = loader.epoch(epoch).map(Result::unwrap).collect();
            let order: Vec<usize> = batches.iter().flat_map(|b| b.indices().to_vec()).collect();
            assert_eq!(order, [0, 1, 2, 3, 4], "batches carry the subset's indices");
            let ids: Vec<String> = batches
                .iter()
                .flat_map(|b| b.text("id").unwrap().to_vec())
                .collect();
            assert_eq!(ids, ["s17", "s3", "s8", "s11", "s2"]);
        }
        let counts: Vec<usize> = loads.iter().map(|n| n.load(Ordering::SeqCst)).collect();
        for (i, count) in counts.iter().enumerate() {
            assert_eq!(
                *count,
                if chosen.contains(&i) { 2 } else { 0 },
                "sample {i}"
            );
        }
    });
}

#[test]
fn a_cached_dataset_loads_each_sample_once_across_workers_and_epochs() {
    within(GUARD, || {
        let loads = Arc::new(Mutex::new(vec![0_usize; 12]));
        let counted = Arc::clone(&loads);
        let data = FnDataset::new(12, move |i| {
            counted.lock().unwrap()[i] += 1;
            Ok(record(i))
        })
        .cached(delira::data::CacheBudget::Unlimited);
        let loader = Loader::new(Arc::new(data), Shuffled(12), config(3, 4)).unwrap();
        let first = collect_epoch(&loader, 0);
        let again = collect_epoch(&loader, 0);
        assert_eq!(first, again);
        collect_epoch(&loader, 1);
        assert_eq!(*loads.lock().unwrap(), vec![1; 12]);
        let stats = loader.dataset().stats();
        assert_eq!((stats.loads, stats.hits, stats.entries), (12, 24, 12));
    });
}

#[test]
fn a_panic_in_the_dataset_names_the_sample_and_epoch() {
    within(GUARD, || {
        for workers in [0, 3] {
            let data = FnDataset::new(12, |i| {
                assert!(i != 7, "voxel data ends early");
                Ok(record(i))
            });
            let loader = Loader::new(data, SequentialSampler::new(12), config(3, workers)).unwrap();
            let out: Vec<_> = loader.epoch(3).collect();
            assert_eq!(out.len(), 3);
            assert_eq!(
                out[2].as_ref().unwrap_err().to_string(),
                "sample 7 (batch 2 of epoch 3) panicked: voxel data ends early"
            );
        }
    });
}

#[test]
fn a_resumed_epoch_repeats_the_remaining_batches_exactly() {
    within(GUARD, || {
        for workers in [0, 2] {
            let data = FnDataset::new(17, |i| Ok(record(i)));
            let loader = Loader::new(data, Shuffled(17), config(4, workers))
                .unwrap()
                .with_transform(noisy_flip);
            let whole = collect_epoch(&loader, 2);
            let rest: Vec<Batch> = loader.epoch_from(2, 3).map(Result::unwrap).collect();
            assert_eq!(rest, whole[3..]);
            assert_eq!(loader.epoch_from(2, 9).count(), 0);
        }
    });
}
