#pragma once

#include <string>

#include "gridnode/collector/jetstream.hpp"
#include "gridnode/collector/remote_target.hpp"

namespace gridnode::collector {

struct ExportOptions {
  std::string from;                            // nats://HOST:PORT[,…]
  std::string sink;                            // FILE.jsonl
  std::string durable = "gridnode-export";     // the consumer's name: one per archive
  std::string stream = "GRIDNODE_REPORTS";
  bool drain = false;                          // exit once nothing is pending (tests, cron)
  std::chrono::milliseconds timeout{5000};
  // Prometheus remote_write targets, fed from the archive (`sink`) as serve's are from its
  // sink: the archive is their queue. With `drain`, the exporter waits for them to catch up.
  RemoteWriteFlags remote_write;
};

// `gridnode-collector export`: a durable JetStream consumer that appends every record of the
// stream to a JSONL file, rendered as the JSONL sink's line (stream records; a JSON-line message
// is copied as it is), exactly once across its own restarts (kill -9 included). A message that
// is not a readable record is skipped, logged once and counted. The file is
// the truth: a batch is written and fdatasync'ed before it is acknowledged, and the records a
// crash left written but unacknowledged are recognised by their message ids when JetStream
// delivers them again. Servers that do not answer, a stream not made yet, a consumer lost: logged
// and tried again (backoff to 10 s) until stopped; with `drain` they fail at once. Exit status 0 on
// SIGTERM/SIGINT (or drained), 1 on a failure, 2 on bad options or when a drain cannot start.
int export_stream(const ExportOptions& options);

// The de-duplication id of a sink line (as the collector published it), or "" for a line that is
// not a record.
std::string record_id(std::string_view line);

}  // namespace gridnode::collector
