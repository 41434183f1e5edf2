//! Walking a transform tree over one sample: spatial steps are composed into one pending plan,
//! intensity steps into one pending chain; each is executed when the other kind comes next, and
//! both at the end.

use ndarray::{ArrayD, Axis, IxDyn};

use super::intensity::{self, Step, mix};
use super::plan::{self, Displacement, M4, SpatialPlan};
use super::resample::{self, Source};
use super::spec::{
    AffineSpec, CropMode, CropSpec, ElasticSpec, Interpolation, OneOfSpec, Rot90Spec, SpacingSpec,
    Transform,
};
use super::{AugmentError, Augmentable, SpatialField};
use crate::io::Affine;
use crate::random::Stream;

/// The largest output grid, in voxels per channel (2³², a 1625³ volume).
const MAX_VOXELS: u64 = 1 << 32;

/// The most control points per axis of an elastic deformation.
const MAX_CONTROL_POINTS: usize = plan::MAX_CONTROL_POINTS;

/// The number of nodes of a transform tree (the transform and everything inside it).
fn size(t: &Transform) -> u64 {
    match t {
        Transform::Sequence(ts) => 1 + ts.iter().map(size).sum::<u64>(),
        Transform::Maybe(m) => 1 + size(&m.transform),
        Transform::OneOf(o) => 1 + o.transforms.iter().map(size).sum::<u64>(),
        _ => 1,
    }
}

/// Runs `transforms` in order over a sample.
pub(crate) fn run<A: Augmentable + ?Sized>(
    transforms: &[Transform],
    interpolation: Interpolation,
    fill: f32,
    sample: &mut A,
    stream: &mut Stream,
) -> Result<(), AugmentError> {
    let base = stream.next_u64();
    let mut runner = Runner {
        fields: sample.spatial_fields(),
        plan: None,
        steps: Vec::new(),
        interpolation,
        fill,
        base,
    };
    if runner.fields.is_empty() {
        return Ok(());
    }
    runner.geometry()?;
    let mut id = 1;
    for t in transforms {
        runner.visit(t, id)?;
        id += size(t);
    }
    runner.flush_spatial();
    runner.flush_intensity();
    Ok(())
}

/// The shared grid of a sample in internal axes.
struct Geometry {
    shape: [usize; 3],
    spacing: [f64; 3],
}

struct Runner<'s> {
    fields: Vec<SpatialField<'s>>,
    plan: Option<SpatialPlan>,
    steps: Vec<Step>,
    interpolation: Interpolation,
    fill: f32,
    base: u64,
}

fn shape_of(field: &SpatialField<'_>) -> Vec<usize> {
    match field {
        SpatialField::Image(v) => v.spatial_shape().to_vec(),
        SpatialField::Labels(l) => l.0.spatial_shape().to_vec(),
    }
}

fn affine_of(field: &SpatialField<'_>) -> Affine {
    match field {
        SpatialField::Image(v) => *v.affine(),
        SpatialField::Labels(l) => *l.0.affine(),
    }
}

fn parameter(transform: &'static str, problem: impl Into<String>) -> AugmentError {
    AugmentError::Parameter {
        transform,
        problem: problem.into(),
    }
}

