-- tablet.lua: links a player when the in-game tablet reports their CAD login.
--
-- The tablet UI forwards what the CAD revealed to the server: on the legacy API the console
-- line `LOGIN COMMUNITY: {..} USERNAME: {..} SESSIONID: {..}` or the iframe message
-- {username, session}; on v2 the iframe message {type = "scad:account-link", accountUuid,
-- secretUuid} (a table or its JSON text). This script links the player's API ID and answers
-- them in chat (never with the secret). The same script works on either API. Host table (see
-- server_host.lua):
--   host.on_tablet_login(fn(player, capture))   host.tell(player, text)
--   host.identifiers(player) -> { "steam:...", ... }
--
--   require("tablet").start(cad, host)
local sonoran = require("sonoran")
local M = {}

function M.start(cad, host, opts)
  opts = opts or {}
  local self = {}

  function self.login(player, capture)
    local parsed, reason = sonoran.parse_session(capture)
    if not parsed then
      host.tell(player, "The tablet login could not be read: " .. reason)
      return nil
    end
    local ok, id = pcall(cad.link_from_tablet, cad, capture, host.identifiers(player), function(res)
      if res.ok and res.data.outcome == "LINKED" then
        -- v2's account-link message names no username, only the account's UUID.
        local account = parsed.username and (parsed.username .. " ") or ""
        host.tell(player, "Your CAD account " .. account .. "is now linked (API ID " .. res.data.apiId .. ").")
      elseif res.ok then
        host.tell(player, "Your CAD account is already linked.")
      else
        host.tell(player, "Linking failed: " .. res.error.message)
      end
      if opts.on_result then opts.on_result(player, res) end
    end)
    if not ok then
      host.tell(player, "Linking refused: " .. tostring(id))
      return nil
    end
    return id
  end

  host.on_tablet_login(self.login)
  return self
end

return M
