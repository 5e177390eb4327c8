-- host_adapter.lua: call cad:poll() from a game server's tick.
--
-- sonoran never runs Lua off the server's thread: results wait until cad:poll() runs them.
-- These helpers hook poll() into the two common host styles and close the client when the
-- script unloads. Each returns a stop() function.
--
--   local adapter = require("host_adapter")
--   adapter.fivem(cad)                -- Citizen.CreateThread / Wait loop (FiveM-style hosts; FiveM
--                                        and RedM themselves cannot load native modules)
--   adapter.gmod(cad)                 -- timer.Create (Garry's Mod); { hook = true } for a Think hook
--   adapter.every_tick(register, cad) -- anything else: register(fn) must call fn every tick
local M = {}

-- One line to io.stderr, or through print where the host has no io.stderr or no io at all
-- (sandboxed hosts), or where writing to it fails. Never raises.
local function report_line(line)
  local ok, written = pcall(function() return io.stderr:write(line, "\n") end)
  if not (ok and written) then
    pcall(print, line)
  end
end

local function poll_once(cad, max)
  local ok, err = pcall(cad.poll, cad, max)
  if not ok then
    -- poll itself only raises on misuse; report it and keep the tick alive.
    report_line("sonoran: poll failed: " .. tostring(err))
  end
end

--- FiveM style: a thread that polls, then Wait(interval_ms) (default 0: every tick).
--- opts: interval_ms, max (callbacks per tick, 0 = all), resource (closes the client when that
--- resource stops; default GetCurrentResourceName() when it exists).
function M.fivem(cad, opts)
  opts = opts or {}
  local create = (Citizen and Citizen.CreateThread) or CreateThread
  local wait = (Citizen and Citizen.Wait) or Wait
  assert(create and wait, "host_adapter.fivem: CreateThread/Wait are not available")
  local running = true
  create(function()
    while running do
      poll_once(cad, opts.max or 0)
      wait(opts.interval_ms or 0)
    end
  end)
  local resource = opts.resource or (GetCurrentResourceName and GetCurrentResourceName())
  if resource and AddEventHandler then
    AddEventHandler("onResourceStop", function(name)
      if name == resource then
        running = false
        cad:close()
        cad:poll() -- callbacks of requests cut short get SHUTDOWN now
      end
    end)
  end
  return function() running = false end
end

--- Garry's Mod style: timer.Create(name, interval, 0, poll) (default every 0.1 s), or a Think
--- hook with { hook = true }. The client is closed on the ShutDown hook.
function M.gmod(cad, opts)
  opts = opts or {}
  local name = opts.name or "sonoran.poll"
  local tick = function() poll_once(cad, opts.max or 0) end
  local stop
  if opts.hook then
    hook.Add("Think", name, tick)
    stop = function() hook.Remove("Think", name) end
  else
    timer.Create(name, opts.interval or 0.1, 0, tick)
    stop = function() timer.Remove(name) end
  end
  hook.Add("ShutDown", name, function()
    stop()
    cad:close()
    cad:poll()
  end)
  return stop
end

--- Any host: register(fn) must arrange for fn() to be called from the server's tick.
function M.every_tick(register, cad, opts)
  opts = opts or {}
  local running = true
  register(function()
    if running then poll_once(cad, opts.max or 0) end
  end)
  return function() running = false end
end

return M
