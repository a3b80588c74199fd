#include "nn/init.h"

#include <cmath>

#include "ops/ops.h"

namespace lmforge::nn {

namespace {
void trunc_normal_3(Tensor& t, Generator& gen, double std) { trunc_normal_(t, gen, 0.0, std, -3 * std, 3 * std); }
}  // namespace

void init_parameters(const Module& module, const ModelConfig& c, Generator& gen) {
  NoGradGuard no_grad;
  const double residual_std = c.init == InitKind::Scaled ? c.init_std / std::sqrt(2.0 * double(c.n_layers)) : c.init_std;
  for (auto& p : module.named_parameters()) {
    Tensor& t = p.tensor;
    switch (p.kind) {
      case ParamKind::Norm:
        fill_(t, 1.0);
        break;
      case ParamKind::Bias:
        fill_(t, 0.0);
        break;
      case ParamKind::Embedding:
        trunc_normal_3(t, gen, c.init_std);
        break;
      case ParamKind::Matrix:
      case ParamKind::ResidualMatrix:
        if (c.init == InitKind::Xavier) {
          // Fans of one matrix; stacked expert weights [E, out, in] are E such matrices.
          LF_ASSERT(t.dim() == 2 || t.dim() == 3);
          const double a = std::sqrt(6.0 / double(t.size(-2) + t.size(-1)));
          uniform_(t, gen, -a, a);
        } else {
          trunc_normal_3(t, gen, p.kind == ParamKind::ResidualMatrix ? residual_std : c.init_std);
        }
        break;
    }
  }
}

}  // namespace lmforge::nn
