// The worker pool that runs CPU kernels' threadgroups on all cores.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

namespace enigma {

class ThreadPool {
 public:
  // The process-wide pool, created on first use with default_size() threads.
  static ThreadPool& instance();

  // ENIGMA_NUM_THREADS if set and non-empty (it must be a positive integer,
  // else RuntimeError); otherwise std::thread::hardware_concurrency(), at
  // least 1.
  static unsigned default_size();

  // `num_threads` workers in total, counting the thread that calls
  // parallel_for; so num_threads - 1 background threads. Must be >= 1.
  explicit ThreadPool(unsigned num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  unsigned size() const { return size_; }

  // Calls body(begin, end) over disjoint chunks that together cover [0, n), in
  // parallel, and returns when all are done. Chunks are handed out on demand;
  // each has at least min_chunk items (unless n itself is smaller) and there
  // are several per thread for load balance, but none above 16 * min_chunk
  // items. The calling thread takes part. Runs on the caller alone when there
  // is one chunk (n < 2 * min_chunk), when the pool has a single thread or in
  // a child process forked after the pool was created, and in one piece when
  // called from inside a body (of any pool). Concurrent calls from several
  // threads are serialised. If a body throws, the remaining chunks are skipped
  // and the first exception is rethrown here once every running chunk has
  // finished.
  // The calling thread polls host_interrupt_requested() every 20 ms (between
  // its chunks, and while it waits): when it is true, no further chunk starts
  // and Interrupted is thrown once the running ones finish.
  void parallel_for(uint64_t n, uint64_t min_chunk, const std::function<void(uint64_t, uint64_t)>& body);

  // For bodies whose chunks may run long: true when the current parallel_for
  // should stop (a body failed, or, polled here on the calling thread, the
  // host asked to stop). The body may then return early; the items it skips
  // are not run. False outside a parallel_for.
  static bool stop_requested();

 private:
  struct State;
  unsigned size_;
  std::unique_ptr<State> state_;
};

}  // namespace enigma
