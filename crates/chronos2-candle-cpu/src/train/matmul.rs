//! The matrix products of training (linears, LoRA, attention, and their backward), as a custom
//! op with its own backward that runs the gemm crate single-threaded per output tile, the tiles
//! spread over rayon's pool.
//!
//! candle's own matmul runs the gemm crate on rayon's pool too, but it splits each product of a
//! batch (attention: one per row and head) on its own, and zeroes its output on one thread first.
//!
//! Operands are `(..., m, k)` and `(..., k, n)` with the same batch dimensions, any strides (a
//! transposed or permuted view is read in place, without a copy); the output is contiguous.

use std::mem::MaybeUninit;

use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor};
use gemm::Parallelism;
use rayon::prelude::*;

use crate::gemm::{filled_vec, SendPtr};

/// `a b` over the last two dimensions, batched over the others; differentiable in both. A 2-D
/// `b` is shared by every batch of `a` (a linear layer on `(..., rows, in)` activations), whose
/// batches are then read as the rows of one product (copied first if their layout does not allow).
pub fn matmul(a: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    if b.rank() == 2 && a.rank() > 2 && Operand::new(a.layout())?.rows_collapsed().is_none() {
        return a.contiguous()?.apply_op2(b, PoolMatmul);
    }
    a.apply_op2(b, PoolMatmul)
}

/// [`matmul`] on raw slices: `a` and `b` as laid out by `la` and `lb`; the `(batch..., m, n)`
/// output, contiguous.
pub fn matmul_slices(a: &[f32], la: &Layout, b: &[f32], lb: &Layout) -> candle_core::Result<(Vec<f32>, Shape)> {
    let product = Product::plan(a, la, b, lb)?;
    // SAFETY: `run` writes every value of the `len()` outputs.
    let y = filled_vec(product.len(), |y| unsafe { product.run(SendPtr(y.as_mut_ptr().cast::<f32>()), 1.0, false) });
    Ok((y, Shape::from(product.dims)))
}

/// `y += scale · a b`, `y` the contiguous `(batch..., m, n)` output of [`matmul_slices`].
pub fn matmul_accumulate(
    a: &[f32],
    la: &Layout,
    b: &[f32],
    lb: &Layout,
    scale: f32,
    y: &mut [f32],
) -> candle_core::Result<()> {
    let product = Product::plan(a, la, b, lb)?;
    if y.len() != product.len() {
        candle_core::bail!("matmul: an output of {} values for a {:?} product", y.len(), product.dims);
    }
    // SAFETY: `y` holds the product's outputs.
    unsafe { product.run(SendPtr(y.as_mut_ptr()), scale, true) };
    Ok(())
}

/// `scale · a b` ([`matmul_slices`] scaled).
pub fn matmul_scaled(a: &[f32], la: &Layout, b: &[f32], lb: &Layout, scale: f32) -> candle_core::Result<Vec<f32>> {
    let product = Product::plan(a, la, b, lb)?;
    // SAFETY: as in `matmul_slices`.
    Ok(filled_vec(product.len(), |y| unsafe { product.run(SendPtr(y.as_mut_ptr().cast::<f32>()), scale, false) }))
}

/// A checked product of two operands, ready to run into an output.
struct Product<'a> {
    a: &'a [f32],
    lhs: Operand,
    b: std::borrow::Cow<'a, [f32]>,
    rhs: Operand,
    /// Output dimensions `(batch..., m, n)`.
    dims: Vec<usize>,
}

impl<'a> Product<'a> {
    fn plan(a: &'a [f32], la: &Layout, b: &'a [f32], lb: &Layout) -> candle_core::Result<Self> {
        let mut lhs = Operand::new(la)?;
        let rhs = Operand::new(lb)?;
        if rhs.batch_dims.is_empty() && !lhs.batch_dims.is_empty() {
            lhs = match lhs.rows_collapsed() {
                Some(rows) => rows,
                None => candle_core::bail!("matmul: the batches of {:?} are not laid out as rows", la.dims()),
            };
        }
        if lhs.batch_dims != rhs.batch_dims || lhs.cols != rhs.rows {
            candle_core::bail!("matmul: shapes {:?} and {:?} do not multiply", la.dims(), lb.dims());
        }
        // `(batch..., rows, n)`, whether the batches were multiplied one by one or as rows
        let mut dims = la.dims().to_vec();
        *dims.last_mut().expect("two dimensions or more") = rhs.cols;
        let (b, rhs) = if rhs.worth_a_row_major_copy(lhs.rows) {
            (std::borrow::Cow::Owned(rhs.row_major_copy(b)), Operand::row_major(rhs.rows, rhs.cols))
        } else {
            (std::borrow::Cow::Borrowed(b), rhs)
        };
        Ok(Product { a, lhs, b, rhs, dims })
    }

