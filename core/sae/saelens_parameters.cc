#include "core/sae/saelens_parameters.h"

namespace sae::sparse {
namespace {

at::Tensor Float(const at::Tensor& t) {
  return t.defined() ? t.to(at::kFloat).contiguous() : at::Tensor();
}

}  // namespace

std::vector<std::pair<std::string, std::vector<int64_t>>> ParameterShapes(
    const SaeOptions& options) {
  const int64_t D = options.d_in, S = options.d_sae;
  const Architecture a = options.architecture;
  std::vector<std::pair<std::string, std::vector<int64_t>>> shapes = {{"W_enc", {D, S}}};
  if (a != Architecture::kGated) shapes.push_back({"b_enc", {S}});
  shapes.push_back({"W_dec", {S, D}});
  shapes.push_back({"b_dec", {D}});
  if (a == Architecture::kJumpReLU) shapes.push_back({"threshold", {S}});
  if (a == Architecture::kGated) {
    for (const char* name : {"r_mag", "b_gate", "b_mag"}) shapes.push_back({name, {S}});
  }
  if (IsBatchTopK(a)) shapes.push_back({"topk_threshold", {1}});
  return shapes;
}

std::string SaeLensArchitecture(Architecture architecture) {
  if (IsBatchTopK(architecture)) return "jumprelu";
  return std::string(ArchitectureName(architecture));
}

void ExportTensors(const SaeParameters& params, Architecture architecture, io::SaeLensSae& out) {
  out.metadata.architecture = SaeLensArchitecture(architecture);
  out.W_enc = params.W_enc;
  out.b_enc = params.b_enc;
  out.W_dec = params.W_dec;
  out.b_dec = params.b_dec;
  out.threshold = params.threshold;
  out.b_gate = params.b_gate;
  out.b_mag = params.b_mag;
  out.r_mag = params.r_mag;
  if (IsBatchTopK(architecture)) {
    out.threshold =
        at::full({params.W_dec.size(0)}, params.topk_threshold.item<double>(), at::kFloat);
  }
}

SaeParameters ImportTensors(const io::SaeLensSae& sae) {
  SaeParameters p;
  p.W_enc = Float(sae.W_enc);
  p.b_enc = Float(sae.b_enc);
  p.W_dec = Float(sae.W_dec);
  p.b_dec = Float(sae.b_dec);
  const std::string& a = sae.metadata.architecture;
  if (a == "jumprelu") p.threshold = Float(sae.threshold);
  if (a == "gated") {
    p.b_enc = at::Tensor();
    p.b_gate = Float(sae.b_gate);
    p.b_mag = Float(sae.b_mag);
    p.r_mag = Float(sae.r_mag);
  }
  return p;
}

}  // namespace sae::sparse
