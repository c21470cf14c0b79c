#pragma once

#include <asio/io_context.hpp>
#include <memory>
#include <string>
#include <string_view>

#include "gridnode/platform/result.hpp"
#include "gridnode/collector/jetstream.hpp"
#include "gridnode/collector/sink.hpp"

namespace gridnode::collector {

// `--sink`: nats://HOST:PORT[,…] is JetStream, anything else a JSONL file's path.
bool is_stream_sink(std::string_view where);

// The one place the collector's sink is chosen: JetStream (with `jetstream`'s settings, its
// servers `where`) or a JSONL file, both committing on `io`.
[[nodiscard]] platform::Result<std::unique_ptr<Sink>> open_sink(asio::io_context& io,
                                                                const std::string& where,
                                                                JetStreamOptions jetstream);

}  // namespace gridnode::collector
