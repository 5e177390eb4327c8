/*
 * A C game-server host for the in-game flows, using only include/sonoran.h:
 * players join (the API ID checker tells unlinked players how to link), one logs into the CAD
 * in the tablet (the capture links their API ID), then rejoins and is linked.
 *
 * Environment: SONORAN_API_URL, SONORAN_COMMUNITY_ID, SONORAN_API_KEY (the emulator in tests).
 * With SONORAN_API_VERSION=v2 the same flow runs on the v2 API: the tablet reports the CAD's
 * scad:account-link message, whose two UUIDs come from SONORAN_TABLET_ACCOUNT_UUID and
 * SONORAN_TABLET_SECRET_UUID here (a real server receives them from the tablet's iframe). The
 * secret is never printed.
 * Exit status 0 when the flow went as expected and every callback ran exactly once.
 */
#define _POSIX_C_SOURCE 200809L
#include "sonoran.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct player {
    const char *name;
    const char *identifiers; /* JSON array, as the game server gives them */
    int linked;              /* -1 unknown, 0 no, 1 yes */
    int callbacks;
};

static int linked_now = 0;

static void on_check(void *user_data, uint64_t request_id, const char *result_json) {
    struct player *p = (struct player *)user_data;
    p->callbacks++;
    (void)request_id;
    if (strstr(result_json, "\"linked\":true") != NULL) {
        p->linked = 1;
        printf("%s joined: linked\n", p->name);
    } else if (strstr(result_json, "\"linked\":false") != NULL) {
        p->linked = 0;
        printf("%s joined: not linked. Tell them: open the tablet and log into the CAD to link your account\n", p->name);
    } else {
        printf("%s joined: check failed (%s); will retry later\n", p->name, result_json);
    }
}

static void on_link(void *user_data, uint64_t request_id, const char *result_json) {
    struct player *p = (struct player *)user_data;
    p->callbacks++;
    (void)request_id;
    printf("tablet login for %s: %s\n", p->name, result_json);
    if (strstr(result_json, "\"outcome\":\"LINKED\"") != NULL) {
        linked_now = 1;
    }
}

static void tick_until_idle(sonoran_client *c) {
    struct timespec ts = {0, 2000000L};
    int ticks = 0;
    while (sonoran_pending(c) > 0 && ticks++ < 5000) {
        sonoran_poll(c, 0);
        nanosleep(&ts, NULL);
    }
}

int main(void) {
    const char *url = getenv("SONORAN_API_URL");
    const char *community = getenv("SONORAN_COMMUNITY_ID");
    const char *key = getenv("SONORAN_API_KEY");
    const char *version = getenv("SONORAN_API_VERSION");
    const char *account_uuid = getenv("SONORAN_TABLET_ACCOUNT_UUID");
    const char *secret_uuid = getenv("SONORAN_TABLET_SECRET_UUID");
    int v2 = version != NULL && strcmp(version, "v2") == 0;
    struct player players[3] = {
        {"Brian", "[\"steam:11000010499F33C\",\"license:aaa\"]", -1, 0},
        {"Newcomer", "[\"license:bbb\",\"steam:11000010CCCC777\"]", -1, 0},
        {"NoSteam", "[\"license:ccc\",\"discord:42\"]", -1, 0},
    };
    char config[1024];
    char *parsed;
    sonoran_client *c;
    int i;

    if (url == NULL || key == NULL || (!v2 && community == NULL) || (v2 && (account_uuid == NULL || secret_uuid == NULL))) {
        fprintf(stderr, "set SONORAN_API_URL, SONORAN_API_KEY and SONORAN_COMMUNITY_ID (legacy) or "
                        "SONORAN_TABLET_ACCOUNT_UUID and SONORAN_TABLET_SECRET_UUID (v2)\n");
        return 64;
    }
    if (v2) {
        snprintf(config, sizeof config,
                 "{\"api_version\":\"v2\",\"api_key\":\"%s\",\"api_url\":\"%s\",\"primary_identifier\":\"steam\"}",
                 key, url);
    } else {
        snprintf(config, sizeof config,
                 "{\"community_id\":\"%s\",\"api_key\":\"%s\",\"api_url\":\"%s\",\"primary_identifier\":\"steam\"}",
                 community, key, url);
    }
    c = sonoran_client_new(config);
    if (c == NULL) {
        fprintf(stderr, "refused: %s\n", sonoran_last_error());
        return 1;
    }

    for (i = 0; i < 3; i++) {
        if (sonoran_is_linked(c, players[i].identifiers, on_check, &players[i]) == 0) {
            fprintf(stderr, "check refused: %s\n", sonoran_last_error());
            return 1;
        }
    }
    tick_until_idle(c);

    /* The tablet UI reports the CAD login of the newcomer: the legacy console line, or on v2
       the CAD's scad:account-link message (its secret is printed nowhere). */
    {
        char capture[512];
        if (v2) {
            snprintf(capture, sizeof capture, "{\"type\":\"scad:account-link\",\"accountUuid\":\"%s\",\"secretUuid\":\"%s\"}",
                     account_uuid, secret_uuid);
        } else {
            snprintf(capture, sizeof capture,
                     "[tablet] LOGIN COMMUNITY: {%s} USERNAME: {CivilianNoIds} SESSIONID: {75afeea-a869-4dea-b2}", community);
        }
        parsed = sonoran_parse_session(capture);
        if (parsed == NULL) {
            fprintf(stderr, "capture refused: %s\n", sonoran_last_error());
            return 1;
        }
        if (v2) {
            printf("captured: an account-link message for account %s\n", account_uuid);
        } else {
            printf("captured: %s\n", parsed);
        }
        sonoran_string_free(parsed);
        if (sonoran_link_from_tablet(c, capture, players[1].identifiers, on_link, &players[1]) == 0) {
            fprintf(stderr, "link refused: %s\n", sonoran_last_error());
            return 1;
        }
    }
    /* A hostile capture is refused before anything is sent: another community's login, or a
       message whose account is not a UUID. */
    if (sonoran_link_from_tablet(c,
                                 v2 ? "{\"type\":\"scad:account-link\",\"accountUuid\":\"../x\",\"secretUuid\":\"y\"}"
                                    : "LOGIN COMMUNITY: {EVIL} USERNAME: {x} SESSIONID: {y}",
                                 players[1].identifiers, on_link, &players[1]) != 0) {
        fprintf(stderr, "a hostile capture was accepted\n");
        return 1;
    }
    printf("refused capture: %s\n", sonoran_last_error());
    tick_until_idle(c);

    /* The newcomer rejoins. */
    sonoran_is_linked(c, players[1].identifiers, on_check, &players[1]);
    tick_until_idle(c);
    sonoran_client_free(c);

    if (players[0].linked != 1 || players[1].linked != 1 || !linked_now || players[2].linked != -1) {
        fprintf(stderr, "unexpected flow: %d %d %d linked_now=%d\n", players[0].linked, players[1].linked,
                players[2].linked, linked_now);
        return 2;
    }
    if (players[0].callbacks != 1 || players[1].callbacks != 3 || players[2].callbacks != 1) {
        fprintf(stderr, "callbacks not exactly once\n");
        return 2;
    }
    printf("tablet host: ok\n");
    return 0;
}
