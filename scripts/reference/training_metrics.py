"""Reference values for tests/suite/training_metrics.rs, computed once and pasted as literals.

Run: .venv-ref/bin/python scripts/reference/training_metrics.py (scikit-learn, numpy, scipy).
The surface-distance part follows MONAI's recipe (edges = mask ^ binary_erosion(mask),
distance_transform_edt with sampling = spacing, percentile 95 per direction, max) without
needing MONAI itself.
"""
import numpy as np
from scipy import ndimage
from sklearn import metrics

rng = np.random.default_rng(7)
n, k = 37, 4
truth = rng.integers(0, k, n)
pred = np.where(rng.random(n) < 0.6, truth, rng.integers(0, k, n))
print("truth", list(truth))
print("pred", list(pred))
print("accuracy", repr(metrics.accuracy_score(truth, pred)))
print("balanced", repr(metrics.balanced_accuracy_score(truth, pred)))
for avg in ["macro", "micro", "weighted"]:
    p, r, f, _ = metrics.precision_recall_fscore_support(truth, pred, average=avg, zero_division=0)
    print(avg, repr(p), repr(r), repr(f))
p, r, f, s = metrics.precision_recall_fscore_support(truth, pred, average=None, zero_division=0)
print("per-class p", [repr(x) for x in p])
print("per-class r", [repr(x) for x in r])
print("per-class f", [repr(x) for x in f])
print("confusion", metrics.confusion_matrix(truth, pred).tolist())

# Binary AUC with ties: scores rounded to one decimal.
yb = rng.integers(0, 2, 30)
sb = np.round(rng.random(30) * 0.6 + 0.3 * yb, 1)
print("binary truth", list(yb))
print("binary scores", [repr(x) for x in sb])
print("binary auc", repr(metrics.roc_auc_score(yb, sb)))

# One-vs-rest macro AUC.
logits = rng.normal(size=(n, k)) + 1.5 * np.eye(k)[truth]
probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
np.set_printoptions(precision=17)
print("ovr probs", [[repr(float(x)) for x in row] for row in probs])
print("ovr auc", repr(metrics.roc_auc_score(truth, probs, multi_class="ovr", average="macro")))

# Surface distances on a random 3D case.
shape, spacing = (12, 10, 8), (1.5, 0.8, 2.0)
def blob(seed):
    field = ndimage.gaussian_filter(np.random.default_rng(seed).random(shape), 1.5)
    return field > np.quantile(field, 0.7)
a, b = blob(1), blob(2)
def edges(m):
    return m ^ ndimage.binary_erosion(m)
def directed(x, y):
    dist = ndimage.distance_transform_edt(~edges(y), sampling=spacing)
    return dist[edges(x)]
d_pt, d_tp = directed(b, a), directed(a, b)
print("mask truth", "".join("1" if v else "0" for v in a.ravel()))
print("mask pred", "".join("1" if v else "0" for v in b.ravel()))
print("hd95", repr(max(np.percentile(d_pt, 95), np.percentile(d_tp, 95))))
print("assd pooled", repr((d_pt.sum() + d_tp.sum()) / (d_pt.size + d_tp.size)))
print("surface counts", d_pt.size, d_tp.size)
edt = ndimage.distance_transform_edt(~a, sampling=spacing)
print("edt sum", repr(edt.sum()), "edt max", repr(edt.max()))
