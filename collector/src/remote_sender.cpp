#include "gridnode/collector/remote_sender.hpp"

#include <curl/curl.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <deque>
#include <mutex>

#include <nlohmann/json.hpp>

#include "gridnode/platform/files.hpp"
#include "gridnode/platform/log.hpp"
#include "gridnode/collector/write_request.hpp"

namespace gridnode::collector {
namespace {

using platform::Level;
using platform::LogLine;

constexpr std::chrono::milliseconds kPoll{200};
constexpr std::size_t kChunk = 1 << 20;       // read from the source at a time
constexpr std::size_t kMaxLine = 64u << 20;   // a longer line is skipped (none is: frame bound)
constexpr std::size_t kBodyLogged = 512;      // bytes of a refusal's body in the log

std::once_flag g_curl_once;

std::string first_bytes(const std::string& body) {
  std::string s = body.substr(0, kBodyLogged);
  std::replace_if(s.begin(), s.end(), [](char c) { return c == '\n' || c == '\r'; }, ' ');
  while (!s.empty() && s.back() == ' ') {
    s.pop_back();
  }
  return s;
}

}  // namespace

std::string remote_position_path(const std::string& source, const RemoteTarget& target) {
  return source + ".rw-" + target.name;
}

platform::Result<RemotePosition> read_remote_position(const std::string& path) {
  std::string text;
  if (auto r = platform::read_file(path, text, 4096); !r) {
    if (r.error().code == std::errc::no_such_file_or_directory) {
      return RemotePosition{};
    }
    return tl::unexpected(r.error());
  }
  const auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  auto u = [&j](const char* key) -> std::uint64_t {
    const auto it = j.find(key);
    return it != j.end() && it->is_number_unsigned() ? it->get<std::uint64_t>() : 0;
  };
  if (!j.is_object() || !j.contains("offset") || !j["offset"].is_number_unsigned()) {
    return platform::fail(std::errc::invalid_argument, path + ": not a remote-write position");
  }
  RemotePosition p;
  p.offset = u("offset");
  p.inflight_end = u("inflight_end");
  p.resend_from = std::min(u("resend_from"), p.offset);
  p.acked_max_ms = static_cast<std::int64_t>(u("acked_max_ms"));
  p.inode = u("inode");
  return p;
}

platform::Result<void> write_remote_position(const std::string& path, const RemotePosition& p) {
  const nlohmann::json j = {{"offset", p.offset},
                            {"inflight_end", p.inflight_end},
                            {"resend_from", p.resend_from},
                            {"acked_max_ms", static_cast<std::uint64_t>(std::max<std::int64_t>(
                                                 p.acked_max_ms, 0))},
                            {"inode", p.inode}};
  return platform::write_file_atomic(path, j.dump() + "\n", 0644);
}

// The thread's state: touched by the thread only, but for stop_ (and the wake-up).
class RemoteSender::Impl {
 public:
  Impl(RemoteSender& owner) : o_(owner), builder_(owner.target_.job) {}
  ~Impl() {
    if (curl_ != nullptr) {
      curl_easy_cleanup(curl_);
    }
    if (headers_ != nullptr) {
      curl_slist_free_all(headers_);
    }
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }

  platform::Result<void> load() {
    path_ = remote_position_path(o_.source_, o_.target_);
    auto p = read_remote_position(path_);
    if (!p) {
      return tl::unexpected(p.error());
    }
    pos_ = *p;
    o_.delivered_.store(pos_.offset);
    return {};
  }

  void run();
  void request_stop() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
  }

