/* Host-thread cost of the C ABI, driven by examples/bench (cargo run --release --example bench).
 *
 *   bench_c submit     URL   submit GET_ACCOUNT / SET_API_ID, idle poll(), per-callback poll()
 *   bench_c stall      URL   the longest single poll() with 10,000 results ready, with and without max
 *   bench_c memory     URL   resident growth per 10,000 requests queued behind the default pacing
 *   bench_c inflight   URL   resident growth per 10,000 requests on the wire (a hanging emulator)
 *
 * The community id and API key come from SONORAN_BENCH_COMMUNITY / SONORAN_BENCH_KEY. Each
 * figure is printed as one JSON line: {"metric":..., "unit":..., "n":..., "median":..., ...}.
 * Every loop is bounded in count and in time. Only the header is used. */
#define _POSIX_C_SOURCE 200809L
#include "sonoran.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* CPU time of this thread: what a poll() costs without the time the machine gave to others. */
static uint64_t cpu_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median, p99, min, max of samples (sorted in place), printed as one JSON line. */
static void report(const char *metric, const char *unit, double *v, size_t n) {
    if (n == 0) {
        printf("{\"metric\":\"%s\",\"unit\":\"%s\",\"n\":0}\n", metric, unit);
        return;
    }
    qsort(v, n, sizeof v[0], cmp_double);
    size_t p99 = (size_t)((double)(n - 1) * 0.99 + 0.5);
    printf("{\"metric\":\"%s\",\"unit\":\"%s\",\"n\":%zu,\"median\":%.3f,\"p99\":%.3f,\"min\":%.3f,\"max\":%.3f}\n",
           metric, unit, n, v[(n - 1) / 2], v[p99], v[0], v[n - 1]);
    fflush(stdout);
}

static void value(const char *metric, const char *unit, double x) {
    printf("{\"metric\":\"%s\",\"unit\":\"%s\",\"n\":1,\"median\":%.3f,\"p99\":%.3f,\"min\":%.3f,\"max\":%.3f}\n",
           metric, unit, x, x, x, x);
    fflush(stdout);
}

static uint64_t delivered;
static size_t result_bytes;

static void on_result(void *user_data, uint64_t id, const char *result_json) {
    (void)user_data;
    (void)id;
    delivered++;
    result_bytes += strlen(result_json); /* touch the result, as a host would */
}

static const char *url;

static sonoran_client *client(const char *rate_limits) {
    const char *community = getenv("SONORAN_BENCH_COMMUNITY");
    const char *key = getenv("SONORAN_BENCH_KEY");
    if (!community || !key) {
        fprintf(stderr, "bench_c: SONORAN_BENCH_COMMUNITY and SONORAN_BENCH_KEY must be set\n");
        exit(2);
    }
    char config[1024];
    int len = snprintf(config, sizeof config,
                       "{\"community_id\":\"%s\",\"api_key\":\"%s\",\"api_url\":\"%s\","
                       "\"rate_limits\":%s,\"timeout_ms\":60000}",
                       community, key, url, rate_limits);
    if (len < 0 || (size_t)len >= sizeof config) {
        fprintf(stderr, "bench_c: configuration too long\n");
        exit(2);
    }
    sonoran_client *c = sonoran_client_new(config);
    memset(config, 0, sizeof config);
    if (!c) {
        fprintf(stderr, "bench_c: client refused: %s\n", sonoran_last_error());
        exit(1);
    }
    return c;
}

#define UNPACED "{\"global\":null}"

/* Poll until nothing is pending (bounded: 60 s). */
static void drain(sonoran_client *c) {
    uint64_t start = now_ns();
    while (sonoran_pending(c) > 0) {
        sonoran_poll(c, 0);
        if (now_ns() - start > 60000000000ull) {
            fprintf(stderr, "bench_c: %u requests still pending after 60 s\n", sonoran_pending(c));
            exit(1);
        }
        sleep_ms(1);
    }
}

/* Wait until `n` requests have completed OK on the library side (their callbacks not yet run),
 * by the stats' completion counter (bounded: 60 s). */
static void wait_completed(sonoran_client *c, unsigned n) {
    char needle[64];
    snprintf(needle, sizeof needle, "\"OK\":%u", n);
    uint64_t start = now_ns();
    for (;;) {
        char *s = sonoran_stats(c);
        int done = s && strstr(s, needle) != NULL;
        sonoran_string_free(s);
        if (done) return;
        if (now_ns() - start > 60000000000ull) {
            fprintf(stderr, "bench_c: %u results not ready after 60 s\n", n);
            exit(1);
        }
        sleep_ms(5);
    }
}

