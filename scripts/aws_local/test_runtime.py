"""The Lambda Runtime API emulator (`runtime`) with a small Python function that speaks the
Runtime API: warm reuse, a new environment when all are busy, the cap, timeouts, exits,
function and init errors, the response limit, and the timing records."""

import json
import os
import shutil
import sys
import tempfile
import threading
import time
import unittest

from aws_local import runtime
from aws_local.logs import JsonLines

FUNCTION = r'''#!PYTHON
import json, os, sys, time, urllib.error, urllib.request
base = "http://%s/2018-06-01/runtime" % os.environ["AWS_LAMBDA_RUNTIME_API"]
def post(path, body):
    try:
        urllib.request.urlopen(urllib.request.Request(base + path, data=body, method="POST"))
    except urllib.error.HTTPError as e:
        sys.stderr.write("answered %d\n" % e.code)
if os.environ.get("FAIL_INIT"):
    post("/init/error", b'{"errorType": "Init.Boom", "errorMessage": "no config"}')
    sys.exit(1)
while True:
    with urllib.request.urlopen(base + "/invocation/next") as r:
        rid = r.headers["Lambda-Runtime-Aws-Request-Id"]
        headers = {k.lower(): v for k, v in r.headers.items()}
        event = json.loads(r.read())
    do = event.get("do")
    if do == "exit":
        sys.exit(3)
    if do == "sleep":
        time.sleep(event["secs"])
    if do == "error":
        post("/invocation/%s/error" % rid, b'{"errorType": "Boom", "errorMessage": "no"}')
    elif do == "big":
        post("/invocation/%s/response" % rid, b'"' + b"a" * 6291556 + b'"')
    else:
        env = {k: os.environ.get(k) for k in ("AWS_LAMBDA_FUNCTION_NAME", "AWS_REGION", "WA_X", "_HANDLER")}
        post("/invocation/%s/response" % rid, json.dumps({"pid": os.getpid(), "env": env, "headers": headers}).encode())
'''


