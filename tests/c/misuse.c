/*
 * A careless C host, for the sanitizers and valgrind: each case misuses the library the way
 * a host might, and checks that every accepted request still calls back exactly once and that
 * nothing touches freed memory.
 *
 *   free-in-callback-poll    sonoran_client_free from inside a callback (poll delivery)
 *   free-in-callback-thread  the same with "delivery": "thread"
 *   poll-in-callback         20,000 ready results, each callback calling sonoran_poll
 *   threads                  four threads submitting while the main thread polls, then a
 *                            free with requests still in flight
 *
 * Usage: misuse CASE (SONORAN_API_URL / SONORAN_COMMUNITY_ID / SONORAN_API_KEY name the
 * emulator). Exit status 0 and a last line "misuse CASE: ok" when every check held.
 */
#define _POSIX_C_SOURCE 200809L
#include "sonoran.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_IDS 20000

static const char *CHECK = "{\"apiId\":\"11000010499F33C\"}";

struct tally {
    sonoran_client *cad;
    atomic_int calls[MAX_IDS + 1];
    atomic_int total;
    atomic_int shutdown;
    atomic_int nested_ran;
    atomic_int freed;
};

static struct tally T;

static void sleep_ms(long ms) {
    struct timespec ts;
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000L;
    nanosleep(&ts, NULL);
}

static void fail(const char *what) {
    fprintf(stderr, "misuse: FAILED: %s\n", what);
    exit(1);
}

static sonoran_client *make(const char *delivery, int max_pending) {
    const char *url = getenv("SONORAN_API_URL");
    const char *community = getenv("SONORAN_COMMUNITY_ID");
    const char *key = getenv("SONORAN_API_KEY");
    char config[1024];
    sonoran_client *cad;
    if (!url || !community || !key) {
        fail("SONORAN_API_URL, SONORAN_COMMUNITY_ID and SONORAN_API_KEY must be set");
    }
    snprintf(config, sizeof config,
             "{\"community_id\":\"%s\",\"api_key\":\"%s\",\"api_url\":\"%s\",\"delivery\":\"%s\","
             "\"max_pending\":%d,\"rate_limits\":{\"global\":null},\"timeout_ms\":20000}",
             community, key, url, delivery, max_pending);
    cad = sonoran_client_new(config);
    if (!cad) {
        fprintf(stderr, "misuse: %s\n", sonoran_last_error());
        fail("sonoran_client_new");
    }
    return cad;
}

static void count(uint64_t id, const char *json) {
    if (id == 0 || id > MAX_IDS) {
        fail("a request id out of range");
    }
    atomic_fetch_add(&T.calls[id], 1);
    atomic_fetch_add(&T.total, 1);
    if (strstr(json, "\"code\":\"SHUTDOWN\"")) {
        atomic_fetch_add(&T.shutdown, 1);
    }
}

static void check_each_once(int n, const char *what) {
    int i;
    for (i = 1; i <= n; i++) {
        if (atomic_load(&T.calls[i]) != 1) {
            fprintf(stderr, "misuse: request %d called back %d times (%s)\n", i, atomic_load(&T.calls[i]), what);
            fail("every request calls back exactly once");
        }
    }
}

/* ---------------------------------------------------------------- free inside a callback */

static void free_on_first(void *user_data, uint64_t id, const char *json) {
    (void)user_data;
    count(id, json);
    if (atomic_fetch_add(&T.freed, 1) == 0) {
        sonoran_client_free(T.cad); /* deferred until this callback returns */
        sonoran_client_free(T.cad); /* a second free from a callback is ignored */
    }
}

static int submit_checks(sonoran_client *cad, int n, sonoran_callback cb) {
    int i;
    for (i = 0; i < n; i++) {
        if (sonoran_check_api_id(cad, CHECK, cb, NULL) == 0) {
            fprintf(stderr, "misuse: refused: %s\n", sonoran_last_error());
            fail("submit");
        }
    }
    return n;
}

static void free_in_callback_poll(void) {
    int n, spins = 0;
    T.cad = make("poll", 1000);
    n = submit_checks(T.cad, 50, free_on_first);
    /* Poll until a callback freed the client: the free runs as that sonoran_poll returns, so
       the handle must not be used after it. */
    while (atomic_load(&T.freed) == 0) {
        sonoran_poll(T.cad, 0);
        if (++spins > 20000) {
            fail("no result within 20 s");
        }
        sleep_ms(1);
    }
    T.cad = NULL;
    if (atomic_load(&T.total) != n) {
        fprintf(stderr, "misuse: %d of %d callbacks ran\n", atomic_load(&T.total), n);
        fail("the deferred free ran every remaining callback before the poll returned");
    }
    check_each_once(n, "free in a poll callback");
}

