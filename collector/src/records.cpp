#include "gridnode/collector/records.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>

#include <nlohmann/json.hpp>

#include "gridnode/crypto/base64.hpp"
#include "text.hpp"

namespace gridnode::collector {
namespace {

void append_labels(const platform::Labels& labels, std::string& out) {
  out += '{';
  for (std::size_t i = 0; i < labels.size(); ++i) {
    if (i > 0) {
      out += ',';
    }
    append_json_string(labels[i].first, out);
    out += ':';
    append_json_string(labels[i].second, out);
  }
  out += '}';
}

// nlohmann's SAX interface: keeps the three top-level strings read_record_keys wants and builds
// nothing else.
class KeysReader final : public nlohmann::json_sax<nlohmann::json> {
 public:
  explicit KeysReader(RecordKeys& out) : out_(out) {}
  bool found() const { return seen_ == 0b111 && top_is_object_; }

  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t val) override {
    if (depth_ == 1 && want_seq_) {
      out_.seq = val;
    }
    want_seq_ = false;
    return true;
  }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool string(string_t& val) override {
    if (depth_ == 1 && want_ != nullptr) {
      want_->swap(val);
      seen_ |= bit_;
    }
    want_ = nullptr;
    return true;
  }
  bool start_object(std::size_t) override {
    if (depth_ == 0) {
      top_is_object_ = true;
    }
    ++depth_;
    want_ = nullptr;
    return true;
  }
  bool end_object() override {
    --depth_;
    return true;
  }
  bool start_array(std::size_t) override {
    ++depth_;
    want_ = nullptr;
    return true;
  }
  bool end_array() override {
    --depth_;
    return true;
  }
  bool key(string_t& val) override {
    want_ = nullptr;
    want_seq_ = false;
    if (depth_ == 1) {
      if (val == "seq") {
        want_seq_ = true;
      } else if (val == "type") {
        want_ = &out_.type, bit_ = 0b001;
      } else if (val == "node") {
        want_ = &out_.node, bit_ = 0b010;
      } else if (val == "raw") {
        want_ = &out_.raw, bit_ = 0b100;
      }
    }
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override {
    return false;
  }

 private:
  RecordKeys& out_;
  std::string* want_ = nullptr;  // where the next top-level string value goes
  bool want_seq_ = false;        // the next top-level value is "seq"
  unsigned bit_ = 0;
  unsigned seen_ = 0;
  int depth_ = 0;
  bool top_is_object_ = false;
};

// A string RecordWriter wrote verbatim: no quote, backslash or control character to unescape.
bool is_plain(std::string_view s) {
  return std::none_of(s.begin(), s.end(), [](char c) {
    return c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20;
  });
}

bool is_base64(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/' || c == '=';
  });
}

// The layout RecordWriter writes, {"type":"…","node":"…",…,"raw":"…"}, read without lexing what
// lies between (the decoded metrics: nearly all of a report line). A line whose type or node
// needed escaping, or that another program wrote, goes through the SAX reader instead.
bool read_written_layout(std::string_view line, RecordKeys& out) {
  constexpr std::string_view kType = "{\"type\":\"";
  constexpr std::string_view kNode = "\",\"node\":\"";
  constexpr std::string_view kRaw = ",\"raw\":\"";
  constexpr std::string_view kEnd = "\"}";
  if (!line.starts_with(kType) || !line.ends_with(kEnd)) {
    return false;
  }
  const std::size_t type_end = line.find('"', kType.size());
  if (type_end == std::string_view::npos || !line.substr(type_end).starts_with(kNode)) {
    return false;
  }
  const std::size_t node_begin = type_end + kNode.size();
  const std::size_t node_end = line.find('"', node_begin);
  const std::size_t raw_at = line.rfind(kRaw);
  if (node_end == std::string_view::npos || raw_at == std::string_view::npos || raw_at < node_end) {
    return false;
  }
  const std::string_view type = line.substr(kType.size(), type_end - kType.size());
  const std::string_view node = line.substr(node_begin, node_end - node_begin);
  const std::size_t raw_begin = raw_at + kRaw.size();
  const std::string_view raw = line.substr(raw_begin, line.size() - kEnd.size() - raw_begin);
  if (!is_plain(type) || !is_plain(node) || !is_base64(raw)) {
    return false;
  }
  // RecordWriter puts a report's sequence number right after the node.
  constexpr std::string_view kSeq = "\",\"seq\":";
  std::uint64_t seq = 0;
  if (line.substr(node_end).starts_with(kSeq)) {
    const char* first = line.data() + node_end + kSeq.size();
    const auto [end, ec] = std::from_chars(first, line.data() + line.size(), seq);
    if (ec != std::errc{} || end == first || (*end != ',' && *end != '}')) {
      return false;
    }
  }
  out.type.assign(type);
  out.node.assign(node);
  out.raw.assign(raw);
  out.seq = seq;
  return true;
}

void append_uint(std::uint64_t v, std::string& out) {
  std::array<char, 24> buf{};
  int n = std::snprintf(buf.data(), buf.size(), "%llu", static_cast<unsigned long long>(v));
  out.append(buf.data(), static_cast<std::size_t>(n));
}

void append_events(const std::vector<protocol::Event>& events, std::string& out) {
  out += "\"events\":[";
  for (std::size_t i = 0; i < events.size(); ++i) {
    const auto& e = events[i];
    if (i > 0) {
      out += ',';
    }
    out += "{\"kind\":";
    append_json_string(protocol::to_string(e.kind), out);
    out += ",\"severity\":";
    append_uint(e.severity, out);
    out += ",\"source\":";
    append_json_string(e.source, out);
    out += ",\"message\":";
    append_json_string(e.message, out);
    out += ",\"fields\":";
    append_labels(e.fields, out);
    out += '}';
  }
  out += ']';
}

