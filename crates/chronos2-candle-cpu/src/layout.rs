//! Strided f32 tensors made contiguous on the rayon threads, and the rotary embedding read
//! straight from a strided (permuted) input. candle does both copies on the calling thread,
//! while the other cores wait for the next GEMM: at 64 series x 512 steps the head permutes
//! around the time attention were most of the single-threaded time of a forward.
//!
//! Both give exactly candle's numbers: the copy moves values, and the rotation computes
//! candle's `x1 · cos - x2 · sin`, `x1 · sin + x2 · cos` with the same (unfused) operations.

use candle_core::{DType, Storage, Tensor};
use rayon::prelude::*;

/// Tensors below this many values are left to candle (one thread is as fast there).
const PARALLEL_MIN: usize = 1 << 15;
/// Values per parallel chunk of the output.
const CHUNK: usize = 1 << 14;

/// The f32 values, start offset, dims and strides of `x`'s CPU storage, passed to `f`; `None`
/// when `x` is not f32 on the CPU.
fn with_strided<R>(x: &Tensor, f: impl FnOnce(&[f32], usize, &[usize], &[usize]) -> R) -> Option<R> {
    if x.dtype() != DType::F32 {
        return None;
    }
    let (storage, layout) = x.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        return None;
    };
    let data = cpu.as_slice::<f32>().ok()?;
    Some(f(data, layout.start_offset(), layout.dims(), layout.stride()))
}

/// Offset in the source of row `row` (the index over every axis but the last) of a strided view.
#[inline]
fn row_offset(row: usize, start: usize, dims: &[usize], strides: &[usize]) -> usize {
    let mut rem = row;
    let mut off = start;
    for a in (0..dims.len() - 1).rev() {
        off += (rem % dims[a]) * strides[a];
        rem /= dims[a];
    }
    off
}

/// The values of a strided view (`dims`, `strides` in elements, from `start`) in row-major order.
fn gather(data: &[f32], start: usize, dims: &[usize], strides: &[usize]) -> Vec<f32> {
    let len: usize = dims.iter().product();
    let inner = dims[dims.len() - 1];
    let step = strides[strides.len() - 1];
    let rows_per_chunk = (CHUNK / inner).max(1);
    crate::gemm::filled_vec(len, |out| {
        out.par_chunks_mut(rows_per_chunk * inner).enumerate().for_each(|(c, block)| {
            for (r, dst) in block.chunks_exact_mut(inner).enumerate() {
                let off = row_offset(c * rows_per_chunk + r, start, dims, strides);
                if step == 1 {
                    for (d, &v) in dst.iter_mut().zip(&data[off..off + inner]) {
                        d.write(v);
                    }
                } else {
                    for (j, d) in dst.iter_mut().enumerate() {
                        d.write(data[off + j * step]);
                    }
                }
            }
        });
    })
}

/// `x` made contiguous: large strided f32 tensors on the rayon threads, anything else by candle.
pub(crate) fn contiguous(x: &Tensor) -> candle_core::Result<Tensor> {
    if x.is_contiguous() || x.elem_count() < PARALLEL_MIN || x.rank() == 0 {
        return x.contiguous();
    }
    match with_strided(x, gather) {
        Some(values) => Tensor::from_vec(values, x.dims(), x.device()),
        None => x.contiguous(),
    }
}

/// Rotary embedding, rotate-half form, of `x (n, heads, seq, d)` (any strides) with contiguous
/// `cos`, `sin` of shape `(seq', d / 2)`, `seq' >= seq` (row `p` for position `p`), as candle's
/// `rope`; the output is contiguous. Falls back to candle's `rope` on a contiguous copy where
/// the shapes or dtypes are not these.
pub(crate) fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> candle_core::Result<Tensor> {
    let fits = |t: &Tensor| t.dtype() == DType::F32 && t.is_contiguous() && t.rank() == 2;
    let plain = x.rank() == 4 && x.dtype() == DType::F32 && fits(cos) && fits(sin) && cos.dims() == sin.dims();
    if plain {
        let (_, _, seq, d) = x.dims4()?;
        let (cos_seq, half) = cos.dims2()?;
        if half * 2 == d && seq <= cos_seq && x.elem_count() > 0 {
            let cs = cos.flatten_all()?.to_vec1::<f32>()?;
            let sn = sin.flatten_all()?.to_vec1::<f32>()?;
            if let Some(out) =
                with_strided(x, |data, start, dims, strides| rotate(data, start, dims, strides, &cs, &sn))
            {
                return Tensor::from_vec(out, x.dims(), x.device());
            }
        }
    }
    candle_nn::rotary_emb::rope(&x.contiguous()?, cos, sin)
}

/// The rotation of [`rope`] over a strided 4-D view, one `(n, head)` plane per parallel item.
fn rotate(data: &[f32], start: usize, dims: &[usize], strides: &[usize], cos: &[f32], sin: &[f32]) -> Vec<f32> {
    let (heads, seq, d) = (dims[1], dims[2], dims[3]);
    let half = d / 2;
    let plane = seq * d;
    let len = dims[0] * heads * plane;
    crate::gemm::filled_vec(len, |out| {
        out.par_chunks_mut(plane).enumerate().for_each(|(bh, dst)| {
            let base = start + (bh / heads) * strides[0] + (bh % heads) * strides[1];
            for (t, row) in dst.chunks_exact_mut(d).enumerate() {
                let off = base + t * strides[2];
                let (c, s) = (&cos[t * half..(t + 1) * half], &sin[t * half..(t + 1) * half]);
                let (lo, hi) = row.split_at_mut(half);
                if strides[3] == 1 {
                    // Contiguous along d: slices, so that the loop vectorises.
                    let (x1s, x2s) = data[off..off + d].split_at(half);
                    for ((((l, h), (&x1, &x2)), &ci), &si) in
                        lo.iter_mut().zip(hi).zip(x1s.iter().zip(x2s)).zip(c).zip(s)
                    {
                        l.write(x1 * ci - x2 * si);
                        h.write(x1 * si + x2 * ci);
                    }
                } else {
                    for i in 0..half {
                        let x1 = data[off + i * strides[3]];
                        let x2 = data[off + (i + half) * strides[3]];
                        lo[i].write(x1 * c[i] - x2 * s[i]);
                        hi[i].write(x1 * s[i] + x2 * c[i]);
                    }
                }
            }
        });
    })
}

#[cfg(test)]
mod tests;
