// SAE parameters to and from SAELens's safetensors names (core/io/saelens.h), per architecture.
//
// SAELens 6 saves batchtopk and matryoshka_batchtopk SAEs for inference as JumpReLU SAEs whose
// threshold is the running threshold on every latent; so does ExportTensors, and a folder read
// back is a jumprelu SAE that encodes the same way.
#ifndef SAE_CORE_SAE_SAELENS_PARAMETERS_H_
#define SAE_CORE_SAE_SAELENS_PARAMETERS_H_

#include <string>
#include <utility>
#include <vector>

#include "core/io/saelens.h"
#include "core/sae/sae_options.h"
#include "core/sae/sparse_autoencoder.h"

namespace sae::sparse {

// The trained tensors of an `options` SAE with their shapes, in SaeParameters::Named() order,
// followed by ("topk_threshold", {1}) for the batchtopk family.
std::vector<std::pair<std::string, std::vector<int64_t>>> ParameterShapes(
    const SaeOptions& options);

// The architecture a folder's SAE runs as here: "standard", "topk", "jumprelu" or "gated".
std::string SaeLensArchitecture(Architecture architecture);

// Writes `params` of an `architecture` SAE into out's tensors and out.metadata.architecture.
void ExportTensors(const SaeParameters& params, Architecture architecture, io::SaeLensSae& out);

// The parameters of a folder read by io::ReadSaeLens, float32 and contiguous, for its
// metadata.architecture.
SaeParameters ImportTensors(const io::SaeLensSae& sae);

}  // namespace sae::sparse

#endif  // SAE_CORE_SAE_SAELENS_PARAMETERS_H_