void append_raw(std::span<const std::uint8_t> bytes, std::string& out) {
  out += ",\"raw\":\"";
  crypto::append_base64(bytes, out);
  out += "\"}\n";
}

}  // namespace

bool read_record_keys(std::string_view line, RecordKeys& out) {
  if (read_written_layout(line, out)) {
    return true;
  }
  out.seq = 0;
  KeysReader reader(out);
  const bool ok = nlohmann::json::sax_parse(line.begin(), line.end(), &reader,
                                            nlohmann::json::input_format_t::json,
                                            /*strict=*/true, /*ignore_comments=*/false);
  return ok && reader.found();
}

std::unique_ptr<RecordEncoder> json_lines_encoder() { return std::make_unique<RecordWriter>(); }

std::optional<StoredRecord> read_json_record(std::string_view line, RecordKeys& keys) {
  if (!read_record_keys(line, keys)) {
    return std::nullopt;
  }
  auto raw = crypto::from_base64(keys.raw);
  if (!raw) {
    return std::nullopt;
  }
  return StoredRecord{keys.type == "catalog"  ? protocol::FrameKind::catalog
                      : keys.type == "report" ? protocol::FrameKind::report
                                              : protocol::FrameKind::gap,
                      keys.node, std::move(*raw)};
}

void append_json_string(std::string_view s, std::string& out) {
  out += nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

const RecordWriter::Cache& RecordWriter::cache_for(const protocol::EncodedCatalog& catalog) {
  auto it = caches_.find(catalog.digest);
  if (it != caches_.end()) {
    return it->second;
  }
  if (caches_.size() >= 256) {
    caches_.clear();  // many catalogs over time: rebuild what is still used
  }
  Cache c;
  const auto& cat = catalog.catalog;
  c.prefixes.reserve(cat.series.size());
  for (const auto& s : cat.series) {
    std::string p = "{\"name\":";
    append_json_string(cat.families[s.family].name, p);
    p += ",\"labels\":";
    append_labels(s.labels, p);
    p += ",\"value\":";
    c.prefixes.push_back(std::move(p));
  }
  return caches_.emplace(catalog.digest, std::move(c)).first->second;
}

void RecordWriter::header(const protocol::Report& r, std::uint64_t verified_by, std::string& out) {
  const auto& h = r.header;
  out += "{\"type\":\"report\",\"node\":";
  append_json_string(h.node_id, out);
  out += ",\"seq\":";
  append_uint(h.seq, out);
  out += ",\"boot_id\":\"" + uuid_text(h.boot_id) + "\",\"time\":\"" + rfc3339_ns(h.time_ns) +
         "\",\"time_ns\":";
  append_uint(h.time_ns, out);
  out += ",\"labels\":";
  append_labels(h.node_labels, out);
  out += h.keyframe ? ",\"keyframe\":true" : ",\"keyframe\":false";
  out += ",\"digest\":\"" + crypto::to_hex(r.digest) + "\",\"prev\":\"" + crypto::to_hex(h.prev) +
         "\",\"catalog\":\"" + crypto::to_hex(h.catalog) + "\",\"verified_by\":";
  append_uint(verified_by, out);
  out += ",\"received_ns\":";
  append_uint(received_ns_, out);
  out += ',';
  append_events(r.events, out);
}

void RecordWriter::report(const protocol::Report& r, const protocol::EncodedCatalog& catalog,
                          std::span<const std::uint8_t> envelope, std::uint64_t verified_by,
                          std::string& out) {
  const Cache& c = cache_for(catalog);
  header(r, verified_by, out);
  out += ",\"metrics\":[";
  bool first = true;
  std::array<char, 64> buf{};
  const auto& cat = catalog.catalog;
  for (std::size_t i = 0; i < r.values.size() && i < c.prefixes.size(); ++i) {
    if (!r.values[i].present) {
      continue;
    }
    if (!first) {
      out += ',';
    }
    first = false;
    out += c.prefixes[i];
    std::size_t n = platform::format_value(r.values[i].value,
                                           cat.families[cat.series[i].family].scale,
                                           std::span<char, 64>(buf));
    out.append(buf.data(), n);
    out += '}';
  }
  out += ']';
  append_raw(envelope, out);
}

void RecordWriter::report_without_values(const protocol::Report& r,
                                         std::span<const std::uint8_t> envelope,
                                         std::uint64_t verified_by, const std::string& why,
                                         std::string& out) {
  header(r, verified_by, out);
  out += ",\"metrics\":[],\"values_error\":";
  append_json_string(why, out);
  append_raw(envelope, out);
}

void RecordWriter::gap(const protocol::GapRecord& g, std::span<const std::uint8_t> envelope,
                       std::string& out) {
  out += "{\"type\":\"gap\",\"node\":";
  append_json_string(g.node_id, out);
  out += ",\"from_seq\":";
  append_uint(g.from_seq, out);
  out += ",\"to_seq\":";
  append_uint(g.to_seq, out);
  out += ",\"time\":\"" + rfc3339_ns(g.time_ns) + "\",\"reason\":";
  append_json_string(g.reason, out);
  append_raw(envelope, out);
}

void RecordWriter::catalog(const std::string& node, const protocol::EncodedCatalog& catalog,
                           std::string& out) {
  out += "{\"type\":\"catalog\",\"node\":";
  append_json_string(node, out);
  out += ",\"digest\":\"" + crypto::to_hex(catalog.digest) + "\"";
  append_raw(catalog.bytes, out);
}

}  // namespace gridnode::collector
