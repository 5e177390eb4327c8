-- link_command.lua: a /link command that links a player's CAD account with a v2 link code.
--
-- On /link the player is told a page and a short code (cad:create_link_code); the script then
-- re-checks with cad:is_linked at a bounded interval (by default every 30 s, the pace of the
-- official resource) until the player is linked or the code expires, and tells them which.
-- Link codes are a v2 API feature (api_version = "v2"); on the legacy API the player is told
-- to link from the tablet instead (see tablet.lua). Written against the host table of
-- apicheck.lua (see server_host.lua), plus a timer:
--   host.on_command(name, fn(player, args))   host.tell(player, text)
--   host.identifiers(player) -> { "steam:...", ... }
--   host.after(seconds, fn)   run fn once, later (FiveM SetTimeout, Garry's Mod timer.Simple)
--   host.log(text)            optional
--
--   local link = require("link_command").start(cad, host, { interval = 30 })
--
-- Options: command ("link"); interval (seconds between two checks of a player, default 30;
-- keep it at least the client's link_check_ttl_ms, 30 s by default, or a check reads the
-- answer the checker cached); clock (the time in seconds since the epoch, default os.time);
-- on_linked(player) (called once a player is linked).
local M = {}

M.LINKED = "Your CAD account is now linked."
M.ALREADY_LINKED = "Your CAD account is already linked."
M.NO_CODES = "Linking with a code is not available on this server: open the tablet and log into the CAD to link your account."

--- Seconds since the epoch of an ISO 8601 UTC time ("2026-04-09T19:25:00Z", fractions and a
--- missing Z allowed), or nil. Not os.time{...}: that reads the fields as local time.
function M.parse_utc(text)
  if type(text) ~= "string" then return nil end
  local y, mo, d, h, mi, s = text:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)T(%d%d):(%d%d):(%d%d)")
  if not y then return nil end
  y, mo, d = tonumber(y), tonumber(mo), tonumber(d)
  -- Days since 1970-01-01 in the proleptic Gregorian calendar.
  if mo <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local mp = (mo + 9) % 12
  local doy = math.floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  local days = era * 146097 + doe - 719468
  return days * 86400 + tonumber(h) * 3600 + tonumber(mi) * 60 + tonumber(s)
end

function M.start(cad, host, opts)
  opts = opts or {}
  local command = opts.command or "link"
  local interval = opts.interval or 30
  local clock = opts.clock or os.time
  -- player -> { starting = true } while the code is asked for, then
  -- { code, url, expires (clock seconds), checks }: one wait per player at a time.
  local self = { waiting = {} }

  local function log(text)
    if host.log then host.log("sonoran link_command: " .. text) end
  end

  local function tell_code(player, w)
    local minutes = math.max(1, math.floor((w.expires - clock()) / 60 + 0.5))
    host.tell(player, ("To link your CAD account, open %s and log in (or enter the code %s there). The code "
      .. "expires in about %d minutes."):format(w.url, w.code, minutes))
  end

  -- One check of a waiting player; schedules the next one while the code is still valid.
  local function check(player, w)
    if self.waiting[player] ~= w then return end -- done, or replaced
    w.checks = w.checks + 1
    local ok, err = pcall(cad.is_linked, cad, host.identifiers(player), function(res)
      if self.waiting[player] ~= w then return end
      if res.ok and res.data.linked then
        self.waiting[player] = nil
        host.tell(player, M.LINKED)
        if opts.on_linked then opts.on_linked(player) end
      elseif clock() >= w.expires then
        self.waiting[player] = nil
        host.tell(player, ("Your link code %s expired before it was used: type /%s for a new one."):format(w.code, command))
      else
        -- Not linked yet, or the check failed (never taken as "not linked"): ask again later.
        if not res.ok then log("could not check " .. tostring(player) .. ": " .. res.error.code .. " " .. res.error.message) end
        host.after(interval, function() check(player, w) end)
      end
    end)
    if not ok then -- the player left (no identifiers any more), or the client was closed
      self.waiting[player] = nil
      log("stopped checking " .. tostring(player) .. ": " .. tostring(err))
    end
  end

  local function new_code(player)
    local ok, err = pcall(cad.create_link_code, cad, host.identifiers(player), function(res)
      if not res.ok then
        self.waiting[player] = nil
        host.tell(player, "Could not create a link code: " .. res.error.message)
        return
      end
      local now = clock()
      -- The API says when the code expires; ten minutes is its documented life otherwise.
      local w = { code = res.data.code, url = res.data.url, expires = M.parse_utc(res.data.expiresAt) or now + 600, checks = 0 }
      self.waiting[player] = w
      tell_code(player, w)
      host.after(interval, function() check(player, w) end)
    end)
    if not ok then
      self.waiting[player] = nil
      log(tostring(err))
      host.tell(player, M.NO_CODES)
    end
  end

  host.on_command(command, function(player)
    local w = self.waiting[player]
    if w and w.starting then return end
    if w then return tell_code(player, w) end -- already waiting: the same code again, no second loop
    self.waiting[player] = { starting = true }
    local ok, err = pcall(cad.is_linked, cad, host.identifiers(player), function(res)
      if res.ok and res.data.linked then
        self.waiting[player] = nil
        host.tell(player, M.ALREADY_LINKED)
      elseif res.ok then
        new_code(player)
      else
        self.waiting[player] = nil
        host.tell(player, "Could not check your CAD link: " .. res.error.message)
      end
    end)
    if not ok then
      self.waiting[player] = nil
      host.tell(player, "Could not check your CAD link: " .. tostring(err))
    end
  end)

  return self
end

return M
