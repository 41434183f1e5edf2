//! Dataset wrappers: lazy, cached (with a memory budget), subset, concat, map.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use delira::data::{ByteSize, CacheBudget, DataError, Dataset, DatasetExt, FnDataset, LazyDataset};

/// A lazy dataset of 10 items whose sample `i` is 100 floats of value `i` (424 bytes by
/// [`ByteSize`]), counting the loads of each item.
fn counted() -> (impl Dataset<Item = Vec<f32>>, Arc<Vec<AtomicUsize>>) {
    let loads: Arc<Vec<AtomicUsize>> = Arc::new((0..10).map(|_| AtomicUsize::new(0)).collect());
    let counter = Arc::clone(&loads);
    let data = LazyDataset::new((0..10).collect::<Vec<usize>>(), move |&i: &usize| {
        counter[i].fetch_add(1, Ordering::SeqCst);
        Ok(vec![i as f32; 100])
    });
    (data, loads)
}

fn counts(loads: &[AtomicUsize]) -> Vec<usize> {
    loads.iter().map(|n| n.load(Ordering::SeqCst)).collect()
}

#[test]
fn a_sample_of_a_hundred_floats_has_a_known_size() {
    assert_eq!(vec![0.0_f32; 100].byte_size(), 24 + 400);
}

#[test]
fn a_lazy_dataset_loads_on_every_access() {
    let (data, loads) = counted();
    assert_eq!(counts(&loads), [0; 10]);
    assert_eq!(data.get(3).unwrap(), vec![3.0; 100]);
    data.get(3).unwrap();
    assert_eq!(counts(&loads), [0, 0, 0, 2, 0, 0, 0, 0, 0, 0]);
    assert_eq!(
        data.get(10).unwrap_err().to_string(),
        "index 10 is out of range for a dataset of 10 samples"
    );
}

#[test]
fn a_subset_of_a_lazy_dataset_stays_lazy() {
    let (data, loads) = counted();
    let subset = data.subset(vec![7, 2, 7]).unwrap();
    assert_eq!(counts(&loads), [0; 10], "building a subset loads nothing");
    assert_eq!(subset.len(), 3);
    assert_eq!(subset.get(1).unwrap(), vec![2.0; 100]);
    assert_eq!(subset.get(2).unwrap(), vec![7.0; 100]);
    assert_eq!(counts(&loads), [0, 0, 1, 0, 0, 0, 0, 1, 0, 0]);

    let err = counted().0.subset(vec![0, 12, 3]).err().unwrap();
    assert!(matches!(err, DataError::OutOfRange { index: 12, len: 10 }));
}

#[test]
fn a_cache_over_budget_fails_with_the_sizes() {
    let (data, loads) = counted();
    // Room for two samples of 424 bytes.
    let cached = data.cached(CacheBudget::ErrorAbove(1000));
    cached.get(0).unwrap();
    cached.get(1).unwrap();
    cached.get(0).unwrap();
    let err = cached.get(2).unwrap_err();
    assert_eq!(
        err.to_string(),
        "caching sample 2 (424 bytes) would exceed the cache budget of 1000 bytes (848 bytes in \
         use); raise the budget or use `CacheBudget::EvictAbove`"
    );
    // The failed sample is not kept; the kept ones are still answered from memory.
    cached.get(1).unwrap();
    assert_eq!(counts(&loads), [1, 1, 1, 0, 0, 0, 0, 0, 0, 0]);
    let stats = cached.stats();
    assert_eq!(
        (stats.loads, stats.hits, stats.entries, stats.bytes),
        (3, 2, 2, 848)
    );

    let tiny = counted().0.cached(CacheBudget::EvictAbove(100));
    assert_eq!(
        tiny.get(4).unwrap_err().to_string(),
        "sample 4 (424 bytes) is larger than the whole cache budget of 100 bytes; raise the \
         budget or leave this dataset uncached"
    );
}

#[test]
fn a_cache_evicts_the_least_recently_used() {
    let (data, loads) = counted();
    let cached = data.cached(CacheBudget::EvictAbove(1000));
    for i in [0, 1, 0, 2, 1, 2, 0] {
        assert_eq!(cached.get(i).unwrap(), vec![i as f32; 100]);
    }
    // 0 load, 1 load, 0 hit, 2 load (evicts 1), 1 load (evicts 0), 2 hit, 0 load (evicts 2).
    assert_eq!(counts(&loads), [2, 2, 1, 0, 0, 0, 0, 0, 0, 0]);
    let stats = cached.stats();
    assert_eq!(
        (
            stats.loads,
            stats.hits,
            stats.evictions,
            stats.entries,
            stats.bytes
        ),
        (5, 2, 3, 2, 848)
    );
}

#[test]
fn an_unlimited_cache_loads_each_sample_once_across_threads() {
    let (data, loads) = counted();
    let cached = data.cached(CacheBudget::Unlimited);
    std::thread::scope(|scope| {
        for t in 0..4 {
            let cached = &cached;
            scope.spawn(move || {
                for k in 0..30 {
                    let i = (k * (t + 1)) % 10;
                    assert_eq!(cached.get(i).unwrap()[0], i as f32);
                }
            });
        }
    });
    assert_eq!(counts(&loads), [1; 10]);
    assert_eq!(cached.stats().hits, 4 * 30 - 10);
}

#[test]
fn concat_maps_indices_exactly() {
    let a = FnDataset::new(3, |i| Ok(format!("a{i}")));
    let b = FnDataset::new(4, |i| Ok(format!("b{i}")));
    let c = FnDataset::new(2, |i| Ok(format!("c{i}")));
    let all = a.concat(b).concat(c);
    assert_eq!(all.len(), 9);
    let names: Vec<String> = (0..9).map(|i| all.get(i).unwrap()).collect();
    assert_eq!(
        names,
        ["a0", "a1", "a2", "b0", "b1", "b2", "b3", "c0", "c1"]
    );
    assert!(matches!(
        all.get(9),
        Err(DataError::OutOfRange { index: 9, len: 9 })
    ));
}

#[test]
fn map_applies_a_fallible_function() {
    let (data, loads) = counted();
    let sums = data.map(|v: Vec<f32>| {
        let total: f32 = v.iter().sum();
        if total > 500.0 {
            Err(DataError::msg(format!("sum {total} is above 500")))
        } else {
            Ok(total)
        }
    });
    assert_eq!(sums.len(), 10);
    assert_eq!(sums.get(4).unwrap(), 400.0);
    assert_eq!(sums.get(6).unwrap_err().to_string(), "sum 600 is above 500");
    assert_eq!(counts(&loads), [0, 0, 0, 0, 1, 0, 1, 0, 0, 0]);
}

#[test]
fn wrappers_compose_and_keep_the_inner_index_in_errors() {
    let failing = LazyDataset::new(vec!["ok", "ok", "missing"], |name: &&str| {
        if *name == "missing" {
            Err(DataError::msg("file not found"))
        } else {
            Ok(name.len())
        }
    });
    let view = failing.subset(vec![2, 0]).unwrap().map(|n| Ok(n * 10));
    assert_eq!(view.get(1).unwrap(), 20);
    assert_eq!(
        view.get(0).unwrap_err().to_string(),
        "subset at inner index 2: file not found"
    );
}
