"""API Gateway's HTTP API rules as `apigw` emulates them: one test per row."""

import base64
import json
import unittest

from aws_local import apigw
from aws_local.runtime import REQUEST_LIMIT

ROUTES = [
    apigw.route("GET", "/pets/dog/1", "exact"),
    apigw.route("GET", "/pets/dog/{id}", "variable"),
    apigw.route("GET", "/pets/{proxy+}", "greedy-get"),
    apigw.route("ANY", "/pets/{proxy+}", "greedy-any"),
    apigw.route("ANY", "/{proxy+}", "root-greedy"),
    apigw.route("ANY", "/devices/{device_id}/messages", "messages"),
    apigw.route("ANY", "/devices/{proxy+}", "devices"),
    apigw.route("GET", "/health", "health"),
    apigw.route("ANY", "/apps", "apps"),
]


def chosen(routes, method, path):
    found = apigw.select(routes, method, path)
    return None if found is None else (found[0].function, found[1])


class Routing(unittest.TestCase):
    def test_a_full_match_beats_a_path_variable(self):
        self.assertEqual(chosen(ROUTES, "GET", "/pets/dog/1"), ("exact", {}))

    def test_a_path_variable_beats_a_greedy_variable(self):
        self.assertEqual(chosen(ROUTES, "GET", "/pets/dog/2"), ("variable", {"id": "2"}))

    def test_an_exact_method_beats_any_among_greedy_routes(self):
        self.assertEqual(chosen(ROUTES, "GET", "/pets/cat/1"), ("greedy-get", {"proxy": "cat/1"}))

    def test_any_takes_other_methods(self):
        self.assertEqual(chosen(ROUTES, "POST", "/pets/dog/1"), ("greedy-any", {"proxy": "dog/1"}))

    def test_the_longest_greedy_prefix_wins(self):
        self.assertEqual(chosen(ROUTES, "GET", "/food"), ("root-greedy", {"proxy": "food"}))

    def test_a_variable_route_beats_a_greedy_one_of_the_same_function_family(self):
        self.assertEqual(chosen(ROUTES, "GET", "/devices/abc/messages"),
                         ("messages", {"device_id": "abc"}))
        self.assertEqual(chosen(ROUTES, "GET", "/devices/abc/messages/m1"),
                         ("devices", {"proxy": "abc/messages/m1"}))

    def test_a_greedy_variable_needs_a_segment(self):
        routes = [apigw.route("ANY", "/apps/{proxy+}", "apps")]
        self.assertIsNone(chosen(routes, "GET", "/apps"))
        self.assertIsNone(chosen(routes, "GET", "/apps/"))
        self.assertEqual(chosen(routes, "GET", "/apps/a/b"), ("apps", {"proxy": "a/b"}))

    def test_a_method_without_a_route_is_not_found(self):
        routes = [apigw.route("GET", "/health", "health")]
        self.assertIsNone(chosen(routes, "DELETE", "/health"))

    def test_default_takes_what_nothing_else_does(self):
        routes = [apigw.route("GET", "/health", "health"), apigw.route(None, None, "fallback")]
        self.assertEqual(chosen(routes, "GET", "/nope"), ("fallback", {}))
        self.assertEqual(chosen(routes, "GET", "/health"), ("health", {}))
        self.assertEqual(apigw.route(None, "$default", "f").key, "$default")

    def test_path_parameters_are_decoded(self):
        routes = [apigw.route("GET", "/chats/{jid}", "chats")]
        self.assertEqual(chosen(routes, "GET", "/chats/a%40b%2Fc"), ("chats", {"jid": "a@b/c"}))

    def test_paths_are_case_sensitive(self):
        self.assertIsNone(chosen([apigw.route("GET", "/health", "h")], "GET", "/Health"))

    def test_routes_api_gateway_refuses(self):
        for method, path in [("GET", "/a/{p+}/b"), ("GET", "a"), ("FETCH", "/a"), ("GET", "/a{b}"),
                             ("GET", "/{a}/{a}")]:
            with self.assertRaises(apigw.RouteError, msg=f"{method} {path}"):
                apigw.route(method, path, "f")
        with self.assertRaises(apigw.RouteError):
            apigw.route("GET", "/a", "f", 31000)
        with self.assertRaises(apigw.RouteError):
            apigw.check_routes([apigw.route("GET", "/a", "f"), apigw.route("get", "/a", "g")])


def make_event(**overrides):
    args = dict(method="POST", raw_path="/apps/x", raw_query="", headers=[("Host", "h:1")],
                body=b"", source_ip="127.0.0.1",
                selected=(apigw.route("ANY", "/apps/{proxy+}", "f"), {"proxy": "x"}),
                stage="$default", api_id="abc123", account="123456789012",
                req_id="LV7fzho-PHcEJPw=", epoch_ms=1583348638390, domain="h:1", local_port=1)
    args.update(overrides)
    return apigw.event(**args)


