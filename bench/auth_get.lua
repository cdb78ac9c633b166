-- wrk: GET /devices with the App token.
wrk.headers["Authorization"] = "Bearer " .. os.getenv("APP_TOKEN")
