/*
 * A C host using only include/sonoran.h: runs every call in scope against the API named by
 * SONORAN_API_URL / SONORAN_COMMUNITY_ID / SONORAN_API_KEY (the emulator in the tests), polls
 * from a "game tick", then frees the client with one request still in flight.
 * SONORAN_API_VERSION=v2 runs the same calls on the v2 API (no community id needed there); only
 * the generic request differs (sonoran_request_v2 takes a route, sonoran_request a legacy type).
 *
 * Build: cc -std=c11 -Wall -Wextra -Werror -pedantic -Iinclude examples/c/host.c \
 *           -Ltarget/release -lsonoran -Wl,-rpath,target/release -o host
 * Exit status 0 when every accepted request called back exactly once.
 */
#define _POSIX_C_SOURCE 200809L
#include "sonoran.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_REQUESTS 64

struct tally {
    uint64_t ids[MAX_REQUESTS];
    int calls[MAX_REQUESTS];
    int submitted;
    int ok;
    int failed;
    int shutdown;
};

static void on_result(void *user_data, uint64_t request_id, const char *result_json) {
    struct tally *t = (struct tally *)user_data;
    int i;
    for (i = 0; i < t->submitted; i++) {
        if (t->ids[i] == request_id) {
            t->calls[i]++;
        }
    }
    if (strstr(result_json, "\"ok\":true") != NULL) {
        t->ok++;
    } else {
        t->failed++;
    }
    if (strstr(result_json, "\"code\":\"SHUTDOWN\"") != NULL) {
        t->shutdown++;
    }
    printf("result %llu: %s\n", (unsigned long long)request_id, result_json);
}

static void track(struct tally *t, uint64_t id, const char *what) {
    if (id == 0) {
        printf("refused %s: %s\n", what, sonoran_last_error());
        return;
    }
    if (t->submitted < MAX_REQUESTS) {
        t->ids[t->submitted] = id;
        t->calls[t->submitted] = 0;
        t->submitted++;
    }
}

static void sleep_ms(long ms) {
    struct timespec ts;
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000L;
    nanosleep(&ts, NULL);
}

int main(void) {
    const char *url = getenv("SONORAN_API_URL");
    const char *community = getenv("SONORAN_COMMUNITY_ID");
    const char *key = getenv("SONORAN_API_KEY");
    const char *version = getenv("SONORAN_API_VERSION");
    int v2 = version != NULL && strcmp(version, "v2") == 0;
    char config[1024];
    struct tally t;
    sonoran_client *client;
    int ticks = 0;
    int i;
    int bad = 0;

    memset(&t, 0, sizeof t);
    if (url == NULL || key == NULL || (community == NULL && !v2)) {
        fprintf(stderr, "set SONORAN_API_URL, SONORAN_API_KEY and (legacy API) SONORAN_COMMUNITY_ID\n");
        return 64;
    }
    if (v2) {
        snprintf(config, sizeof config,
                 "{\"api_version\":\"v2\",\"api_key\":\"%s\",\"api_url\":\"%s\",\"timeout_ms\":10000}", key, url);
    } else {
        snprintf(config, sizeof config,
                 "{\"community_id\":\"%s\",\"api_key\":\"%s\",\"api_url\":\"%s\",\"timeout_ms\":10000}",
                 community, key, url);
    }

    if (sonoran_client_new("{\"community_id\":\"x\"}") != NULL) {
        fprintf(stderr, "a config without api_key was accepted\n");
        return 1;
    }
    printf("refused config: %s\n", sonoran_last_error());

    client = sonoran_client_new(config);
    if (client == NULL) {
        fprintf(stderr, "client refused: %s\n", sonoran_last_error());
        return 1;
    }
    printf("sonoran %s\n", sonoran_version());

    track(&t, sonoran_check_api_id(client, "{\"apiId\":\"11000010499F33C\"}", on_result, &t), "CHECK_APIID");
    track(&t, sonoran_get_account(client, "{\"username\":\"SonoranBrian\"}", on_result, &t), "GET_ACCOUNT");
    track(&t, sonoran_set_api_id(client, "{\"username\":\"CivilianNoIds\",\"apiIds\":[\"steam:110000100000001\"]}", on_result, &t), "SET_API_ID");
    track(&t, sonoran_link_character(client, "{\"apiId\":\"11000010499F33C\",\"syncId\":\"c-1\",\"action\":0}", on_result, &t), "LINK_CHARACTER");
    track(&t, sonoran_modify_identifier(client, "{\"apiId\":\"11000010499F33C\",\"action\":0,\"identifier\":{\"status\":2,\"data\":{\"unitNum\":\"1A-12\"}}}", on_result, &t), "MODIFY_IDENTIFIER");
    track(&t, sonoran_set_account_permissions(client, "{\"username\":\"OfficerJones\",\"add\":[\"POLRECEDIT\"]}", on_result, &t), "SET_ACCOUNT_PERMISSIONS");
    if (v2) {
        track(&t, sonoran_request_v2(client, "GET", "/v2/general/version", NULL, on_result, &t), "GET /v2/general/version");
    } else {
        track(&t, sonoran_request(client, "GET_VERSION", "null", on_result, &t), "GET_VERSION");
    }
    track(&t, sonoran_check_api_id(client, "{\"apiId\":\"nobody\"}", on_result, &t), "CHECK_APIID (not linked)");

    /* Refused: nothing is sent and no callback runs. */
    if (sonoran_set_account_permissions(client, "{\"apiId\":\"x\",\"add\":[\"POLICERECEDIT\"]}", on_result, &t) != 0 ||
        sonoran_get_account(client, "{not json", on_result, &t) != 0 ||
        sonoran_get_account(NULL, "{}", on_result, &t) != 0 ||
        sonoran_request(client, "GET_VERSION", NULL, on_result, &t) != 0) {
        fprintf(stderr, "invalid input was accepted\n");
        return 1;
    }
    printf("refused request: %s\n", sonoran_last_error());

    /* The game loop: poll each tick, never blocking. */
    while (sonoran_pending(client) > 0 && ticks < 5000) {
        sonoran_poll(client, 0);
        sleep_ms(2);
        ticks++;
    }

    /* One more, freed while in flight: its callback still runs (SHUTDOWN or its result). */
    track(&t, sonoran_get_account(client, "{\"username\":\"SonoranBrian\"}", on_result, &t), "GET_ACCOUNT (in flight at free)");
    sonoran_client_free(client);
    sonoran_client_free(NULL);

    for (i = 0; i < t.submitted; i++) {
        if (t.calls[i] != 1) {
            fprintf(stderr, "request %llu called back %d times\n", (unsigned long long)t.ids[i], t.calls[i]);
            bad = 1;
        }
    }
    printf("submitted %d, ok %d, failed %d (shutdown %d)\n", t.submitted, t.ok, t.failed, t.shutdown);
    return bad ? 2 : 0;
}
