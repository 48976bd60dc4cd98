// Hand-written OpenMP peers: the native ceiling the CPU backend is compared
// against (built by run.py with -O3 -march=native -fopenmp).
#include <cmath>
#include <cstdint>
#include <cstring>

extern "C" {

void vadd(const float* a, const float* b, float* c, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) c[i] = a[i] + b[i];
}

void saxpy(float alpha, const float* x, const float* y, float* out, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) out[i] = alpha * x[i] + y[i];
}

void mandelbrot(float x0, float y0, float dx, float dy, int64_t w, int64_t h, int32_t iters, uint32_t* out) {
#pragma omp parallel for schedule(dynamic, 4)
  for (int64_t y = 0; y < h; ++y) {
#pragma omp simd
    for (int64_t x = 0; x < w; ++x) {
      float cx = x0 + x * dx, cy = y0 + y * dy, zr = 0, zi = 0;
      uint32_t cnt = 0;
      for (int32_t k = 0; k < iters; ++k) {
        float zr2 = zr * zr, zi2 = zi * zi;
        bool inside = zr2 + zi2 <= 4.0f;
        float nzr = zr2 - zi2 + cx, nzi = 2.0f * zr * zi + cy;
        zr = inside ? nzr : zr;
        zi = inside ? nzi : zi;
        cnt += inside ? 1u : 0u;
      }
      out[y * w + x] = cnt;
    }
  }
}

void block_sum(const float* a, float* out, int64_t groups, int64_t block) {
#pragma omp parallel for schedule(static)
  for (int64_t g = 0; g < groups; ++g) {
    float s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < block; ++i) s += a[g * block + i];
    out[g] = s;
  }
}

void rmsnorm(const float* x, const float* w, float* y, int64_t rows, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * n;
    float ss = 0;
#pragma omp simd reduction(+ : ss)
    for (int64_t i = 0; i < n; ++i) ss += xr[i] * xr[i];
    float inv = 1.0f / std::sqrt(ss / n + 1e-6f);
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) y[r * n + i] = xr[i] * inv * w[i];
  }
}

void stencil(const float* a, float* out, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t y = 1; y < n - 1; ++y) {
#pragma omp simd
    for (int64_t x = 1; x < n - 1; ++x) {
      int64_t c = y * n + x;
      out[c] = 0.25f * (a[c - n] + a[c + n] + a[c - 1] + a[c + 1]);
    }
  }
}

void matmul(const float* a, const float* b, float* c, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    float* ci = c + i * n;
    std::memset(ci, 0, sizeof(float) * n);
    for (int64_t k = 0; k < n; ++k) {
      float aik = a[i * n + k];
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) ci[j] += aik * b[k * n + j];
    }
  }
}
}

// ---- the cooperative workloads' peers: the same algorithm as the Enigma
// kernel (coop_kernels.py), one row / block per iteration of the parallel loop.
extern "C" {

void softmax(const float* x, float* y, int64_t rows, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * n;
    float m = -3.0e38f;
#pragma omp simd reduction(max : m)
    for (int64_t i = 0; i < n; ++i) m = xr[i] > m ? xr[i] : m;
    float s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < n; ++i) s += std::exp(xr[i] - m);
    float inv = 1.0f / s;
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) y[r * n + i] = std::exp(xr[i] - m) * inv;
  }
}

void layernorm(const float* x, const float* g, const float* b, float* y, int64_t rows, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * n;
    float s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < n; ++i) s += xr[i];
    float mean = s / n, v = 0;
#pragma omp simd reduction(+ : v)
    for (int64_t i = 0; i < n; ++i) v += (xr[i] - mean) * (xr[i] - mean);
    float inv = 1.0f / std::sqrt(v / n + 1e-5f);
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) y[r * n + i] = (xr[i] - mean) * inv * g[i] + b[i];
  }
}

void histogram(const uint32_t* x, int64_t n, uint32_t* h) {
  std::memset(h, 0, 256 * sizeof(uint32_t));
#pragma omp parallel
  {
    uint32_t loc[256] = {};
#pragma omp for schedule(static)
    for (int64_t i = 0; i < n; ++i) ++loc[x[i] & 255];
    for (int b = 0; b < 256; ++b) __atomic_fetch_add(&h[b], loc[b], __ATOMIC_RELAXED);
  }
}

void block_scan(const float* x, float* y, int64_t blocks, int64_t block) {
#pragma omp parallel for schedule(static)
  for (int64_t g = 0; g < blocks; ++g) {
    float s = 0;
    for (int64_t i = 0; i < block; ++i) y[g * block + i] = s += x[g * block + i];
  }
}
}
