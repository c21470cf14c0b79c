// Bundle intake: signed policy bundles offered over the uplink or dropped in the bundle
// directory, verified on a worker and applied on the loop when newer.
#include "gridnode/agent/policy_engine.hpp"

#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <asio/post.hpp>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>

#include "gridnode/agent/policy_bundle.hpp"
#include "gridnode/platform/files.hpp"
#include "gridnode/platform/log.hpp"
#include "policy_text.hpp"
#include "rule_parser.hpp"

namespace gridnode::agent {

using platform::Level;
using platform::LogLine;
using platform::Result;
using namespace policy_text;  // NOLINT: the policy's own helpers

void PolicyEngine::arm_bundles() {
  bundle_timer_.expires_after(options_.bundle_interval);
  bundle_timer_.async_wait([this](const std::error_code& ec) {
    if (ec) {
      return;
    }
    do_scan_bundles();
    arm_bundles();
  });
}

void PolicyEngine::offer_bundle(std::string bytes, std::string origin, BundleAnswer answer) {
  asio::post(work_pool_, [this, bytes = std::move(bytes), origin = std::move(origin),
                          answer = std::move(answer)]() mutable {
    platform::Result<Policy> p =
        key_ ? verify_bundle(bytes, *key_, origin)
             : platform::Result<Policy>(platform::fail(
                   std::errc::operation_not_permitted,
                   origin + ": no policy key is configured ([policy] key): bundles are refused"));
    asio::post(io_, [this, origin, p = std::move(p), bytes = std::move(bytes),
                     answer = std::move(answer)]() mutable {
      on_bundle(origin, std::move(p), std::move(bytes), answer);
    });
  });
}

void PolicyEngine::do_scan_bundles() {
  if (scanning_ || options_.bundle_dir.empty()) {
    return;
  }
  scanning_ = true;
  asio::post(work_pool_, [this] {
    std::vector<std::pair<std::string, std::string>> fresh;
    if (auto names = platform::list_dir(options_.bundle_dir)) {
      for (const auto& n : *names) {
        if (!n.ends_with(".bundle") || n.starts_with(".")) {
          continue;  // hidden: a copy still being written
        }
        std::string path = platform::Roots::join(options_.bundle_dir, n);
        struct stat st {};
        if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
          continue;
        }
        auto sig = std::pair<std::int64_t, std::int64_t>{
            static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec,
            static_cast<std::int64_t>(st.st_size)};
        auto it = bundle_seen_.find(path);
        if (it != bundle_seen_.end() && it->second == sig) {
          continue;
        }
        bundle_seen_[path] = sig;
        std::string bytes;
        if (platform::read_file(path, bytes, kMaxBundleBytes + 1)) {
          fresh.emplace_back(path, std::move(bytes));
        }
      }
    }
    asio::post(io_, [this, fresh = std::move(fresh)]() mutable {
      scanning_ = false;
      for (auto& [path, bytes] : fresh) {
        offer_bundle(std::move(bytes), path);
      }
    });
  });
}

void PolicyEngine::on_bundle(std::string origin, platform::Result<Policy> p, std::string bytes,
                             const BundleAnswer& answer) {
  if (stopped_) {
    return;
  }
  auto refuse = [&](const platform::Error& error) {
    on_policy_rejected(origin, error);
    if (answer) {
      answer({BundleOutcome::Result::refused, error.message()});
    }
  };
  if (!p) {
    refuse(p.error());
    return;
  }
  switch (decide_bundle(policy_, *p)) {
    case BundleDecision::same:
      if (answer) {
        answer({BundleOutcome::Result::in_force, "already in force"});
      }
      return;
    case BundleDecision::rollback:
      refuse(platform::Error{std::make_error_code(std::errc::operation_not_permitted),
                             "version " + std::to_string(p->version) +
                                 " is not newer than version " + std::to_string(policy_.version) +
                                 " in force (rollback)"});
      return;
    case BundleDecision::apply:
      break;
  }
  p->source = origin.starts_with("uplink ") ? origin : "bundle " + origin;
  PolicyEvent e;
  e.rule = "policy";
  e.type = "policy";
  e.severity = Severity::notice;
  e.subject = origin;
  e.details = "signed policy version " + std::to_string(p->version) + " applied (was " +
              std::to_string(policy_.version) + ")";
  e.result = "applied";
  apply(std::move(*p));
  raise(std::move(e));
  if (answer) {
    answer({BundleOutcome::Result::applied, {}});
  }
  if (!options_.state_dir.empty()) {
    // Kept so that a restart does not fall back to an older policy.
    asio::post(work_pool_, [this, bytes = std::move(bytes)] {
      std::error_code ec;
      std::filesystem::create_directories(options_.state_dir, ec);  // unenrolled: may not exist
      auto w = platform::write_file_atomic(bundle_keep_path(options_.state_dir), bytes, 0600);
      if (!w) {
        platform::log(Level::warning, "policy",
                      LogLine("cannot keep the bundle").kv("err", w.error().message()));
      }
    });
  }
}

}  // namespace gridnode::agent
