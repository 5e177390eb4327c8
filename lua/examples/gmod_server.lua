-- Garry's Mod-style server script: poll from a timer, look up an account.
-- Runs on a server that allows binary modules, or under plain Lua with the stubs in
-- tests/lua/adapters.lua.
local sonoran = require("sonoran_loader").load()
local adapter = require("host_adapter")

local cad = sonoran.new({
  community_id = GetConVar("sonoran_community_id"):GetString(),
  api_key = GetConVar("sonoran_api_key"):GetString(),
  api_url = GetConVar("sonoran_api_url"):GetString(),
})
adapter.gmod(cad, { interval = 0.1 }) -- timer.Create; the ShutDown hook closes the client

cad:get_account({ username = "OfficerJones" }, function(res)
  if res.ok then
    print("[sonoran] " .. res.data.username .. " is active: " .. tostring(res.data.status == 1))
  else
    print("[sonoran] lookup failed: " .. res.error.code .. " " .. res.error.message)
  end
  hook.Run("SonoranExampleDone", res)
end)
