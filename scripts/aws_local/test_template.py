"""Reading and resolving templates (`template`), the worker's container (`worker`), tenant
JWTs (`tokens`) and Lambda's environment checks (`runtime`): one test per row."""

import base64
import hashlib
import hmac
import json
import os
import tempfile
import unittest

from aws_local import resources, runtime, template, tokens, worker
from aws_local.template import NO_VALUE, Resolver, TemplateError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

TEMPLATE = {
    "Parameters": {
        "Name": {"Type": "String", "Default": "n"},
        "Mode": {"Type": "String", "Default": "a", "AllowedValues": ["a", "b"]},
        "Wait": {"Type": "Number", "Default": 5, "MaxValue": 10},
        "Ids": {"Type": "List<AWS::EC2::Subnet::Id>"},
        "Secret": {"Type": "String"},
    },
    "Conditions": {
        "IsB": {"Fn::Equals": [{"Ref": "Mode"}, "b"]},
        "NotB": {"Fn::Not": [{"Condition": "IsB"}]},
    },
    "Resources": {
        "Queue": {"Type": "AWS::SQS::Queue", "Properties": {}},
        "Dlq": {"Type": "AWS::SQS::Queue", "Properties": {}},
        "Main": {"Type": "AWS::SQS::Queue", "DependsOn": "Queue",
                 "Properties": {"RedrivePolicy": {"deadLetterTargetArn": {"Fn::GetAtt": ["Dlq", "Arn"]}}}},
        "Role": {"Type": "AWS::IAM::Role"},
        "OnlyB": {"Type": "AWS::SQS::Queue", "Condition": "IsB"},
    },
}


def resolver(given=None, lookup=None):
    params = template.parameter_values(TEMPLATE, given or {})
    r = Resolver(TEMPLATE, params, template.pseudo_parameters("st", "us-east-1"), lookup)
    r.emulated = {"Queue", "Dlq", "Main", "OnlyB"}
    r.refs["Queue"] = "http://q"
    r.attrs["Queue"] = {"Arn": "arn:q", "QueueName": "q"}
    return r


class Parameters(unittest.TestCase):
    def test_defaults_and_given_values(self):
        p = template.parameter_values(TEMPLATE, {"Mode": "b", "Ids": "s-1, s-2"})
        self.assertEqual((p["Name"], p["Mode"], p["Wait"], p["Ids"]), ("n", "b", "5", ["s-1", "s-2"]))
        self.assertIsInstance(p["Secret"], template.Missing)

    def test_constraints(self):
        for given in [{"Mode": "c"}, {"Wait": "11"}, {"Wait": "x"}, {"Nope": "1"}]:
            with self.assertRaises(TemplateError, msg=given):
                template.parameter_values(TEMPLATE, given)

    def test_a_missing_value_fails_only_when_used(self):
        r = resolver()
        self.assertEqual(r.resolve({"Ref": "Name"}), "n")
        with self.assertRaisesRegex(TemplateError, "Secret=..."):
            r.resolve({"Ref": "Secret"})


