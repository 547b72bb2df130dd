//! CPU kernels at the full-size model's shapes: the packed fp32 GEMM against candle's matmul
//! (gemm crate, which packs the weight on every call), the same products with bf16 (the
//! detected kernel: AMX tiles where the CPU grants them, else `vdpbf16ps` where it has
//! AVX512-BF16), int8 and int4 (weight-only) and w8a8 weights (AMX, else VNNI; where AMX runs,
//! also the AVX-512 kernels as `bf16_avx512` and `w8a8_vnni` for comparison), and the fused time attention against the materialised
//! `softmax(q kᵀ + mask) v` in candle ops.
//!
//! `cargo bench -p chronos2-bench --bench kernels`. Read ratios within one run: on a shared
//! machine absolute numbers move between runs.

use candle_core::{Device, Tensor};
use chronos2_candle_cpu::attention::{attention, AttentionShape};
use chronos2_candle_cpu::gemm::{Bf16Kernel, Bf16Matmul};
use chronos2_candle_cpu::w8a8::{W8a8Isa, W8a8Matmul};
use chronos2_candle_cpu::{Isa, PackedMatmul, QuantizedMatmul};
use chronos2_core::quant::quantize;
use chronos2_test_fixtures::random_values as values;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

/// Token rows of the model's calls: 1x128 (11), 8x128 (88), 8x512 (280), 32x512 (1120), 64x512 (2240).
const ROWS: [usize; 5] = [11, 88, 280, 1120, 2240];

fn gemm(c: &mut Criterion) {
    let dev = Device::Cpu;
    for (k, n) in [(768usize, 768usize), (768, 3072), (3072, 768)] {
        let w = values(n * k, 1, 0.05);
        let packed = PackedMatmul::new(&w, n, k).unwrap();
        let bf16 = Bf16Matmul::new(&w, n, k).unwrap();
        let q8 = quantize(&w, n, k, 8, 64).unwrap();
        let int8 = QuantizedMatmul::new(&q8).unwrap();
        let int4 = QuantizedMatmul::new(&quantize(&w, n, k, 4, 64).unwrap()).unwrap();
        let w8a8 = W8a8Matmul::new(&q8).unwrap();
        // The AVX-512 kernels beside the AMX ones, where AMX runs.
        #[cfg(target_arch = "x86_64")]
        let avx512 = (Bf16Kernel::detect() == Bf16Kernel::Amx && Bf16Kernel::Dot.available()).then(|| {
            (
                Bf16Matmul::with_kernel(&w, n, k, Bf16Kernel::Dot).unwrap(),
                W8a8Matmul::with_isa(&q8, W8a8Isa::Vnni).unwrap(),
            )
        });
        let wt = Tensor::from_slice(&w, (n, k), &dev).unwrap();
        let mut group = c.benchmark_group(format!("gemm_{k}to{n}"));
        group.sample_size(10);
        for m in ROWS {
            let x = values(m * k, 2, 1.0);
            let xt = Tensor::from_slice(&x, (m, k), &dev).unwrap();
            let mut y = vec![0f32; m * n];
            group.throughput(Throughput::Elements((2 * m * n * k) as u64));
            group.bench_function(BenchmarkId::new("packed", m), |b| {
                b.iter(|| packed.matmul(&x, m, None, &mut y).unwrap())
            });
            group.bench_function(BenchmarkId::new("bf16", m), |b| b.iter(|| bf16.matmul(&x, m, None, &mut y).unwrap()));
            group.bench_function(BenchmarkId::new("int8", m), |b| b.iter(|| int8.matmul(&x, m, None, &mut y).unwrap()));
            group.bench_function(BenchmarkId::new("int4", m), |b| b.iter(|| int4.matmul(&x, m, None, &mut y).unwrap()));
            group.bench_function(BenchmarkId::new("w8a8", m), |b| b.iter(|| w8a8.matmul(&x, m, None, &mut y).unwrap()));
            #[cfg(target_arch = "x86_64")]
            if let Some((bf16_dot, w8a8_vnni)) = &avx512 {
                group.bench_function(BenchmarkId::new("bf16_avx512", m), |b| {
                    b.iter(|| bf16_dot.matmul(&x, m, None, &mut y).unwrap())
                });
                group.bench_function(BenchmarkId::new("w8a8_vnni", m), |b| {
                    b.iter(|| w8a8_vnni.matmul(&x, m, None, &mut y).unwrap())
                });
            }
            group.bench_function(BenchmarkId::new("candle", m), |b| b.iter(|| xt.matmul(&wt.t().unwrap()).unwrap()));
        }
        group.finish();
    }
}

fn time_attention(c: &mut Criterion) {
    let dev = Device::Cpu;
    let (heads, d) = (12, 64);
    // (batch, tokens): 1x128, 8x512, 64x512, 1x2048 with two output patches and the REG token.
    for (batch, len) in [(1usize, 11usize), (8, 35), (64, 35), (1, 131), (8, 131)] {
        let shape = AttentionShape { batch, heads, q_len: len, k_len: len, d };
        let q = values(batch * heads * len * d, 1, 1.0);
        let k = values(batch * heads * len * d, 2, 1.0);
        let v = values(batch * heads * len * d, 3, 1.0);
        let mut mask = vec![0f32; batch * len];
        mask[0] = f32::MIN;
        let t = |data: &[f32]| Tensor::from_slice(data, (batch, heads, len, d), &dev).unwrap();
        let (qt, kt, vt) = (t(&q), t(&k), t(&v));
        let mt = Tensor::from_slice(&mask, (batch, 1, 1, len), &dev).unwrap();
        let mut group = c.benchmark_group(format!("attention_{batch}x{len}"));
        group.sample_size(10);
        group.bench_function("fused", |b| b.iter(|| attention(&q, &k, &v, &mask, shape, Isa::detect()).unwrap()));
        group.bench_function("candle_materialised", |b| {
            b.iter(|| {
                let s = qt.matmul(&kt.t().unwrap()).unwrap().broadcast_add(&mt).unwrap();
                candle_nn_softmax(&s).matmul(&vt).unwrap()
            })
        });
        group.finish();
    }
}

/// Softmax over the last axis in candle ops (max-subtracted).
fn candle_nn_softmax(s: &Tensor) -> Tensor {
    let max = s.max_keepdim(3).unwrap();
    let e = s.broadcast_sub(&max).unwrap().exp().unwrap();
    let sum = e.sum_keepdim(3).unwrap();
    e.broadcast_div(&sum).unwrap()
}

criterion_group!(benches, gemm, time_attention);
criterion_main!(benches);
