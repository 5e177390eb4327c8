-- close() and __gc: every request completes exactly once and no library thread survives.
-- Runs on both APIs (H.api).
local H = require("harness")
local sonoran = require("sonoran")

H.test("close with 1,000 requests in flight: each callback exactly once, ok or SHUTDOWN", function()
  local cad = sonoran.new(H.config("_SLOW"))
  local seen, ids = {}, {}
  for i = 1, 1000 do
    local id = H.version(cad, function(res)
      seen[res.id] = (seen[res.id] or 0) + 1
      if not res.ok then H.eq(res.error.code, "SHUTDOWN", "code of request " .. res.id) end
    end)
    ids[i] = id
  end
  H.eq(cad:pending(), 1000, "pending before close")
  cad:close()
  H.eq(#H.sonoran_threads_settled(), 0, "library threads after close")
  H.raises(function() H.version(cad) end, "the client is closed")
  H.drain(cad)
  local shutdown = 0
  for _, id in ipairs(ids) do
    H.eq(seen[id], 1, "callbacks of request " .. id)
  end
  H.eq(cad:pending(), 0, "pending after draining")
  H.eq(cad:poll(), 0, "nothing left")
  cad:close() -- idempotent
end)

H.test("threads run while a client is open and stop at close", function()
  local cad = sonoran.new(H.config())
  H.check(#H.sonoran_threads_started() > 0, "worker threads while open")
  cad:close()
  H.eq(#H.sonoran_threads_settled(), 0, "threads after close")
end)

H.test("__gc of an unclosed client stops its threads", function()
  do
    local cad = sonoran.new(H.config("_SLOW"))
    H.version(cad) -- no callback: nothing keeps the client alive
    H.check(#H.sonoran_threads_started() > 0, "threads while open")
  end
  collectgarbage()
  collectgarbage()
  H.eq(#H.sonoran_threads_settled(), 0, "threads after collectgarbage()")
end)

H.test("__gc with callbacks still waiting reports them instead of losing them silently", function()
  do
    local cad = sonoran.new(H.config("_SLOW"))
    H.version(cad, function() end) -- the callback does not reference cad
  end
  collectgarbage()
  collectgarbage()
  H.eq(#H.sonoran_threads_settled(), 0, "threads after collectgarbage()")
end)

if _VERSION == "Lua 5.4" then
  H.test("local cad <close> closes at the end of the scope", function()
    local chunk = assert(load([[
      local sonoran, cfg, version = ...
      local cad <close> = sonoran.new(cfg)
      version(cad)
      return cad
    ]]))
    local cad = chunk(sonoran, H.config("_SLOW"), H.version)
    H.eq(#H.sonoran_threads_settled(), 0, "threads after leaving the scope")
    H.drain(cad)
  end)
end

H.finish()
