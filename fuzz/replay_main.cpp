// Runs a fuzz target without libFuzzer (the g++ builds, where ctest runs it on every change):
// every seed, then a bounded number of deterministic mutations of each (bit flips, truncations,
// inserted and repeated bytes, splices with other seeds). The clang `fuzz` preset runs the same
// targets under libFuzzer for real.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {

using Input = std::vector<std::uint8_t>;

Input mutate(const Input& seed, const std::vector<Input>& all, std::mt19937_64& rng) {
  Input m = seed;
  int edits = 1 + static_cast<int>(rng() % 4);
  for (int e = 0; e < edits; ++e) {
    std::size_t at = m.empty() ? 0 : rng() % m.size();
    switch (rng() % 6) {
      case 0:
        if (!m.empty()) m[at] ^= static_cast<std::uint8_t>(1u << (rng() % 8));
        break;
      case 1:
        m.resize(at);
        break;
      case 2:
        m.insert(m.begin() + static_cast<std::ptrdiff_t>(at), static_cast<std::uint8_t>(rng()));
        break;
      case 3:
        if (!m.empty()) m[at] = static_cast<std::uint8_t>(rng() % 2 ? 0xff : 0x80);
        break;
      case 4: {
        const Input& other = all[rng() % all.size()];
        if (!other.empty()) {
          std::size_t from = rng() % other.size();
          m.resize(at);
          m.insert(m.end(), other.begin() + static_cast<std::ptrdiff_t>(from), other.end());
        }
        break;
      }
      default:
        if (!m.empty()) {
          std::size_t len = 1 + rng() % 16;
          Input chunk(m.begin() + static_cast<std::ptrdiff_t>(at),
                      m.begin() + static_cast<std::ptrdiff_t>(std::min(m.size(), at + len)));
          m.insert(m.begin() + static_cast<std::ptrdiff_t>(at), chunk.begin(), chunk.end());
        }
    }
  }
  return m;
}

}  // namespace

int main(int argc, char** argv) {
  long mutations = 100;
  std::vector<Input> seeds;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--mutations" && i + 1 < argc) {
      mutations = std::strtol(argv[++i], nullptr, 10);
      continue;
    }
    std::vector<std::filesystem::path> files;
    if (std::filesystem::is_directory(arg)) {
      for (const auto& e : std::filesystem::directory_iterator(arg)) {
        files.push_back(e.path());
      }
    } else {
      files.emplace_back(arg);
    }
    for (const auto& f : files) {
      std::ifstream in(f, std::ios::binary);
      seeds.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
  }
  if (seeds.empty()) {
    std::fprintf(stderr, "no seeds given\n");
    return 2;
  }
  std::mt19937_64 rng(42);
  std::size_t runs = 0;
  for (const auto& s : seeds) {
    LLVMFuzzerTestOneInput(s.data(), s.size());
    ++runs;
    for (long m = 0; m < mutations; ++m) {
      Input in = mutate(s, seeds, rng);
      LLVMFuzzerTestOneInput(in.data(), in.size());
      ++runs;
    }
  }
  std::printf("%zu seeds, %zu inputs run\n", seeds.size(), runs);
  return 0;
}
