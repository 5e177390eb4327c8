-- The scenarios a script author relies on, written once and run against each API (tests/lua.rs
-- runs this script with SONORAN_API = "legacy", then "v2"; H.config() configures the client for
-- it). The Lua arguments are the same on both APIs (legacy field names such as apiId work on v2
-- as aliases); where the APIs answer differently the expectation says so. Then what only v2 has.
local H = require("harness")
local sonoran = require("sonoran")

local cad = sonoran.new(H.config())
local BRIAN_ID = "11000010499F33C"

local ok_result, failed = H.ok_result, H.failed

local unpack = table.unpack or unpack

--- c:method(..., callback) and wait for its result.
local function call(c, method, ...)
  local n, args = select("#", ...), { ... }
  return H.call(c, function(cb)
    args[n + 1] = cb
    return c[method](c, unpack(args, 1, n + 1))
  end)
end

H.test("the client is on the API of this run", function()
  local v2 = pcall(cad.request_v2, cad, "GET", "/v2/general/version", nil, function() end)
  local legacy = pcall(cad.request, cad, "GET_VERSION", nil, function() end)
  H.eq(v2, H.v2, "request_v2 accepted")
  H.eq(legacy, not H.v2, "request accepted")
  H.drain(cad)
  if H.v2 then H.eq(H.config().community_id, nil, "v2 configures no community id") end
end)

-- Every typed call, the same Lua arguments on both APIs ------------------------------------

H.test("get_account by username and by apiId", function()
  local res = ok_result(call(cad, "get_account", { username = "SonoranBrian" }), "GET_ACCOUNT")
  H.eq(res.data.username, "SonoranBrian", "data.username")
  H.eq(res.data.uuid, H.uuid("SonoranBrian"), "data.uuid")
  H.eq(res.data.permissions.police, true, "data.permissions.police")
  res = ok_result(call(cad, "get_account", { apiId = BRIAN_ID }), "GET_ACCOUNT")
  H.eq(res.data.username, "SonoranBrian", "by apiId: data.username")
end)

H.test("check_api_id: a linked player", function()
  local res = ok_result(call(cad, "check_api_id", { apiId = BRIAN_ID }), "CHECK_APIID")
  H.linked_to(res, "SonoranBrian")
end)

H.test("check_api_id: an unlinked player is NOT_LINKED", function()
  failed(call(cad, "check_api_id", { apiId = "NOBODY-HAS-THIS" }), "NOT_LINKED")
end)

H.test("set_api_id (apiIds form), then check_api_id sees it", function()
  ok_result(call(cad, "set_api_id", { username = "CivilianNoIds", apiIds = { "LUA-BOTH-ID-1" } }), "SET_API_ID")
  H.linked_to(call(cad, "check_api_id", { apiId = "LUA-BOTH-ID-1" }), "CivilianNoIds")
end)

H.test("link_character (action by name)", function()
  ok_result(call(cad, "link_character", { apiId = BRIAN_ID, syncId = "lua-both-char:1", action = "ADD" }),
    "LINK_CHARACTER")
end)

H.test("modify_identifier ADD (legacy's nested identifier)", function()
  local res = ok_result(call(cad, "modify_identifier", {
    apiId = BRIAN_ID, action = "ADD",
    identifier = { status = 2, location = "Paleto", aop = "County", data = { unitNum = "1A-12", name = "Brian" } },
  }), "MODIFY_IDENTIFIER")
  H.eq(type(res.data), "table", "data")
end)

H.test("set_account_permissions, then get_account shows them", function()
  ok_result(call(cad, "set_account_permissions", { username = "OfficerJones", add = { "FIRE", "EMS" }, remove = { "POLICE" } }),
    "SET_ACCOUNT_PERMISSIONS")
  local res = ok_result(call(cad, "get_account", { username = "OfficerJones" }), "GET_ACCOUNT")
  H.eq(res.data.permissions.fire, true, "fire added")
  H.eq(res.data.permissions.ems, true, "ems added")
  H.check(not res.data.permissions.police, "police removed")
end)

