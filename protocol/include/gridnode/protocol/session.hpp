#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "gridnode/crypto/crypto.hpp"
#include "gridnode/platform/result.hpp"
#include "gridnode/protocol/wire.hpp"

// The uplink session's own messages (docs/protocol.md §6a), each the payload of a frame of its
// kind. Everything else on the session is catalog, report and gap frames.
namespace gridnode::protocol {

inline constexpr std::uint8_t kSessionVersion = 1;

// The TLS ALPN protocol name by which an agent offers, and a collector accepts, the session's
// policy frames (§6b): policy_bundle and policy_status. A peer sends them only when the
// handshake negotiated this name; without ALPN (an agent or collector from before them) the
// session is §6a's alone, because an unknown frame kind ends a session.
inline constexpr std::string_view kSessionAlpnPolicy = "gridnode/2";

struct Hello {  // agent → collector, first
  std::string node_id;
  std::uint64_t first_unacked = 0;  // oldest report in the agent's spool not acknowledged
  std::uint64_t newest = 0;         // newest report in the spool
  friend bool operator==(const Hello&, const Hello&) = default;
};
struct Welcome {               // collector → agent, the answer
  std::uint64_t have_seq = 0;  // the last report of this node the collector holds durably
  crypto::Digest have_digest{};
  std::uint32_t window = 64;  // reports the agent may have in flight beyond the last ack
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

// collector → agent: a signed policy bundle, the bytes of the file exactly (policy_bundle.hpp),
// at most kMaxBundleBytes. The agent verifies and applies it as it would one from its
// bundle_dir and answers with a PolicyStatus.
struct PolicyPush {
  std::string bundle;
  friend bool operator==(const PolicyPush&, const PolicyPush&) = default;
};
// agent → collector: the policy in force. Sent once after welcome (result in_force) and after
// every PolicyPush (applied, or refused with the reason; the previous policy stays in force).
struct PolicyStatus {
  enum class Result : std::uint8_t { in_force = 0, applied = 1, refused = 2 };
  Result result = Result::in_force;
  crypto::Digest offered{};   // SHA-256 of the pushed bundle's bytes answered; zero for in_force
  std::uint64_t version = 0;  // the policy in force now: its [policy] version (0: unversioned)
  crypto::Digest digest{};    // and the SHA-256 of its text (a bundle's: of the signed policy)
  std::string reason;         // refused: why; applied: "" or "already in force"
  friend bool operator==(const PolicyStatus&, const PolicyStatus&) = default;
};
std::string_view to_string(PolicyStatus::Result r);

void encode(const Hello& m, Bytes& out);
void encode(const Welcome& m, Bytes& out);
void encode(const Ack& m, Bytes& out);
void encode(const Reject& m, Bytes& out);
void encode(const PolicyPush& m, Bytes& out);
void encode(const PolicyStatus& m, Bytes& out);
[[nodiscard]] platform::Result<Hello> decode_hello(std::span<const std::uint8_t> payload);
[[nodiscard]] platform::Result<Welcome> decode_welcome(std::span<const std::uint8_t> payload);
[[nodiscard]] platform::Result<Ack> decode_ack(std::span<const std::uint8_t> payload);
[[nodiscard]] platform::Result<Reject> decode_reject(std::span<const std::uint8_t> payload);
// file_too_large above kMaxBundleBytes; the bundle's own format is not checked here.
[[nodiscard]] platform::Result<PolicyPush> decode_policy_push(
    std::span<const std::uint8_t> payload);
[[nodiscard]] platform::Result<PolicyStatus> decode_policy_status(
    std::span<const std::uint8_t> payload);

}  // namespace gridnode::protocol
