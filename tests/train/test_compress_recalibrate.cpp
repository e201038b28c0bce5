// `compress --recalibrate-bn N`: after the surgery the pipeline re-estimates the BatchNorm
// statistics, and that step is exactly recalibrate_bn() on the surgery's output: same weights,
// new running statistics, and nothing else changes.
#include "nnslim/eval/evaluate.h"
#include "nnslim/eval/recalibrate.h"
#include "nnslim/methods/registry.h"
#include "nnslim/train/compress.h"
#include "support/fixtures.h"

#include <gtest/gtest.h>

namespace nnslim {
namespace {

CompressResult prune_half(Graph& g, const DataSplits& data, int64_t recal_batches) {
  CompressOptions o;
  o.train = testing::small_options(0);
  o.measure_latency = false;
  o.recalibrate_batches = recal_batches;
  auto m = create_method("magnitude", {{"ratio", "0.5"}});
  return compress(g, m, data.train, data.test, o);
}

TEST(CompressRecalibrate, EqualsRecalibratingTheSurgeryOutput) {
  auto data = testing::tiny_data();
  Graph trained = testing::tiny_convnet(1);
  Trainer(trained, testing::small_options(2), {}).fit(data.train, nullptr);

  Graph plain = trained.clone(), recal = trained.clone();
  CompressResult rp = prune_half(plain, data, 0);
  CompressResult rr = prune_half(recal, data, 3);
  EXPECT_FALSE(rp.after_recalibration.has_value());
  ASSERT_TRUE(rr.after_recalibration.has_value());
  EXPECT_EQ(rr.after_recalibration->params, rr.after_surgery.params);
  EXPECT_LT(rr.after_surgery.params, rr.before.params);  // the surgery did remove channels

  // Same weights, different statistics...
  bool stats_differ = false;
  for (size_t i = 0; i < plain.nodes.size(); ++i) {
    for (const auto& [k, t] : plain.nodes[i].params)
      EXPECT_TRUE(t.equal(recal.nodes[i].params.at(k))) << k;
    for (const auto& [k, t] : plain.nodes[i].buffers)
      if (!t.equal(recal.nodes[i].buffers.at(k))) stats_differ = true;
  }
  EXPECT_TRUE(stats_differ);
  // ...and exactly those recalibrate_bn computes on the surgery's output.
  recalibrate_bn(plain, with_graph_normalisation(plain, data.train), 3,
                 testing::small_options(0).batch_size, testing::small_options(0).seed);
  EXPECT_TRUE(testing::same_weights(plain, recal));
}

TEST(CompressRecalibrate, CliRejectsNegativeBatchesAndReportsTheStep) {
  std::string out;
  EXPECT_NE(testing::run_cli(
                "compress --method magnitude --model x.nnslim --recalibrate-bn -1 --out o", &out),
            0);
  EXPECT_NE(out.find("--recalibrate-bn must be >= 0"), std::string::npos) << out;
  EXPECT_EQ(testing::run_cli("compress --help", &out), 0);
  EXPECT_NE(out.find("--recalibrate-bn"), std::string::npos) << out;
}

}  // namespace
}  // namespace nnslim
