-- sonoran_loader.lua: load the sonoran.so built for the running interpreter.
--
--   local sonoran = dofile("path/to/sonoran_loader.lua").load()          -- or require("sonoran_loader").load()
--   local sonoran = require("sonoran_loader").load("/srv/game/sonoran")  -- a directory holding <abi>/sonoran.so
--
-- It looks for <root>/<abi>/sonoran.so, where <abi> is luajit, lua54 or lua51, and <root> is the
-- argument when given; otherwise, in order: $SONORAN_DIST, dist/ beside this file, this file's
-- own directory and dist/ one level up, and last the sonoran.so that require("sonoran") would
-- find on package.cpath (a LuaRocks install puts it there). The module is registered as
-- package.loaded.sonoran, so a later require("sonoran") returns it. Needs package.loadlib
-- (absent in sandboxed hosts: there, put the right sonoran.so on package.cpath yourself).
local M = {}

--- The ABI name of the running interpreter: "luajit", "lua54" or "lua51" (nil, message otherwise).
function M.abi()
  if type(jit) == "table" then return "luajit" end
  if _VERSION == "Lua 5.4" then return "lua54" end
  if _VERSION == "Lua 5.1" then return "lua51" end
  return nil, ("sonoran: no build for %s (builds exist for Lua 5.4, LuaJIT and Lua 5.1)"):format(tostring(_VERSION))
end

local function here()
  local info = debug and debug.getinfo and debug.getinfo(1, "S")
  local source = info and info.source or ""
  if source:sub(1, 1) ~= "@" then return nil end
  return source:sub(2):match("^(.*)[/\\][^/\\]*$") or "."
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

--- Candidate paths of sonoran.so for this interpreter, in search order.
function M.candidates(root)
  local abi = assert(M.abi())
  local roots = {}
  if root then return { root .. "/" .. abi .. "/sonoran.so" } end
  local env = os.getenv("SONORAN_DIST")
  if env and env ~= "" then roots[#roots + 1] = env end
  local dir = here()
  if dir then
    roots[#roots + 1] = dir .. "/dist"
    roots[#roots + 1] = dir
    roots[#roots + 1] = dir .. "/../dist"
  end
  local out = {}
  for _, r in ipairs(roots) do out[#out + 1] = r .. "/" .. abi .. "/sonoran.so" end
  return out
end

--- Load and return the module (raises with every path tried when none is found).
function M.load(root)
  if package.loaded.sonoran then return package.loaded.sonoran end
  local abi, why = M.abi()
  if not abi then error(why, 2) end
  if not package.loadlib then
    error("sonoran: package.loadlib is not available here; put dist/" .. abi .. "/?.so on package.cpath", 2)
  end
  local tried = {}
  local paths = M.candidates(root)
  if not root then
    -- Last, the module on package.cpath (a LuaRocks tree's lib/lua/<version>/sonoran.so).
    for template in package.cpath:gmatch("[^;]+") do
      if template:find("?", 1, true) then paths[#paths + 1] = (template:gsub("%?", "sonoran")) end
    end
  end
  for _, path in ipairs(paths) do
    if exists(path) then
      local open, err = package.loadlib(path, "luaopen_sonoran")
      if not open then error("sonoran: could not load " .. path .. ": " .. tostring(err), 2) end
      local module = open("sonoran")
      package.loaded.sonoran = module
      return module
    end
    tried[#tried + 1] = path
  end
  error("sonoran: no " .. abi .. " build found (tried " .. table.concat(tried, ", ")
    .. "); build it with scripts/build-lua.sh", 2)
end

return M
