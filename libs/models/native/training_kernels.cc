// Native training kernels for TensorFlow.js tensors that live on the wasm
// backend's heap: the 2D convolution (with a bias + ReLU epilogue) and its two
// gradients — direct kernels (direct_conv.h) where the channels come in whole
// vectors, im2col / col2im and the system BLAS (OpenBLAS on Debian) otherwise —
// and the cheaper kernels of a training step: leading-axes sums and means,
// Tile, MaxPoolGrad, same-shape / per-channel / scalar arithmetic, ReLU and
// Step, strided copies (Concat, SplitV), BatchNorm, and a fused Adam update.
// Convolutions and large element-wise kernels split over a small thread pool
// (Pool; setKernelThreads). NHWC activations, filters [KH, KW, Cin, Cout]
// (row-major, so the filter is the matrix [KH*KW*Cin, Cout]), dilation 1.
// Loaded by libs/models/src/kernels/native.ts; built by
// libs/models/native/build.mjs.
//
// Every function takes its float32 operands as Float32Arrays (views on the
// wasm heap, no copy). The convolutions take one Int32Array of geometry:
//   [N, H, W, Cin, KH, KW, Cout, OH, OW, strideH, strideW, padTop, padLeft]
// The caller (TypeScript) validates shapes; the sizes are checked again here
// so a bad call throws instead of reading out of bounds.
#include <node_api.h>
#include <cblas.h>

#include "direct_conv.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

extern "C" void openblas_set_num_threads(int);
extern "C" int openblas_get_num_threads(void);
extern "C" char* openblas_get_config(void);

namespace {

struct Geometry {
  int64_t n, h, w, ci, kh, kw, co, oh, ow, sh, sw, pt, pl;
  int64_t k() const { return kh * kw * ci; }
  bool pointwise() const { return kh == 1 && kw == 1 && sh == 1 && sw == 1 && pt == 0 && pl == 0 && oh == h && ow == w; }
};

// ---- Intra-op threads ------------------------------------------------------
//
// A convolution can be split over a few threads: the forward pass and the
// filter gradient by output pixel, the input gradient by input row. The pool's
// helper threads live for the process; each JavaScript thread that calls the
// addon sets its own thread count (setKernelThreads; 1 on the data-parallel
// workers, which already use the other cores). One split runs at a time; a
// call that finds the pool busy runs its parts in turn on its own thread.

class Pool {
 public:
  static Pool& get() {
    static Pool* pool = new Pool();  // never destroyed: helpers run until the process exits
    return *pool;
  }

  // Runs fn(0) .. fn(parts - 1), part 0 on the calling thread; returns when all are done.
  void run(int parts, const std::function<void(int)>& fn) {
    std::unique_lock<std::mutex> busy(submit_, std::try_to_lock);
    if (parts <= 1 || !busy.owns_lock()) {
      for (int i = 0; i < parts; i++) fn(i);
      return;
    }
    int used = 0;  // helpers given a part; the caller runs part 0 and any part no helper could take
    {
      std::lock_guard<std::mutex> lock(mutex_);
      helpers_.reserve(static_cast<size_t>(parts));
      while (static_cast<int>(helpers_.size()) < parts - 1) {
        auto helper = std::make_unique<Helper>();
        Helper* h = helper.get();
        const int index = static_cast<int>(helpers_.size()) + 1;
        try {
          std::thread([this, h, index] { loop(h, index); }).detach();
        } catch (const std::system_error&) {
          break;  // no more threads here (a container's limit): run with the helpers there are
        }
        helpers_.push_back(std::move(helper));
      }
      used = std::min(parts - 1, static_cast<int>(helpers_.size()));
      ticket_++;
      pending_.store(used, std::memory_order_relaxed);
      for (int i = 0; i < used; i++) {
        helpers_[i]->job = &fn;
        helpers_[i]->go.store(ticket_, std::memory_order_release);
      }
    }
    if (sleepers_.load() > 0) wake_.notify_all();
    fn(0);
    for (int i = used + 1; i < parts; i++) fn(i);
    // The parts are even, so the others finish about now: spin rather than sleep.
    while (pending_.load(std::memory_order_acquire) != 0) pause();
  }

 private:
  // One helper thread: it runs part `index` of a job each time `go` takes a new ticket.
  struct Helper {
    std::atomic<uint64_t> go{0};
    const std::function<void(int)>* job = nullptr;
  };

  static void pause() {
#if defined(__x86_64__)
    __builtin_ia32_pause();
#endif
  }

  // A helper spins this long for its next part before it sleeps: a training
  // step calls kernels back to back, and waking a sleeping thread costs about
  // as much as a small element-wise kernel.
  static constexpr std::chrono::microseconds kSpin{300};

  void loop(Helper* h, int index) {
    uint64_t seen = 0;
    for (;;) {
      uint64_t now = h->go.load(std::memory_order_acquire);
      const auto until = std::chrono::steady_clock::now() + kSpin;
      for (int i = 0; now == seen; i++) {
        pause();
        now = h->go.load(std::memory_order_acquire);
        if ((i & 63) == 63 && std::chrono::steady_clock::now() > until) break;
      }
      if (now == seen) {
        std::unique_lock<std::mutex> lock(mutex_);
        sleepers_++;
        wake_.wait(lock, [&] { return h->go.load(std::memory_order_acquire) != seen; });
        sleepers_--;
        now = h->go.load(std::memory_order_acquire);
      }
      seen = now;
      (*h->job)(index);
      pending_.fetch_sub(1, std::memory_order_release);
    }
  }

  std::mutex submit_, mutex_;
  std::condition_variable wake_;
  std::vector<std::unique_ptr<Helper>> helpers_;
  uint64_t ticket_ = 0;
  std::atomic<int> pending_{0}, sleepers_{0};
};

thread_local int kernelThreads = 1;

// Parts to split `flops` of work into: at most the caller's thread count, and
// at least ~4 MFLOP per part so waking a helper pays for itself.
int partsFor(double flops) {
  const int byWork = static_cast<int>(flops / 4e6);
  return std::max(1, std::min(kernelThreads, byWork));
}

// [begin, end) of part `t` of `parts` over `total` items.
inline int64_t partBegin(int64_t total, int t, int parts) { return total * t / parts; }

// Element-wise work splits into parts of at least this many floats (512 KiB).
constexpr int64_t kElementGrain = int64_t{1} << 17;

// fn(begin, end) over [0, n) split into elementParts(n, n / align) parts,
// every boundary a multiple of `align`.
// Parts for element-wise work of n items in `units` indivisible units: at most
// the caller's thread count, at least kElementGrain items each.
int elementParts(int64_t n, int64_t units) { return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>({kernelThreads, n / kElementGrain, units}))); }

template <typename Fn>
void parallelFor(int64_t n, int64_t align, Fn fn) {
  const int64_t units = n / align;
  const int parts = elementParts(n, units);
  if (parts == 1) {
    fn(int64_t{0}, n);
    return;
  }
  Pool::get().run(parts, [&](int t) {
    const int64_t begin = partBegin(units, t, parts) * align;
    const int64_t end = t + 1 == parts ? n : partBegin(units, t + 1, parts) * align;
    fn(begin, end);
  });
}

// Output pixels per im2col chunk: the chunk's columns stay near 1 MiB so they
// are still in cache when the GEMM reads them.
int64_t chunkRows(const Geometry& g) {
  const int64_t rows = (1 << 18) / std::max<int64_t>(g.k(), 1);
  return std::max<int64_t>(64, rows);
}

