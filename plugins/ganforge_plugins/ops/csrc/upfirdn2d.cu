// upfirdn2d: upsample by zero insertion, pad (negative = crop), convolve with a 2-D FIR filter,
// downsample (NVlabs StyleGAN2-ADA semantics; reference: ganforge_plugins/ops/reference.py).
//
// One thread per output pixel. For output row oy the taps that meet a non-inserted input sample are
// k = k0, k0 + up, ... with j = oy * down - pad0 + k divisible by up and 0 <= j < H * up, so no work
// is spent on inserted zeros. The gradient is this same op with the filter flipped and up and down
// swapped (see ../upfirdn2d.py), so gradients of any order reuse this kernel.
// x may have any strides; the output is channels-last when x is, else contiguous, and threads walk
// it in memory order so that the stores are coalesced.
#include "common.cuh"

namespace ganforge {

struct UpFirDnParams {
  int64_t n, c, in_h, in_w, out_h, out_w;
  int64_t sxn, sxc, sxh, sxw;  // input strides
  int64_t son, soc, soh, sow;  // output strides
  int upx, upy, downx, downy, px0, py0, fw, fh;
  bool flip, channels_last;
};

// First tap k >= 0 with j0 + k >= 0 and (j0 + k) divisible by up.
__device__ __forceinline__ int first_tap(int64_t j0, int up) {
  if (j0 < 0) return static_cast<int>(-j0);
  const int r = static_cast<int>(j0 % up);
  return r == 0 ? 0 : up - r;
}

template <typename scalar_t, typename acc_t>
__global__ void upfirdn2d_kernel(scalar_t* __restrict__ out, const scalar_t* __restrict__ x,
                                 const acc_t* __restrict__ f, UpFirDnParams p) {
  const int64_t total = p.n * p.c * p.out_h * p.out_w;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    int64_t n, c, oy, ox, rest = i;
    if (p.channels_last) {  // memory order N, H, W, C
      c = rest % p.c; rest /= p.c;
      ox = rest % p.out_w; rest /= p.out_w;
      oy = rest % p.out_h; n = rest / p.out_h;
    } else {  // memory order N, C, H, W
      ox = rest % p.out_w; rest /= p.out_w;
      oy = rest % p.out_h; rest /= p.out_h;
      c = rest % p.c; n = rest / p.c;
    }
    const scalar_t* xp = x + n * p.sxn + c * p.sxc;
    const int64_t jy0 = oy * p.downy - p.py0;
    const int64_t jx0 = ox * p.downx - p.px0;
    const int ky0 = first_tap(jy0, p.upy);
    const int kx0 = first_tap(jx0, p.upx);
    acc_t acc = acc_t(0);
    for (int ky = ky0; ky < p.fh; ky += p.upy) {
      const int64_t iy = (jy0 + ky) / p.upy;
      if (iy >= p.in_h) break;
      // a true convolution uses the filter flipped; flip_filter correlates with it as given
      const int fy = p.flip ? ky : p.fh - 1 - ky;
      for (int kx = kx0; kx < p.fw; kx += p.upx) {
        const int64_t ix = (jx0 + kx) / p.upx;
        if (ix >= p.in_w) break;
        const int fx = p.flip ? kx : p.fw - 1 - kx;
        acc += static_cast<acc_t>(xp[iy * p.sxh + ix * p.sxw]) * f[fy * p.fw + fx];
      }
    }
    out[n * p.son + c * p.soc + oy * p.soh + ox * p.sow] = static_cast<scalar_t>(acc);
  }
}

at::Tensor upfirdn2d(const at::Tensor& x, const at::Tensor& f, int64_t upx, int64_t upy, int64_t downx,
                     int64_t downy, int64_t px0, int64_t px1, int64_t py0, int64_t py1, bool flip) {
  GANFORGE_CHECK_CUDA(x);
  GANFORGE_CHECK_CUDA(f);
  TORCH_CHECK(x.dim() == 4, "upfirdn2d: x must be [N, C, H, W] (got ", x.dim(), " dims)");
  TORCH_CHECK(f.dim() == 2 && f.is_contiguous(), "upfirdn2d: f must be a contiguous 2-d filter");
  const auto acc_type = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  TORCH_CHECK(f.scalar_type() == acc_type, "upfirdn2d: f must be ", acc_type, " for x of ", x.scalar_type());
  TORCH_CHECK(upx >= 1 && upy >= 1 && downx >= 1 && downy >= 1, "upfirdn2d: up and down must be >= 1");
  const int64_t fh = f.size(0), fw = f.size(1);
  TORCH_CHECK(fh >= 1 && fw >= 1, "upfirdn2d: empty filter");
  const int64_t span_h = x.size(2) * upy + py0 + py1 - fh;
  const int64_t span_w = x.size(3) * upx + px0 + px1 - fw;
  TORCH_CHECK(span_h >= 0 && span_w >= 0, "upfirdn2d: the padded image is smaller than the filter");
  const int64_t out_h = span_h / downy + 1, out_w = span_w / downx + 1;
  const bool cl = x.is_contiguous(at::MemoryFormat::ChannelsLast) && !x.is_contiguous();
  at::Tensor out = at::empty({x.size(0), x.size(1), out_h, out_w}, x.options(),
                             cl ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous);
  if (out.numel() == 0) return out;
  UpFirDnParams p;
  p.n = x.size(0); p.c = x.size(1); p.in_h = x.size(2); p.in_w = x.size(3); p.out_h = out_h; p.out_w = out_w;
  p.sxn = x.stride(0); p.sxc = x.stride(1); p.sxh = x.stride(2); p.sxw = x.stride(3);
  p.son = out.stride(0); p.soc = out.stride(1); p.soh = out.stride(2); p.sow = out.stride(3);
  p.upx = static_cast<int>(upx); p.upy = static_cast<int>(upy);
  p.downx = static_cast<int>(downx); p.downy = static_cast<int>(downy);
  p.px0 = static_cast<int>(px0); p.py0 = static_cast<int>(py0);
  p.fw = static_cast<int>(fw); p.fh = static_cast<int>(fh);
  p.flip = flip; p.channels_last = cl;
  const c10::cuda::CUDAGuard guard(x.device());
  const int threads = 256;
  const unsigned int blocks = elementwise_blocks(out.numel(), threads);
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  GANFORGE_DISPATCH(x.scalar_type(), "ganforge_upfirdn2d", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    upfirdn2d_kernel<scalar_t, acc_t><<<blocks, threads, 0, stream>>>(
        out.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(), f.data_ptr<acc_t>(), p);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

}  // namespace ganforge
