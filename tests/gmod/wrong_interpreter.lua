-- Run by tests/c/gmod_host.c with Lua 5.1 (not LuaJIT) as the server's lua_shared.so: the
-- Garry's Mod build loads (Lua 5.1 has every symbol it imports) and both of its entry points
-- refuse the state with a Lua error naming the interpreters, at the script's line; nothing is
-- set, and the host's gmod13_close afterwards finds nothing to close.

local function check(cond, what)
  if not cond then error("check failed: " .. what, 2) end
end

local NEEDLE = "sonoran: this module was built for LuaJIT but was loaded by Lua 5.1"
check(jit == nil and _VERSION == "Lua 5.1", "running in Lua 5.1, not " .. tostring(jit and jit.version or _VERSION))

local ok, err = pcall(require, "sonoran")
check(not ok, "gmod13_open must refuse Lua 5.1")
check(tostring(err):find(NEEDLE, 1, true), "gmod13_open's refusal: " .. tostring(err))
check(sonoran == nil, "no global set by a refused gmod13_open")
print("gmod13_open refused: " .. tostring(err))

local open = package.loadlib(HOST_ROOT .. "/garrysmod/lua/bin/gmsv_sonoran_linux64.dll", "luaopen_sonoran")
check(type(open) == "function", "package.loadlib finds luaopen_sonoran")
ok, err = pcall(open)
check(not ok, "luaopen_sonoran must refuse Lua 5.1")
check(tostring(err):find(NEEDLE, 1, true), "luaopen_sonoran's refusal: " .. tostring(err))
print("luaopen_sonoran refused: " .. tostring(err))
print("script: ok")