H.test("refused selectors: two given, the field named at the caller's line, nothing sent", function()
  local before = cad:stats().submitted
  local err = H.raises(function() cad:get_account({ apiId = BRIAN_ID, username = "x" }) end, "give only one of")
  H.check(err:find("both_apis.lua:%d+: sonoran: data"), "position and field in " .. err)
  H.check(err:find("apiId", 1, true) and err:find("username", 1, true), "names both keys: " .. err)
  if H.v2 then -- communityUserId is v2's name of legacy's apiId (which CHECK_APIID alone takes on legacy)
    err = H.raises(function() cad:check_api_id({ apiId = BRIAN_ID, communityUserId = BRIAN_ID }) end, "give only one of")
    H.check(err:find("sonoran: data", 1, true) and err:find("(got communityUserId and apiId)", 1, true), err)
  end
  H.raises(function() cad:set_account_permissions({ username = "a", add = { "POLICERECEDIT" } }) end,
    "did you mean POLRECEDIT?")
  H.eq(cad:stats().submitted, before, "nothing was accepted")
end)

-- The fatal stop ---------------------------------------------------------------------------

H.test("a wrong key: INVALID_API_KEY, then API_DISABLED without sending", function()
  local key = "not-the-key-0123456789"
  local c = sonoran.new(H.config(nil, { api_key = key }))
  local res = failed(call(c, "check_api_id", { apiId = BRIAN_ID }), "INVALID_API_KEY")
  H.check(not res.error.message:find(key, 1, true), "the key is not in the message")
  res = failed(call(c, "get_account", { username = "SonoranBrian" }), "API_DISABLED")
  H.eq(res.disabled_by, "INVALID_API_KEY", "disabled_by")
  H.eq(c:stats().api_calls, 1, "one API call: the second request was not sent")
  H.eq(c:stats().disabled["*"].cause, "INVALID_API_KEY", "stats.disabled: every type stopped")
  c:close()
  H.drain(c)
end)

-- The flows --------------------------------------------------------------------------------

H.test("is_linked on join: linked, not linked, no identifier", function()
  local res = ok_result(call(cad, "is_linked", { "license:lua-a", "steam:" .. BRIAN_ID }), "IS_LINKED")
  H.eq(res.data.linked, true, "brian is linked")
  H.eq(res.data.apiId, BRIAN_ID, "apiId without prefix")
  res = ok_result(call(cad, "is_linked", { "license:lua-b", "steam:11000010BOTH001" }), "IS_LINKED")
  H.eq(res.data.linked, false, "a new player is not")
  failed(call(cad, "is_linked", { "license:only" }), "NO_IDENTIFIER")
end)

--- What the tablet forwards when `username` logs in: legacy's console line, or v2's message.
local function tablet_login(username, session)
  if H.v2 then
    return { type = "scad:account-link", accountUuid = H.uuid(username), secretUuid = H.secret(username) }
  end
  return "LOGIN COMMUNITY: {" .. H.env("SONORAN_COMMUNITY") .. "} USERNAME: {" .. username .. "} SESSIONID: {" ..
    session .. "}"
end

H.test("link_from_tablet links the player; the secret is in no result", function()
  local player = { "license:lua-tab", "steam:11000010BOTH002" }
  H.eq(call(cad, "is_linked", player).data.linked, false, "not linked before")
  local res = ok_result(call(cad, "link_from_tablet", tablet_login("MedicSmith", "lua-both-1"), player),
    "LINK_FROM_TABLET")
  H.eq(res.data.outcome, "LINKED", "outcome")
  H.eq(res.data.apiId, "11000010BOTH002", "apiId")
  if H.v2 then H.eq(res.data.accountUuid, H.uuid("MedicSmith"), "accountUuid") end
  H.eq(call(cad, "is_linked", "11000010BOTH002").data.linked, true, "linked now")
  H.linked_to(call(cad, "check_api_id", { apiId = "11000010BOTH002" }), "MedicSmith")
  -- The next login: legacy sees the link and sends nothing more; v2's links/set sets it again.
  res = ok_result(call(cad, "link_from_tablet", tablet_login("MedicSmith", "lua-both-2"), player), "LINK_FROM_TABLET")
  H.eq(res.data.outcome, H.v2 and "LINKED" or "ALREADY_LINKED", "second login")
  H.check(not H.dump(res):find(H.secret("MedicSmith"), 1, true), "secret in " .. H.dump(res))
end)

