#!/usr/bin/env python3
"""Writes tests/suite/reference/sklearn_splits.json: scikit-learn's folds for fixed inputs.

The Rust suite compares delira's unshuffled k-fold, stratified, grouped, and stratified grouped
k-fold against this file, so the test suite itself needs no Python. Regenerate with:

    python3 -m venv .venv && .venv/bin/pip install scikit-learn
    .venv/bin/python scripts/reference/sklearn_splits.py
"""

import json
import pathlib

import numpy as np
import sklearn
from sklearn.model_selection import GroupKFold, KFold, StratifiedGroupKFold, StratifiedKFold


def folds(splitter, n, **kw):
    x = np.zeros((n, 1))
    return [sorted(int(i) for i in test) for _, test in splitter.split(x, **kw)]


def main():
    rng = np.random.default_rng(20261204)
    cases = []
    for n, k in [(7, 3), (10, 5), (23, 4), (50, 7)]:
        cases.append({"kind": "k_fold", "k": k, "n": n, "test": folds(KFold(k), n)})
    for case in range(12):
        k = int(rng.integers(2, 6))
        classes = int(rng.integers(2, 5))
        n = int(rng.integers(k * classes, 80))
        while True:
            y = rng.integers(0, classes, size=n)
            if np.bincount(y, minlength=classes).min() >= k:
                break
        test = folds(StratifiedKFold(k), n, y=y)
        cases.append({"kind": "stratified", "k": k, "labels": y.tolist(), "test": test})
    for case in range(12):
        k = int(rng.integers(2, 6))
        n = int(rng.integers(k * 3, 80))
        groups = rng.integers(0, int(rng.integers(k, 20)), size=n)
        if len(np.unique(groups)) < k:
            continue
        test = folds(GroupKFold(k), n, groups=groups)
        cases.append({"kind": "grouped", "k": k, "groups": groups.tolist(), "test": test})

    for case in range(12):
        k = int(rng.integers(2, 5))
        n = int(rng.integers(30, 90))
        groups = rng.integers(0, int(rng.integers(k + 2, 25)), size=n)
        # Labels that depend partly on the group, as diagnoses do on patients.
        y = np.where(rng.random(n) < 0.6, groups % 3, rng.integers(0, 3, size=n))
        if len(np.unique(groups)) < k or np.bincount(y, minlength=3).min() < k:
            continue
        test = folds(StratifiedGroupKFold(k), n, y=y, groups=groups)
        cases.append(
            {
                "kind": "stratified_grouped",
                "k": k,
                "labels": y.tolist(),
                "groups": groups.tolist(),
                "test": test,
            }
        )

    out = pathlib.Path(__file__).resolve().parents[2] / "tests/suite/reference/sklearn_splits.json"
    doc = {"scikit_learn": sklearn.__version__, "cases": cases}
    out.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
    print(f"{len(cases)} cases written to {out}")


if __name__ == "__main__":
    main()
