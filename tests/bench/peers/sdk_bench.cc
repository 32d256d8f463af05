// sdk_bench.cc - the cost of one TRACE_EVENT scope (slice begin + end)
// with Perfetto's C++ SDK, to set libtracebpf's numbers against in the same
// run. Built by scripts/bench.sh only when TB_BENCH_PERFETTO_SDK names a
// directory holding the SDK amalgamation (perfetto.h, perfetto.cc) built
// outside this repository; nothing of the SDK is part of traced-bpf.
//
//   sdk_bench [scopes-per-repeat] [repeats]     (default 1000000 7)
//
// Backend: the SDK's in-process one (its own service and shared memory in
// this process, a session enabling only the "bench" category). The app
// thread's path - category check, TrackEvent encoding into its
// TraceWriter's chunk - is the same code as with the system backend; only
// who reads the chunks differs. Cost is the calling thread's CPU time
// (CLOCK_THREAD_CPUTIME_ID), as in lib_bench. The last line is
// "key=value" pairs for tests/bench/peers/user_table.py:
//
//   scope_ns=<median> scope_ns_min=<min> disabled_ns=<median> repeats=<n>
#include "perfetto.h"

#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

PERFETTO_DEFINE_CATEGORIES(perfetto::Category("bench").SetDescription("recorded"),
                           perfetto::Category("bench.off").SetDescription("never recorded"));

PERFETTO_TRACK_EVENT_STATIC_STORAGE();

namespace {

uint64_t ThreadCpuNs() {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

// Kept out of line so the loop is the same shape as lib_bench's.
__attribute__((noinline)) double Scopes(long n, bool on) {
  uint64_t t0 = ThreadCpuNs();
  if (on) {
    for (long i = 0; i < n; i++) {
      TRACE_EVENT("bench", "slice");
    }
  } else {
    for (long i = 0; i < n; i++) {
      TRACE_EVENT("bench.off", "slice");
    }
  }
  return static_cast<double>(ThreadCpuNs() - t0) / static_cast<double>(n);
}

std::unique_ptr<perfetto::TracingSession> StartSession() {
  perfetto::TraceConfig cfg;
  // Ring buffer: the run outlasts any size; what is kept does not matter.
  auto* buf = cfg.add_buffers();
  buf->set_size_kb(16 * 1024);
  buf->set_fill_policy(perfetto::TraceConfig::BufferConfig::RING_BUFFER);
  auto* ds = cfg.add_data_sources()->mutable_config();
  ds->set_name("track_event");
  perfetto::protos::gen::TrackEventConfig te;
  te.add_disabled_categories("*");
  te.add_enabled_categories("bench");
  ds->set_track_event_config_raw(te.SerializeAsString());
  auto s = perfetto::Tracing::NewTrace(perfetto::kInProcessBackend);
  s->Setup(cfg);
  s->StartBlocking();
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  long n = argc > 1 ? atol(argv[1]) : 1000000;
  int repeats = argc > 2 ? atoi(argv[2]) : 7;
  std::vector<double> on, off;

  if (n <= 0 || repeats <= 0) {
    std::fprintf(stderr, "usage: sdk_bench [scopes-per-repeat] [repeats]\n");
    return 2;
  }
  perfetto::TracingInitArgs args;
  args.backends = perfetto::kInProcessBackend;
  perfetto::Tracing::Initialize(args);
  perfetto::TrackEvent::Register();
  auto session = StartSession();
  if (!TRACE_EVENT_CATEGORY_ENABLED("bench")) {
    std::fprintf(stderr, "sdk_bench: the session did not enable category bench\n");
    return 1;
  }
  Scopes(n / 10 + 1, true);  // interning, first chunks
  for (int r = 0; r < repeats; r++) {
    on.push_back(Scopes(n, true));
    off.push_back(Scopes(n, false));
    perfetto::TrackEvent::Flush();
  }
  session->StopBlocking();
  std::sort(on.begin(), on.end());
  std::sort(off.begin(), off.end());
  std::printf("Perfetto SDK, in-process backend, TRACE_EVENT scope, thread CPU ns\n");
  std::printf("enabled: min %.1f median %.1f max %.1f; disabled median %.2f\n", on.front(),
              on[on.size() / 2], on.back(), off[off.size() / 2]);
  std::printf("scope_ns=%.2f scope_ns_min=%.2f disabled_ns=%.3f repeats=%d\n", on[on.size() / 2],
              on.front(), off[off.size() / 2], repeats);
  return 0;
}
