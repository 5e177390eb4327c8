-- Host-thread cost of the Lua module, run by examples/bench under the real lua5.4 and luajit.
--
--   BENCH_DIST=dist/lua54 SONORAN_BENCH_URL=... SONORAN_BENCH_COMMUNITY=... SONORAN_BENCH_KEY=... lua5.4 bench.lua
--
-- The clock is LuaSocket's socket.gettime() (microsecond wall clock), so calls are timed in
-- batches of 10 and each figure is the per-call average of a batch. Every figure is printed as
-- one JSON line. Every loop is bounded in count and time.
package.cpath = os.getenv("BENCH_DIST") .. "/?.so;" .. package.cpath
local socket = require("socket")
local sonoran = require("sonoran")

local url = os.getenv("SONORAN_BENCH_URL")
local community = os.getenv("SONORAN_BENCH_COMMUNITY")
local key = os.getenv("SONORAN_BENCH_KEY")
local prefix = os.getenv("BENCH_PREFIX") or "lua"
local now = socket.gettime

local function new_client()
  return sonoran.new {
    community_id = community,
    api_key = key,
    api_url = url,
    rate_limits = { global = sonoran.null },
    timeout_ms = 60000,
  }
end

local function report(metric, unit, v)
  table.sort(v)
  local n = #v
  if n == 0 then
    print(string.format('{"metric":"%s","unit":"%s","n":0}', metric, unit))
    return
  end
  local p99 = math.floor((n - 1) * 0.99 + 0.5) + 1
  print(string.format('{"metric":"%s","unit":"%s","n":%d,"median":%.4f,"p99":%.4f,"min":%.4f,"max":%.4f}',
    metric, unit, n, v[math.floor((n - 1) / 2) + 1], v[p99], v[1], v[n]))
  io.stdout:flush()
end

local delivered = 0
local function on_result(res)
  delivered = delivered + 1
  if not res.ok then error("request failed: " .. res.error.code .. ": " .. res.error.message) end
end

local function drain(cad)
  local start = now()
  while cad:pending() > 0 do
    cad:poll()
    if now() - start > 60 then error("results still pending after 60 s") end
    socket.sleep(0.001)
  end
end

local function wait_completed(cad, n)
  local start = now()
  while true do
    local st = cad:stats()
    if (st.completed.OK or 0) >= n then return end
    if now() - start > 60 then error(n .. " results not ready after 60 s") end
    socket.sleep(0.005)
  end
end

local BATCH = 10

-- Submit cost: 20 rounds of 1,000 calls (100 batches of 10), drained between rounds.
local function bench_submit(metric, method, data)
  local cad = new_client()
  local samples = {}
  for _ = 1, 20 do
    for _ = 1, 1000 / BATCH do
      local t0 = now()
      for _ = 1, BATCH do
        cad[method](cad, data, on_result)
      end
      local t1 = now()
      samples[#samples + 1] = (t1 - t0) * 1e6 / BATCH
    end
    drain(cad)
  end
  cad:close()
  report(metric, "us", samples)
end

-- Baseline of the same interpreter: one call of a plain C function through the Lua C API
-- (LuaSocket's gettime, which reads the clock; not a builtin LuaJIT compiles away), timed like
-- the idle poll below: batches of 100.
local function bench_bare_c_call()
  local samples = {}
  local PER = 100
  local f = socket.gettime
  for _ = 1, 5000 do
    local t0 = now()
    for _ = 1, PER do f() end
    local t1 = now()
    samples[#samples + 1] = (t1 - t0) * 1e9 / PER
  end
  report(prefix .. "_bare_c_call", "ns", samples)
end

local function bench_idle_poll()
  local cad = new_client()
  local samples = {}
  local PER = 100
  for _ = 1, 5000 do
    local t0 = now()
    for _ = 1, PER do cad:poll() end
    local t1 = now()
    samples[#samples + 1] = (t1 - t0) * 1e9 / PER
  end
  cad:close()
  report(prefix .. "_poll_idle", "ns", samples)
end

-- 10,000 results ready: one poll() for all of them, then poll(100) until done; 3 times.
local function bench_stall()
  local N, MAX = 10000, 100
  local per_cb, all, longest, slices = {}, {}, {}, {}
  for _ = 1, 3 do
    for with_max = 0, 1 do
      local cad = new_client()
      for _ = 1, N do cad:get_account({ username = "SonoranBrian" }, on_result) end
      wait_completed(cad, N)
      if with_max == 0 then
        local t0 = now()
        local ran = cad:poll()
        local t1 = now()
        assert(ran == N, "poll() ran " .. ran)
        all[#all + 1] = (t1 - t0) * 1e6
        per_cb[#per_cb + 1] = (t1 - t0) * 1e6 / ran
      else
        local worst, total = 0, 0
        for _ = 1, N / MAX + 1 do
          if total >= N then break end
          local t0 = now()
          local ran = cad:poll(MAX)
          local t1 = now()
          total = total + ran
          local us = (t1 - t0) * 1e6
          if ran == MAX then slices[#slices + 1] = us end
          if us > worst then worst = us end
        end
        longest[#longest + 1] = worst
      end
      drain(cad)
      cad:close()
    end
  end
  report(prefix .. "_poll_per_callback", "us", per_cb)
  report(prefix .. "_stall_poll_all_10000", "us", all)
  report(prefix .. "_stall_poll_max100_longest", "us", longest)
  report(prefix .. "_stall_poll_max100_each", "us", slices)
end

bench_submit(prefix .. "_submit_get_account", "get_account", { username = "SonoranBrian" })
bench_submit(prefix .. "_submit_set_api_id", "set_api_id", { username = "OfficerJones", apiIds = { "110000100000001" } })
bench_bare_c_call()
bench_idle_poll()
bench_stall()
