// Seeded random streams shared by the loaders (the in-memory loader and image folders): a generator
// per (seed, stream, epoch, index) and a portable uniform integer draw.
#pragma once

#include <cstdint>
#include <random>

namespace nnslim::detail {

// Distinct random streams derived from the seed; splitmix64 finalisers decorrelate nearby
// (seed, epoch, index) triples that would otherwise seed mt19937_64 almost identically.
enum class Stream : uint64_t { kOrder = 1, kAugment = 2, kImageSample = 3, kSubset = 4 };

inline uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

inline std::mt19937_64 stream_rng(uint64_t seed, Stream stream, int64_t epoch, int64_t index) {
  uint64_t x = splitmix64(seed ^ splitmix64(static_cast<uint64_t>(stream)));
  x = splitmix64(x ^ static_cast<uint64_t>(epoch));
  x = splitmix64(x ^ static_cast<uint64_t>(index));
  return std::mt19937_64(x);
}

// Uniform in [0, n) from the raw engine output, which the standard fixes (distributions are not
// portable across standard libraries, and resumed runs must match exactly).
inline uint64_t below(std::mt19937_64& rng, uint64_t n) {
  const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t x;
  do x = rng();
  while (x >= limit);
  return x % n;
}

// Uniform in [lo, hi) from 53 random bits.
inline double uniform(std::mt19937_64& rng, double lo, double hi) {
  return lo + (hi - lo) * static_cast<double>(rng() >> 11) * 0x1.0p-53;
}

}  // namespace nnslim::detail
