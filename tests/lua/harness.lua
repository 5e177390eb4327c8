-- Minimal test harness shared by the Lua test scripts (Lua 5.1, LuaJIT and Lua 5.4).
-- The Rust test `tests/lua.rs` runs each script with the emulator's address in SONORAN_URL*,
-- its credentials in SONORAN_COMMUNITY / SONORAN_KEY and package.cpath at dist/<abi>/?.so.
local H = {}
local passed, failed = 0, 0

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

--- A client configuration for the emulator named by SONORAN_URL<suffix>, plus overrides.
function H.config(suffix, overrides)
  local cfg = {
    community_id = H.env("SONORAN_COMMUNITY"),
    api_key = H.env("SONORAN_KEY"),
    api_url = H.env("SONORAN_URL" .. (suffix or "")),
    timeout_ms = 10000,
    -- The tests measure behaviour, not pacing: lift the default 1 request/s limit.
    rate_limits = { global = { per_second = 10000, burst = 10000 } },
  }
  for k, v in pairs(overrides or {}) do cfg[k] = v end
  return cfg
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
