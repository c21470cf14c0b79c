#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "gridnode/crypto/crypto.hpp"
#include "gridnode/platform/result.hpp"
#include "gridnode/protocol/wire.hpp"

// The uplink session's own messages (docs/protocol.md §6a), each the payload of a frame of its
// kind. Everything else on the session is catalog, report and gap frames.
namespace gridnode::protocol {

inline constexpr std::uint8_t kSessionVersion = 1;

struct Hello {  // agent → collector, first
  std::string node_id;
  std::uint64_t first_unacked = 0;  // oldest report in the agent's spool not acknowledged
  std::uint64_t newest = 0;         // newest report in the spool
  friend bool operator==(const Hello&, const Hello&) = default;
};
struct Welcome {  // collector → agent, the answer
  std::uint64_t have_seq = 0;  // the last report of this node the collector holds durably
  crypto::Digest have_digest{};
  std::uint32_t window = 64;   // reports the agent may have in flight beyond the last ack
  friend bool operator==(const Welcome&, const Welcome&) = default;
};
struct Ack {  // every report and gap record up to seq is durable at the collector
  std::uint64_t seq = 0;
  friend bool operator==(const Ack&, const Ack&) = default;
};
struct Reject {  // the batch was refused after seq (the last good report); the session ends
  std::uint64_t seq = 0;
  std::string reason;
  friend bool operator==(const Reject&, const Reject&) = default;
};

void encode(const Hello& m, Bytes& out);
void encode(const Welcome& m, Bytes& out);
void encode(const Ack& m, Bytes& out);
void encode(const Reject& m, Bytes& out);
[[nodiscard]] platform::Result<Hello> decode_hello(std::span<const std::uint8_t> payload);
[[nodiscard]] platform::Result<Welcome> decode_welcome(std::span<const std::uint8_t> payload);
[[nodiscard]] platform::Result<Ack> decode_ack(std::span<const std::uint8_t> payload);
[[nodiscard]] platform::Result<Reject> decode_reject(std::span<const std::uint8_t> payload);

}  // namespace gridnode::protocol
