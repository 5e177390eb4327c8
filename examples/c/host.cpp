// A C++17 host using only include/sonoran.h: a lambda-free callback into a small class, a
// GET_ACCOUNT and a refused call, polled from a loop. Built with -Wall -Wextra -Werror -pedantic.
#include "sonoran.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

namespace {

class Results {
  public:
    static void callback(void *user_data, uint64_t id, const char *json) {
        static_cast<Results *>(user_data)->add(id, json);
    }
    void add(uint64_t id, const char *json) {
        seen.push_back(id);
        std::printf("result %llu: %s\n", static_cast<unsigned long long>(id), json);
    }
    std::vector<uint64_t> seen;
};

}  // namespace

int main() {
    const char *url = std::getenv("SONORAN_API_URL");
    const char *community = std::getenv("SONORAN_COMMUNITY_ID");
    const char *key = std::getenv("SONORAN_API_KEY");
    const char *version = std::getenv("SONORAN_API_VERSION");
    const bool v2 = version != nullptr && std::string(version) == "v2";
    if (url == nullptr || key == nullptr || (community == nullptr && !v2)) {
        std::fprintf(stderr, "set SONORAN_API_URL, SONORAN_API_KEY and (legacy API) SONORAN_COMMUNITY_ID\n");
        return 64;
    }
    // The same calls on either API: only the configuration says which.
    const std::string config =
        v2 ? std::string("{\"api_version\":\"v2\",\"api_key\":\"") + key + "\",\"api_url\":\"" + url + "\"}"
           : std::string("{\"community_id\":\"") + community + "\",\"api_key\":\"" + key + "\",\"api_url\":\"" + url +
                 "\"}";
    sonoran_client *client = sonoran_client_new(config.c_str());
    if (client == nullptr) {
        std::fprintf(stderr, "refused: %s\n", sonoran_last_error());
        return 1;
    }
    Results results;
    const uint64_t a = sonoran_get_account(client, R"({"username":"SonoranBrian"})", &Results::callback, &results);
    const uint64_t b = sonoran_check_api_id(client, R"({"apiId":"11000010499F33C"})", &Results::callback, &results);
    const uint64_t refused = sonoran_get_account(client, R"({"username":"a","apiId":"b"})", &Results::callback, &results);
    std::printf("refused: %s\n", sonoran_last_error());
    for (int tick = 0; tick < 5000 && sonoran_pending(client) > 0; ++tick) {
        sonoran_poll(client, 0);
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    sonoran_client_free(client);
    const bool ok = a != 0 && b != 0 && refused == 0 && results.seen.size() == 2;
    std::printf("cpp host: %s\n", ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}
