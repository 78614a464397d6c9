// Python bindings of ganforge's CUDA kernels. The contract of every function (shapes, layouts,
// dtypes) is documented where it is called: the Primitives class of each op module in ganforge_plugins/ops/.
#include <torch/extension.h>

#include <optional>
#include <vector>

namespace ganforge {
at::Tensor bias_act(const at::Tensor& x, const std::optional<at::Tensor>& b, const std::optional<at::Tensor>& dy,
                    const std::optional<at::Tensor>& ddx, int64_t mode, int64_t dim, int64_t act, double alpha,
                    double gain, double clamp);
at::Tensor upfirdn2d(const at::Tensor& x, const at::Tensor& f, int64_t upx, int64_t upy, int64_t downx,
                     int64_t downy, int64_t px0, int64_t px1, int64_t py0, int64_t py1, bool flip);
std::vector<at::Tensor> plane_norm_fwd(const at::Tensor& x, const std::optional<at::Tensor>& noise,
                                       const std::optional<at::Tensor>& strength,
                                       const std::optional<at::Tensor>& bias, const at::Tensor& scale,
                                       const at::Tensor& shift, bool style, double alpha, double gain, double eps);
std::vector<at::Tensor> plane_norm_bwd(const at::Tensor& dy, const at::Tensor& x, const std::optional<at::Tensor>& noise,
                                       const std::optional<at::Tensor>& strength,
                                       const std::optional<at::Tensor>& bias, const at::Tensor& scale,
                                       const at::Tensor& mean, const at::Tensor& rstd, bool style, double alpha,
                                       double gain);
at::Tensor pixel_norm(const at::Tensor& x, const std::optional<at::Tensor>& dy, double eps);
at::Tensor mbstd_fwd(const at::Tensor& x, int64_t G, int64_t F, double eps);
at::Tensor mbstd_bwd(const at::Tensor& dstat, const at::Tensor& x, int64_t G, int64_t F, double eps);
}  // namespace ganforge

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "ganforge fused CUDA kernels (bias_act, upfirdn2d, adain, style_epilogue, pixel_norm, minibatch_stddev)";
  m.def("bias_act", &ganforge::bias_act, "bias + activation + gain + clamp and its first / second derivative");
  m.def("upfirdn2d", &ganforge::upfirdn2d, "upsample, 2-D FIR filter, downsample");
  m.def("plane_norm_fwd", &ganforge::plane_norm_fwd, "adain / style_epilogue forward -> (y, mean, rstd)");
  m.def("plane_norm_bwd", &ganforge::plane_norm_bwd,
        "adain / style_epilogue backward -> (dx, dscale, dshift, dbias_nc, dstrength_nc)");
  m.def("pixel_norm", &ganforge::pixel_norm, "pixel_norm forward (dy=None) or backward");
  m.def("mbstd_fwd", &ganforge::mbstd_fwd, "minibatch stddev statistic [M, F]");
  m.def("mbstd_bwd", &ganforge::mbstd_bwd, "minibatch stddev statistic backward");
}
