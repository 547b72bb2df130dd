// Chronos-2 CUDA kernels, compiled at run time by NVRTC (see kernels.rs). fp32 throughout, no
// fast math: the results follow the reference's fp32 arithmetic up to summation order.

#define MAX_RANK 6

struct Dims {
    unsigned long long d[MAX_RANK];
};

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// T5 RMS norm over rows of length d: y = w * (x / sqrt(mean(x^2) + eps)). One block per row.
extern "C" __global__ void rms_norm_f32(const float* x, const float* w, float* y, unsigned int d, float eps) {
    const float* xr = x + (unsigned long long)blockIdx.x * d;
    float* yr = y + (unsigned long long)blockIdx.x * d;
    float s = 0.0f;
    for (unsigned int i = threadIdx.x; i < d; i += blockDim.x) {
        float v = xr[i];
        s += v * v;
    }
    __shared__ float partial[32];
    s = warp_sum(s);
    unsigned int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (lane == 0) partial[warp] = s;
    __syncthreads();
    if (warp == 0) {
        s = lane < (blockDim.x + 31) / 32 ? partial[lane] : 0.0f;
        s = warp_sum(s);
        if (lane == 0) partial[0] = s;
    }
    __syncthreads();
    float inv = 1.0f / sqrtf(partial[0] / (float)d + eps);
    for (unsigned int i = threadIdx.x; i < d; i += blockDim.x) yr[i] = w[i] * (xr[i] * inv);
}

extern "C" __global__ void add_f32(const float* a, const float* b, float* y, unsigned long long n) {
    unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = a[i] + b[i];
}

extern "C" __global__ void relu_f32(const float* x, float* y, unsigned long long n) {
    unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = fmaxf(x[i], 0.0f);
}

// y[r, j] += b[j] for rows of length n (in place after a GEMM).
extern "C" __global__ void bias_add_f32(float* y, const float* b, unsigned int n, unsigned long long total) {
    unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < total) y[i] += b[i % n];
}

// keep > 0.5 ? a : b, all of the same shape.
extern "C" __global__ void select_f32(const float* keep, const float* a, const float* b, float* y,
                                      unsigned long long n) {
    unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = keep[i] > 0.5f ? a[i] : b[i];
}

// Round to nearest even, as PyTorch's `.to(torch.bfloat16)`; NaN stays a quiet NaN.
extern "C" __global__ void f32_to_bf16(const float* x, unsigned short* y, unsigned long long n) {
    unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    unsigned int u = __float_as_uint(x[i]);
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        y[i] = (unsigned short)((u >> 16) | 0x40u);
        return;
    }
    u += 0x7fffu + ((u >> 16) & 1u);
    y[i] = (unsigned short)(u >> 16);
}

// Copies the `n` elements of an array of shape `dims` (rank <= MAX_RANK, unused leading dims 1)
// from `src` with element strides `src_strides` (0 broadcasts) to `dst` with `dst_strides`.
// Covers permute, broadcast, narrow and each part of a concat.
extern "C" __global__ void strided_copy_f32(const float* src, float* dst, unsigned long long n, Dims dims,
                                            Dims src_strides, Dims dst_strides) {
    unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    unsigned long long rest = i, s = 0, t = 0;
#pragma unroll
    for (int a = MAX_RANK - 1; a >= 0; --a) {
        unsigned long long idx = rest % dims.d[a];
        rest /= dims.d[a];
        s += idx * src_strides.d[a];
        t += idx * dst_strides.d[a];
    }
    dst[t] = src[s];
}

// Mean over the middle axis of an (outer, len, inner) array: y (outer, inner).
extern "C" __global__ void mean_axis_f32(const float* x, float* y, unsigned long long outer, unsigned int len,
                                         unsigned long long inner) {
    unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= outer * inner) return;
    unsigned long long o = i / inner, k = i % inner;
    const float* p = x + o * len * inner + k;
    float s = 0.0f;
    for (unsigned int j = 0; j < len; ++j) s += p[(unsigned long long)j * inner];
    y[i] = s / (float)len;
}

// y[r] = x[idx[r]] for rows of `row_len` elements.
extern "C" __global__ void take_rows_f32(const float* x, const unsigned int* idx, float* y,
                                         unsigned long long row_len, unsigned long long n) {
    unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    unsigned long long r = i / row_len, c = i % row_len;
    y[i] = x[(unsigned long long)idx[r] * row_len + c];
}

