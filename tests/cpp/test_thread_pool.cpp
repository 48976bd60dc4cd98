#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "enigma/runtime/thread_pool.h"
#include "enigma/support/error.h"
#include "enigma/support/host.h"
#include "test_support.h"

using enigma::ThreadPool;

namespace {

using enigma::test::ScopedEnv;

// Runs one parallel_for and checks that the chunks partition [0, n) and
// respect min_chunk.
void check_partition(ThreadPool& pool, uint64_t n, uint64_t min_chunk) {
  std::vector<std::atomic<int>> visits(n);
  std::atomic<uint64_t> sum{0};
  std::atomic<uint64_t> smallest_chunk{UINT64_MAX};
  pool.parallel_for(n, min_chunk, [&](uint64_t begin, uint64_t end) {
    ASSERT_LT(begin, end);
    ASSERT_LE(end, n);
    uint64_t local = 0;
    for (uint64_t i = begin; i < end; ++i) {
      visits[i].fetch_add(1);
      local += i;
    }
    sum += local;
    uint64_t size = end - begin;
    uint64_t prev = smallest_chunk.load();
    while (size < prev && !smallest_chunk.compare_exchange_weak(prev, size)) {}
  });
  EXPECT_EQ(sum.load(), n == 0 ? 0 : n * (n - 1) / 2) << "n=" << n << " min_chunk=" << min_chunk;
  for (uint64_t i = 0; i < n; ++i) { ASSERT_EQ(visits[i].load(), 1) << "index " << i << " n=" << n; }
  if (n > 0) { EXPECT_GE(smallest_chunk.load(), std::min(n, std::max<uint64_t>(min_chunk, 1))) << "n=" << n; }
}

}  // namespace

TEST(ThreadPool, PartitionsRangesForManySizes) {
  for (unsigned threads : {1u, 2u, 7u}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.size(), threads);
    for (uint64_t n : {0, 1, 2, 3, 7, 10, 63, 100, 1000, 4097, 12345, 100000}) {
      for (uint64_t min_chunk : {0, 1, 3, 16, 1000}) check_partition(pool, n, min_chunk);
    }
  }
}

TEST(ThreadPool, UsesSeveralThreads) {
  ThreadPool pool(4);
  std::mutex mutex;
  std::vector<std::thread::id> ids;
  // Slow chunks so the workers wake up before the caller has done them all.
  pool.parallel_for(64, 1, [&](uint64_t, uint64_t) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    std::lock_guard<std::mutex> lock(mutex);
    ids.push_back(std::this_thread::get_id());
  });
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  EXPECT_GT(ids.size(), 1u);
}

TEST(ThreadPool, SmallRangeRunsInlineOnCaller) {
  ThreadPool pool(4);
  const auto caller = std::this_thread::get_id();
  int calls = 0;
  pool.parallel_for(10, 10, [&](uint64_t begin, uint64_t end) {
    EXPECT_EQ(std::this_thread::get_id(), caller);
    EXPECT_EQ(begin, 0u);
    EXPECT_EQ(end, 10u);
    ++calls;
  });
  EXPECT_EQ(calls, 1);
}

TEST(ThreadPool, NestedCallRunsInline) {
  ThreadPool pool(4);
  std::atomic<uint64_t> total{0};
  std::atomic<int> wrong_thread{0};
  pool.parallel_for(16, 1, [&](uint64_t begin, uint64_t end) {
    for (uint64_t i = begin; i < end; ++i) {
      const auto outer = std::this_thread::get_id();
      pool.parallel_for(100, 1, [&](uint64_t b, uint64_t e) {
        if (std::this_thread::get_id() != outer) ++wrong_thread;
        total += e - b;
      });
    }
  });
  EXPECT_EQ(total.load(), 1600u);
  EXPECT_EQ(wrong_thread.load(), 0);
}