class Runtime(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()
        self.binary = os.path.join(self.dir, "bootstrap")
        with open(self.binary, "w") as f:
            f.write(FUNCTION.replace("PYTHON", sys.executable))
        os.chmod(self.binary, 0o755)
        self.timings = JsonLines(os.path.join(self.dir, "lambda.jsonl"))
        self.functions = []

    def tearDown(self):
        for fn in self.functions:
            fn.stop()
            deadline = time.monotonic() + 10
            while fn.envs and time.monotonic() < deadline:
                time.sleep(0.02)
        self.timings.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def function(self, timeout=20, max_envs=4, env=None):
        spec = runtime.FunctionSpec("Fn", "st-Fn", self.binary, "bootstrap", 256, timeout,
                                    {"WA_X": "x"}, "us-east-1", "123456789012")
        fn = runtime.Function(spec, "http://127.0.0.1:1", self.dir, max_envs, env or {}, self.timings)
        self.functions.append(fn)
        return fn

    def invoke(self, fn, event):
        outcome = fn.invoke(json.dumps(event).encode(), wait=60)
        self.assertIsNotNone(outcome, "the invocation ended")
        return outcome

    def records(self, invokes=0):
        """The timing records, once at least `invokes` invocations are written (each is
        written just after its outcome)."""
        deadline = time.monotonic() + 10
        while True:
            with open(self.timings.path) as f:
                records = [json.loads(line) for line in f]
            if sum(r["event"] == "invoke" for r in records) >= invokes or time.monotonic() > deadline:
                return records
            time.sleep(0.02)

    def test_a_warm_environment_is_reused_and_gets_what_lambda_gives(self):
        fn = self.function()
        first = self.invoke(fn, {})
        second = self.invoke(fn, {})
        self.assertTrue(first.ok and second.ok)
        a, b = json.loads(first.payload), json.loads(second.payload)
        self.assertEqual(a["pid"], b["pid"])
        self.assertEqual(a["env"], {"AWS_LAMBDA_FUNCTION_NAME": "st-Fn", "AWS_REGION": "us-east-1",
                                    "WA_X": "x", "_HANDLER": "bootstrap"})
        h = a["headers"]
        self.assertEqual(h["lambda-runtime-invoked-function-arn"],
                         "arn:aws:lambda:us-east-1:123456789012:function:st-Fn")
        self.assertTrue(h["lambda-runtime-trace-id"].startswith("Root=1-"))
        deadline = int(h["lambda-runtime-deadline-ms"]) / 1000
        self.assertGreater(deadline, time.time() + 5)
        invokes = [r for r in self.records(2) if r["event"] == "invoke"]
        self.assertEqual([r["cold"] for r in invokes], [True, False])
        self.assertIn("first_answer_ms", invokes[0])
        self.assertGreater(invokes[0]["first_answer_ms"], invokes[0]["init_ms"])
        self.assertEqual(sum(r["event"] == "init" for r in self.records()), 1)

    def test_a_retired_function_starts_cold_again(self):
        fn = self.function()
        first = json.loads(self.invoke(fn, {}).payload)
        self.assertTrue(fn.retire())
        second = json.loads(self.invoke(fn, {}).payload)
        self.assertNotEqual(first["pid"], second["pid"])
        invokes = [r for r in self.records(2) if r["event"] == "invoke"]
        self.assertEqual([r["cold"] for r in invokes], [True, True])
        self.assertEqual(fn.started, 2)

    def test_a_new_environment_starts_when_all_are_busy(self):
        fn = self.function()
        slow = fn.submit(json.dumps({"do": "sleep", "secs": 2}).encode())
        time.sleep(0.1)
        quick = self.invoke(fn, {})
        self.assertTrue(quick.ok)
        self.assertTrue(slow.wait(60).ok)
        self.assertEqual(fn.started, 2)

    def test_beyond_the_cap_an_invocation_waits(self):
        fn = self.function(max_envs=1)
        invs = [fn.submit(json.dumps({"do": "sleep", "secs": 0.5}).encode()) for _ in range(2)]
        self.assertTrue(all(i.wait(60).ok for i in invs))
        self.assertEqual(fn.started, 1)

    def test_the_timeout_ends_the_environment(self):
        fn = self.function(timeout=1)
        self.invoke(fn, {})
        outcome = self.invoke(fn, {"do": "sleep", "secs": 5})
        self.assertFalse(outcome.ok)
        self.assertEqual(outcome.error_type, "Sandbox.Timedout")
        self.assertTrue(self.invoke(fn, {}).ok)
        self.assertEqual(fn.started, 2)

    def test_an_exit_fails_the_invocation_and_the_next_one_starts_afresh(self):
        fn = self.function()
        outcome = self.invoke(fn, {"do": "exit"})
        self.assertEqual(outcome.error_type, "Runtime.ExitError")
        self.assertIn("exit status 3", json.loads(outcome.payload)["errorMessage"])
        self.assertTrue(self.invoke(fn, {}).ok)

    def test_a_function_error(self):
        outcome = self.invoke(self.function(), {"do": "error"})
        self.assertFalse(outcome.ok)
        self.assertEqual(outcome.error_type, "Boom")

    def test_a_response_over_the_limit(self):
        fn = self.function()
        outcome = self.invoke(fn, {"do": "big"})
        self.assertEqual(outcome.error_type, "Function.ResponseSizeTooLarge")
        self.assertTrue(self.invoke(fn, {}).ok, "the environment keeps serving")

    def test_an_init_error(self):
        outcome = self.invoke(self.function(env={"FAIL_INIT": "1"}), {})
        self.assertFalse(outcome.ok)
        self.assertEqual(outcome.error_type, "Init.Boom")

    def test_invocations_run_in_parallel_threads(self):
        fn = self.function()
        results = []
        threads = [threading.Thread(target=lambda: results.append(self.invoke(fn, {}).ok)) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(results, [True] * 3)


if __name__ == "__main__":
    unittest.main()
