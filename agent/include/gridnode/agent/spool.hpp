#pragma once

// The agent's durable spool: every signed report is appended here before the uplink sends it,
// and stays until the collector has acknowledged it, across restarts and kill -9.
// docs/spool.md has the on-disk format byte for byte; this is the summary.
//
// Layout. <state_dir>/spool/ holds segment files <first seq, 20 digits>.seg and the file
// `acked`. A segment is the 8 bytes "GNSPL01\n" followed by records:
//   magic A5 53 50 52 | length u32 LE | crc u32 LE | kind u8 | flags u8 | seq u64 LE | payload
// `length` counts kind..payload (10 + payload bytes); `crc` is CRC-32C (Castagnoli) of the
// length field followed by kind..payload. kind is the frame kind (1 catalog, 2 report, 3 gap);
// flags bit 0 marks a catalog written only because a segment starts (a copy of the catalog in
// force, not a change). A new segment begins when the current one has reached segment_bytes;
// it starts with the catalog in force, so dropping old segments never orphans the reports after
// them and a reader starting anywhere gets the catalog first.
//
// Sequence numbers and order. Reports carry their seq and must be appended in increasing seq.
// A catalog record carries the seq of the report it precedes. A gap record carries its to_seq:
// the logical order that read() returns is by (seq, catalog before report), with a gap record
// placed before the first record whose seq is larger than its to_seq, i.e. right where the hole
// is, whatever its place in the files (it is written after the newest report when the drop
// happens). A gap counts as acknowledged once the watermark reaches its to_seq.
//
// Durability. append() only write(2)s (one pwrite per report, with its catalog and any gap
// record in the same call); it never fsyncs. flush() fdatasyncs what was written and persists
// the ack watermark; the owner calls it on a worker thread when flush_due() says so (after
// fsync_every records, or fsync_interval after the first unsynced record). A record whose
// append() returned survives kill -9 at any instant (the page cache keeps it); a power cut can
// take what was appended since the last flush(). At open(), a torn or corrupt tail is cut (the
// file is truncated at the end of the last good record); a corrupt record in the middle of a
// segment is skipped up to the next record whose checksum holds (found by its magic) and logged.
//
// Acknowledgement. ack(seq) moves the watermark (never back) and deletes the segments whose
// every record is acknowledged at once (never the one appended to, nor the one with the newest
// report); the watermark reaches the file `acked` (write_file_atomic) on the next flush() at most
// every ack_interval, or at once with flush(true). A crash loses at most the acks since then:
// those reports are sent again (the receiver ignores duplicates), none is lost.
//
// Bound. The segment files never hold more than max_bytes once append() returns (exactly:
// the sum of the *.seg file sizes; plus the `acked` file, under 32 bytes, and while flush()
// rewrites it one temporary copy). When an append would pass it, the oldest whole segments go,
// acknowledged or not (the one appended to is closed first if it is the only one left). For the
// unacknowledged reports dropped, a protocol::GapRecord{node_id, from, to, now, "spool full
// (N MiB)"} is signed by the GapSigner (options.signer) and written with the report, before the old
// segments are removed (a failed write drops nothing; a kill in between leaves the spool over
// its bound until the next append, never without the gap record), so the loss is visible and
// signed upstream. Gap records may overlap: each is true, their union is exact. segment_bytes is
// clamped to [max_bytes / 1024, max_bytes / 4] so that a drop frees a bounded slice of the spool
// and the index stays small.
//
// Threads. One owner thread calls append(), ack(), read(), last_report(), stats(); one other
// thread may call flush() at the same time (a mutex guards the state; flush() holds it only for
// bookkeeping, never during fsync or the ack file's write). open() and close() run alone.
// Memory is O(segments), not O(records): a sparse index (one mark every 32 KiB) finds a seq.
// append() allocates nothing in steady state (one reused buffer).

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "gridnode/agent/identity.hpp"
#include "gridnode/agent/report_sink.hpp"
#include "gridnode/agent/spool_eviction.hpp"
#include "gridnode/platform/fd.hpp"
#include "gridnode/platform/result.hpp"
#include "gridnode/protocol/frame.hpp"
#include "gridnode/protocol/gap.hpp"
#include "gridnode/protocol/wire.hpp"

