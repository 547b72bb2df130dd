//! Every [`Ops`] method of [`MlxOps`] against a straightforward host (f64-accumulating)
//! implementation, in f32, on small pseudo-random shapes.
#![cfg(mlx_backend)]
#![allow(clippy::too_many_arguments, clippy::needless_range_loop)]

use chronos2_core::ops::Ops;
use chronos2_mlx::{MlxOps, MlxTensor};
use chronos2_test_fixtures::{expect_close, Rng};

const RTOL: f32 = 1e-5;

fn t(ops: &MlxOps, data: &[f32], shape: &[usize]) -> MlxTensor {
    ops.tensor(data, shape).unwrap()
}

fn get(ops: &MlxOps, x: &MlxTensor) -> Vec<f32> {
    ops.to_vec(x).unwrap()
}

fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Host permute: out[idx] = x[idx permuted back].
fn host_permute(x: &[f32], shape: &[usize], axes: &[usize]) -> (Vec<f32>, Vec<usize>) {
    let out_shape: Vec<usize> = axes.iter().map(|&a| shape[a]).collect();
    let (in_st, out_st) = (strides(shape), strides(&out_shape));
    let mut out = vec![0f32; x.len()];
    for (o, v) in out.iter_mut().enumerate() {
        let mut src = 0;
        for (k, &a) in axes.iter().enumerate() {
            src += (o / out_st[k] % out_shape[k]) * in_st[a];
        }
        *v = x[src];
    }
    (out, out_shape)
}

/// Host broadcast of `x` (shape `shape`, same rank as `to`, dims 1 or equal) to `to`.
fn host_broadcast(x: &[f32], shape: &[usize], to: &[usize]) -> Vec<f32> {
    let (in_st, out_st) = (strides(shape), strides(to));
    let n: usize = to.iter().product();
    (0..n)
        .map(|o| {
            let src: usize =
                (0..to.len()).map(|k| if shape[k] == 1 { 0 } else { (o / out_st[k] % to[k]) * in_st[k] }).sum();
            x[src]
        })
        .collect()
}

fn host_linear(x: &[f32], rows: usize, w: &[f32], out_dim: usize, in_dim: usize, b: Option<&[f32]>) -> Vec<f32> {
    let mut y = vec![0f32; rows * out_dim];
    for r in 0..rows {
        for o in 0..out_dim {
            let mut acc = b.map_or(0.0, |b| b[o] as f64);
            for i in 0..in_dim {
                acc += x[r * in_dim + i] as f64 * w[o * in_dim + i] as f64;
            }
            y[r * out_dim + o] = acc as f32;
        }
    }
    y
}

/// `softmax(q k^T + mask) v` on `(n, heads, len, d)` / mask `(n, 1, 1, klen)`, f64 inside.
fn host_attention(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    mask: &[f32],
    n: usize,
    heads: usize,
    qlen: usize,
    klen: usize,
    d: usize,
) -> Vec<f32> {
    let mut out = vec![0f32; n * heads * qlen * d];
    for b in 0..n {
        for h in 0..heads {
            let bh = b * heads + h;
            for i in 0..qlen {
                // scores in f32 as the reference does (q k^T + mask in f32), softmax in f64
                let s: Vec<f32> = (0..klen)
                    .map(|j| {
                        let dot: f64 =
                            (0..d).map(|c| q[(bh * qlen + i) * d + c] as f64 * k[(bh * klen + j) * d + c] as f64).sum();
                        dot as f32 + mask[b * klen + j]
                    })
                    .collect();
                let m = s.iter().fold(f32::MIN, |a, &b| a.max(b)) as f64;
                let e: Vec<f64> = s.iter().map(|&x| (x as f64 - m).exp()).collect();
                let z: f64 = e.iter().sum();
                for c in 0..d {
                    let acc: f64 = (0..klen).map(|j| e[j] * v[(bh * klen + j) * d + c] as f64).sum();
                    out[(bh * qlen + i) * d + c] = (acc / z) as f32;
                }
            }
        }
    }
    out
}

