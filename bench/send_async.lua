-- wrk: durable async text sends (Prefer: respond-async). Only 2xx answers count as
-- accepted: `done` prints "accepted <2xx answers> <duration in microseconds>". With
-- DEVICES (comma-separated device ids) the sends rotate over those devices' message paths;
-- without, they go to the URL's path.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Prefer"] = "respond-async"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("APP_TOKEN")
wrk.body = '{"to": "15550001111", "text": "benchmark"}'

local threads = {}
local paths = {}
for id in string.gmatch(os.getenv("DEVICES") or "", "[^,]+") do
  table.insert(paths, "/devices/" .. id .. "/messages")
end

function setup(thread)
  thread:set("offset", #threads)
  table.insert(threads, thread)
end

function init(args)
  accepted = 0
  next_path = offset or 0
end

-- Without DEVICES the request stays wrk's static one.
if #paths > 0 then
  function request()
    next_path = next_path + 1
    return wrk.format(nil, paths[(next_path % #paths) + 1])
  end
end

function response(status, headers, body)
  if status >= 200 and status < 300 then
    accepted = accepted + 1
  end
end

function done(summary, latency, requests)
  local n = 0
  for _, t in ipairs(threads) do
    n = n + t:get("accepted")
  end
  io.write(string.format("accepted %d %d\n", n, summary.duration))
end
