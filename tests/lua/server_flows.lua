-- apicheck.lua and tablet.lua on a simulated server: players join, a tablet login arrives,
-- ticks poll the client. Once with a plain host table, once with server_host.fivem over stubs.
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
  function sim.said(needle)
    for _, line in ipairs(sim.chat) do
      if line:find(needle, 1, true) then return true end
    end
    return false
  end
  return sim
end

local function tick_until(cad, cond)
  H.poll_until(cad, cond, 20)
end

local function capture_for(username, session)
  return "[tablet] LOGIN COMMUNITY: {" .. H.env("SONORAN_COMMUNITY") .. "} USERNAME: {" .. username ..
    "} SESSIONID: {" .. session .. "}"
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

  sim.tablet("newbie", capture_for("CivilianNoIds", "sim-75afeea"))
  tick_until(cad, function() return sim.said("newbie: Your CAD account CivilianNoIds is now linked") end)
  local linked
  apicheck.is_linked("newbie", function(l) linked = l end)
  tick_until(cad, function() return linked ~= nil end)
  H.eq(linked, true, "the exported check sees the link")

  sim.tablet("newbie", '{"username": "CivilianNoIds", "session": "sim-2"}')
  tick_until(cad, function() return sim.said("newbie: Your CAD account is already linked") end)

  sim.tablet("brian", '{"username": "x", "session": "y", "community": "OTHER"}')
  H.check(sim.said("brian: The tablet login could not be read: capture.community"), "hostile capture refused")
  cad:close()
  H.drain(cad)
end)

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
  handlers["sonoran:tabletLogin"](capture_for("PendingRecruit", "fivem-1"))
  H.poll_until(cad, function() return #chat > 1 end, 20)
  H.check(chat[2]:find("is now linked", 1, true) ~= nil, chat[2])
  cad:close()
  H.drain(cad)
end)

H.finish()