#[test]
fn backend_types_are_send_sync() {
    fn check<T: Send + Sync + Clone>() {}
    check::<MlxOps>();
    check::<MlxTensor>();
    fn check_linear<T: Send + Sync>() {}
    check_linear::<chronos2_mlx::MlxLinear>();
}

#[test]
fn tensor_to_vec_shape_and_errors() {
    let ops = MlxOps::new();
    let mut rng = Rng(1);
    let x = rng.vec(24);
    let a = t(&ops, &x, &[2, 3, 4]);
    assert_eq!(ops.shape(&a), vec![2, 3, 4]);
    assert_eq!(get(&ops, &a), x);
    assert_eq!(ops.name(), "mlx");
    assert!(ops.tensor(&x, &[5, 5]).is_err());
    assert!(ops.narrow(&a, 1, 2, 2).is_err());
    assert!(ops.narrow(&a, 3, 0, 1).is_err());
    assert!(ops.take_rows(&a, &[0, 2]).is_err());
    let l = ops.linear_from_host(&rng.vec(12), 3, 4, None).unwrap();
    assert!(ops.linear(&ops.reshape(&a, &[4, 6]).unwrap(), &l).is_err());
}

#[test]
fn linear_with_and_without_bias() {
    let ops = MlxOps::new();
    let mut rng = Rng(2);
    for (lead, in_dim, out_dim) in [(vec![5], 7, 3), (vec![2, 3], 16, 9), (vec![2, 1, 4], 33, 17)] {
        let rows: usize = lead.iter().product();
        let x = rng.vec(rows * in_dim);
        let w = rng.vec(out_dim * in_dim);
        let b = rng.vec(out_dim);
        let mut shape = lead.clone();
        shape.push(in_dim);
        let xt = t(&ops, &x, &shape);
        for bias in [None, Some(&b[..])] {
            let layer = ops.linear_from_host(&w, out_dim, in_dim, bias).unwrap();
            let fp = ops.linear_footprint(&layer);
            assert!(!fp.quantized && fp.out_dim == out_dim && fp.in_dim == in_dim);
            assert_eq!(fp.bytes, 4 * (w.len() + bias.map_or(0, |b| b.len())));
            let (hw, hb) = ops.linear_float_weights(&layer).unwrap().expect("float layer");
            assert_eq!((hw, hb), (w.clone(), bias.map(|b| b.to_vec())));
            let y = ops.linear(&xt, &layer).unwrap();
            let mut want_shape = lead.clone();
            want_shape.push(out_dim);
            assert_eq!(ops.shape(&y), want_shape);
            expect_close("linear", &get(&ops, &y), &host_linear(&x, rows, &w, out_dim, in_dim, bias), RTOL);
        }
        // on a non-contiguous input (a transposed view)
        if lead.len() == 2 {
            let xp = ops.permute(&ops.reshape(&xt, &[lead[0], lead[1], in_dim]).unwrap(), &[1, 0, 2]).unwrap();
            let (hx, _) = host_permute(&x, &[lead[0], lead[1], in_dim], &[1, 0, 2]);
            let layer = ops.linear_from_host(&w, out_dim, in_dim, Some(&b)).unwrap();
            expect_close(
                "linear (view)",
                &get(&ops, &ops.linear(&xp, &layer).unwrap()),
                &host_linear(&hx, rows, &w, out_dim, in_dim, Some(&b)),
                RTOL,
            );
        }
    }
}

#[test]
fn rms_norm_matches_t5_layer_norm() {
    let ops = MlxOps::new();
    let mut rng = Rng(3);
    for (rows, d, eps) in [(3, 8, 1e-6f32), (10, 64, 1e-6), (4, 5, 1e-3)] {
        let x: Vec<f32> = rng.vec(rows * d).iter().map(|v| v * 3.0).collect();
        let w = rng.vec(d);
        let y = ops.rms_norm(&t(&ops, &x, &[rows, d]), &t(&ops, &w, &[d]), eps).unwrap();
        let want: Vec<f32> = x
            .chunks(d)
            .flat_map(|r| {
                let var = r.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / d as f64;
                let inv = 1.0 / (var + eps as f64).sqrt();
                r.iter().zip(&w).map(move |(&v, &w)| (v as f64 * inv) as f32 * w).collect::<Vec<_>>()
            })
            .collect();
        expect_close("rms_norm", &get(&ops, &y), &want, RTOL);
    }
}

