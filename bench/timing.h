// Timing helpers shared by the benchmarks. Alternatives are timed in interleaved rounds (each
// round calls every function once), so that a change of machine load -- other VMs, frequency,
// a neighbour's job -- hits all of them alike and their ratio stays meaningful.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <functional>
#include <limits>
#include <vector>

namespace nnslim::bench {

using Clock = std::chrono::steady_clock;

inline double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// The median (upper median for an even count); 0 for no samples.
inline double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
  return v[v.size() / 2];
}

struct Rounds {
  size_t min_rounds = 20;  // at least this many rounds
  double seconds = 0;      // and rounds until this much time has passed
  size_t max_rounds = std::numeric_limits<size_t>::max();
  bool rotate = false;  // start round i at function i (no fixed neighbour before each)
};

// Each function's milliseconds per call, one sample per round. No warm-up: call them first.
inline std::vector<std::vector<double>> interleaved_ms(const std::vector<std::function<void()>>& fs,
                                                       const Rounds& r) {
  std::vector<std::vector<double>> ms(fs.size());
  if (fs.empty()) return ms;
  const auto start = Clock::now();
  for (size_t round = 0;
       round < r.max_rounds && (round < r.min_rounds || ms_since(start) < 1e3 * r.seconds); ++round)
    for (size_t k = 0; k < fs.size(); ++k) {
      const size_t i = r.rotate ? (round + k) % fs.size() : k;
      const auto t0 = Clock::now();
      fs[i]();
      ms[i].push_back(ms_since(t0));
    }
  return ms;
}

inline std::vector<double> medians(const std::vector<std::vector<double>>& samples) {
  std::vector<double> m;
  for (const auto& v : samples) m.push_back(median(v));
  return m;
}

}  // namespace nnslim::bench
