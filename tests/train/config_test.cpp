#include <gtest/gtest.h>

#include <functional>

#include "core/error.h"
#include "train/config.h"

#include "train/train_test_util.h"

namespace lmforge::train {
namespace {

constexpr const char* kBase = R"(
[model]
vocab_size = 512
d_model = 64
n_heads = 4
n_kv_heads = 2
norm = "layernorm"

[data]
path = "shards"

[train]
steps = 10
micro_batch_size = 2
batch_tokens = 1024
seq_len = 128

[optim]
lr = 1e-3
min_lr = 1e-4
warmup_steps = 2
)";

using test::error_of;

TEST(RunConfig, ParsesSectionsAndDerivesDefaults) {
  const RunConfig c = parse_run_config(kBase, "base.toml");
  EXPECT_EQ(c.model.vocab_size, 512);
  EXPECT_EQ(c.model.n_kv_heads, 2);
  EXPECT_EQ(c.model.head_dim, 16);
  EXPECT_EQ(c.model.d_ff, 192);
  EXPECT_EQ(c.model.norm, nn::NormKind::LayerNorm);
  EXPECT_EQ(c.data.path, "shards");
  EXPECT_EQ(c.accumulation_steps(), 4);
  EXPECT_DOUBLE_EQ(c.optim.lr, 1e-3);
  EXPECT_EQ(c.decay_steps(), 10);
}

TEST(RunConfig, UnknownKeysAreRejectedNamingTheKey) {
  std::string e = error_of([] { parse_run_config(std::string(kBase) + "[eval]\nevery = 5\nevry = 3\n", "x.toml"); });
  EXPECT_NE(e.find("unknown config key eval.evry"), std::string::npos) << e;
  EXPECT_NE(e.find("did you mean eval.every"), std::string::npos) << e;
  EXPECT_NE(e.find("x.toml:"), std::string::npos) << e;
  e = error_of([] { parse_run_config("[modle]\nd_model = 3\n", "y.toml"); });
  EXPECT_NE(e.find("unknown config section [modle]"), std::string::npos) << e;
  e = error_of([] { parse_run_config("steps = 3\n", "z.toml"); });
  EXPECT_NE(e.find("unknown config key steps"), std::string::npos) << e;
  e = error_of([] { parse_run_config(kBase, "b.toml", {"model.n_layer=3"}); });
  EXPECT_NE(e.find("unknown config key model.n_layer"), std::string::npos) << e;
  EXPECT_NE(e.find("did you mean model.n_layers"), std::string::npos) << e;
}

TEST(RunConfig, TypeErrorsNameTheKey) {
  std::string e = error_of([] { parse_run_config("[model]\nn_layers = 2.5\n", "t.toml"); });
  EXPECT_NE(e.find("model.n_layers must be an integer"), std::string::npos) << e;
  e = error_of([] { parse_run_config("[model]\nnorm = \"batchnorm\"\n", "t.toml"); });
  EXPECT_NE(e.find("model.norm"), std::string::npos) << e;
  e = error_of([] { parse_run_config("[model\n", "t.toml"); });
  EXPECT_NE(e.find("t.toml:1"), std::string::npos) << e;
}

// TOML allows non-ASCII text only in strings and comments; elsewhere it is refused with the line
// and the column (in characters) before the TOML library sees it.
TEST(RunConfig, NonAsciiOutsideStringsAndCommentsIsRefusedWithItsPosition) {
  // U+FEF7 (bytes EF BB B7) as the first character of the file.
  std::string e = error_of([] { parse_run_config("\xEF\xBB\xB7", "u.toml"); });
  EXPECT_NE(e.find("u.toml:1:1: non-ASCII character (byte 0xEF) outside a string or comment"), std::string::npos)
      << e;
  // After a value on line 3: "steps = 3" is 9 characters, so it is column 10.
  e = error_of([] { parse_run_config("[train]\n# \xC3\xA9\nsteps = 3\xEF\xBB\xB7\n", "u.toml"); });
  EXPECT_NE(e.find("u.toml:3:10: non-ASCII character"), std::string::npos) << e;
  // Columns count characters: the é in the string is one column, not two, so the second é (outside
  // the string) is the 12th character of `path = "é" é`.
  e = error_of([] { parse_run_config("[data]\npath = \"\xC3\xA9\" \xC3\xA9\n", "u.toml"); });
  EXPECT_NE(e.find("u.toml:2:12: non-ASCII character (byte 0xC3)"), std::string::npos) << e;
  // After a multi-line string the line count goes on.
  e = error_of([] { parse_run_config("[data]\npath = \"\"\"a\nb\\\"\"\"\"\"\n\xC3\xA9 = 1\n", "u.toml"); });
  EXPECT_NE(e.find("u.toml:4:1: non-ASCII character"), std::string::npos) << e;
}

// Control characters other than tab and line breaks are refused anywhere, strings and comments
// included (TOML spells them as escapes), before the TOML library sees them.
TEST(RunConfig, ControlCharactersAreRefusedWithTheirPosition) {
  std::string e = error_of([] { parse_run_config(std::string("# c\n[\0model]\n", 12), "c.toml"); });
  EXPECT_NE(e.find("c.toml:2:2: control character (byte 0x00)"), std::string::npos) << e;
  e = error_of([] { parse_run_config("[data]\npath = \"a\x7F\"\n", "c.toml"); });
  EXPECT_NE(e.find("c.toml:2:10: control character (byte 0x7F)"), std::string::npos) << e;
  e = error_of([] { parse_run_config("# a\rb\n", "c.toml"); });  // a CR not before LF
  EXPECT_NE(e.find("c.toml:1:4: control character (byte 0x0D)"), std::string::npos) << e;
  // Tab, LF and CRLF are fine.
  std::string crlf = kBase;
  for (size_t at = crlf.find('\n'); at != std::string::npos; at = crlf.find('\n', at + 2)) crlf.insert(at, "\r");
  EXPECT_EQ(parse_run_config(crlf + "#\tx\r\n", "ok.toml").model.vocab_size, 512);
}

TEST(RunConfig, ATableHeaderWithoutAKeyIsRefusedWithItsPosition) {
  std::string e = error_of([] { parse_run_config("# x\n  [;ata]\n", "h.toml"); });
  EXPECT_NE(e.find("h.toml:2:4: a table header must start with a key"), std::string::npos) << e;
  EXPECT_NE(e.find("not ';'"), std::string::npos) << e;
  e = error_of([] { parse_run_config("[[ =x]]\n", "h.toml"); });
  EXPECT_NE(e.find("h.toml:1:4: a table header must start with a key"), std::string::npos) << e;
  // A '[' inside a string or comment, or after a key, is not a header.
  std::string text = kBase;
  text.replace(text.find("path = \"shards\""), 15, "path = \"\"\"\n[;x\"\"\"  # [;y");
  EXPECT_EQ(parse_run_config(text, "ok.toml").data.path, "[;x");
}

// A quote glued to a bare value does not start a string, so what follows it is not skipped as one.
TEST(RunConfig, AQuoteWhereNoStringStartsIsRefused) {
  std::string e = error_of([] { parse_run_config("[model]\nd_model = 642n_h\'\'\'\xEF\xBB\xB7 4\n", "q.toml"); });
  EXPECT_NE(e.find("q.toml:2:17: a quote after 'h' does not start a string"), std::string::npos) << e;
  // A '[' glued to a bare value opens no array: toml++ reads the whole run on as one value.
  e = error_of([] { parse_run_config("[model]\nd_model = 642n_[\'\'\'\xEF\xBB\xB7 4\n", "q.toml"); });
  EXPECT_NE(e.find("q.toml:2:17: a quote after '[' does not start a string"), std::string::npos) << e;
  e = error_of([] { parse_run_config("[data]\npath = \"a\" \"b\"\n", "q.toml"); });
  EXPECT_NE(e.find("q.toml:2:12: a quote after '\"' does not start a string"), std::string::npos) << e;
  // Quoted keys, dotted or not, and strings after '=' are strings.
  EXPECT_EQ(parse_run_config("\"model\".\"d_model\" = 64\n[data]\n\"path\" = \"x\"\n", "ok.toml").data.path, "x");
}

// toml++ reads what follows a line-ending backslash with a Unicode table that must not see
// some non-ASCII code points; such text is refused with its position before it gets there.
TEST(RunConfig, NonAsciiAfterALineEndingBackslashIsRefused) {
  for (const char* text : {"[data]\npath = \"\"\"a\\\n\xC3\xA9\"\"\"\n", "[data]\npath = \"\"\"a\\ \xC3\xA9\"\"\"\n",
                           "[data]\npath = \"a\\\xC3\xA9\"\n"}) {
    const std::string e = error_of([&] { parse_run_config(text, "b.toml"); });
    EXPECT_NE(e.find("b.toml:2:"), std::string::npos) << e;
    EXPECT_NE(e.find("a non-ASCII character follows a backslash"), std::string::npos) << e;
  }
  // An escape before non-ASCII text, and a line-ending backslash before ASCII text, are fine.
  EXPECT_EQ(parse_run_config("[data]\npath = \"\\t\xC3\xA9\"\n", "ok.toml").data.path, "\t\xC3\xA9");
  EXPECT_EQ(parse_run_config("[data]\npath = \"\"\"a\\\n   b\xC3\xA9\"\"\"\n", "ok.toml").data.path, "ab\xC3\xA9");
}

TEST(RunConfig, NonAsciiInsideStringsAndCommentsIsAccepted) {
  // kBase with its data.path replaced by `replacement`, after a comment line with non-ASCII text
  // and a byte-order mark before everything.
  const auto with_path = [](const std::string& replacement) {
    std::string text = kBase;
    const std::string path_line = "path = \"shards\"";
    text.replace(text.find(path_line), path_line.size(), replacement);
    return "\xEF\xBB\xBF# caf\xC3\xA9 \xEF\xBB\xB7\n" + text;
  };
  RunConfig c = parse_run_config(with_path("path = \"r\xC3\xA9sum\xC3\xA9 # \\\" \xEF\xBB\xB7\"  # \xC3\xA9"), "ok.toml");
  EXPECT_EQ(c.data.path, "r\xC3\xA9sum\xC3\xA9 # \" \xEF\xBB\xB7");
  c = parse_run_config(with_path("path = '''x\n\xC3\xA9'''"), "ok.toml");
  EXPECT_EQ(c.data.path, "x\n\xC3\xA9");
  c = parse_run_config(with_path("path = '\xC3\xA9'"), "ok.toml");
  EXPECT_EQ(c.data.path, "\xC3\xA9");
}

TEST(RunConfig, OverridesApplyInOrder) {
  const RunConfig c = parse_run_config(kBase, "base.toml",
                                       {"model.n_layers=7", "optim.lr=0.002", "model.ffn=gelu", "train.out_dir=\"r 1\"",
                                        "model.qk_norm=true", "model.n_layers = 9"});
  EXPECT_EQ(c.model.n_layers, 9);
  EXPECT_DOUBLE_EQ(c.optim.lr, 0.002);
  EXPECT_EQ(c.model.ffn, nn::FfnKind::GELU);
  EXPECT_EQ(c.model.d_ff, 256);
  EXPECT_EQ(c.train.out_dir, "r 1");
  EXPECT_TRUE(c.model.qk_norm);
  EXPECT_NE(error_of([] { parse_run_config(kBase, "b", {"model.n_layers=x"}); }).find("not an integer"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_run_config(kBase, "b", {"model.bias=yes"}); }).find("true or false"),
            std::string::npos);
}