#[test]
fn elementwise_relu_add_select_mean() {
    let ops = MlxOps::new();
    let mut rng = Rng(4);
    let shape = [3, 4, 5];
    let (a, b) = (rng.vec(60), rng.vec(60));
    let (ta, tb) = (t(&ops, &a, &shape), t(&ops, &b, &shape));
    expect_close("relu", &get(&ops, &ops.relu(&ta).unwrap()), &a.iter().map(|v| v.max(0.0)).collect::<Vec<_>>(), 0.0);
    expect_close(
        "add",
        &get(&ops, &ops.add(&ta, &tb).unwrap()),
        &a.iter().zip(&b).map(|(x, y)| x + y).collect::<Vec<_>>(),
        0.0,
    );
    // keep broadcasts from (3, 4, 1)
    let keep: Vec<f32> = (0..12).map(|i| (i % 3 == 0) as u8 as f32).collect();
    let s = ops.select(&t(&ops, &keep, &[3, 4, 1]), &ta, &tb).unwrap();
    let want: Vec<f32> = (0..60).map(|i| if keep[i / 5] > 0.5 { a[i] } else { b[i] }).collect();
    expect_close("select", &get(&ops, &s), &want, 0.0);
    for axis in 0..3 {
        let m = ops.mean_keepdim(&ta, axis).unwrap();
        let mut mshape = shape.to_vec();
        mshape[axis] = 1;
        assert_eq!(ops.shape(&m), mshape);
        let st = strides(&shape);
        let mst = strides(&mshape);
        let mut want = vec![0f64; 60 / shape[axis]];
        for (i, &v) in a.iter().enumerate() {
            let o: usize = (0..3).map(|k| if k == axis { 0 } else { i / st[k] % shape[k] * mst[k] }).sum();
            want[o] += v as f64 / shape[axis] as f64;
        }
        expect_close("mean_keepdim", &get(&ops, &m), &want.iter().map(|&v| v as f32).collect::<Vec<_>>(), RTOL);
    }
}

