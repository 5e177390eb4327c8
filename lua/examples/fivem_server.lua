-- A server script in FiveM's host-API style (CreateThread / Wait, convars, resource events):
-- load sonoran, poll from a CreateThread loop, look up an account. It is for hosts that offer
-- that style AND allow native Lua modules. FiveM and RedM themselves do not: their server-side
-- Lua cannot load native modules (no package.loadlib, no C modules), so this does not run on a
-- FiveM server. It runs under plain Lua with the stubs in tests/lua/adapters.lua.
local sonoran = require("sonoran_loader").load()
local adapter = require("host_adapter")

local cad = sonoran.new({
  community_id = GetConvar("sonoran_community_id", ""),
  api_key = GetConvar("sonoran_api_key", ""),
  api_url = GetConvar("sonoran_api_url", "production"),
})
adapter.fivem(cad) -- polls every tick; closes the client when this resource stops

-- Callback style.
cad:get_account({ username = "SonoranBrian" }, function(res)
  if res.ok then
    print(("[sonoran] %s has %d API IDs"):format(res.data.username, #res.data.apiIds))
  else
    print(("[sonoran] lookup failed: %s %s"):format(res.error.code, res.error.message))
  end
end)

-- Await style inside a FiveM thread: Wait(0) lets the tick run poll() until the result is in.
Citizen.CreateThread(function()
  local res = cad:await(cad:check_api_id({ apiId = "11000010499F33C" }), function() Wait(0) end)
  print("[sonoran] 11000010499F33C linked: " .. tostring(res.ok))
  TriggerEvent("sonoran:example_done", res)
end)
