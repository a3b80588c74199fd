#include "tokenizer/bpe_trainer_reference.h"

#include <map>

namespace lmforge::tok {

BpeModel reference_learn_merges(const std::vector<std::pair<std::string, uint64_t>>& words, size_t n_new_tokens) {
  BpeModel model;
  std::map<std::string, uint32_t> ids;
  for (int b = 0; b < 256; ++b) {
    model.tokens.emplace_back(1, static_cast<char>(b));
    ids[model.tokens.back()] = static_cast<uint32_t>(b);
  }
  std::vector<std::vector<uint32_t>> syms;
  std::vector<uint64_t> freq;
  for (const auto& [w, f] : words) {
    std::vector<uint32_t> s;
    for (const char c : w) s.push_back(static_cast<unsigned char>(c));
    syms.push_back(std::move(s));
    freq.push_back(f);
    model.input_bytes += f * w.size();
  }
  size_t n_new = 0;
  while (n_new < n_new_tokens) {
    std::map<std::pair<uint32_t, uint32_t>, uint64_t> counts;
    for (size_t w = 0; w < syms.size(); ++w) {
      for (size_t i = 0; i + 1 < syms[w].size(); ++i) counts[{syms[w][i], syms[w][i + 1]}] += freq[w];
    }
    if (counts.empty()) break;
    auto best = counts.begin();
    for (auto it = counts.begin(); it != counts.end(); ++it) {
      const auto& [p, c] = *it;
      const auto& [bp, bc] = *best;
      if (c > bc || (c == bc && pair_bytes_less(model.tokens[bp.first], model.tokens[bp.second],
                                                model.tokens[p.first], model.tokens[p.second]))) {
        best = it;
      }
    }
    const auto [a, b] = best->first;
    const std::string bytes = model.tokens[a] + model.tokens[b];
    uint32_t z;
    if (auto it = ids.find(bytes); it != ids.end()) {
      z = it->second;
    } else {
      z = static_cast<uint32_t>(model.tokens.size());
      model.tokens.push_back(bytes);
      ids[bytes] = z;
      ++n_new;
    }
    model.merges.push_back(BpeMerge{a, b, z, best->second});
    for (auto& s : syms) {
      std::vector<uint32_t> out;
      for (size_t i = 0; i < s.size();) {
        if (i + 1 < s.size() && s[i] == a && s[i + 1] == b) {
          out.push_back(z);
          i += 2;
        } else {
          out.push_back(s[i++]);
        }
      }
      s = std::move(out);
    }
  }
  for (size_t w = 0; w < syms.size(); ++w) model.output_tokens += freq[w] * syms[w].size();
  return model;
}

std::vector<std::pair<std::string, uint64_t>> reference_count_pieces(std::string_view text, const SplitFn& split,
                                                                     const std::vector<std::string>& special_tokens) {
  std::map<std::string, uint64_t> counts;
  split_at_special_tokens(text, special_tokens, [&](std::string_view seg) {
    split(seg, [&](std::string_view piece) { ++counts[std::string(piece)]; });
  });
  return {counts.begin(), counts.end()};
}

}  // namespace lmforge::tok