namespace gridnode::agent {

// <state_dir>/spool
std::string spool_dir(const std::string& state_dir);

// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78, as iSCSI and ext4 use): the record
// checksum. `crc` continues an earlier result: crc32c(b, crc32c(a)) == crc32c(a || b).
std::uint32_t crc32c(std::span<const std::uint8_t> data, std::uint32_t crc = 0);

// The on-disk format's constants (docs/spool.md).
namespace spool_format {
inline constexpr std::array<std::uint8_t, 8> kSegmentMagic = {'G', 'N', 'S', 'P',
                                                              'L', '0', '1', '\n'};
inline constexpr std::array<std::uint8_t, 4> kRecordMagic = {0xA5, 'S', 'P', 'R'};
inline constexpr std::size_t kHeaderSize = 12;     // magic, length, crc
inline constexpr std::size_t kBodyFixedSize = 10;  // kind, flags, seq
inline constexpr std::size_t kRecordOverhead = kHeaderSize + kBodyFixedSize;
inline constexpr std::uint8_t kFlagCatalogCopy = 0x01;
}  // namespace spool_format

struct SpoolOptions {
  std::uint64_t max_bytes = std::uint64_t{256} << 20;  // at least 16 KiB
  std::uint64_t segment_bytes = std::uint64_t{4} << 20;
  // flush_due() turns true this long after the first record not yet synced…
  std::chrono::milliseconds fsync_interval{1000};
  // …or once this many records are unsynced (0: by interval only).
  std::uint32_t fsync_every = 0;
  // The ack watermark is written to disk at most this often (flush(true) forces it).
  std::chrono::milliseconds ack_interval{1000};
  // For gap records: the node's id, and the signer (the Reporter in the daemon; not owned, it
  // outlives the spool or is unset first), which turns a gap record into its signed envelope.
  // Without one, drops still happen (the bound is hard), the receiver sees the hole in the
  // chain, but no signed record explains it.
  std::string node_id;
  GapSigner* signer = nullptr;
};

// One record as read() hands it out; the bytes are a copy, owned here.
struct SpoolRecord {
  protocol::FrameKind kind = protocol::FrameKind::report;
  // report: its seq; gap: its to_seq; catalog: the seq of the report it precedes.
  std::uint64_t seq = 0;
  protocol::Bytes payload;  // the frame payload: catalog bytes or a signed envelope
};

// "12 KiB", "256 MiB": a size for messages and status lines (rounded down).
std::string human_bytes(std::uint64_t bytes);

struct SpoolStats {
  std::uint64_t segments = 0;
  std::uint64_t records = 0;  // all records in the segment files, catalog copies included
  std::uint64_t bytes = 0;    // size of the segment files: what max_bytes bounds
  std::uint64_t reports = 0;
  std::uint64_t unacked = 0;        // reports and gap records with seq > acked_seq
  std::uint64_t unacked_bytes = 0;  // bytes from the first unacked record to the end
  std::uint64_t oldest_seq = 0;     // oldest report on disk; 0 when there is none
  std::uint64_t newest_seq = 0;     // newest report appended (also after it was acked)
  std::uint64_t acked_seq = 0;
  std::uint64_t acked_persisted_seq = 0;  // what the `acked` file says
  std::uint64_t synced_seq = 0;           // newest report that a flush() made durable
  std::uint64_t unsynced_records = 0;
  std::uint64_t gaps_created = 0;     // gap records appended since open()
  std::uint64_t reports_dropped = 0;  // unacknowledged reports dropped for the bound, since open()
  std::uint64_t bytes_cut = 0;        // torn or corrupt tails truncated at open()
  std::uint64_t bytes_skipped = 0;    // corrupt bytes skipped inside segments at open() / read()
};

class Spool {
 public:
  // Creates <state_dir> (0700) and <state_dir>/spool (0700) when missing, then recovers: scans
  // every segment, verifies every record's checksum, cuts torn tails (one log line each),
  // removes a last segment with no valid record, rebuilds the index and reads `acked`.
  // Fails with invalid_argument on bad options, and with the errno of an I/O error (the spool
  // does not guess on EIO; it truncates only what it has read and found bad).
  [[nodiscard]] static platform::Result<std::unique_ptr<Spool>> open(const std::string& state_dir,
                                                                     SpoolOptions options);
  // close(), logging an error. Must not run while flush() does.
  ~Spool();
  Spool(const Spool&) = delete;
  Spool& operator=(const Spool&) = delete;

