// Normalisations: adain and style_epilogue (one block per (n, c) plane, one pass to reduce and one
// to write, forward and backward), pixel_norm (one thread per pixel, looping over the channels) and
// minibatch_stddev's statistic (each (group member, feature part) row split over blocks).
//
// Statistics accumulate in at::opmath_type (float for half / bfloat16 / float, double for double).
// The plane variance is sum((v - v0)^2) / L - (sum(v - v0) / L)^2 with v0 the plane's first value: a
// shifted one-pass formula that keeps its accuracy when the mean is large against the spread.
#include "common.cuh"

namespace ganforge {

// ---------------------------------------------------------------------------------------------------
// adain (STYLE = false) and style_epilogue (STYLE = true) on planes x[n, c, l] = x[n * sn + c * sc + l * sl]

template <typename scalar_t>
struct PlaneArgs {
  const scalar_t* x;
  const scalar_t* noise;     // [noise_n, L] contiguous or nullptr (STYLE only)
  const scalar_t* strength;  // [C] (STYLE only)
  const scalar_t* bias;      // [C] (STYLE only)
  const scalar_t* scale;     // [N, C]
  const scalar_t* shift;     // [N, C] (forward only)
  int64_t C, L, sn, sc, sl, noise_n;
  double alpha, gain, eps;
};

template <typename scalar_t, bool STYLE>
struct PlaneLoader {
  using acc_t = at::opmath_type<scalar_t>;
  const scalar_t* xp;
  const scalar_t* np;
  acc_t strength, bias, alpha, gain;
  int64_t sl;
  // the pre-activation z (STYLE: x + noise * strength + bias) and the normalised value's input a
  __device__ __forceinline__ acc_t noise(int64_t l) const {
    return np != nullptr ? static_cast<acc_t>(np[l]) : acc_t(0);
  }
  __device__ __forceinline__ acc_t z(int64_t l) const {
    acc_t v = static_cast<acc_t>(xp[l * sl]);
    if (STYLE) v += noise(l) * strength + bias;
    return v;
  }
  __device__ __forceinline__ acc_t act(acc_t z) const {
    return STYLE ? (z > acc_t(0) ? z : z * alpha) * gain : z;
  }
};

template <typename scalar_t, bool STYLE>
__device__ __forceinline__ PlaneLoader<scalar_t, STYLE> make_loader(const PlaneArgs<scalar_t>& a, int64_t n,
                                                                    int64_t c) {
  using acc_t = at::opmath_type<scalar_t>;
  PlaneLoader<scalar_t, STYLE> ld;
  ld.xp = a.x + n * a.sn + c * a.sc;
  ld.sl = a.sl;
  ld.np = (STYLE && a.noise != nullptr) ? a.noise + (a.noise_n == 1 ? 0 : n) * a.L : nullptr;
  ld.strength = STYLE ? static_cast<acc_t>(a.strength[c]) : acc_t(0);
  ld.bias = STYLE ? static_cast<acc_t>(a.bias[c]) : acc_t(0);
  ld.alpha = static_cast<acc_t>(a.alpha);
  ld.gain = static_cast<acc_t>(a.gain);
  return ld;
}

template <typename scalar_t, bool STYLE>
__global__ void plane_norm_fwd_kernel(scalar_t* __restrict__ out, at::opmath_type<scalar_t>* __restrict__ mean_out,
                                      at::opmath_type<scalar_t>* __restrict__ rstd_out, PlaneArgs<scalar_t> a) {
  using acc_t = at::opmath_type<scalar_t>;
  __shared__ acc_t shm[32];
  const int64_t plane = blockIdx.x;
  const int64_t n = plane / a.C, c = plane % a.C;
  const auto ld = make_loader<scalar_t, STYLE>(a, n, c);
  const acc_t v0 = ld.act(ld.z(0));
  acc_t s1 = 0, s2 = 0;
  for (int64_t l = threadIdx.x; l < a.L; l += blockDim.x) {
    const acc_t d = ld.act(ld.z(l)) - v0;
    s1 += d;
    s2 += d * d;
  }
  s1 = block_sum(s1, shm);
  s2 = block_sum(s2, shm);
  const acc_t inv_l = acc_t(1) / static_cast<acc_t>(a.L);
  const acc_t m1 = s1 * inv_l;
  acc_t var = s2 * inv_l - m1 * m1;
  var = var > acc_t(0) ? var : acc_t(0);
  const acc_t mean = v0 + m1;
  const acc_t rstd = dev_rsqrt(var + static_cast<acc_t>(a.eps));
  const acc_t sc = static_cast<acc_t>(a.scale[plane]);
  const acc_t sh = static_cast<acc_t>(a.shift[plane]);
  scalar_t* op = out + n * a.sn + c * a.sc;
  for (int64_t l = threadIdx.x; l < a.L; l += blockDim.x) {
    op[l * a.sl] = static_cast<scalar_t>((ld.act(ld.z(l)) - mean) * rstd * sc + sh);
  }
  if (threadIdx.x == 0) {
    mean_out[plane] = mean;
    rstd_out[plane] = rstd;
  }
}

// dx, and per plane: dscale, dshift and (STYLE) the partial sums of dz and dz * noise that give the
// bias and strength gradients after a sum over the batch.
template <typename scalar_t, bool STYLE>
__global__ void plane_norm_bwd_kernel(scalar_t* __restrict__ dx, at::opmath_type<scalar_t>* __restrict__ dscale,
                                      at::opmath_type<scalar_t>* __restrict__ dshift,
                                      at::opmath_type<scalar_t>* __restrict__ dbias,
                                      at::opmath_type<scalar_t>* __restrict__ dstrength,
                                      const scalar_t* __restrict__ dy, const at::opmath_type<scalar_t>* __restrict__ mean_in,
                                      const at::opmath_type<scalar_t>* __restrict__ rstd_in, PlaneArgs<scalar_t> a) {
  using acc_t = at::opmath_type<scalar_t>;
  __shared__ acc_t shm[32];
  const int64_t plane = blockIdx.x;
  const int64_t n = plane / a.C, c = plane % a.C;
  const auto ld = make_loader<scalar_t, STYLE>(a, n, c);
  const acc_t mean = mean_in[plane], rstd = rstd_in[plane];
  const scalar_t* dyp = dy + n * a.sn + c * a.sc;
  acc_t sdy = 0, sdyx = 0;
  for (int64_t l = threadIdx.x; l < a.L; l += blockDim.x) {
    const acc_t g = static_cast<acc_t>(dyp[l * a.sl]);
    sdy += g;
    sdyx += g * (ld.act(ld.z(l)) - mean) * rstd;
  }
  sdy = block_sum(sdy, shm);
  sdyx = block_sum(sdyx, shm);
  const acc_t sc = static_cast<acc_t>(a.scale[plane]);
  const acc_t inv_l = acc_t(1) / static_cast<acc_t>(a.L);
  const acc_t mdy = sdy * inv_l * sc, mdyx = sdyx * inv_l * sc;  // means of dxhat and dxhat * xhat
  scalar_t* dxp = dx + n * a.sn + c * a.sc;
  acc_t sdz = 0, sdzn = 0;
  for (int64_t l = threadIdx.x; l < a.L; l += blockDim.x) {
    const acc_t z = ld.z(l);
    const acc_t xh = (ld.act(z) - mean) * rstd;
    // mdy is (sum of dy) / L * sc; dy * sc rounded alike, so that a one-pixel plane's gradient is exactly 0
    acc_t d = rstd * (mul_rn(static_cast<acc_t>(dyp[l * a.sl]), sc) - mdy - xh * mdyx);
    if (STYLE) {
      d *= ld.gain * (z > acc_t(0) ? acc_t(1) : ld.alpha);  // torch's leaky_relu: slope alpha at 0
      sdz += d;
      sdzn += d * ld.noise(l);
    }
    dxp[l * a.sl] = static_cast<scalar_t>(d);
  }
  if (STYLE) {
    sdz = block_sum(sdz, shm);
    sdzn = block_sum(sdzn, shm);
  }
  if (threadIdx.x == 0) {
    dscale[plane] = sdyx;
    dshift[plane] = sdy;
    if (STYLE) {
      dbias[plane] = sdz;
      dstrength[plane] = sdzn;
    }
  }
}

static void check_plane_input(const at::Tensor& x) {
  GANFORGE_CHECK_CUDA(x);
  TORCH_CHECK(x.dim() == 3, "adain/style_epilogue: x must be [N, C, L] (got ", x.dim(), " dims)");
  TORCH_CHECK(x.is_non_overlapping_and_dense(), "adain/style_epilogue: x must be dense");
  TORCH_CHECK(x.size(2) >= 1, "adain/style_epilogue: empty planes");
}

static void check_param(const at::Tensor& t, const at::Tensor& x, std::vector<int64_t> shape, const char* name) {
  GANFORGE_CHECK_CUDA(t);
  TORCH_CHECK(t.is_contiguous() && t.scalar_type() == x.scalar_type() && t.sizes() == at::IntArrayRef(shape),
              "adain/style_epilogue: ", name, " must be contiguous, of x's dtype and of shape ", at::IntArrayRef(shape),
              " (got ", t.sizes(), ")");
}

template <typename scalar_t>
static PlaneArgs<scalar_t> plane_args(const at::Tensor& x, const std::optional<at::Tensor>& noise,
                                      const std::optional<at::Tensor>& strength, const std::optional<at::Tensor>& bias,
                                      const at::Tensor& scale, const std::optional<at::Tensor>& shift, double alpha,
                                      double gain, double eps) {
  PlaneArgs<scalar_t> a;
  a.x = x.data_ptr<scalar_t>();
  const bool has_noise = noise.has_value() && noise->defined();
  a.noise = has_noise ? noise->data_ptr<scalar_t>() : nullptr;
  a.noise_n = has_noise ? noise->size(0) : 1;
  a.strength = strength.has_value() && strength->defined() ? strength->data_ptr<scalar_t>() : nullptr;
  a.bias = bias.has_value() && bias->defined() ? bias->data_ptr<scalar_t>() : nullptr;
  a.scale = scale.data_ptr<scalar_t>();
  a.shift = shift.has_value() && shift->defined() ? shift->data_ptr<scalar_t>() : nullptr;
  a.C = x.size(1); a.L = x.size(2);
  a.sn = x.stride(0); a.sc = x.stride(1); a.sl = x.stride(2);
  a.alpha = alpha; a.gain = gain; a.eps = eps;
  return a;
}

static void check_style_params(const at::Tensor& x, const std::optional<at::Tensor>& noise,
                               const std::optional<at::Tensor>& strength, const std::optional<at::Tensor>& bias) {
  const int64_t N = x.size(0), C = x.size(1), L = x.size(2);
  TORCH_CHECK(strength.has_value() && bias.has_value(), "style_epilogue: strength and bias are required");
  check_param(*strength, x, {C}, "strength");
  check_param(*bias, x, {C}, "bias");
  if (noise.has_value() && noise->defined()) {
    GANFORGE_CHECK_CUDA(*noise);
    TORCH_CHECK(noise->dim() == 2 && noise->is_contiguous() && noise->scalar_type() == x.scalar_type() &&
                    (noise->size(0) == 1 || noise->size(0) == N) && noise->size(1) == L,
                "style_epilogue: noise must be contiguous [1 or N, L] of x's dtype (got ", noise->sizes(), ")");
  }
}

// Returns (y, mean, rstd); mean and rstd are [N, C] in the accumulation type (saved for the backward).
std::vector<at::Tensor> plane_norm_fwd(const at::Tensor& x, const std::optional<at::Tensor>& noise,
                                       const std::optional<at::Tensor>& strength,
                                       const std::optional<at::Tensor>& bias, const at::Tensor& scale,
                                       const at::Tensor& shift, bool style, double alpha, double gain, double eps) {
  check_plane_input(x);
  const int64_t N = x.size(0), C = x.size(1), L = x.size(2);
  check_param(scale, x, {N, C}, "scale");
  check_param(shift, x, {N, C}, "shift");
  if (style) check_style_params(x, noise, strength, bias);
  const auto acc_type = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor out = at::empty_like(x);
  at::Tensor mean = at::empty({N, C}, x.options().dtype(acc_type));
  at::Tensor rstd = at::empty({N, C}, x.options().dtype(acc_type));
  if (N * C == 0) return {out, mean, rstd};
  TORCH_CHECK(N * C <= 2147483647LL, "adain/style_epilogue: too many planes");
  const c10::cuda::CUDAGuard guard(x.device());
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const int threads = reduction_threads(L);
  const unsigned int blocks = static_cast<unsigned int>(N * C);
  GANFORGE_DISPATCH(x.scalar_type(), "ganforge_plane_norm_fwd", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    auto a = plane_args<scalar_t>(x, noise, strength, bias, scale, shift, alpha, gain, eps);
    if (style) {
      plane_norm_fwd_kernel<scalar_t, true><<<blocks, threads, 0, stream>>>(
          out.data_ptr<scalar_t>(), mean.data_ptr<acc_t>(), rstd.data_ptr<acc_t>(), a);
    } else {
      plane_norm_fwd_kernel<scalar_t, false><<<blocks, threads, 0, stream>>>(
          out.data_ptr<scalar_t>(), mean.data_ptr<acc_t>(), rstd.data_ptr<acc_t>(), a);
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {out, mean, rstd};
}

// Returns (dx, dscale [N, C], dshift [N, C], dbias [N, C], dstrength [N, C]); the last two are per-plane
// partial sums (sum them over the batch) and are zero for adain. The [N, C] results are in the
// accumulation type.
std::vector<at::Tensor> plane_norm_bwd(const at::Tensor& dy, const at::Tensor& x, const std::optional<at::Tensor>& noise,
                                       const std::optional<at::Tensor>& strength,
                                       const std::optional<at::Tensor>& bias, const at::Tensor& scale,
                                       const at::Tensor& mean, const at::Tensor& rstd, bool style, double alpha,
                                       double gain) {
  check_plane_input(x);
  const int64_t N = x.size(0), C = x.size(1), L = x.size(2);
  GANFORGE_CHECK_CUDA(dy);
  TORCH_CHECK(dy.sizes() == x.sizes() && dy.strides() == x.strides() && dy.scalar_type() == x.scalar_type(),
              "adain/style_epilogue backward: dy must have the sizes, strides and dtype of x");
  check_param(scale, x, {N, C}, "scale");
  if (style) check_style_params(x, noise, strength, bias);
  const auto acc_type = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  TORCH_CHECK(mean.scalar_type() == acc_type && rstd.scalar_type() == acc_type && mean.is_contiguous() &&
                  rstd.is_contiguous() && mean.numel() == N * C && rstd.numel() == N * C,
              "adain/style_epilogue backward: mean and rstd must be the forward's [N, C] statistics");
  at::Tensor dx = at::empty_like(x);
  at::Tensor dscale = at::empty({N, C}, x.options().dtype(acc_type));
  at::Tensor dshift = at::empty({N, C}, x.options().dtype(acc_type));
  at::Tensor dbias = at::zeros({N, C}, x.options().dtype(acc_type));
  at::Tensor dstrength = at::zeros({N, C}, x.options().dtype(acc_type));
  if (N * C == 0) return {dx, dscale, dshift, dbias, dstrength};
  const c10::cuda::CUDAGuard guard(x.device());
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const int threads = reduction_threads(L);
  const unsigned int blocks = static_cast<unsigned int>(N * C);
  GANFORGE_DISPATCH(x.scalar_type(), "ganforge_plane_norm_bwd", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    auto a = plane_args<scalar_t>(x, noise, strength, bias, scale, std::nullopt, alpha, gain, 0.0);
    if (style) {
      plane_norm_bwd_kernel<scalar_t, true><<<blocks, threads, 0, stream>>>(
          dx.data_ptr<scalar_t>(), dscale.data_ptr<acc_t>(), dshift.data_ptr<acc_t>(), dbias.data_ptr<acc_t>(),
          dstrength.data_ptr<acc_t>(), dy.data_ptr<scalar_t>(), mean.data_ptr<acc_t>(), rstd.data_ptr<acc_t>(), a);
    } else {
      plane_norm_bwd_kernel<scalar_t, false><<<blocks, threads, 0, stream>>>(
          dx.data_ptr<scalar_t>(), dscale.data_ptr<acc_t>(), dshift.data_ptr<acc_t>(), dbias.data_ptr<acc_t>(),
          dstrength.data_ptr<acc_t>(), dy.data_ptr<scalar_t>(), mean.data_ptr<acc_t>(), rstd.data_ptr<acc_t>(), a);
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {dx, dscale, dshift, dbias, dstrength};
}

// ---------------------------------------------------------------------------------------------------
// pixel_norm on x viewed as [outer, C, inner]: y = x * rsqrt(mean_c(x^2) + eps); one thread per (outer, inner)

template <typename scalar_t>
__global__ void pixel_norm_kernel(scalar_t* __restrict__ out, const scalar_t* __restrict__ x,
                                  const scalar_t* __restrict__ dy, int64_t outer, int64_t C, int64_t inner,
                                  int64_t so, int64_t sc, int64_t si, double eps_) {
  using acc_t = at::opmath_type<scalar_t>;
  const acc_t eps = static_cast<acc_t>(eps_);
  const acc_t inv_c = acc_t(1) / static_cast<acc_t>(C);
  const int64_t total = outer * inner;
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < total;
       t += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int64_t base = (t / inner) * so + (t % inner) * si;
    acc_t ss = 0, sdx = 0;
    for (int64_t c = 0; c < C; ++c) {
      const acc_t v = static_cast<acc_t>(x[base + c * sc]);
      ss += v * v;
      if (dy != nullptr) sdx += v * static_cast<acc_t>(dy[base + c * sc]);
    }
    const acc_t r = dev_rsqrt(ss * inv_c + eps);
    if (dy == nullptr) {
      for (int64_t c = 0; c < C; ++c) out[base + c * sc] = static_cast<scalar_t>(static_cast<acc_t>(x[base + c * sc]) * r);
    } else {  // dx = r * dy - x * r^3 * mean_c(dy * x)
      const acc_t k = r * r * r * sdx * inv_c;
      for (int64_t c = 0; c < C; ++c) {
        const int64_t o = base + c * sc;
        out[o] = static_cast<scalar_t>(r * static_cast<acc_t>(dy[o]) - static_cast<acc_t>(x[o]) * k);
      }
    }
  }
}

// x: [outer, C, inner] dense; dy (backward) with x's strides. Returns y (dy undefined) or dx.
at::Tensor pixel_norm(const at::Tensor& x, const std::optional<at::Tensor>& dy, double eps) {
  GANFORGE_CHECK_CUDA(x);
  TORCH_CHECK(x.dim() == 3 && x.is_non_overlapping_and_dense(), "pixel_norm: x must be a dense [outer, C, inner] view");
  const bool bwd = dy.has_value() && dy->defined();
  if (bwd) {
    GANFORGE_CHECK_CUDA(*dy);
    TORCH_CHECK(dy->sizes() == x.sizes() && dy->strides() == x.strides() && dy->scalar_type() == x.scalar_type(),
                "pixel_norm backward: dy must have the sizes, strides and dtype of x");
  }
  at::Tensor out = at::empty_like(x);
  const int64_t total = x.size(0) * x.size(2);
  if (total == 0 || x.size(1) == 0) return out;
  const c10::cuda::CUDAGuard guard(x.device());
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const int threads = 256;
  const unsigned int blocks = elementwise_blocks(total, threads);
  GANFORGE_DISPATCH(x.scalar_type(), "ganforge_pixel_norm", [&] {
    pixel_norm_kernel<scalar_t><<<blocks, threads, 0, stream>>>(
        out.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(), bwd ? dy->data_ptr<scalar_t>() : nullptr, x.size(0),
        x.size(1), x.size(2), x.stride(0), x.stride(1), x.stride(2), eps);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

// ---------------------------------------------------------------------------------------------------
// minibatch_stddev on contiguous x viewed as [G, M, F, K] (K = C / F * H * W; sample n = g * M + m):
// stat[m, f] = mean_k(sqrt(var_g(x) + eps) - sqrt(eps)), and its backward.
//
// The statistic has only M * F values (4 for a batch of 16 in groups of 4), so one block per value
// would leave all but a few multiprocessors idle (measured on an H200: 11 ms at 16x64x256x256, 12x
// slower than eager PyTorch). Each (m, f) row of K features is split over gridDim.y blocks instead;
// they write partial sums that a second, tiny reduction adds in a fixed order, so the result is
// deterministic (no atomics).

template <typename scalar_t>
__global__ void mbstd_fwd_kernel(at::opmath_type<scalar_t>* __restrict__ partial, const scalar_t* __restrict__ x,
                                 int64_t G, int64_t M, int64_t F, int64_t K, double eps_) {
  using acc_t = at::opmath_type<scalar_t>;
  __shared__ acc_t shm[32];
  const int64_t mf = blockIdx.x;  // m * F + f
  const acc_t eps = static_cast<acc_t>(eps_), sqrt_eps = dev_sqrt(static_cast<acc_t>(eps_));
  const acc_t inv_g = acc_t(1) / static_cast<acc_t>(G);
  const int64_t group_stride = M * F * K;
  const scalar_t* xp = x + mf * K;
  acc_t acc = 0;
  for (int64_t k = blockIdx.y * static_cast<int64_t>(blockDim.x) + threadIdx.x; k < K;
       k += static_cast<int64_t>(blockDim.x) * gridDim.y) {
    acc_t mean = 0;
    for (int64_t g = 0; g < G; ++g) mean += static_cast<acc_t>(xp[g * group_stride + k]);
    mean *= inv_g;
    acc_t var = 0;
    for (int64_t g = 0; g < G; ++g) {
      const acc_t d = static_cast<acc_t>(xp[g * group_stride + k]) - mean;
      var += d * d;
    }
    acc += dev_sqrt(var * inv_g + eps) - sqrt_eps;
  }
  acc = block_sum(acc, shm);
  if (threadIdx.x == 0) partial[mf * gridDim.y + blockIdx.y] = acc;
}

// One (m, f) row per blockIdx.y, its K features over blockIdx.x: the row's dstat is read once per
// thread, with no division of a flat index.
template <typename scalar_t>
__global__ void mbstd_bwd_kernel(scalar_t* __restrict__ dx, const scalar_t* __restrict__ x,
                                 const at::opmath_type<scalar_t>* __restrict__ dstat, int64_t G, int64_t M, int64_t F,
                                 int64_t K, double eps_) {
  using acc_t = at::opmath_type<scalar_t>;
  const acc_t eps = static_cast<acc_t>(eps_);
  const acc_t inv_g = acc_t(1) / static_cast<acc_t>(G);
  const int64_t group_stride = M * F * K;
  const int64_t mf = blockIdx.y;
  // d/dx_g of mean_k(sqrt(var + eps)) = (x_g - mean) / (G * K * sqrt(var + eps))
  const acc_t scale = dstat[mf] / (static_cast<acc_t>(K) * static_cast<acc_t>(G));
  const scalar_t* xp = x + mf * K;
  scalar_t* dxp = dx + mf * K;
  for (int64_t k = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; k < K;
       k += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    acc_t mean = 0;
    for (int64_t g = 0; g < G; ++g) mean += static_cast<acc_t>(xp[g * group_stride + k]);
    mean *= inv_g;
    acc_t var = 0;
    for (int64_t g = 0; g < G; ++g) {
      const acc_t d = static_cast<acc_t>(xp[g * group_stride + k]) - mean;
      var += d * d;
    }
    const acc_t coef = scale / dev_sqrt(var * inv_g + eps);
    for (int64_t g = 0; g < G; ++g) {
      const int64_t o = g * group_stride + k;
      dxp[o] = static_cast<scalar_t>((static_cast<acc_t>(xp[o]) - mean) * coef);
    }
  }
}

// Blocks along each (m, f) row: about 8 features per thread, so that a few rows still fill the GPU.
static unsigned int mbstd_row_blocks(int64_t K, int threads) {
  int64_t blocks = (K + threads * 8LL - 1) / (threads * 8LL);
  return static_cast<unsigned int>(blocks < 1 ? 1 : (blocks > 65535 ? 65535 : blocks));
}

static void check_mbstd(const at::Tensor& x, int64_t G, int64_t F) {
  GANFORGE_CHECK_CUDA(x);
  TORCH_CHECK(x.dim() == 4 && x.is_contiguous(), "minibatch_stddev: x must be contiguous [N, C, H, W]");
  TORCH_CHECK(G >= 1 && x.size(0) % G == 0 && F >= 1 && x.size(1) % F == 0,
              "minibatch_stddev: group size must divide N and num_channels must divide C");
  TORCH_CHECK(x.size(0) / G * F <= 65535, "minibatch_stddev: more than 65535 (group member, part) rows");
}

// x: contiguous [N, C, H, W]; returns stat [M, F] (accumulation type), M = N / G.
at::Tensor mbstd_fwd(const at::Tensor& x, int64_t G, int64_t F, double eps) {
  check_mbstd(x, G, F);
  const int64_t M = x.size(0) / G, K = x.size(1) / F * x.size(2) * x.size(3);
  const auto acc_type = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  if (M * F == 0 || K == 0) return at::zeros({M, F}, x.options().dtype(acc_type));
  const c10::cuda::CUDAGuard guard(x.device());
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const int threads = reduction_threads(K);
  const unsigned int splits = mbstd_row_blocks(K, threads);
  at::Tensor partial = at::empty({M * F, static_cast<int64_t>(splits)}, x.options().dtype(acc_type));
  GANFORGE_DISPATCH(x.scalar_type(), "ganforge_mbstd_fwd", [&] {
    const dim3 grid(static_cast<unsigned int>(M * F), splits);
    mbstd_fwd_kernel<scalar_t><<<grid, threads, 0, stream>>>(partial.data_ptr<at::opmath_type<scalar_t>>(),
                                                              x.data_ptr<scalar_t>(), G, M, F, K, eps);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return partial.sum(1).div_(static_cast<double>(K)).view({M, F});
}

// dstat: [M, F] in the accumulation type; returns dx of x's shape (contiguous).
at::Tensor mbstd_bwd(const at::Tensor& dstat, const at::Tensor& x, int64_t G, int64_t F, double eps) {
  check_mbstd(x, G, F);
  GANFORGE_CHECK_CUDA(dstat);
  const int64_t M = x.size(0) / G, K = x.size(1) / F * x.size(2) * x.size(3);
  const auto acc_type = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  TORCH_CHECK(dstat.is_contiguous() && dstat.scalar_type() == acc_type && dstat.numel() == M * F,
              "minibatch_stddev backward: dstat must be contiguous [M, F] in the accumulation type");
  at::Tensor dx = at::empty_like(x);
  if (x.numel() == 0) return dx;
  const c10::cuda::CUDAGuard guard(x.device());
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const int threads = 256;
  GANFORGE_DISPATCH(x.scalar_type(), "ganforge_mbstd_bwd", [&] {
    const dim3 grid(mbstd_row_blocks(K, threads), static_cast<unsigned int>(M * F));
    mbstd_bwd_kernel<scalar_t><<<grid, threads, 0, stream>>>(
        dx.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(), dstat.data_ptr<at::opmath_type<scalar_t>>(), G, M, F, K,
        eps);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return dx;
}

}  // namespace ganforge
