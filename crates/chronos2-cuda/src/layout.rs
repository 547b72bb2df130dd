//! Shape arithmetic of the copy kernels (host side, no GPU): every permute, broadcast, narrow and
//! concat part is one strided copy of an array of rank <= [`MAX_RANK`] described by [`CopyPlan`].

use chronos2_core::{Error, Result};

/// The rank the copy kernel handles (`MAX_RANK` in `kernels.cu`).
pub const MAX_RANK: usize = 6;

/// Row-major element strides of `shape`.
pub fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1; shape.len()];
    for a in (0..shape.len().saturating_sub(1)).rev() {
        strides[a] = strides[a + 1] * shape[a + 1];
    }
    strides
}

/// One strided copy: element `idx` (a multi-index over `dims`) goes from
/// `src[src_offset + idx . src_strides]` to `dst[dst_offset + idx . dst_strides]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyPlan {
    pub dims: [u64; MAX_RANK],
    pub src_strides: [u64; MAX_RANK],
    pub dst_strides: [u64; MAX_RANK],
    pub src_offset: usize,
    pub dst_offset: usize,
    /// Elements copied.
    pub len: usize,
}

impl CopyPlan {
    fn new(dims: &[usize], src: &[usize], dst: &[usize], src_offset: usize, dst_offset: usize) -> Result<CopyPlan> {
        if dims.len() > MAX_RANK {
            return Err(Error::Backend(format!("cuda copy: rank {} above {MAX_RANK} ({dims:?})", dims.len())));
        }
        let pad = MAX_RANK - dims.len();
        let mut plan = CopyPlan {
            dims: [1; MAX_RANK],
            src_strides: [0; MAX_RANK],
            dst_strides: [0; MAX_RANK],
            src_offset,
            dst_offset,
            len: dims.iter().product(),
        };
        for a in 0..dims.len() {
            plan.dims[pad + a] = dims[a] as u64;
            plan.src_strides[pad + a] = src[a] as u64;
            plan.dst_strides[pad + a] = dst[a] as u64;
        }
        Ok(plan)
    }
}

fn check_axes(shape: &[usize], axes: &[usize]) -> Result<()> {
    let mut seen = vec![false; shape.len()];
    if axes.len() != shape.len() || axes.iter().any(|&a| a >= shape.len() || std::mem::replace(&mut seen[a], true)) {
        return Err(Error::Backend(format!("permute: axes {axes:?} for shape {shape:?}")));
    }
    Ok(())
}

/// `x.permute(axes)` into a new contiguous array: the plan and the output shape.
pub fn permute(shape: &[usize], axes: &[usize]) -> Result<(CopyPlan, Vec<usize>)> {
    check_axes(shape, axes)?;
    let strides = contiguous_strides(shape);
    let out: Vec<usize> = axes.iter().map(|&a| shape[a]).collect();
    let src: Vec<usize> = axes.iter().map(|&a| strides[a]).collect();
    Ok((CopyPlan::new(&out, &src, &contiguous_strides(&out), 0, 0)?, out))
}

/// `x.broadcast_to(target)` (NumPy rules: shapes aligned on the right, size-1 axes repeat).
pub fn broadcast(shape: &[usize], target: &[usize]) -> Result<CopyPlan> {
    let bad = || Error::Backend(format!("broadcast_to: shape {shape:?} does not broadcast to {target:?}"));
    if shape.len() > target.len() {
        return Err(bad());
    }
    let pad = target.len() - shape.len();
    let strides = contiguous_strides(shape);
    let mut src = vec![0; target.len()];
    for (a, &size) in shape.iter().enumerate() {
        if size == target[pad + a] {
            src[pad + a] = strides[a];
        } else if size != 1 {
            return Err(bad());
        }
    }
    CopyPlan::new(target, &src, &contiguous_strides(target), 0, 0)
}

/// `x.narrow(axis, start, len)` into a new contiguous array: the plan and the output shape.
pub fn narrow(shape: &[usize], axis: usize, start: usize, len: usize) -> Result<(CopyPlan, Vec<usize>)> {
    if axis >= shape.len() || start + len > shape[axis] {
        return Err(Error::Backend(format!("narrow: {start}..{} of axis {axis} of shape {shape:?}", start + len)));
    }
    let strides = contiguous_strides(shape);
    let mut out = shape.to_vec();
    out[axis] = len;
    Ok((CopyPlan::new(&out, &strides, &contiguous_strides(&out), start * strides[axis], 0)?, out))
}

