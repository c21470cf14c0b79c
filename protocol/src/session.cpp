#include "gridnode/protocol/session.hpp"

#include "archive.hpp"
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
    return tl::unexpected(platform::Error{e.error.code, std::string(what) + ": " + e.error.context});
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

}  // namespace gridnode::protocol
