/*
 * One game server of a community whose servers share one API key (tests/shared_budget_processes.rs
 * runs three of these at once, each its own process): it submits one call at a steady rate for
 * a while, polls from a "game tick" of a few ms, frees the client (what is still queued then
 * completes SHUTDOWN) and prints one JSON line:
 *
 *   {"label", "submitted", "refused", "callbacks", "each_once", "ok_in_window",
 *    "codes": {"OK": n, "<CODE>": n}, "log": {"lines", "redis_unreachable", "redis_back",
 *    "another_server"}, "stats": <sonoran_stats, taken just before the free>}
 *
 * Its configuration is one JSON object in the environment variable SONORAN_BUDGET_HOST:
 *   "config"        the client's configuration, passed to sonoran_client_new as is
 *   "call"          "check_api_id" or "get_account"
 *   "data"          the call's data (a JSON object)
 *   "per_second"    submissions per second
 *   "duration_ms"   how long to submit
 *   "start_unix_ms" optional: wall-clock time (ms since the epoch) to start at, so that
 *                   several processes start together
 *   "poll_ms"       the tick (default 5)
 *   "label"         a name for the output (default "host")
 * Log lines go to stderr, prefixed with the label. Exit status 0 when the line was printed.
 */
#define _POSIX_C_SOURCE 200809L
#include "sonoran.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_CODES 32

struct slot {
    uint64_t id;
    int calls;
    int mismatched;
};

struct codes {
    char names[MAX_CODES][40];
    long counts[MAX_CODES];
    int n;
};

struct host {
    struct codes codes;
    long callbacks;
    long ok;
};

struct log_tally {
    const char *label;
    atomic_long lines;
    atomic_long redis_unreachable;
    atomic_long redis_back;
    atomic_long another_server;
};

/* ---- a small reader for the top level of one JSON object (enough for our own input) ---- */

static const char *skip_ws(const char *p) {
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') {
        p++;
    }
    return p;
}

/* The end of the JSON value starting at p (NULL when malformed). */
static const char *skip_value(const char *p) {
    int depth = 0;
    if (*p != '{' && *p != '[' && *p != '"') {
        while (*p != '\0' && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\n') {
            p++;
        }
        return p;
    }
    do {
        if (*p == '"') {
            p++;
            while (*p != '"') {
                if (*p == '\0') {
                    return NULL;
                }
                if (*p == '\\' && p[1] != '\0') {
                    p++;
                }
                p++;
            }
        } else if (*p == '{' || *p == '[') {
            depth++;
        } else if (*p == '}' || *p == ']') {
            depth--;
        } else if (*p == '\0') {
            return NULL;
        }
        p++;
    } while (depth > 0);
    return p;
}

/* The value of `key` in the top-level object `json`, as a new string (NULL when absent). */
static char *member(const char *json, const char *key) {
    const char *p = skip_ws(json);
    size_t klen = strlen(key);
    if (*p != '{') {
        return NULL;
    }
    p = skip_ws(p + 1);
    while (*p == '"') {
        const char *kend = skip_value(p);
        const char *v;
        const char *vend;
        if (kend == NULL) {
            return NULL;
        }
        v = skip_ws(kend);
        if (*v != ':') {
            return NULL;
        }
        v = skip_ws(v + 1);
        vend = skip_value(v);
        if (vend == NULL) {
            return NULL;
        }
        if ((size_t)(kend - p) == klen + 2 && strncmp(p + 1, key, klen) == 0) {
            size_t n = (size_t)(vend - v);
            char *out = malloc(n + 1);
            if (out == NULL) {
                return NULL;
            }
            memcpy(out, v, n);
            out[n] = '\0';
            return out;
        }
        p = skip_ws(vend);
        if (*p != ',') {
            return NULL;
        }
        p = skip_ws(p + 1);
    }
    return NULL;
}

static double member_number(const char *json, const char *key, double fallback) {
    char *v = member(json, key);
    double x = fallback;
    if (v != NULL) {
        x = strtod(v, NULL);
        free(v);
    }
    return x;
}

/* A string member without its quotes (our input has no escapes in these). */
static char *member_string(const char *json, const char *key) {
    char *v = member(json, key);
    size_t n;
    if (v == NULL || v[0] != '"') {
        free(v);
        return NULL;
    }
    n = strlen(v);
    memmove(v, v + 1, n - 2);
    v[n - 2] = '\0';
    return v;
}

/* ---- clocks ---- */

static double mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static double unix_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void sleep_ms(double ms) {
    struct timespec ts;
    if (ms <= 0) {
        return;
    }
    ts.tv_sec = (time_t)(ms / 1e3);
    ts.tv_nsec = (long)((ms - (double)ts.tv_sec * 1e3) * 1e6);
    nanosleep(&ts, NULL);
}

/* ---- callbacks ---- */

static void count_code(struct codes *c, const char *name, size_t len) {
    int i;
    if (len >= sizeof c->names[0]) {
        len = sizeof c->names[0] - 1;
    }
    for (i = 0; i < c->n; i++) {
        if (strlen(c->names[i]) == len && strncmp(c->names[i], name, len) == 0) {
            c->counts[i]++;
            return;
        }
    }
    if (c->n < MAX_CODES) {
        memcpy(c->names[c->n], name, len);
        c->names[c->n][len] = '\0';
        c->counts[c->n] = 1;
        c->n++;
    }
}

static struct host host_state;