 private:
  enum class Sent { ok, failed };
  bool stopping() {
    std::lock_guard lock(mu_);
    return stop_;
  }
  // Sleeps, or returns early (true) when asked to stop.
  bool sleep_for(std::chrono::milliseconds d) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, d, [this] { return stop_; });
  }
  bool open_source();
  bool read_batch(std::uint64_t from, std::uint64_t limit, std::uint64_t& end);
  Outcome post(long& status);
  Sent send_window();
  void on_failure(Outcome outcome, long status);
  void acknowledge(std::uint64_t start, std::uint64_t end);
  void save();
  void save_if_dirty() {
    if (dirty_) {
      save();
    }
  }
  static int on_progress(void* self, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
    return static_cast<Impl*>(self)->stopping() ? 1 : 0;
  }
  static std::size_t on_body(char* data, std::size_t size, std::size_t n, void* self) {
    auto& body = static_cast<Impl*>(self)->body_;
    body.append(data, std::min(size * n, kBodyLogged * 2 - std::min(body.size(), kBodyLogged * 2)));
    return size * n;
  }
  platform::LogLine line(std::string_view what) {
    platform::LogLine l(what);
    l.kv("target", o_.target_.name).kv("url", o_.target_.url);
    return l;
  }

  RemoteSender& o_;
  WriteRequestBuilder builder_;
  std::string path_;
  RemotePosition pos_;
  std::deque<std::pair<std::uint64_t, std::int64_t>> acked_;  // batch start, its newest ms
  int fd_ = -1;
  std::string buf_;
  std::string body_, request_;
  CURL* curl_ = nullptr;
  curl_slist* headers_ = nullptr;
  char curl_error_[CURL_ERROR_SIZE] = {};
  bool dirty_ = false;  // pos_ holds more than the file
  std::chrono::milliseconds backoff_{0};
  platform::Complaint unreachable_, refused_, unreadable_, save_failed_;
  std::uint64_t failed_requests_ = 0, unreadable_lines_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
};

bool RemoteSender::Impl::open_source() {
  if (fd_ >= 0) {
    return true;
  }
  fd_ = ::open(o_.source_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) {
    return false;
  }
  struct stat st {};
  if (::fstat(fd_, &st) == 0) {
    const auto inode = static_cast<std::uint64_t>(st.st_ino);
    if (pos_.inode != 0 && pos_.inode != inode) {
      platform::log(Level::warning, "remote-write",
                    line("source is another file, sending it from its start")
                        .kv("source", o_.source_));
      pos_ = RemotePosition{};
    }
    if (static_cast<std::uint64_t>(st.st_size) < pos_.offset) {
      platform::log(Level::warning, "remote-write",
                    line("source is shorter than the position, sending it from its start")
                        .kv("source", o_.source_)
                        .kv("position", static_cast<std::int64_t>(pos_.offset)));
      pos_ = RemotePosition{};
    }
    pos_.inode = inode;
  }
  return true;
}

// Fills the builder with the whole lines in [from, limit), up to max_samples; `end` is where
// the last line taken ends. False when there is no whole line there.
bool RemoteSender::Impl::read_batch(std::uint64_t from, std::uint64_t limit, std::uint64_t& end) {
  builder_.clear();
  end = from;
  std::size_t chunk = kChunk;
  while (end < limit && builder_.samples() < o_.target_.max_samples) {
    buf_.resize(static_cast<std::size_t>(std::min<std::uint64_t>(chunk, limit - end)));
    const ssize_t n = ::pread(fd_, buf_.data(), buf_.size(), static_cast<off_t>(end));
    if (n <= 0) {
      break;
    }
    const std::string_view view(buf_.data(), static_cast<std::size_t>(n));
    std::size_t consumed = 0;
    for (std::size_t nl; builder_.samples() < o_.target_.max_samples &&
                         (nl = view.find('\n', consumed)) != std::string_view::npos;) {
      const std::string_view l = view.substr(consumed, nl - consumed);
      consumed = nl + 1;
      if (l.empty()) {
        continue;
      }
      if (auto r = builder_.add_line(l); !r) {
        ++unreadable_lines_;
        if (unreadable_.complain()) {
          platform::log(Level::warning, "remote-write",
                        line("line skipped, not a record")
                            .kv("offset", static_cast<std::int64_t>(end + consumed - l.size() - 1))
                            .kv("err", r.error().message()));
        }
      }
    }
    if (consumed == 0) {
      if (static_cast<std::size_t>(n) == chunk && chunk < kMaxLine) {
        chunk *= 2;  // one line longer than the buffer
        continue;
      }
      if (static_cast<std::size_t>(n) == kMaxLine) {
        consumed = kMaxLine;  // no line is this long: skipped, never stuck on it
      } else {
        break;  // a line still being written
      }
    }
    end += consumed;
  }
  return end > from;
}

