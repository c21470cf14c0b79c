#include <string>
#include <string_view>

#include "gridnode/http/server.hpp"
#include "text.hpp"

namespace gridnode::http {

std::string_view Request::header(std::string_view name) const {
  for (const Header& h : headers) {
    if (text::iequal(h.name, name)) {
      return h.value;
    }
  }
  return {};
}

std::vector<std::pair<std::string, std::string>> Request::params() const {
  std::vector<std::pair<std::string, std::string>> out;
  std::string_view rest = query;
  while (!rest.empty()) {
    const auto amp = rest.find('&');
    const std::string_view kv = rest.substr(0, amp);
    if (!kv.empty()) {
      const auto eq = kv.find('=');
      out.emplace_back(text::percent_decode(kv.substr(0, eq), true),
                       eq == std::string_view::npos ? std::string{}
                                                    : text::percent_decode(kv.substr(eq + 1), true));
    }
    rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
  }
  return out;
}

}  // namespace gridnode::http
