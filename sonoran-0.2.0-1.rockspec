-- The LuaRocks package: the native module `sonoran` built with cargo for the interpreter LuaRocks
-- runs under (Lua 5.4, Lua 5.1 or LuaJIT), with the pure-Lua helpers of lua/.
--
--   luarocks --lua-version=5.4 make --tree ./rocks   # from a checkout; needs cargo
--
-- The version is Cargo.toml's (tests/packaging.rs fails when the two differ): rename this file
-- and change `version` below together with Cargo.toml's.
rockspec_format = "3.0"
package = "sonoran"
version = "0.2.0-1"
source = {
   -- `luarocks make` builds the checkout it runs in and never fetches this. No public address
   -- of the repository is recorded yet, so `luarocks build` / `luarocks install` of this file
   -- alone cannot fetch it: build from a checkout, or install a packed binary rock.
   url = "git+https://example.invalid/sonoran.git",
}
description = {
   summary = "Non-blocking Sonoran CAD API client for game servers",
   detailed = [[
A client for the Sonoran CAD web API for Lua game-server scripts: every request is queued onto
the library's own runtime and its result comes back through cad:poll() on the script's thread,
never blocking the game. Includes the host adapters, the API ID checker, the tablet flow and a
/link command as pure-Lua modules.]],
   license = "MIT OR Apache-2.0",
}
dependencies = {
   "lua >= 5.1, < 5.5",
}
build = {
   type = "command",
   build_command = [[sh scripts/luarocks-build.sh build "$(LUA)"]],
   install_command = [[sh scripts/luarocks-build.sh install "$(LUA)" "$(LIBDIR)"]],
   install = {
      lua = {
         sonoran_loader = "lua/sonoran_loader.lua",
         host_adapter = "lua/host_adapter.lua",
         server_host = "lua/server_host.lua",
         apicheck = "lua/apicheck.lua",
         tablet = "lua/tablet.lua",
         link_command = "lua/examples/link_command.lua",
      },
   },
}
