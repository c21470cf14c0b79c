#include "open_sink.hpp"

namespace gridnode::collector {

bool is_stream_sink(std::string_view where) { return where.starts_with("nats://"); }

platform::Result<std::unique_ptr<Sink>> open_sink(asio::io_context& io, const std::string& where,
                                                  JetStreamOptions jetstream) {
  if (is_stream_sink(where)) {
    jetstream.servers = where;
    auto sink = JetStreamSink::open(io, jetstream);
    if (!sink) {
      return tl::unexpected(sink.error());
    }
    return std::unique_ptr<Sink>(std::move(*sink));
  }
  auto sink = JsonlSink::open(io, where);
  if (!sink) {
    return tl::unexpected(sink.error());
  }
  return std::unique_ptr<Sink>(std::move(*sink));
}

}  // namespace gridnode::collector