class Intrinsics(unittest.TestCase):
    def test_ref_and_get_att_of_created_resources(self):
        r = resolver()
        self.assertEqual(r.resolve({"Ref": "Queue"}), "http://q")
        self.assertEqual(r.resolve({"Fn::GetAtt": ["Queue", "Arn"]}), "arn:q")
        self.assertEqual(r.resolve({"Fn::GetAtt": "Queue.QueueName"}), "q")
        with self.assertRaises(TemplateError):
            r.resolve({"Fn::GetAtt": ["Queue", "Nope"]})

    def test_an_emulated_resource_not_made_yet_is_an_ordering_error(self):
        with self.assertRaisesRegex(TemplateError, "before it exists"):
            resolver().resolve({"Ref": "Dlq"})

    def test_resources_not_emulated_get_placeholders(self):
        r = resolver()
        self.assertEqual(r.resolve({"Ref": "Role"}), "st-Role-local")
        self.assertTrue(r.resolve({"Fn::GetAtt": ["Role", "Arn"]}).startswith("arn:aws:iam:us-east-1:"))

    def test_sub(self):
        r = resolver()
        self.assertEqual(r.resolve({"Fn::Sub": "${Queue.Arn}/x/${AWS::Region}/${!Lit}/${Name}"}),
                         "arn:q/x/us-east-1/${Lit}/n")
        self.assertEqual(r.resolve({"Fn::Sub": ["${a}-${Name}", {"a": {"Ref": "Mode"}}]}), "a-n")

    def test_if_and_no_value(self):
        r = resolver()
        value = r.resolve({"A": {"Fn::If": ["IsB", "yes", {"Ref": "AWS::NoValue"}]},
                           "B": {"Fn::If": ["NotB", "yes", "no"]}, "L": [1, {"Ref": "AWS::NoValue"}]})
        self.assertEqual(value, {"B": "yes", "L": [1]})
        self.assertIs(r.resolve({"Ref": "AWS::NoValue"}), NO_VALUE)

    def test_conditions_decide_which_resources_exist(self):
        self.assertFalse(resolver().exists("OnlyB"))
        self.assertTrue(resolver({"Mode": "b"}).exists("OnlyB"))
        with self.assertRaisesRegex(TemplateError, "condition is false"):
            resolver().resolve({"Ref": "OnlyB"})

    def test_join_select_split(self):
        r = resolver({"Ids": "s-1,s-2"})
        self.assertEqual(r.resolve({"Fn::Select": [1, {"Ref": "Ids"}]}), "s-2")
        self.assertEqual(r.resolve({"Fn::Join": ["+", ["a", {"Ref": "Name"}]]}), "a+n")
        self.assertEqual(r.resolve({"Fn::Split": [",", "a,b"]}), ["a", "b"])

    def test_dynamic_secret_references(self):
        seen = []

        def lookup(*ref):
            seen.append(ref)
            return "s3cret"

        r = resolver(lookup=lookup)
        arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:jwt-AbC"
        self.assertEqual(r.resolve({"Fn::Sub": "{{resolve:secretsmanager:%s:SecretString}}" % arn}), "s3cret")
        self.assertEqual(r.resolve("k={{resolve:secretsmanager:name:SecretString:key::v1}}"), "k=s3cret")
        self.assertEqual(seen, [(arn, None, None, None), ("name", "key", None, "v1")])
        with self.assertRaises(TemplateError):
            r.resolve("{{resolve:ssm:param}}")

    def test_unsupported_functions_say_so(self):
        with self.assertRaisesRegex(TemplateError, "not supported locally"):
            resolver().resolve({"Fn::ImportValue": "x"})


