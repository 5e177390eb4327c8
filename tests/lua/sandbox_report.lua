-- Sandboxed hosts: the default report of a callback error (and host_adapter's report of a failed
-- poll) goes to io.stderr, and through print where the host has no io.stderr (a Luanti mod's
-- io) or no io at all. Runs on both APIs (H.api); nothing in it depends on the API.
local H = require("harness")
local sonoran = require("sonoran")
local adapter = require("host_adapter")

local cad = sonoran.new(H.config())
local BRIAN_ID = "11000010499F33C"

local real_io, real_stderr, real_print = io, io.stderr, print

--- Run fn with the host changed by `setup` (it may remove io.stderr or io) and print captured;
--- everything is put back before returning, also when fn fails. Returns the printed lines.
local function sandboxed(setup, fn)
  local printed = {}
  print = function(...)
    local parts = {}
    for i = 1, select("#", ...) do parts[#parts + 1] = tostring((select(i, ...))) end
    printed[#printed + 1] = table.concat(parts, "\t")
  end
  setup()
  local ok, err = xpcall(fn, function(m) return debug.traceback(tostring(m), 2) end)
  io = real_io
  io.stderr = real_stderr
  print = real_print
  if not ok then error(err, 0) end
  return printed
end

local function without_stderr() io.stderr = nil end
local function without_io() io = nil end

--- One request whose callback raises `message`, plus one that does not; drained, then polled
--- again a few times: the raising callback must have run exactly once. Returns its request id.
local function raise_in_callback(message)
  local runs, other = 0, false
  local id = cad:check_api_id({ apiId = BRIAN_ID }, function()
    runs = runs + 1
    error(message)
  end)
  cad:check_api_id({ apiId = BRIAN_ID }, function() other = true end)
  H.drain(cad)
  for _ = 1, 5 do H.eq(cad:poll(), 0, "nothing left to deliver") end
  H.eq(runs, 1, "the raising callback ran once")
  H.check(other, "the other callback ran")
  return id
end

--- The printed lines hold exactly the report of request `id`'s error `message`.
local function printed_report(printed, id, message)
  H.eq(#printed, 1, "printed lines: " .. table.concat(printed, " | "))
  local line = printed[1]
  local prefix = ("sonoran: callback of request %d failed: "):format(id)
  H.eq(line:sub(1, #prefix), prefix, "report line")
  H.check(line:find(message, 1, true), "the callback's message in: " .. line)
  H.check(line:find("traceback", 1, true), "with a traceback: " .. line)
end

H.test("no io.stderr: a callback error reaches print, once, and poll goes on", function()
  local id
  local printed = sandboxed(without_stderr, function()
    id = raise_in_callback("expected test error: no io.stderr")
  end)
  printed_report(printed, id, "expected test error: no io.stderr")
end)

H.test("no io at all: a callback error reaches print, once, and poll goes on", function()
  local id
  local printed = sandboxed(without_io, function()
    H.eq(io, nil, "io removed")
    id = raise_in_callback("expected test error: no io")
  end)
  printed_report(printed, id, "expected test error: no io")
end)

H.test("no io.stderr: a failing client handler is reported through print", function()
  local id
  local printed = sandboxed(without_stderr, function()
    cad:on_error(function() error("expected test error: the handler broke") end)
    local ok, err = pcall(function() id = raise_in_callback("expected test error: first") end)
    cad:on_error(nil)
    if not ok then error(err, 0) end
  end)
  H.eq(#printed, 1, "printed lines: " .. table.concat(printed, " | "))
  H.check(printed[1]:find(("sonoran: callback of request %d failed: the error handler itself failed ("):format(id), 1, true),
    printed[1])
  H.check(printed[1]:find("expected test error: the handler broke", 1, true), printed[1])
  H.check(printed[1]:find("expected test error: first", 1, true), printed[1])
end)

H.test("io.stderr present: the report goes there, not to print", function()
  local written = {}
  local fake = { write = function(self, ...)
    for i = 1, select("#", ...) do written[#written + 1] = select(i, ...) end
    return self
  end }
  local id
  local printed = sandboxed(function() io.stderr = fake end, function()
    id = raise_in_callback("expected test error: to stderr")
  end)
  H.eq(#printed, 0, "printed lines: " .. table.concat(printed, " | "))
  local text = table.concat(written)
  H.check(text:find(("^sonoran: callback of request %d failed: "):format(id)), text)
  H.check(text:find("expected test error: to stderr", 1, true), text)
  H.eq(text:sub(-1), "\n", "one line")
end)

H.test("an io.stderr that fails to write: the report reaches print", function()
  local broken = setmetatable({}, { __index = function() error("expected test error: stderr is broken") end })
  local id
  local printed = sandboxed(function() io.stderr = broken end, function()
    id = raise_in_callback("expected test error: broken stderr")
  end)
  printed_report(printed, id, "expected test error: broken stderr")
end)

H.test("host_adapter: a failed poll is reported through print without io", function()
  local ticks = {}
  local printed = sandboxed(without_io, function()
    adapter.every_tick(function(fn) ticks[#ticks + 1] = fn end, cad, { max = -1 })
    H.eq(#ticks, 1, "registered one tick function")
    ticks[1]() -- poll(-1) raises (misuse); the tick must survive it
  end)
  H.eq(#printed, 1, "printed lines: " .. table.concat(printed, " | "))
  H.check(printed[1]:find("^sonoran: poll failed: "), printed[1])
  H.check(printed[1]:find("max: expected a count", 1, true), printed[1])
end)

H.test("host_adapter: with io.stderr, a failed poll is written there", function()
  local written = {}
  local fake = { write = function(self, ...)
    for i = 1, select("#", ...) do written[#written + 1] = select(i, ...) end
    return self
  end }
  local ticks = {}
  local printed = sandboxed(function() io.stderr = fake end, function()
    adapter.every_tick(function(fn) ticks[#ticks + 1] = fn end, cad, { max = -1 })
    ticks[1]()
  end)
  H.eq(#printed, 0, "printed lines: " .. table.concat(printed, " | "))
  H.check(table.concat(written):find("^sonoran: poll failed: .*max: expected a count.*\n$"), table.concat(written))
end)

cad:close()
H.drain(cad)
H.finish()
