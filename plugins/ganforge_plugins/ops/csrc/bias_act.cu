// bias_act: y = clamp(gain * act(x + b), -clamp, clamp), the bias broadcast along one dimension,
// with its first and second derivatives (NVlabs StyleGAN2-ADA bias_act semantics).
//
// One elementwise kernel, three modes:
//   mode 0: out = y
//   mode 1: out = dy * dy/dx                (the gradient of y)
//   mode 2: out = ddx * dy * d2y/dx2         (what the gradient of mode 1 needs with respect to x)
// The clamp mask |gain * act(x + b)| <= clamp (torch.clamp's inclusive gradient) applies to all three.
// x, dy and ddx are dense (any permutation of a contiguous layout: NCHW, channels-last, ...) and
// share their strides, so the kernel walks storage linearly and the output has the same strides.
#include "common.cuh"

namespace ganforge {

enum Act : int { LINEAR = 0, RELU, LRELU, TANH, SIGMOID, ELU, SELU, SOFTPLUS, SWISH };

template <typename T>
struct ActDerivs {
  T f, d1, d2;  // act(z), act'(z), act''(z)
};

template <typename T>
__device__ __forceinline__ ActDerivs<T> activation(T z, int act, T alpha, int order) {
  const T one = T(1), zero = T(0);
  ActDerivs<T> r{z, one, zero};
  switch (act) {
    case RELU:  // torch: gradient 0 at z = 0
      r.f = z > zero ? z : zero;
      r.d1 = z > zero ? one : zero;
      break;
    case LRELU:  // torch: gradient alpha at z = 0
      r.f = z > zero ? z : z * alpha;
      r.d1 = z > zero ? one : alpha;
      break;
    case TANH: {
      const T t = dev_tanh(z);
      r.f = t;
      r.d1 = one - t * t;
      r.d2 = T(-2) * t * (one - t * t);
      break;
    }
    case SIGMOID: {
      const T s = one / (one + dev_exp(-z));
      r.f = s;
      r.d1 = s * (one - s);
      r.d2 = s * (one - s) * (one - T(2) * s);
      break;
    }
    case ELU: {  // alpha of F.elu = 1
      const T e = dev_exp(z > zero ? zero : z);
      r.f = z > zero ? z : e - one;
      r.d1 = z > zero ? one : e;
      r.d2 = z > zero ? zero : e;
      break;
    }
    case SELU: {
      const T scale = T(1.0507009873554804934193349852946);
      const T a = T(1.6732632423543772848170429916717);
      const T e = dev_exp(z > zero ? zero : z);
      r.f = z > zero ? scale * z : scale * a * (e - one);
      r.d1 = z > zero ? scale : scale * a * e;
      r.d2 = z > zero ? zero : scale * a * e;
      break;
    }
    case SOFTPLUS: {  // F.softplus with beta 1, threshold 20
      const bool lin = z > T(20);
      const T s = one / (one + dev_exp(-z));
      r.f = lin ? z : dev_log1p(dev_exp(z));
      r.d1 = lin ? one : s;
      r.d2 = lin ? zero : s * (one - s);
      break;
    }
    case SWISH: {
      const T s = one / (one + dev_exp(-z));
      r.f = z * s;
      r.d1 = s * (one + z * (one - s));
      r.d2 = s * (one - s) * (T(2) + z * (one - T(2) * s));
      break;
    }
    default:  // LINEAR
      break;
  }
  (void)order;
  return r;
}

// index_t is uint32_t when the tensor has fewer than 2^31 elements (the channel found by FastDivmod)
// and int64_t otherwise (plain division).
template <typename index_t>
struct ChannelOf {
  FastDivmod stride, channels;
  __device__ __forceinline__ index_t operator()(index_t i) const { return channels.mod(stride.div(i)); }
};

template <>
struct ChannelOf<int64_t> {
  int64_t stride, channels;
  __device__ __forceinline__ int64_t operator()(int64_t i) const { return (i / stride) % channels; }
};

template <typename scalar_t, typename index_t>
__global__ void bias_act_kernel(scalar_t* __restrict__ out, const scalar_t* __restrict__ x,
                                const scalar_t* __restrict__ b, const scalar_t* __restrict__ dy,
                                const scalar_t* __restrict__ ddx, index_t numel, ChannelOf<index_t> channel_of,
                                int mode, int act, double alpha_, double gain_, double clamp_) {
  using acc_t = at::opmath_type<scalar_t>;
  const acc_t alpha = static_cast<acc_t>(alpha_), gain = static_cast<acc_t>(gain_), clamp = static_cast<acc_t>(clamp_);
  const bool clamped = clamp_ >= 0;
  const index_t step = static_cast<index_t>(blockDim.x) * gridDim.x;
  for (index_t i = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; i < numel; i += step) {
    acc_t z = static_cast<acc_t>(x[i]);
    if (b != nullptr) z += static_cast<acc_t>(b[channel_of(i)]);
    const ActDerivs<acc_t> a = activation<acc_t>(z, act, alpha, mode);
    const acc_t v = a.f * gain;
    const bool pass = !clamped || (v >= -clamp && v <= clamp);
    acc_t r;
    if (mode == 0) {
      r = clamped ? (v > clamp ? clamp : (v < -clamp ? -clamp : v)) : v;
    } else if (mode == 1) {
      r = pass ? static_cast<acc_t>(dy[i]) * a.d1 * gain : acc_t(0);
    } else {
      r = pass ? static_cast<acc_t>(ddx[i]) * static_cast<acc_t>(dy[i]) * a.d2 * gain : acc_t(0);
    }
    out[i] = static_cast<scalar_t>(r);
  }
}

static void check_like(const at::Tensor& t, const at::Tensor& x, const char* name) {
  GANFORGE_CHECK_CUDA(t);
  TORCH_CHECK(t.sizes() == x.sizes() && t.strides() == x.strides() && t.scalar_type() == x.scalar_type(),
              "bias_act: ", name, " must have the sizes, strides and dtype of x");
}

at::Tensor bias_act(const at::Tensor& x, const std::optional<at::Tensor>& b, const std::optional<at::Tensor>& dy,
                    const std::optional<at::Tensor>& ddx, int64_t mode, int64_t dim, int64_t act, double alpha,
                    double gain, double clamp) {
  GANFORGE_CHECK_CUDA(x);
  TORCH_CHECK(x.is_non_overlapping_and_dense(), "bias_act: x must be dense (contiguous in some dimension order)");
  TORCH_CHECK(mode >= 0 && mode <= 2, "bias_act: mode must be 0, 1 or 2 (got ", mode, ")");
  TORCH_CHECK(act >= LINEAR && act <= SWISH, "bias_act: unknown activation id ", act);
  const int64_t ndim = x.dim() > 0 ? x.dim() : 1;
  TORCH_CHECK(dim >= 0 && dim < ndim, "bias_act: dim ", dim, " out of range for ", x.dim(), "-d x");
  const bool has_b = b.has_value() && b->defined();
  if (has_b) {
    GANFORGE_CHECK_CUDA(*b);
    TORCH_CHECK(b->dim() == 1 && b->is_contiguous() && b->scalar_type() == x.scalar_type() &&
                    b->size(0) == (x.dim() > 0 ? x.size(dim) : 1),
                "bias_act: b must be a contiguous 1-d tensor of x's dtype with x.size(dim) elements");
  }
  if (mode >= 1) {
    TORCH_CHECK(dy.has_value() && dy->defined(), "bias_act: modes 1 and 2 need dy");
    check_like(*dy, x, "dy");
  }
  if (mode == 2) {
    TORCH_CHECK(ddx.has_value() && ddx->defined(), "bias_act: mode 2 needs ddx");
    check_like(*ddx, x, "ddx");
  }
  at::Tensor out = at::empty_like(x);  // dense input: same strides
  const int64_t numel = x.numel();
  if (numel == 0) return out;
  const int64_t channels = x.dim() > 0 ? x.size(dim) : 1;
  const int64_t channel_stride = (x.dim() > 0 && channels > 1) ? x.stride(dim) : 1;
  const c10::cuda::CUDAGuard guard(x.device());
  const int threads = 256;
  const unsigned int blocks = elementwise_blocks(numel, threads);
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const bool small = numel <= 2147483647LL && channel_stride <= 2147483647LL && channels <= 2147483647LL;
  GANFORGE_DISPATCH(x.scalar_type(), "ganforge_bias_act", [&] {
    const scalar_t* bp = has_b ? b->data_ptr<scalar_t>() : nullptr;
    const scalar_t* dyp = mode >= 1 ? dy->data_ptr<scalar_t>() : nullptr;
    const scalar_t* ddxp = mode == 2 ? ddx->data_ptr<scalar_t>() : nullptr;
    if (small) {
      const ChannelOf<uint32_t> channel_of{FastDivmod(static_cast<uint32_t>(channel_stride)),
                                           FastDivmod(static_cast<uint32_t>(channels))};
      bias_act_kernel<scalar_t, uint32_t><<<blocks, threads, 0, stream>>>(
          out.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(), bp, dyp, ddxp, static_cast<uint32_t>(numel), channel_of,
          static_cast<int>(mode), static_cast<int>(act), alpha, gain, clamp);
    } else {
      const ChannelOf<int64_t> channel_of{channel_stride, channels};
      bias_act_kernel<scalar_t, int64_t><<<blocks, threads, 0, stream>>>(
          out.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(), bp, dyp, ddxp, numel, channel_of, static_cast<int>(mode),
          static_cast<int>(act), alpha, gain, clamp);
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

}  // namespace ganforge
