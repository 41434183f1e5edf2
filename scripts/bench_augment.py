"""Times the batchgenerators, MONAI and numpy equivalents of benches/augment.rs on one core.

Prints one JSON object: {"<library>/<pipeline>": seconds per sample (median), ...}, measured as
process CPU time (time.process_time) with every library limited to one thread, as the criterion
bench measures delira, so that other load on the machine does not distort the ratios.
Run through scripts/bench-augment, which sets the thread limits and compares with delira.
"""

import json
import sys
import time

import numpy as np

N = 128
REPEATS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
ANGLE = np.deg2rad(15.0)
SCALE = (0.85, 1.25)


def sample(rng):
    """The same volume as benches/augment.rs: a smooth image and a two-class sphere label."""
    x, y, z = np.meshgrid(*(np.arange(N, dtype=np.float32),) * 3, indexing="ij")
    image = np.sin(x * 0.05) * 100 + np.cos(y * 0.07) * 50 + z * 0.3 + 200
    d2 = (x - 64) ** 2 + (y - 64) ** 2 + (z - 64) ** 2
    label = (d2 < 40 * 40).astype(np.uint8) + (d2 < 20 * 20).astype(np.uint8)
    return image[None].astype(np.float32), label[None]


def median_time(fn, repeats=REPEATS, setup=None):
    start = time.process_time()
    fn()  # warm-up (imports, caches, first allocations)
    if time.process_time() - start > 10.0:
        repeats = min(repeats, 2)  # MONAI's elastic takes about a minute per sample
    times = []
    for _ in range(repeats):
        if setup is not None:
            setup()
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return float(np.median(times))


def batchgenerators_timings(image, label, results):
    from batchgenerators.transforms.abstract_transforms import Compose
    from batchgenerators.transforms.color_transforms import GammaTransform
    from batchgenerators.transforms.noise_transforms import GaussianNoiseTransform
    from batchgenerators.transforms.sample_normalization_transforms import (
        ZeroMeanUnitVarianceTransform,
    )
    from batchgenerators.transforms.spatial_transforms import MirrorTransform, SpatialTransform

    def spatial(elastic):
        return SpatialTransform(
            patch_size=(N, N, N),
            patch_center_dist_from_border=None,
            do_elastic_deform=elastic,
            alpha=(0.0, 200.0),
            sigma=(9.0, 13.0),
            do_rotation=True,
            angle_x=(-ANGLE, ANGLE),
            angle_y=(-ANGLE, ANGLE),
            angle_z=(-ANGLE, ANGLE),
            do_scale=True,
            scale=SCALE,
            border_mode_data="constant",
            border_cval_data=0,
            order_data=1,
            border_mode_seg="constant",
            border_cval_seg=0,
            order_seg=0,
            random_crop=False,
        )

    pipelines = {
        "a": Compose([spatial(True), MirrorTransform(axes=(0, 1, 2))]),
        "b": Compose([spatial(False)]),
        "c": Compose(
            [
                ZeroMeanUnitVarianceTransform(per_channel=True),
                GammaTransform(gamma_range=(0.7, 1.5), retain_stats=False),
                GaussianNoiseTransform(noise_variance=(0.01, 0.01)),
            ]
        ),
    }
    batch = {}

    def fresh():
        # untimed, as delira's bench clones its sample outside the timing: batchgenerators
        # changes its input in place (mirroring, intensity), so each call gets new arrays
        batch["data"] = image[None].copy()
        batch["seg"] = label[None].astype(np.float32)

    for name, pipeline in pipelines.items():

        def run():
            out = pipeline(data=batch["data"], seg=batch["seg"])
            if name == "c":  # batchgenerators has no fixed-bounds clip; numpy does it
                np.clip(out["data"], -3, 3, out=out["data"])

        fresh()
        results[f"batchgenerators/{name}"] = median_time(run, setup=fresh)


def monai_timings(image, label, results):
    import torch
    from monai.transforms import (
        Compose,
        Lambdad,
        NormalizeIntensityd,
        Rand3DElasticd,
        RandAdjustContrastd,
        RandAffined,
        RandFlipd,
        RandGaussianNoised,
    )
    from monai.utils import set_determinism

    torch.set_num_threads(1)
    set_determinism(0)
    keys = ["image", "label"]
    modes = ("bilinear", "nearest")
    flips = [RandFlipd(keys, prob=0.5, spatial_axis=a) for a in range(3)]
    pipelines = {
        "a": Compose(
            [
                Rand3DElasticd(
                    keys,
                    sigma_range=(9.0, 13.0),
                    magnitude_range=(0.0, 200.0),
                    prob=1.0,
                    rotate_range=(ANGLE,) * 3,
                    scale_range=((SCALE[0] - 1, SCALE[1] - 1),) * 3,
                    mode=modes,
                    padding_mode="zeros",
                ),
                *flips,
            ]
        ),
        "b": Compose(
            [
                RandAffined(
                    keys,
                    prob=1.0,
                    rotate_range=(ANGLE,) * 3,
                    scale_range=((SCALE[0] - 1, SCALE[1] - 1),) * 3,
                    mode=modes,
                    padding_mode="zeros",
                )
            ]
        ),
        "c": Compose(
            [
                NormalizeIntensityd(keys="image"),
                RandAdjustContrastd(keys="image", prob=1.0, gamma=(0.7, 1.5)),
                RandGaussianNoised(keys="image", prob=1.0, std=0.1),
                Lambdad(keys="image", func=lambda x: x.clamp(-3, 3)),
            ]
        ),
    }
    for name, pipeline in pipelines.items():
        results[f"monai/{name}"] = median_time(
            lambda: pipeline({"image": torch.from_numpy(image), "label": torch.from_numpy(label)})
        )


def numpy_timings(image, results):
    rng = np.random.default_rng(0)
    x = image.copy()

    def zscore():
        np.subtract(x, x.mean(), out=x)
        np.divide(x, x.std(), out=x)

    def gamma():
        lo, hi = x.min(), x.max()
        u = (x - lo) / (hi - lo)
        np.power(u, np.float32(1.2), out=u)
        np.multiply(u, hi - lo, out=u)
        np.add(u, lo, out=x)

    def noise():
        x.__iadd__(rng.standard_normal(x.shape, dtype=np.float32) * np.float32(0.1))

    def clip():
        np.clip(x, -3, 3, out=x)

    def fresh():
        x[...] = image  # each sample starts from new data, as in delira's bench

    total = 0.0
    for name, op in [("zscore", zscore), ("gamma", gamma), ("noise", noise), ("clip", clip)]:
        fresh()
        t = median_time(op, repeats=max(REPEATS, 10), setup=fresh)
        results[f"numpy/{name}"] = t
        total += t
    results["numpy/c"] = total


def main():
    image, label = sample(np.random.default_rng(0))
    results = {}
    numpy_timings(image, results)
    batchgenerators_timings(image, label, results)
    monai_timings(image, label, results)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
