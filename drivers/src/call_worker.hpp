#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

namespace gridnode::drivers {

// One thread that runs one job at a time, for calls that may never return (an NVML call into a
// wedged GPU, statfs on a dead NFS mount, an IPMI request to a BMC that stopped answering).
// The caller submits a job, then waits for it with a deadline (or polls busy()); a job past its
// deadline keeps the worker busy and is simply not waited for again. The job's captures must
// own what it touches: a hung worker is detached when its owner goes, and finishes (or not) on
// its own. A job of one pointer fits std::function's inline storage, so submit() allocates
// nothing.
class CallWorker {
 public:
  CallWorker();
  ~CallWorker();
  CallWorker(const CallWorker&) = delete;
  CallWorker& operator=(const CallWorker&) = delete;

  // Whether the last job has not finished yet.
  bool busy() const;
  // Starts `job`. Must not be busy.
  void submit(std::function<void()> job);
  // Waits until the job has finished (true) or `deadline` has passed (false).
  bool wait_until(std::chrono::steady_clock::time_point deadline);
  // Hands over what a hung job still writes to (its owner is going): freed with the worker's
  // state, once the thread is done with it, instead of never. Allocates (rare: a call that hung).
  template <class T>
  void keep_until_done(std::unique_ptr<T> keep) {
    std::lock_guard lock(state_->mu);
    state_->keep = std::shared_ptr<T>(std::move(keep));
  }

 private:
  struct State {
    mutable std::mutex mu;
    std::condition_variable cv;
    std::function<void()> job;
    bool pending = false;  // job set, not yet taken by the thread
    bool done = true;      // the last job finished
    bool stop = false;
    std::shared_ptr<void> keep;  // what a hung job's captures point at (keep_until_done)
  };
  static void run(std::shared_ptr<State> state);

  std::shared_ptr<State> state_;
  std::thread thread_;
};

}  // namespace gridnode::drivers