// Calls fn(n, p0, rows) for the output pixels [begin, end) of the flattened
// [N, OH*OW] index, in chunks of at most `chunk` that never cross an image.
template <typename Fn>
void forChunks(const Geometry& g, int64_t begin, int64_t end, int64_t chunk, Fn fn) {
  const int64_t opix = g.oh * g.ow;
  for (int64_t r = begin; r < end;) {
    const int64_t n = r / opix, p0 = r % opix;
    const int64_t rows = std::min({chunk, end - r, opix - p0});
    fn(n, p0, rows);
    r += rows;
  }
}

// col[r, (a*KW + b)*Cin + c] = x[n, y*sh - pt + a, x*sw - pl + b, c] for output
// pixels p0 .. p0+rows-1 of image n (zeros outside the image).
void im2col(const float* x, const Geometry& g, int64_t p0, int64_t rows, float* col) {
  const int64_t k = g.k();
  const size_t run = static_cast<size_t>(g.ci) * sizeof(float);
  for (int64_t r = 0; r < rows; r++) {
    const int64_t p = p0 + r;
    const int64_t oy = p / g.ow, ox = p % g.ow;
    float* dst = col + r * k;
    for (int64_t a = 0; a < g.kh; a++) {
      const int64_t iy = oy * g.sh - g.pt + a;
      for (int64_t b = 0; b < g.kw; b++, dst += g.ci) {
        const int64_t ix = ox * g.sw - g.pl + b;
        if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) {
          std::memset(dst, 0, run);
        } else {
          std::memcpy(dst, x + (iy * g.w + ix) * g.ci, run);
        }
      }
    }
  }
}

// The adjoint of im2col restricted to input rows [rowLo, rowHi): adds col's
// entries that land there back onto dx (one image).
void col2imAdd(const float* col, const Geometry& g, int64_t p0, int64_t rows, int64_t rowLo, int64_t rowHi, float* dx) {
  const int64_t k = g.k();
  for (int64_t r = 0; r < rows; r++) {
    const int64_t p = p0 + r;
    const int64_t oy = p / g.ow, ox = p % g.ow;
    const float* src = col + r * k;
    for (int64_t a = 0; a < g.kh; a++, src += g.kw * g.ci) {
      const int64_t iy = oy * g.sh - g.pt + a;
      if (iy < rowLo || iy >= rowHi) continue;
      const float* s = src;
      for (int64_t b = 0; b < g.kw; b++, s += g.ci) {
        const int64_t ix = ox * g.sw - g.pl + b;
        if (ix < 0 || ix >= g.w) continue;
        float* d = dx + (iy * g.w + ix) * g.ci;
        for (int64_t c = 0; c < g.ci; c++) d[c] += s[c];
      }
    }
  }
}

// Scratch buffers kept per thread between calls: `buf` grown to at least n floats.
float* grown(std::vector<float>& buf, size_t n) {
  if (buf.size() < n) buf.resize(n);
  return buf.data();
}

thread_local std::vector<float> scratch;  // im2col columns

float* scratchOf(size_t n) { return grown(scratch, n); }

double convFlops(const Geometry& g) { return 2.0 * static_cast<double>(g.n * g.oh * g.ow) * static_cast<double>(g.k() * g.co); }

// y += bias (per output channel), then y = max(y, 0) when relu: the epilogue
// of a fused convolution, over `pixels` rows of y.
void biasRelu(float* y, int64_t pixels, int64_t co, const float* bias, bool relu) {
  if (bias == nullptr && !relu) return;
  for (int64_t p = 0; p < pixels; p++) {
    float* r = y + p * co;
    if (bias != nullptr) {
      for (int64_t c = 0; c < co; c++) r[c] += bias[c];
    }
    if (relu) {
      for (int64_t c = 0; c < co; c++) r[c] = r[c] > 0.f || std::isnan(r[c]) ? r[c] : 0.f;
    }
  }
}

// ---- Direct convolutions (direct_conv.h) ------------------------------------

// The direct kernels take a convolution whose output channels come in whole
// vectors; the rest (and 1×1 convolutions, which are a plain GEMM) use BLAS.
bool directFits(int64_t channels, const Geometry& g) { return channels % direct::kLanes == 0 && !g.pointwise(); }

// The zero-padded input: per image hp × wp pixels of Cin channels, with input
// pixel (iy, ix) at padded (iy + pt, ix + pl); exactly the extent the filter
// windows of all output pixels cover.
struct Padded {
  int64_t hp, wp;
  explicit Padded(const Geometry& g) : hp((g.oh - 1) * g.sh + g.kh), wp((g.ow - 1) * g.sw + g.kw) {}
  int64_t size(const Geometry& g) const { return g.n * hp * wp * g.ci; }
  // Float offset of output pixel (n, oy, ox)'s window origin.
  int64_t base(const Geometry& g, int64_t n, int64_t oy, int64_t ox) const { return ((n * hp + oy * g.sh) * wp + ox * g.sw) * g.ci; }
};

// Writes padded rows [r0, r1) of the flattened [N, hp] index.
void padRows(const float* x, const Geometry& g, const Padded& p, int64_t r0, int64_t r1, float* out) {
  const int64_t rowFloats = p.wp * g.ci;
  const int64_t lead = std::min(g.pl, p.wp), cols = std::max<int64_t>(0, std::min(g.w, p.wp - lead));
  for (int64_t r = r0; r < r1; r++) {
    const int64_t n = r / p.hp, iy = r % p.hp - g.pt;
    float* dst = out + r * rowFloats;
    if (iy < 0 || iy >= g.h) {
      std::memset(dst, 0, static_cast<size_t>(rowFloats) * sizeof(float));
      continue;
    }
    std::memset(dst, 0, static_cast<size_t>(lead * g.ci) * sizeof(float));
    std::memcpy(dst + lead * g.ci, x + (n * g.h + iy) * g.w * g.ci, static_cast<size_t>(cols * g.ci) * sizeof(float));
    std::memset(dst + (lead + cols) * g.ci, 0, static_cast<size_t>((p.wp - lead - cols) * g.ci) * sizeof(float));
  }
}

// Pads x into this thread's buffer, split over `parts`; returns the buffer.
thread_local std::vector<float> padScratch;

const float* padInput(const float* x, const Geometry& g, const Padded& p, int parts) {
  float* out = grown(padScratch, static_cast<size_t>(p.size(g)));
  const int64_t rows = g.n * p.hp;
  Pool::get().run(parts, [&](int t) { padRows(x, g, p, partBegin(rows, t, parts), partBegin(rows, t + 1, parts), out); });
  return out;
}

// offs[k] for k = (a, b, c): the padded-input offset of tap (a, b), channel c, from a window origin.
std::vector<int64_t> tapOffsets(const Geometry& g, const Padded& p) {
  std::vector<int64_t> offs(static_cast<size_t>(g.k()));
  for (int64_t a = 0, k = 0; a < g.kh; a++)
    for (int64_t b = 0; b < g.kw; b++)
      for (int64_t c = 0; c < g.ci; c++) offs[static_cast<size_t>(k++)] = (a * p.wp + b) * g.ci + c;
  return offs;
}

// Vectors in the channel group that starts at c0: at most 4 (64 channels).
inline int groupVectors(int64_t channels, int64_t c0) {
  const int64_t left = (channels - c0) / direct::kLanes;
  return left >= 4 ? 4 : left >= 2 ? 2 : 1;
}

#if defined(__x86_64__)
#define PURIFY_CLONES __attribute__((target_clones("avx512f", "arch=x86-64-v3", "default")))
#else
#define PURIFY_CLONES
#endif

