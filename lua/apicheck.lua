-- apicheck.lua: the API ID checker for game servers.
--
-- Checks every joining player, tells unlinked ones how to link, answers /apiid, and exports
-- "is this player linked?" for other scripts. Written against a small host table (see
-- server_host.lua for FiveM-style and Garry's Mod-style hosts):
--   host.on_join(fn(player))              host.on_command(name, fn(player, args))
--   host.tell(player, text)               host.identifiers(player) -> { "steam:...", ... }
--
--   local apicheck = require("apicheck").start(cad, host)
--   apicheck.is_linked(player, function(linked, res) ... end)   -- linked: true / false / nil (error)
local M = {}

M.UNLINKED = "You are not linked to the CAD yet: open the tablet and log into the CAD to link your account."

function M.start(cad, host, opts)
  opts = opts or {}
  local self = { status = {} } -- player -> true / false (nil while unknown or after an error)

  --- cb(linked, res): linked is true or false, or nil when the check failed (res.error says why;
  --- a failure is never taken as "not linked").
  function self.is_linked(player, cb)
    return cad:is_linked(host.identifiers(player), function(res)
      if res.ok then
        self.status[player] = res.data.linked
        cb(res.data.linked, res)
      else
        cb(nil, res)
      end
    end)
  end

  host.on_join(function(player)
    self.is_linked(player, function(linked, res)
      if linked == false then
        host.tell(player, opts.unlinked_message or M.UNLINKED)
      elseif linked == nil and res.error.code == "NO_IDENTIFIER" then
        host.tell(player, "The CAD could not identify you: " .. res.error.message)
      elseif linked == nil and host.log then
        host.log("sonoran apicheck: could not check " .. tostring(player) .. ": " .. res.error.code .. " " .. res.error.message)
      end
    end)
  end)

  host.on_command(opts.command or "apiid", function(player)
    self.is_linked(player, function(linked, res)
      if linked == nil then
        host.tell(player, "Could not check your API ID: " .. res.error.message)
      else
        host.tell(player, "Your API ID is " .. res.data.apiId .. (linked and " (linked)" or " (not linked)"))
      end
    end)
  end)

  return self
end

return M