class Structure(unittest.TestCase):
    def test_creation_follows_references_and_depends_on(self):
        order = template.creation_order(TEMPLATE, ["Main", "Dlq", "Queue"])
        self.assertLess(order.index("Dlq"), order.index("Main"))
        self.assertLess(order.index("Queue"), order.index("Main"))

    def test_a_cycle_is_an_error(self):
        cyclic = {"Resources": {"A": {"Type": "T", "Properties": {"x": {"Ref": "B"}}},
                                "B": {"Type": "T", "Properties": {"x": {"Ref": "A"}}}}}
        with self.assertRaises(TemplateError):
            template.creation_order(cyclic, ["A", "B"])

    def test_sam_globals(self):
        merged = template.merge_globals(
            {"Timeout": 29, "Environment": {"Variables": {"A": "1", "B": "2"}}, "Layers": ["g"]},
            {"Timeout": 30, "Environment": {"Variables": {"B": "3"}}, "Layers": ["l"]})
        self.assertEqual(merged, {"Timeout": 30, "Environment": {"Variables": {"A": "1", "B": "3"}},
                                  "Layers": ["g", "l"]})
        self.assertEqual(template.merge_globals({"Ref": "A"}, {"x": 1}), {"x": 1})

    def test_the_projects_template_resolves(self):
        tpl = template.load(os.path.join(ROOT, "template.yaml"))
        params = template.parameter_values(tpl, {"Provider": "sandbox"})
        params["JwtSecretArn"] = "arn:aws:secretsmanager:us-east-1:123456789012:secret:jwt-AbC"
        r = Resolver(tpl, params, template.pseudo_parameters("st", "us-east-1"), lambda *ref: "key")
        for logical in ("Table", "CommandsQueue", "EventsQueue", "SendsQueue"):
            r.refs[logical] = f"ref-{logical}"
        env = r.resolve(template.function_properties(tpl, "SendsFunction")["Environment"]["Variables"])
        self.assertEqual(env["WA_SEND_WAIT_MS"], 0)
        self.assertEqual(env["WA_TABLE_NAME"], "ref-Table")
        self.assertNotIn("WA_JWT_ISSUER", env)
        self.assertEqual(template.env_text(env["WA_SEND_WAIT_MS"]), "0")

    def test_the_projects_template_routes_every_path(self):
        tpl = template.load(os.path.join(ROOT, "template.yaml"))
        for provider, sandbox in (("sandbox", True), ("whatsapp", False)):
            params = template.parameter_values(tpl, {"Provider": provider})
            params["JwtSecretArn"] = "arn:aws:secretsmanager:us-east-1:123456789012:secret:jwt-AbC"
            r = Resolver(tpl, params, template.pseudo_parameters("st", "us-east-1"), lambda *ref: "key")
            self.assertEqual(r.exists("SandboxFunction"), sandbox, provider)
            self.assertTrue(r.exists("SiteFunction"), provider)
        routes = {(e["Properties"].get("Method"), e["Properties"].get("Path"))
                  for e in template.function_properties(tpl, "SiteFunction")["Events"].values()}
        self.assertIn(("ANY", "$default"), routes)
        self.assertIn(("GET", "/openapi.json"), routes)
        sandbox_routes = [e["Properties"]["Path"]
                          for e in template.function_properties(tpl, "SandboxFunction")["Events"].values()]
        self.assertEqual(sandbox_routes, ["/sandbox/{proxy+}"])

    def test_the_media_bucket_reaches_the_functions_that_use_it(self):
        tpl = template.load(os.path.join(ROOT, "template.yaml"))
        params = template.parameter_values(tpl, {"Provider": "sandbox"})
        params["JwtSecretArn"] = "arn:aws:secretsmanager:us-east-1:123456789012:secret:jwt-AbC"
        r = Resolver(tpl, params, template.pseudo_parameters("st", "us-east-1"), lambda *ref: "key")
        for logical in ("Table", "CommandsQueue", "EventsQueue", "SendsQueue", "MediaBucket"):
            r.refs[logical] = f"ref-{logical}"
        self.assertIn("AWS::S3::Bucket", resources.EMULATED)
        for fn, expected in [("DevicesFunction", "ref-MediaBucket"), ("AppsFunction", "ref-MediaBucket"),
                             ("MessagesFunction", None), ("WebhooksFunction", None)]:
            env = r.resolve(template.function_properties(tpl, fn)["Environment"]["Variables"])
            self.assertEqual(env.get("WA_MEDIA_BUCKET"), expected, fn)
        container = tpl["Resources"]["WorkerTask"]["Properties"]["ContainerDefinitions"][0]
        worker_env = {e["Name"]: r.resolve(e["Value"]) for e in container["Environment"]}
        self.assertEqual(worker_env["WA_MEDIA_BUCKET"], "ref-MediaBucket")


    def test_every_function_has_its_errors_and_throttles_alarms(self):
        tpl = template.load(os.path.join(ROOT, "template.yaml"))
        body = tpl["Resources"]
        alarms = {}
        for logical, res in body.items():
            if res.get("Type") != "AWS::CloudWatch::Alarm" or "MetricName" not in res["Properties"]:
                continue
            p = res["Properties"]
            for d in p.get("Dimensions") or []:
                if d["Name"] == "FunctionName":
                    alarms[(d["Value"]["Ref"], p["MetricName"])] = (logical, res.get("Condition"))
        functions = [k for k, v in body.items() if v.get("Type") == "AWS::Serverless::Function"]
        self.assertIn("SiteFunction", functions)
        self.assertIn("SandboxFunction", functions)
        for fn in functions:
            for metric in ("Errors", "Throttles"):
                self.assertIn((fn, metric), alarms, f"{fn} has a {metric} alarm")
                logical, condition = alarms[(fn, metric)]
                # An alarm on a function that may not exist must not exist without it.
                self.assertEqual(condition, body[fn].get("Condition"), logical)
                self.assertEqual(body[logical]["Properties"]["AlarmActions"], [{"Ref": "AlarmTopic"}], logical)