#[test]
fn shape_ops() {
    let ops = MlxOps::new();
    let mut rng = Rng(5);
    let shape = [2, 3, 4, 5];
    let x = rng.vec(120);
    let tx = t(&ops, &x, &shape);
    // reshape keeps row-major order
    let r = ops.reshape(&tx, &[6, 20]).unwrap();
    assert_eq!(ops.shape(&r), vec![6, 20]);
    expect_close("reshape", &get(&ops, &r), &x, 0.0);
    // permute, and reshape of a permuted view
    for axes in [[0, 2, 1, 3], [3, 1, 0, 2], [1, 0, 3, 2]] {
        let p = ops.permute(&tx, &axes).unwrap();
        let (want, wshape) = host_permute(&x, &shape, &axes);
        assert_eq!(ops.shape(&p), wshape);
        expect_close("permute", &get(&ops, &p), &want, 0.0);
        let flat = ops.reshape(&p, &[wshape[0] * wshape[1], wshape[2] * wshape[3]]).unwrap();
        expect_close("reshape(permute)", &get(&ops, &flat), &want, 0.0);
    }
    // narrow on every axis
    for axis in 0..4 {
        let (start, len) = (1, shape[axis] - 1);
        let n = ops.narrow(&tx, axis, start, len).unwrap();
        let st = strides(&shape);
        let want: Vec<f32> = x
            .iter()
            .enumerate()
            .filter(|(i, _)| {
                let c = i / st[axis] % shape[axis];
                c >= start && c < start + len
            })
            .map(|(_, &v)| v)
            .collect();
        let mut wshape = shape.to_vec();
        wshape[axis] = len;
        assert_eq!(ops.shape(&n), wshape);
        expect_close("narrow", &get(&ops, &n), &want, 0.0);
    }
    // concat of narrowed pieces restores the input, along every axis
    for axis in 0..4 {
        let k = shape[axis];
        let parts = [ops.narrow(&tx, axis, 0, 1).unwrap(), ops.narrow(&tx, axis, 1, k - 1).unwrap()];
        expect_close("concat", &get(&ops, &ops.concat(&parts, axis).unwrap()), &x, 0.0);
    }
    let c3 = ops.concat(&[t(&ops, &x[..40], &[2, 20]), t(&ops, &x[40..], &[4, 20])], 0).unwrap();
    expect_close("concat rows", &get(&ops, &c3), &x, 0.0);
    // take_rows: permutation, repeats
    let rows = t(&ops, &x, &[6, 20]);
    for idx in [vec![5, 0, 3, 1, 4, 2], vec![2, 2, 0], vec![]] {
        let g = ops.take_rows(&rows, &idx).unwrap();
        assert_eq!(ops.shape(&g), vec![idx.len(), 20]);
        let want: Vec<f32> = idx.iter().flat_map(|&i| x[i * 20..(i + 1) * 20].to_vec()).collect();
        if !idx.is_empty() {
            expect_close("take_rows", &get(&ops, &g), &want, 0.0);
        }
    }
    // broadcast_to
    let small = rng.vec(4);
    let b = ops.broadcast_to(&t(&ops, &small, &[1, 1, 4]), &[3, 2, 4]).unwrap();
    expect_close("broadcast_to", &get(&ops, &b), &host_broadcast(&small, &[1, 1, 4], &[3, 2, 4]), 0.0);
    let col = rng.vec(3);
    let b = ops.broadcast_to(&t(&ops, &col, &[3, 1]), &[3, 5]).unwrap();
    expect_close("broadcast_to col", &get(&ops, &b), &host_broadcast(&col, &[3, 1], &[3, 5]), 0.0);
}

#[test]
fn rope_rotate_half_from_tables() {
    let ops = MlxOps::new();
    let mut rng = Rng(6);
    for (n, heads, seq, d, theta) in [(2, 3, 7, 8, 10000f32), (1, 2, 130, 64, 10000.0), (3, 1, 5, 4, 500.0)] {
        let half = d / 2;
        // tables as the core builds them (f32), rows p: cos(p * inv_freq)
        let inv: Vec<f32> = (0..half).map(|j| 1.0 / theta.powf((2 * j) as f32 / d as f32)).collect();
        let (mut cos, mut sin) = (Vec::new(), Vec::new());
        for p in 0..seq {
            for &f in &inv {
                let a = p as f32 * f;
                cos.push(a.cos());
                sin.push(a.sin());
            }
        }
        let x = rng.vec(n * heads * seq * d);
        let y = ops
            .rope(&t(&ops, &x, &[n, heads, seq, d]), &t(&ops, &cos, &[seq, half]), &t(&ops, &sin, &[seq, half]))
            .unwrap();
        let mut want = vec![0f32; x.len()];
        for row in 0..n * heads * seq {
            let p = row % seq;
            for j in 0..half {
                let (c, s) = (cos[p * half + j], sin[p * half + j]);
                let (x1, x2) = (x[row * d + j], x[row * d + half + j]);
                want[row * d + j] = x1 * c - x2 * s;
                want[row * d + half + j] = x2 * c + x1 * s;
            }
        }
        expect_close("rope", &get(&ops, &y), &want, RTOL);
        // on a permuted view, as the graph calls it: (n, seq, heads, d) -> (n, heads, seq, d)
        let (xs, _) = host_permute(&x, &[n, heads, seq, d], &[0, 2, 1, 3]);
        let view = ops.permute(&t(&ops, &xs, &[n, seq, heads, d]), &[0, 2, 1, 3]).unwrap();
        let y = ops.rope(&view, &t(&ops, &cos, &[seq, half]), &t(&ops, &sin, &[seq, half])).unwrap();
        expect_close("rope (view)", &get(&ops, &y), &want, RTOL);
    }
}

