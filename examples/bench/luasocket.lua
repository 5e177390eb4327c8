-- The same calls made the way a Lua script does without the library: a blocking LuaSocket HTTP
-- POST (Debian's lua-socket) from lua5.4. Each call holds the calling (game) thread for as long
-- as it takes; that time is what is measured, per call, with socket.gettime().
--
--   SONORAN_BENCH_URL=... SONORAN_BENCH_COMMUNITY=... SONORAN_BENCH_KEY=... lua5.4 luasocket.lua
local socket = require("socket")
local http = require("socket.http")
local ltn12 = require("ltn12")

local url = os.getenv("SONORAN_BENCH_URL")
local community = os.getenv("SONORAN_BENCH_COMMUNITY")
local key = os.getenv("SONORAN_BENCH_KEY")
local now = socket.gettime
http.TIMEOUT = 10

local function report(metric, unit, v)
  table.sort(v)
  local n = #v
  local p99 = math.floor((n - 1) * 0.99 + 0.5) + 1
  print(string.format('{"metric":"%s","unit":"%s","n":%d,"median":%.4f,"p99":%.4f,"min":%.4f,"max":%.4f}',
    metric, unit, n, v[math.floor((n - 1) / 2) + 1], v[p99], v[1], v[n]))
  io.stdout:flush()
end

local function body(ty, data)
  return string.format('{"id":"%s","key":"%s","type":"%s","data":[%s]}', community, key, ty, data)
end

local function bench(metric, path, ty, data)
  local payload = body(ty, data)
  local samples, failed = {}, 0
  local deadline = now() + 60
  for _ = 1, 1000 do
    if now() > deadline then break end
    local out = {}
    local t0 = now()
    local ok, code = http.request {
      url = url .. path,
      method = "POST",
      headers = { ["content-type"] = "application/json", ["content-length"] = tostring(#payload) },
      source = ltn12.source.string(payload),
      sink = ltn12.sink.table(out),
    }
    local t1 = now()
    if not ok or code ~= 200 then failed = failed + 1 end
    samples[#samples + 1] = (t1 - t0) * 1e6
  end
  report(metric, "us", samples)
  print(string.format('{"metric":"%s_failed","unit":"calls","n":1,"median":%d,"p99":%d,"min":%d,"max":%d}',
    metric, failed, failed, failed, failed))
end

bench("luasocket_get_account", "/general/get_account", "GET_ACCOUNT", '{"username":"SonoranBrian"}')
bench("luasocket_set_api_id", "/general/set_api_id", "SET_API_ID",
  '{"username":"OfficerJones","apiIds":["110000100000001"]}')
