-- Minimal test harness shared by the Lua test scripts (Lua 5.1, LuaJIT and Lua 5.4).
-- The Rust test `tests/lua.rs` runs each script with the emulator's address in SONORAN_URL*,
-- its credentials in SONORAN_COMMUNITY / SONORAN_KEY, the API to test in SONORAN_API
-- ("legacy" or "v2"), the fixture accounts' UUIDs and secret UUIDs in SONORAN_UUID_<username>
-- and SONORAN_SECRET_<username>, and package.cpath at dist/<abi>/?.so.
local H = {}
local passed, failed = 0, 0

--- The API this run tests: "legacy" (also when SONORAN_API is unset) or "v2".
H.api = os.getenv("SONORAN_API") or "legacy"
if H.api == "" then H.api = "legacy" end
if H.api ~= "legacy" and H.api ~= "v2" then
  error("SONORAN_API must be \"legacy\" or \"v2\", got " .. ("%q"):format(H.api))
end
H.v2 = H.api == "v2"
-- tests/lua.rs checks that this line is in the output: the run really was on the API it asked for.
print("api: " .. H.api)

function H.test(name, fn)
  local ok, err = xpcall(fn, function(m) return debug.traceback(tostring(m), 2) end)
  if ok then
    passed = passed + 1
    print("ok   " .. name)
  else
    failed = failed + 1
    print("FAIL " .. name .. "\n" .. tostring(err))
  end
end

local function show(v)
  if type(v) == "string" then return ("%q"):format(v) end
  return tostring(v)
end

function H.eq(actual, expected, what)
  if actual ~= expected then
    error(("%s: expected %s, got %s"):format(what or "value", show(expected), show(actual)), 2)
  end
end

function H.check(cond, what)
  if not cond then error("check failed: " .. tostring(what), 2) end
  return cond
end

--- Assert that fn raises an error whose text contains `needle` (plain find); returns the text.
function H.raises(fn, needle)
  local ok, err = pcall(fn)
  if ok then error("expected an error containing " .. show(needle), 2) end
  err = tostring(err)
  if not err:find(needle, 1, true) then
    error(("error %s does not contain %s"):format(show(err), show(needle)), 2)
  end
  return err
end

function H.finish()
  print(("%d passed, %d failed"):format(passed, failed))
  os.exit(failed == 0 and 0 or 1)
end

function H.env(name)
  local v = os.getenv(name)
  if not v or v == "" then error("environment variable " .. name .. " is not set (run through `cargo test --test lua`)") end
  return v
end

-- v2's routes with a default client-side bucket at their published per-minute limit.
local V2_ROUTES = {
  "GET /v2/general/version", "POST /v2/general/links", "POST /v2/general/links/check",
  "POST /v2/general/links/set", "GET /v2/general/accounts/account", "PATCH /v2/general/accounts/permissions",
  "PUT /v2/general/api-ids", "PUT /v2/civilian/character-links/{syncId}",
  "DELETE /v2/civilian/character-links/{syncId}", "POST /v2/emergency/accounts/{accountUuid}/identifiers",
  "PATCH /v2/emergency/accounts/{accountUuid}/identifiers/{identId}",
  "DELETE /v2/emergency/accounts/{accountUuid}/identifiers/{identId}",
}

--- A client configuration for the emulator named by SONORAN_URL<suffix> on the API of this run
--- (H.api), plus overrides. Legacy: the community id and the key (api_version left out: legacy
--- is the default). v2: api_version = "v2" and the key only (the key selects the community; v2
--- never needs the community id).
function H.config(suffix, overrides)
  local unpaced = { per_second = 10000, burst = 10000 }
  local cfg = {
    api_key = H.env("SONORAN_KEY"),
    api_url = H.env("SONORAN_URL" .. (suffix or "")),
    timeout_ms = 10000,
    -- The tests measure behaviour, not pacing: lift the default 1 request/s limit (and in v2
    -- the per-route buckets at the published limits, 10 a minute for most routes).
    rate_limits = { global = unpaced },
  }
  if H.v2 then
    cfg.api_version = "v2"
    for _, route in ipairs(V2_ROUTES) do cfg.rate_limits[route] = unpaced end
  else
    cfg.community_id = H.env("SONORAN_COMMUNITY")
  end
  for k, v in pairs(overrides or {}) do cfg[k] = v end
  return cfg
end

--- A fixture account's UUID and secret UUID (v2's tablet message carries both).
function H.uuid(username) return H.env("SONORAN_UUID_" .. username) end
function H.secret(username) return H.env("SONORAN_SECRET_" .. username) end

--- Ask for the plan version on this run's API: cad:request("GET_VERSION", nil, cb) on legacy,
--- cad:request_v2("GET", "/v2/general/version", nil, cb) on v2. Returns the request id.
function H.version(cad, cb)
  if H.v2 then return cad:request_v2("GET", "/v2/general/version", nil, cb) end
  return cad:request("GET_VERSION", nil, cb)
end

--- Assert that a CHECK_APIID result says the player is linked to `username`'s account: the
--- username as text on legacy, {linked = true, accountUuid = ...} on v2.
function H.linked_to(res, username)
  if not res.ok then
    error(("expected linked to %s, got %s: %s"):format(username, tostring(res.error.code), tostring(res.error.message)), 2)
  end
  if H.v2 then
    if type(res.data) ~= "table" or res.data.linked ~= true or res.data.accountUuid ~= H.uuid(username) then
      error(("expected linked to %s (%s), got %s"):format(username, H.uuid(username), H.dump(res.data)), 2)
    end
  elseif res.data ~= username then
    error(("expected linked to %s, got %s"):format(username, H.dump(res.data)), 2)
  end
  return res
