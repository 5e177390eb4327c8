-- sonoran_cad: Sonoran CAD on a Luanti (formerly Minetest) server, through the sonoran Lua module.
--
-- Loads sonoran.so (the LuaJIT build: dist/luajit/sonoran.so) with the real `require` of the
-- insecure environment, so this mod must be listed in secure.trusted_mods. Polls the client on
-- every server step, checks every joining player's CAD link, offers /link on the v2 API, and
-- closes the client when the server shuts down. Settings (minetest.conf):
--
--   secure.trusted_mods = sonoran_cad
--   sonoran_cad.api_key = YOUR_KEY                 required
--   sonoran_cad.api_version = v2                   v2 (default here) or legacy
--   sonoran_cad.community_id = YOUR_COMMUNITY      legacy only
--   sonoran_cad.api_url = production               production (default), development or a URL
--   sonoran_cad.module_dir = /path/to/dir          the folder holding sonoran.so (default: this mod's folder)
--   sonoran_cad.startup_check = NAME               at startup, run every call this mod makes for NAME and log each result
--   sonoran_cad.startup_check_shutdown = false     true: shut the server down once that check is done (scripts, CI)
--
-- Luanti players have no Steam, license or Discord identifier. This example's choice: a
-- player's API ID is their player name, as typed (Luanti names are unique on a server). A player
-- links by adding that name as an API ID in their CAD account, or on v2 with /link.
--
-- The client holds the community's API key and can change accounts in the CAD, so it stays
-- local to this mod (like the HTTP API table Luanti hands to trusted mods): other mods get no
-- handle on it.

local MOD = minetest.get_current_modname()
local settings = minetest.settings

local function setting(key, default)
  local v = settings:get(MOD .. "." .. key)
  if v == nil or v == "" then return default end
  return v
end

local function log(level, text)
  minetest.log(level, "[" .. MOD .. "] " .. text)
end

-- The module, through the insecure environment (only at load time, only for a trusted mod).
local sonoran
do
  local ie = minetest.request_insecure_environment()
  if not ie then
    error(("[%s] needs the real require to load sonoran.so: add %s to secure.trusted_mods in minetest.conf")
      :format(MOD, MOD), 0)
  end
  local dir = setting("module_dir", minetest.get_modpath(MOD))
  -- ie.package, not package: the mod's own package table is a sandbox copy that the real
  -- require never reads (and the mod's own require only says it is disabled).
  local cpath = ie.package.cpath
  ie.package.cpath = dir .. "/?.so;" .. cpath
  local ok, loaded = pcall(ie.require, "sonoran")
  ie.package.cpath = cpath
  if not ok then
    error(("[%s] could not load %s/sonoran.so (the LuaJIT build, dist/luajit/sonoran.so): %s")
      :format(MOD, dir, tostring(loaded)), 0)
  end
  sonoran = loaded
end

local api_version = setting("api_version", "v2")
local created, cad = pcall(sonoran.new, {
  api_version = api_version,
  api_key = setting("api_key"),
  community_id = setting("community_id"),
  api_url = setting("api_url"),
})
if not created then
  -- The message names the configuration key: config.api_key is the setting sonoran_cad.api_key.
  error(("[%s] %s (config.<key> is the setting %s.<key> in minetest.conf)"):format(MOD, tostring(cad), MOD), 0)
end
-- Errors raised in this client's callbacks go to Luanti's log.
cad:on_error(function(message, id)
  log("error", ("callback of request %s failed: %s"):format(tostring(id), tostring(message)))
end)
log("action", ("sonoran %s (%s) loaded, api %s"):format(sonoran.version(), sonoran.ABI, api_version))

local closed = false

-- Results are delivered here, on the server thread, once per server step.
minetest.register_globalstep(function()
  if closed then return end
  local ok, err = pcall(cad.poll, cad)
  if not ok then log("error", "poll failed: " .. tostring(err)) end
end)

minetest.register_on_shutdown(function()
  closed = true
  cad:close() -- pending requests complete as SHUTDOWN; the library's threads are joined
  cad:poll() -- their callbacks run now
  log("action", "sonoran client closed")
end)

--- The API ID of a player (this example's choice: the player name).
local function api_id(name)
  return name
end

--- Start a request without ever raising into the server (an error in a Luanti callback stops
--- the server): a refused request (queue full, client closed) is logged. Returns true when it
--- was accepted, or false and the reason.
local function start(call, ...)
  local ok, err = pcall(call, cad, ...)
  if not ok then log("warning", tostring(err)) end
  return ok, err
end

--- Is the player linked? cb(linked, res): true / false, or nil when the check failed (never
--- taken as "not linked"; res.error says why).
local function check_player(name, cb)
  return start(cad.is_linked, api_id(name), function(res)
    if res.ok then cb(res.data.linked, res) else cb(nil, res) end
  end)
end

local NOT_LINKED = {
  v2 = "You are not linked to the CAD yet: type /link to link your CAD account.",
  legacy = "You are not linked to the CAD yet: add your player name as an API ID in your CAD account.",
}

minetest.register_on_joinplayer(function(player)
  if closed then return end
  local name = player:get_player_name()
  check_player(name, function(linked, res)
    if linked == false then
      minetest.chat_send_player(name, NOT_LINKED[api_version] or NOT_LINKED.v2)
    elseif linked == nil then
      log("warning", ("could not check %s: %s %s"):format(name, res.error.code, res.error.message))
    end
  end)
end)

--- v2: a link code for the player: cb(res) with res.data.code and res.data.url.
local function link_code(name, cb)
  return start(cad.create_link_code, api_id(name), cb)
end

if api_version == "v2" then
  minetest.register_chatcommand("link", {
    description = "Link your Sonoran CAD account to your player name",
    func = function(name)
      check_player(name, function(linked, res)
        if linked then
          minetest.chat_send_player(name, "Your CAD account is already linked.")
        elseif linked == nil then
          minetest.chat_send_player(name, "Could not check your CAD link: " .. res.error.message)
        else
          link_code(name, function(code)
            if code.ok then
              minetest.chat_send_player(name, ("Open %s and log in (or enter the code %s there) to link your CAD account.")
                :format(code.data.url, code.data.code))
            else
              minetest.chat_send_player(name, "Could not create a link code: " .. code.error.message)
            end
          end)
        end
      end)
      return true, "Asking the CAD..."
    end,
  })
end

-- The startup check: every call this mod makes, once, for one name, each result logged; a
-- quick test of the URL, the key and the API version.
local check_name = setting("startup_check")
if check_name then
  local expected, arrived = (api_version == "v2") and 3 or 2, 0
  local function result(what, text)
    log("action", ("startup check: %s %s: %s"):format(what, api_id(check_name), text))
    arrived = arrived + 1
    if arrived == expected then
      log("action", ("startup check: done (%d results)"):format(arrived))
      if settings:get_bool(MOD .. ".startup_check_shutdown", false) then
        minetest.request_shutdown("sonoran_cad startup check done")
      end
    end
  end
  local function failure(res)
    return ("error %s %s"):format(res.error.code, res.error.message)
  end
  -- A refused call (no callback will run) counts as its result.
  local function refused(what, ok, err)
    if not ok then result(what, "refused: " .. tostring(err)) end
  end
  refused("get_account", start(cad.get_account, { apiId = api_id(check_name) }, function(res)
    result("get_account", res.ok and ("ok, account " .. tostring(res.data.username)) or failure(res))
  end))
  refused("is_linked", check_player(check_name, function(linked, res)
    result("is_linked", linked == nil and failure(res) or (linked and "linked" or "not linked"))
  end))
  if api_version == "v2" then
    refused("create_link_code", link_code(check_name, function(res)
      result("create_link_code", res.ok and ("ok, code %s at %s"):format(res.data.code, res.data.url) or failure(res))
    end))
  end
end
