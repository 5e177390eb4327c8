-- Test-only mod, run by tests/luanti.rs beside lua/examples/luanti (sonoran_cad). A mod's
-- environment has `io` without `io.stderr`: the sonoran module's default report of a callback
-- error must still reach the console (through print), and nothing else may fail.
--
-- Its own client, with no error handler (sonoran_cad sets one on its client only), points at a
-- loopback port nothing listens on: the request fails at once, and its callback raises.
local MOD = minetest.get_current_modname()
local settings = minetest.settings

local ie = minetest.request_insecure_environment()
if not ie then error("[" .. MOD .. "] must be listed in secure.trusted_mods", 0) end
-- sonoran_cad (a dependency, so loaded first) has loaded the module: the same table comes back.
local sonoran = ie.require("sonoran")
ie = nil

minetest.log("action", ("[%s] io is %s, io.stderr is %s"):format(MOD, type(io), (io and io.stderr) and "present" or "missing"))

local cad = sonoran.new({
  api_version = settings:get("sonoran_cad.api_version"),
  api_key = settings:get("sonoran_cad.api_key"),
  community_id = settings:get("sonoran_cad.community_id"),
  api_url = settings:get(MOD .. ".unreachable_url"),
  timeout_ms = 5000,
})

cad:is_linked("SandboxCheck", function(res)
  minetest.log("action", ("[%s] callback ran (%s), raising"):format(MOD, res.ok and "ok" or res.error.code))
  error(MOD .. ": deliberate callback error")
end)

local closed = false
minetest.register_globalstep(function()
  if not closed then cad:poll() end
end)

minetest.register_on_shutdown(function()
  closed = true
  cad:close()
  cad:poll()
  minetest.log("action", ("[%s] closed, %d pending"):format(MOD, cad:pending()))
end)
