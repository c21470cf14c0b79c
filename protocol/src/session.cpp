#include "gridnode/protocol/session.hpp"

#include "archive.hpp"
#include "gridnode/protocol/policy_bundle.hpp"
#include "gridnode/protocol/report.hpp"

namespace gridnode::protocol {
namespace {

template <class... Fields>
void write(Bytes& out, const Fields&... fields) {
  out.clear();
  Writer w(out);
  w.u8(kSessionVersion);
  WireOutputArchive ar(w);
  ar(fields...);
}

template <class... Fields>
platform::Result<void> read(std::span<const std::uint8_t> payload, const char* what,
                            Fields&... fields) {
  Reader r(payload);
  if (auto v = expect_version(r, kSessionVersion, what); !v) {
    return tl::unexpected(v.error());
  }
  try {
    WireInputArchive ar(r);
    ar(fields...);
  } catch (const DecodeError& e) {
    return tl::unexpected(
        platform::Error{e.error.code, std::string(what) + ": " + e.error.context});
  }
  if (!r.at_end()) {
    return r.error(std::string(what) + ": trailing bytes");
  }
  return {};
}

}  // namespace

void encode(const Hello& m, Bytes& out) { write(out, m.node_id, m.first_unacked, m.newest); }
void encode(const Welcome& m, Bytes& out) { write(out, m.have_seq, m.have_digest, m.window); }
void encode(const Ack& m, Bytes& out) { write(out, m.seq); }
void encode(const Reject& m, Bytes& out) { write(out, m.seq, m.reason); }

// The bundle is longer than the string limit (65,535): its own length prefix, checked against
// kMaxBundleBytes and against what is there.
void encode(const PolicyPush& m, Bytes& out) {
  out.clear();
  Writer w(out);
  w.u8(kSessionVersion);
  w.string(m.bundle);
}
void encode(const PolicyStatus& m, Bytes& out) {
  write(out, static_cast<std::uint8_t>(m.result), m.offered, m.version, m.digest, m.reason);
}

std::string_view to_string(PolicyStatus::Result r) {
  switch (r) {
    case PolicyStatus::Result::in_force:
      return "in_force";
    case PolicyStatus::Result::applied:
      return "applied";
    case PolicyStatus::Result::refused:
      return "refused";
  }
  return "unknown";
}

platform::Result<Hello> decode_hello(std::span<const std::uint8_t> payload) {
  Hello m;
  if (auto r = read(payload, "hello", m.node_id, m.first_unacked, m.newest); !r) {
    return tl::unexpected(r.error());
  }
  if (!valid_node_id(m.node_id)) {
    return platform::fail(std::errc::bad_message, "hello: invalid node id");
  }
  return m;
}

platform::Result<Welcome> decode_welcome(std::span<const std::uint8_t> payload) {
  Welcome m;
  if (auto r = read(payload, "welcome", m.have_seq, m.have_digest, m.window); !r) {
    return tl::unexpected(r.error());
  }
  if (m.window == 0) {
    return platform::fail(std::errc::bad_message, "welcome: window 0");
  }
  return m;
}

platform::Result<Ack> decode_ack(std::span<const std::uint8_t> payload) {
  Ack m;
  if (auto r = read(payload, "ack", m.seq); !r) {
    return tl::unexpected(r.error());
  }
  return m;
}

platform::Result<Reject> decode_reject(std::span<const std::uint8_t> payload) {
  Reject m;
  if (auto r = read(payload, "reject", m.seq, m.reason); !r) {
    return tl::unexpected(r.error());
  }
  return m;
}

platform::Result<PolicyPush> decode_policy_push(std::span<const std::uint8_t> payload) {
  Reader r(payload);
  if (auto v = expect_version(r, kSessionVersion, "policy bundle frame"); !v) {
    return tl::unexpected(v.error());
  }
  auto size = r.uvarint();
  if (!size) {
    return tl::unexpected(size.error());
  }
  if (*size > kMaxBundleBytes) {
    return platform::fail(std::errc::file_too_large,
                          "policy bundle frame: a bundle of " + std::to_string(*size) +
                              " bytes exceeds the limit of " + std::to_string(kMaxBundleBytes));
  }
  auto bytes = r.fixed(static_cast<std::size_t>(*size));
  if (!bytes) {
    return tl::unexpected(bytes.error());
  }
  if (!r.at_end()) {
    return r.error("policy bundle frame: trailing bytes");
  }
  return PolicyPush{std::string(bytes->begin(), bytes->end())};
}

platform::Result<PolicyStatus> decode_policy_status(std::span<const std::uint8_t> payload) {
  PolicyStatus m;
  std::uint8_t result = 0;
  if (auto r = read(payload, "policy status", result, m.offered, m.version, m.digest, m.reason);
      !r) {
    return tl::unexpected(r.error());
  }
  if (result > static_cast<std::uint8_t>(PolicyStatus::Result::refused)) {
    return platform::fail(std::errc::bad_message,
                          "policy status: unknown result " + std::to_string(result));
  }
  m.result = static_cast<PolicyStatus::Result>(result);
  return m;
}

}  // namespace gridnode::protocol
