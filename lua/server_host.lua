-- server_host.lua: the host table apicheck.lua and tablet.lua are written against, built from
-- a FiveM-style or a Garry's Mod-style server's globals.
--   on_join(fn(player)), on_command(name, fn(player, args)), on_tablet_login(fn(player, capture)),
--   tell(player, text), identifiers(player) -> list, log(text), after(seconds, fn) (a one-shot
--   timer, for examples/link_command.lua)
local M = {}

--- FiveM's host API: playerJoining, RegisterCommand, chat:addMessage, GetPlayerIdentifiers, and a
--- net event (default "sonoran:tabletLogin") the tablet UI's client script triggers. For hosts
--- with that API that load native modules; FiveM and RedM themselves cannot load sonoran.so.
function M.fivem(opts)
  opts = opts or {}
  return {
    on_join = function(fn)
      AddEventHandler("playerJoining", function() fn(source) end)
    end,
    on_command = function(name, fn)
      RegisterCommand(name, function(src, args) fn(src, args) end, false)
    end,
    on_tablet_login = function(fn)
      RegisterNetEvent(opts.tablet_event or "sonoran:tabletLogin")
      AddEventHandler(opts.tablet_event or "sonoran:tabletLogin", function(capture) fn(source, capture) end)
    end,
    tell = function(player, text)
      TriggerClientEvent("chat:addMessage", player, { args = { "CAD", text } })
    end,
    identifiers = function(player) return GetPlayerIdentifiers(player) end,
    log = print,
    after = function(seconds, fn) SetTimeout(math.floor(seconds * 1000), fn) end,
  }
end

--- Garry's Mod: PlayerInitialSpawn, PlayerSay ("/name"), ChatPrint, SteamID64, and a net
--- message (default "sonoran_tablet_login") carrying the capture string.
function M.gmod(opts)
  opts = opts or {}
  local commands = {}
  hook.Add("PlayerSay", "sonoran.commands", function(ply, text)
    local name, rest = text:match("^/(%S+)%s*(.*)$")
    if name and commands[name] then
      commands[name](ply, rest)
      return ""
    end
  end)
  return {
    on_join = function(fn) hook.Add("PlayerInitialSpawn", "sonoran.apicheck", fn) end,
    on_command = function(name, fn) commands[name] = fn end,
    on_tablet_login = function(fn)
      local msg = opts.tablet_message or "sonoran_tablet_login"
      util.AddNetworkString(msg)
      net.Receive(msg, function(_, ply) fn(ply, net.ReadString()) end)
    end,
    tell = function(ply, text) ply:ChatPrint("[CAD] " .. text) end,
    identifiers = function(ply) return { "steam:" .. ply:SteamID64(), "license:" .. ply:SteamID() } end,
    log = print,
    after = function(seconds, fn) timer.Simple(seconds, fn) end,
  }
end

return M
