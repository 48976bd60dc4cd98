#include "enigma/runtime/thread_pool.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "enigma/support/error.h"
#include "enigma/support/host.h"

namespace enigma {

namespace {

// Iterations a worker polls for the next job before sleeping: back-to-back
// launches then skip the condition-variable wake-up, while an idle pool
// sleeps after a few microseconds.
constexpr int kSpinIterations = 2000;
// Chunks per thread: enough for uneven chunks to balance out, few enough to
// keep the shared counter cold.
constexpr uint64_t kChunksPerThread = 4;
constexpr unsigned long kMaxThreads = 4096;
// A chunk holds at most this many times min_chunk items, so the pool reaches
// a chunk boundary (where an interrupt stops it) every few milliseconds even
// on grids of billions of threads.
constexpr uint64_t kMaxChunkFactor = 16;
// How often the calling thread asks the host whether to stop (Ctrl-C); the
// first check comes after one interval, so short launches never ask.
constexpr auto kInterruptPollInterval = std::chrono::milliseconds(20);

// Polls host_interrupt_requested() at most once per interval.
class InterruptPoller {
 public:
  InterruptPoller() : next_(std::chrono::steady_clock::now() + kInterruptPollInterval) {}
  bool requested() {
    auto now = std::chrono::steady_clock::now();
    if (now < next_) return false;
    next_ = now + kInterruptPollInterval;
    return host_interrupt_requested();
  }

 private:
  std::chrono::steady_clock::time_point next_;
};

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
  asm volatile("yield");
#endif
}

// True while this thread runs a parallel_for body; nested calls then run
// inline instead of waiting for workers that may all be busy (deadlock).
thread_local bool t_inside_body = false;

class InsideBody {
 public:
  InsideBody() : saved_(t_inside_body) { t_inside_body = true; }
  ~InsideBody() { t_inside_body = saved_; }
  InsideBody(const InsideBody&) = delete;
  InsideBody& operator=(const InsideBody&) = delete;

 private:
  bool saved_;
};

}  // namespace

struct ThreadPool::State {
  struct Job {
    const std::function<void(uint64_t, uint64_t)>* body = nullptr;
    uint64_t n = 0;
    uint64_t chunk = 0;       // items per chunk; the last one also takes the remainder
    uint64_t num_chunks = 0;  // >= 2
    std::atomic<uint64_t> next_chunk{0};
    std::atomic<bool> failed{false};
    std::mutex error_mutex;
    std::exception_ptr error;
  };

  std::mutex submit_mutex;  // one parallel_for at a time
  std::mutex mutex;         // guards job, active, and generation changes
  std::condition_variable wake;
  std::condition_variable done;
  std::atomic<uint64_t> generation{0};  // bumped per job; read lock-free while spinning
  std::atomic<bool> stop{false};
  Job* job = nullptr;   // the current job, null once its caller stops accepting helpers
  unsigned active = 0;  // workers inside the current job
  std::vector<std::thread> threads;
  // A forked child inherits the pool's memory but none of its threads, so the
  // pool notices fork by comparing pids.
  pid_t owner_pid = ::getpid();

  // The job this thread runs chunks of, and (on the calling thread) its
  // interrupt poller: what stop_requested() consults.
  static thread_local Job* t_job;
  static thread_local InterruptPoller* t_poller;

  static void fail(Job& job, std::exception_ptr error) {
    std::lock_guard<std::mutex> lock(job.error_mutex);
    if (!job.error) job.error = std::move(error);
    job.failed.store(true, std::memory_order_relaxed);
  }

  // Runs chunks until none is left or the job failed. The calling thread
  // passes its poller and stops the job when the host asks to (Ctrl-C).
  static void run_chunks(Job& job, InterruptPoller* poller = nullptr) {
    InsideBody guard;
    Job* saved_job = t_job;
    InterruptPoller* saved_poller = t_poller;
    t_job = &job;
    t_poller = poller;
    struct Restore {
      Job* job;
      InterruptPoller* poller;
      ~Restore() {
        t_job = job;
        t_poller = poller;
      }
    } restore{saved_job, saved_poller};
    for (;;) {
      uint64_t index = job.next_chunk.fetch_add(1, std::memory_order_relaxed);
      if (index >= job.num_chunks || job.failed.load(std::memory_order_relaxed)) return;
      uint64_t begin = index * job.chunk;
      uint64_t end = (index + 1 == job.num_chunks) ? job.n : begin + job.chunk;
      try {
        (*job.body)(begin, end);
        if (poller && poller->requested()) throw Interrupted();
      } catch (...) {
        fail(job, std::current_exception());
        return;
      }
    }
  }

  void worker_loop() {
    uint64_t seen = 0;
    for (;;) {
      for (int i = 0; i < kSpinIterations; ++i) {
        if (generation.load(std::memory_order_acquire) != seen || stop.load(std::memory_order_relaxed)) break;
        cpu_relax();
      }
      std::unique_lock<std::mutex> lock(mutex);
      wake.wait(lock, [&] { return stop.load(std::memory_order_relaxed) || generation.load() != seen; });
      if (stop.load(std::memory_order_relaxed)) return;
      seen = generation.load();
      Job* current = job;
      if (current == nullptr) continue;  // woke too late: that job is already finished
      ++active;
      lock.unlock();
      run_chunks(*current);
      lock.lock();
      if (--active == 0) done.notify_all();
    }
  }
};