typedef uint64_t (*submit_fn)(sonoran_client *, const char *, sonoran_callback, void *);

static const char *GET_ACCOUNT = "{\"username\":\"SonoranBrian\"}";
static const char *SET_API_ID = "{\"username\":\"OfficerJones\",\"apiIds\":[\"110000100000001\"]}";

/* Submit cost per call: ROUNDS rounds of BATCH calls, each call timed alone; the results are
 * drained between rounds so the pending set stays under max_pending. */
static void bench_submit(const char *metric, submit_fn f, const char *data) {
    enum { ROUNDS = 20, BATCH = 1000 };
    static double ns[ROUNDS * BATCH];
    size_t n = 0;
    sonoran_client *c = client(UNPACED);
    for (int r = 0; r < ROUNDS; r++) {
        for (int i = 0; i < BATCH; i++) {
            uint64_t t0 = now_ns();
            uint64_t id = f(c, data, on_result, NULL);
            uint64_t t1 = now_ns();
            if (id == 0) {
                fprintf(stderr, "bench_c: refused: %s\n", sonoran_last_error());
                exit(1);
            }
            ns[n++] = (double)(t1 - t0);
        }
        drain(c);
    }
    sonoran_client_free(c);
    report(metric, "ns", ns, n);
}

/* The cost of reading the clock twice, to read the per-call figures against. */
static void bench_clock(void) {
    enum { N = 100000 };
    static double ns[N];
    for (int i = 0; i < N; i++) {
        uint64_t t0 = now_ns();
        uint64_t t1 = now_ns();
        ns[i] = (double)(t1 - t0);
    }
    report("c_clock_overhead", "ns", ns, N);
}

/* poll() with nothing ready: batches of 100 calls, the per-call average of each batch. */
static void bench_idle_poll(void) {
    enum { BATCHES = 10000, PER = 100 };
    static double ns[BATCHES];
    sonoran_client *c = client(UNPACED);
    uint32_t ran = 0;
    for (int b = 0; b < BATCHES; b++) {
        uint64_t t0 = now_ns();
        for (int i = 0; i < PER; i++) ran += sonoran_poll(c, 0);
        uint64_t t1 = now_ns();
        ns[b] = (double)(t1 - t0) / PER;
    }
    if (ran != 0) fprintf(stderr, "bench_c: idle poll ran %u callbacks\n", ran);
    sonoran_client_free(c);
    report("c_poll_idle", "ns", ns, BATCHES);
}

/* 10,000 results ready: one poll(0) (the whole stall), then again with poll(100), timing
 * each call; REPS times, a fresh client each. */
static void bench_stall(void) {
    enum { N = 10000, REPS = 5, MAX = 100 };
    double per_cb[REPS], per_cb_cpu[REPS], stall_all[REPS], stall_max[REPS], stall_max_cpu[REPS];
    static double slices[REPS * (N / MAX)], slices_cpu[REPS * (N / MAX)];
    size_t nslices = 0;
    for (int rep = 0; rep < REPS; rep++) {
        for (int with_max = 0; with_max <= 1; with_max++) {
            sonoran_client *c = client(UNPACED);
            for (int i = 0; i < N; i++) {
                if (sonoran_get_account(c, GET_ACCOUNT, on_result, NULL) == 0) {
                    fprintf(stderr, "bench_c: refused: %s\n", sonoran_last_error());
                    exit(1);
                }
            }
            wait_completed(c, N);
            delivered = 0;
            if (!with_max) {
                uint64_t c0 = cpu_ns(), t0 = now_ns();
                uint32_t ran = sonoran_poll(c, 0);
                uint64_t t1 = now_ns(), c1 = cpu_ns();
                if (ran != N) fprintf(stderr, "bench_c: poll(0) ran %u of %d\n", ran, N);
                stall_all[rep] = (double)(t1 - t0) / 1000.0;
                per_cb[rep] = (double)(t1 - t0) / ran;
                per_cb_cpu[rep] = (double)(c1 - c0) / ran;
            } else {
                double worst = 0, worst_cpu = 0;
                uint32_t total = 0;
                for (int k = 0; k < N / MAX + 1 && total < N; k++) {
                    uint64_t c0 = cpu_ns(), t0 = now_ns();
                    uint32_t ran = sonoran_poll(c, MAX);
                    uint64_t t1 = now_ns(), c1 = cpu_ns();
                    total += ran;
                    double us = (double)(t1 - t0) / 1000.0, cpu = (double)(c1 - c0) / 1000.0;
                    if (ran == MAX) {
                        slices_cpu[nslices] = cpu;
                        slices[nslices++] = us;
                    }
                    if (getenv("BENCH_TRACE") && us > atof(getenv("BENCH_TRACE"))) fprintf(stderr, "slice %d: %.0f us (cpu %.0f us)\n", k, us, cpu);
                    if (us > worst) worst = us;
                    if (cpu > worst_cpu) worst_cpu = cpu;
                }
                stall_max[rep] = worst;
                stall_max_cpu[rep] = worst_cpu;
            }
            drain(c);
            sonoran_client_free(c);
        }
    }
    report("c_poll_per_callback", "ns", per_cb, REPS);
    report("c_poll_per_callback_cpu", "ns", per_cb_cpu, REPS);
    report("c_stall_poll_all_10000", "us", stall_all, REPS);
    report("c_stall_poll_max100_longest", "us", stall_max, REPS);
    report("c_stall_poll_max100_longest_cpu", "us", stall_max_cpu, REPS);
    report("c_stall_poll_max100_each", "us", slices, nslices);
    report("c_stall_poll_max100_each_cpu", "us", slices_cpu, nslices);
}