  // Appends the report `envelope` (a signed report, > 64 bytes) with sequence number `seq`,
  // which must be larger than every seq appended before (invalid_argument otherwise). `catalog`
  // is the Reporter's: empty unless it changed; a catalog equal to the one in force is not
  // written again. Writes with one pwrite(2), no fsync. May drop the oldest segments first
  // (see Bound above) and sign a gap record. On a write error (ENOSPC, EIO, EFBIG) returns it
  // and loses nothing already written: the partial bytes are truncated away (or, if that fails
  // too, the next append starts a new segment and open() cuts them). no_buffer_space: the
  // record cannot fit in max_bytes at all.
  [[nodiscard]] platform::Result<void> append(std::span<const std::uint8_t> catalog,
                                              std::span<const std::uint8_t> envelope,
                                              std::uint64_t seq);

  // True when flush() should run: records are unsynced and fsync_every or fsync_interval says
  // so, or the ack watermark awaits its write and ack_interval has passed. Cheap.
  bool flush_due() const;
  // fdatasyncs the segments written since the last flush (and the directory when segments came
  // or went), then writes `acked` if it changed and ack_interval has passed, or `force_ack`.
  // Blocking: call it from a worker. An error is returned once (the kernel reports a failed
  // writeback once); the spool goes on.
  [[nodiscard]] platform::Result<void> flush(bool force_ack = false);

  // The collector has made every record up to `seq` durable. Idempotent, never moves back;
  // invalid_argument beyond the newest report. Deletes fully acknowledged segments (unlink, no
  // fsync); the watermark is persisted by a later flush().
  [[nodiscard]] platform::Result<void> ack(std::uint64_t seq);

  // Copies into `out` (reusing its elements' buffers) the catalog in force for the first record
  // returned, then the records with seq > after_seq in logical order (catalog changes, reports,
  // gaps), until their payloads would pass `max_bytes` (at least one record when any is there;
  // never ending on a catalog). Empty `out`: nothing after after_seq. Checksums are verified
  // again; a record gone bad since open() is skipped and logged. Holds the lock while it
  // preads (from the page cache, in practice).
  [[nodiscard]] platform::Result<void> read(std::uint64_t after_seq, std::size_t max_bytes,
                                            std::vector<SpoolRecord>& out);

  // The newest report appended, as the Reporter's chain needs it: its seq and the digest of its
  // message (SHA-256 of the envelope without its last 64 bytes). nullopt for an empty spool.
  [[nodiscard]] platform::Result<std::optional<ChainPoint>> last_report();

  // The signer from now on (the daemon opens the spool before the Reporter exists: the spool
  // says where the chain goes on). Null: none. invalid_argument without a valid node id.
  [[nodiscard]] platform::Result<void> set_gap_signer(GapSigner* signer);

  SpoolStats stats() const;
  const std::string& dir() const { return dir_; }
  // The segment_bytes in use after clamping.
  std::uint64_t segment_bytes() const { return segment_bytes_; }

  // flush(true), then closes the files; later calls fail with bad_file_descriptor.
  [[nodiscard]] platform::Result<void> close();

 private:
  struct Mark {  // a report record: where the sparse index can start a scan
    std::uint64_t seq;
    std::uint64_t offset;
  };
  struct CatalogPos {
    std::uint64_t seq;
    std::uint64_t offset;
    bool copy;
  };
  struct Run {  // consecutive report seqs: counts unacked reports without a per-record index
    std::uint64_t first;
    std::uint64_t last;
  };
  struct Segment {
    std::uint64_t name = 0;  // from the file name
    std::string path;
    std::uint64_t size = 0;          // bytes of valid records (the file's size)
    std::uint64_t first_record = 0;  // offset of the first valid record
    std::uint64_t records = 0;
    std::uint64_t reports = 0;
    std::uint64_t first_report = 0;  // seqs; 0 when none
    std::uint64_t last_report = 0;
    std::uint64_t max_seq = 0;    // largest seq of a report, gap or catalog change
    std::uint64_t next_mark = 0;  // a report starting at or after this offset gets a mark
    std::vector<Mark> marks;
    std::vector<CatalogPos> catalogs;
    std::vector<Run> runs;
  };
  struct GapPos {
    std::uint64_t seq;  // = to
    std::uint64_t from;
    std::uint64_t to;
    std::uint64_t segment;  // name
    std::uint64_t offset;
  };
  struct RecordView;
  struct ReadFd;
  class Window;

