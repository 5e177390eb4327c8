-- The loader, and the FiveM-style and Garry's Mod-style examples run against stub hosts.
local H = require("harness")

H.test("the loader picks the build for this interpreter", function()
  local loader = require("sonoran_loader")
  local expected = (type(jit) == "table" and "luajit") or (_VERSION == "Lua 5.4" and "lua54") or "lua51"
  H.eq(loader.abi(), expected, "abi")
  H.eq(package.loaded.sonoran, nil, "not loaded yet")
  local sonoran = loader.load()
  H.eq(sonoran.ABI, expected, "loaded ABI")
  H.eq(require("sonoran"), sonoran, "require returns the loaded module")
  H.raises(function()
    package.loaded.sonoran = nil
    loader.load("/nonexistent")
  end, "/nonexistent/" .. expected .. "/sonoran.so")
  package.loaded.sonoran = sonoran
end)

-- A FiveM-like host: threads are coroutines resumed every tick; Wait yields.
local function fivem_host()
  local host = { threads = {}, events = {} }
  Citizen = {
    CreateThread = function(fn) host.threads[#host.threads + 1] = coroutine.create(fn) end,
    Wait = function() coroutine.yield() end,
  }
  CreateThread, Wait = Citizen.CreateThread, Citizen.Wait
  GetConvar = function(name, default)
    local map = { sonoran_community_id = "SONORAN_COMMUNITY", sonoran_api_key = "SONORAN_KEY", sonoran_api_url = "SONORAN_URL" }
    return os.getenv(map[name] or "") or default
  end
  GetCurrentResourceName = function() return "sonoran-example" end
  AddEventHandler = function(name, fn)
    host.events[name] = host.events[name] or {}
    table.insert(host.events[name], fn)
  end
  TriggerEvent = function(name, ...)
    for _, fn in ipairs(host.events[name] or {}) do fn(...) end
  end
  function host.tick()
    for _, co in ipairs(host.threads) do
      if coroutine.status(co) == "suspended" then assert(coroutine.resume(co)) end
    end
  end
  return host
end

H.test("FiveM-style example: CreateThread/Wait loop, callback and await", function()
  local host = fivem_host()
  local done
  AddEventHandler("sonoran:example_done", function(res) done = res end)
  dofile("lua/examples/fivem_server.lua")
  H.tick_until(host.tick, function() return done end)
  H.eq(done.ok, true, "await result")
  H.check(#H.sonoran_threads() > 0, "client running")
  TriggerEvent("onResourceStop", "sonoran-example")
  host.tick()
  H.eq(#H.sonoran_threads_settled(), 0, "threads after onResourceStop")
end)

-- A Garry's Mod-like host: timers and hooks, run by Think.
local function gmod_host()
  local host = { timers = {}, hooks = {} }
  timer = {
    Create = function(name, _, _, fn) host.timers[name] = fn end,
    Remove = function(name) host.timers[name] = nil end,
  }
  hook = {
    Add = function(event, name, fn) host.hooks[event] = host.hooks[event] or {}; host.hooks[event][name] = fn end,
    Remove = function(event, name) if host.hooks[event] then host.hooks[event][name] = nil end end,
    Run = function(event, ...) for _, fn in pairs(host.hooks[event] or {}) do fn(...) end end,
  }
  GetConVar = function(name)
    local map = { sonoran_community_id = "SONORAN_COMMUNITY", sonoran_api_key = "SONORAN_KEY", sonoran_api_url = "SONORAN_URL" }
    return { GetString = function() return os.getenv(map[name]) end }
  end
  function host.think()
    for _, fn in pairs(host.timers) do fn() end
    hook.Run("Think")
  end
  return host
end

H.test("Garry's Mod-style example: timer.Create poll and ShutDown hook", function()
  local host = gmod_host()
  local done
  hook.Add("SonoranExampleDone", "test", function(res) done = res end)
  -- What gmod13_open does when Garry's Mod's require loads the binary module: the global.
  _G.sonoran = require("sonoran")
  dofile("lua/examples/gmod_server.lua")
  _G.sonoran = nil
  H.tick_until(host.think, function() return done end)
  H.eq(done.ok, true, "result")
  H.eq(done.data.username, "OfficerJones", "username")
  hook.Run("ShutDown")
  H.eq(#H.sonoran_threads_settled(), 0, "threads after ShutDown")
  H.eq(next(host.timers), nil, "timer removed")
end)

H.finish()