class LambdaChecks(unittest.TestCase):
    def test_reserved_keys_are_refused(self):
        with self.assertRaisesRegex(TemplateError, "AWS_REGION"):
            runtime.check_environment("f", {"AWS_REGION": "x"})

    def test_the_4_kb_limit(self):
        runtime.check_environment("f", {"A": "x" * 4000})
        with self.assertRaisesRegex(TemplateError, "4 KB"):
            runtime.check_environment("f", {"A": "x" * 4100})

    def test_the_environment_lambda_gives(self):
        spec = runtime.FunctionSpec("Fn", "st-Fn", "/opt/fn/bootstrap", "bootstrap", 256, 29,
                                    {"WA_X": "1"}, "us-east-1", "123456789012")
        env = runtime.lambda_environment(spec, "127.0.0.1:9", "http://127.0.0.1:5", "s", {"WA_Y": "2"})
        for key, value in [("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9"), ("AWS_LAMBDA_FUNCTION_NAME", "st-Fn"),
                           ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"), ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
                           ("AWS_REGION", "us-east-1"), ("_HANDLER", "bootstrap"),
                           ("AWS_ENDPOINT_URL", "http://127.0.0.1:5"), ("WA_X", "1"), ("WA_Y", "2"),
                           ("LAMBDA_TASK_ROOT", "/opt/fn")]:
            self.assertEqual(env[key], value, key)
        self.assertIn("AWS_ACCESS_KEY_ID", env)


class Worker(unittest.TestCase):
    def test_the_worker_image(self):
        binary, env = worker.dockerfile_image(os.path.join(ROOT, "infra", "worker.Dockerfile"))
        self.assertEqual(binary, "wa-worker")
        self.assertEqual(env.get("WA_DATA_DIR"), "/data")

    def test_the_final_stage_counts(self):
        with tempfile.NamedTemporaryFile("w", suffix=".Dockerfile", delete=False) as f:
            f.write('FROM a AS b\nENTRYPOINT ["/x"]\nENV A=1\nFROM c\nENV B 2\nENTRYPOINT /usr/bin/y --z\n')
        try:
            self.assertEqual(worker.dockerfile_image(f.name), ("y", {"B": "2"}))
        finally:
            os.unlink(f.name)

    def test_the_container_environment(self):
        env = worker.container_environment(
            {"PATH": "/bin", "AWS_REGION": "r"}, {"WA_DATA_DIR": "/data", "RUST_LOG": "info"},
            {"Environment": [{"Name": "WA_PROVIDER", "Value": "sandbox"}, {"Name": "N", "Value": 1}],
             "Secrets": [{"Name": "K", "ValueFrom": "arn:s"}]},
            lambda arn: f"value-of-{arn}", {"RUST_LOG": "debug"}, {"/data": "/tmp/v/sessions"})
        self.assertEqual(env["WA_DATA_DIR"], "/tmp/v/sessions")
        self.assertEqual(env["N"], "1")
        self.assertEqual(env["K"], "value-of-arn:s")
        self.assertEqual(env["RUST_LOG"], "debug")
        self.assertEqual(worker.map_paths({"A": "/database", "B": "/data/x"}, {"/data": "/l"}),
                         {"A": "/database", "B": "/l/x"})

    def test_only_the_sandbox_runs(self):
        worker.refuse_real_provider("w", {"WA_PROVIDER": "sandbox"})
        for env in [{}, {"WA_PROVIDER": "whatsapp"}]:
            with self.assertRaisesRegex(TemplateError, "Provider=sandbox"):
                worker.refuse_real_provider("w", env)


class Tokens(unittest.TestCase):
    def test_an_hs256_jwt_with_the_servers_claims(self):
        jwt = tokens.mint("k" * 32, "acme", ttl_secs=60, issuer="i", now=1000)
        header, payload, signature = jwt.split(".")
        pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
        self.assertEqual(json.loads(base64.urlsafe_b64decode(pad(header)))["alg"], "HS256")
        claims = json.loads(base64.urlsafe_b64decode(pad(payload)))
        self.assertEqual(claims, {"tenant_id": "acme", "exp": 1060, "sub": "acme", "iat": 1000, "iss": "i"})
        expected = hmac.new(b"k" * 32, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        self.assertEqual(base64.urlsafe_b64decode(pad(signature)), expected)


if __name__ == "__main__":
    unittest.main()