TEST(RunConfig, InvalidCombinationsAreRejectedBeforeTraining) {
  std::string e = error_of([] { parse_run_config(kBase, "b", {"model.n_kv_heads=3"}); });
  EXPECT_NE(e.find("model.n_heads (4) is not a multiple of model.n_kv_heads (3)"), std::string::npos) << e;
  e = error_of([] { parse_run_config(kBase, "b", {"train.batch_tokens=1000"}); });
  EXPECT_NE(e.find("train.batch_tokens"), std::string::npos) << e;
  e = error_of([] { parse_run_config(kBase, "b", {"train.seq_len=1024"}); });
  EXPECT_NE(e.find("exceeds model.context_length"), std::string::npos) << e;
  e = error_of([] { parse_run_config(kBase, "b", {"optim.min_lr=1"}); });
  EXPECT_NE(e.find("optim.min_lr"), std::string::npos) << e;
  e = error_of([] { parse_run_config(kBase, "b", {"train.on_nan=explode"}); });
  EXPECT_NE(e.find("train.on_nan"), std::string::npos) << e;
}

TEST(RunConfig, PrecisionResolvesAutoByDeviceAndRejectsUnknownSpellings) {
  RunConfig c = parse_run_config(kBase, "b");
  EXPECT_EQ(c.train.precision, Precision::F32);  // auto on the CPU
  EXPECT_EQ(c.compute_dtype(), DType::F32);
  EXPECT_NE(to_toml(c).find("precision = \"f32\""), std::string::npos) << to_toml(c);
  c = parse_run_config(kBase, "b", {"train.device=cuda:1"});
  EXPECT_EQ(c.train.precision, Precision::BF16);  // auto on a GPU
  EXPECT_NE(to_toml(c).find("precision = \"bf16\""), std::string::npos) << to_toml(c);
  c = parse_run_config(kBase, "b", {"train.device=cuda", "train.precision=f32"});
  EXPECT_EQ(c.compute_dtype(), DType::F32);
  c = parse_run_config(kBase, "b", {"train.precision=f16", "train.loss_scale_init=1024",
                                    "train.loss_scale_growth_interval=10"});
  EXPECT_EQ(c.compute_dtype(), DType::F16);
  EXPECT_EQ(c.train.loss_scale_init, 1024);
  EXPECT_EQ(c.train.loss_scale_growth_interval, 10);
  std::string e = error_of([] { parse_run_config(kBase, "b", {"train.precision=fp16"}); });
  EXPECT_NE(e.find("train.precision"), std::string::npos) << e;
  EXPECT_NE(e.find("auto | f32 | bf16 | f16"), std::string::npos) << e;
  e = error_of([] { parse_run_config(kBase, "b", {"train.loss_scale_init=0"}); });
  EXPECT_NE(e.find("train.loss_scale_init"), std::string::npos) << e;
  e = error_of([] { parse_run_config(kBase, "b", {"train.loss_scale_growth_interval=0"}); });
  EXPECT_NE(e.find("train.loss_scale_growth_interval"), std::string::npos) << e;
}

