#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "gridnode/crypto/crypto.hpp"
#include "gridnode/platform/metrics.hpp"
#include "gridnode/platform/result.hpp"
#include "gridnode/protocol/catalog.hpp"
#include "gridnode/protocol/wire.hpp"

// The signed report (docs/protocol.md, "Report"): a header, events, and one value per catalog
// series, coded against the previous report of the same node so that a value that did not
// change costs one bit.
namespace gridnode::protocol {

inline constexpr std::uint8_t kReportVersion = 1;
inline constexpr std::size_t kMaxEvents = 4096;
inline constexpr std::size_t kMaxNodeLabels = 16;

using BootId = std::array<std::uint8_t, 16>;

enum class EventKind : std::uint8_t {
  agent = 0,         // the agent itself (started, configuration reloaded)
  driver_state = 1,  // a driver went up, down, absent or stalled: source = driver
  policy = 2,        // a policy rule fired: source = rule
  gap = 3,           // reports were dropped before leaving the node (spool full)
  device = 4,        // a device said something: an XID error, a GPU lost: source = driver
};
std::string_view to_string(EventKind kind);

struct Event {
  EventKind kind = EventKind::agent;
  std::uint8_t severity = 6;  // syslog's: 0 emerg … 3 err, 4 warning, 5 notice, 6 info, 7 debug
  std::string source;
  std::string message;
  platform::Labels fields;  // sorted by key, e.g. {"state", "down"}
  friend bool operator==(const Event&, const Event&) = default;
};

struct ReportHeader {
  std::string node_id;
  platform::Labels node_labels;  // region, site, rack… from the config, sorted by key
  BootId boot_id{};
  std::uint64_t seq = 0;      // 1, 2, 3… across restarts of the agent
  std::uint64_t time_ns = 0;  // when the values were sampled, Unix time in nanoseconds
  crypto::Digest prev{};      // digest of the previous report; all zero before the first
  crypto::Digest catalog{};   // digest of the catalog the values follow
  bool keyframe = false;      // values are absolute: decodable without the previous report
  // Node id, labels, boot id and catalog are the previous report's and were left out of the
  // bytes (a delta's usual case); decode_header leaves them empty, ReportDecoder fills them in.
  bool same_identity = false;
  friend bool operator==(const ReportHeader&, const ReportHeader&) = default;
};

// One slot per catalog series, in catalog order. Absent: the driver did not read it this time.
struct Slot {
  platform::Value value;
  bool present = false;
};

// [A-Za-z0-9._-]{1,128}: node ids end up in file names, subjects and certificate names.
bool valid_node_id(std::string_view id);

// Encodes report messages (everything the signature covers). Stateful: each report's values are
// coded against the previous one's; the first report, every `keyframe_interval`-th one, and the
// first after a catalog change or force_keyframe() are keyframes. Steady state allocates
// nothing: `out` and the per-series state keep their capacity.
class ReportEncoder {
 public:
  explicit ReportEncoder(std::uint32_t keyframe_interval = 60)
      : keyframe_interval_(keyframe_interval == 0 ? 1 : keyframe_interval) {}

  // Sets header.catalog and header.keyframe, then writes the message into `out` (cleared).
  // `values` must have one slot per series of `catalog`.
  void encode(const EncodedCatalog& catalog, ReportHeader& header, std::span<const Event> events,
              std::span<const Slot> values, Bytes& out);
  // The next report is a keyframe (after the receiver may have lost its predecessor).
  void force_keyframe() {
    have_state_ = false;
    last_node_.clear();
  }

 private:
  struct State {
    std::uint64_t last = 0;
    std::uint64_t delta = 0;
    bool known = false;
  };
  std::uint32_t keyframe_interval_;
  std::uint32_t since_keyframe_ = 0;
  bool have_state_ = false;
  crypto::Digest catalog_{};
  std::vector<State> state_;
  std::vector<std::uint8_t> counter_;  // per series: 1 when its family is a counter
  std::vector<std::uint32_t> unsigned_high_;
  std::string last_node_;
  platform::Labels last_labels_;
  BootId last_boot_{};
};

// A decoded report.
struct Report {
  ReportHeader header;
  std::vector<Event> events;
  std::vector<Slot> values;  // one per catalog series; present ones hold canonical Values
  crypto::Digest digest{};   // SHA-256 of the message: what the next report's `prev` must be
  std::size_t message_size = 0;
};

// Reads the header and events of a message without its values: enough to learn which node,
// which sequence number and which catalog.
[[nodiscard]] platform::Result<Report> decode_header(std::span<const std::uint8_t> message);

// Decodes messages of one node in order. A delta report decodes only right after the report it
// was coded against (its `prev`) with the same catalog; a keyframe decodes anywhere.
class ReportDecoder {
 public:
  // `catalog` must be the catalog whose digest the header names (decode_header tells which).
  // On error the decoder's state is unchanged.
  [[nodiscard]] platform::Result<Report> decode(std::span<const std::uint8_t> message,
                                                const EncodedCatalog& catalog);
  void reset() { have_state_ = false; }
  // The catalog the next delta report follows (a report that leaves out its identity names
  // no catalog of its own); zero before the first decode.
  const crypto::Digest& current_catalog() const { return last_header_.catalog; }

 private:
  struct State {
    std::uint64_t last = 0;
    std::uint64_t delta = 0;
    bool known = false;
  };
  bool have_state_ = false;
  crypto::Digest last_digest_{};
  ReportHeader last_header_;  // identity of the last report that carried one
  crypto::Digest catalog_{};
  std::vector<State> state_;
  std::vector<State> scratch_;
};

// The signed envelope: message bytes followed by the 64-byte ECDSA P-256 signature (r || s) of
// SHA-256(message).
inline constexpr std::size_t kSignatureSize = 64;

struct Envelope {
  std::span<const std::uint8_t> message;
  crypto::Signature signature{};
};
[[nodiscard]] platform::Result<Envelope> split_envelope(std::span<const std::uint8_t> bytes);

// Signs the message in `message` and appends the signature, so `message` becomes the envelope.
// Returns the message digest (the next report's `prev`).
[[nodiscard]] platform::Result<crypto::Digest> sign_envelope(Bytes& message,
                                                             const crypto::PrivateKey& key,
                                                             crypto::Random& random);
// Whether the envelope's signature verifies with `key`.
bool verify_envelope(const Envelope& envelope, const crypto::PublicKey& key);

}  // namespace gridnode::protocol
