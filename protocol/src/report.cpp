#include "gridnode/protocol/report.hpp"

#include <algorithm>

#include "archive.hpp"

namespace gridnode::protocol {

template <class Archive>
void serialize(Archive& ar, Event& e) {
  ar(e.kind, e.severity, e.source, e.message, e.fields);
}

namespace {

constexpr std::uint8_t kFlagKeyframe = 0x01;
constexpr std::uint8_t kFlagSameIdentity = 0x02;

std::size_t bitmap_size(std::size_t bits) { return (bits + 7) / 8; }

bool bit(std::span<const std::uint8_t> map, std::size_t i) {
  return (map[i >> 3] >> (i & 7)) & 1;
}

// Bits past the last one must be zero: one report, one encoding.
bool padding_clear(std::span<const std::uint8_t> map, std::size_t bits) {
  if (bits % 8 == 0 || map.empty()) {
    return true;
  }
  return (map.back() >> (bits % 8)) == 0;
}

platform::Result<void> validate_labels(const platform::Labels& labels, std::string_view what) {
  for (std::size_t j = 0; j < labels.size(); ++j) {
    if (!valid_label_name(labels[j].first)) {
      return platform::fail(std::errc::bad_message, std::string(what) + ": invalid label name");
    }
    if (j > 0 && !(labels[j - 1].first < labels[j].first)) {
      return platform::fail(std::errc::bad_message,
                            std::string(what) + ": labels not sorted or repeated");
    }
  }
  return {};
}

// Version byte, header and events; leaves `r` at the values block.
platform::Result<Report> decode_front(Reader& r) {
  if (auto v = expect_version(r, kReportVersion, "report"); !v) {
    return tl::unexpected(v.error());
  }
  Report rep;
  ReportHeader& h = rep.header;
  try {
    WireInputArchive ar(r);
    std::uint8_t flags = 0;
    ar(flags);
    if ((flags & ~(kFlagKeyframe | kFlagSameIdentity)) != 0) {
      ar.fail("report: unknown header flags");
    }
    h.keyframe = (flags & kFlagKeyframe) != 0;
    h.same_identity = (flags & kFlagSameIdentity) != 0;
    if (h.keyframe && h.same_identity) {
      ar.fail("report: a keyframe cannot leave out its identity");
    }
    if (!h.same_identity) {
      ar(h.node_id, h.node_labels, h.boot_id, h.catalog);
    }
    ar(h.seq, h.time_ns, h.prev);
    ar(rep.events);
  } catch (const DecodeError& e) {
    return tl::unexpected(platform::Error{e.error.code, "report: " + e.error.context});
  }
  if (!h.same_identity && !valid_node_id(h.node_id)) {
    return platform::fail(std::errc::bad_message, "report: invalid node id");
  }
  if (h.node_labels.size() > kMaxNodeLabels) {
    return platform::fail(std::errc::bad_message, "report: too many node labels");
  }
  if (auto v = validate_labels(h.node_labels, "report: node labels"); !v) {
    return tl::unexpected(v.error());
  }
  if (h.seq == 0) {
    return platform::fail(std::errc::bad_message, "report: sequence number 0");
  }
  if (rep.events.size() > kMaxEvents) {
    return platform::fail(std::errc::bad_message, "report: too many events");
  }
  for (const auto& e : rep.events) {
    if (auto v = validate_labels(e.fields, "report: event fields"); !v) {
      return tl::unexpected(v.error());
    }
  }
  return rep;
}

}  // namespace

std::string_view to_string(EventKind kind) {
  switch (kind) {
    case EventKind::agent: return "agent";
    case EventKind::driver_state: return "driver_state";
    case EventKind::policy: return "policy";
    case EventKind::gap: return "gap";
    case EventKind::device: return "device";
  }
  return "unknown";
}

bool valid_node_id(std::string_view id) {
  if (id.empty() || id.size() > 128) {
    return false;
  }
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-';
  });
}

