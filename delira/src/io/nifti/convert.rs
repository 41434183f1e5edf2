//! Turning stored voxel bytes into typed values, real values (`f32`) and labels (`u16`).

use super::header::{DataType, Endian};

/// A number type as NIfTI stores it.
pub(crate) trait Stored: Copy {
    const SIZE: usize;

    fn from_le(bytes: &[u8]) -> Self;

    fn from_be(bytes: &[u8]) -> Self;

    /// The exact value (64-bit integers round to the nearest `f64`, as in nibabel).
    fn to_f64(self) -> f64;

    /// The value rounded to `f32`, as if through [`Stored::to_f64`].
    fn to_f32(self) -> f32 {
        self.to_f64() as f32
    }

    /// The value as a label, when it is one.
    fn to_label(self) -> Option<u16>;
}

macro_rules! stored {
    ($($t:ty: $n:literal, $f32:expr, $label:expr;)*) => {$(
        impl Stored for $t {
            const SIZE: usize = $n;

            #[inline(always)]
            fn from_le(bytes: &[u8]) -> Self {
                let mut raw = [0; $n];
                raw.copy_from_slice(bytes);
                <$t>::from_le_bytes(raw)
            }

            #[inline(always)]
            fn from_be(bytes: &[u8]) -> Self {
                let mut raw = [0; $n];
                raw.copy_from_slice(bytes);
                <$t>::from_be_bytes(raw)
            }

            // 64-bit integers have no lossless conversion; one form serves every type.
            #[allow(clippy::cast_lossless)]
            #[inline(always)]
            fn to_f64(self) -> f64 {
                self as f64
            }

            #[inline(always)]
            fn to_f32(self) -> f32 {
                let direct: fn($t) -> f32 = $f32;
                direct(self)
            }

            #[inline(always)]
            fn to_label(self) -> Option<u16> {
                let label: fn($t) -> Option<u16> = $label;
                label(self)
            }
        }
    )*};
}

// Types that `f32` holds exactly convert directly (the fast path for the common int16 and
// uint8); the others through `f64`, so that rounding matches nibabel's `get_fdata()`.
stored! {
    u8: 1, f32::from, |v| Some(u16::from(v));
    i8: 1, f32::from, |v| u16::try_from(v).ok();
    i16: 2, f32::from, |v| u16::try_from(v).ok();
    u16: 2, f32::from, Some;
    i32: 4, |v| f64::from(v) as f32, |v| u16::try_from(v).ok();
    u32: 4, |v| f64::from(v) as f32, |v| u16::try_from(v).ok();
    i64: 8, |v| v as f64 as f32, |v| u16::try_from(v).ok();
    u64: 8, |v| v as f64 as f32, |v| u16::try_from(v).ok();
    f32: 4, |v| v, float_label;
    f64: 8, |v| v as f32, float_label;
}

fn float_label<T: Into<f64>>(v: T) -> Option<u16> {
    let v: f64 = v.into();
    (v.fract() == 0.0 && (0.0..=65535.0).contains(&v)).then_some(v as u16)
}

fn decode<T: Stored>(bytes: &[u8], endian: Endian) -> Vec<T> {
    let chunks = bytes.chunks_exact(T::SIZE);
    match endian {
        Endian::Little => chunks.map(T::from_le).collect(),
        Endian::Big => chunks.map(T::from_be).collect(),
    }
}

/// Decodes the stored values of one scalar type.
pub(crate) fn values<T: Stored>(bytes: &[u8], endian: Endian) -> Vec<T> {
    decode(bytes, endian)
}

/// Decodes `N`-component voxels (colours, complex numbers) whose components are of type `T`.
pub(crate) fn tuples<T: Stored + Default, const N: usize>(
    bytes: &[u8],
    endian: Endian,
) -> Vec<[T; N]> {
    bytes
        .chunks_exact(T::SIZE * N)
        .map(|voxel| {
            let mut out = [T::default(); N];
            for (o, c) in out.iter_mut().zip(voxel.chunks_exact(T::SIZE)) {
                *o = match endian {
                    Endian::Little => T::from_le(c),
                    Endian::Big => T::from_be(c),
                };
            }
            out
        })
        .collect()
}

fn real<T: Stored>(bytes: &[u8], endian: Endian, scaling: Option<(f64, f64)>) -> Vec<f32> {
    let chunks = bytes.chunks_exact(T::SIZE);
    match (endian, scaling) {
        (Endian::Little, None) => chunks.map(|c| T::from_le(c).to_f32()).collect(),
        (Endian::Big, None) => chunks.map(|c| T::from_be(c).to_f32()).collect(),
        (Endian::Little, Some((slope, inter))) => chunks
            .map(|c| (T::from_le(c).to_f64() * slope + inter) as f32)
            .collect(),
        (Endian::Big, Some((slope, inter))) => chunks
            .map(|c| (T::from_be(c).to_f64() * slope + inter) as f32)
            .collect(),
    }
}