static void free_in_callback_thread(void) {
    int n, spins = 0;
    T.cad = make("thread", 1000);
    n = submit_checks(T.cad, 50, free_on_first);
    while (atomic_load(&T.total) < n) {
        if (++spins > 20000) {
            fprintf(stderr, "misuse: %d of %d callbacks ran\n", atomic_load(&T.total), n);
            fail("every callback runs on the delivery thread after a free from a callback");
        }
        sleep_ms(1);
    }
    sleep_ms(200); /* let the delivery thread finish and exit */
    check_each_once(n, "free in a thread callback");
}

/* ---------------------------------------------------------------- poll inside every callback */

static void poll_again(void *user_data, uint64_t id, const char *json) {
    (void)user_data;
    count(id, json);
    atomic_fetch_add(&T.nested_ran, (int)sonoran_poll(T.cad, 0));
}

static void poll_in_callback(void) {
    const int n = 20000;
    int i, ran;
    uint64_t id;
    T.cad = make("poll", n + 10);
    /* 20,000 results ready at once without 20,000 HTTP calls: submit, then cancel each. */
    for (i = 0; i < n; i++) {
        id = sonoran_check_api_id(T.cad, CHECK, poll_again, NULL);
        if (id == 0) {
            fail("submit");
        }
        sonoran_cancel(T.cad, id);
    }
    ran = (int)sonoran_poll(T.cad, 0);
    if (ran != n || atomic_load(&T.nested_ran) != 0) {
        fprintf(stderr, "misuse: outer poll ran %d, nested polls ran %d\n", ran, atomic_load(&T.nested_ran));
        fail("one outer poll delivers everything; nested polls run nothing");
    }
    check_each_once(n, "poll in every callback");
    if (sonoran_pending(T.cad) != 0) {
        fail("nothing pending");
    }
    sonoran_client_free(T.cad);
}

/* ---------------------------------------------------------------- threads */

static void counted(void *user_data, uint64_t id, const char *json) {
    (void)user_data;
    count(id, json);
}

static void *submitter(void *arg) {
    int i;
    (void)arg;
    for (i = 0; i < 250; i++) {
        if (sonoran_check_api_id(T.cad, CHECK, counted, NULL) == 0) {
            fail("submit from a thread");
        }
        if (i % 50 == 0) {
            sleep_ms(1);
        }
    }
    return NULL;
}

static void threads(void) {
    pthread_t t[4];
    int i, spins = 0;
    T.cad = make("poll", 5000);
    for (i = 0; i < 4; i++) {
        if (pthread_create(&t[i], NULL, submitter, NULL) != 0) {
            fail("pthread_create");
        }
    }
    while (atomic_load(&T.total) < 500) {
        sonoran_poll(T.cad, 100);
        if (++spins > 20000) {
            fail("results from four submitting threads");
        }
        sleep_ms(1);
    }
    for (i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
    }
    /* Free with the rest still in flight: each completes (OK or SHUTDOWN) before free returns. */
    sonoran_client_free(T.cad);
    if (atomic_load(&T.total) != 1000) {
        fprintf(stderr, "misuse: %d of 1000 callbacks ran\n", atomic_load(&T.total));
        fail("free runs every remaining callback");
    }
    check_each_once(1000, "threads");
}

int main(int argc, char **argv) {
    const char *which = argc > 1 ? argv[1] : "";
    if (strcmp(which, "free-in-callback-poll") == 0) {
        free_in_callback_poll();
    } else if (strcmp(which, "free-in-callback-thread") == 0) {
        free_in_callback_thread();
    } else if (strcmp(which, "poll-in-callback") == 0) {
        poll_in_callback();
    } else if (strcmp(which, "threads") == 0) {
        threads();
    } else {
        fprintf(stderr, "usage: misuse free-in-callback-poll|free-in-callback-thread|poll-in-callback|threads\n");
        return 2;
    }
    printf("misuse %s: ok (%d callbacks, %d SHUTDOWN)\n", which, atomic_load(&T.total), atomic_load(&T.shutdown));
    return 0;
}