Outcome RemoteSender::Impl::post(long& status) {
  const RemoteTarget& t = o_.target_;
  std::call_once(g_curl_once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (curl_ == nullptr) {
    curl_ = curl_easy_init();
    headers_ = curl_slist_append(headers_, "Content-Encoding: snappy");
    headers_ = curl_slist_append(headers_, "Content-Type: application/x-protobuf");
    headers_ = curl_slist_append(headers_, "X-Prometheus-Remote-Write-Version: 0.1.0");
    curl_easy_setopt(curl_, CURLOPT_URL, t.url.c_str());
    curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, headers_);
    curl_easy_setopt(curl_, CURLOPT_USERAGENT, "gridnode-collector");
    curl_easy_setopt(curl_, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl_, CURLOPT_TIMEOUT_MS, static_cast<long>(t.timeout.count()));
    curl_easy_setopt(curl_, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(std::min<std::int64_t>(t.timeout.count(), 10000)));
    curl_easy_setopt(curl_, CURLOPT_ERRORBUFFER, curl_error_);
    curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, &Impl::on_body);
    curl_easy_setopt(curl_, CURLOPT_WRITEDATA, this);
    curl_easy_setopt(curl_, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl_, CURLOPT_XFERINFOFUNCTION, &Impl::on_progress);
    curl_easy_setopt(curl_, CURLOPT_XFERINFODATA, this);
    curl_easy_setopt(curl_, CURLOPT_PROTOCOLS_STR, "http,https");
    if (!t.ca_file.empty()) {
      curl_easy_setopt(curl_, CURLOPT_CAINFO, t.ca_file.c_str());
    }
    if (!t.username.empty()) {
      curl_easy_setopt(curl_, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
      curl_easy_setopt(curl_, CURLOPT_USERNAME, t.username.c_str());
      curl_easy_setopt(curl_, CURLOPT_PASSWORD, t.password.c_str());
    } else if (!t.bearer_token.empty()) {
      curl_easy_setopt(curl_, CURLOPT_HTTPAUTH, CURLAUTH_BEARER);
      curl_easy_setopt(curl_, CURLOPT_XOAUTH2_BEARER, t.bearer_token.c_str());
    }
  }
  builder_.finish(request_);
  curl_easy_setopt(curl_, CURLOPT_POSTFIELDS, request_.data());
  curl_easy_setopt(curl_, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request_.size()));
  body_.clear();
  curl_error_[0] = '\0';
  const CURLcode rc = curl_easy_perform(curl_);
  status = 0;
  if (rc == CURLE_OK) {
    curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &status);
  } else {
    body_ = curl_error_[0] != '\0' ? curl_error_ : curl_easy_strerror(rc);
  }
  return classify_response(status);
}

void RemoteSender::Impl::save() {
  dirty_ = false;
  if (auto w = write_remote_position(path_, pos_); !w) {
    if (save_failed_.complain()) {
      platform::log(Level::err, "remote-write",
                    line("position not saved (a restart sends again from the last one)")
                        .kv("err", w.error().message()));
    }
  } else if (save_failed_.release()) {
    platform::log(Level::notice, "remote-write", line("position saved again"));
  }
}

