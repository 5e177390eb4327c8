/*
 * A stand-in for a Garry's Mod dedicated server (srcds, 64-bit branch), loading the module the
 * way that server does:
 *
 *   - the server's Lua library is ROOT/bin/linux64/lua_shared.so (here: a link to Debian's
 *     LuaJIT), opened with RTLD_LOCAL, its functions found with dlsym: its symbols are not made
 *     global, as in srcds, so the module must find them through its own dependency on it;
 *   - the script's require("NAME") is the server's binary-module require: it opens
 *     ROOT/garrysmod/lua/bin/gmsv_NAME_linux64.dll, calls its gmod13_open(L) directly (the Lua
 *     call of require is the protected context), and returns nothing;
 *   - at shutdown the server calls gmod13_close(L) outside any protected call, then lua_close.
 *
 * Usage: gmod_host ROOT SCRIPT
 *
 * SCRIPT runs as the server's script. When it returns, the host calls gmod13_close(L), checks
 * (from /proc/self/task/{tid}/comm) that no thread named sonoran* remains, runs the script's
 * global after_close() if it set one, closes the state and unloads the libraries. The last line
 * is "gmod host: ok" and the exit status 0 when every check held.
 *
 * Globals the host gives the script: require (above), host_sleep(ms), host_threads() (the
 * number of threads named sonoran*), HOST_ROOT.
 */
#define _XOPEN_SOURCE 700 /* POSIX.1-2008 with realpath */
#include <lauxlib.h>
#include <lua.h>

#include <dirent.h>
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef int (*module_fn)(lua_State *L);

/* The server's Lua library, reached only through dlsym. */
static struct {
    lua_State *(*newstate)(void);
    void (*openlibs)(lua_State *L);
    int (*loadfile)(lua_State *L, const char *path);
    int (*pcall)(lua_State *L, int nargs, int nresults, int errfunc);
    void (*close)(lua_State *L);
    int (*gettop)(lua_State *L);
    void (*settop)(lua_State *L, int idx);
    void (*insert)(lua_State *L, int idx);
    void (*remove)(lua_State *L, int idx);
    int (*type)(lua_State *L, int idx);
    const char *(*tolstring)(lua_State *L, int idx, size_t *len);
    lua_Number (*tonumber)(lua_State *L, int idx);
    void (*pushstring)(lua_State *L, const char *s);
    void (*pushnumber)(lua_State *L, lua_Number n);
    void (*pushcclosure)(lua_State *L, lua_CFunction fn, int n);
    void (*getfield)(lua_State *L, int idx, const char *k);
    void (*setfield)(lua_State *L, int idx, const char *k);
    int (*error)(lua_State *L);
} api;

static char root[PATH_MAX];
static void *lua_lib;
static void *module_lib;
static module_fn module_close;

