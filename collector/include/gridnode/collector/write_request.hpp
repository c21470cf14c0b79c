#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "gridnode/platform/result.hpp"

struct Prometheus__TimeSeries;  // remote_write.pb-c.h

namespace gridnode::collector {

// Turns the sink's JSON lines (docs/collector.md) into one Prometheus remote_write 1.0
// WriteRequest (protobuf, snappy-compressed): the body a sender POSTs. One series per label set,
// its samples in the order of the lines (the sink holds each node's reports in sequence order,
// so each series is in time order). What each line becomes (docs/collector.md, "remote_write"):
//
//   report  one sample per metric at the report's time_ns (in ms), its exact value, labels:
//           __name__, the series' own, the node's (region, site, rack …), instance=<node id>,
//           job=<job>; and gridnode_report_events{kind,severity} = the report's events of that
//           kind and severity, where it has any
//   gap     gridnode_report_gap{instance,job} = the reports the node dropped, at the gap's time
//   catalog nothing
//
// Where two sources name one label, the node's wins over the series' and instance/job over both;
// the loser is kept as exported_<name> (Prometheus' own rule for target labels).
//
// The builder keeps its buffers, series and label strings between batches (clear() keeps their
// capacity), so a steady stream of reports builds requests without allocating per sample.
// Not thread-safe: one per sender thread.
class WriteRequestBuilder {
 public:
  explicit WriteRequestBuilder(std::string job = "gridnode");
  ~WriteRequestBuilder();
  WriteRequestBuilder(const WriteRequestBuilder&) = delete;
  WriteRequestBuilder& operator=(const WriteRequestBuilder&) = delete;

  // Adds the samples of one line (without its '\n'). Returns how many; 0 for a catalog line or
  // a report without values or events. invalid_argument for a line that is not a record (the
  // batch is unchanged then).
  [[nodiscard]] platform::Result<std::size_t> add_line(std::string_view line);

  std::size_t samples() const { return samples_; }
  // Lines read by the scanner of RecordWriter's own layout rather than the JSON reader (tests).
  std::size_t scanned_lines() const { return scanned_; }
  std::size_t series() const { return used_.size(); }
  // The newest and oldest sample time added since clear() (ms); 0 when none.
  std::int64_t max_time_ms() const { return max_ms_; }
  std::int64_t min_time_ms() const { return min_ms_; }

  // The WriteRequest of everything added since clear(), packed and snappy-compressed into `out`
  // (replaced; its capacity is reused).
  void finish(std::string& out);
  // The packed WriteRequest, before compression (tests, benchmarks).
  const std::string& packed() const { return packed_; }

  // Forgets the samples; keeps series and buffers for the next batch.
  void clear();

  struct Scratch;  // what one line holds (write_request.cpp)

 private:
  struct Series;
  Series& series_for(std::string_view name);
  void add_sample(std::string_view name, double value, std::int64_t ms);
  void set_node(std::string_view node);

  std::string job_;
  std::unique_ptr<Scratch> scratch_;
  std::unordered_map<std::string, std::unique_ptr<Series>> series_;
  std::vector<Series*> used_;  // series with samples in this batch, in order of first sample
  std::size_t samples_ = 0;
  std::size_t scanned_ = 0;
  std::int64_t max_ms_ = 0;
  std::int64_t min_ms_ = 0;
  std::vector<Prometheus__TimeSeries*> ts_ptrs_;  // the request's, reused
  std::string packed_;
};

}  // namespace gridnode::collector
