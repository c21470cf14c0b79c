#include "records.hpp"

#include <array>

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
