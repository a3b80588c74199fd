// lmforge export: a checkpoint as an HF transformers model directory (train/hf_export.h):
// model.safetensors in the HF Hub's per-expert layout, config.json of the HF architecture the
// model config maps to (Llama, Qwen3, Mixtral, Qwen3-MoE, DeepSeek-V3), the tokenizer.
#include <fmt/format.h>

#include "cli/command.h"
#include "train/hf_export.h"

namespace lmforge::cli {
namespace {

struct ExportArgs {
  std::string checkpoint, output, format = "hf";
};

void run_export(const ExportArgs& a) {
  LF_CHECK(a.format == "hf", "export: --format \"{}\" is not a known format (hf)", a.format);
  const train::HfExportSummary s = train::export_hf(a.checkpoint, a.output);
  fmt::print("exported {} as {} into {}: {} tensors{}\n", s.checkpoint, train::hf_class_name(s.architecture),
             a.output, s.tensors, s.tokenizer ? ", tokenizer.json" : "");
}

LMFORGE_COMMAND("export",
                "write a checkpoint as an HF transformers model (Llama, Qwen3, Mixtral, Qwen3-MoE, DeepSeek-V3)",
                [](CLI::App& sub) {
                  auto args = std::make_shared<ExportArgs>();
                  sub.add_option("checkpoint", args->checkpoint, "checkpoint, model or run directory")->required();
                  sub.add_option("--output", args->output, "new model directory")->required();
                  sub.add_option("--format", args->format, "output format: hf (HF transformers, per-expert layout)");
                  sub.callback([args] { run_export(*args); });
                });

}  // namespace
}  // namespace lmforge::cli
