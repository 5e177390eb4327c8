-- A Garry's Mod server script: poll from a timer, look up an account.
-- Install (see the README's Hosts table): garrysmod/lua/bin/gmsv_sonoran_linux64.dll (from
-- `scripts/build-lua.sh gmod`) and lua/host_adapter.lua as garrysmod/lua/includes/modules/.
-- Garry's Mod's require loads the binary module, whose gmod13_open sets the global `sonoran`
-- (require itself returns nothing). tests/lua/adapters.lua runs this under plain LuaJIT with
-- stubs for timer, hook and GetConVar.
require("sonoran")
local sonoran = assert(_G.sonoran, "the sonoran binary module did not load")
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
