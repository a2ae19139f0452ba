// Direct convolution micro-kernels for the narrow layers of a small U-Net
// (16–64 channels), where im2col + a BLAS GEMM spends most of its time copying:
// the GEMM's N dimension (output channels) is a single vector or two, so
// packing the im2col matrix costs as much as the arithmetic.
//
// Both kernels read a zero-padded copy of the input, so every filter tap is in
// bounds and the element of im2col(x) at (output pixel p, k = (a, b, c)) is
// padded[base(p) + offset[k]]: no im2col matrix is built.
//   forward:        y[p, :]  = Σ_k padded[base(p) + offset[k]] · w[k, :]
//   filter grad:   dw[k, :]  = Σ_p padded[base(p) + offset[k]] · dy[p, :]
// The input gradient of a stride-1 convolution is the forward kernel applied to
// the padded dy with the flipped, transposed filter.
//
// Register blocking: a block of R pixels (forward) or R filter rows (filter
// gradient) times V 16-float vectors of channels, R·V = 16 accumulators. The
// vector type is GCC's generic vector; on x86-64 the public entry points are
// compiled for AVX-512, AVX2+FMA and the baseline and picked at load time
// (target_clones), so one build runs on any x86-64 machine.
#pragma once

#include <cstdint>
#include <cstring>

// The helpers below are always inlined into the target-specific clones, so the
// generic vector never crosses a call boundary (GCC would warn about its ABI).
#pragma GCC diagnostic ignored "-Wpsabi"

namespace direct {

typedef float v16 __attribute__((vector_size(64)));

inline __attribute__((always_inline)) v16 load(const float* p) {
  v16 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline __attribute__((always_inline)) void store(float* p, v16 v) { std::memcpy(p, &v, sizeof v); }

// Output channels per vector; a layer qualifies when its channel count is a multiple.
constexpr int64_t kLanes = 16;

// R consecutive output pixels (input positions `step` floats apart, starting
// at x) times V vectors of output channels: out[j*co + 16v] = Σ_k x[j*step + offs[k]] · w[k*co + 16v],
// then + bias and max(0, ·) when asked.
template <int V, int R>
inline __attribute__((always_inline)) void forwardBlock(const float* x, int64_t step, const int64_t* offs, int64_t K, const float* w, int64_t co,
                                                        const float* bias, bool relu, float* out) {
  v16 acc[R][V];
  for (int j = 0; j < R; j++)
    for (int v = 0; v < V; v++) acc[j][v] = v16{};
  for (int64_t k = 0; k < K; k++) {
    v16 wv[V];
    for (int v = 0; v < V; v++) wv[v] = load(w + k * co + v * kLanes);
    const float* xk = x + offs[k];
    for (int j = 0; j < R; j++) {
      const float s = xk[j * step];
      for (int v = 0; v < V; v++) acc[j][v] += s * wv[v];
    }
  }
  for (int j = 0; j < R; j++) {
    for (int v = 0; v < V; v++) {
      v16 r = acc[j][v];
      if (bias != nullptr) r += load(bias + v * kLanes);
      if (relu) r = (r > 0.f) | (r != r) ? r : 0.f;  // max(0, r), NaN kept (the cpu backend's ReLU)
      store(out + j * co + v * kLanes, r);
    }
  }
}

// A run of `count` pixels: blocks of R, then 8, 4, 2, 1 for the tail.
template <int V, int R>
inline __attribute__((always_inline)) void forwardRun(const float* x, int64_t step, const int64_t* offs, int64_t K, const float* w, int64_t co,
                                                      const float* bias, bool relu, float* out, int64_t count) {
  int64_t j = 0;
  for (; j + R <= count; j += R) forwardBlock<V, R>(x + j * step, step, offs, K, w, co, bias, relu, out + j * co);
  if (R > 8 && j + 8 <= count) { forwardBlock<V, (R > 8 ? 8 : 1)>(x + j * step, step, offs, K, w, co, bias, relu, out + j * co); j += 8; }
  if (R > 4 && j + 4 <= count) { forwardBlock<V, (R > 4 ? 4 : 1)>(x + j * step, step, offs, K, w, co, bias, relu, out + j * co); j += 4; }
  if (R > 2 && j + 2 <= count) { forwardBlock<V, (R > 2 ? 2 : 1)>(x + j * step, step, offs, K, w, co, bias, relu, out + j * co); j += 2; }
  for (; j < count; j++) forwardBlock<V, 1>(x + j * step, step, offs, K, w, co, bias, relu, out + j * co);
}

// R filter rows k0 .. k0+R-1 (offsets offs[0..R)) times V vectors of output
// channels, summed over `count` output pixels whose padded input bases are
// x + i*step for i in the run, with dy rows dy + i*co.
template <int V, int R>
inline __attribute__((always_inline)) void filterBlock(const float* x, int64_t step, const int64_t* offs, const float* dy, int64_t co, int64_t count,
                                                       v16 (&acc)[R][V]) {
  for (int64_t i = 0; i < count; i++) {
    v16 g[V];
    for (int v = 0; v < V; v++) g[v] = load(dy + i * co + v * kLanes);
    const float* xi = x + i * step;
    for (int j = 0; j < R; j++) {
      const float s = xi[offs[j]];
      for (int v = 0; v < V; v++) acc[j][v] += s * g[v];
    }
  }
}

}  // namespace direct