static long rss_kib(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, resident = 0;
    if (!f) return -1;
    if (fscanf(f, "%ld %ld", &size, &resident) != 2) resident = -1;
    fclose(f);
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* Resident growth while 10,000 requests are pending: queued behind the default pacing
 * (`queued`), or all on the wire to an emulator that never answers (`inflight`). */
static void bench_memory(int inflight) {
    enum { N = 10000 };
    sonoran_client *c = client(inflight ? UNPACED : "{\"global\":{\"per_second\":1,\"burst\":5}}");
    /* Warm up: one request through, so the runtime, the connection pool and the allocator's
     * arenas exist before the baseline is read. */
    if (!inflight) {
        sonoran_get_account(c, GET_ACCOUNT, on_result, NULL);
        drain(c);
    }
    sleep_ms(200);
    long before = rss_kib();
    for (int i = 0; i < N; i++) {
        if (sonoran_get_account(c, GET_ACCOUNT, on_result, NULL) == 0) {
            fprintf(stderr, "bench_c: refused: %s\n", sonoran_last_error());
            exit(1);
        }
    }
    /* Let every request reach where it waits: the limiter's queue, or the wire. */
    uint64_t start = now_ns();
    const char *needle = inflight ? "\"in_flight\":10000," : "\"waiting_for_limiter\":";
    for (;;) {
        char *s = sonoran_stats(c);
        int done = 0;
        if (s && inflight) done = strstr(s, needle) != NULL;
        if (s && !inflight) {
            const char *w = strstr(s, needle);
            done = w && atol(w + strlen(needle)) >= N - 10;
        }
        sonoran_string_free(s);
        if (done || now_ns() - start > 30000000000ull) break;
        sleep_ms(50);
    }
    sleep_ms(200);
    long after = rss_kib();
    char *s = sonoran_stats(c);
    if (s) {
        const char *q = strstr(s, inflight ? "\"in_flight\":" : "\"waiting_for_limiter\":");
        fprintf(stderr, "bench_c: %s\n", q ? q : s);
    }
    sonoran_string_free(s);
    unsigned pending = sonoran_pending(c);
    delivered = 0;
    sonoran_client_free(c); /* completes every pending request (SHUTDOWN) and runs its callback */
    if (delivered != pending)
        fprintf(stderr, "bench_c: %u pending but %llu callbacks ran at free\n", pending,
                (unsigned long long)delivered);
    const char *metric = inflight ? "c_memory_inflight_per_request" : "c_memory_queued_per_request";
    value(metric, "bytes", (double)(after - before) * 1024.0 / N);
    value(inflight ? "c_memory_inflight_rss_growth" : "c_memory_queued_rss_growth", "KiB", (double)(after - before));
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: bench_c submit|stall|memory|inflight URL\n");
        return 2;
    }
    url = argv[2];
    if (strcmp(argv[1], "submit") == 0) {
        bench_clock();
        bench_submit("c_submit_get_account", sonoran_get_account, GET_ACCOUNT);
        bench_submit("c_submit_set_api_id", sonoran_set_api_id, SET_API_ID);
        bench_idle_poll();
    } else if (strcmp(argv[1], "stall") == 0) {
        bench_stall();
    } else if (strcmp(argv[1], "memory") == 0) {
        bench_memory(0);
    } else if (strcmp(argv[1], "inflight") == 0) {
        bench_memory(1);
    } else {
        fprintf(stderr, "bench_c: unknown mode %s\n", argv[1]);
        return 2;
    }
    return 0;
}
