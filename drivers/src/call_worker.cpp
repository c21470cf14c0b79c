#include "call_worker.hpp"

#include <utility>

namespace gridnode::drivers {

CallWorker::CallWorker() : state_(std::make_shared<State>()), thread_(run, state_) {}

CallWorker::~CallWorker() {
  bool hung = false;
  {
    std::lock_guard lock(state_->mu);
    state_->stop = true;
    hung = !state_->done;
  }
  state_->cv.notify_all();
  if (hung) {
    // Joining would wait for a call that may never come back. The thread owns its state and
    // its job's captures, so it can be left to itself; the process exits around it.
    thread_.detach();
  } else {
    thread_.join();
  }
}

bool CallWorker::busy() const {
  std::lock_guard lock(state_->mu);
  return !state_->done;
}

void CallWorker::submit(std::function<void()> job) {
  {
    std::lock_guard lock(state_->mu);
    state_->job = std::move(job);
    state_->pending = true;
    state_->done = false;
  }
  state_->cv.notify_all();
}

bool CallWorker::wait_until(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lock(state_->mu);
  return state_->cv.wait_until(lock, deadline, [&] { return state_->done; });
}

void CallWorker::run(std::shared_ptr<State> state) {
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock lock(state->mu);
      state->cv.wait(lock, [&] { return state->pending || state->stop; });
      if (!state->pending) {
        return;
      }
      job = std::move(state->job);
      state->job = nullptr;
      state->pending = false;
    }
    job();
    job = nullptr;  // its captures go before "done" is seen, outside the lock
    {
      std::lock_guard lock(state->mu);
      state->done = true;
    }
    state->cv.notify_all();
  }
}

}  // namespace gridnode::drivers
