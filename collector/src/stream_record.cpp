#include "gridnode/collector/stream_record.hpp"

#include <cstring>

#include "gridnode/crypto/crypto.hpp"

namespace gridnode::collector {
namespace {

constexpr std::uint8_t kKeyframe = 1;
constexpr std::uint8_t kValues = 2;
constexpr std::uint8_t kSameIdentity = 4;
constexpr std::size_t kMaxString = 64 * 1024;
constexpr std::size_t kMaxNodeId = 128;  // protocol::valid_node_id

std::span<const std::uint8_t> bytes_of(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

void put_magic(StreamKind kind, protocol::Writer& w) {
  w.fixed(bytes_of(kStreamRecordMagic));
  w.u8(kStreamRecordVersion);
  w.u8(static_cast<std::uint8_t>(kind));
}

void append(const protocol::Bytes& record, std::string& out) {
  out.append(reinterpret_cast<const char*>(record.data()), record.size());
}

std::string_view as_text(std::span<const std::uint8_t> b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

// Every read of a record goes through protocol::Reader, which checks each bound; this adds the
// record's name to its errors.
platform::Error record_error(const platform::Error& e) {
  return platform::Error{e.code, "stream record: " + e.context};
}

template <class T>
bool take(platform::Result<T>&& r, T& out, platform::Error& err) {
  if (!r) {
    err = record_error(r.error());
    return false;
  }
  out = std::move(*r);
  return true;
}

bool take_digest(protocol::Reader& r, crypto::Digest& d, platform::Error& err) {
  std::span<const std::uint8_t> s;
  if (!take(r.fixed(d.size()), s, err)) {
    return false;
  }
  std::memcpy(d.data(), s.data(), d.size());
  return true;
}

}  // namespace

namespace stream_record_detail {

platform::Error bad_values(std::string_view what, std::size_t pos) {
  return platform::Error{
      std::make_error_code(std::errc::bad_message),
      "stream record: values: " + std::string(what) + " at byte " + std::to_string(pos)};
}

platform::Result<void> check_values_header(std::span<const std::uint8_t> values, std::size_t series,
                                           std::size_t& pos) {
  protocol::Reader in(values.subspan(pos));
  auto count = in.uvarint();
  if (!count) {
    return tl::unexpected(bad_values("count truncated", pos));
  }
  pos += in.offset();
  if (*count != series) {
    return tl::unexpected(
        bad_values(std::to_string(*count) + " series, catalog has " + std::to_string(series), 0));
  }
  const std::size_t map = (series + 7) / 8;
  if (values.size() - pos < 2 * map) {
    return tl::unexpected(bad_values("bitmaps truncated", pos));
  }
  if (series % 8 != 0 && map > 0) {
    const auto pad = static_cast<std::uint8_t>(0xff << (series % 8));
    if ((values[pos + map - 1] & pad) != 0 || (values[pos + 2 * map - 1] & pad) != 0) {
      return tl::unexpected(bad_values("bits set past the last series", pos));
    }
  }
  return {};
}

}  // namespace stream_record_detail

bool is_stream_record(std::span<const std::uint8_t> message) {
  return message.size() >= kStreamRecordMagic.size() + 1 &&
         as_text(message.first(kStreamRecordMagic.size())) == kStreamRecordMagic;
}

std::string catalog_subject(const crypto::Digest& digest) {
  return std::string(kSubjectPrefix) + ".catalog." + crypto::to_hex(digest);
}

std::unique_ptr<RecordEncoder> stream_record_encoder() {
  return std::make_unique<StreamRecordWriter>();
}

void StreamRecordWriter::header(const protocol::Report& r, bool with_values,
                                std::uint64_t verified_by, protocol::Writer& w) {
  const auto& h = r.header;
  put_magic(StreamKind::report, w);
  w.u8(static_cast<std::uint8_t>((h.keyframe ? kKeyframe : 0) | (with_values ? kValues : 0) |
                                 (h.same_identity ? kSameIdentity : 0)));
  w.string(h.node_id);
  w.uvarint(h.node_labels.size());
  for (const auto& [k, v] : h.node_labels) {
    w.string(k);
    w.string(v);
  }
  w.fixed(h.boot_id);
  w.uvarint(h.seq);
  w.uvarint(h.time_ns);
  w.fixed(r.digest);
  w.fixed(h.prev);
  w.fixed(h.catalog);
  w.uvarint(verified_by);
  w.uvarint(received_ns_);
}

void StreamRecordWriter::report(const protocol::Report& r, const protocol::EncodedCatalog& catalog,
                                std::span<const std::uint8_t> envelope, std::uint64_t verified_by,
                                std::string& out) {
  record_.clear();
  protocol::Writer w(record_);
  header(r, true, verified_by, w);
  // The values block on its own first: its length goes before it.
  const std::size_t n = std::min(r.values.size(), catalog.catalog.series.size());
  values_.clear();
  protocol::Writer v(values_);
  v.uvarint(n);
  const std::size_t map = (n + 7) / 8;
  const std::size_t maps = values_.size();
  values_.resize(maps + 2 * map, 0);
  for (std::size_t i = 0; i < n; ++i) {
    const protocol::Slot& s = r.values[i];
    if (!s.present) {
      continue;
    }
    const auto bit = static_cast<std::uint8_t>(1u << (i % 8));
    values_[maps + i / 8] |= bit;
    if (s.value.is_signed) {
      values_[maps + map + i / 8] |= bit;
      v.svarint(s.value.as_int64());
    } else {
      v.uvarint(s.value.bits);
    }
  }
  w.uvarint(values_.size());
  w.fixed(values_);
  w.uvarint(envelope.size());
  w.fixed(envelope);
  append(record_, out);
}

void StreamRecordWriter::report_without_values(const protocol::Report& r,
                                               std::span<const std::uint8_t> envelope,
                                               std::uint64_t verified_by, const std::string& why,
                                               std::string& out) {
  record_.clear();
  protocol::Writer w(record_);
  header(r, false, verified_by, w);
  w.string(why);
  w.uvarint(envelope.size());
  w.fixed(envelope);
  append(record_, out);
}

void StreamRecordWriter::gap(const protocol::GapRecord& g, std::span<const std::uint8_t> envelope,
                             std::string& out) {
  record_.clear();
  protocol::Writer w(record_);
  put_magic(StreamKind::gap, w);
  w.string(g.node_id);
  w.fixed(envelope);
  append(record_, out);
}

void StreamRecordWriter::catalog(const std::string& node, const protocol::EncodedCatalog& catalog,
                                 std::string& out) {
  record_.clear();
  protocol::Writer w(record_);
  put_magic(StreamKind::catalog, w);
  w.string(node);
  w.fixed(catalog.digest);
  w.fixed(catalog.bytes);
  append(record_, out);
}

std::optional<StoredRecord> read_stream_record(std::span<const std::uint8_t> message) {
  auto rec = parse_stream_record(message);
  if (!rec) {
    return std::nullopt;
  }
  return StoredRecord{rec->kind == StreamKind::catalog  ? protocol::FrameKind::catalog
                      : rec->kind == StreamKind::report ? protocol::FrameKind::report
                                                        : protocol::FrameKind::gap,
                      std::string(rec->node),
                      std::vector<std::uint8_t>(rec->payload.begin(), rec->payload.end())};
}

platform::Result<StreamRecord> parse_stream_record(std::span<const std::uint8_t> message) {
  if (!is_stream_record(message)) {
    return platform::fail(std::errc::bad_message, "stream record: no GNR magic (" +
                                                      std::to_string(message.size()) + " bytes)");
  }
  protocol::Reader r(message.subspan(kStreamRecordMagic.size()));
  platform::Error err;
  std::uint8_t version = 0, kind = 0;
  if (!take(r.u8(), version, err)) {
    return tl::unexpected(err);
  }
  if (version != kStreamRecordVersion) {
    return platform::fail(std::errc::not_supported, "stream record: version " +
                                                        std::to_string(version) + ", this reads " +
                                                        std::to_string(kStreamRecordVersion));
  }
  if (!take(r.u8(), kind, err)) {
    return tl::unexpected(err);
  }
  StreamRecord rec;
  if (kind < 1 || kind > 3) {
    return platform::fail(std::errc::bad_message,
                          "stream record: unknown kind " + std::to_string(kind));
  }
  rec.kind = static_cast<StreamKind>(kind);
  std::uint8_t flags = 0;
  if (rec.kind == StreamKind::report && !take(r.u8(), flags, err)) {
    return tl::unexpected(err);
  }
  if (!take(r.string(kMaxNodeId), rec.node, err)) {
    return tl::unexpected(err);
  }
  if (!protocol::valid_node_id(rec.node)) {
    return platform::fail(std::errc::bad_message, "stream record: node id not valid");
  }
  const auto rest = [&r, message] {
    return message.subspan(kStreamRecordMagic.size() + r.offset());
  };
  if (rec.kind == StreamKind::gap) {
    rec.payload = rest();
    return rec;
  }
  if (rec.kind == StreamKind::catalog) {
    if (!take_digest(r, rec.digest, err)) {
      return tl::unexpected(err);
    }
    rec.payload = rest();
    return rec;
  }
  if ((flags & ~(kKeyframe | kValues | kSameIdentity)) != 0) {
    return platform::fail(std::errc::bad_message, "stream record: unknown report flags");
  }
  auto& h = rec.header;
  h.keyframe = (flags & kKeyframe) != 0;
  h.same_identity = (flags & kSameIdentity) != 0;
  rec.has_values = (flags & kValues) != 0;
  h.node_id.assign(rec.node);
  std::uint64_t labels = 0;
  if (!take(r.uvarint(), labels, err)) {
    return tl::unexpected(err);
  }
  if (labels > protocol::kMaxNodeLabels) {
    return platform::fail(std::errc::bad_message,
                          "stream record: " + std::to_string(labels) + " node labels");
  }
  h.node_labels.resize(labels);
  for (auto& [k, v] : h.node_labels) {
    std::string_view ks, vs;
    if (!take(r.string(kMaxString), ks, err) || !take(r.string(kMaxString), vs, err)) {
      return tl::unexpected(err);
    }
    k.assign(ks);
    v.assign(vs);
  }
  std::span<const std::uint8_t> boot;
  if (!take(r.fixed(h.boot_id.size()), boot, err)) {
    return tl::unexpected(err);
  }
  std::memcpy(h.boot_id.data(), boot.data(), h.boot_id.size());
  if (!take(r.uvarint(), h.seq, err) || !take(r.uvarint(), h.time_ns, err) ||
      !take_digest(r, rec.digest, err) || !take_digest(r, h.prev, err) ||
      !take_digest(r, h.catalog, err) || !take(r.uvarint(), rec.verified_by, err) ||
      !take(r.uvarint(), rec.received_ns, err)) {
    return tl::unexpected(err);
  }
  if (rec.has_values) {
    std::uint64_t n = 0;
    if (!take(r.uvarint(), n, err) || !take(r.fixed(n), rec.values, err)) {
      return tl::unexpected(err);
    }
  } else if (!take(r.string(kMaxString), rec.values_error, err)) {
    return tl::unexpected(err);
  }
  std::uint64_t n = 0;
  if (!take(r.uvarint(), n, err) || !take(r.fixed(n), rec.payload, err)) {
    return tl::unexpected(err);
  }
  if (!r.at_end()) {
    return tl::unexpected(record_error(r.error("bytes after the envelope").value()));
  }
  return rec;
}

platform::Result<void> decode_stream_values(std::span<const std::uint8_t> values,
                                            std::size_t series, std::vector<protocol::Slot>& out) {
  out.assign(series, protocol::Slot{});
  return for_each_stream_value(values, series, [&out](std::size_t i, platform::Value v) {
    out[i].value = v;
    out[i].present = true;
  });
}

platform::Result<const protocol::EncodedCatalog*> StreamRecordRenderer::add_catalog(
    std::span<const std::uint8_t> bytes) {
  const crypto::Digest digest = crypto::sha256(bytes);
  auto it = catalogs_.find(digest);
  if (it != catalogs_.end()) {
    return &it->second;
  }
  auto c = protocol::decode_catalog(bytes);
  if (!c) {
    return platform::fail(std::errc::bad_message, "stream record: catalog: " + c.error().context);
  }
  protocol::EncodedCatalog e;
  e.digest = digest;
  e.bytes.assign(bytes.begin(), bytes.end());
  e.catalog = std::move(*c);
  return &catalogs_.emplace(digest, std::move(e)).first->second;
}

const protocol::EncodedCatalog* StreamRecordRenderer::catalog(const crypto::Digest& digest) {
  auto it = catalogs_.find(digest);
  if (it != catalogs_.end()) {
    return &it->second;
  }
  if (!fetch_) {
    return nullptr;
  }
  auto bytes = fetch_(digest);
  if (!bytes) {
    return nullptr;
  }
  auto added = add_catalog(*bytes);
  return added && (*added)->digest == digest ? *added : nullptr;
}

platform::Result<void> StreamRecordRenderer::render(std::span<const std::uint8_t> message,
                                                    std::string& out) {
  if (!message.empty() && message[0] == '{') {
    // A JSON line already (written before compact records, or by another publisher).
    out += as_text(message);
    out += '\n';
    return {};
  }
  auto rec = parse_stream_record(message);
  if (!rec) {
    return tl::unexpected(rec.error());
  }
  const std::string node(rec->node);
  if (rec->kind == StreamKind::catalog) {
    auto c = add_catalog(rec->payload);
    if (!c) {
      return tl::unexpected(c.error());
    }
    if ((*c)->digest != rec->digest) {
      return platform::fail(std::errc::bad_message,
                            "stream record: catalog bytes do not match its digest");
    }
    writer_.catalog(node, **c, out);
    return {};
  }
  auto split = protocol::split_envelope(rec->payload);
  if (!split) {
    return platform::fail(std::errc::bad_message,
                          "stream record: envelope: " + split.error().context);
  }
  if (rec->kind == StreamKind::gap) {
    auto gap = protocol::decode_gap(split->message);
    if (!gap) {
      return platform::fail(std::errc::bad_message, "stream record: gap: " + gap.error().context);
    }
    writer_.gap(*gap, rec->payload, out);
    return {};
  }
  // The events are in the signed bytes; the rest of the line is the record's.
  auto front = protocol::decode_header(split->message);
  if (!front) {
    return platform::fail(std::errc::bad_message,
                          "stream record: report: " + front.error().context);
  }
  if (front->header.seq != rec->header.seq || front->digest != rec->digest) {
    return platform::fail(std::errc::bad_message, "stream record: report " +
                                                      std::to_string(rec->header.seq) +
                                                      " does not match its signed bytes");
  }
  report_.header = std::move(rec->header);
  report_.events = std::move(front->events);
  report_.digest = rec->digest;
  writer_.set_received(rec->received_ns);
  if (!rec->has_values) {
    writer_.report_without_values(report_, rec->payload, rec->verified_by,
                                  std::string(rec->values_error), out);
    return {};
  }
  const protocol::EncodedCatalog* c = catalog(report_.header.catalog);
  if (c == nullptr) {
    return platform::fail(std::errc::no_such_file_or_directory,
                          "stream record: report " + std::to_string(report_.header.seq) + " of " +
                              node + " names catalog " + crypto::to_hex(report_.header.catalog) +
                              ", not in the stream");
  }
  if (auto v = decode_stream_values(rec->values, c->catalog.series.size(), report_.values); !v) {
    return tl::unexpected(v.error());
  }
  writer_.report(report_, *c, rec->payload, rec->verified_by, out);
  return {};
}

}  // namespace gridnode::collector