// One output row of `ow` pixels, all channel groups. (No lambdas in the cloned
// functions: a lambda body is a function of its own, compiled for the baseline.)
PURIFY_CLONES
void forwardRow(const float* x, int64_t step, const int64_t* offs, int64_t K, const float* w, int64_t co, const float* bias, bool relu, float* out, int64_t ow) {
  for (int64_t c0 = 0; c0 < co;) {
    const int v = groupVectors(co, c0);
    const float* b = bias != nullptr ? bias + c0 : nullptr;
    if (v == 4) direct::forwardRun<4, 4>(x, step, offs, K, w + c0, co, b, relu, out + c0, ow);
    else if (v == 2) direct::forwardRun<2, 8>(x, step, offs, K, w + c0, co, b, relu, out + c0, ow);
    else direct::forwardRun<1, 16>(x, step, offs, K, w + c0, co, b, relu, out + c0, ow);
    c0 += v * direct::kLanes;
  }
}

// Adds one output row's contribution to dw rows [k0, k0 + r) × channels [c0, c0 + 16v).
template <int V, int R>
inline __attribute__((always_inline)) void filterTile(const float* x, int64_t step, const int64_t* offs, const float* dy, int64_t co, int64_t ow, float* dw) {
  direct::v16 acc[R][V];
  for (int j = 0; j < R; j++)
    for (int v = 0; v < V; v++) acc[j][v] = direct::load(dw + j * co + v * direct::kLanes);
  direct::filterBlock<V, R>(x, step, offs, dy, co, ow, acc);
  for (int j = 0; j < R; j++)
    for (int v = 0; v < V; v++) direct::store(dw + j * co + v * direct::kLanes, acc[j][v]);
}

// One output row's contribution to all of dw (K × co), in blocks of 16/V filter rows.
PURIFY_CLONES
void filterRow(const float* x, int64_t step, const int64_t* offs, int64_t K, const float* dy, int64_t co, int64_t ow, float* dw) {
  for (int64_t c0 = 0; c0 < co;) {
    const int v = groupVectors(co, c0);
    const int rows = 16 / v;
    for (int64_t k0 = 0; k0 < K;) {
      const int64_t r = std::min<int64_t>(rows, K - k0);
      const int take = r >= 16 ? 16 : r >= 8 ? 8 : r >= 4 ? 4 : r >= 2 ? 2 : 1;
      float* d = dw + k0 * co + c0;
      const float* g = dy + c0;
      const int64_t* o = offs + k0;
      switch (v * 100 + take) {
        case 116: filterTile<1, 16>(x, step, o, g, co, ow, d); break;
        case 108: filterTile<1, 8>(x, step, o, g, co, ow, d); break;
        case 208: filterTile<2, 8>(x, step, o, g, co, ow, d); break;
        case 104: filterTile<1, 4>(x, step, o, g, co, ow, d); break;
        case 204: filterTile<2, 4>(x, step, o, g, co, ow, d); break;
        case 404: filterTile<4, 4>(x, step, o, g, co, ow, d); break;
        case 102: filterTile<1, 2>(x, step, o, g, co, ow, d); break;
        case 202: filterTile<2, 2>(x, step, o, g, co, ow, d); break;
        case 402: filterTile<4, 2>(x, step, o, g, co, ow, d); break;
        case 101: filterTile<1, 1>(x, step, o, g, co, ow, d); break;
        case 201: filterTile<2, 1>(x, step, o, g, co, ow, d); break;
        default: filterTile<4, 1>(x, step, o, g, co, ow, d);
      }
      k0 += take;
    }
    c0 += v * direct::kLanes;
  }
}

// A filter gradient split over `parts`: fn(t, acc) sums part t into its own
// zeroed buffer of `size` floats (part 0's is dw), and the others are then
// added into dw in part order.
template <typename Fn>
void sumOverParts(int parts, int64_t size, float* dw, Fn fn) {
  std::vector<float> partial(static_cast<size_t>((parts - 1) * size));
  Pool::get().run(parts, [&](int t) {
    float* acc = t == 0 ? dw : partial.data() + (t - 1) * size;
    std::memset(acc, 0, static_cast<size_t>(size) * sizeof(float));
    fn(t, acc);
  });
  for (int t = 1; t < parts; t++) {
    const float* src = partial.data() + (t - 1) * size;
    for (int64_t i = 0; i < size; i++) dw[i] += src[i];
  }
}

// y = relu?(conv(x, w) + bias) by the direct kernel, split by output row.
void conv2dDirect(const float* x, const float* w, const float* bias, bool relu, float* y, const Geometry& g) {
  const Padded p(g);
  const int parts = partsFor(convFlops(g));
  const float* xp = padInput(x, g, p, parts);
  const std::vector<int64_t> offs = tapOffsets(g, p);
  const int64_t rows = g.n * g.oh;
  Pool::get().run(parts, [&](int t) {
    for (int64_t r = partBegin(rows, t, parts); r < partBegin(rows, t + 1, parts); r++) {
      const int64_t n = r / g.oh, oy = r % g.oh;
      forwardRow(xp + p.base(g, n, oy, 0), g.sw * g.ci, offs.data(), g.k(), w, g.co, bias, relu, y + r * g.ow * g.co, g.ow);
    }
  });
}

// dw by the direct kernel: each part sums its output rows into its own buffer;
// the buffers are added in order.
void conv2dBackpropFilterDirect(const float* x, const float* dy, float* dw, const Geometry& g) {
  const Padded p(g);
  const int64_t kc = g.k() * g.co, rows = g.n * g.oh;
  const int parts = partsFor(convFlops(g));
  const float* xp = padInput(x, g, p, parts);
  const std::vector<int64_t> offs = tapOffsets(g, p);
  sumOverParts(parts, kc, dw, [&](int t, float* acc) {
    for (int64_t r = partBegin(rows, t, parts); r < partBegin(rows, t + 1, parts); r++) {
      const int64_t n = r / g.oh, oy = r % g.oh;
      filterRow(xp + p.base(g, n, oy, 0), g.sw * g.ci, offs.data(), g.k(), dy + r * g.ow * g.co, g.co, g.ow, acc);
    }
  });
}

// A stride-1 convolution's input gradient is a stride-1 convolution of dy
// with the flipped, transposed filter: this geometry, and whether it applies.
bool transposedGeometry(const Geometry& g, Geometry* t) {
  if (g.sh != 1 || g.sw != 1 || g.pt > g.kh - 1 || g.pl > g.kw - 1) return false;
  *t = Geometry{g.n, g.oh, g.ow, g.co, g.kh, g.kw, g.ci, g.h, g.w, 1, 1, g.kh - 1 - g.pt, g.kw - 1 - g.pl};
  return true;
}

thread_local std::vector<float> flipScratch;

// dx by the direct kernel: w'[(a, b, o), i] = w[(KH-1-a, KW-1-b, i), o].
void conv2dBackpropInputDirect(const float* dy, const float* w, float* dx, const Geometry& g, const Geometry& t) {
  float* wt = grown(flipScratch, static_cast<size_t>(g.k() * g.co));
  for (int64_t a = 0; a < g.kh; a++)
    for (int64_t b = 0; b < g.kw; b++)
      for (int64_t i = 0; i < g.ci; i++)
        for (int64_t o = 0; o < g.co; o++)
          wt[((a * g.kw + b) * g.co + o) * g.ci + i] = w[(((g.kh - 1 - a) * g.kw + (g.kw - 1 - b)) * g.ci + i) * g.co + o];
  conv2dDirect(dy, wt, nullptr, false, dx, t);
}