    fn len(&self) -> usize {
        self.lhs.batch() * self.lhs.rows * self.rhs.cols
    }

    /// `y = scale · a b`, or `y += scale · a b` when `accumulate`.
    ///
    /// # Safety
    /// `y` points to `self.len()` floats, initialised when `accumulate`.
    unsafe fn run(&self, y: SendPtr, scale: f32, accumulate: bool) {
        let (lhs, rhs) = (&self.lhs, &self.rhs);
        let (batch, m, k, n) = (lhs.batch(), lhs.rows, lhs.cols, rhs.cols);
        if k == 0 {
            if !accumulate {
                // SAFETY: `y` points to `self.len()` floats (the caller's contract).
                unsafe { std::slice::from_raw_parts_mut(y.ptr(), batch * m * n).fill(0.0) };
            }
            return;
        }
        let tiles = Tiles::plan(batch, m, n, k);
        let (a, b) = (self.a, &self.b[..]);
        let job = |units: std::ops::Range<usize>| {
            for unit in units {
                let (bi, r0, r1, c0, c1) = tiles.unit(unit);
                let (ao, bo) = (lhs.batch_offset(bi), rhs.batch_offset(bi));
                // SAFETY: the offsets stay inside `a`, `b` (their layouts' extents) and the
                // output; units write disjoint tiles of the output.
                unsafe {
                    gemm::gemm(
                        r1 - r0,
                        c1 - c0,
                        k,
                        y.ptr().add(bi * m * n + r0 * n + c0),
                        1,
                        n as isize,
                        accumulate,
                        a.as_ptr().add(ao + r0 * lhs.row_stride),
                        lhs.col_stride as isize,
                        lhs.row_stride as isize,
                        b.as_ptr().add(bo + c0 * rhs.col_stride),
                        rhs.col_stride as isize,
                        rhs.row_stride as isize,
                        if accumulate { 1.0 } else { 0.0 },
                        scale,
                        false,
                        false,
                        false,
                        Parallelism::None,
                    )
                }
            }
        };
        if !tiles.parallel {
            job(0..tiles.count());
        } else {
            (0..tiles.count()).into_par_iter().for_each(|unit| job(unit..unit + 1));
        }
    }
}

/// The product as a candle custom op (forward and backward).
pub struct PoolMatmul;

impl CustomOp2 for PoolMatmul {
    fn name(&self) -> &'static str {
        "pool-matmul"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (CpuStorage::F32(a), CpuStorage::F32(b)) = (s1, s2) else {
            candle_core::bail!("{}: the operands must be f32", self.name());
        };
        let (y, shape) = matmul_slices(a, l1, b, l2)?;
        Ok((CpuStorage::F32(y), shape))
    }

    /// `dA = dC Bᵀ`, `dB = Aᵀ dC`, each only for an operand that takes part in the graph.
    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let da = if a.track_op() { Some(matmul(grad, &b.t()?)?) } else { None };
        let db = match b.track_op() {
            false => None,
            // a shared `b`: the sum over `a`'s batches, one product over their rows
            true if b.rank() == 2 && a.rank() > 2 => {
                let rows = |t: &Tensor| t.flatten_to(t.rank() - 2);
                Some(matmul(&rows(a)?.t()?, &rows(grad)?)?)
            }
            true => Some(matmul(&a.t()?, grad)?),
        };
        Ok((da, db))
    }
}