impl Runner<'_> {
    /// The grid of the sample, checking that every field shares the first field's shape.
    fn geometry(&self) -> Result<Geometry, AugmentError> {
        let expected = shape_of(&self.fields[0]);
        for (index, f) in self.fields.iter().enumerate().skip(1) {
            let found = shape_of(f);
            if found != expected {
                return Err(AugmentError::ShapeMismatch {
                    index,
                    expected,
                    found,
                });
            }
        }
        if expected.contains(&0) {
            return Err(AugmentError::Empty { shape: expected });
        }
        let ndim = expected.len();
        let spacing = affine_of(&self.fields[0]).spacing();
        let mut shape = [1; 3];
        let mut internal_spacing = [1.0; 3];
        for a in 0..ndim {
            shape[plan::internal_axis(ndim, a)] = expected[a];
            internal_spacing[plan::internal_axis(ndim, a)] = spacing[a];
        }
        if internal_spacing
            .iter()
            .any(|s| !(s.is_finite() && *s > 0.0))
        {
            return Err(AugmentError::Spacing {
                spacing: spacing[..ndim].to_vec(),
            });
        }
        Ok(Geometry {
            shape,
            spacing: internal_spacing,
        })
    }

    fn ndim(&self) -> usize {
        shape_of(&self.fields[0]).len()
    }

    fn visit(&mut self, t: &Transform, id: u64) -> Result<(), AugmentError> {
        let mut stream = Stream::from_seed(mix(self.base, id));
        tracing::trace!(node = id, "augment transform");
        match t {
            Transform::Sequence(ts) => {
                let mut child = id + 1;
                for t in ts {
                    self.visit(t, child)?;
                    child += size(t);
                }
            }
            Transform::Maybe(m) => {
                if !(0.0..=1.0).contains(&m.p) {
                    return Err(parameter(
                        "maybe",
                        format!("`p` must lie in [0, 1], got {}", m.p),
                    ));
                }
                if stream.bernoulli(m.p) {
                    self.visit(&m.transform, id + 1)?;
                }
            }
            Transform::OneOf(o) => {
                if let Some((k, offset)) = choose(o, &mut stream)? {
                    self.visit(&o.transforms[k], id + offset)?;
                }
            }
            Transform::Affine(spec) => self.affine(spec, &mut stream)?,
            Transform::Elastic(spec) => self.elastic(spec, &mut stream)?,
            Transform::Flip(_)
            | Transform::Rot90(_)
            | Transform::Pad(_)
            | Transform::Resize(_)
            | Transform::Zoom(_)
            | Transform::Spacing(_) => self.grid(t, &mut stream)?,
            Transform::Crop(spec) => self.crop(spec, &mut stream)?,
            intensity => {
                let step = self.intensity(intensity, &mut stream)?;
                if let Some(step) = step {
                    self.flush_spatial();
                    self.steps.push(step);
                }
            }
        }
        self.check_size()
    }

    /// Refuses an output grid too large to allocate, before anything is allocated.
    fn check_size(&self) -> Result<(), AugmentError> {
        let Some(plan) = &self.plan else {
            return Ok(());
        };
        let voxels = plan
            .shape
            .iter()
            .try_fold(1_u64, |acc, &n| acc.checked_mul(n as u64));
        if voxels.is_none_or(|v| v > MAX_VOXELS) {
            return Err(AugmentError::TooLarge {
                shape: plan.shape[3 - self.ndim()..].to_vec(),
                limit: MAX_VOXELS,
            });
        }
        Ok(())
    }

    /// The grid changes other than crops.
    fn grid(&mut self, t: &Transform, stream: &mut Stream) -> Result<(), AugmentError> {
        match t {
            Transform::Flip(spec) => {
                let ndim = self.ndim();
                let p = spec.p;
                for &axis in &spec.axes {
                    check_axis("flip", axis, ndim)?;
                    if stream.bernoulli(p) {
                        let plan = self.plan()?;
                        let a = plan::internal_axis(ndim, axis);
                        let mut m = plan::IDENTITY;
                        m[a][a] = -1.0;
                        m[a][3] = (plan.shape[a] - 1) as f64;
                        let shape = plan.shape;
                        plan.change_grid(&m, shape);
                    }
                }
            }
            Transform::Rot90(spec) => self.rot90(spec, stream)?,
            Transform::Pad(spec) => {
                let ndim = self.ndim();
                check_sizes("pad", &spec.size, ndim)?;
                let plan = self.plan()?;
                let mut offset = [0.0; 3];
                let mut shape = plan.shape;
                for (axis, &m) in spec.size.iter().enumerate() {
                    let a = plan::internal_axis(ndim, axis);
                    if m > shape[a] {
                        offset[a] = -(((m - shape[a]) / 2) as f64);
                        shape[a] = m;
                    }
                }
                plan.change_grid(&plan::translation(offset), shape);
            }
            Transform::Resize(spec) => {
                let ndim = self.ndim();
                check_sizes("resize", &spec.shape, ndim)?;
                let plan = self.plan()?;
                let mut target = plan.shape;
                for (axis, &m) in spec.shape.iter().enumerate() {
                    target[plan::internal_axis(ndim, axis)] = m;
                }
                rescale(plan, target);
            }
            Transform::Zoom(spec) => {
                let f = draw(stream, spec.factor);
                if !(f.is_finite() && f > 0.0) {
                    return Err(parameter(
                        "zoom",
                        format!("`factor` must be positive, got {f}"),
                    ));
                }
                let ndim = self.ndim();
                let plan = self.plan()?;
                let mut target = plan.shape;
                for axis in 0..ndim {
                    let a = plan::internal_axis(ndim, axis);
                    target[a] = ((plan.shape[a] as f64 * f).round() as usize).max(1);
                }
                rescale(plan, target);
            }
            Transform::Spacing(spec) => self.spacing(spec)?,
            _ => {}
        }
        Ok(())
    }

    fn rot90(&mut self, spec: &Rot90Spec, stream: &mut Stream) -> Result<(), AugmentError> {
        let ndim = self.ndim();
        let [a, b] = spec.axes;
        check_axis("rot90", a, ndim)?;
        check_axis("rot90", b, ndim)?;
        if a == b {
            return Err(parameter(
                "rot90",
                format!("`axes` must differ, got [{a}, {b}]"),
            ));
        }
        let k = spec.k.unwrap_or_else(|| stream.below(4) as u32) % 4;
        let (a, b) = (plan::internal_axis(ndim, a), plan::internal_axis(ndim, b));
        for _ in 0..k {
            let plan = self.plan()?;
            let mut m = [[0.0; 4]; 4];
            m[3][3] = 1.0;
            for c in (0..3).filter(|&c| c != a && c != b) {
                m[c][c] = 1.0;
            }
            m[a][b] = 1.0;
            m[b][a] = -1.0;
            m[b][3] = (plan.shape[b] - 1) as f64;
            let mut shape = plan.shape;
            shape.swap(a, b);
            plan.change_grid(&m, shape);
        }
        Ok(())
    }

    fn spacing(&mut self, spec: &SpacingSpec) -> Result<(), AugmentError> {
        let ndim = self.ndim();
        if spec.spacing_mm.len() != ndim
            || spec.spacing_mm.iter().any(|s| !(s.is_finite() && *s > 0.0))
        {
            return Err(parameter(
                "spacing",
                format!(
                    "`spacing_mm` needs {ndim} positive values, got {:?}",
                    spec.spacing_mm
                ),
            ));
        }
        let plan = self.plan()?;
        let current = plan.spacing();
        let mut m = plan::IDENTITY;
        let mut shape = plan.shape;
        for (axis, &target) in spec.spacing_mm.iter().enumerate() {
            let a = plan::internal_axis(ndim, axis);
            let ratio = target / current[a];
            let n = plan.shape[a];
            shape[a] = ((n as f64 / ratio).round() as usize).max(1);
            m[a][a] = ratio;
            m[a][3] = (n - 1) as f64 / 2.0 - (shape[a] - 1) as f64 / 2.0 * ratio;
        }
        plan.change_grid(&m, shape);
        Ok(())
    }

    /// The pending plan, after running any pending intensity steps.
    fn plan(&mut self) -> Result<&mut SpatialPlan, AugmentError> {
        self.flush_intensity();
        let plan = if let Some(plan) = self.plan.take() {
            plan
        } else {
            let g = self.geometry()?;
            SpatialPlan::new(g.shape, g.spacing)
        };
        Ok(self.plan.insert(plan))
    }

    fn affine(&mut self, spec: &AffineSpec, stream: &mut Stream) -> Result<(), AugmentError> {
        let ndim = self.ndim();
        let angles = spec.rotate_deg.map(|r| draw(stream, r).to_radians());
        let scales: [f64; 3] = match &spec.scale_per_axis {
            Some(r) => r.map(|r| draw(stream, r)),
            None => [draw(stream, spec.scale); 3],
        };
        let shear = spec.shear.map(|r| draw(stream, r));
        let translate = spec.translate_mm.map(|r| draw(stream, r));
        if scales.iter().any(|s| !(s.is_finite() && *s != 0.0)) {
            return Err(parameter(
                "affine",
                format!("scales must be non-zero, got {scales:?}"),
            ));
        }
        let identity = angles.iter().all(|&a| a == 0.0)
            && scales.iter().all(|&s| s == 1.0)
            && shear.iter().all(|&s| s == 0.0)
            && translate.iter().all(|&t| t == 0.0);
        if identity {
            return Ok(());
        }

        // the forward map in millimetres along internal axes
        let ax = |a: usize| plan::internal_axis(ndim, a);
        let mut scale = [1.0; 3];
        let mut offset = [0.0; 3];
        for a in 0..ndim {
            scale[ax(a)] = scales[a];
            offset[ax(a)] = translate[a];
        }
        let mut h = plan::IDENTITY;
        for (k, (a, b)) in [(0, 1), (0, 2), (1, 2)].into_iter().enumerate() {
            if b < ndim {
                h[ax(a)][ax(b)] = shear[k];
            }
        }
        let mut r = plan::IDENTITY;
        let rotations: &[usize] = if ndim == 3 { &[0, 1, 2] } else { &[2] };
        for &axis in rotations {
            // about volume axis `axis`: in 3D the plane of the two others; in 2D the image plane
            let (p, q) = if ndim == 3 {
                ((axis + 1) % 3, (axis + 2) % 3)
            } else {
                (1, 2)
            };
            let (s, c) = angles[axis].sin_cos();
            let mut m = plan::IDENTITY;
            m[p][p] = c;
            m[p][q] = -s;
            m[q][p] = s;
            m[q][q] = c;
            r = plan::mul(&m, &r);
        }
        let forward = plan::mul(&r, &plan::mul(&h, &plan::diagonal(scale)));
        let backward = plan::inverse(&forward)
            .ok_or_else(|| parameter("affine", "the drawn matrix is singular; check `shear`"))?;

        let plan = self.plan()?;
        let spacing = plan.spacing();
        let centre = plan.shape.map(|n| (n - 1) as f64 / 2.0);
        let to_mm = plan::mul(
            &plan::diagonal(spacing),
            &plan::translation(centre.map(|c| -c)),
        );
        let from_mm = plan::mul(
            &plan::translation(centre),
            &plan::diagonal(spacing.map(|s| 1.0 / s)),
        );
        let m = plan::mul(
            &from_mm,
            &plan::mul(
                &backward,
                &plan::mul(&plan::translation(offset.map(|t| -t)), &to_mm),
            ),
        );
        plan.deform(&m);
        Ok(())
    }

    fn elastic(&mut self, spec: &ElasticSpec, stream: &mut Stream) -> Result<(), AugmentError> {
        if !(2..=MAX_CONTROL_POINTS).contains(&spec.control_points) {
            return Err(parameter(
                "elastic",
                format!(
                    "`control_points` must lie in 2..={MAX_CONTROL_POINTS}, got {}",
                    spec.control_points
                ),
            ));
        }
        let sigma = draw(stream, spec.sigma_mm);
        if !(sigma.is_finite() && sigma >= 0.0) {
            return Err(parameter(
                "elastic",
                format!("`sigma_mm` must be >= 0, got {sigma}"),
            ));
        }
        if sigma == 0.0 {
            return Ok(());
        }
        if self.plan.as_ref().is_some_and(|p| p.displacement.is_some()) {
            // one displacement per resampling: realise the first before composing the second
            self.flush_spatial();
        }
        let ndim = self.ndim();
        let plan = self.plan()?;
        let spacing = plan.spacing();
        let shape = plan.shape;
        let coarse: [usize; 3] =
            std::array::from_fn(|a| if shape[a] > 1 { spec.control_points } else { 1 });
        let values = std::array::from_fn(|c| {
            let real = c >= 3 - ndim && shape[c] > 1;
            let mut grid = vec![0.0_f32; coarse.iter().product()];
            if real {
                for v in &mut grid {
                    *v = (stream.normal() * sigma / spacing[c]) as f32;
                }
            }
            grid
        });
        plan.displace(Displacement::spline(shape, coarse, values));
        Ok(())
    }

    fn crop(&mut self, spec: &CropSpec, stream: &mut Stream) -> Result<(), AugmentError> {
        let ndim = self.ndim();
        check_sizes("crop", &spec.size, ndim)?;
        let mut centre_on = None;
        if let CropMode::Label { class, p } = spec.mode {
            if !(0.0..=1.0).contains(&p) {
                return Err(parameter(
                    "crop",
                    format!("`p` must lie in [0, 1], got {p}"),
                ));
            }
            if stream.bernoulli(p) {
                if self.plan.as_ref().is_some_and(|p| p.displacement.is_some()) {
                    self.flush_spatial();
                }
                let candidates = self.label_positions(class)?;
                if !candidates.is_empty() {
                    centre_on = Some(candidates[stream.below(candidates.len() as u64) as usize]);
                }
            }
        }
        let plan = self.plan()?;
        let mut offset = [0.0; 3];
        let mut shape = plan.shape;
        for (axis, &m) in spec.size.iter().enumerate() {
            let a = plan::internal_axis(ndim, axis);
            let n = shape[a];
            let start = if m > n {
                -(((m - n) / 2) as i64)
            } else {
                let room = n - m;
                match (&spec.mode, centre_on) {
                    (CropMode::Center, _) => (room / 2) as i64,
                    (_, Some(v)) => (v[a].round() as i64 - (m / 2) as i64).clamp(0, room as i64),
                    _ => stream.below(room as u64 + 1) as i64,
                }
            };
            offset[a] = start as f64;
            shape[a] = m;
        }
        plan.change_grid(&plan::translation(offset), shape);
        Ok(())
    }

    /// The positions, in the current output grid, of the voxels of the first label map that
    /// hold `class`.
    fn label_positions(&mut self, class: u16) -> Result<Vec<[f64; 3]>, AugmentError> {
        let ndim = self.ndim();
        let plan = self.plan()?;
        let to_output = plan::inverse(&plan.post).unwrap_or(plan::IDENTITY);
        let shape = plan.shape;
        let Some(labels) = self.fields.iter().find_map(|f| match f {
            SpatialField::Labels(l) => Some(l.0.data()),
            SpatialField::Image(_) => None,
        }) else {
            return Ok(Vec::new());
        };
        let mut found = Vec::new();
        for (index, &l) in labels.indexed_iter() {
            if l != class {
                continue;
            }
            let mut u = [0.0; 3];
            for axis in 0..ndim {
                u[plan::internal_axis(ndim, axis)] = index[axis + 1] as f64;
            }
            let v = plan::apply(&to_output, u);
            if (0..3).all(|a| v[a] >= -0.5 && v[a] < shape[a] as f64 - 0.5) {
                found.push(v);
            }
        }
        Ok(found)
    }

    /// Draws the parameters of an intensity transform; `None` when it does nothing.
    fn intensity(
        &mut self,
        t: &Transform,
        stream: &mut Stream,
    ) -> Result<Option<Step>, AugmentError> {
        Ok(Some(match t {
            Transform::GaussianNoise(s) | Transform::RicianNoise(s) => {
                let std = draw(stream, s.std);
                let seed = stream.next_u64();
                if !(std.is_finite() && std >= 0.0) {
                    return Err(parameter("noise", format!("`std` must be >= 0, got {std}")));
                }
                if std == 0.0 {
                    return Ok(None);
                }
                if matches!(t, Transform::GaussianNoise(_)) {
                    Step::Noise { std, seed }
                } else {
                    Step::Rician { std, seed }
                }
            }
            Transform::BiasField(s) => {
                if s.order > 5 {
                    return Err(parameter(
                        "bias_field",
                        format!("`order` must be at most 5, got {}", s.order),
                    ));
                }
                let terms = intensity::bias_terms(s.order, self.ndim()).len();
                let coefficients = (0..terms)
                    .map(|_| stream.uniform(-s.magnitude, s.magnitude))
                    .collect();
                Step::Bias {
                    order: s.order,
                    coefficients,
                }
            }
            Transform::Gamma(s) => {
                let gamma = draw(stream, s.gamma);
                if !(gamma.is_finite() && gamma > 0.0) {
                    return Err(parameter(
                        "gamma",
                        format!("`gamma` must be positive, got {gamma}"),
                    ));
                }
                Step::Gamma { gamma }
            }
            Transform::Contrast(s) => Step::Contrast {
                factor: draw(stream, s.factor),
            },
            Transform::Brightness(s) => Step::Scale {
                multiply: draw(stream, s.multiply),
                add: draw(stream, s.add),
            },
            Transform::GaussianBlur(s) => Step::Blur {
                sigma_mm: draw(stream, s.sigma_mm),
            },
            Transform::ZScore => Step::ZScore,
            Transform::RangeNormalize(s) => Step::Range {
                low: s.low,
                high: s.high,
            },
            Transform::PercentileClip(s) => {
                if !(0.0 <= s.lower && s.lower <= s.upper && s.upper <= 100.0) {
                    return Err(parameter(
                        "percentile_clip",
                        format!(
                            "need 0 <= lower <= upper <= 100, got {} and {}",
                            s.lower, s.upper
                        ),
                    ));
                }
                Step::PercentileClip {
                    lower: s.lower,
                    upper: s.upper,
                }
            }
            Transform::Clip(s) => {
                if s.min > s.max {
                    return Err(parameter(
                        "clip",
                        format!("`min` must not exceed `max`, got {} and {}", s.min, s.max),
                    ));
                }
                Step::Clip {
                    min: s.min,
                    max: s.max,
                }
            }
            // spatial and composite transforms never reach this point
            _ => return Ok(None),
        }))
    }

    /// Resamples every field through the pending plan, if any.
    fn flush_spatial(&mut self) {
        let Some(plan) = self.plan.take() else {
            return;
        };
        if plan.is_identity() {
            return;
        }
        let ndim = self.ndim();
        let out = {
            let images: Vec<Source<'_, f32>> = self
                .fields
                .iter()
                .filter_map(|f| match f {
                    SpatialField::Image(v) => Some(Source::new(v.data())),
                    SpatialField::Labels(_) => None,
                })
                .collect();
            let labels: Vec<Source<'_, u16>> = self
                .fields
                .iter()
                .filter_map(|f| match f {
                    SpatialField::Labels(l) => Some(Source::new(l.0.data())),
                    SpatialField::Image(_) => None,
                })
                .collect();
            resample::resample(&plan, &images, &labels, self.interpolation, self.fill)
        };

        let q = plan::internal_to_volume(ndim);
        let q_inv = plan::inverse(&q).unwrap_or(plan::IDENTITY);
        let grid = Affine(plan::mul(&q, &plan::mul(&plan.grid, &q_inv)));
        let spatial: Vec<usize> = plan.shape[3 - ndim..].to_vec();
        let (mut images, mut labels) = (out.images.into_iter(), out.labels.into_iter());
        for field in &mut self.fields {
            match field {
                SpatialField::Image(v) => {
                    let data = images.next().unwrap_or_default();
                    let affine = v.affine().compose(&grid);
                    let data = shaped(data, v.channels(), &spatial);
                    **v = crate::io::Volume::new(data, affine);
                }
                SpatialField::Labels(l) => {
                    let data = labels.next().unwrap_or_default();
                    let affine = l.0.affine().compose(&grid);
                    let data = shaped(data, l.0.channels(), &spatial);
                    l.0 = crate::io::Volume::new(data, affine);
                }
            }
        }
    }

    /// Runs the pending intensity steps on every channel of every image.
    fn flush_intensity(&mut self) {
        if self.steps.is_empty() {
            return;
        }
        let steps = std::mem::take(&mut self.steps);
        let mut image = 0_u64;
        for field in &mut self.fields {
            let SpatialField::Image(v) = field else {
                continue;
            };
            let spacing = v.spacing();
            for (c, channel) in v.data_mut().axis_iter_mut(Axis(0)).enumerate() {
                intensity::run_channel(channel, &spacing, &steps, mix(image, c as u64));
            }
            image += 1;
        }
    }
}

