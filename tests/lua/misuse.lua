-- Misuse by the host that must get a clear answer, never a lost result or a hung game thread:
-- poll from inside every callback, poll under deep pcall nesting (the C stack nearly
-- exhausted), close inside a callback, and request values built from shared sub-tables.
-- Runs on both APIs (H.api).
local H = require("harness")
local sonoran = require("sonoran")

local BRIAN_ID = "11000010499F33C"

--- Start n checks whose callbacks run `body(res)`; returns the table of ids.
local function start(cad, n, body)
  local ids = {}
  for i = 1, n do
    ids[i] = cad:check_api_id({ apiId = BRIAN_ID }, body)
  end
  return ids
end

--- Wait until every result is ready (no callback runs while waiting: nothing polls).
local function wait_ready(cad, n)
  local deadline = os.time() + 30
  while cad:stats().completed.OK == nil or cad:stats().completed.OK < n do
    H.check(os.time() <= deadline, "results became ready")
    os.execute("sleep 0.01")
  end
end

H.test("a poll inside every callback runs nothing, and every callback runs once", function()
  local cad = sonoran.new(H.config())
  local ran, nested = 0, {}
  start(cad, 300, function()
    ran = ran + 1
    nested[#nested + 1] = cad:poll()
  end)
  wait_ready(cad, 300)
  H.eq(cad:poll(), 300, "one outer poll delivered all")
  H.eq(ran, 300, "callbacks")
  for i = 1, #nested do
    H.eq(nested[i], 0, "nested poll " .. i)
  end
  H.eq(cad:pending(), 0, "pending")
  cad:close()
end)

H.test("a poll under deep pcall nesting keeps every result it cannot deliver", function()
  local cad = sonoran.new(H.config())
  local ran = {}
  local failures = {}
  cad:on_error(function(message, id, kind) failures[#failures + 1] = { message = message, id = id, kind = kind } end)
  local ids = start(cad, 200, function(res) ran[#ran + 1] = res.id end)
  wait_ready(cad, 200)
  -- Nest pcalls until poll itself can no longer run its callbacks (the C stack limit), then
  -- poll at every depth on the way back up.
  local depth_reached = 0
  local function dive(depth)
    depth_reached = math.max(depth_reached, depth)
    if depth < 260 then
      pcall(dive, depth + 1)
    end
    pcall(cad.poll, cad, 1)
  end
  dive(1)
  H.drain(cad)
  H.eq(#ran, 200, "every callback ran")
  local seen = {}
  for _, id in ipairs(ran) do
    H.check(not seen[id], "request " .. id .. " delivered once")
    seen[id] = true
  end
  for _, id in ipairs(ids) do
    H.check(seen[id], "request " .. id .. " delivered")
  end
  for _, f in ipairs(failures) do
    H.eq(f.kind, "delivery", "a delivery failure is reported as one")
    H.check(f.message:find("stays ready for the next poll", 1, true), f.message)
  end
  H.eq(cad:pending(), 0, "pending")
  cad:close()
end)

H.test("cad:close() inside a callback is safe and later callbacks still run once", function()
  local cad = sonoran.new(H.config())
  local results = {}
  start(cad, 20, function(res)
    results[#results + 1] = res
    if #results == 1 then
      cad:close()
      local ok, err = pcall(cad.check_api_id, cad, { apiId = BRIAN_ID }, function() end)
      H.check(not ok and tostring(err):find("closed", 1, true), "a closed client refuses: " .. tostring(err))
    end
  end)
  wait_ready(cad, 1)
  H.drain(cad)
  H.eq(#results, 20, "every callback ran once")
  H.eq(cad:pending(), 0, "pending")
  H.eq(#H.sonoran_threads_settled(), 0, "no library thread left")
end)

H.test("a value built from shared sub-tables is refused at the size cap, not converted forever", function()
  local cad = sonoran.new(H.config())
  -- 40 levels, each holding the next twice: 2^40 leaves once encoded. Without a budget this
  -- takes longer than the script's time limit; with one it stops at max_request_bytes.
  local t = { "leaf" }
  for _ = 1, 40 do
    t = { a = t, b = t }
  end
  -- The generic call of each API: its data (legacy) or body (v2) is what is refused.
  local generic, field = function()
    cad:request("UNIT_STATUS", { apiId = BRIAN_ID, status = t }, function() end)
  end, "data"
  if H.v2 then
    generic, field = function() cad:request_v2("POST", "/v2/emergency/units/status", { status = t }, function() end) end, "body"
  end
  local err = H.raises(generic, "once encoded as JSON")
  H.check(err:find("sonoran: " .. field, 1, true), err)
  H.eq(cad:pending(), 0, "nothing was accepted")
  H.raises(function() cad:is_linked({ t }, function() end) end, "identifiers")
  cad:close()
end)

H.finish()
