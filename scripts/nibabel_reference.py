#!/usr/bin/env python3
"""What nibabel reads from NIfTI files: the reference for delira's reader.

    nibabel_reference.py DATA_DIR OUT_DIR   reference for every .nii/.nii.gz under DATA_DIR's
                                            nibabel/, mni/ and colin27/ folders
    nibabel_reference.py --dump FILE        one file as JSON on stdout, voxels included (for the
                                            tests that check that nibabel reads what delira wrote)

For each file, OUT_DIR/<folder>__<file>.json holds the shape, the affine (full float precision),
the on-disk datatype, the scaling and the name of a raw little-endian voxel file holding
`get_fdata()` in Fortran (file) order, stored in the smallest of uint8, int16, float32 and
float64 that holds every value exactly.
"""

import json
import pathlib
import sys

import nibabel as nib
import numpy as np

FOLDERS = ("nibabel", "mni", "colin27")
EXACT_TYPES = (("u8", np.uint8), ("i16", np.int16), ("f32", np.float32), ("f64", np.float64))


def describe(path):
    img = nib.load(str(path))
    header = img.header
    # nibabel moves the scaling from the header into the array proxy when it loads a file.
    slope, inter = img.dataobj.slope, img.dataobj.inter
    return img, {
        "shape": [int(n) for n in img.shape],
        "affine": img.affine.tolist(),
        "datatype": header.get_data_dtype().name,
        "slope": float(slope),
        "inter": float(inter),
        "sform_code": int(header["sform_code"]),
        "qform_code": int(header["qform_code"]),
        "nifti2": isinstance(img, nib.Nifti2Image),
    }


def exact_type(values):
    for name, dtype in EXACT_TYPES:
        converted = values.astype(dtype)
        if np.array_equal(converted.astype(np.float64), values, equal_nan=True):
            return name, converted
    raise AssertionError("float64 always holds float64")


def reference(data_dir, out_dir):
    out_dir.mkdir(parents=True, exist_ok=True)
    count = 0
    for folder in FOLDERS:
        for path in sorted((data_dir / folder).glob("*.nii*")):
            img, info = describe(path)
            values = np.asarray(img.get_fdata(), dtype=np.float64)
            name, stored = exact_type(values)
            stem = f"{folder}__{path.name}"
            stored.ravel(order="F").astype(stored.dtype.newbyteorder("<")).tofile(
                out_dir / f"{stem}.{name}"
            )
            info.update(file=f"{folder}/{path.name}", voxels=f"{stem}.{name}", voxel_type=name)
            (out_dir / f"{stem}.json").write_text(json.dumps(info, indent=1))
            count += 1
    print(f"nibabel_reference: {count} references in {out_dir}")


def dump(path):
    img, info = describe(path)
    values = np.asarray(img.get_fdata(), dtype=np.float64)
    # JSON has no NaN or infinity: those go as the strings "nan", "inf" and "-inf".
    info["voxels"] = [float(v) if np.isfinite(v) else str(v) for v in values.ravel(order="F")]
    info["qform"] = img.header.get_qform().tolist()
    info["sform"] = img.header.get_sform().tolist()
    json.dump(info, sys.stdout)


def main(argv):
    if len(argv) == 3 and argv[1] == "--dump":
        dump(pathlib.Path(argv[2]))
    elif len(argv) == 3:
        reference(pathlib.Path(argv[1]), pathlib.Path(argv[2]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
