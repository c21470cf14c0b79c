#include "gridnode/platform/roots.hpp"

namespace gridnode::platform {

std::string Roots::join(std::string_view base, std::string_view rel) {
  std::string out(base);
  while (!rel.empty() && rel.front() == '/') {
    rel.remove_prefix(1);
  }
  if (rel.empty()) {
    return out;
  }
  if (out.empty() || out.back() != '/') {
    out.push_back('/');
  }
  out.append(rel);
  return out;
}

}  // namespace gridnode::platform
