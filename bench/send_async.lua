-- wrk: durable async text sends (Prefer: respond-async). wrk reports any answer that is
-- not 2xx as "Non-2xx or 3xx responses".
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Prefer"] = "respond-async"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("APP_TOKEN")
wrk.body = '{"to": "15550001111", "text": "benchmark"}'