// A batch [start, end) is done with: the window of what may be sent again moves on.
void RemoteSender::Impl::acknowledge(std::uint64_t start, std::uint64_t end) {
  if (builder_.samples() > 0) {
    pos_.acked_max_ms = std::max(pos_.acked_max_ms, builder_.max_time_ms());
    acked_.emplace_back(start, builder_.max_time_ms());
  }
  const std::int64_t oldest = pos_.acked_max_ms - o_.target_.resend_window.count();
  while (!acked_.empty() && (acked_.front().second < oldest || acked_.size() > 100000)) {
    acked_.pop_front();
  }
  pos_.offset = end;
  pos_.inflight_end = end;
  pos_.resend_from = o_.target_.resend_window.count() == 0 || acked_.empty()
                         ? end
                         : std::min(acked_.front().first, end);
  o_.delivered_.store(end);
  // Saved with the next batch's inflight_end, or when the source has nothing more: one write
  // per request. A crash before then sends this batch again, alone (inflight_end).
  dirty_ = true;
}

void RemoteSender::Impl::on_failure(Outcome outcome, long status) {
  ++failed_requests_;
  if (outcome == Outcome::refused) {
    // Logged every time the backoff is at its longest too: someone must fix the configuration.
    if (refused_.complain() || backoff_ >= o_.target_.max_backoff) {
      platform::log(Level::err, "remote-write",
                    line("target refused our request; kept, tried again until fixed")
                        .kv("status", status)
                        .kv("body", first_bytes(body_)));
    }
  } else if (unreachable_.complain()) {
    platform::log(Level::warning, "remote-write",
                  line("target unreachable, trying again")
                      .kv("status", status)
                      .kv(status == 0 ? "err" : "body", first_bytes(body_)));
  }
  backoff_ = std::clamp(backoff_ * 2, std::chrono::milliseconds(100), o_.target_.max_backoff);
}

// What the target acknowledged within the window, sent again (a target killed after its 2xx may
// have lost it). The spec's "4xx is final" holds here too: those are samples it said it had.
RemoteSender::Impl::Sent RemoteSender::Impl::send_window() {
  const std::uint64_t to = pos_.offset;
  std::uint64_t at = pos_.resend_from;
  if (at >= to) {
    return Sent::ok;
  }
  platform::log(Level::info, "remote-write",
                line("sending the acknowledged window again")
                    .kv("from", static_cast<std::int64_t>(at))
                    .kv("to", static_cast<std::int64_t>(to)));
  while (at < to && !stopping()) {
    std::uint64_t end = 0;
    if (!read_batch(at, to, end)) {
      break;
    }
    if (builder_.samples() > 0) {
      long status = 0;
      const Outcome out = post(status);
      if (stopping()) {
        return Sent::failed;
      }
      if (out == Outcome::retry || out == Outcome::refused) {
        on_failure(out, status);
        return Sent::failed;
      }
      if (out == Outcome::dropped) {
        platform::log(Level::debug, "remote-write",
                      line("re-sent samples refused (the target holds newer ones)")
                          .kv("status", status)
                          .kv("body", first_bytes(body_)));
      }
    }
    at = end;
  }
  return stopping() ? Sent::failed : Sent::ok;
}