H.test("the other API's tablet form is refused, saying why, and nothing is sent", function()
  local before = cad:stats().submitted
  local player = { "steam:11000010BOTH003" }
  if H.v2 then
    H.raises(function()
      cad:link_from_tablet("LOGIN COMMUNITY: {" .. H.env("SONORAN_COMMUNITY") .. "} USERNAME: {x} SESSIONID: {y}", player)
    end, "scad:account-link")
    H.raises(function() cad:link_from_tablet({ username = "x", session = "y" }, player) end, "scad:account-link")
  else
    local msg = { type = "scad:account-link", accountUuid = H.uuid("MedicSmith"), secretUuid = H.secret("MedicSmith") }
    local err = H.raises(function() cad:link_from_tablet(msg, player) end, "api_version")
    H.check(not err:find(H.secret("MedicSmith"), 1, true), "secret in " .. err)
  end
  H.eq(cad:stats().submitted, before, "nothing was accepted")
end)

H.test("the generic call of the other API is refused with a clear message", function()
  if H.v2 then
    H.raises(function() cad:request("GET_VERSION", nil) end,
      "request sends a legacy API type; with api_version = \"v2\" use cad:request_v2(method, path, body, callback)")
  else
    H.raises(function() cad:request_v2("GET", "/v2/general/version", nil) end,
      "request_v2 needs api_version = \"v2\"; the legacy API takes cad:request(type, data, callback)")
    H.raises(function() cad:create_link_code({ "steam:11000010BOTH004" }) end, "create_link_code is a v2 API call")
  end
end)

H.test("sonoran.last_refusal(): the code of the last refused call, to branch on", function()
  local err = H.raises(function() cad:get_account({ apiId = BRIAN_ID, username = "x" }) end, "give only one of")
  local code, message = sonoran.last_refusal()
  H.eq(code, "INVALID_ARGUMENT", "code")
  H.check(err:find(message, 1, true), "the message is the raised one")
  if H.v2 then
    H.raises(function() cad:request("GET_VERSION", nil) end, "request sends a legacy API type")
  else
    H.raises(function() cad:request_v2("GET", "/v2/general/version", nil) end, "request_v2 needs")
  end
  H.eq((sonoran.last_refusal()), "WRONG_API", "code")
  H.raises(function() sonoran.new(H.config(nil, { timeout_ms = 0 })) end, "timeout_ms")
  H.eq((sonoran.last_refusal()), "INVALID_CONFIG", "code")
  local small = sonoran.new(H.config("_SLOW", { max_pending = 1 }))
  small:get_account({ username = "SonoranBrian" })
  H.raises(function() small:get_account({ username = "SonoranBrian" }) end, "queue full")
  H.eq((sonoran.last_refusal()), "QUEUE_FULL", "code")
  small:close()
  H.raises(function() small:get_account({ username = "SonoranBrian" }) end, "closed")
  H.eq((sonoran.last_refusal()), "CLOSED", "code")
  H.drain(small)
end)

H.test("await in a coroutine, on either API", function()
  local got
  coroutine.wrap(function()
    local acc = cad:await(cad:get_account({ username = "MedicSmith" }))
    local check = cad:await(cad:check_api_id({ apiId = "NOBODY-HAS-THIS" }))
    got = { acc.data.username, check.error.code }
  end)()
  H.poll_until(cad, function() return got ~= nil end)
  H.eq(got[1], "MedicSmith", "first await")
  H.eq(got[2], "NOT_LINKED", "second await")
end)

-- v2 only ----------------------------------------------------------------------------------

