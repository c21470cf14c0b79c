#pragma once

#include <cstdint>
#include <string_view>

#include "gridnode/platform/result.hpp"

namespace gridnode::drivers::netclass {

// An integer as Go's strconv.ParseInt(s, 0, 64) reads one after procfs's SysReadFile trimmed
// it: an optional sign, then "0x"/"0X" hex, "0b"/"0B" binary, "0o"/"0O" or a leading "0"
// octal, else decimal; "_" between digits after a base prefix, as Go allows. Anything else,
// and a value outside int64, is an error.
platform::Result<std::int64_t> parse_go_int(std::string_view text);

}  // namespace gridnode::drivers::netclass