#[test]
fn attention_with_masks() {
    let ops = MlxOps::new();
    let mut rng = Rng(7);
    for (n, heads, len, d) in [(2, 3, 5, 4), (3, 2, 17, 16), (4, 1, 1, 8), (2, 4, 33, 64)] {
        let scale = 3.0; // large-ish logits, unscaled as in the model
        let q: Vec<f32> = rng.vec(n * heads * len * d).iter().map(|v| v * scale).collect();
        let k: Vec<f32> = rng.vec(n * heads * len * d).iter().map(|v| v * scale).collect();
        let v = rng.vec(n * heads * len * d);
        // batch 0: random keys masked (at least one visible); batch 1 (if any): all masked.
        let mut mask = vec![0f32; n * len];
        for b in 0..n {
            for j in 0..len {
                let masked = if b == 1 { true } else { rng.f32() < -0.3 && j != rng.below(len) };
                if masked {
                    mask[b * len + j] = f32::MIN;
                }
            }
        }
        if n > 0 && len > 1 {
            mask[0] = 0.0;
        }
        let shape = [n, heads, len, d];
        let out = ops
            .attention(
                &t(&ops, &q, &shape),
                &t(&ops, &k, &shape),
                &t(&ops, &v, &shape),
                &t(&ops, &mask, &[n, 1, 1, len]),
            )
            .unwrap();
        assert_eq!(ops.shape(&out), shape.to_vec());
        let got = get(&ops, &out);
        expect_close("attention", &got, &host_attention(&q, &k, &v, &mask, n, heads, len, len, d), RTOL);
        if n > 1 {
            // fully masked rows: uniform softmax = mean of v over keys, no NaN
            for h in 0..heads {
                for i in 0..len {
                    for c in 0..d {
                        let mean: f32 = (0..len).map(|j| v[((heads + h) * len + j) * d + c]).sum::<f32>() / len as f32;
                        let a = got[((heads + h) * len + i) * d + c];
                        assert!((a - mean).abs() <= 1e-5, "fully masked row: {a} vs mean {mean}");
                    }
                }
            }
        }
    }
}

#[test]
fn attention_on_permuted_views_as_in_group_attention() {
    // (groups*size, seq, heads*d) -> (groups*seq, heads, size, d), as GroupSelfAttention does.
    let ops = MlxOps::new();
    let mut rng = Rng(8);
    let (groups, size, seq, heads, d) = (2, 3, 4, 2, 8);
    let rows = groups * size;
    let x: Vec<Vec<f32>> = (0..3).map(|_| rng.vec(rows * seq * heads * d)).collect();
    let to_heads = |t: &MlxTensor| {
        let t = ops.reshape(t, &[groups, size, seq, heads, d]).unwrap();
        let t = ops.permute(&t, &[0, 2, 3, 1, 4]).unwrap();
        ops.reshape(&t, &[groups * seq, heads, size, d]).unwrap()
    };
    let host_heads = |v: &[f32]| host_permute(v, &[groups, size, seq, heads, d], &[0, 2, 3, 1, 4]).0;
    let mut mask = vec![0f32; groups * seq * size];
    mask[1] = f32::MIN;
    for j in 0..size {
        mask[(groups * seq - 1) * size + j] = f32::MIN; // last (group, t): nothing visible
    }
    let tq = to_heads(&t(&ops, &x[0], &[rows, seq, heads * d]));
    let tk = to_heads(&t(&ops, &x[1], &[rows, seq, heads * d]));
    let tv = to_heads(&t(&ops, &x[2], &[rows, seq, heads * d]));
    let out = ops.attention(&tq, &tk, &tv, &t(&ops, &mask, &[groups * seq, 1, 1, size])).unwrap();
    let want = host_attention(
        &host_heads(&x[0]),
        &host_heads(&x[1]),
        &host_heads(&x[2]),
        &mask,
        groups * seq,
        heads,
        size,
        size,
        d,
    );
    expect_close("group attention", &get(&ops, &out), &want, RTOL);
}