// y = relu?(conv(x, w) + bias): per image, im2col in chunks, then
// [rows, K] · [K, Cout] and the epilogue on the chunk while it is in cache.
void conv2d(const float* x, const float* w, const float* bias, bool relu, float* y, const Geometry& g) {
  if (directFits(g.co, g)) {
    conv2dDirect(x, w, bias, relu, y, g);
    return;
  }
  const int64_t k = g.k(), co = g.co, total = g.n * g.oh * g.ow;
  const int parts = partsFor(convFlops(g));
  const int64_t chunk = std::min(chunkRows(g), g.oh * g.ow);
  Pool::get().run(parts, [&](int t) {
    const int64_t begin = partBegin(total, t, parts), end = partBegin(total, t + 1, parts);
    if (g.pointwise()) {
      if (end > begin) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, end - begin, co, g.ci, 1.f, x + begin * g.ci, g.ci, w, co, 0.f, y + begin * co, co);
      biasRelu(y + begin * co, end - begin, co, bias, relu);
      return;
    }
    float* col = scratchOf(static_cast<size_t>(chunk * k));
    forChunks(g, begin, end, chunk, [&](int64_t n, int64_t p0, int64_t rows) {
      float* out = y + (n * g.oh * g.ow + p0) * co;
      im2col(x + n * g.h * g.w * g.ci, g, p0, rows, col);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, co, k, 1.f, col, k, w, co, 0.f, out, co);
      biasRelu(out, rows, co, bias, relu);
    });
  });
}

// Tile: out[o] = x[o_0 mod X_0, ..., o_{r-1} mod X_{r-1}] for out shape X_d * reps_d.
// Rows (all axes but the last) are walked with an odometer; each row is the
// source row repeated reps_last times.
void tile(const float* x, const std::vector<int64_t>& xs, const std::vector<int64_t>& reps, float* out) {
  const size_t r = xs.size();
  const int64_t inner = xs[r - 1], outInner = inner * reps[r - 1];
  std::vector<int64_t> os(r), xStride(r, 1), idx(r, 0);
  for (size_t d = 0; d < r; d++) os[d] = xs[d] * reps[d];
  for (size_t d = r - 1; d-- > 0;) xStride[d] = xStride[d + 1] * xs[d + 1];
  int64_t rows = 1;
  for (size_t d = 0; d + 1 < r; d++) rows *= os[d];
  for (int64_t row = 0; row < rows; row++) {
    int64_t src = 0;
    for (size_t d = 0; d + 1 < r; d++) src += (idx[d] % xs[d]) * xStride[d];
    float* dst = out + row * outInner;
    for (int64_t k = 0; k < reps[r - 1]; k++) std::memcpy(dst + k * inner, x + src, static_cast<size_t>(inner) * sizeof(float));
    for (size_t d = r - 1; d-- > 0;) {
      if (++idx[d] < os[d]) break;
      idx[d] = 0;
    }
  }
}

// Element-wise a (op) b in float32 where b (or a) is the same shape, a
// per-channel vector repeating every `inner` elements, or a scalar.
enum BinaryOp { kAdd = 0, kSub = 1, kMul = 2, kDiv = 3 };
enum Broadcast { kSame = 0, kBInner = 1, kAInner = 2, kBScalar = 3, kAScalar = 4 };

template <int Op>
inline float apply(float a, float b) {
  if (Op == kAdd) return a + b;
  if (Op == kSub) return a - b;
  if (Op == kMul) return a * b;
  return a / b;
}

template <int Op>
void binaryLoop(const float* a, const float* b, float* out, int64_t n, int pattern, int64_t inner) {
  switch (pattern) {
    case kSame:
      for (int64_t i = 0; i < n; i++) out[i] = apply<Op>(a[i], b[i]);
      break;
    case kBInner:
      for (int64_t i = 0; i < n; i += inner) {
        for (int64_t j = 0; j < inner; j++) out[i + j] = apply<Op>(a[i + j], b[j]);
      }
      break;
    case kAInner:
      for (int64_t i = 0; i < n; i += inner) {
        for (int64_t j = 0; j < inner; j++) out[i + j] = apply<Op>(a[j], b[i + j]);
      }
      break;
    case kBScalar: {
      const float v = b[0];
      for (int64_t i = 0; i < n; i++) out[i] = apply<Op>(a[i], v);
      break;
    }
    default: {
      const float v = a[0];
      for (int64_t i = 0; i < n; i++) out[i] = apply<Op>(v, b[i]);
    }
  }
}

// FusedBatchNorm (inference form, as tfjs runs it in training too):
// out = (x - mean) * scale / sqrt(variance + eps) + offset, all per channel.
void batchNorm(const float* x, const float* mean, const float* variance, const float* offset, const float* scale, float eps, float* out, int64_t n, int64_t c) {
  std::vector<float> mul(static_cast<size_t>(c));
  for (int64_t j = 0; j < c; j++) mul[j] = (scale != nullptr ? scale[j] : 1.f) / std::sqrt(variance[j] + eps);
  for (int64_t i = 0; i < n; i += c) {
    for (int64_t j = 0; j < c; j++) {
      const float v = (x[i + j] - mean[j]) * mul[j];
      out[i + j] = offset != nullptr ? v + offset[j] : v;
    }
  }
}

// dx = col2im(dy · wᵀ), split by input row: a part owns the rows [r0, r1) of
// the flattened [N, H] index, recomputes the columns of the output rows that
// reach them (a filter-height halo at each edge), and writes only its own rows.
void conv2dBackpropInput(const float* dy, const float* w, float* dx, const Geometry& g) {
  Geometry t;
  if (directFits(g.ci, g) && transposedGeometry(g, &t)) {
    conv2dBackpropInputDirect(dy, w, dx, g, t);
    return;
  }
  const int64_t k = g.k(), co = g.co, opix = g.oh * g.ow, rowsTotal = g.n * g.h;
  const int parts = partsFor(convFlops(g));
  const int64_t chunk = std::min(chunkRows(g), opix);
  Pool::get().run(parts, [&](int t) {
    const int64_t begin = partBegin(rowsTotal, t, parts), end = partBegin(rowsTotal, t + 1, parts);
    if (g.pointwise()) {
      const int64_t pb = begin * g.w, pe = end * g.w;
      if (pe > pb) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, pe - pb, g.ci, co, 1.f, dy + pb * co, co, w, co, 0.f, dx + pb * g.ci, g.ci);
      return;
    }
    std::memset(dx + begin * g.w * g.ci, 0, static_cast<size_t>((end - begin) * g.w * g.ci) * sizeof(float));
    float* col = scratchOf(static_cast<size_t>(chunk * k));
    for (int64_t n = begin / g.h; n < g.n && n * g.h < end; n++) {
      const int64_t r0 = std::max(begin - n * g.h, int64_t{0}), r1 = std::min(end - n * g.h, g.h);
      // Output rows oy with oy*sh - pt + a in [r0, r1) for some a in [0, KH).
      const int64_t lo = r0 + g.pt - (g.kh - 1);
      const int64_t oy0 = std::max<int64_t>(0, lo <= 0 ? 0 : (lo + g.sh - 1) / g.sh);
      const int64_t oy1 = std::min(g.oh, (r1 - 1 + g.pt) / g.sh + 1);
      float* dxn = dx + n * g.h * g.w * g.ci;
      for (int64_t p0 = oy0 * g.ow; p0 < oy1 * g.ow; p0 += chunk) {
        const int64_t rows = std::min(chunk, oy1 * g.ow - p0);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, k, co, 1.f, dy + (n * opix + p0) * co, co, w, co, 0.f, col, k);
        col2imAdd(col, g, p0, rows, r0, r1, dxn);
      }
    }
  });
}