static void on_result(void *user_data, uint64_t request_id, const char *result_json) {
    struct slot *s = (struct slot *)user_data;
    const char *code;
    s->calls++;
    if (s->id != request_id) {
        s->mismatched++;
    }
    host_state.callbacks++;
    if (strstr(result_json, "\"ok\":true") != NULL) {
        host_state.ok++;
        count_code(&host_state.codes, "OK", 2);
        return;
    }
    code = strstr(result_json, "\"error\":{\"code\":\"");
    if (code == NULL) {
        count_code(&host_state.codes, "UNREADABLE", 10);
        return;
    }
    code += strlen("\"error\":{\"code\":\"");
    count_code(&host_state.codes, code, strcspn(code, "\""));
}

static void on_log(void *user_data, int32_t level, const char *message) {
    struct log_tally *t = (struct log_tally *)user_data;
    atomic_fetch_add(&t->lines, 1);
    if (strstr(message, "Redis is unreachable") != NULL) {
        atomic_fetch_add(&t->redis_unreachable, 1);
    }
    if (strstr(message, "Redis answers again") != NULL) {
        atomic_fetch_add(&t->redis_back, 1);
    }
    if (strstr(message, "another server of this API key") != NULL) {
        atomic_fetch_add(&t->another_server, 1);
    }
    fprintf(stderr, "log[%s] %d: %s\n", t->label, (int)level, message);
}

int main(void) {
    const char *input = getenv("SONORAN_BUDGET_HOST");
    char *config;
    char *call;
    char *data;
    char *label;
    char *stats;
    double per_second;
    double duration_ms;
    double start_unix;
    double poll_ms;
    double t0;
    long max_requests;
    long submitted = 0;
    long refused = 0;
    long ok_in_window;
    long i;
    int each_once = 1;
    int use_get_account;
    struct slot *slots;
    struct log_tally log;
    sonoran_client *client;

    if (input == NULL) {
        fprintf(stderr, "budget_host: SONORAN_BUDGET_HOST is not set\n");
        return 2;
    }
    config = member(input, "config");
    call = member_string(input, "call");
    data = member(input, "data");
    label = member_string(input, "label");
    per_second = member_number(input, "per_second", 0);
    duration_ms = member_number(input, "duration_ms", 0);
    start_unix = member_number(input, "start_unix_ms", 0);
    poll_ms = member_number(input, "poll_ms", 5);
    if (config == NULL || call == NULL || data == NULL || per_second <= 0 || duration_ms <= 0) {
        fprintf(stderr, "budget_host: need config, call, data, per_second and duration_ms\n");
        return 2;
    }
    use_get_account = strcmp(call, "get_account") == 0;
    if (!use_get_account && strcmp(call, "check_api_id") != 0) {
        fprintf(stderr, "budget_host: call must be check_api_id or get_account\n");
        return 2;
    }
    log.label = label != NULL ? label : "host";
    atomic_init(&log.lines, 0);
    atomic_init(&log.redis_unreachable, 0);
    atomic_init(&log.redis_back, 0);
    atomic_init(&log.another_server, 0);
    memset(&host_state, 0, sizeof host_state);

    max_requests = (long)(per_second * duration_ms / 1e3) + 2;
    slots = calloc((size_t)max_requests, sizeof *slots);
    client = sonoran_client_new(config);
    if (slots == NULL || client == NULL) {
        fprintf(stderr, "budget_host: refused config: %s\n", client == NULL ? sonoran_last_error() : "no memory");
        return 2;
    }
    sonoran_set_log_callback(client, on_log, &log);

    if (start_unix > 0) {
        sleep_ms(start_unix - unix_ms());
    }
    t0 = mono_ms();
    for (;;) {
        double elapsed = mono_ms() - t0;
        long due;
        if (elapsed >= duration_ms) {
            break;
        }
        due = (long)(elapsed * per_second / 1e3) + 1;
        if (due > max_requests) {
            due = max_requests;
        }
        while (submitted + refused < due) {
            struct slot *s = &slots[submitted];
            uint64_t id = use_get_account ? sonoran_get_account(client, data, on_result, s)
                                          : sonoran_check_api_id(client, data, on_result, s);
            if (id == 0) {
                fprintf(stderr, "budget_host: refused: %s\n", sonoran_last_error());
                refused++;
                continue;
            }
            s->id = id;
            submitted++;
        }
        sonoran_poll(client, 0);
        sleep_ms(poll_ms);
    }
    sonoran_poll(client, 0);
    ok_in_window = host_state.ok;
    stats = sonoran_stats(client);
    sonoran_set_log_callback(client, NULL, NULL);
    sonoran_client_free(client);

    for (i = 0; i < submitted; i++) {
        if (slots[i].calls != 1 || slots[i].mismatched != 0) {
            each_once = 0;
        }
    }
    printf("{\"label\":\"%s\",\"submitted\":%ld,\"refused\":%ld,\"callbacks\":%ld,\"each_once\":%s,"
           "\"ok_in_window\":%ld,\"codes\":{",
           log.label, submitted, refused, host_state.callbacks, each_once ? "true" : "false", ok_in_window);
    for (i = 0; i < host_state.codes.n; i++) {
        printf("%s\"%s\":%ld", i > 0 ? "," : "", host_state.codes.names[i], host_state.codes.counts[i]);
    }
    printf("},\"log\":{\"lines\":%ld,\"redis_unreachable\":%ld,\"redis_back\":%ld,\"another_server\":%ld},"
           "\"stats\":%s}\n",
           atomic_load(&log.lines), atomic_load(&log.redis_unreachable), atomic_load(&log.redis_back),
           atomic_load(&log.another_server), stats != NULL ? stats : "null");
    fflush(stdout);
    sonoran_string_free(stats);
    free(slots);
    free(config);
    free(call);
    free(data);
    free(label);
    return 0;
}
