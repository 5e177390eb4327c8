-- Every typed call and the generic one, each error code, refused input and the value rules.
local H = require("harness")
local sonoran = require("sonoran")

local cad = sonoran.new(H.config())
local BRIAN_ID = "11000010499F33C"

local ok_result, failed = H.ok_result, H.failed

H.test("version and ABI", function()
  H.check(sonoran.version():match("^%d+%.%d+%.%d+"), "version " .. sonoran.version())
  local expected = (type(jit) == "table" and "luajit") or (_VERSION == "Lua 5.4" and "lua54") or "lua51"
  H.eq(sonoran.ABI, expected, "sonoran.ABI")
  local codes = {}
  for _, c in ipairs(sonoran.ERROR_CODES) do codes[c] = true end
  H.check(codes.NOT_LINKED and codes.SHUTDOWN and codes.CANCELLED, "ERROR_CODES lists the codes")
end)

H.test("get_account: data is a nested table, id matches", function()
  local id
  local res = H.call(cad, function(cb) id = cad:get_account({ username = "SonoranBrian" }, cb) end)
  ok_result(res, "GET_ACCOUNT")
  H.eq(res.id, id, "res.id")
  H.eq(res.data.username, "SonoranBrian", "data.username")
  H.eq(res.data.permissions.police, true, "data.permissions.police")
  H.eq(res.data.apiIds[1], BRIAN_ID, "data.apiIds[1]")
  H.eq(#res.data.apiIds, 2, "#apiIds")
end)

H.test("check_api_id: linked answers the username as a string", function()
  local res = ok_result(H.call(cad, function(cb) cad:check_api_id({ apiId = BRIAN_ID }, cb) end), "CHECK_APIID")
  H.eq(res.data, "SonoranBrian", "data")
end)

H.test("set_api_id (apiIds form) then check_api_id sees it", function()
  ok_result(H.call(cad, function(cb)
    cad:set_api_id({ username = "CivilianNoIds", apiIds = { "LUA-TEST-ID-1" } }, cb)
  end), "SET_API_ID")
  local res = ok_result(H.call(cad, function(cb) cad:check_api_id({ apiId = "LUA-TEST-ID-1" }, cb) end), "CHECK_APIID")
  H.eq(res.data, "CivilianNoIds", "data")
end)

H.test("link_character (action by name)", function()
  ok_result(H.call(cad, function(cb)
    cad:link_character({ apiId = BRIAN_ID, syncId = "lua-char-1", action = "ADD" }, cb)
  end), "LINK_CHARACTER")
end)

H.test("modify_identifier ADD with a whole float action/status (sent as integers)", function()
  local res = ok_result(H.call(cad, function(cb)
    cad:modify_identifier({
      apiId = BRIAN_ID, action = 0.0,
      identifier = { status = 2.0, location = "Paleto", aop = "County", data = { unitNum = 12, name = "Brian" } },
    }, cb)
  end), "MODIFY_IDENTIFIER")
  H.eq(type(res.data), "table", "data")
end)

H.test("set_account_permissions", function()
  ok_result(H.call(cad, function(cb)
    cad:set_account_permissions({ username = "OfficerJones", add = { "FIRE", "EMS" }, remove = { "LAWYER" } }, cb)
  end), "SET_ACCOUNT_PERMISSIONS")
end)

H.test("an array of request objects", function()
  local res = ok_result(H.call(cad, function(cb)
    cad:get_account({ { username = "SonoranBrian" }, { username = "OfficerJones" } }, cb)
  end), "GET_ACCOUNT")
  H.eq(#res.data, 2, "#data")
  H.eq(res.data[2].username, "OfficerJones", "data[2].username")
end)

H.test("generic request: GET_VERSION with nil data, typed type through request()", function()
  local res = ok_result(H.call(cad, function(cb) cad:request("GET_VERSION", nil, cb) end), "GET_VERSION")
  H.check(res.data ~= nil, "data present")
  res = ok_result(H.call(cad, function(cb) cad:request("CHECK_APIID", { apiId = BRIAN_ID }, cb) end), "CHECK_APIID")
  H.eq(res.data, "SonoranBrian", "data")
end)

H.test("empty JSON array in a result keeps its type", function()
  local res = ok_result(H.call(cad, function(cb) cad:get_account({ username = "PendingRecruit" }, cb) end), "GET_ACCOUNT")
  H.eq(#res.data.apiIds, 0, "#apiIds")
  H.eq(getmetatable(res.data.apiIds).__jsontype, "array", "marker")
  H.eq(res.data.joined, nil, "JSON null in an object reads as nil")
end)

H.test("parse_session: both capture forms, refusals as nil + message", function()
  local c = sonoran.parse_session("x LOGIN COMMUNITY: {TEST2} USERNAME: {SonoranBrian1} SESSIONID: {75afeea-a869-4dea-b2} y")
  H.eq(c.community, "TEST2", "community")
  H.eq(c.username, "SonoranBrian1", "username")
  H.eq(c.sessionId, "75afeea-a869-4dea-b2", "sessionId")
  c = sonoran.parse_session({ username = "SonoranBrian1", session = "abc-123" })
  H.eq(c.community, nil, "iframe form has no community")
  H.eq(c.sessionId, "abc-123", "sessionId")
  local none, why = sonoran.parse_session({ username = "x", session = "y", extra = "z" })
  H.eq(none, nil, "refused")
  H.eq(type(why), "string", "reason")
end)

-- Error codes ---------------------------------------------------------------------------

local function code_case(name, cfg, start, code)
  H.test("error code " .. code .. ": " .. name, function()
    local c = sonoran.new(cfg)
    local res = H.call(c, function(cb) start(c, cb) end)
    failed(res, code)
    c:close()
    return res
  end)
end

code_case("wrong community", H.config(nil, { community_id = "WRONGCOMM" }),
  function(c, cb) c:get_account({ username = "SonoranBrian" }, cb) end, "INVALID_COMMUNITY_ID")
code_case("wrong key", H.config(nil, { api_key = "not-the-key-0123456789" }),
  function(c, cb) c:get_account({ username = "SonoranBrian" }, cb) end, "INVALID_API_KEY")
code_case("type the API does not know", H.config(nil, { paths = { UNIT_STATUS = "/general" } }),
  function(c, cb) c:request("UNIT_STATUS", { apiId = BRIAN_ID, status = 2 }, cb) end, "INVALID_REQUEST_TYPE")
code_case("type disabled for the community", H.config("_DISABLED"),
  function(c, cb) c:request("GET_VERSION", nil, cb) end, "API_NOT_ENABLED")
code_case("unlinked API ID", H.config(),
  function(c, cb) c:check_api_id({ apiId = "NOBODY-HAS-THIS" }, cb) end, "NOT_LINKED")
code_case("nothing at the path", H.config(nil, { paths = { GET_ACCOUNT = "/nowhere/get_account" } }),
  function(c, cb) c:get_account({ username = "SonoranBrian" }, cb) end, "INVALID_ENDPOINT")
code_case("answer over max_response_bytes", H.config(nil, { max_response_bytes = 1024 }),
  function(c, cb)
    c:get_account({ { username = "SonoranBrian" }, { username = "OfficerJones" }, { username = "MedicSmith" } }, cb)
  end, "BAD_RESPONSE")
code_case("server error", H.config("_5XX"),
  function(c, cb) c:request("GET_VERSION", nil, cb) end, "SERVER_ERROR")
code_case("a request the emulator calls malformed (HTTP 400)", H.config(),
  function(c, cb) c:request("GET_VERSION", { unexpected = true }, cb) end, "HTTP_ERROR")
code_case("timeout", H.config("_SLOW", { timeout_ms = 50 }),
  function(c, cb) c:request("GET_VERSION", nil, cb) end, "TIMEOUT")
code_case("connection dropped", H.config("_DROP"),
  function(c, cb) c:request("GET_VERSION", nil, cb) end, "NETWORK")

H.test("error code RATE_LIMITED carries retry_after_ms", function()
  local c = sonoran.new(H.config("_LIMITED"))
  local results = {}
  for _ = 1, 3 do c:request("GET_VERSION", nil, function(r) results[#results + 1] = r end) end
  H.drain(c)
  local limited
  for _, r in ipairs(results) do
    if not r.ok then limited = r end
  end
  H.check(limited, "one request was rate limited")
  failed(limited, "RATE_LIMITED")
  H.eq(limited.status, 429, "status")
  H.eq(type(limited.retry_after_ms), "number", "retry_after_ms")
  c:close()
end)

H.test("error codes CANCELLED and SHUTDOWN", function()
  local c = sonoran.new(H.config("_SLOW"))
  local r1, r2
  local id = c:request("GET_VERSION", nil, function(r) r1 = r end)
  c:request("GET_VERSION", nil, function(r) r2 = r end)
  H.eq(c:cancel(id), true, "cancel")
  H.eq(c:cancel(id), false, "cancel twice")
  c:close()
  H.drain(c)
  failed(r1, "CANCELLED")
  failed(r2, "SHUTDOWN")
  H.eq(r1.status, 0, "status without an answer")
end)

-- Refused input -------------------------------------------------------------------------

H.test("refused input raises with the field, at the caller's line, and sends nothing", function()
  local before = cad:pending()
  local err = H.raises(function() cad:get_account({ apiId = BRIAN_ID, username = "x" }) end, "give only one of")
  H.check(err:find("api.lua:%d+: sonoran: data"), "position and field in " .. err)
  H.raises(function() cad:link_character({ apiId = "a", syncId = "s" }) end, "data.action: is required")
  H.raises(function() cad:set_account_permissions({ apiId = "a", add = { "POLICERECEDIT" } }) end, "did you mean POLRECEDIT?")
  H.raises(function() cad:set_api_id({ username = "a", apiIds = { "x", 2 } }) end, "data.apiIds[1]: expected a string")
  H.raises(function() cad:check_api_id({ apiId = "" }) end, "data.apiId: must not be empty")
  H.raises(function() cad:request("unit_status", {}) end, "type: 'unit_status' is not an API type name")
  H.raises(function() cad:request(42, {}) end, "type: expected an API type name")
  H.raises(function() cad:get_account({ username = "a" }, "not a function") end, "callback: expected a function or nil")
  H.raises(function() cad.get_account({ username = "a" }) end, "with a colon")
  H.eq(cad:pending(), before, "nothing was accepted")
end)

H.test("value rules: holes, mixed tables, functions, NaN, fractions, empty tables", function()
  H.raises(function() cad:set_api_id({ username = "a", apiIds = { "x", nil, "z" } }) end, "data.apiIds: has a hole")
  H.raises(function() cad:get_account({ username = "a", [1] = "b" }) end, "data: mixes array items")
  H.raises(function() cad:get_account({ username = print }) end, "data.username: a function cannot be sent")
  H.raises(function() cad:get_account({ username = 0 / 0 }) end, "data.username: NaN")
  H.raises(function() cad:link_character({ apiId = "a", syncId = "s", action = 0.5 }) end, "data.action")
  H.raises(function() cad:get_account({ [true] = 1 }) end, "has a key that is a boolean")
  local loop = {}
  loop.self = loop
  H.raises(function() cad:get_account({ username = "a", x = loop }) end, "nested deeper than 64")
  -- {} is an empty array (accepted with pushNew = false); sonoran.object{} is an object.
  local id = cad:set_api_id({ username = "MedicSmith", apiIds = {}, pushNew = false })
  H.check(id > 0, "empty table sent as []")
  H.raises(function() cad:set_api_id({ username = "MedicSmith", apiIds = sonoran.object({}), pushNew = false }) end,
    "data.apiIds: expected an array")
  H.drain(cad)
end)

H.test("configuration is refused with the key named", function()
  H.raises(function() sonoran.new(H.config(nil, { colour = "red" })) end, "config: unknown key 'colour'")
  H.raises(function() sonoran.new(H.config(nil, { delivery = "thread" })) end, "config.delivery: \"thread\" is not available from Lua")
  H.raises(function() sonoran.new(H.config(nil, { timeout_ms = 0 })) end, "config.timeout_ms")
  H.raises(function() sonoran.new(H.config(nil, { api_url = "http://example.com" })) end, "config.api_url")
  H.raises(function() sonoran.new({ community_id = "x", api_url = "production" }) end, "config.api_key: is required")
  H.raises(function() sonoran.new("nope") end, "expected a configuration table")
  local c = sonoran.new(H.config(nil, { delivery = "poll" }))
  c:close()
end)

H.test("the tablet flow and the checker: not linked, linked, already linked", function()
  local player = { "license:lua-abc", "steam:11000010LUA0001" }
  local res = H.call(cad, function(cb) return cad:is_linked(player, cb) end)
  H.eq(res.type, "IS_LINKED", "type")
  H.eq(res.data.linked, false, "not linked yet")
  H.eq(res.data.apiId, "11000010LUA0001", "apiId without prefix")
  local capture = "LOGIN COMMUNITY: {" .. H.env("SONORAN_COMMUNITY") .. "} USERNAME: {MedicSmith} SESSIONID: {lua-75afeea}"
  res = H.call(cad, function(cb) return cad:link_from_tablet(capture, player, cb) end)
  H.eq(res.type, "LINK_FROM_TABLET", "type")
  H.eq(res.data.outcome, "LINKED", "linked by the tablet")
  res = H.call(cad, function(cb) return cad:is_linked("11000010LUA0001", cb) end)
  H.eq(res.data.linked, true, "linked now")
  res = H.call(cad, function(cb)
    return cad:link_from_tablet({ username = "MedicSmith", session = "lua-2" }, player, cb)
  end)
  H.eq(res.data.outcome, "ALREADY_LINKED", "second login")
  res = H.call(cad, function(cb) return cad:is_linked({ "license:only" }, cb) end)
  H.eq(res.error.code, "NO_IDENTIFIER", "no steam identifier")
  H.raises(function()
    cad:link_from_tablet("LOGIN COMMUNITY: {OTHER} USERNAME: {x} SESSIONID: {y}", player, function() end)
  end, "capture.community")
  H.raises(function() cad:is_linked(42, function() end) end, "identifiers")
  local st = cad:stats()
  H.check(type(st) == "table", "stats is a table")
end)

cad:close()
H.drain(cad)
H.finish()
