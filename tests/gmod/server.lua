-- A Garry's Mod server script, run by tests/c/gmod_host.c (the stand-in for srcds) against the
-- emulators tests/gmod.rs starts. require("sonoran") is the server's binary-module require: it
-- loads garrysmod/lua/bin/gmsv_sonoran_linux64.dll, whose gmod13_open sets the global `sonoran`,
-- and returns nothing. The script ticks like a Think hook, calling cad:poll() until the results
-- are in, and leaves one request pending on a slow emulator for the host's gmod13_close.
--
-- Environment: SONORAN_API ("legacy" or "v2"), SONORAN_URL, SONORAN_URL_SLOW, SONORAN_KEY,
-- SONORAN_COMMUNITY.

local function env(name)
  local v = os.getenv(name)
  if not v or v == "" then error("environment variable " .. name .. " is not set (run through tests/gmod.rs)") end
  return v
end

local function check(cond, what)
  if not cond then error("check failed: " .. what, 2) end
end

local api = env("SONORAN_API")
local v2 = api == "v2"
print("api: " .. api)

-- Garry's Mod: require returns nothing; the module is the global it set.
local returned = select("#", require("sonoran"))
check(returned == 0, "require returned " .. returned .. " values")
check(type(sonoran) == "table", "the global sonoran is a table, not " .. type(sonoran))
check(sonoran.ABI == "luajit", "sonoran.ABI is luajit, not " .. tostring(sonoran.ABI))
check(type(sonoran.version()) == "string", "sonoran.version()")
print("loaded: sonoran " .. sonoran.version() .. " in " .. tostring(jit and jit.version))

local function config(url_var)
  -- The emulator is local: lift the default pacing of 1 request a second.
  local cfg = {
    api_key = env("SONORAN_KEY"),
    api_url = env(url_var),
    timeout_ms = 10000,
    rate_limits = { global = { per_second = 10000, burst = 10000 } },
  }
  if v2 then
    cfg.api_version = "v2"
  else
    cfg.community_id = env("SONORAN_COMMUNITY")
  end
  return cfg
end

local cad = sonoran.new(config("SONORAN_URL"))
local calls, results = {}, {}
local function once(name)
  return function(res)
    calls[name] = (calls[name] or 0) + 1
    results[name] = res
  end
end

local expected = { "get_account", "is_linked" }
cad:get_account({ username = "SonoranBrian" }, once("get_account"))
cad:is_linked({ "license:gmod-a", "steam:11000010499F33C" }, once("is_linked"))
if v2 then
  expected[#expected + 1] = "create_link_code"
  cad:create_link_code({ "license:gmod-b", "steam:11000010BOTH006" }, once("create_link_code"))
else
  local ok, err = pcall(cad.create_link_code, cad, { "steam:11000010BOTH006" }, once("create_link_code"))
  check(not ok and tostring(err):find("v2", 1, true), "create_link_code refused on legacy: " .. tostring(err))
  check(sonoran.last_refusal() == "WRONG_API", "last_refusal " .. tostring(sonoran.last_refusal()))
end

-- The server's tick (a Think hook): poll until every result is in, 20 s at most.
local function arrived()
  for _, name in ipairs(expected) do
    if not calls[name] then return false end
  end
  return true
end
local ticks = 0
while not arrived() do
  cad:poll()
  ticks = ticks + 1
  check(ticks < 4000, "results after 20 s of ticks: " .. cad:pending() .. " still pending")
  host_sleep(5)
end
-- More ticks: a result is never delivered twice.
for _ = 1, 20 do
  cad:poll()
  host_sleep(1)
end
check(cad:pending() == 0, "nothing pending on the first client")
for _, name in ipairs(expected) do
  check(calls[name] == 1, name .. "'s callback ran " .. tostring(calls[name]) .. " times")
  local res = results[name]
  check(res.ok, name .. " failed: " .. tostring(res.error and res.error.code) .. " " .. tostring(res.error and res.error.message))
  print(("callback %s: ran once, ok, status %d"):format(name, res.status))
end
check(calls.create_link_code == (v2 and 1 or nil), "create_link_code's callback on legacy")
check(results.get_account.data.username == "SonoranBrian", "get_account's username")
check(results.is_linked.data.linked == true, "is_linked: SonoranBrian's API ID is linked")
if v2 then
  local code = results.create_link_code.data.code
  check(type(code) == "string" and code:find("^[A-Z0-9][A-Z0-9][A-Z0-9][A-Z0-9]$"), "a four-character code")
  check(results.create_link_code.data.url == "https://sonorancad.com/id?code=" .. code, "the link URL")
end

-- One request still in flight when the server shuts down: the slow emulator answers after a
-- minute, and gmod13_close must not wait for it.
local slow = sonoran.new(config("SONORAN_URL_SLOW"))
local shutdown_calls, shutdown_res = 0, nil
local pending_id = slow:get_account({ username = "SonoranBrian" }, function(res)
  shutdown_calls = shutdown_calls + 1
  shutdown_res = res
end)
-- Tick until the library has put it on the wire (10 s at most), then a few more ticks.
local waited = 0
while slow:stats().in_flight ~= 1 do
  slow:poll()
  waited = waited + 1
  check(waited < 2000, "the slow request on the wire")
  host_sleep(5)
end
for _ = 1, 10 do
  slow:poll()
  host_sleep(5)
end
check(slow:pending() == 1 and slow:stats().in_flight == 1, "the slow request is pending, on the wire")

-- The build's other entry point, luaopen_sonoran, opens a second instance of the module in this
-- state; gmod13_close closes its clients too.
local open = package.loadlib(HOST_ROOT .. "/garrysmod/lua/bin/gmsv_sonoran_linux64.dll", "luaopen_sonoran")
check(type(open) == "function", "package.loadlib finds luaopen_sonoran")
local other = open()
check(type(other) == "table" and other ~= sonoran and other.ABI == "luajit", "luaopen_sonoran opens the module")
local third = other.new(config("SONORAN_URL"))
check(host_threads() > 0, "library threads run while the clients are open")
print(("pending at gmod13_close: request %d; %d library threads"):format(pending_id, host_threads()))

-- Run by the host after gmod13_close: both clients are closed as cad:close() closes them.
function after_close()
  for i, c in ipairs({ cad, slow, third }) do
    local module = i == 3 and other or sonoran
    local ok, err = pcall(c.get_account, c, { username = "SonoranBrian" })
    check(not ok and tostring(err):find("closed", 1, true), "client " .. i .. " refuses once closed: " .. tostring(err))
    check(module.last_refusal() == "CLOSED", "last_refusal " .. tostring(module.last_refusal()))
  end
  -- The pending request completed as SHUTDOWN; its callback runs on the next poll, once.
  for _ = 1, 5 do
    slow:poll()
  end
  check(shutdown_calls == 1, "the pending request's callback ran " .. shutdown_calls .. " times")
  check(not shutdown_res.ok and shutdown_res.error.code == "SHUTDOWN", "SHUTDOWN, got " .. tostring(shutdown_res.error and shutdown_res.error.code))
  check(shutdown_res.id == pending_id, "the pending request's id")
  check(slow:pending() == 0 and cad:pending() == 0, "nothing pending after gmod13_close")
  print("after gmod13_close: the pending request completed SHUTDOWN once; all three clients refuse CLOSED")
end

print("script: ok")