TEST(ThreadPool, NestedAcrossPoolsDoesNotDeadlock) {
  ThreadPool a(3), b(3);
  std::atomic<uint64_t> total{0};
  a.parallel_for(8, 1, [&](uint64_t begin, uint64_t end) {
    for (uint64_t i = begin; i < end; ++i) {
      b.parallel_for(8, 1, [&](uint64_t b_begin, uint64_t b_end) {
        for (uint64_t j = b_begin; j < b_end; ++j) {
          a.parallel_for(8, 1, [&](uint64_t a_begin, uint64_t a_end) { total += a_end - a_begin; });
        }
      });
    }
  });
  EXPECT_EQ(total.load(), 8u * 8u * 8u);
}

TEST(ThreadPool, ConcurrentCallers) {
  ThreadPool pool(3);
  std::atomic<int> failures{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < 4; ++t) {
    callers.emplace_back([&, t] {
      for (int round = 0; round < 200; ++round) {
        const uint64_t n = 500 + uint64_t(t) * 37 + uint64_t(round);
        std::atomic<uint64_t> sum{0};
        pool.parallel_for(n, 1, [&](uint64_t begin, uint64_t end) {
          uint64_t local = 0;
          for (uint64_t i = begin; i < end; ++i) local += i;
          sum += local;
        });
        if (sum.load() != n * (n - 1) / 2) ++failures;
      }
    });
  }
  for (auto& c : callers) c.join();
  EXPECT_EQ(failures.load(), 0);
}

TEST(ThreadPool, PropagatesFirstException) {
  ThreadPool pool(4);
  std::atomic<uint64_t> ran{0};
  try {
    pool.parallel_for(1000, 1, [&](uint64_t begin, uint64_t end) {
      ran += end - begin;
      if (begin <= 500 && 500 < end) throw std::out_of_range("chunk with 500 failed");
    });
    FAIL() << "expected an exception";
  } catch (const std::out_of_range& e) { EXPECT_STREQ(e.what(), "chunk with 500 failed"); }
  EXPECT_LE(ran.load(), 1000u);

  // Every chunk throwing: exactly one exception comes out.
  EXPECT_THROW(pool.parallel_for(1000, 1, [](uint64_t, uint64_t) { throw std::runtime_error("all fail"); }),
               std::runtime_error);

  // The pool is still usable afterwards.
  check_partition(pool, 10000, 1);
}

TEST(ThreadPool, InlineExceptionPropagates) {
  ThreadPool pool(2);
  EXPECT_THROW(pool.parallel_for(1, 1, [](uint64_t, uint64_t) { throw std::logic_error("inline"); }), std::logic_error);
}

