-- wrk: waited text sends to an instant sandbox recipient (200 once sent).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("APP_TOKEN")
wrk.body = '{"to": "15550001111", "text": "benchmark"}'
