-- lua/examples/link_command.lua on a simulated server. On v2: /link tells the page and the code,
-- the script re-checks at its interval (an option: 5 s here, 30 s by default) until the player
-- enters the code (the emulator's stand-in for sonorancad.com/id completes it) and tells them;
-- an unused code expires. On the legacy API (no link codes) the player is told to use the tablet.
-- The host's timers run on a simulated clock the test moves forward, so the interval is checked
-- exactly and nothing waits; the client and the emulator are real.
local H = require("harness")
local sonoran = require("sonoran")
local link_command = dofile("lua/examples/link_command.lua")

local INTERVAL = 5 -- seconds between two checks of a player (the example's default is 30)

-- A simulated server: the host table, and one-shot timers on a clock only the test moves.
local function simulated()
  local sim = { commands = {}, chat = {}, ids = {}, timers = {}, logged = {}, t = os.time() }
  function sim.now() return sim.t end
  sim.host = {
    on_command = function(name, fn) sim.commands[name] = fn end,
    tell = function(player, text) sim.chat[#sim.chat + 1] = player .. ": " .. text end,
    identifiers = function(player) return sim.ids[player] end,
    after = function(seconds, fn) sim.timers[#sim.timers + 1] = { due = sim.t + seconds, fn = fn } end,
    log = function(text) sim.logged[#sim.logged + 1] = text end,
  }
  --- Run the timers that are due; returns how many ran.
  function sim.run_due()
    local due, later = {}, {}
    for _, t in ipairs(sim.timers) do
      if t.due <= sim.t then due[#due + 1] = t else later[#later + 1] = t end
    end
    sim.timers = later
    for _, t in ipairs(due) do t.fn() end
    return #due
  end
  function sim.said(needle)
    for _, line in ipairs(sim.chat) do
      if line:find(needle, 1, true) then return true end
    end
    return false
  end
  --- The server's ticks at the current time: poll and run due timers until nothing is left to
  --- do now (every request answered, no timer due). 20 s at most.
  function sim.settle(cad)
    H.tick_until(function()
      cad:poll()
      sim.run_due()
    end, function()
      if cad:pending() > 0 then return false end
      for _, t in ipairs(sim.timers) do
        if t.due <= sim.t then return false end
      end
      return true
    end, 20)
  end
  --- Move the clock forward and let the server catch up.
  function sim.advance(cad, seconds)
    sim.t = sim.t + seconds
    sim.settle(cad)
  end
  return sim
end

H.test("parse_utc reads the API's expiresAt as UTC", function()
  for _, t in ipairs({ 0, 951782400, 1775762700, os.time(), 4102444800 }) do
    H.eq(link_command.parse_utc(os.date("!%Y-%m-%dT%H:%M:%SZ", t)), t, "round trip of " .. t)
  end
  H.eq(link_command.parse_utc("2026-04-09T19:25:00Z"), 1775762700, "the documented example")
  H.eq(link_command.parse_utc("2026-04-09T19:25:00.123456"), 1775762700, "fractions, no Z (the emulator's form)")
  H.eq(link_command.parse_utc("soon"), nil, "not a time")
  H.eq(link_command.parse_utc(nil), nil, "missing")
end)

H.test("/link for a player who is already linked says so, without a code", function()
  local cad = sonoran.new(H.config())
  local sim = simulated()
  local link = link_command.start(cad, sim.host, { interval = INTERVAL, clock = sim.now })
  sim.ids.brian = { "license:b", "steam:11000010499F33C" }
  sim.commands.link("brian", {})
  sim.settle(cad)
  H.eq(sim.chat[1], "brian: " .. link_command.ALREADY_LINKED, "told")
  H.eq(#sim.chat, 1, "told once")
  H.eq(link.waiting.brian, nil, "not waiting")
  H.eq(#sim.timers, 0, "no check scheduled")
  cad:close()
  H.drain(cad)
end)

if not H.v2 then
  H.test("legacy: no link codes, the player is told to use the tablet", function()
    local cad = sonoran.new(H.config())
    local sim = simulated()
    local link = link_command.start(cad, sim.host, { interval = INTERVAL, clock = sim.now })
    sim.ids.newbie = { "steam:11000010LINK003" }
    sim.commands.link("newbie", {})
    sim.settle(cad)
    H.eq(sim.chat[1], "newbie: " .. link_command.NO_CODES, "told")
    H.eq(#sim.chat, 1, "told once")
    H.eq(link.waiting.newbie, nil, "not waiting")
    H.eq(#sim.timers, 0, "no check scheduled")
    H.check(sim.logged[1] and sim.logged[1]:find("create_link_code is a v2 API call", 1, true), tostring(sim.logged[1]))
    cad:close()
    H.drain(cad)
  end)
end

if H.v2 then
  --- A client whose checker does not cache: the simulated clock moves minutes in no real time,
  --- so the checker's cache (link_check_ttl_ms, 30 s of real time) would answer every check.
  local function client() return sonoran.new(H.config(nil, { link_check_ttl_ms = 0 })) end

  H.test("v2: /link tells the code, checks once an interval, tells the player once linked", function()
    local cad = client()
    local sim = simulated()
    local on_linked = {}
    local link = link_command.start(cad, sim.host, {
      interval = INTERVAL, clock = sim.now, on_linked = function(p) on_linked[#on_linked + 1] = p end,
    })
    sim.ids.rookie = { "license:r", "steam:11000010LINK001" }
    sim.commands.link("rookie", {})
    sim.settle(cad)
    H.eq(#sim.chat, 1, "told the code")
    local told = sim.chat[1]
    local code = told:match("%?code=(%w+)")
    H.check(code and #code == 4, "a code in: " .. told)
    H.check(told:find("rookie: To link your CAD account, open https://sonorancad.com/id?code=" .. code, 1, true), told)
    H.check(told:find("enter the code " .. code .. " there", 1, true), told)
    H.check(told:find("expires in about 10 minutes", 1, true), told)
    local w = link.waiting.rookie
    H.eq(w.code, code, "waiting for the code told")
    H.check(math.abs(w.expires - (os.time() + 600)) <= 5, ("expiry read from expiresAt: %s, now %s"):format(w.expires, os.time()))
    H.eq(#sim.timers, 1, "one check scheduled")

    -- /link again while waiting: the same code, no second loop of checks, no API call.
    local calls = cad:stats().api_calls
    sim.commands.link("rookie", {})
    sim.settle(cad)
    H.eq(#sim.chat, 2, "told again")
    H.check(sim.chat[2]:find("?code=" .. code, 1, true), sim.chat[2])
    H.eq(#sim.timers, 1, "still one check scheduled")
    H.eq(cad:stats().api_calls, calls, "no API call")

    -- While the player has not entered the code: one check an interval, never sooner, and
    -- nothing told.
    for round = 1, 3 do
      sim.advance(cad, INTERVAL - 1)
      H.eq(w.checks, round - 1, "no check before the interval is over")
      sim.advance(cad, 1)
      H.eq(w.checks, round, "one check when the interval is over")
      H.eq(cad:stats().api_calls, calls + round, "each check asks the API once")
      H.eq(#sim.timers, 1, "the next check scheduled")
    end
    H.eq(#sim.chat, 2, "nothing told while waiting")
    H.eq(link.waiting.rookie, w, "still waiting")

    -- The player enters the code at sonorancad.com/id; the next check sees the link.
    local status, body = H.complete_link_code(code, "PendingRecruit")
    H.eq(status, 200, "completion: " .. body)
    sim.advance(cad, INTERVAL)
    H.eq(sim.chat[3], "rookie: " .. link_command.LINKED, "told")
    H.eq(#sim.chat, 3, "told once")
    H.eq(w.checks, 4, "checks")
    H.eq(link.waiting.rookie, nil, "done waiting")
    H.eq(#sim.timers, 0, "no more checks")
    H.eq(on_linked[1], "rookie", "on_linked")
    H.linked_to(H.call(cad, function(cb) cad:check_api_id({ apiId = "11000010LINK001" }, cb) end), "PendingRecruit")

    sim.commands.link("rookie", {})
    sim.settle(cad)
    H.eq(sim.chat[4], "rookie: " .. link_command.ALREADY_LINKED, "a linked player gets no code")
    H.eq(#sim.timers, 0, "no check for a linked player")
    cad:close()
    H.drain(cad)
  end)

  H.test("v2: an unused code expires: the player is told once, and the checks stop", function()
    local cad = client()
    local sim = simulated()
    local link = link_command.start(cad, sim.host, { interval = INTERVAL, clock = sim.now })
    sim.ids.late = { "steam:11000010LINK002" }
    sim.commands.link("late", {})
    sim.settle(cad)
    local w = link.waiting.late
    H.check(w and w.code, "waiting for a code")
    local made = sim.t
    -- Checks every interval until the clock passes expiresAt (ten minutes), then the player
    -- is told, once. Bounded: a code the script never saw expire fails here, not by hanging.
    local rounds = 0
    while link.waiting.late and rounds < 600 / INTERVAL + 3 do
      sim.advance(cad, INTERVAL)
      rounds = rounds + 1
      H.eq(w.checks, rounds, "one check an interval")
    end
    H.eq(link.waiting.late, nil, "done waiting")
    H.check(sim.t >= w.expires and sim.t - INTERVAL < w.expires, ("told at %d s, the code expired at %d s"):format(
      sim.t - made, w.expires - made))
    H.eq(sim.chat[2], "late: Your link code " .. w.code .. " expired before it was used: type /link for a new one.", "told")
    H.eq(#sim.chat, 2, "told once")
    H.eq(#sim.timers, 0, "no more checks")
    cad:close()
    H.drain(cad)
  end)

  H.test("v2: a player who leaves while waiting stops the checks", function()
    local cad = client()
    local sim = simulated()
    local link = link_command.start(cad, sim.host, { interval = INTERVAL, clock = sim.now })
    sim.ids.gone = { "steam:11000010LINK004" }
    sim.commands.link("gone", {})
    sim.settle(cad)
    H.check(link.waiting.gone and link.waiting.gone.code, "waiting for a code")
    sim.ids.gone = nil -- the host has no identifiers for a player who left
    sim.advance(cad, INTERVAL)
    H.eq(link.waiting.gone, nil, "not waiting")
    H.eq(#sim.timers, 0, "no more checks")
    H.check(sim.logged[1] and sim.logged[1]:find("stopped checking gone", 1, true), tostring(sim.logged[1]))
    cad:close()
    H.drain(cad)
  end)
end

H.finish()