// dw = Σ im2col(x)ᵀ · dy over images and chunks; each part sums its share of
// the output pixels into its own buffer, and the buffers are added in order.
void conv2dBackpropFilter(const float* x, const float* dy, float* dw, const Geometry& g) {
  if (directFits(g.co, g)) {
    conv2dBackpropFilterDirect(x, dy, dw, g);
    return;
  }
  const int64_t k = g.k(), co = g.co, total = g.n * g.oh * g.ow;
  const int parts = partsFor(convFlops(g));
  const int64_t chunk = std::min(chunkRows(g), g.oh * g.ow);
  sumOverParts(parts, k * co, dw, [&](int t, float* acc) {
    const int64_t begin = partBegin(total, t, parts), end = partBegin(total, t + 1, parts);
    if (g.pointwise()) {
      if (end > begin) cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, g.ci, co, end - begin, 1.f, x + begin * g.ci, g.ci, dy + begin * co, co, 0.f, acc, co);
      return;
    }
    float* col = scratchOf(static_cast<size_t>(chunk * k));
    forChunks(g, begin, end, chunk, [&](int64_t n, int64_t p0, int64_t rows) {
      im2col(x + n * g.h * g.w * g.ci, g, p0, rows, col);
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, k, co, rows, 1.f, col, k, dy + (n * g.oh * g.ow + p0) * co, co, 1.f, acc, co);
    });
  });
}

// out[j] = Σ_i x[i*cols + j], float64 accumulators (a bias gradient).
// Split by rows: each part sums into its own accumulators, added in order.
void columnSums(const float* x, int64_t rows, int64_t cols, float* out, double scale) {
  const int parts = elementParts(rows * cols, rows);
  std::vector<double> acc(static_cast<size_t>(parts * cols), 0.0);
  Pool::get().run(parts, [&](int t) {
    double* a = acc.data() + t * cols;
    for (int64_t i = partBegin(rows, t, parts); i < partBegin(rows, t + 1, parts); i++) {
      const float* r = x + i * cols;
      for (int64_t j = 0; j < cols; j++) a[j] += r[j];
    }
  });
  for (int64_t j = 0; j < cols; j++) {
    double sum = 0;
    for (int t = 0; t < parts; t++) sum += acc[static_cast<size_t>(t * cols + j)];
    out[j] = static_cast<float>(sum * scale);
  }
}

// ReLU (max(0, x): -0 gives 0, NaN passes) and Step (x > 0 ? 1 : alpha; NaN
// stays NaN), as the tfjs cpu backend computes them.
enum UnaryOp { kRelu = 0, kStep = 1 };

void unaryLoop(int op, const float* x, float* out, int64_t n, float alpha) {
  if (op == kRelu) {
    for (int64_t i = 0; i < n; i++) out[i] = x[i] > 0.f || std::isnan(x[i]) ? x[i] : 0.f;
  } else {
    for (int64_t i = 0; i < n; i++) out[i] = std::isnan(x[i]) ? x[i] : x[i] > 0.f ? 1.f : alpha;
  }
}

struct PoolGeometry {
  int64_t n, h, w, c, oh, ow, sh, sw, fh, fw, top, left;
};

// MaxPoolGrad (NHWC): each window's dy goes to the window's first strict
// maximum in row-major order (the tfjs cpu backend's rule; a window of NaNs
// passes nothing), accumulated where windows overlap. `best` and `where` hold
// one window's running maximum and its pixel per channel; with C a multiple of
// 16 the search runs 16 channels to a vector (compare and select).
PURIFY_CLONES
void maxPoolGrad(const float* x, const float* dy, float* dx, const PoolGeometry& g) {
  using direct::v16;
  typedef int32_t v16i __attribute__((vector_size(64)));
  std::memset(dx, 0, static_cast<size_t>(g.n * g.h * g.w * g.c) * sizeof(float));
  std::vector<float> best(static_cast<size_t>(g.c));
  std::vector<int32_t> where(static_cast<size_t>(g.c));
  const bool vectors = g.c % direct::kLanes == 0;
  for (int64_t b = 0; b < g.n; b++) {
    const float* xb = x + b * g.h * g.w * g.c;
    float* dxb = dx + b * g.h * g.w * g.c;
    for (int64_t yr = 0; yr < g.oh; yr++) {
      const int64_t r0 = std::max<int64_t>(0, yr * g.sh - g.top), r1 = std::min(g.h, yr * g.sh - g.top + g.fh);
      for (int64_t yc = 0; yc < g.ow; yc++) {
        const int64_t c0 = std::max<int64_t>(0, yc * g.sw - g.left), c1 = std::min(g.w, yc * g.sw - g.left + g.fw);
        if (vectors) {
          for (int64_t d = 0; d < g.c; d += direct::kLanes) {
            v16 bv = v16{} - std::numeric_limits<float>::infinity();
            v16i wv = v16i{} - 1;
            for (int64_t r = r0; r < r1; r++) {
              for (int64_t cc = c0; cc < c1; cc++) {
                const int32_t pos = static_cast<int32_t>(r * g.w + cc);
                const v16 xv = direct::load(xb + pos * g.c + d);
                const v16i gt = xv > bv;
                bv = gt ? xv : bv;
                wv = gt ? (v16i{} + pos) : wv;
              }
            }
            std::memcpy(where.data() + d, &wv, sizeof wv);
          }
        } else {
          std::fill(best.begin(), best.end(), -std::numeric_limits<float>::infinity());
          std::fill(where.begin(), where.end(), -1);
          for (int64_t r = r0; r < r1; r++) {
            for (int64_t cc = c0; cc < c1; cc++) {
              const int32_t pos = static_cast<int32_t>(r * g.w + cc);
              const float* xv = xb + pos * g.c;
              for (int64_t d = 0; d < g.c; d++) {
                if (xv[d] > best[d]) {
                  best[d] = xv[d];
                  where[d] = pos;
                }
              }
            }
          }
        }
        const float* gy = dy + ((b * g.oh + yr) * g.ow + yc) * g.c;
        for (int64_t d = 0; d < g.c; d++) {
          if (where[d] >= 0) dxb[static_cast<int64_t>(where[d]) * g.c + d] += gy[d];
        }
      }
    }
  }
}

// One Adam(W) update of one variable, PyTorch's rule, in the same float32
// operation order as the tfjs op sequence in optimizer.ts:
//   m' = b1 m + (1-b1) g;  v' = b2 v + (1-b2) g^2;  x_d = x (1 - lr wd)
//   x' = x_d - (m' / (sqrt(v') / sqrtBc2 + eps)) * stepSize
struct AdamParams {
  float beta1, oneMinusBeta1, beta2, oneMinusBeta2, decay, stepSize, sqrtBc2, epsilon;
  bool decayed;
};

void adamUpdate(const float* x, const float* m, const float* v, const float* g, float* xo, float* mo, float* vo, int64_t n, const AdamParams& p) {
  const float c1 = p.oneMinusBeta1, c2 = p.oneMinusBeta2;
  for (int64_t i = 0; i < n; i++) {
    const float mi = p.beta1 * m[i] + c1 * g[i];
    const float vi = p.beta2 * v[i] + c2 * (g[i] * g[i]);
    const float xd = p.decayed ? x[i] * p.decay : x[i];
    const float denom = std::sqrt(vi) / p.sqrtBc2 + p.epsilon;
    mo[i] = mi;
    vo[i] = vi;
    xo[i] = xd - (mi / denom) * p.stepSize;
  }
}

