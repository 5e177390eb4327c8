-- Two Lua states in one process (LuaJIT only: the second state is created through the FFI).
-- Each state requires the module and drives its own client; results go to the state that
-- asked, and closing the second state (lua_close runs the client's __gc) stops its threads.
-- Runs on both APIs: both states configure their client with the harness (H.api).
local H = require("harness")
local sonoran = require("sonoran")
local ffi = require("ffi")
jit.off() -- the second VM is entered from C calls; keep this side interpreted

ffi.cdef([[
typedef struct lua_State lua_State;
lua_State *luaL_newstate(void);
void luaL_openlibs(lua_State *L);
int luaL_loadstring(lua_State *L, const char *s);
int lua_pcall(lua_State *L, int nargs, int nresults, int errfunc);
const char *lua_tolstring(lua_State *L, int idx, size_t *len);
void lua_settop(lua_State *L, int idx);
void lua_close(lua_State *L);
]])
local C = ffi.C

-- Run a chunk in state L and return its first result as a string.
local function run(L, code)
  if C.luaL_loadstring(L, code) ~= 0 or C.lua_pcall(L, 0, 1, 0) ~= 0 then
    local err = ffi.string(C.lua_tolstring(L, -1, nil))
    C.lua_settop(L, 0)
    error("second state: " .. err, 2)
  end
  local p = C.lua_tolstring(L, -1, nil)
  local s = p ~= nil and ffi.string(p) or nil
  C.lua_settop(L, 0)
  return s
end

H.test("two states each get only their own results; closing one stops its threads", function()
  local L2 = C.luaL_newstate()
  C.luaL_openlibs(L2)
  run(L2, [[
    sonoran = require("sonoran")
    cad = sonoran.new(require("harness").config())
    names = {}
    for i = 1, 20 do
      cad:get_account({ username = "MedicSmith" }, function(res) names[#names + 1] = res.data.username end)
    end
  ]])
  local cad = sonoran.new(H.config())
  local mine = {}
  for _ = 1, 20 do
    cad:get_account({ username = "SonoranBrian" }, function(res) mine[#mine + 1] = res.data.username end)
  end
  local deadline = os.time() + 20
  while true do
    cad:poll()
    local left = tonumber(run(L2, "cad:poll() return cad:pending()"))
    if cad:pending() == 0 and left == 0 then break end
    H.check(os.time() <= deadline, "timed out")
  end
  H.eq(#mine, 20, "first state's results")
  for _, name in ipairs(mine) do H.eq(name, "SonoranBrian", "first state result") end
  local theirs = run(L2, "for _, n in ipairs(names) do assert(n == 'MedicSmith', n) end return #names")
  H.eq(tonumber(theirs), 20, "second state's results")
  local before = #H.sonoran_threads()
  C.lua_close(L2) -- runs the second client's __gc
  local after = #H.sonoran_threads()
  for _ = 1, 10 do -- a joined thread can be listed for a moment while the kernel finishes its exit
    if after < before then break end
    os.execute("sleep 0.01")
    after = #H.sonoran_threads()
  end
  H.check(after < before, ("threads %d -> %d after closing the second state"):format(before, after))
  cad:close()
  H.eq(#H.sonoran_threads_settled(), 0, "threads after closing both")
end)

H.finish()