TEST(ThreadPool, ManyTinyJobs) {
  ThreadPool pool(4);
  const auto start = std::chrono::steady_clock::now();
  uint64_t total = 0;
  for (int i = 0; i < 10000; ++i) {
    std::atomic<uint64_t> count{0};
    pool.parallel_for(64, 1, [&](uint64_t begin, uint64_t end) { count += end - begin; });
    total += count.load();
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(total, 640000u);
  EXPECT_LT(seconds, 10.0);
}

TEST(ThreadPool, ConstructionAndDestructionRepeatedly) {
  for (int i = 0; i < 50; ++i) {
    ThreadPool pool(3);
    check_partition(pool, 100, 1);
  }
  EXPECT_THROW(ThreadPool(0), enigma::RuntimeError);
}

TEST(ThreadPool, DefaultSizeHonoursEnvironment) {
  {
    ScopedEnv env("ENIGMA_NUM_THREADS", "3");
    EXPECT_EQ(ThreadPool::default_size(), 3u);
  }
  {
    ScopedEnv env("ENIGMA_NUM_THREADS", nullptr);
    EXPECT_GE(ThreadPool::default_size(), 1u);
  }
  {
    ScopedEnv env("ENIGMA_NUM_THREADS", "");  // empty counts as unset
    EXPECT_GE(ThreadPool::default_size(), 1u);
  }
  for (const char* bad : {"0", " 2", "-2", "four", "3x", "99999999999999999999"}) {
    ScopedEnv env("ENIGMA_NUM_THREADS", bad);
    try {
      ThreadPool::default_size();
      ADD_FAILURE() << "no error for '" << bad << "'";
    } catch (const enigma::RuntimeError& e) {
      EXPECT_NE(std::string(e.what()).find("ENIGMA_NUM_THREADS"), std::string::npos);
    }
  }
  EXPECT_GE(ThreadPool::instance().size(), 1u);
  EXPECT_EQ(&ThreadPool::instance(), &ThreadPool::instance());
}

TEST(ThreadPool, UsableAndDestructibleInForkedChild) {
  auto pool = std::make_unique<ThreadPool>(3);
  check_partition(*pool, 1000, 1);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // Child: the workers are gone; the pool must still work and tear down.
    std::atomic<uint64_t> sum{0};
    pool->parallel_for(1000, 1, [&](uint64_t begin, uint64_t end) {
      for (uint64_t i = begin; i < end; ++i) sum += i;
    });
    pool.reset();
    ::_exit(sum.load() == 999u * 1000u / 2 ? 0 : 1);
  }
  int status = 0;
  bool exited = false;
  for (int i = 0; i < 1000 && !exited; ++i) {  // up to 10 s
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    ASSERT_GE(r, 0);
    exited = r == pid;
    if (!exited) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (!exited) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
    FAIL() << "forked child hung";
  }
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  check_partition(*pool, 1000, 1);  // the parent's pool is unaffected
}

// ---- interrupts (Ctrl-C) ------------------------------------------------------

namespace {
std::atomic<int> g_polls{0};
std::atomic<int> g_stop_after{0};
// A host that asks to stop from its g_stop_after-th poll on.
bool stop_after_some_polls() { return ++g_polls >= g_stop_after.load(); }

class InterruptHook {
 public:
  explicit InterruptHook(int stop_after) {
    g_polls = 0;
    g_stop_after = stop_after;
    enigma::set_interrupt_hook(&stop_after_some_polls);
  }
  ~InterruptHook() { enigma::set_interrupt_hook(nullptr); }
};
}  // namespace

TEST(ThreadPool, InterruptStopsBetweenChunksAndThePoolStaysUsable) {
  for (unsigned threads : {1u, 3u}) {
    ThreadPool pool(threads);
    std::atomic<uint64_t> done{0};
    {
      InterruptHook hook(1);  // the first poll (after 20 ms) says stop
      EXPECT_THROW(pool.parallel_for(100000, 1,
                                     [&](uint64_t b, uint64_t e) {
                                       std::this_thread::sleep_for(std::chrono::milliseconds(5));
                                       done += e - b;
                                     }),
                   enigma::Interrupted)
          << threads;
    }
    EXPECT_GT(done.load(), 0u);
    EXPECT_LT(done.load(), 100000u) << "the remaining chunks must not run";
    std::atomic<uint64_t> total{0};
    pool.parallel_for(1000, 1, [&](uint64_t b, uint64_t e) { total += e - b; });
    EXPECT_EQ(total.load(), 1000u);
  }
}

TEST(ThreadPool, LongBodiesSeeStopRequested) {
  ThreadPool pool(2);
  EXPECT_FALSE(ThreadPool::stop_requested()) << "outside a parallel_for";
  InterruptHook hook(1);
  std::atomic<bool> saw_stop{false};
  // One chunk that would take an hour unless it asks.
  EXPECT_THROW(pool.parallel_for(1, 1,
                                 [&](uint64_t, uint64_t) {
                                   for (int i = 0; i < 360000; ++i) {
                                     if (ThreadPool::stop_requested()) {
                                       saw_stop = true;
                                       return;
                                     }
                                     std::this_thread::sleep_for(std::chrono::milliseconds(10));
                                   }
                                 }),
               enigma::Interrupted);
  EXPECT_TRUE(saw_stop.load());
}
