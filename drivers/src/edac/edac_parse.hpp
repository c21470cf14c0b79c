#pragma once

#include <optional>
#include <string_view>

namespace gridnode::drivers::edac {

// The label of an edac entry called <prefix>N, as node_exporter 1.5.0 finds it: the entry
// matches filepath.Glob("<prefix>[0-9]*") (the prefix, a digit, then anything) and the label
// is what its regexp `<prefix>([0-9]*)` captures, the digits only ("mc10" -> "10",
// "csrow2x" -> "2"). nullopt for other entries ("mc", "power", "csrowx").
std::optional<std::string_view> parse_index(std::string_view entry, std::string_view prefix);

}  // namespace gridnode::drivers::edac