/// One operand's layout: batch dimensions with their strides, then a `(rows, cols)` matrix.
struct Operand {
    start: usize,
    batch_dims: Vec<usize>,
    batch_strides: Vec<usize>,
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl Operand {
    fn new(layout: &Layout) -> candle_core::Result<Self> {
        let dims = layout.dims();
        let strides = layout.stride();
        let rank = dims.len();
        if rank < 2 {
            candle_core::bail!("matmul: operand of shape {dims:?} has fewer than two dimensions");
        }
        Ok(Operand {
            start: layout.start_offset(),
            batch_dims: dims[..rank - 2].to_vec(),
            batch_strides: strides[..rank - 2].to_vec(),
            rows: dims[rank - 2],
            cols: dims[rank - 1],
            row_stride: strides[rank - 2],
            col_stride: strides[rank - 1],
        })
    }

    /// The operand as one `(batch * rows, cols)` matrix, where its batches follow one another
    /// at the row stride.
    fn rows_collapsed(&self) -> Option<Operand> {
        let mut expected = self.rows * self.row_stride;
        for (&dim, &stride) in self.batch_dims.iter().zip(&self.batch_strides).rev() {
            if dim != 1 && stride != expected {
                return None;
            }
            expected *= dim;
        }
        Some(Operand {
            start: self.start,
            batch_dims: Vec::new(),
            batch_strides: Vec::new(),
            rows: self.batch() * self.rows,
            cols: self.cols,
            row_stride: self.row_stride,
            col_stride: self.col_stride,
        })
    }

    fn batch(&self) -> usize {
        self.batch_dims.iter().product()
    }

    /// A contiguous row-major `(rows, cols)` matrix.
    fn row_major(rows: usize, cols: usize) -> Operand {
        Operand {
            start: 0,
            batch_dims: Vec::new(),
            batch_strides: Vec::new(),
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// Whether this second operand `(k, n)`, read transposed in place (a linear's `Wᵀ`), is
    /// better copied row-major first for a product with `m` rows. The gemm crate packs such an
    /// operand slowly when `k >= n`: on this project's 2-core Zen 4 (two threads, one run),
    /// `(1120, 1024) x (1024, 256)` took 5.6 ms read in place against 3.2 ms with the copy
    /// (0.3 ms of it), and `(1120, 256) x (256, 256)` 1.2 against 0.9 ms; with `k < n`
    /// (`(1120, 256) x (256, 1024)`) the copy gained nothing. Small products are not worth it.
    fn worth_a_row_major_copy(&self, m: usize) -> bool {
        self.batch_dims.is_empty()
            && self.row_stride == 1
            && self.col_stride != 1
            && self.rows >= self.cols
            && m * self.rows * self.cols >= 1 << 22
    }

    /// The `(rows, cols)` matrix of `values`, read with a unit row stride, copied row-major in
    /// tiles of 32 x 32 (each task writes 32 whole output rows).
    fn row_major_copy(&self, values: &[f32]) -> Vec<f32> {
        const TILE: usize = 32;
        let (k, n) = (self.rows, self.cols);
        filled_vec(k * n, |out| {
            out.par_chunks_mut(TILE * n).enumerate().for_each(|(block, rows)| {
                let (k0, kr) = (block * TILE, rows.len() / n);
                for j0 in (0..n).step_by(TILE) {
                    for j in j0..(j0 + TILE).min(n) {
                        let from = self.start + j * self.col_stride + k0;
                        for (r, &v) in values[from..from + kr].iter().enumerate() {
                            rows[r * n + j] = MaybeUninit::new(v);
                        }
                    }
                }
            });
        })
    }

    /// The offset of batch `index` (row-major over the batch dimensions).
    fn batch_offset(&self, mut index: usize) -> usize {
        let mut offset = self.start;
        for (&dim, &stride) in self.batch_dims.iter().zip(&self.batch_strides).rev() {
            offset += (index % dim) * stride;
            index /= dim;
        }
        offset
    }
}

/// The output split into `(batch, row block, column block)` units: a few per rayon thread for a
/// large product; a small one (below 2^18 multiply-adds) runs on the calling thread.
struct Tiles {
    batch: usize,
    m: usize,
    n: usize,
    row_block: usize,
    col_block: usize,
    /// Whether the units run on rayon's pool (else on the calling thread).
    parallel: bool,
}

impl Tiles {
    fn plan(batch: usize, m: usize, n: usize, k: usize) -> Tiles {
        const SMALL: usize = 1 << 18;
        const MIN_BLOCK: usize = 32;
        let threads = rayon::current_num_threads();
        let work = batch * m * n * k;
        let target = if threads == 1 || work < SMALL { 1 } else { 4 * threads };
        let (mut row_block, mut col_block) = (m.max(1), n.max(1));
        let units = |r: usize, c: usize| batch * m.div_ceil(r) * n.div_ceil(c);
        while units(row_block, col_block) < target {
            if row_block >= col_block && row_block > MIN_BLOCK {
                row_block = row_block.div_ceil(2).next_multiple_of(16);
            } else if col_block > MIN_BLOCK {
                col_block = col_block.div_ceil(2).next_multiple_of(16);
            } else {
                break;
            }
        }
        Tiles { batch, m, n, row_block, col_block, parallel: target > 1 }
    }

    fn count(&self) -> usize {
        if self.batch * self.m * self.n == 0 {
            return 0;
        }
        self.batch * self.m.div_ceil(self.row_block) * self.n.div_ceil(self.col_block)
    }

    /// Unit `u`: its batch, rows `r0..r1` and columns `c0..c1`.
    fn unit(&self, u: usize) -> (usize, usize, usize, usize, usize) {
        let (tm, tn) = (self.m.div_ceil(self.row_block), self.n.div_ceil(self.col_block));
        let (bi, rest) = (u / (tm * tn), u % (tm * tn));
        let (ti, tj) = (rest / tn, rest % tn);
        let (r0, c0) = (ti * self.row_block, tj * self.col_block);
        (bi, r0, (r0 + self.row_block).min(self.m), c0, (c0 + self.col_block).min(self.n))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_values::{max_diff, values};
    use super::*;
    use candle_core::{Device, Var};

    /// (batch dims, m, k, n, transpose the second operand, permute the first)
    type Case = (&'static [usize], usize, usize, usize, bool, bool);

    /// Forward and both gradients equal candle's matmul on odd shapes: plain, batched over two
    /// dimensions, with transposed and permuted (non-contiguous) operands, and large enough to
    /// be split into tiles.
    #[test]
    fn matches_candle_matmul_and_its_gradients() {
        let dev = Device::Cpu;
        let cases: [Case; 6] = [
            (&[], 7, 5, 3, false, false),
            // a transposed second operand copied row-major first
            (&[], 300, 200, 90, true, false),
            (&[], 131, 67, 45, true, false),
            (&[3, 2], 9, 13, 11, false, true),
            (&[2], 97, 129, 70, true, true),
            (&[], 1, 300, 1, true, false),
        ];
        for (i, &(batch, m, k, n, transpose_b, permute_a)) in cases.iter().enumerate() {
            let shape = |r: usize, c: usize| [batch, &[r, c]].concat();
            let a = if permute_a {
                // stored (..., k, m), read as (..., m, k)
                let t = Tensor::from_vec(values(batch.iter().product::<usize>() * m * k, i), shape(k, m), &dev);
                t.unwrap().t().unwrap()
            } else {
                Tensor::from_vec(values(batch.iter().product::<usize>() * m * k, i), shape(m, k), &dev).unwrap()
            };
            let b = if transpose_b {
                let t = Tensor::from_vec(values(batch.iter().product::<usize>() * k * n, i + 7), shape(n, k), &dev);
                t.unwrap().t().unwrap()
            } else {
                Tensor::from_vec(values(batch.iter().product::<usize>() * k * n, i + 7), shape(k, n), &dev).unwrap()
            };
            let (va, vb) = (Var::from_tensor(&a).unwrap(), Var::from_tensor(&b).unwrap());
            let weights = Tensor::from_vec(values(batch.iter().product::<usize>() * m * n, i + 3), shape(m, n), &dev);
            let weights = weights.unwrap();
            let run = |y: Tensor| {
                let grads = (&y * &weights).unwrap().sum_all().unwrap().backward().unwrap();
                (y, grads.get(va.as_tensor()).unwrap().clone(), grads.get(vb.as_tensor()).unwrap().clone())
            };
            let (y_ref, ga_ref, gb_ref) = run(va.as_tensor().contiguous().unwrap().matmul(vb.as_tensor()).unwrap());
            let (y, ga, gb) = run(matmul(va.as_tensor(), vb.as_tensor()).unwrap());
            assert_eq!(y.dims(), y_ref.dims(), "case {i}");
            assert!(y.is_contiguous(), "case {i}");
            assert!(max_diff(&y, &y_ref) < 1e-4, "case {i}: forward");
            assert!(max_diff(&ga, &ga_ref) < 1e-4, "case {i}: dA");
            assert!(max_diff(&gb, &gb_ref) < 1e-4, "case {i}: dB");
            assert!(max_diff(&ga_ref, &ga_ref.zeros_like().unwrap()) > 0.1, "case {i}: a gradient that can fail");
        }
    }

    /// A 2-D second operand shared by the batches of the first (a linear layer): forward and
    /// both gradients equal candle's broadcast matmul, for a contiguous first operand (read as
    /// rows) and a permuted one (copied).
    #[test]
    fn shared_second_operand_matches_candle() {
        let dev = Device::Cpu;
        let (b0, b1, m, k, n) = (3, 2, 5, 7, 4);
        for permuted in [false, true] {
            let stored = if permuted { (b0, m, b1, k) } else { (b0, b1, m, k) };
            let a = Var::from_tensor(&Tensor::from_vec(values(b0 * b1 * m * k, 1), stored, &dev).unwrap()).unwrap();
            let a_view = if permuted { a.as_tensor().permute((0, 2, 1, 3)).unwrap() } else { a.as_tensor().clone() };
            let w = Var::from_tensor(&Tensor::from_vec(values(n * k, 2), (n, k), &dev).unwrap()).unwrap();
            let weights = Tensor::from_vec(values(b0 * b1 * m * n, 3), (b0, b1, m, n), &dev).unwrap();
            let run = |y: Tensor| {
                let grads = (&y * &weights).unwrap().sum_all().unwrap().backward().unwrap();
                (y, grads.get(a.as_tensor()).unwrap().clone(), grads.get(w.as_tensor()).unwrap().clone())
            };
            let wt = w.as_tensor().t().unwrap();
            let (y_ref, ga_ref, gw_ref) = run(a_view.contiguous().unwrap().broadcast_matmul(&wt).unwrap());
            let (y, ga, gw) = run(matmul(&a_view, &wt).unwrap());
            assert_eq!(y.dims(), &[b0, b1, m, n]);
            assert!(max_diff(&y, &y_ref) < 1e-4, "permuted {permuted}: forward");
            assert!(max_diff(&ga, &ga_ref) < 1e-4, "permuted {permuted}: dA");
            assert!(max_diff(&gw, &gw_ref) < 1e-4, "permuted {permuted}: dW");
            assert!(max_diff(&gw_ref, &gw_ref.zeros_like().unwrap()) > 0.1);
        }
    }

    /// `matmul_scaled` and `matmul_accumulate` give `s · a b` and `y + s · a b`, also through the
    /// row-major copy of a transposed operand.
    #[test]
    fn scaled_and_accumulated_products() {
        let dev = Device::Cpu;
        for (m, k, n) in [(5, 7, 3), (300, 200, 90)] {
            let (a, w) = (values(m * k, 1), values(n * k, 2));
            let (la, lw) = (Layout::contiguous((m, k)), Layout::contiguous((n, k)).transpose(0, 1).unwrap());
            assert_eq!(Operand::new(&lw).unwrap().worth_a_row_major_copy(m), m == 300);
            let plain = Tensor::from_vec(a.clone(), (m, k), &dev)
                .unwrap()
                .matmul(&Tensor::from_vec(w.clone(), (n, k), &dev).unwrap().t().unwrap())
                .unwrap();
            let scaled = Tensor::from_vec(matmul_scaled(&a, &la, &w, &lw, -2.5).unwrap(), (m, n), &dev).unwrap();
            assert!(max_diff(&scaled, &(&plain * -2.5).unwrap()) < 1e-3, "({m}, {k}, {n}): scaled");
            let start = values(m * n, 3);
            let mut y = start.clone();
            matmul_accumulate(&a, &la, &w, &lw, 0.5, &mut y).unwrap();
            let expected = (Tensor::from_vec(start, (m, n), &dev).unwrap() + (&plain * 0.5).unwrap()).unwrap();
            assert!(max_diff(&Tensor::from_vec(y, (m, n), &dev).unwrap(), &expected) < 1e-3, "({m}, {k}, {n}): y +=");
            assert!(matmul_accumulate(&a, &la, &w, &lw, 0.5, &mut [0.0; 2]).is_err());
        }
    }

    /// A constant operand gets no gradient computed.
    #[test]
    fn no_gradient_for_a_constant() {
        let dev = Device::Cpu;
        let a = Var::from_tensor(&Tensor::from_vec(values(12, 1), (3, 4), &dev).unwrap()).unwrap();
        let b = Tensor::from_vec(values(8, 2), (4, 2), &dev).unwrap();
        let grads = matmul(a.as_tensor(), &b).unwrap().sum_all().unwrap().backward().unwrap();
        assert!(grads.get(a.as_tensor()).is_some());
        assert!(grads.get(&b).is_none());
    }

    /// Tiles cover the output once, a large product is split and a small one is not.
    #[test]
    fn tiles_cover_the_output() {
        for &(batch, m, n, k) in &[(1, 1120, 256, 256), (3, 35, 35, 32), (1, 8, 256, 1120), (2, 1, 1, 1)] {
            let tiles = Tiles::plan(batch, m, n, k);
            let mut covered = vec![0u8; batch * m * n];
            for u in 0..tiles.count() {
                let (bi, r0, r1, c0, c1) = tiles.unit(u);
                for r in r0..r1 {
                    for c in c0..c1 {
                        covered[bi * m * n + r * n + c] += 1;
                    }
                }
            }
            assert!(covered.iter().all(|&c| c == 1), "({batch}, {m}, {n}, {k})");
        }
        if rayon::current_num_threads() > 1 {
            assert!(Tiles::plan(1, 1120, 256, 256).count() > 1);
        }
        assert_eq!(Tiles::plan(2, 1, 1, 1).count(), 2);
        assert!(!Tiles::plan(2, 1, 1, 1).parallel);
    }
}
