"""Creates an App and N devices on the server at 127.0.0.1:PORT (the tenant JWT in $JWT), over
one keep-alive connection; with `scan`, links each by a simulated scan (sandbox provider).
Prints the App token, then each device id, one a line.
Usage: python3 bench/make_devices.py PORT N scan|none"""
import http.client
import json
import os
import sys
import time

port, n, scan = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "scan"
conn = http.client.HTTPConnection("127.0.0.1", int(port), timeout=30)


def call(method, path, token, body=None):
    conn.request(method, path, body=json.dumps(body) if body is not None else None,
                 headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    r = conn.getresponse()
    return r.status, json.loads(r.read() or b"null")


status, app = call("POST", "/apps", os.environ["JWT"], {"name": "bench"})
assert status == 201, (status, app)
token = app["data"]["app_token"]
print(token)
for i in range(n):
    status, d = call("POST", "/devices", token, {"device_name": "d%d" % i})
    assert status in (200, 201, 202), (status, d)
    device = d["data"]["device"]["device_id"]
    print(device)
    if not scan:
        continue
    for _ in range(600):
        status, body = call("POST", "/sandbox/devices/%s/scan" % device, token,
                            {"wa_number": "1555%07d" % i})
        if status < 300:
            break
        time.sleep(0.05)  # the QR is not issued yet
    else:
        sys.exit("scan of %s kept failing: %s %s" % (device, status, body))
