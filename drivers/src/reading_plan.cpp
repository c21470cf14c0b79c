#include "reading_plan.hpp"

#include <string>
#include <utility>

namespace gridnode::drivers {

std::optional<std::string_view> PlanCore::read_text(PlanEntryBase& e, std::span<char> buf,
                                                    Sweep& out) {
  auto text = e.file.read(buf, keep_open_);
  if (text) {
    return *text;
  }
  auto code = text.error().code;
  if (e.seen_ok && vanished(code)) {
    rediscovery_.request();  // the device (or its driver) went away; walk again next sweep
  }
  if (code == std::errc::permission_denied && !warned_permission_) {
    warned_permission_ = true;
    platform::log(platform::Level::warning, component_,
                  platform::LogLine(permission_hint_).kv("path", e.file.path()));
  }
  skip(e, text.error(), out);
  return std::nullopt;
}

void PlanCore::accepted(PlanEntryBase& e) {
  e.seen_ok = true;
  if (e.complaint.release()) {
    platform::log(platform::Level::debug, component_,
                  platform::LogLine("reading recovered").kv("path", e.file.path()));
  }
}

void PlanCore::skip(PlanEntryBase& e, const platform::Error& err, Sweep& out) {
  ++out.errors;
  if (!e.complaint.complain()) {
    return;
  }
  // An I/O error's context is the path; a parse error's may say what was wrong.
  std::string message;
  std::string_view reason = err.context;
  if (reason.empty() || reason == e.file.path()) {
    message = err.code.message();
    reason = message;
  }
  platform::log(platform::Level::debug, component_,
                platform::LogLine("reading skipped").kv("path", e.file.path()).kv("err", reason));
}

void PlanCore::walk_failed() {
  catalog_.reset();
  rediscovery_.request();
}

void PlanCore::walk_done(Catalog&& catalog, std::uint64_t errors, std::size_t entries,
                         Sweep& out) {
  out.errors += errors;
  if (!catalog_ || *catalog_ != catalog) {
    catalog_ = std::make_shared<const Catalog>(std::move(catalog));
  }
  out.readings.reserve(entries);
  rediscovery_.done();
}

}  // namespace gridnode::drivers