fn shaped<T>(data: Vec<T>, channels: usize, spatial: &[usize]) -> ArrayD<T> {
    let mut shape = vec![channels];
    shape.extend_from_slice(spatial);
    ArrayD::from_shape_vec(IxDyn(&shape), data).expect("resampled length matches the grid")
}

/// A resize of the current grid to `target` over the same field of view.
fn rescale(plan: &mut SpatialPlan, target: [usize; 3]) {
    let mut m: M4 = plan::IDENTITY;
    for a in 0..3 {
        let (n, k) = (plan.shape[a] as f64, target[a] as f64);
        let scale = n / k;
        m[a][a] = scale;
        m[a][3] = (n - 1.0) / 2.0 - (k - 1.0) / 2.0 * scale;
    }
    plan.change_grid(&m, target);
}

fn draw(stream: &mut Stream, [low, high]: [f64; 2]) -> f64 {
    if low == high {
        low
    } else {
        stream.uniform(low, high)
    }
}

fn check_axis(transform: &'static str, axis: usize, ndim: usize) -> Result<(), AugmentError> {
    if axis < ndim {
        Ok(())
    } else {
        Err(parameter(
            transform,
            format!("axis {axis} does not exist in a {ndim}D volume; use 0..{ndim}"),
        ))
    }
}