// ---- N-API glue ----------------------------------------------------------

bool throwIf(napi_env env, bool bad, const std::string& msg) {
  if (bad) napi_throw_error(env, "ERR_PURIFY_NATIVE", msg.c_str());
  return bad;
}

// Reads exactly n arguments into argv, or throws "expected n arguments (usage)".
bool argsOf(napi_env env, napi_callback_info info, size_t n, const char* usage, napi_value* argv) {
  size_t argc = n;
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  return !throwIf(env, argc != n, "expected " + std::to_string(n) + " arguments (" + usage + ")");
}

// A typed array argument of the given type with its length in [minLength,
// maxLength]: sets *data and *length, or throws `message` and returns false.
bool typedArg(napi_env env, napi_value v, napi_typedarray_type want, size_t minLength, size_t maxLength, const std::string& message, void** data, size_t* length) {
  bool is = false;
  napi_is_typedarray(env, v, &is);
  napi_typedarray_type type = napi_int8_array;
  *data = nullptr;
  *length = 0;
  if (is) napi_get_typedarray_info(env, v, &type, length, data, nullptr, nullptr);
  return !throwIf(env, !is || type != want || *length < minLength || *length > maxLength, message);
}

bool floatArg(napi_env env, napi_value v, const char* name, float** data, size_t* length) {
  void* ptr = nullptr;
  const bool ok = typedArg(env, v, napi_float32_array, 0, SIZE_MAX, std::string(name) + " must be a Float32Array", &ptr, length);
  *data = static_cast<float*>(ptr);
  return ok;
}

// A fixed-size Int32Array argument, or nullptr (after throwing `message`).
const int32_t* int32Arg(napi_env env, napi_value v, size_t minLength, size_t maxLength, const std::string& message, size_t* length) {
  void* ptr = nullptr;
  return typedArg(env, v, napi_int32_array, minLength, maxLength, message, &ptr, length) ? static_cast<const int32_t*>(ptr) : nullptr;
}

// An Int32Array of exactly `n` values whose first `positive` entries are >= 1 and the rest >= 0.
const int32_t* geometryValues(napi_env env, napi_value v, size_t n, size_t positive, const std::string& layout) {
  size_t length = 0;
  const int32_t* a = int32Arg(env, v, n, n, "geometry must be an Int32Array of " + std::to_string(n) + " values " + layout, &length);
  if (a == nullptr) return nullptr;
  for (size_t i = 0; i < positive; i++) {
    if (throwIf(env, a[i] < 1, "geometry: sizes and strides must be >= 1, got value " + std::to_string(a[i]) + " at index " + std::to_string(i))) return nullptr;
  }
  for (size_t i = positive; i < n; i++) {
    if (throwIf(env, a[i] < 0, "geometry: pads must be >= 0")) return nullptr;
  }
  return a;
}

bool geometryArg(napi_env env, napi_value v, Geometry* g) {
  const int32_t* a = geometryValues(env, v, 13, 11, "[N, H, W, Cin, KH, KW, Cout, OH, OW, strideH, strideW, padTop, padLeft]");
  if (a == nullptr) return false;
  *g = Geometry{a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12]};
  return true;
}

using ConvFn = void (*)(const float*, const float*, float*, const Geometry&);

// (a, b, out, geometry) with the element counts each operand must have.
napi_value call(napi_env env, napi_callback_info info, ConvFn fn, const char* names[3], int64_t (*sizes[3])(const Geometry&)) {
  napi_value argv[4];
  if (!argsOf(env, info, 4, "two inputs, the output, the geometry", argv)) return nullptr;
  Geometry g;
  if (!geometryArg(env, argv[3], &g)) return nullptr;
  float* p[3];
  for (int i = 0; i < 3; i++) {
    size_t length = 0;
    if (!floatArg(env, argv[i], names[i], &p[i], &length)) return nullptr;
    const int64_t want = sizes[i](g);
    if (throwIf(env, static_cast<int64_t>(length) != want, std::string(names[i]) + " has " + std::to_string(length) + " elements, the geometry needs " + std::to_string(want))) return nullptr;
  }
  fn(p[0], p[1], p[2], g);
  return nullptr;
}

int64_t sizeX(const Geometry& g) { return g.n * g.h * g.w * g.ci; }
int64_t sizeW(const Geometry& g) { return g.k() * g.co; }
int64_t sizeY(const Geometry& g) { return g.n * g.oh * g.ow * g.co; }

// conv2dBiasRelu(x, filter, bias (Float32Array of Cout, or null), y, geometry, relu: boolean).
napi_value Conv2DBiasRelu(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  if (!argsOf(env, info, 6, "x, filter, bias or null, y, geometry, relu", argv)) return nullptr;
  Geometry g;
  if (!geometryArg(env, argv[4], &g)) return nullptr;
  float *x, *w, *y, *bias = nullptr;
  size_t nx = 0, nw = 0, ny = 0, nb = 0;
  if (!floatArg(env, argv[0], "x", &x, &nx) || !floatArg(env, argv[1], "filter", &w, &nw) || !floatArg(env, argv[3], "y", &y, &ny)) return nullptr;
  napi_valuetype bt;
  napi_typeof(env, argv[2], &bt);
  if (bt != napi_null && !floatArg(env, argv[2], "bias", &bias, &nb)) return nullptr;
  bool relu = false;
  if (throwIf(env, napi_get_value_bool(env, argv[5], &relu) != napi_ok, "relu must be a boolean")) return nullptr;
  const int64_t want[4] = {sizeX(g), sizeW(g), sizeY(g), g.co};
  const int64_t got[4] = {static_cast<int64_t>(nx), static_cast<int64_t>(nw), static_cast<int64_t>(ny), bias == nullptr ? g.co : static_cast<int64_t>(nb)};
  const char* names[4] = {"x", "filter", "y", "bias"};
  for (int i = 0; i < 4; i++) {
    if (throwIf(env, got[i] != want[i], std::string(names[i]) + " has " + std::to_string(got[i]) + " elements, the geometry needs " + std::to_string(want[i]))) return nullptr;
  }
  conv2d(x, w, bias, relu, y, g);
  return nullptr;
}

// tile(x, xShape Int32Array, reps Int32Array, out).
napi_value Tile(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (!argsOf(env, info, 4, "x, xShape, reps, out", argv)) return nullptr;
  std::vector<int64_t> dims[2];
  const char* which[2] = {"xShape", "reps"};
  for (int k = 0; k < 2; k++) {
    size_t length = 0;
    const int32_t* a = int32Arg(env, argv[1 + k], 1, 8, std::string(which[k]) + " must be an Int32Array of 1 to 8 values", &length);
    if (a == nullptr) return nullptr;
    for (size_t i = 0; i < length; i++) {
      if (throwIf(env, a[i] < 1, std::string(which[k]) + " values must be >= 1")) return nullptr;
      dims[k].push_back(a[i]);
    }
  }
  if (throwIf(env, dims[0].size() != dims[1].size(), "xShape and reps must have the same length")) return nullptr;
  int64_t nIn = 1, nOut = 1;
  for (size_t d = 0; d < dims[0].size(); d++) {
    nIn *= dims[0][d];
    nOut *= dims[0][d] * dims[1][d];
  }
  float *x, *out;
  size_t nx = 0, no = 0;
  if (!floatArg(env, argv[0], "x", &x, &nx) || !floatArg(env, argv[3], "out", &out, &no)) return nullptr;
  if (throwIf(env, static_cast<int64_t>(nx) != nIn || static_cast<int64_t>(no) != nOut,
              "x has " + std::to_string(nx) + " and out " + std::to_string(no) + " elements; the shapes need " + std::to_string(nIn) + " and " + std::to_string(nOut))) {
    return nullptr;
  }
  tile(x, dims[0], dims[1], out);
  return nullptr;
}