/// Real values: the scaling applied in `f64`, then rounded to `f32`. `None` for colours and
/// complex numbers, which have no single real value.
pub(crate) fn to_real(
    bytes: &[u8],
    datatype: DataType,
    endian: Endian,
    scaling: Option<(f64, f64)>,
) -> Option<Vec<f32>> {
    Some(match datatype {
        DataType::U8 => real::<u8>(bytes, endian, scaling),
        DataType::I8 => real::<i8>(bytes, endian, scaling),
        DataType::I16 => real::<i16>(bytes, endian, scaling),
        DataType::U16 => real::<u16>(bytes, endian, scaling),
        DataType::I32 => real::<i32>(bytes, endian, scaling),
        DataType::U32 => real::<u32>(bytes, endian, scaling),
        DataType::I64 => real::<i64>(bytes, endian, scaling),
        DataType::U64 => real::<u64>(bytes, endian, scaling),
        DataType::F32 => real::<f32>(bytes, endian, scaling),
        DataType::F64 => real::<f64>(bytes, endian, scaling),
        DataType::Complex64 | DataType::Complex128 | DataType::Rgb24 | DataType::Rgba32 => {
            return None;
        }
    })
}

/// A voxel that is not a label: its index in file order and its (scaled) value.
pub(crate) struct NotALabel {
    pub index: usize,
    pub value: f64,
}

fn labels_of<T: Stored>(
    bytes: &[u8],
    endian: Endian,
    scaling: Option<(f64, f64)>,
) -> Result<Vec<u16>, NotALabel> {
    let mut out = Vec::with_capacity(bytes.len() / T::SIZE);
    for (index, c) in bytes.chunks_exact(T::SIZE).enumerate() {
        let v = match endian {
            Endian::Little => T::from_le(c),
            Endian::Big => T::from_be(c),
        };
        let label = match scaling {
            None => v.to_label(),
            Some((slope, inter)) => float_label(v.to_f64() * slope + inter),
        };
        let Some(label) = label else {
            let value = match scaling {
                None => v.to_f64(),
                Some((slope, inter)) => v.to_f64() * slope + inter,
            };
            return Err(NotALabel { index, value });
        };
        out.push(label);
    }
    Ok(out)
}

/// Labels: every (scaled) value must be an integer from 0 to 65535. `None` for colours and
/// complex numbers.
pub(crate) fn to_labels(
    bytes: &[u8],
    datatype: DataType,
    endian: Endian,
    scaling: Option<(f64, f64)>,
) -> Option<Result<Vec<u16>, NotALabel>> {
    Some(match datatype {
        DataType::U8 => labels_of::<u8>(bytes, endian, scaling),
        DataType::I8 => labels_of::<i8>(bytes, endian, scaling),
        DataType::I16 => labels_of::<i16>(bytes, endian, scaling),
        DataType::U16 => labels_of::<u16>(bytes, endian, scaling),
        DataType::I32 => labels_of::<i32>(bytes, endian, scaling),
        DataType::U32 => labels_of::<u32>(bytes, endian, scaling),
        DataType::I64 => labels_of::<i64>(bytes, endian, scaling),
        DataType::U64 => labels_of::<u64>(bytes, endian, scaling),
        DataType::F32 => labels_of::<f32>(bytes, endian, scaling),
        DataType::F64 => labels_of::<f64>(bytes, endian, scaling),
        DataType::Complex64 | DataType::Complex128 | DataType::Rgb24 | DataType::Rgba32 => {
            return None;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractional_scaling_of_integers_is_kept() {
        let bytes: Vec<u8> = [3i16, -2].iter().flat_map(|v| v.to_le_bytes()).collect();
        let real = to_real(&bytes, DataType::I16, Endian::Little, Some((0.5, 0.25))).unwrap();
        assert_eq!(real, [1.75, -0.75]);
    }

    #[test]
    fn big_endian_values_are_swapped() {
        let bytes: Vec<u8> = [258i32, -1].iter().flat_map(|v| v.to_be_bytes()).collect();
        assert_eq!(values::<i32>(&bytes, Endian::Big), [258, -1]);
        assert_eq!(
            to_real(&bytes, DataType::I32, Endian::Big, None).unwrap(),
            [258.0, -1.0]
        );
    }

    #[test]
    fn labels_reject_fractions_negatives_and_nan() {
        let floats = |v: &[f32]| -> Vec<u8> { v.iter().flat_map(|v| v.to_le_bytes()).collect() };
        let ok = to_labels(
            &floats(&[0.0, 3.0, 65535.0]),
            DataType::F32,
            Endian::Little,
            None,
        );
        assert_eq!(ok.unwrap().ok(), Some(vec![0, 3, 65535]));
        for (bad, index) in [
            (vec![1.0, 2.5], 1),
            (vec![-1.0], 0),
            (vec![0.0, 0.0, f32::NAN], 2),
        ] {
            let err = to_labels(&floats(&bad), DataType::F32, Endian::Little, None)
                .unwrap()
                .unwrap_err();
            assert_eq!(err.index, index);
        }
        let ints: Vec<u8> = [5i32, 70000].iter().flat_map(|v| v.to_le_bytes()).collect();
        let err = to_labels(&ints, DataType::I32, Endian::Little, None)
            .unwrap()
            .unwrap_err();
        assert_eq!((err.index, err.value), (1, 70000.0));
    }
}
