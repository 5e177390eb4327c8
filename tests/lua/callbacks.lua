-- Callbacks: protected mode, error handlers, new requests from a callback, await, cancel,
-- a poll loop that never blocks, two clients in one state. Runs on both APIs (H.api).
local H = require("harness")
local sonoran = require("sonoran")

local cad = sonoran.new(H.config())
local BRIAN_ID = "11000010499F33C"

H.test("a callback that raises is reported; the others still run", function()
  local reports, ran = {}, {}
  local previous = sonoran.on_error(function(message, id) reports[#reports + 1] = { message = message, id = id } end)
  local bad = cad:check_api_id({ apiId = BRIAN_ID }, function() error("boom from a callback") end)
  for i = 1, 3 do
    cad:check_api_id({ apiId = BRIAN_ID }, function(res) ran[#ran + 1] = res.id end)
  end
  H.drain(cad)
  sonoran.on_error(previous)
  H.eq(#ran, 3, "other callbacks ran")
  H.eq(#reports, 1, "reports")
  H.eq(reports[1].id, bad, "reported id")
  H.check(reports[1].message:find("boom from a callback", 1, true), "message " .. reports[1].message)
  H.check(reports[1].message:find("traceback", 1, true), "message carries a traceback")
end)

H.test("a client's own handler comes first; a failing handler falls back to stderr", function()
  local mine = 0
  cad:on_error(function() mine = mine + 1 end)
  cad:check_api_id({ apiId = BRIAN_ID }, function() error({ "a table error" }) end)
  H.drain(cad)
  H.eq(mine, 1, "client handler ran")
  cad:on_error(function() error("handler broke too") end)
  cad:check_api_id({ apiId = BRIAN_ID }, function() error("second") end)
  H.drain(cad) -- writes one line to stderr, must not raise
  cad:on_error(nil)
  H.raises(function() sonoran.on_error(42) end, "expected a function")
end)

H.test("the default handler writes to stderr and poll goes on", function()
  local ran = false
  cad:check_api_id({ apiId = BRIAN_ID }, function() error("expected test error: default handler") end)
  cad:check_api_id({ apiId = BRIAN_ID }, function() ran = true end)
  H.drain(cad)
  H.check(ran, "second callback ran")
end)

H.test("a callback may start new requests (chained three deep)", function()
  local chain = {}
  cad:check_api_id({ apiId = BRIAN_ID }, function(res)
    chain[#chain + 1] = H.linked_to(res, "SonoranBrian").ok
    cad:get_account({ apiId = BRIAN_ID }, function(acc)
      chain[#chain + 1] = acc.data.username
      H.version(cad, function(v)
        chain[#chain + 1] = v.ok
      end)
    end)
  end)
  H.drain(cad)
  H.eq(#chain, 3, "chain length")
  H.eq(chain[1], true, "first link")
  H.eq(chain[2], "SonoranBrian", "second link")
  H.eq(chain[3], true, "third link")
end)

H.test("poll(max) runs at most max callbacks and returns the count", function()
  local n = 0
  for _ = 1, 5 do H.version(cad, function() n = n + 1 end) end
  local deadline = os.time() + 20
  while cad:pending() > 0 do
    local ran = cad:poll(2)
    H.check(ran <= 2, "ran " .. ran)
    H.check(os.time() <= deadline, "timed out")
  end
  H.eq(n, 5, "callbacks")
  H.raises(function() cad:poll(-1) end, "max: expected a count")
end)

H.test("await inside a coroutine yields until poll delivers", function()
  local got, finished = nil, false
  local co = coroutine.create(function()
    local res = cad:await(cad:get_account({ username = "OfficerJones" }))
    got = res
    local second = cad:await(cad:check_api_id({ apiId = "NOBODY" }))
    finished = second.error.code
  end)
  assert(coroutine.resume(co))
  H.eq(coroutine.status(co), "suspended", "suspended while waiting")
  H.poll_until(cad, function() return finished end)
  H.eq(got.data.username, "OfficerJones", "first await")
  H.eq(finished, "NOT_LINKED", "second await")
  H.eq(coroutine.status(co), "dead", "coroutine finished")
end)

H.test("await: outside a coroutine, on a request with a callback, on an unknown id", function()
  local id = H.version(cad)
  H.raises(function() cad:await(id) end, "await must run inside a coroutine")
  local with_cb = H.version(cad, function() end)
  local co = coroutine.wrap(function()
    H.raises(function() cad:await(with_cb) end, "already has a callback")
    H.raises(function() cad:await(987654) end, "is not pending on this client")
    return "checked"
  end)
  H.eq(co(), "checked", "coroutine ran")
  H.drain(cad)
end)

H.test("await with a wait function (host scheduler style)", function()
  local id = cad:check_api_id({ apiId = BRIAN_ID })
  local waits = 0
  local res = cad:await(id, function() waits = waits + 1; cad:poll() end)
  H.linked_to(res, "SonoranBrian")
  H.check(waits >= 1, "waited")
end)

H.test("an error after await inside the coroutine is reported", function()
  local reported
  cad:on_error(function(message) reported = message end)
  coroutine.wrap(function()
    cad:await(H.version(cad))
    error("after await")
  end)()
  H.drain(cad)
  cad:on_error(nil)
  H.check(reported and reported:find("after await", 1, true), "reported: " .. tostring(reported))
end)

H.test("cancel: CANCELLED once, unknown ids false, bad ids raise", function()
  local slow = sonoran.new(H.config("_SLOW"))
  local results = {}
  local id = H.version(slow, function(r) results[#results + 1] = r end)
  H.eq(slow:cancel(id), true, "cancel")
  H.eq(slow:cancel(id), false, "second cancel")
  H.eq(slow:cancel(123456), false, "unknown id")
  H.raises(function() slow:cancel("x") end, "id: expected a request id")
  H.drain(slow)
  H.eq(#results, 1, "one result")
  H.eq(results[1].error.code, "CANCELLED", "code")
  slow:close()
end)

H.test("a poll loop with nothing ready never blocks", function()
  local slow = sonoran.new(H.config("_SLOW"))
  H.version(slow, function() end) -- in flight for the whole loop
  local polls, worst = 0, 0
  local start = os.clock()
  while os.clock() - start < 0.05 do
    local t = os.clock()
    H.eq(slow:poll(), 0, "nothing ready")
    local d = os.clock() - t
    if d > worst then worst = d end
    polls = polls + 1
  end
  H.check(polls > 100, "only " .. polls .. " polls in 50 ms")
  H.check(worst < 0.02, "a poll took " .. worst .. " s")
  H.eq(slow:pending(), 1, "still in flight")
  slow:close()
  H.drain(slow)
end)

H.test("two clients in one state: results never cross", function()
  local a = sonoran.new(H.config())
  local b = sonoran.new(H.config())
  local got_a, got_b = {}, {}
  for _ = 1, 10 do
    a:get_account({ username = "SonoranBrian" }, function(r) got_a[#got_a + 1] = r.data.username end)
    b:get_account({ username = "MedicSmith" }, function(r) got_b[#got_b + 1] = r.data.username end)
  end
  H.poll_until(a, function() b:poll(); return a:pending() == 0 and b:pending() == 0 end)
  H.eq(#got_a, 10, "a results")
  H.eq(#got_b, 10, "b results")
  for i = 1, 10 do
    H.eq(got_a[i], "SonoranBrian", "a result " .. i)
    H.eq(got_b[i], "MedicSmith", "b result " .. i)
  end
  a:close()
  b:close()
end)

cad:close()
H.drain(cad)
H.finish()
