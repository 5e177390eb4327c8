-- The Lua face of the sonoran module (embedded in the library, run once per require).
-- The native pieces arrive as the chunk's argument; this file only raises errors at the
-- caller's line, runs callbacks in protected mode, and implements await with coroutines.
-- Written for Lua 5.1, LuaJIT and Lua 5.4 alike.
local native = ...

local M = {}
local Client = {}
Client.__index = Client
Client.__name = "sonoran.client"

local traceback = (debug and debug.traceback) or function(msg) return msg end
local getmetatable = getmetatable

M.null = native.null
M.array_mt = native.array_mt
M.object_mt = native.object_mt
M.ERROR_CODES = native.error_codes
M.ABI = native.abi

--- The library version, e.g. "0.2.0".
function M.version()
  return native.version
end

--- Parse the tablet's login capture (the legacy console line, or the iframe message as a table or
--- JSON text). Returns { community = ... or nil, username = ..., sessionId = ... }, or nil and the
--- reason: the text comes from players, so a refusal is a value, not an error.
function M.parse_session(capture)
  return native.parse_session(capture)
end

--- Mark a table as a JSON array (so an empty one is sent as []). Returns the table.
function M.array(t)
  return setmetatable(t or {}, native.array_mt)
end

--- Mark a table as a JSON object (so an empty one is sent as {}). Returns the table.
function M.object(t)
  return setmetatable(t or {}, native.object_mt)
end

-- One line of the default report: to io.stderr, or through print where the host has no
-- io.stderr or no io at all (sandboxed hosts: a Luanti mod's io has no stderr), or where
-- writing to it fails. Looked up at each report, never raises.
local function report_line(line)
  local ok, written = pcall(function() return io.stderr:write(line, "\n") end)
  if not (ok and written) then
    pcall(print, line)
  end
end

local function default_handler(message, id, kind)
  if kind == "delivery" then
    report_line(tostring(message))
  else
    report_line(("sonoran: callback of request %s failed: %s"):format(tostring(id), tostring(message)))
  end
end

local module_handler = nil

--- Set the handler for errors raised by callbacks of every client in this state (nil: the
--- default, which writes to io.stderr, or prints where the host has no io.stderr). A client's
--- own handler (cad:on_error) comes first.
--- It is called as handler(message, request_id, kind): kind is "callback" for an error the
--- callback raised, "delivery" when a result could not even be handed to its callback (the C
--- stack was exhausted where poll was called); such a result stays ready for the next poll.
--- Returns the previous handler.
function M.on_error(handler)
  if handler ~= nil and type(handler) ~= "function" then
    error("sonoran.on_error: expected a function(message, request_id) or nil", 2)
  end
  local previous = module_handler
  module_handler = handler
  return previous
end

local function report(self, message, id, kind)
  local handler = rawget(self, "_on_error") or module_handler or default_handler
  local ok, err = pcall(handler, message, id, kind)
  if not ok then
    default_handler(("the error handler itself failed (%s) while reporting: %s"):format(tostring(err), tostring(message)), id, kind)
  end
end

-- The last refusal raised in this Lua state: its code ("QUEUE_FULL", ...) and message.
local last_code, last_message

local function raise(err, level, code)
  last_code, last_message = code or "INVALID_ARGUMENT", tostring(err)
  error("sonoran: " .. tostring(err), level + 1)
end

--- The code and message of the last refusal raised in this Lua state (nil when none yet), to
--- branch on without reading the text: "INVALID_ARGUMENT", "INVALID_CONFIG", "WRONG_API",
--- "QUEUE_FULL", "CLOSED", "SYSTEM" or "INTERNAL". Read it in the pcall's error branch.
function M.last_refusal()
  return last_code, last_message
end

local function need_client(self, name)
  if getmetatable(self) ~= Client then
    error(("sonoran: call %s with a colon: cad:%s(...)"):format(name, name), 3)
  end
end

--- Create a client. See the README's Lua section for every configuration key.
function M.new(config)
  if type(config) ~= "table" then
    error("sonoran.new: expected a configuration table { community_id = ..., api_key = ..., ... }", 2)
  end
  local raw, err_or_idle, code = native.new(config)
  if not raw then
    raise(err_or_idle, 2, code)
  end
  -- _idle(max): true when poll(max) would deliver nothing (max valid, no result ready).
  local self = setmetatable({ _raw = raw, _idle = err_or_idle }, Client)
  -- Runs one callback in protected mode; called by the native poll for each result. An error
  -- before the callback began (the C stack is exhausted where poll was called) is not the
  -- callback's: it is raised on, so that the native poll keeps the result for the next poll.
  self._deliver = function(callback, res)
    local began = false
    local ok, e = xpcall(function()
      began = true
      return callback(res)
    end, function(m) return traceback(tostring(m), 2) end)
    if not ok then
      if not began then
        error(e, 0)
      end
      -- Protected: an error escaping here would count as undelivered, and the callback, which
      -- has already run, would run again on the next poll.
      pcall(report, self, e, res.id, "callback")
    end
  end
  return self
end

-- Every request method: the native call, a refusal raised at the caller's line, the id.
local function request_method(name, call)
  Client[name] = function(self, ...)
    need_client(self, name)
    local id, err, code = call(self._raw, ...)
    if not id then
      raise(err, 2, code)
    end
    return id
  end
end

-- The six typed calls: cad:set_api_id(data, callback), ...
for _, name in ipairs({
  "set_api_id",
  "link_character",
  "modify_identifier",
  "set_account_permissions",
  "get_account",
  "check_api_id",
}) do
  request_method(name, function(raw, data, callback) return raw:submit(name, data, callback) end)
end

-- cad:request("UNIT_STATUS", data, callback): any API type.
-- cad:link_from_tablet(capture, identifiers, callback): the tablet flow; `capture` is the
--   tablet's login text or a parsed table, `identifiers` the player's list from the game server.
-- cad:is_linked(identifiers_or_api_id, callback): the API ID checker.
-- cad:request_v2("PATCH", "/v2/...", body, callback): any v2 route (api_version = "v2").
-- cad:create_link_code(identifiers, callback): a v2 link code for the player.
for _, name in ipairs({ "request", "request_v2", "link_from_tablet", "is_linked", "create_link_code" }) do
  request_method(name, function(raw, ...) return raw[name](raw, ...) end)
end

--- Counters, waits and latency percentiles as a table.
function Client:stats()
  need_client(self, "stats")
  return self._raw:stats()
end

--- Run up to max ready callbacks (nil or 0: all ready now) on this thread; returns how many
--- results were delivered. Never waits.
function Client:poll(max)
  -- The idle path is the hot one (called every tick): the colon check inline, then one plain C
  -- call that reads the ready count.
  if getmetatable(self) ~= Client then
    need_client(self, "poll")
  end
  if self._idle(max) then
    return 0
  end
  local n, err, undelivered, undelivered_id = self._raw:poll(max, self._deliver)
  if not n then
    raise(err, 2, "INVALID_ARGUMENT")
  end
  if undelivered then
    -- Not the callback's error: the result could not even be handed to it (the C stack is
    -- nearly exhausted here, or memory is out). It stays ready; the next poll delivers it.
    pcall(report, self, "sonoran: " .. undelivered, undelivered_id, "delivery")
  end
  return n
