"""What the HTTP API front answers for each outcome of an integration (`front.Api.handle`),
with a stand-in function: one test per row."""

import json
import os
import tempfile
import time
import unittest
import urllib.request

from aws_local import apigw, front
from aws_local.runtime import REQUEST_LIMIT, Outcome


class StandIn:
    """A function that answers `outcome` and remembers what it was asked."""

    def __init__(self, outcome):
        self.outcome = outcome
        self.calls = []

    def invoke(self, payload, wait=None):
        self.calls.append((json.loads(payload), wait))
        return self.outcome


class Front(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()
        self.apis = []

    def tearDown(self):
        for api in self.apis:
            api.log.close()
        for name in os.listdir(self.dir):
            os.unlink(os.path.join(self.dir, name))
        os.rmdir(self.dir)

    def api(self, outcome, stage="$default", timeout_ms=30000):
        fn = StandIn(outcome)
        routes = [apigw.route("ANY", "/apps/{proxy+}", "Fn", timeout_ms)]
        api = front.Api("HttpApi", "abc", stage, routes, {"Fn": fn}, "123456789012",
                        os.path.join(self.dir, "api.log"))
        self.apis.append(api)
        return api, fn

    def handle(self, api, path="/apps/x", body=b""):
        return api.handle(method="GET", raw_path=path, raw_query="", headers=[("Host", "h")], body=body,
                          source_ip="127.0.0.1", port=1, req_id="id", started=time.monotonic())

    def test_the_functions_answer(self):
        api, fn = self.api(Outcome(True, b'{"statusCode": 201, "body": "made"}'))
        status, _, body, key, function, error = self.handle(api)
        self.assertEqual((status, body, key, function, error), (201, b"made", "ANY /apps/{proxy+}", "Fn", None))
        event, wait = fn.calls[0]
        self.assertEqual(event["pathParameters"], {"proxy": "x"})
        self.assertLessEqual(wait, 30)

    def test_a_request_is_in_the_access_log_when_its_answer_arrives(self):
        api, _ = self.api(Outcome(True, b'{"statusCode": 200, "body": "ok"}'))
        server = front.serve(api, "127.0.0.1", 0)
        try:
            for _ in range(20):
                url = f"http://127.0.0.1:{server.server_address[1]}/apps/x"
                with urllib.request.urlopen(url, timeout=10) as res:
                    req_id = res.headers["Apigw-Requestid"]
                with open(api.log.path) as f:
                    ids = [json.loads(line)["requestId"] for line in f]
                self.assertIn(req_id, ids)
        finally:
            server.shutdown()
            server.server_close()

    def test_no_route(self):
        api, fn = self.api(Outcome(True, b"{}"))
        self.assertEqual(self.handle(api, "/nope")[:3], apigw.NOT_FOUND)
        self.assertEqual(fn.calls, [])

    def test_a_failed_invocation(self):
        api, _ = self.api(Outcome.error("Sandbox.Timedout", "late"))
        answer = self.handle(api)
        self.assertEqual(answer[:3], apigw.INTERNAL_ERROR)
        self.assertEqual(answer[5], "Sandbox.Timedout")

    def test_a_malformed_answer(self):
        api, _ = self.api(Outcome(True, b"not json"))
        answer = self.handle(api)
        self.assertEqual(answer[:3], apigw.INTERNAL_ERROR)
        self.assertEqual(answer[5], "malformed response")

    def test_no_answer_within_the_integration_timeout(self):
        api, fn = self.api(None, timeout_ms=1000)
        self.assertEqual(self.handle(api)[:3], apigw.UNAVAILABLE)
        self.assertLessEqual(fn.calls[0][1], 1)

    def test_an_event_over_lambdas_limit_is_never_invoked(self):
        api, fn = self.api(Outcome(True, b"{}"))
        self.assertEqual(self.handle(api, body=b"a" * REQUEST_LIMIT)[:3], apigw.TOO_LARGE)
        self.assertEqual(fn.calls, [])

    def test_a_named_stage_prefixes_the_paths(self):
        api, fn = self.api(Outcome(True, b'{"statusCode": 200}'), stage="prod")
        self.assertEqual(self.handle(api, "/prod/apps/x")[0], 200)
        self.assertEqual(fn.calls[0][0]["rawPath"], "/prod/apps/x")
        self.assertEqual(self.handle(api, "/apps/x")[:3], apigw.NOT_FOUND)


if __name__ == "__main__":
    unittest.main()