// binary(op 0..3 = add/sub/mul/div, a, b, out, pattern 0..4, inner).
napi_value Binary(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  if (!argsOf(env, info, 6, "op, a, b, out, pattern, inner", argv)) return nullptr;
  int32_t op = -1, pattern = -1, inner = 0;
  napi_get_value_int32(env, argv[0], &op);
  napi_get_value_int32(env, argv[4], &pattern);
  napi_get_value_int32(env, argv[5], &inner);
  if (throwIf(env, op < 0 || op > 3, "op must be 0 (add), 1 (sub), 2 (mul) or 3 (div)")) return nullptr;
  if (throwIf(env, pattern < 0 || pattern > 4, "pattern must be 0 (same shape), 1 (b per channel), 2 (a per channel), 3 (b scalar) or 4 (a scalar)")) return nullptr;
  float *a, *b, *out;
  size_t na = 0, nb = 0, no = 0;
  if (!floatArg(env, argv[1], "a", &a, &na) || !floatArg(env, argv[2], "b", &b, &nb) || !floatArg(env, argv[3], "out", &out, &no)) return nullptr;
  const size_t big = pattern == kAInner || pattern == kAScalar ? nb : na;
  const size_t small = pattern == kAInner || pattern == kAScalar ? na : nb;
  const size_t wantSmall = pattern == kSame ? big : (pattern == kBInner || pattern == kAInner) ? static_cast<size_t>(inner) : 1;
  if (throwIf(env, (pattern == kBInner || pattern == kAInner) && (inner < 1 || big % static_cast<size_t>(inner) != 0), "inner must be >= 1 and divide the larger operand")) return nullptr;
  if (throwIf(env, no != big || small != wantSmall, "operand sizes " + std::to_string(na) + ", " + std::to_string(nb) + " and out " + std::to_string(no) + " do not fit pattern " + std::to_string(pattern))) return nullptr;
  const int64_t n = static_cast<int64_t>(no);
  const int64_t align = pattern == kBInner || pattern == kAInner ? inner : 1;
  parallelFor(n, align, [&](int64_t begin, int64_t end) {
    // The operand(s) of the output's size move with the part; a per-channel vector or scalar does not.
    const float* pa = pattern == kAInner || pattern == kAScalar ? a : a + begin;
    const float* pb = pattern == kBInner || pattern == kBScalar ? b : b + begin;
    float* po = out + begin;
    switch (op) {
      case kAdd: binaryLoop<kAdd>(pa, pb, po, end - begin, pattern, inner); break;
      case kSub: binaryLoop<kSub>(pa, pb, po, end - begin, pattern, inner); break;
      case kMul: binaryLoop<kMul>(pa, pb, po, end - begin, pattern, inner); break;
      default: binaryLoop<kDiv>(pa, pb, po, end - begin, pattern, inner);
    }
  });
  return nullptr;
}

// unary(op 0 = relu / 1 = step, x, out, alpha): out the size of x; alpha is Step's value for x <= 0.
napi_value Unary(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (!argsOf(env, info, 4, "op, x, out, alpha", argv)) return nullptr;
  int32_t op = -1;
  double alpha = 0;
  napi_get_value_int32(env, argv[0], &op);
  if (throwIf(env, op != kRelu && op != kStep, "op must be 0 (relu) or 1 (step)")) return nullptr;
  if (throwIf(env, napi_get_value_double(env, argv[3], &alpha) != napi_ok, "alpha must be a number")) return nullptr;
  float *x, *out;
  size_t nx = 0, no = 0;
  if (!floatArg(env, argv[1], "x", &x, &nx) || !floatArg(env, argv[2], "out", &out, &no)) return nullptr;
  if (throwIf(env, nx != no, "x has " + std::to_string(nx) + " elements and out " + std::to_string(no) + "; they must match")) return nullptr;
  parallelFor(static_cast<int64_t>(nx), 1, [&](int64_t begin, int64_t end) { unaryLoop(op, x + begin, out + begin, end - begin, static_cast<float>(alpha)); });
  return nullptr;
}

// stridedCopy(src, dst, Int32Array [count, run, srcOffset, srcStride, dstOffset, dstStride]):
// run i (0 <= i < count) copies `run` floats from src[srcOffset + i*srcStride] to dst[dstOffset + i*dstStride].
napi_value StridedCopy(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!argsOf(env, info, 3, "src, dst, layout", argv)) return nullptr;
  float *src, *dst;
  size_t ns = 0, nd = 0;
  if (!floatArg(env, argv[0], "src", &src, &ns) || !floatArg(env, argv[1], "dst", &dst, &nd)) return nullptr;
  size_t nl = 0;
  const int32_t* l = int32Arg(env, argv[2], 6, 6, "layout must be an Int32Array [count, run, srcOffset, srcStride, dstOffset, dstStride]", &nl);
  if (l == nullptr) return nullptr;
  for (int i = 0; i < 6; i++) {
    if (throwIf(env, l[i] < 0, "layout values must be >= 0")) return nullptr;
  }
  const int64_t count = l[0], run = l[1], so = l[2], ss = l[3], dO = l[4], ds = l[5];
  if (count == 0 || run == 0) return nullptr;
  const bool fits = so + (count - 1) * ss + run <= static_cast<int64_t>(ns) && dO + (count - 1) * ds + run <= static_cast<int64_t>(nd);
  if (throwIf(env, !fits, "the runs reach past src (" + std::to_string(ns) + " elements) or dst (" + std::to_string(nd) + ")")) return nullptr;
  parallelFor(count * run, run, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin / run; i < end / run; i++) std::memcpy(dst + dO + i * ds, src + so + i * ss, static_cast<size_t>(run) * sizeof(float));
  });
  return nullptr;
}

// batchNorm(x, mean, variance, offset or null, scale or null, epsilon, out): per-channel vectors of C = their length.
napi_value BatchNorm(napi_env env, napi_callback_info info) {
  napi_value argv[7];
  if (!argsOf(env, info, 7, "x, mean, variance, offset or null, scale or null, epsilon, out", argv)) return nullptr;
  float *x, *mean, *variance, *out, *offset = nullptr, *scale = nullptr;
  size_t nx = 0, nm = 0, nv = 0, no = 0, nof = 0, ns = 0;
  if (!floatArg(env, argv[0], "x", &x, &nx) || !floatArg(env, argv[1], "mean", &mean, &nm) || !floatArg(env, argv[2], "variance", &variance, &nv) || !floatArg(env, argv[6], "out", &out, &no)) return nullptr;
  napi_valuetype t;
  napi_typeof(env, argv[3], &t);
  if (t != napi_null && !floatArg(env, argv[3], "offset", &offset, &nof)) return nullptr;
  napi_typeof(env, argv[4], &t);
  if (t != napi_null && !floatArg(env, argv[4], "scale", &scale, &ns)) return nullptr;
  double eps = 0;
  if (throwIf(env, napi_get_value_double(env, argv[5], &eps) != napi_ok || !(eps >= 0), "epsilon must be a number >= 0")) return nullptr;
  const size_t c = nm;
  if (throwIf(env, c == 0 || nv != c || (offset != nullptr && nof != c) || (scale != nullptr && ns != c) || nx % c != 0 || no != nx,
              "mean, variance, offset and scale must all have C elements, with C dividing x, and out the size of x")) {
    return nullptr;
  }
  batchNorm(x, mean, variance, offset, scale, static_cast<float>(eps), out, static_cast<int64_t>(nx), static_cast<int64_t>(c));
  return nullptr;
}