void RemoteSender::Impl::run() {
  bool window_due = true;  // at start: the target may have restarted while we were away
  bool announced = false;
  while (!stopping()) {
    if (!open_source()) {
      sleep_for(kPoll);
      continue;
    }
    if (!announced) {
      announced = true;
      if (pos_.acked_max_ms == 0 && pos_.resend_from < pos_.offset) {
        pos_.resend_from = pos_.offset;
      }
      if (pos_.resend_from < pos_.offset) {
        acked_.emplace_back(pos_.resend_from, pos_.acked_max_ms);
      }
      platform::log(Level::notice, "remote-write",
                    line("sending").kv("source", o_.source_)
                        .kv("position", static_cast<std::int64_t>(pos_.offset)));
    }
    if (backoff_.count() > 0 && sleep_for(backoff_)) {
      break;
    }
    if (window_due && o_.target_.resend_window.count() > 0) {
      if (send_window() == Sent::failed) {
        continue;
      }
    }
    window_due = false;
    // After a crash mid-request, the batch in flight then is sent alone, exactly as it was: a
    // receiver that refuses samples older than its newest (Prometheus) takes or refuses all of
    // it, never part of a batch mixed with new lines.
    const std::uint64_t limit = pos_.inflight_end > pos_.offset ? pos_.inflight_end : UINT64_MAX;
    std::uint64_t end = 0;
    if (!read_batch(pos_.offset, limit, end)) {
      save_if_dirty();
      backoff_ = std::chrono::milliseconds(0);
      sleep_for(kPoll);
      continue;
    }
    if (builder_.samples() == 0) {
      acknowledge(pos_.offset, end);  // catalog lines only
      continue;
    }
    if (pos_.inflight_end != end || dirty_) {
      pos_.inflight_end = end;
      save();
    }
    long status = 0;
    const Outcome out = post(status);
    if (stopping()) {
      break;  // aborted by stop(): the batch stays in flight, sent again at the next start
    }
    switch (out) {
      case Outcome::delivered:
      case Outcome::dropped:
        if (out == Outcome::dropped) {
          platform::log(Level::err, "remote-write",
                        line("target refused a batch for good (remote-write spec: no retry on "
                             "4xx); dropped")
                            .kv("status", status)
                            .kv("samples", static_cast<std::int64_t>(builder_.samples()))
                            .kv("from", static_cast<std::int64_t>(pos_.offset))
                            .kv("body", first_bytes(body_)));
        }
        if (unreachable_.release() || refused_.release()) {
          platform::log(Level::notice, "remote-write",
                        line("delivering again")
                            .kv("failed_requests", static_cast<std::int64_t>(failed_requests_)));
        }
        backoff_ = std::chrono::milliseconds(0);
        acknowledge(pos_.offset, end);
        break;
      case Outcome::retry:
        window_due = true;
        on_failure(out, status);
        break;
      case Outcome::refused:
        on_failure(out, status);
        break;
    }
  }
  save_if_dirty();
}

RemoteSender::RemoteSender(RemoteTarget target, std::string source)
    : target_(std::move(target)), source_(std::move(source)),
      impl_(std::make_unique<Impl>(*this)) {}

RemoteSender::~RemoteSender() { stop(); }

platform::Result<void> RemoteSender::start() {
  if (auto r = impl_->load(); !r) {
    return r;
  }
  thread_ = std::thread([this] { impl_->run(); });
  return {};
}

void RemoteSender::stop() {
  if (thread_.joinable()) {
    impl_->request_stop();
    thread_.join();
  }
}

platform::Result<void> RemoteWriters::start(const std::vector<RemoteTarget>& targets,
                                            const std::string& source) {
  for (const auto& t : targets) {
    auto s = std::make_unique<RemoteSender>(t, source);
    if (auto r = s->start(); !r) {
      stop();
      return r;
    }
    senders_.push_back(std::move(s));
  }
  return {};
}

void RemoteWriters::stop() {
  for (auto& s : senders_) {
    s->stop();
  }
  senders_.clear();
}

bool RemoteWriters::wait_caught_up(std::chrono::steady_clock::duration timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  // The source holds whole lines only (it is appended a batch at a time): caught up is having
  // delivered up to its size.
  while (true) {
    const bool all = std::all_of(senders_.begin(), senders_.end(), [](const auto& s) {
      struct stat st {};
      return ::stat(s->source().c_str(), &st) == 0 &&
             s->delivered() >= static_cast<std::uint64_t>(st.st_size);
    });
    if (all) {
      return true;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      return false;
    }
    std::this_thread::sleep_for(kPoll);
  }
}

}  // namespace gridnode::collector