TEST(RunConfig, ResolvedTomlRoundTrips) {
  const RunConfig c = parse_run_config(kBase, "base.toml", {"optim.lr=0.000123456789", "model.rope_theta=500000"});
  const std::string text = to_toml(c);
  EXPECT_NE(text.find("[model]\nvocab_size = 512\n"), std::string::npos) << text;
  EXPECT_NE(text.find("rope_theta = 500000.0"), std::string::npos) << text;
  const RunConfig d = parse_run_config(text, "resolved.toml");
  EXPECT_EQ(to_toml(d), text);
  EXPECT_EQ(d.optim.lr, c.optim.lr);
}

}  // namespace
}  // namespace lmforge::train

namespace lmforge::train {
namespace {

TEST(RunConfig, PresetsLoadWithTheirSizes) {
  const std::string dir = std::string(LMFORGE_SOURCE_DIR) + "/configs/";
  const RunConfig q = load_run_config(dir + "quickstart.toml");
  EXPECT_GT(q.model.parameter_count(), 3'000'000);
  EXPECT_LT(q.model.parameter_count(), 6'000'000);
  EXPECT_TRUE(q.model.is_llama());
  const RunConfig g = load_run_config(dir + "gpt2-124m.toml");
  EXPECT_EQ(g.model.parameter_count(), 124'439'808);  // GPT-2 small as HF transformers counts it
  EXPECT_EQ(g.accumulation_steps(), 32);
  const RunConfig l = load_run_config(dir + "llama-336m.toml");
  EXPECT_NEAR(double(l.model.parameter_count()), 336e6, 1e6);
  EXPECT_TRUE(l.model.is_llama());
  EXPECT_EQ(l.model.kv_heads(), 4);
}

}  // namespace
}  // namespace lmforge::train