static void fail(const char *what, const char *detail) {
    printf("gmod host: FAILED: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    fflush(stdout);
    exit(1);
}

/* dlsym into a function pointer (memcpy: ISO C has no cast from void * to a function). */
static void load_fn(void *lib, const char *name, void *out, size_t size) {
    void *sym = dlsym(lib, name);
    if (sym == NULL || size != sizeof sym) {
        fail("a symbol is missing from the library", name);
    }
    memcpy(out, &sym, size);
}

#define LOAD(field, name) load_fn(lua_lib, name, &api.field, sizeof api.field)

static void sleep_ms(long ms) {
    struct timespec ts;
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000L;
    nanosleep(&ts, NULL);
}

/* Threads of this process named sonoran*; their names, comma-separated, into names; every
   thread of the process into all (when not NULL). */
static int count_threads(char *names, size_t size, int *all) {
    DIR *dir = opendir("/proc/self/task");
    struct dirent *entry;
    int n = 0;
    if (all != NULL) {
        *all = 0;
    }
    if (names != NULL && size > 0) {
        names[0] = '\0';
    }
    if (dir == NULL) {
        fail("cannot list /proc/self/task", NULL);
    }
    while ((entry = readdir(dir)) != NULL) {
        char path[PATH_MAX];
        char comm[64] = "";
        FILE *f;
        if (entry->d_name[0] == '.') {
            continue;
        }
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", entry->d_name);
        f = fopen(path, "r");
        if (f == NULL) {
            continue; /* the thread exited while listing */
        }
        if (all != NULL) {
            (*all)++;
        }
        if (fgets(comm, sizeof comm, f) != NULL && strncmp(comm, "sonoran", 7) == 0) {
            comm[strcspn(comm, "\n")] = '\0';
            n++;
            if (names != NULL && strlen(names) + strlen(comm) + 2 < size) {
                if (names[0] != '\0') {
                    strcat(names, ",");
                }
                strcat(names, comm);
            }
        }
        fclose(f);
    }
    closedir(dir);
    return n;
}

static int library_threads(char *names, size_t size) {
    return count_threads(names, size, NULL);
}

/* Mappings at file offset 0 of the file at path: one per copy of that library loaded. */
static int copies_mapped(const char *path) {
    char real[PATH_MAX];
    char line[PATH_MAX + 256];
    FILE *maps;
    int n = 0;
    if (realpath(path, real) == NULL) {
        fail("realpath", path);
    }
    maps = fopen("/proc/self/maps", "r");
    if (maps == NULL) {
        fail("cannot read /proc/self/maps", NULL);
    }
    while (fgets(line, sizeof line, maps) != NULL) {
        char offset[32];
        const char *file = strchr(line, '/');
        line[strcspn(line, "\n")] = '\0';
        if (file == NULL || strcmp(file, real) != 0 || sscanf(line, "%*s %*s %31s", offset) != 1) {
            continue;
        }
        if (strspn(offset, "0") == strlen(offset)) {
            n++;
        }
    }
    fclose(maps);
    return n;
}

/* Raise a Lua error with a message (from a C function the script called). */
static int raise_error(lua_State *L, const char *a, const char *b) {
    char message[1024];
    snprintf(message, sizeof message, "%s%s", a, b ? b : "");
    api.pushstring(L, message);
    return api.error(L);
}

/* require("NAME"): Garry's Mod's binary-module require, for one module (loaded once). */
static int gmod_require(lua_State *L) {
    char path[PATH_MAX + 128];
    module_fn open;
    int top;
    const char *name = api.type(L, 1) == LUA_TSTRING ? api.tolstring(L, 1, NULL) : NULL;
    if (name == NULL) {
        return raise_error(L, "bad argument #1 to 'require' (string expected)", NULL);
    }
    if (module_lib != NULL) {
        return 0;
    }
    snprintf(path, sizeof path, "%s/garrysmod/lua/bin/gmsv_%s_linux64.dll", root, name);
    module_lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (module_lib == NULL) {
        return raise_error(L, "Couldn't load module library! ", dlerror());
    }
    load_fn(module_lib, "gmod13_open", &open, sizeof open);
    load_fn(module_lib, "gmod13_close", &module_close, sizeof module_close);
    top = api.gettop(L);
    if (open(L) != 0) {
        return raise_error(L, "gmod13_open did not return 0", NULL);
    }
    if (api.gettop(L) != top) {
        return raise_error(L, "gmod13_open left values on the stack", NULL);
    }
    return 0;
}

static int host_sleep(lua_State *L) {
    lua_Number ms = api.tonumber(L, 1);
    sleep_ms(ms > 0 ? (long)ms : 0);
    return 0;
}

static int host_threads(lua_State *L) {
    api.pushnumber(L, (lua_Number)library_threads(NULL, 0));
    return 1;
}

static void set_global_function(lua_State *L, const char *name, lua_CFunction fn) {
    api.pushcclosure(L, fn, 0);
    api.setfield(L, LUA_GLOBALSINDEX, name);
}

/* Call the function on top of the stack (no arguments) with a traceback; NULL or the error. */
static const char *run(lua_State *L) {
    int fn = api.gettop(L);
    api.getfield(L, LUA_GLOBALSINDEX, "debug");
    api.getfield(L, -1, "traceback");
    api.remove(L, -2);
    api.insert(L, fn);
    if (api.pcall(L, 0, 0, fn) != 0) {
        const char *e = api.tolstring(L, -1, NULL);
        return e != NULL ? e : "(an error that is not a string)";
    }
    api.remove(L, fn);
    return NULL;
}

int main(int argc, char **argv) {
    char path[PATH_MAX + 64];
    char names[512];
    const char *err;
    lua_State *L;
    int threads = 0;
    int all = 0;
    int waited;
    if (argc != 3 || realpath(argv[1], root) == NULL) {
        fprintf(stderr, "usage: gmod_host ROOT SCRIPT (ROOT: bin/linux64/lua_shared.so, garrysmod/lua/bin/)\n");
        return 2;
    }
    snprintf(path, sizeof path, "%s/bin/linux64/lua_shared.so", root);
    lua_lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (lua_lib == NULL) {
        fail("cannot open the server's Lua library", dlerror());
    }
    LOAD(newstate, "luaL_newstate");
    LOAD(openlibs, "luaL_openlibs");
    LOAD(loadfile, "luaL_loadfile");
    LOAD(pcall, "lua_pcall");
    LOAD(close, "lua_close");
    LOAD(gettop, "lua_gettop");
    LOAD(settop, "lua_settop");
    LOAD(insert, "lua_insert");
    LOAD(remove, "lua_remove");
    LOAD(type, "lua_type");
    LOAD(tolstring, "lua_tolstring");
    LOAD(tonumber, "lua_tonumber");
    LOAD(pushstring, "lua_pushstring");
    LOAD(pushnumber, "lua_pushnumber");
    LOAD(pushcclosure, "lua_pushcclosure");
    LOAD(getfield, "lua_getfield");
    LOAD(setfield, "lua_setfield");
    LOAD(error, "lua_error");

    L = api.newstate();
    if (L == NULL) {
        fail("luaL_newstate", NULL);
    }
    api.openlibs(L);
    set_global_function(L, "require", gmod_require);
    set_global_function(L, "host_sleep", host_sleep);
    set_global_function(L, "host_threads", host_threads);
    api.pushstring(L, root);
    api.setfield(L, LUA_GLOBALSINDEX, "HOST_ROOT");

    if (api.loadfile(L, argv[2]) != 0) {
        fail("cannot load the script", api.tolstring(L, -1, NULL));
    }
    err = run(L);
    if (err != NULL) {
        fail("the script", err);
    }
    printf("copies of the Lua library mapped: %d\n", copies_mapped(path));
    if (copies_mapped(path) != 1) {
        fail("the module must use the server's Lua library, not load a second copy", NULL);
    }

    if (module_close != NULL) {
        int top = api.gettop(L);
        threads = library_threads(names, sizeof names);
        printf("library threads before gmod13_close: %d (%s)\n", threads, names);
        if (module_close(L) != 0) {
            fail("gmod13_close did not return 0", NULL);
        }
        if (api.gettop(L) != top) {
            fail("gmod13_close changed the stack", NULL);
        }
        /* A joined thread can stay listed for a moment while the kernel finishes its exit; one
           that keeps running is still listed after a second. The host itself starts no thread:
           once the library's are gone, the main thread is the only one (this also catches a
           library thread that had not carried its name yet). */
        for (waited = 0; waited < 1000; waited += 10) {
            threads = count_threads(names, sizeof names, &all);
            if (threads == 0 && all == 1) {
                break;
            }
            sleep_ms(10);
        }
        printf("library threads after gmod13_close: %d%s%s\n", threads, threads ? ": " : "", threads ? names : "");
        printf("threads in the process after gmod13_close: %d\n", all);
        if (threads != 0) {
            fail("library threads still running after gmod13_close", names);
        }
        if (all != 1) {
            fail("threads other than the main one still running after gmod13_close", NULL);
        }
    } else {
        printf("no module was loaded: gmod13_close not called\n");
    }

    api.getfield(L, LUA_GLOBALSINDEX, "after_close");
    if (api.type(L, -1) == LUA_TFUNCTION) {
        err = run(L);
        if (err != NULL) {
            fail("after_close", err);
        }
    } else {
        api.settop(L, -2);
    }

    api.close(L);
    if (library_threads(names, sizeof names) != 0) {
        fail("library threads after lua_close", names);
    }
    if (module_lib != NULL && dlclose(module_lib) != 0) {
        fail("dlclose of the module", dlerror());
    }
    if (dlclose(lua_lib) != 0) {
        fail("dlclose of the Lua library", dlerror());
    }
    printf("gmod host: ok\n");
    return 0;
}