class Events(unittest.TestCase):
    def test_the_2_0_fields(self):
        e = make_event(raw_query="a=1")
        self.assertEqual(e["version"], "2.0")
        self.assertEqual(e["routeKey"], "ANY /apps/{proxy+}")
        self.assertEqual(e["rawPath"], "/apps/x")
        self.assertEqual(e["rawQueryString"], "a=1")
        self.assertEqual(e["pathParameters"], {"proxy": "x"})
        ctx = e["requestContext"]
        self.assertEqual(ctx["stage"], "$default")
        self.assertEqual(ctx["requestId"], "LV7fzho-PHcEJPw=")
        self.assertEqual(ctx["http"]["method"], "POST")
        self.assertEqual(ctx["http"]["path"], "/apps/x")
        self.assertEqual(ctx["time"], "04/Mar/2020:19:03:58 +0000")
        self.assertEqual(ctx["timeEpoch"], 1583348638390)
        self.assertFalse(e["isBase64Encoded"])
        self.assertNotIn("body", e)

    def test_headers_are_lower_cased_and_duplicates_comma_joined(self):
        e = make_event(headers=[("X-A", "1"), ("x-a", "2"), ("Content-Type", "text/plain")])
        self.assertEqual(e["headers"]["x-a"], "1,2")
        self.assertEqual(e["headers"]["content-type"], "text/plain")
        self.assertEqual(e["headers"]["x-forwarded-for"], "127.0.0.1")

    def test_cookies_leave_the_headers(self):
        e = make_event(headers=[("Cookie", "a=1; b=2"), ("Cookie", "c=3")])
        self.assertEqual(e["cookies"], ["a=1", "b=2", "c=3"])
        self.assertNotIn("cookie", e["headers"])

    def test_query_parameters_join_duplicates(self):
        e = make_event(raw_query="a=1&a=2&b=x%20y&c")
        self.assertEqual(e["queryStringParameters"], {"a": "1,2", "b": "x y", "c": ""})

    def test_a_text_body_is_passed_as_text(self):
        e = make_event(headers=[("Content-Type", "application/json")], body=b'{"a": 1}')
        self.assertEqual(e["body"], '{"a": 1}')
        self.assertFalse(e["isBase64Encoded"])

    def test_a_binary_body_is_base64(self):
        e = make_event(headers=[("Content-Type", "image/png")], body=b"\x89PNG")
        self.assertEqual(base64.b64decode(e["body"]), b"\x89PNG")
        self.assertTrue(e["isBase64Encoded"])
        e = make_event(headers=[("Content-Type", "text/plain")], body=b"\xff\xfe")
        self.assertTrue(e["isBase64Encoded"])

    def test_no_path_parameters_no_key(self):
        e = make_event(selected=(apigw.route(None, None, "f"), {}))
        self.assertNotIn("pathParameters", e)
        self.assertEqual(e["routeKey"], "$default")

    def test_the_payload_limit_is_lambdas(self):
        self.assertFalse(apigw.too_large(b"x" * (REQUEST_LIMIT - 1)))
        self.assertTrue(apigw.too_large(b"x" * REQUEST_LIMIT))


class Responses(unittest.TestCase):
    def test_the_2_0_format(self):
        payload = json.dumps({"statusCode": 201, "headers": {"content-type": "application/json", "x-n": 1},
                              "cookies": ["a=1", "b=2"], "body": "{}"}).encode()
        status, headers, body = apigw.response(payload)
        self.assertEqual(status, 201)
        self.assertIn(("x-n", "1"), headers)
        self.assertEqual([v for k, v in headers if k == "Set-Cookie"], ["a=1", "b=2"])
        self.assertEqual(body, b"{}")

    def test_a_base64_body_is_decoded(self):
        payload = json.dumps({"statusCode": 200, "isBase64Encoded": True,
                              "body": base64.b64encode(b"\x00\x01").decode()}).encode()
        self.assertEqual(apigw.response(payload)[2], b"\x00\x01")

    def test_json_without_a_status_is_a_200_json_body(self):
        self.assertEqual(apigw.response(b'{"a": 1}'), (200, apigw.JSON, b'{"a": 1}'))

    def test_what_api_gateway_cannot_read_is_its_500(self):
        for payload in [b"not json", b"null", b'{"statusCode": "x"}', b'{"statusCode": 99}',
                        b'{"statusCode": 200, "isBase64Encoded": true, "body": "%%%"}']:
            self.assertIs(apigw.response(payload), apigw.INTERNAL_ERROR, payload)

    def test_api_gateways_own_answers(self):
        self.assertEqual(apigw.NOT_FOUND[0], 404)
        self.assertEqual(json.loads(apigw.NOT_FOUND[2]), {"message": "Not Found"})
        self.assertEqual(json.loads(apigw.TOO_LARGE[2]), {"message": "Request Entity Too Large"})
        self.assertEqual(json.loads(apigw.INTERNAL_ERROR[2]), {"message": "Internal Server Error"})
        self.assertEqual(apigw.UNAVAILABLE[0], 503)

    def test_request_ids_look_like_api_gateways(self):
        self.assertEqual(len(apigw.request_id(bytes(11))), 16)


if __name__ == "__main__":
    unittest.main()