void ReportEncoder::encode(const EncodedCatalog& catalog, ReportHeader& header,
                           std::span<const Event> events, std::span<const Slot> values,
                           Bytes& out) {
  const std::size_t n = catalog.catalog.series.size();
  if (!have_state_ || catalog.digest != catalog_) {
    // Work done once per catalog, not per report: which series predict by slope.
    counter_.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
      counter_[i] = catalog.catalog.family_of(static_cast<std::uint32_t>(i)).type ==
                    platform::MetricType::counter;
    }
    catalog_ = catalog.digest;
    have_state_ = false;
  }
  const bool keyframe = !have_state_ || since_keyframe_ >= keyframe_interval_;
  if (keyframe) {
    state_.assign(n, State{});
    since_keyframe_ = 0;
  }
  header.catalog = catalog.digest;
  header.keyframe = keyframe;
  // A delta names the same node, boot and catalog as its predecessor: say so in one bit.
  header.same_identity = !keyframe && header.node_id == last_node_ &&
                         header.node_labels == last_labels_ && header.boot_id == last_boot_;
  if (!header.same_identity) {
    last_node_ = header.node_id;
    last_labels_ = header.node_labels;
    last_boot_ = header.boot_id;
  }

  out.clear();
  Writer w(out);
  w.u8(kReportVersion);
  {
    WireOutputArchive ar(w);
    std::uint8_t flags = static_cast<std::uint8_t>((keyframe ? kFlagKeyframe : 0) |
                                                   (header.same_identity ? kFlagSameIdentity : 0));
    ar(flags);
    if (!header.same_identity) {
      ar(header.node_id, header.node_labels, header.boot_id, header.catalog);
    }
    ar(header.seq, header.time_ns, header.prev);
    w.uvarint(events.size());
    for (const auto& e : events) {
      ar(const_cast<Event&>(e));  // cereal's serialize() takes a non-const reference
    }
  }

  // Values block (docs/protocol.md, "Values").
  const std::size_t count = std::min(values.size(), n);
  std::size_t present = 0;
  for (std::size_t i = 0; i < count; ++i) {
    present += values[i].present ? 1 : 0;
  }
  w.uvarint(n);
  if (present == n) {
    w.u8(0);
  } else {
    w.u8(1);
    std::size_t at = out.size();
    out.resize(at + bitmap_size(n), 0);
    for (std::size_t i = 0; i < count; ++i) {
      if (values[i].present) {
        out[at + (i >> 3)] |= static_cast<std::uint8_t>(1u << (i & 7));
      }
    }
  }
  const std::size_t nonzero_at = out.size();
  out.resize(nonzero_at + bitmap_size(present), 0);
  unsigned_high_.clear();
  std::size_t j = 0;
  for (std::size_t i = 0; i < count; ++i) {
    if (!values[i].present) {
      continue;
    }
    const platform::Value v = values[i].value;
    State& s = state_[i];
    std::uint64_t predicted = !s.known ? 0 : counter_[i] ? s.last + s.delta : s.last;
    std::uint64_t residual = v.bits - predicted;  // mod 2^64: exact both ways
    if (residual != 0) {
      out[nonzero_at + (j >> 3)] |= static_cast<std::uint8_t>(1u << (j & 7));
      w.svarint(static_cast<std::int64_t>(residual));
    }
    s.delta = s.known ? v.bits - s.last : 0;
    s.last = v.bits;
    s.known = true;
    if ((v.bits >> 63) != 0 && !v.is_signed) {
      unsigned_high_.push_back(static_cast<std::uint32_t>(i));
    }
    ++j;
  }
  w.uvarint(unsigned_high_.size());
  std::uint64_t next = 0;
  for (std::uint32_t index : unsigned_high_) {
    w.uvarint(index - next);
    next = std::uint64_t{index} + 1;
  }
  have_state_ = true;
  ++since_keyframe_;
}

platform::Result<Report> decode_header(std::span<const std::uint8_t> message) {
  Reader r(message);
  auto rep = decode_front(r);
  if (rep) {
    rep->digest = crypto::sha256(message);
    rep->message_size = message.size();
  }
  return rep;
}