// Rotate-half RoPE on x (n, heads, seq, d) with tables cos/sin (seq, d/2):
// [x1 c - x2 s, x2 c + x1 s] for x = [x1, x2].
extern "C" __global__ void rope_f32(const float* x, const float* cos_t, const float* sin_t, float* y,
                                    unsigned int seq, unsigned int d, unsigned long long n) {
    unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    unsigned int half = d / 2;
    unsigned int j = (unsigned int)(i % d);
    unsigned int p = (unsigned int)((i / d) % seq);
    const float* row = x + (i - j);
    if (j < half) {
        float c = cos_t[p * half + j], s = sin_t[p * half + j];
        y[i] = row[j] * c - row[j + half] * s;
    } else {
        unsigned int h = j - half;
        float c = cos_t[p * half + h], s = sin_t[p * half + h];
        y[i] = row[j] * c + row[h] * s;
    }
}

// Attention softmax(q k^T + mask) v without scaling, flash style: each thread owns one query
// row (its q and output accumulator in registers) and streams the keys of its (batch, head)
// through shared memory in tiles of KEY_TILE, with an online softmax; no (len x len) scores are
// stored. q, k, v, out: (batch, heads, len, d) contiguous; mask: (batch, len) additive (0 or a
// large negative finite value: a fully masked row softmaxes to uniform weights, as in the
// reference). Grid: (batch * heads, ceil(len / blockDim.x)). D_MAX >= d, a compile-time bound
// so that q and the accumulator stay in registers.
#define KEY_TILE 32

template <int D_MAX>
__device__ void attention_impl(const float* q, const float* k, const float* v, const float* mask, float* out,
                               unsigned int heads, unsigned int len, unsigned int d) {
    __shared__ float ks[KEY_TILE][D_MAX];
    __shared__ float vs[KEY_TILE][D_MAX];
    __shared__ float ms[KEY_TILE];
    unsigned int bh = blockIdx.x;
    unsigned int b = bh / heads;
    unsigned long long base = (unsigned long long)bh * len * d;
    unsigned int row = blockIdx.y * blockDim.x + threadIdx.x;
    bool active = row < len;
    float qr[D_MAX], acc[D_MAX];
#pragma unroll
    for (int j = 0; j < D_MAX; ++j) {
        qr[j] = (active && j < (int)d) ? q[base + (unsigned long long)row * d + j] : 0.0f;
        acc[j] = 0.0f;
    }
    float m = -__int_as_float(0x7f800000), l = 0.0f;  // -inf (NVRTC has no math.h macros)
    const float* mrow = mask + (unsigned long long)b * len;
    for (unsigned int t0 = 0; t0 < len; t0 += KEY_TILE) {
        unsigned int tile = len - t0 < KEY_TILE ? len - t0 : KEY_TILE;
        for (unsigned int e = threadIdx.x; e < tile * d; e += blockDim.x) {
            unsigned int kk = e / d, j = e % d;
            ks[kk][j] = k[base + (unsigned long long)(t0 + kk) * d + j];
            vs[kk][j] = v[base + (unsigned long long)(t0 + kk) * d + j];
        }
        for (unsigned int e = threadIdx.x; e < tile; e += blockDim.x) ms[e] = mrow[t0 + e];
        __syncthreads();
        if (active) {
            for (unsigned int kk = 0; kk < tile; ++kk) {
                float s = 0.0f;
#pragma unroll
                for (int j = 0; j < D_MAX; ++j)
                    if (j < (int)d) s = fmaf(qr[j], ks[kk][j], s);
                s += ms[kk];
                if (s > m) {
                    float r = expf(m - s);
                    l *= r;
#pragma unroll
                    for (int j = 0; j < D_MAX; ++j) acc[j] *= r;
                    m = s;
                }
                float p = expf(s - m);
                l += p;
#pragma unroll
                for (int j = 0; j < D_MAX; ++j)
                    if (j < (int)d) acc[j] = fmaf(p, vs[kk][j], acc[j]);
            }
        }
        __syncthreads();
    }
    if (active) {
        float inv = 1.0f / l;
#pragma unroll
        for (int j = 0; j < D_MAX; ++j)
            if (j < (int)d) out[base + (unsigned long long)row * d + j] = acc[j] * inv;
    }
}

#define ATTENTION_KERNEL(D)                                                                              \
    extern "C" __global__ void attention_f32_d##D(const float* q, const float* k, const float* v,        \
                                                  const float* mask, float* out, unsigned int heads,    \
                                                  unsigned int len, unsigned int d) {                    \
        attention_impl<D>(q, k, v, mask, out, heads, len, d);                                            \
    }

ATTENTION_KERNEL(8)
ATTENTION_KERNEL(16)
ATTENTION_KERNEL(32)
ATTENTION_KERNEL(64)
ATTENTION_KERNEL(128)