fn check_sizes(transform: &'static str, size: &[usize], ndim: usize) -> Result<(), AugmentError> {
    if size.len() == ndim && size.iter().all(|&s| s > 0) {
        Ok(())
    } else {
        Err(parameter(
            transform,
            format!("need {ndim} positive sizes for a {ndim}D volume, got {size:?}"),
        ))
    }
}

/// The candidate drawn by a one-of (its index and its node id relative to the one-of), or
/// `None` when there is none.
fn choose(o: &OneOfSpec, stream: &mut Stream) -> Result<Option<(usize, u64)>, AugmentError> {
    let n = o.transforms.len();
    if n == 0 {
        return Ok(None);
    }
    let weights = match &o.weights {
        Some(w) => {
            if w.len() != n || w.iter().any(|w| !(w.is_finite() && *w >= 0.0)) {
                return Err(parameter(
                    "one_of",
                    format!("need {n} non-negative weights, got {w:?}"),
                ));
            }
            w.clone()
        }
        None => vec![1.0; n],
    };
    let total: f64 = weights.iter().sum();
    if total <= 0.0 {
        return Err(parameter("one_of", "the weights sum to zero"));
    }
    let mut x = stream.uniform(0.0, total);
    let mut chosen = n - 1;
    for (k, w) in weights.iter().enumerate() {
        if x < *w {
            chosen = k;
            break;
        }
        x -= w;
    }
    let id = 1 + o.transforms[..chosen].iter().map(size).sum::<u64>();
    Ok(Some((chosen, id)))
}
