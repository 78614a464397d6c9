// Shared helpers of ganforge's CUDA kernels (see the Primitives class of each op module in ..; it is the contract of every entry point).
//
// Every kernel reads and writes its storage type (double, float, half, bfloat16) and computes in
// at::opmath_type (double for double, float otherwise), so half and bfloat16 accumulate in float.
// Only c10/cuda headers are used (not ATen/cuda/CUDAContext.h, which needs the cuBLAS and cuSPARSE
// headers that a minimal CUDA toolkit lacks). Indices are int64_t: tensors of more than 2^31 elements (4x32x1024x1024 and beyond) are fine.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <cstdint>

namespace ganforge {

// Floating types a kernel is instantiated for: double (tests), float, half, bfloat16.
#define GANFORGE_DISPATCH(TYPE, NAME, ...) \
  AT_DISPATCH_FLOATING_TYPES_AND2(at::ScalarType::Half, at::ScalarType::BFloat16, TYPE, NAME, __VA_ARGS__)

#define GANFORGE_CHECK_CUDA(t) TORCH_CHECK((t).is_cuda(), #t " must be a CUDA tensor (got ", (t).device(), ")")

// Math on the accumulation type, spelled out per type so that float never silently becomes double.
__device__ __forceinline__ float dev_exp(float v) { return expf(v); }
__device__ __forceinline__ double dev_exp(double v) { return exp(v); }
__device__ __forceinline__ float dev_tanh(float v) { return tanhf(v); }
__device__ __forceinline__ double dev_tanh(double v) { return tanh(v); }
__device__ __forceinline__ float dev_log1p(float v) { return log1pf(v); }
__device__ __forceinline__ double dev_log1p(double v) { return log1p(v); }
__device__ __forceinline__ float dev_rsqrt(float v) { return rsqrtf(v); }
__device__ __forceinline__ double dev_rsqrt(double v) { return rsqrt(v); }
__device__ __forceinline__ float dev_sqrt(float v) { return sqrtf(v); }
__device__ __forceinline__ double dev_sqrt(double v) { return sqrt(v); }

// a * b rounded on its own, never fused into the subtraction that follows it. Where a kernel subtracts
// two values that are equal in exact arithmetic (the gradient of a one-pixel plane's normalisation),
// a fused multiply-add keeps the product's rounding error, and a 1 / sqrt(eps) factor after it turns
// that error into 1e-4 (seen on an H200: fp32 fails its self-test by 7x).
__device__ __forceinline__ float mul_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double mul_rn(double a, double b) { return __dmul_rn(a, b); }

template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
  return v;
}

// Sum of v over the block, returned to every thread. blockDim.x must be a multiple of 32 (<= 1024);
// shm must hold 32 values. Safe to call repeatedly with the same shm.
template <typename T>
__device__ __forceinline__ T block_sum(T v, T* shm) {
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const int warps = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();  // shm may still be read by a previous call
  if (lane == 0) shm[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < warps ? shm[lane] : T(0);
    v = warp_sum(v);
    if (lane == 0) shm[0] = v;
  }
  __syncthreads();
  return shm[0];
}

// n / d and n % d for 0 <= n, d < 2^31 by a multiply-high, an add and a shift (Granlund and
// Montgomery's method, as PyTorch's IntDivider). An elementwise kernel that finds an element's channel
// by 64-bit division spends more time dividing than moving memory: bias_act ran at 3x the copy floor
// on an H200.
struct FastDivmod {
  uint32_t divisor = 1, multiplier = 1, shift = 0;
  FastDivmod() = default;
  explicit FastDivmod(uint32_t d) : divisor(d) {
    while (shift < 32 && (uint32_t{1} << shift) < d) ++shift;
    const uint64_t one = 1;
    multiplier = static_cast<uint32_t>(((one << 32) * ((one << shift) - d)) / d + 1);
  }
  __device__ __forceinline__ uint32_t div(uint32_t n) const { return (__umulhi(n, multiplier) + n) >> shift; }
  __device__ __forceinline__ uint32_t mod(uint32_t n) const { return n - div(n) * divisor; }
};

// Threads per block for a reduction over n elements: the smallest multiple of 32 covering n, at most 256.
inline int reduction_threads(int64_t n) {
  int64_t t = ((n + 31) / 32) * 32;
  return static_cast<int>(t < 32 ? 32 : (t > 256 ? 256 : t));
}

// Blocks for a grid-stride loop over n elements.
inline unsigned int elementwise_blocks(int64_t n, int threads) {
  int64_t blocks = (n + threads - 1) / threads;
  const int64_t cap = 65535LL * 8;
  if (blocks > cap) blocks = cap;
  return static_cast<unsigned int>(blocks < 1 ? 1 : blocks);
}

}  // namespace ganforge
