"""Cold starts as a user feels them: the first request to a cold function of the local stack
(scripts/aws-local's Lambda emulator, moto behind it), from the process start to its first
answer, the function's first DynamoDB calls included.

Usage: lambda_cold.py BIN_DIR SDK_HELLO RUNS

BIN_DIR holds the stack's binaries named as template.yaml names them (`wa-fn-*`, and
`wa-worker`, which does not run: the stack starts no worker). Per run, each HTTP function's
idle execution environment is ended and one request goes through the HTTP API:

- AppsFunction: `POST /apps` with the tenant JWT (its init reads the JWT key from Secrets
  Manager; the request verifies the JWT and writes the App);
- DevicesFunction: `GET /devices` with the App's token (the token's item, then a query);
- MessagesFunction: `GET /devices/{id}/messages` of a device made beforehand (the token,
  the device, a query);
- SiteFunction: `GET /openapi.json` (the site function makes no AWS call at all);

and SDK_HELLO (bench/lambda-sdk-hello: one GetItem of the stack's table, one SendMessage to
its sends queue) gets a `GET /hello` event under the same emulator. Each figure comes from
the emulator's own record of the cold invocation (`lambda.jsonl`: `first_answer_ms`, and
`init_ms`, process start to the first `invocation/next`). Prints one JSON line per function:
the median and p90 (nearest rank) of both, and the median of the first invocation alone
(first answer minus init).
"""
import json
import math
import os
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
sys.dont_write_bytecode = True

from aws_local import runtime, template  # noqa: E402
from aws_local.logs import JsonLines  # noqa: E402
from aws_local.stack import Options, Stack  # noqa: E402

BIN_DIR, SDK_HELLO, RUNS = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2]), int(sys.argv[3])
FIXTURE = os.path.join(ROOT, "shared", "lambda-http", "fixtures", "apigw-v2-post-apps.json")


def call(api, method, path, token, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(api + path, data=data, method=method)
    req.add_header("authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=60) as res:
            return res.status, json.loads(res.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, e.read()[:300]


def hello_event():
    with open(FIXTURE) as f:
        event = json.load(f)
    event.update(routeKey="GET /hello", rawPath="/hello", body=None)
    event["headers"].pop("content-length")
    event["headers"].pop("content-type")
    event["requestContext"].update(routeKey="GET /hello")
    event["requestContext"]["http"].update(method="GET", path="/hello")
    return json.dumps(event).encode()


def rank(values, q):
    s = sorted(values)
    return s[max(0, math.ceil(q * len(s)) - 1)]


def main():
    state = tempfile.mkdtemp(prefix="lambda-cold-")
    options = Options(template=os.path.join(ROOT, "template.yaml"), parameters={"Provider": "sandbox"},
                      bin_dir=BIN_DIR, state_dir=state, python=sys.executable, workers=0, max_envs=1,
                      pollers=1)
    stack = Stack(options)
    try:
        ready = stack.up()
        api, jwt = ready["api_url"], ready["tenant_jwt"]
        timings = JsonLines(os.path.join(state, "logs", "sdk-hello.jsonl"))
        spec = runtime.FunctionSpec(
            logical="SdkHello", name="lambda-sdk-hello", binary=SDK_HELLO, handler="bootstrap", memory=256,
            timeout=30, region=ready["region"], account=template.ACCOUNT,
            environment={"WA_TABLE_NAME": ready["resources"]["Table"]["name"],
                         "WA_SENDS_QUEUE_URL": ready["resources"]["SendsQueue"]["url"]})
        hello = runtime.Function(spec, ready["moto_endpoint"], os.path.join(state, "logs", "lambda"), 1, {}, timings)
        stack.stoppers.append(hello.stop)
        status, created = call(api, "POST", "/apps", jwt, {"name": "cold-setup"})
        assert status == 201, (status, created)
        token = created["data"]["app_token"]
        status, device = call(api, "POST", "/devices", token, {"device_name": "cold"})
        assert status == 201, (status, device)
        device_id = device["data"]["device"]["device_id"]
        requests = {
            "AppsFunction": lambda n: call(api, "POST", "/apps", jwt, {"name": f"cold-{n}"}),
            "DevicesFunction": lambda n: call(api, "GET", "/devices", token),
            "MessagesFunction": lambda n: call(api, "GET", f"/devices/{device_id}/messages", token),
            "SiteFunction": lambda n: call(api, "GET", "/openapi.json", token),
        }
        event = hello_event()
        for n in range(RUNS):
            for logical, request in requests.items():
                fn = stack.functions[logical]
                assert fn.retire(), f"{logical}: an idle environment did not end"
                status, answer = request(n)
                assert status in (200, 201), (logical, status, answer)
            assert hello.retire()
            outcome = hello.invoke(event, wait=60)
            assert outcome is not None and outcome.ok, outcome and outcome.payload
            assert b'"statusCode":200' in outcome.payload.replace(b" ", b""), outcome.payload[:300]
        # The records are written just after each answer.
        time.sleep(0.5)
        records = []
        for path in (ready["lambda_log"], timings.path):
            with open(path) as f:
                records += [json.loads(line) for line in f]
        names = {"AppsFunction": "wa-fn-apps", "DevicesFunction": "wa-fn-devices",
                 "MessagesFunction": "wa-fn-messages", "SiteFunction": "wa-fn-site",
                 "SdkHello": "lambda-sdk-hello"}
        for logical, name in names.items():
            cold = [r for r in records if r.get("function") == logical and r.get("event") == "invoke"
                    and r.get("cold") and not r.get("error")]
            # The setup's first requests to the apps and devices functions were cold too.
            cold = cold[-RUNS:]
            first = [r["first_answer_ms"] for r in cold]
            init = [r["init_ms"] for r in cold]
            print(json.dumps({
                "function": name, "runs": len(cold),
                "first_answer_ms_median": round(statistics.median(first), 2),
                "first_answer_ms_p90": round(rank(first, 0.9), 2),
                "init_ms_median": round(statistics.median(init), 2),
                "init_ms_p90": round(rank(init, 0.9), 2),
                "invoke_ms_median": round(statistics.median(a - b for a, b in zip(first, init)), 2),
            }), flush=True)
    finally:
        stack.down()


main()