platform::Result<Report> ReportDecoder::decode(std::span<const std::uint8_t> message,
                                               const EncodedCatalog& catalog) {
  Reader r(message);
  auto front = decode_front(r);
  if (!front) {
    return front;
  }
  Report& rep = *front;
  ReportHeader& h = rep.header;
  if (h.same_identity) {
    // Node, boot and catalog are the predecessor's; only decodable right after it.
    if (!have_state_ || h.prev != last_digest_) {
      return platform::fail(std::errc::resource_unavailable_try_again,
                            "report " + std::to_string(h.seq) +
                                " is coded against a report not decoded here (it waits for the "
                                "next keyframe)");
    }
    h.node_id = last_header_.node_id;
    h.node_labels = last_header_.node_labels;
    h.boot_id = last_header_.boot_id;
    h.catalog = last_header_.catalog;
  }
  if (h.catalog != catalog.digest) {
    return platform::fail(std::errc::invalid_argument,
                          "report names catalog " + crypto::to_hex(h.catalog) +
                              ", given catalog " + crypto::to_hex(catalog.digest));
  }
  const std::size_t n = catalog.catalog.series.size();
  if (h.keyframe) {
    scratch_.assign(n, State{});
  } else {
    if (!have_state_ || catalog_ != catalog.digest || h.prev != last_digest_) {
      return platform::fail(std::errc::resource_unavailable_try_again,
                            "report " + std::to_string(h.seq) +
                                " is coded against a report not decoded here (values wait for "
                                "the next keyframe)");
    }
    scratch_ = state_;
  }

  auto count = r.uvarint();
  if (!count) {
    return tl::unexpected(count.error());
  }
  if (*count != n) {
    return r.error("values: " + std::to_string(*count) + " series, catalog has " +
                   std::to_string(n));
  }
  auto mode = r.u8();
  if (!mode) {
    return tl::unexpected(mode.error());
  }
  std::span<const std::uint8_t> presence;
  std::size_t present = n;
  if (*mode == 1) {
    auto map = r.fixed(bitmap_size(n));
    if (!map) {
      return tl::unexpected(map.error());
    }
    presence = *map;
    if (!padding_clear(presence, n)) {
      return r.error("values: presence bitmap padding not zero");
    }
    present = 0;
    for (std::size_t i = 0; i < n; ++i) {
      present += bit(presence, i) ? 1 : 0;
    }
  } else if (*mode != 0) {
    return r.error("values: unknown presence mode " + std::to_string(*mode));
  }
  auto nonzero = r.fixed(bitmap_size(present));
  if (!nonzero) {
    return tl::unexpected(nonzero.error());
  }
  if (!padding_clear(*nonzero, present)) {
    return r.error("values: change bitmap padding not zero");
  }

  rep.values.assign(n, Slot{});
  std::size_t j = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (!presence.empty() && !bit(presence, i)) {
      continue;
    }
    State& s = scratch_[i];
    const bool counter = catalog.catalog.family_of(static_cast<std::uint32_t>(i)).type ==
                         platform::MetricType::counter;
    std::uint64_t predicted = !s.known ? 0 : counter ? s.last + s.delta : s.last;
    std::uint64_t residual = 0;
    if (bit(*nonzero, j)) {
      auto v = r.svarint();
      if (!v) {
        return tl::unexpected(v.error());
      }
      if (*v == 0) {
        return r.error("values: zero residual marked as changed");
      }
      residual = static_cast<std::uint64_t>(*v);
    }
    std::uint64_t bits = predicted + residual;
    s.delta = s.known ? bits - s.last : 0;
    s.last = bits;
    s.known = true;
    // Canonical form: a value with the top bit set is negative unless listed below.
    rep.values[i] = Slot{platform::Value{bits, (bits >> 63) != 0}, true};
    ++j;
  }
  auto exceptions = r.uvarint();
  if (!exceptions) {
    return tl::unexpected(exceptions.error());
  }
  if (*exceptions > present) {
    return r.error("values: more unsigned exceptions than values");
  }
  std::uint64_t next = 0;
  for (std::uint64_t k = 0; k < *exceptions; ++k) {
    auto gap = r.uvarint();
    if (!gap) {
      return tl::unexpected(gap.error());
    }
    if (*gap >= n || next + *gap >= n) {
      return r.error("values: unsigned exception index out of range");
    }
    std::uint64_t index = next + *gap;
    Slot& slot = rep.values[index];
    if (!slot.present || (slot.value.bits >> 63) == 0) {
      return r.error("values: unsigned exception names a value below 2^63");
    }
    slot.value.is_signed = false;
    next = index + 1;
  }
  if (!r.at_end()) {
    return r.error("report: trailing bytes");
  }

  rep.digest = crypto::sha256(message);
  rep.message_size = message.size();
  state_.swap(scratch_);
  if (!h.same_identity) {
    last_header_.node_id = h.node_id;
    last_header_.node_labels = h.node_labels;
    last_header_.boot_id = h.boot_id;
    last_header_.catalog = h.catalog;
  }
  last_digest_ = rep.digest;
  catalog_ = catalog.digest;
  have_state_ = true;
  return front;
}

platform::Result<Envelope> split_envelope(std::span<const std::uint8_t> bytes) {
  if (bytes.size() <= kSignatureSize) {
    return platform::fail(std::errc::bad_message,
                          "signed report of " + std::to_string(bytes.size()) +
                              " bytes is too short for a message and its signature");
  }
  Envelope e;
  e.message = bytes.first(bytes.size() - kSignatureSize);
  auto sig = bytes.last(kSignatureSize);
  std::copy(sig.begin(), sig.end(), e.signature.begin());
  return e;
}

platform::Result<crypto::Digest> sign_envelope(Bytes& message, const crypto::PrivateKey& key,
                                               crypto::Random& random) {
  crypto::Digest digest = crypto::sha256(std::span<const std::uint8_t>(message));
  auto sig = key.sign(digest, random);
  if (!sig) {
    return tl::unexpected(sig.error());
  }
  message.insert(message.end(), sig->begin(), sig->end());
  return digest;
}

bool verify_envelope(const Envelope& envelope, const crypto::PublicKey& key) {
  return key.verify(crypto::sha256(envelope.message), envelope.signature);
}

}  // namespace gridnode::protocol