if H.v2 then
  H.test("v2: trace_id in results, successes and failures", function()
    local res = ok_result(call(cad, "get_account", { username = "SonoranBrian" }), "GET_ACCOUNT")
    H.eq(type(res.trace_id), "string", "trace_id of a success")
    H.check(res.trace_id:find("^00%-"), res.trace_id)
    res = failed(call(cad, "get_account", { username = "nobody-at-all" }), "NOT_FOUND")
    H.check(type(res.trace_id) == "string" and res.trace_id:find("^00%-"), "trace_id of a failure")
    H.check(res.error.message:find("was not found", 1, true), res.error.message)
  end)

  H.test("v2: request_v2 with and without a body", function()
    local res = call(cad, "request_v2", "GET", "/v2/general/version", nil)
    H.eq(res.ok, true, "ok")
    H.eq(res.type, "GET /v2/general/version", "type")
    H.eq(type(res.data.version), "number", "data.version")
    H.eq(type(res.data.name), "string", "data.name")
    H.eq(type(res.trace_id), "string", "trace_id")
    res = call(cad, "request_v2", "POST", "/v2/general/links/check", { communityUserId = BRIAN_ID })
    H.eq(res.data.linked, true, "links/check")
    H.eq(res.data.accountUuid, H.uuid("SonoranBrian"), "accountUuid")
    H.raises(function() cad:request_v2("GET", "/general/version", nil) end, "path")
    H.raises(function() cad:request_v2(42, "/v2/general/version", nil) end, "method: expected a string")
  end)

  H.test("v2: a wrong secret is FORBIDDEN, and the secret is in no text", function()
    local wrong = "0b7c1d2e-3f40-4a5b-8c6d-7e8f90a1b2c3"
    local msg = { type = "scad:account-link", accountUuid = H.uuid("SonoranBrian"), secretUuid = wrong }
    local res = failed(call(cad, "link_from_tablet", msg, { "steam:11000010BOTH005" }), "FORBIDDEN")
    H.eq(res.status, 403, "status")
    H.check(res.error.message:find("do not match", 1, true), res.error.message)
    H.eq(type(res.trace_id), "string", "trace_id")
    H.check(not H.dump(res):find(wrong, 1, true), "secret in " .. H.dump(res))
    H.eq(call(cad, "is_linked", "11000010BOTH005").data.linked, false, "not linked by a wrong secret")
  end)

  H.test("v2: create_link_code, reused for the same player, completed, then is_linked", function()
    -- No checker cache here: the test asks again right after the link is made.
    local c = sonoran.new(H.config(nil, { link_check_ttl_ms = 0 }))
    local player = { "license:lua-code", "steam:11000010BOTH006" }
    H.eq(call(c, "is_linked", player).data.linked, false, "not linked before")
    local res = ok_result(call(c, "create_link_code", player), "CREATE_LINK_CODE")
    local code = res.data.code
    H.eq(type(code), "string", "code")
    H.check(code:find("^[A-Z0-9][A-Z0-9][A-Z0-9][A-Z0-9]$"), "four characters: " .. code)
    H.eq(res.data.url, "https://sonorancad.com/id?code=" .. code, "url")
    H.eq(type(res.data.expiresAt), "string", "expiresAt")
    H.eq(res.data.communityUserId, "11000010BOTH006", "communityUserId")
    H.eq(type(res.trace_id), "string", "trace_id")
    local calls = c:stats().api_calls
    local again = ok_result(call(c, "create_link_code", player), "CREATE_LINK_CODE")
    H.eq(again.data.code, code, "the same player gets the same code again")
    H.eq(c:stats().api_calls, calls, "without an API call")
    local other = ok_result(call(c, "create_link_code", "11000010BOTH007"), "CREATE_LINK_CODE")
    H.check(other.data.code ~= code, "another player gets another code")
    H.eq(call(c, "is_linked", player).data.linked, false, "not linked while the code waits")
    -- The player enters the code at sonorancad.com/id (the emulator's stand-in for the page).
    local status, body = H.complete_link_code(code, "PendingRecruit")
    H.eq(status, 200, "completion: " .. body)
    H.check(body:find('"communityUserId":"11000010BOTH006"', 1, true), body)
    H.eq(call(c, "is_linked", player).data.linked, true, "linked once the code is used")
    H.linked_to(call(c, "check_api_id", { apiId = "11000010BOTH006" }), "PendingRecruit")
    status = H.complete_link_code(code, "PendingRecruit")
    H.eq(status, 404, "a used code is gone")
    H.raises(function() c:create_link_code(42) end, "identifiers")
    failed(call(c, "create_link_code", { "license:only" }), "NO_IDENTIFIER")
    c:close()
    H.drain(c)
  end)
end

cad:close()
H.drain(cad)
H.finish()