end

--- Every string in a value (keys and values, nested), joined: to search a whole result.
function H.dump(v, out, depth)
  out, depth = out or {}, depth or 0
  if type(v) == "table" and depth < 32 then
    out[#out + 1] = "{"
    for k, x in pairs(v) do
      out[#out + 1] = tostring(k) .. "="
      H.dump(x, out, depth + 1)
      out[#out + 1] = ","
    end
    out[#out + 1] = "}"
  else
    out[#out + 1] = type(v) == "string" and v or tostring(v)
  end
  return depth == 0 and table.concat(out) or nil
end

--- POST a JSON text to one of the main emulator's test-only routes (`/__emulator/...`, not an
--- API route: the library has no call for it). tests/lua.rs does the request: this writes one
--- `@@harness POST <path> <json>` line to stdout and reads `<status> <body>` from stdin.
--- Returns the status (0 when the request could not be made) and the body text.
function H.emulator_post(path, json)
  H.check(path:find("^/__emulator/"), "only the emulator's test routes: " .. path)
  H.check(not json:find("[\r\n]"), "one line of JSON")
  io.stdout:write("@@harness POST ", path, " ", json, "\n")
  io.stdout:flush()
  local line = io.stdin:read("*l")
  if not line then error("no answer from tests/lua.rs on stdin (run through `cargo test --test lua`)", 2) end
  local status, body = line:match("^(%d+) ?(.*)$")
  H.check(status, "harness answer " .. line)
  return tonumber(status), body
end

--- Complete a v2 link code as `username` would at sonorancad.com/id (the emulator's stand-in
--- for that page). Returns the status and the answer's text.
function H.complete_link_code(code, username)
  return H.emulator_post("/__emulator/links/complete", ('{"code":"%s","username":"%s"}'):format(code, username))
end

--- A successful result of type `typ` (status 200, no error); fails with the error otherwise.
function H.ok_result(res, typ)
  H.eq(type(res), "table", "res")
  if not res.ok then
    error("request failed: " .. tostring(res.error.code) .. ": " .. tostring(res.error.message), 2)
  end
  H.eq(res.status, 200, "res.status")
  H.eq(res.type, typ, "res.type")
  H.eq(res.error, nil, "res.error")
  return res
end

--- A failed result with error code `code` (a message, no data).
function H.failed(res, code)
  H.eq(res.ok, false, "res.ok")
  H.eq(type(res.error), "table", "res.error")
  H.eq(res.error.code, code, "res.error.code")
  H.eq(type(res.error.message), "string", "res.error.message")
  H.eq(res.data, nil, "res.data")
  return res
end

--- Poll `cad` until cond() is true; fails after `seconds` (wall clock, generous).
function H.poll_until(cad, cond, seconds)
  local deadline = os.time() + (seconds or 20)
  while not cond() do
    cad:poll()
    if os.time() > deadline then error("timed out waiting (pending: " .. cad:pending() .. ")", 2) end
  end
end

--- Run a host's tick until cond() is true; fails after `seconds` (wall clock, generous).
function H.tick_until(tick, cond, seconds)
  local deadline = os.time() + (seconds or 20)
  while not cond() do
    tick()
    if os.time() > deadline then error("timed out waiting", 2) end
  end
end

--- Poll until every accepted request of `cad` has been delivered.
function H.drain(cad, seconds)
  H.poll_until(cad, function() return cad:pending() == 0 end, seconds)
end

--- Start one request and wait for its result (the request function is given a callback).
function H.call(cad, start)
  local res
  start(function(r) res = r end)
  H.poll_until(cad, function() return res ~= nil end)
  return res
end

--- Names of this process's threads whose name starts with "sonoran" (Linux /proc).
function H.sonoran_threads()
  local stat = assert(io.open("/proc/self/stat")):read("*l")
  local pid = stat:match("^(%d+)")
  local names = {}
  local ls = assert(io.popen("ls /proc/" .. pid .. "/task"))
  for tid in ls:lines() do
    local f = io.open("/proc/" .. pid .. "/task/" .. tid .. "/comm")
    if f then
      local name = (f:read("*l") or "")
      f:close()
      if name:find("^sonoran") then names[#names + 1] = name end
    end
  end
  ls:close()
  return names
end

--- The library's threads once those just started carry their name: a new thread is listed under
--- the process's name until it first runs, which on a loaded machine can take a moment. Waits
--- 2 s at most for at least one.
function H.sonoran_threads_started()
  local names = H.sonoran_threads()
  for _ = 1, 200 do
    if #names > 0 then break end
    os.execute("sleep 0.01")
    names = H.sonoran_threads()
  end
  return names
end

--- The library's threads once any that were just joined are gone: a joined thread can still be
--- listed for a moment while the kernel finishes its exit. Waits 100 ms at most, so a thread
--- that really keeps running (or exits lazily) is still caught.
function H.sonoran_threads_settled()
  local names = H.sonoran_threads()
  for _ = 1, 10 do
    if #names == 0 then break end
    os.execute("sleep 0.01")
    names = H.sonoran_threads()
  end
  return names
end

return H