napi_value Conv2DBackpropInput(napi_env env, napi_callback_info info) {
  const char* names[3] = {"dy", "filter", "dx"};
  int64_t (*sizes[3])(const Geometry&) = {sizeY, sizeW, sizeX};
  return call(env, info, conv2dBackpropInput, names, sizes);
}
napi_value Conv2DBackpropFilter(napi_env env, napi_callback_info info) {
  const char* names[3] = {"x", "dy", "dw"};
  int64_t (*sizes[3])(const Geometry&) = {sizeX, sizeY, sizeW};
  return call(env, info, conv2dBackpropFilter, names, sizes);
}

// columnSums(x, cols, out[, mean]): x.length must be a multiple of cols = out.length; with mean
// true the sums are divided by the row count (in float64, before rounding).
napi_value ColumnSums(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  if (throwIf(env, argc != 3 && argc != 4, "expected 3 or 4 arguments (x, cols, out[, mean])")) return nullptr;
  bool mean = false;
  if (argc == 4 && throwIf(env, napi_get_value_bool(env, argv[3], &mean) != napi_ok, "mean must be a boolean")) return nullptr;
  float *x, *out;
  size_t nx = 0, nout = 0;
  int32_t cols = 0;
  if (!floatArg(env, argv[0], "x", &x, &nx) || !floatArg(env, argv[2], "out", &out, &nout)) return nullptr;
  if (throwIf(env, napi_get_value_int32(env, argv[1], &cols) != napi_ok || cols < 1, "cols must be an integer >= 1")) return nullptr;
  if (throwIf(env, nout != static_cast<size_t>(cols) || nx % static_cast<size_t>(cols) != 0,
              "x has " + std::to_string(nx) + " elements and out " + std::to_string(nout) + "; expected out = cols = " + std::to_string(cols) + " dividing x")) {
    return nullptr;
  }
  const int64_t rows = static_cast<int64_t>(nx / cols);
  columnSums(x, rows, cols, out, mean && rows > 0 ? 1.0 / static_cast<double>(rows) : 1.0);
  return nullptr;
}

// maxPoolGrad(x, dy, dx, geometry [N, H, W, C, OH, OW, strideH, strideW, filterH, filterW, padTop, padLeft]).
napi_value MaxPoolGrad(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (!argsOf(env, info, 4, "x, dy, dx, geometry", argv)) return nullptr;
  const int32_t* a = geometryValues(env, argv[3], 12, 10, "[N, H, W, C, OH, OW, strideH, strideW, filterH, filterW, padTop, padLeft]");
  if (a == nullptr) return nullptr;
  const PoolGeometry g{a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11]};
  const int64_t want[3] = {g.n * g.h * g.w * g.c, g.n * g.oh * g.ow * g.c, g.n * g.h * g.w * g.c};
  const char* names[3] = {"x", "dy", "dx"};
  float* p[3];
  for (int i = 0; i < 3; i++) {
    size_t n = 0;
    if (!floatArg(env, argv[i], names[i], &p[i], &n)) return nullptr;
    if (throwIf(env, static_cast<int64_t>(n) != want[i], std::string(names[i]) + " has " + std::to_string(n) + " elements, the geometry needs " + std::to_string(want[i]))) return nullptr;
  }
  maxPoolGrad(p[0], p[1], p[2], g);
  return nullptr;
}

// adam(x, m, v, g, xOut, mOut, vOut, params Float64Array [beta1, 1 - beta1, beta2, 1 - beta2,
// decay (1 - lr*wd, or 1 for none), stepSize, sqrtBc2, epsilon]). The constants arrive in float64
// and are rounded to float32 here, as tfjs rounds a JS number to a float32 scalar.
napi_value Adam(napi_env env, napi_callback_info info) {
  napi_value argv[8];
  if (!argsOf(env, info, 8, "x, m, v, g, xOut, mOut, vOut, params", argv)) return nullptr;
  const char* names[7] = {"x", "m", "v", "g", "xOut", "mOut", "vOut"};
  float* p[7];
  size_t n0 = 0;
  for (int i = 0; i < 7; i++) {
    size_t n = 0;
    if (!floatArg(env, argv[i], names[i], &p[i], &n)) return nullptr;
    if (i == 0) n0 = n;
    if (throwIf(env, n != n0, std::string(names[i]) + " has " + std::to_string(n) + " elements, x has " + std::to_string(n0))) return nullptr;
  }
  size_t length = 0;
  void* ptr = nullptr;
  if (!typedArg(env, argv[7], napi_float64_array, 8, 8, "params must be a Float64Array [beta1, 1 - beta1, beta2, 1 - beta2, decay, stepSize, sqrtBc2, epsilon]", &ptr, &length)) return nullptr;
  const auto* a = static_cast<const double*>(ptr);
  AdamParams params{};
  float* f[8] = {&params.beta1, &params.oneMinusBeta1, &params.beta2, &params.oneMinusBeta2, &params.decay, &params.stepSize, &params.sqrtBc2, &params.epsilon};
  for (int i = 0; i < 8; i++) *f[i] = static_cast<float>(a[i]);
  params.decayed = a[4] != 1.0;
  adamUpdate(p[0], p[1], p[2], p[3], p[4], p[5], p[6], static_cast<int64_t>(n0), params);
  return nullptr;
}

napi_value SetThreads(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  int32_t n = 0;
  if (throwIf(env, argc != 1 || napi_get_value_int32(env, argv[0], &n) != napi_ok || n < 1, "setThreads expects an integer >= 1")) return nullptr;
  openblas_set_num_threads(n);
  return nullptr;
}

// setKernelThreads(n): the intra-op threads this JavaScript thread's kernels may use.
napi_value SetKernelThreads(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  int32_t n = 0;
  if (throwIf(env, argc != 1 || napi_get_value_int32(env, argv[0], &n) != napi_ok || n < 1 || n > 64, "setKernelThreads expects an integer from 1 to 64")) return nullptr;
  kernelThreads = n;
  return nullptr;
}

napi_value Info(napi_env env, napi_callback_info) {
  napi_value obj, config, threads, kernel;
  napi_create_object(env, &obj);
  napi_create_string_utf8(env, openblas_get_config(), NAPI_AUTO_LENGTH, &config);
  napi_create_int32(env, openblas_get_num_threads(), &threads);
  napi_create_int32(env, kernelThreads, &kernel);
  napi_set_named_property(env, obj, "blas", config);
  napi_set_named_property(env, obj, "threads", threads);
  napi_set_named_property(env, obj, "kernelThreads", kernel);
  return obj;
}

}  // namespace

NAPI_MODULE_INIT() {
  const napi_property_descriptor props[] = {
      {"conv2dBackpropInput", nullptr, Conv2DBackpropInput, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"conv2dBackpropFilter", nullptr, Conv2DBackpropFilter, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"conv2dBiasRelu", nullptr, Conv2DBiasRelu, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"tile", nullptr, Tile, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"binary", nullptr, Binary, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"unary", nullptr, Unary, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"stridedCopy", nullptr, StridedCopy, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"batchNorm", nullptr, BatchNorm, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"columnSums", nullptr, ColumnSums, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"maxPoolGrad", nullptr, MaxPoolGrad, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"adam", nullptr, Adam, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"setThreads", nullptr, SetThreads, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"setKernelThreads", nullptr, SetKernelThreads, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"info", nullptr, Info, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}