  Spool(const std::string& state_dir, SpoolOptions options);
  platform::Result<void> recover();
  platform::Result<void> scan_segment(std::uint64_t name, bool last, protocol::Bytes& buf);
  void index_record(Segment& s, protocol::FrameKind kind, std::uint8_t flags, std::uint64_t seq,
                    std::uint64_t offset);
  void add_gap(const GapPos& gap);
  Segment make_segment(std::uint64_t name) const;
  std::string segment_path(std::uint64_t name) const;
  platform::Result<ReadFd> open_for_read(const Segment& s) const;
  Segment* find_segment(std::uint64_t name);
  platform::Result<std::optional<std::uint64_t>> find_first(Window& w, const Segment& s,
                                                            std::uint64_t after);
  platform::Result<bool> next_record(Window& w, const Segment& s, std::uint64_t& off,
                                     RecordView& r);
  SegmentLoss segment_loss(const Segment& s) const;
  platform::Result<void> delete_acked();
  void forget_front();
  void retire_active();
  platform::Result<crypto::Digest> digest_of_newest();
  void resolve_unacked();
  std::uint64_t unacked_bytes() const;

  std::string dir_;
  SpoolOptions options_;
  std::uint64_t segment_bytes_;
  std::string gap_reason_;
  std::uint64_t gap_reserve_;  // bytes a gap record can take, at most

  mutable std::mutex mutex_;
  std::mutex flush_mutex_;  // one flush() at a time
  bool open_ = false;
  platform::UniqueFd dir_fd_;
  platform::UniqueFd active_fd_;  // segments_.back()'s, while appends go there; none: next rolls
  bool active_broken_ = false;
  std::deque<Segment> segments_;
  std::vector<GapPos> gaps_;  // sorted by seq
  std::uint64_t disk_bytes_ = 0;

  std::uint64_t newest_seq_ = 0;
  std::uint64_t newest_segment_ = 0;
  std::uint64_t newest_offset_ = 0;
  std::optional<crypto::Digest> newest_digest_;
  // Where the first unacknowledged record is (for stats().unacked_bytes).
  bool unacked_known_ = false;
  std::uint64_t unacked_segment_ = 0;
  std::uint64_t unacked_offset_ = 0;

  std::uint64_t acked_ = 0;
  std::uint64_t acked_persisted_ = 0;
  protocol::Bytes catalog_;  // the catalog in force: the last one appended
  protocol::Bytes buf_;      // append()'s records, reused
  protocol::Bytes read_buf_;
  protocol::Bytes gap_buf_;
  std::optional<std::pair<std::uint64_t, std::uint64_t>> pending_gap_;  // dropped, not yet told
  bool signer_failing_ = false;

  // Segments closed for appending, still to be synced: (name, descriptor).
  std::vector<std::pair<std::uint64_t, platform::UniqueFd>> pending_sync_;
  std::vector<std::pair<std::uint64_t, platform::UniqueFd>> syncing_;  // flush()'s, unlocked
  bool dir_dirty_ = false;
  std::uint64_t appended_ = 0;  // records written since open()
  std::uint64_t synced_ = 0;    // of which a flush() made durable
  std::uint64_t synced_seq_ = 0;
  std::chrono::steady_clock::time_point last_flush_;
  std::chrono::steady_clock::time_point last_ack_write_;

  std::uint64_t gaps_created_ = 0;
  std::uint64_t reports_dropped_ = 0;
  std::uint64_t bytes_cut_ = 0;
  std::uint64_t bytes_skipped_ = 0;
};

}  // namespace gridnode::agent