end

--- Requests whose result has not been delivered by poll() yet.
function Client:pending()
  need_client(self, "pending")
  return self._raw:pending()
end

--- Cancel a request: true when it was pending (its callback gets CANCELLED on a later poll).
function Client:cancel(id)
  need_client(self, "cancel")
  local ok, err, code = self._raw:cancel(id)
  if ok == nil then
    raise(err, 2, code)
  end
  return ok
end

--- Stop accepting requests, complete the pending ones as SHUTDOWN and stop the library's
--- threads. Callbacks still run on later polls. Idempotent.
function Client:close()
  need_client(self, "close")
  self._raw:close()
end

--- Set this client's handler for errors raised by its callbacks (nil: the module's handler).
function Client:on_error(handler)
  need_client(self, "on_error")
  if handler ~= nil and type(handler) ~= "function" then
    error("sonoran: on_error expects a function(message, request_id) or nil", 2)
  end
  rawset(self, "_on_error", handler)
end

--- Wait for the result of a request started without a callback and return it.
--- Inside a coroutine: yields until poll() delivers the result, then resumes the coroutine from
--- inside that poll(). With a wait function (a host's own sleep, e.g. function() Wait(0) end):
--- calls it until the result has been delivered by the host's poll().
function Client:await(id, wait)
  need_client(self, "await")
  local co
  if wait == nil then
    local running, is_main = coroutine.running()
    local yieldable = true
    if coroutine.isyieldable then
      yieldable = coroutine.isyieldable()
    end
    if running == nil or is_main or not yieldable then
      error("sonoran: await must run inside a coroutine (e.g. coroutine.wrap(function() ... end)()), "
        .. "or be given a wait function: cad:await(id, function() Wait(0) end)", 2)
    end
    co = running
  elseif type(wait) ~= "function" then
    error("sonoran: await: wait must be a function or nil", 2)
  end
  local done, result = false, nil
  local ok, err = self._raw:attach(id, function(res)
    done, result = true, res
    if co and coroutine.status(co) == "suspended" then
      local resumed, e = coroutine.resume(co)
      if not resumed then
        error(traceback(co, tostring(e)), 0)
      end
    end
  end)
  if not ok then
    raise(err, 2)
  end
  while not done do
    if wait then
      wait()
    else
      coroutine.yield()
    end
  end
  return result
end

Client.__close = function(self)
  self:close()
end

Client.__tostring = function(self)
  return ("sonoran.client (%d pending)"):format(self._raw:pending())
end

return M