thread_local ThreadPool::State::Job* ThreadPool::State::t_job = nullptr;
thread_local InterruptPoller* ThreadPool::State::t_poller = nullptr;

bool ThreadPool::stop_requested() {
  State::Job* job = State::t_job;
  if (job == nullptr) return false;
  if (State::t_poller && !job->failed.load(std::memory_order_relaxed) && State::t_poller->requested())
    State::fail(*job, std::make_exception_ptr(Interrupted()));
  return job->failed.load(std::memory_order_relaxed);
}

unsigned ThreadPool::default_size() {
  const char* env = std::getenv("ENIGMA_NUM_THREADS");
  if (env != nullptr && *env != '\0') {
    std::string text(env);
    errno = 0;
    unsigned long value = std::strtoul(text.c_str(), nullptr, 10);
    bool digits_only = !text.empty() && text.find_first_not_of("0123456789") == std::string::npos;
    if (!digits_only || errno != 0 || value < 1 || value > kMaxThreads) {
      throw RuntimeError("ENIGMA_NUM_THREADS must be a whole number from 1 to " + std::to_string(kMaxThreads) +
                         ", got '" + text + "'");
    }
    return static_cast<unsigned>(value);
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

ThreadPool& ThreadPool::instance() {
  static ThreadPool pool(default_size());
  return pool;
}

ThreadPool::ThreadPool(unsigned num_threads) : size_(num_threads), state_(std::make_unique<State>()) {
  if (num_threads < 1) throw RuntimeError("a thread pool needs at least 1 thread, got 0");
  try {
    state_->threads.reserve(num_threads - 1);
    for (unsigned i = 1; i < num_threads; ++i) state_->threads.emplace_back([s = state_.get()] { s->worker_loop(); });
  } catch (const std::system_error& e) {
    {
      std::lock_guard<std::mutex> lock(state_->mutex);
      state_->stop.store(true);
    }
    state_->wake.notify_all();
    for (auto& t : state_->threads) t.join();
    throw RuntimeError("cannot start " + std::to_string(num_threads - 1) + " worker threads: " + e.what());
  }
}

ThreadPool::~ThreadPool() {
  if (::getpid() != state_->owner_pid) {
    // Forked child (e.g. a process exiting after os.fork()): the workers do not
    // exist here, and joining them or destroying the condition variables they
    // waited on would hang. Leak the state instead.
    static_cast<void>(state_.release());
    return;
  }
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    state_->stop.store(true);
  }
  state_->wake.notify_all();
  for (auto& t : state_->threads) t.join();
}

void ThreadPool::parallel_for(uint64_t n, uint64_t min_chunk, const std::function<void(uint64_t, uint64_t)>& body) {
  if (n == 0) return;
  min_chunk = std::max<uint64_t>(min_chunk, 1);
  const uint64_t max_chunk = min_chunk > UINT64_MAX / kMaxChunkFactor ? min_chunk : min_chunk * kMaxChunkFactor;
  const uint64_t chunk = std::clamp(n / (uint64_t(size_) * kChunksPerThread), min_chunk, max_chunk);
  // Rounding down means the last chunk absorbs the remainder, so none is
  // smaller than min_chunk.
  const uint64_t num_chunks = std::max<uint64_t>(1, n / chunk);
  if (t_inside_body) {
    InsideBody guard;
    body(0, n);
    return;
  }
  State& s = *state_;
  State::Job job;
  job.body = &body;
  job.n = n;
  job.chunk = chunk;
  job.num_chunks = num_chunks;
  InterruptPoller poller;
  // One chunk, a single thread, or a forked child (whose workers are gone and
  // whose copies of the pool's locks may be held): the caller runs alone.
  if (num_chunks < 2 || size_ == 1 || ::getpid() != s.owner_pid) {
    State::run_chunks(job, &poller);
    if (job.error) std::rethrow_exception(job.error);
    return;
  }

  std::lock_guard<std::mutex> submit(s.submit_mutex);
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    s.job = &job;
    s.generation.fetch_add(1, std::memory_order_release);
  }
  s.wake.notify_all();

  State::run_chunks(job, &poller);

  {
    // Nothing is left to claim (or a body failed): stop admitting helpers and
    // wait for those still running a chunk, still answering an interrupt.
    // `job` lives on this stack, so nobody may touch it after we return.
    std::unique_lock<std::mutex> lock(s.mutex);
    s.job = nullptr;
    while (!s.done.wait_for(lock, kInterruptPollInterval, [&] { return s.active == 0; })) {
      lock.unlock();
      if (!job.failed.load(std::memory_order_relaxed) && poller.requested())
        State::fail(job, std::make_exception_ptr(Interrupted()));
      lock.lock();
    }
  }
  if (job.error) std::rethrow_exception(job.error);
}

}  // namespace enigma