/// The copies of `concat(parts, axis)`: one plan per part and the output shape.
pub fn concat(parts: &[Vec<usize>], axis: usize) -> Result<(Vec<CopyPlan>, Vec<usize>)> {
    let first = parts.first().ok_or_else(|| Error::Backend("concat: no arrays".into()))?;
    if axis >= first.len() {
        return Err(Error::Backend(format!("concat: axis {axis} for shape {first:?}")));
    }
    let mut out = first.clone();
    out[axis] = 0;
    for p in parts {
        let same_rest = p.len() == first.len() && (0..p.len()).all(|a| a == axis || p[a] == first[a]);
        if !same_rest {
            return Err(Error::Backend(format!("concat: shapes {parts:?} differ off axis {axis}")));
        }
        out[axis] += p[axis];
    }
    let out_strides = contiguous_strides(&out);
    let mut plans = Vec::with_capacity(parts.len());
    let mut at = 0;
    for p in parts {
        plans.push(CopyPlan::new(p, &contiguous_strides(p), &out_strides, 0, at * out_strides[axis])?);
        at += p[axis];
    }
    Ok((plans, out))
}

/// Runs a plan on host slices: the reference the kernel is tested against, and the definition
/// of the plan's meaning.
pub fn apply_on_host(plan: &CopyPlan, src: &[f32], dst: &mut [f32]) {
    for i in 0..plan.len as u64 {
        let (mut rest, mut s, mut t) = (i, plan.src_offset as u64, plan.dst_offset as u64);
        for a in (0..MAX_RANK).rev() {
            let idx = rest % plan.dims[a];
            rest /= plan.dims[a];
            s += idx * plan.src_strides[a];
            t += idx * plan.dst_strides[a];
        }
        dst[t as usize] = src[s as usize];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iota(n: usize) -> Vec<f32> {
        (0..n).map(|i| i as f32).collect()
    }

    fn run(plan: &CopyPlan, src: &[f32], out_len: usize) -> Vec<f32> {
        let mut dst = vec![f32::NAN; out_len];
        apply_on_host(plan, src, &mut dst);
        dst
    }

    #[test]
    fn permute_swaps_axes() {
        // (2, 3) -> (3, 2): the transpose.
        let (plan, out) = permute(&[2, 3], &[1, 0]).unwrap();
        assert_eq!(out, vec![3, 2]);
        assert_eq!(run(&plan, &iota(6), 6), vec![0., 3., 1., 4., 2., 5.]);
        // (2, 2, 2) with axes (0, 2, 1).
        let (plan, out) = permute(&[2, 2, 2], &[0, 2, 1]).unwrap();
        assert_eq!(out, vec![2, 2, 2]);
        assert_eq!(run(&plan, &iota(8), 8), vec![0., 2., 1., 3., 4., 6., 5., 7.]);
        assert!(permute(&[2, 3], &[0, 0]).is_err());
        assert!(permute(&[1; 7], &[0, 1, 2, 3, 4, 5, 6]).is_err());
    }

    #[test]
    fn broadcast_repeats_size_one_axes_aligned_right() {
        let plan = broadcast(&[3], &[2, 1, 3]).unwrap();
        assert_eq!(run(&plan, &iota(3), 6), vec![0., 1., 2., 0., 1., 2.]);
        let plan = broadcast(&[2, 1], &[2, 3]).unwrap();
        assert_eq!(run(&plan, &iota(2), 6), vec![0., 0., 0., 1., 1., 1.]);
        assert!(broadcast(&[2], &[3]).is_err());
        assert!(broadcast(&[1, 2], &[2]).is_err());
    }

    #[test]
    fn narrow_takes_a_range_of_an_inner_axis() {
        let (plan, out) = narrow(&[2, 4], 1, 1, 2).unwrap();
        assert_eq!(out, vec![2, 2]);
        assert_eq!(run(&plan, &iota(8), 4), vec![1., 2., 5., 6.]);
        assert!(narrow(&[2, 4], 1, 3, 2).is_err());
    }

    #[test]
    fn concat_places_each_part_along_the_axis() {
        let (plans, out) = concat(&[vec![2, 1], vec![2, 2]], 1).unwrap();
        assert_eq!(out, vec![2, 3]);
        let mut dst = vec![f32::NAN; 6];
        apply_on_host(&plans[0], &[10., 20.], &mut dst);
        apply_on_host(&plans[1], &[1., 2., 3., 4.], &mut dst);
        assert_eq!(dst, vec![10., 1., 2., 20., 3., 4.]);
        assert!(concat(&[vec![2, 1], vec![3, 1]], 1).is_err());
    }
}
