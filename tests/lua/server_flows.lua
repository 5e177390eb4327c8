-- apicheck.lua and tablet.lua on a simulated server: players join, a tablet login arrives,
-- ticks poll the client. Once with a plain host table, once with server_host.fivem over stubs.
-- Runs on both APIs with the scripts unchanged: only what the tablet forwards differs (the
-- legacy login capture, or v2's scad:account-link message).
local H = require("harness")
local sonoran = require("sonoran")

-- A simulated server: the host table the scripts are written against, plus a way to play events.
local function simulated()
  local sim = { joins = {}, commands = {}, tablet = nil, chat = {}, ids = {} }
  sim.host = {
    on_join = function(fn) sim.joins[#sim.joins + 1] = fn end,
    on_command = function(name, fn) sim.commands[name] = fn end,
    on_tablet_login = function(fn) sim.tablet = fn end,
    tell = function(player, text) sim.chat[#sim.chat + 1] = player .. ": " .. text end,
    identifiers = function(player) return sim.ids[player] end,
  }
  function sim.join(player, ids)
    sim.ids[player] = ids
    for _, fn in ipairs(sim.joins) do fn(player) end
  end
  --- How many chat lines contain `needle`.
  function sim.count(needle)
    local n = 0
    for _, line in ipairs(sim.chat) do
      if line:find(needle, 1, true) then n = n + 1 end
    end
    return n
  end
  function sim.said(needle) return sim.count(needle) > 0 end
  return sim
end

local function tick_until(cad, cond)
  H.poll_until(cad, cond, 20)
end

--- The account-link message a v2 CAD's tablet posts after `username` logs in (secret: the
--- account's own unless given), as a table.
local function account_link(username, secret)
  return { type = "scad:account-link", accountUuid = H.uuid(username), secretUuid = secret or H.secret(username) }
end

local function json_of(msg)
  return ('{"type": "%s", "accountUuid": "%s", "secretUuid": "%s"}'):format(msg.type, msg.accountUuid, msg.secretUuid)
end

--- What the tablet UI forwards to the server when `username` logs into the CAD: the legacy
--- console line, or on v2 the account-link message (its JSON text, or the table if `as_table`).
local function login_for(username, session, as_table)
  if H.v2 then
    local msg = account_link(username)
    return as_table and msg or json_of(msg)
  end
  return "[tablet] LOGIN COMMUNITY: {" .. H.env("SONORAN_COMMUNITY") .. "} USERNAME: {" .. username ..
    "} SESSIONID: {" .. session .. "}"
end

--- "Your CAD account ... is now linked": legacy names the username; v2's message has none.
local function now_linked(player, username, api_id)
  local account = H.v2 and "" or (username .. " ")
  return ("%s: Your CAD account %sis now linked (API ID %s)."):format(player, account, api_id)
end

H.test("players join, an unlinked one logs in on the tablet and is linked", function()
  local cad = sonoran.new(H.config())
  local sim = simulated()
  local apicheck = require("apicheck").start(cad, sim.host)
  require("tablet").start(cad, sim.host)

  sim.join("brian", { "steam:11000010499F33C", "license:a" })
  sim.join("newbie", { "license:b", "steam:11000010SIM0001" })
  sim.join("nosteam", { "license:c" })
  tick_until(cad, function() return cad:pending() == 0 end)
  H.eq(apicheck.status.brian, true, "brian is linked")
  H.eq(apicheck.status.newbie, false, "newbie is not")
  H.check(sim.said("newbie: You are not linked"), "newbie was told how to link")
  H.check(sim.said("nosteam: The CAD could not identify you"), "no steam identifier explained")
  H.check(not sim.said("brian: You are not linked"), "brian was not nagged")

  sim.commands.apiid("newbie", {})
  tick_until(cad, function() return sim.said("Your API ID is 11000010SIM0001 (not linked)") end)

  sim.tablet("newbie", login_for("CivilianNoIds", "sim-75afeea"))
  tick_until(cad, function() return sim.said(now_linked("newbie", "CivilianNoIds", "11000010SIM0001")) end)
  local linked
  apicheck.is_linked("newbie", function(l) linked = l end)
  tick_until(cad, function() return linked ~= nil end)
  H.eq(linked, true, "the exported check sees the link")
  sim.commands.apiid("newbie", {})
  tick_until(cad, function() return sim.said("Your API ID is 11000010SIM0001 (linked)") end)

  if H.v2 then
    -- The message comes again after every login or reconnect (here as a table): links/set
    -- sets the same link again.
    sim.tablet("newbie", login_for("CivilianNoIds", nil, true))
    tick_until(cad, function() return sim.count(now_linked("newbie", "CivilianNoIds", "11000010SIM0001")) == 2 end)
  else
    sim.tablet("newbie", '{"username": "CivilianNoIds", "session": "sim-2"}')
    tick_until(cad, function() return sim.said("newbie: Your CAD account is already linked") end)
  end

  -- A capture a player made up is refused before anything is sent, naming the field.
  local before = cad:stats().submitted
  if H.v2 then
    local smuggled = '{"type": "scad:account-link", "accountUuid": "' .. H.uuid("SonoranBrian") ..
      '", "secretUuid": "' .. H.secret("SonoranBrian") .. '", "communityUserId": "11000010OTHER01"}'
    sim.tablet("brian", smuggled)
    H.check(sim.said("brian: The tablet login could not be read: capture.communityUserId"), "smuggled id refused")
  else
    sim.tablet("brian", '{"username": "x", "session": "y", "community": "OTHER"}')
    H.check(sim.said("brian: The tablet login could not be read: capture.community"), "hostile capture refused")
  end
  -- The other API's login form is refused by the library, and the player is told why.
  if H.v2 then
    sim.tablet("brian", "LOGIN COMMUNITY: {TESTCOMM} USERNAME: {SonoranBrian} SESSIONID: {abc}")
    H.check(sim.said("brian: Linking refused:") and sim.said("scad:account-link"), "legacy login on v2: " .. sim.chat[#sim.chat])
  else
    sim.tablet("brian", account_link("SonoranBrian"))
    H.check(sim.said("brian: Linking refused:") and sim.said("api_version"), "v2 message on legacy: " .. sim.chat[#sim.chat])
  end
  H.eq(cad:stats().submitted, before, "nothing was sent for the refused logins")
  cad:close()
  H.drain(cad)
end)

if H.v2 then
  H.test("v2: a wrong secret is refused by the CAD, and no secret reaches the chat", function()
    local cad = sonoran.new(H.config())
    local sim = simulated()
    require("apicheck").start(cad, sim.host)
    local results = {}
    require("tablet").start(cad, sim.host, { on_result = function(_, res) results[#results + 1] = res end })
    sim.join("medic", { "steam:11000010SIM0002" })
    tick_until(cad, function() return sim.said("medic: You are not linked") end)
    local wrong = "0b7c1d2e-3f40-4a5b-8c6d-7e8f90a1b2c3"
    sim.tablet("medic", account_link("MedicSmith", wrong))
    tick_until(cad, function() return sim.said("medic: Linking failed: HTTP 403") end)
    H.eq(results[1].error.code, "FORBIDDEN", "code")
    H.check(sim.said("do not match"), "the player is told why: " .. sim.chat[#sim.chat])
    sim.tablet("medic", account_link("MedicSmith"))
    tick_until(cad, function() return sim.said(now_linked("medic", "MedicSmith", "11000010SIM0002")) end)
    H.eq(#results, 2, "results")
    for _, line in ipairs(sim.chat) do
      H.check(not line:find(wrong, 1, true), "wrong secret in chat: " .. line)
      H.check(not line:find(H.secret("MedicSmith"), 1, true), "secret in chat: " .. line)
    end
    for _, res in ipairs(results) do
      local text = H.dump(res)
      H.check(not text:find(wrong, 1, true) and not text:find(H.secret("MedicSmith"), 1, true), "secret in " .. text)
    end
    cad:close()
    H.drain(cad)
  end)
end

H.test("the same scripts on a FiveM-style host", function()
  local handlers, chat = {}, {}
  AddEventHandler = function(name, fn) handlers[name] = fn end
  RegisterNetEvent = function() end
  RegisterCommand = function(name, fn) handlers["/" .. name] = fn end
  TriggerClientEvent = function(_, player, msg) chat[#chat + 1] = player .. ": " .. msg.args[2] end
  GetPlayerIdentifiers = function(player) return { "steam:" .. player } end
  local host = require("server_host").fivem()
  local cad = sonoran.new(H.config())
  require("apicheck").start(cad, host)
  require("tablet").start(cad, host)
  source = "11000010FIVEM01"
  handlers.playerJoining()
  H.poll_until(cad, function() return #chat > 0 end, 20)
  H.check(chat[1]:find("You are not linked", 1, true) ~= nil, chat[1])
  -- A net event carries the message as a table on v2 (the legacy capture is a string).
  handlers["sonoran:tabletLogin"](login_for("PendingRecruit", "fivem-1", true))
  H.poll_until(cad, function() return #chat > 1 end, 20)
  H.eq(chat[2], now_linked("11000010FIVEM01", "PendingRecruit", "11000010FIVEM01"), "chat[2]")
  cad:close()
  H.drain(cad)
end)

H.finish()
