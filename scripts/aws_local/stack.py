"""The local stack put together from template.yaml: moto, the emulated resources, the
functions (`runtime`), the HTTP APIs (`front`), the SQS event source mappings (`esm`)
and the worker service (`worker`); `up` starts it all and answers the ready document,
`down` stops it in reverse order."""

import os
import random
import secrets
import socket
import string
import subprocess
import threading
import time
from dataclasses import dataclass, field

from . import apigw, esm, front, resources, runtime, template, tokens, worker
from .logs import JsonLines
from .template import Missing, TemplateError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MOTO_SERIAL = os.path.join(ROOT, "scripts", "moto_serial.py")
IMPLICIT_API = "ServerlessHttpApi"


@dataclass
class Options:
    """What the command line chose."""

    template: str
    parameters: dict
    bin_dir: str
    state_dir: str
    python: str
    region: str = "us-east-1"
    stack_name: str = "wa-local"
    moto_endpoint: str = None
    api_port: int = 0
    workers: int = None
    max_envs: int = 4
    pollers: int = 2
    extra_env: dict = field(default_factory=dict)
    jwt_secret: str = None
    tenant: str = "local"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _suffix(n, alphabet=string.ascii_uppercase + string.digits):
    return "".join(random.choices(alphabet, k=n))


class Stack:
    """One local stack."""

    def __init__(self, options):
        self.o = options
        self.log_dir = os.path.join(options.state_dir, "logs")
        self.stoppers = []
        self.warnings = []
        self.queues = {}
        self.functions = {}

    def warn(self, message):
        self.warnings.append(message)

    # ------------------------------------------------------------------ start
    def up(self):
        o = self.o
        os.makedirs(self.log_dir, exist_ok=True)
        tpl = template.load(o.template)
        params = template.parameter_values(tpl, o.parameters)
        endpoint = o.moto_endpoint or self._start_moto()
        self.endpoint = endpoint
        suffix = _suffix(12)

        def lookup(*reference):
            return resources.secret_value(endpoint, o.region, *reference)

        jwt_key = None
        if "JwtSecretArn" in params and "JwtSecretArn" not in o.parameters:
            jwt_key = o.jwt_secret or secrets.token_hex(32)
            params["JwtSecretArn"] = resources.create_jwt_secret(o.stack_name, suffix, jwt_key, endpoint, o.region)
        elif "JwtSecretArn" in params and not isinstance(params["JwtSecretArn"], Missing):
            jwt_key = lookup(params["JwtSecretArn"], None, None, None)
        r = template.Resolver(tpl, params, template.pseudo_parameters(o.stack_name, o.region), lookup)
        self.resolver = r
        body = tpl["Resources"]
        of_type = lambda kind: [k for k, v in body.items() if v.get("Type") == kind and r.exists(k)]  # noqa: E731
        functions = of_type("AWS::Serverless::Function")
        emulated = [k for k, v in body.items() if v.get("Type") in resources.EMULATED and r.exists(k)]
        r.emulated = set(emulated)

        for logical in functions:
            name = r.resolve((body[logical].get("Properties") or {}).get("FunctionName")) \
                or template.generated_name(o.stack_name, logical, suffix)[:64]
            r.refs[logical] = name
            r.attrs[logical] = {"Arn": f"arn:aws:lambda:{o.region}:{template.ACCOUNT}:function:{name}"}
        apis = self._bind_apis(tpl, functions)

        summaries = {}
        for logical in template.creation_order(tpl, emulated):
            props = r.resolve(body[logical].get("Properties") or {})
            created = resources.create(body[logical]["Type"], logical, props, o.stack_name, suffix,
                                       endpoint, o.region)
            r.refs[logical], r.attrs[logical] = created.ref, created.attrs
            summaries[logical] = created.summary
            for w in created.warnings:
                self.warn(w)
            if body[logical]["Type"] == "AWS::SQS::Queue":
                self.queues[created.attrs["Arn"]] = (logical, created.ref, props)

        timings = JsonLines(os.path.join(self.log_dir, "lambda.jsonl"))
        lambda_logs = os.path.join(self.log_dir, "lambda")
        os.makedirs(lambda_logs, exist_ok=True)
        pool, described, mappings = {}, {}, []
        for logical in functions:
            spec, events = self._function(tpl, logical)
            pool[logical] = runtime.Function(spec, endpoint, lambda_logs, o.max_envs, o.extra_env, timings)
            described[logical] = {"name": spec.name, "binary": spec.binary, "memory_mb": spec.memory,
                                  "timeout_s": spec.timeout, "routes": [], "mappings": []}
            for event_name, event in events:
                self._event(logical, event_name, event, spec, apis, mappings, described[logical])
        # The functions by logical id, for tools that drive the stack in-process (bench/lambda_cold.py).
        self.functions = pool
        self.stoppers.append(lambda: [fn.stop() for fn in pool.values()])
        for api in apis.values():
            apigw.check_routes(api.routes)
            api.functions.update(pool)

        esm_log = JsonLines(os.path.join(self.log_dir, "esm.jsonl"))
        pollers = []
        for m in mappings:
            for _ in range(m.concurrency):
                p = esm.Poller(m, pool[m.function], endpoint, o.region, esm_log)
                p.start()
                pollers.append(p)
        self.stoppers.append(lambda: [p.stop() for p in pollers])

        workers = self._workers(tpl, endpoint, lookup)

        env_of = [spec for spec in (pool[k].spec for k in functions)]
        issuer = next((s.environment["WA_JWT_ISSUER"] for s in env_of if s.environment.get("WA_JWT_ISSUER")), None)
        audience = next((s.environment["WA_JWT_AUDIENCE"] for s in env_of if s.environment.get("WA_JWT_AUDIENCE")), None)
        api_urls = {k: f"http://127.0.0.1:{a.port}" for k, a in apis.items()}
        ready = {
            "ready": True,
            "stack": o.stack_name,
            "region": o.region,
            "account": template.ACCOUNT,
            "api_url": next(iter(api_urls.values()), None),
            "apis": api_urls,
            "moto_endpoint": endpoint,
            "parameters": {k: v for k, v in params.items() if not isinstance(v, Missing)},
            "resources": summaries,
            "functions": described,
            "workers": workers,
            "outputs": self._outputs(tpl),
            "jwt_secret_arn": params.get("JwtSecretArn") if jwt_key else None,
            "jwt_secret": jwt_key,
            "tenant": o.tenant,
            "tenant_jwt": tokens.mint(jwt_key, o.tenant, issuer=issuer, audience=audience) if jwt_key else None,
            "state_dir": o.state_dir,
            "log_dir": self.log_dir,
            "lambda_log": timings.path,
            "not_emulated": sorted(f"{k} ({v.get('Type')})" for k, v in body.items()
                                   if k not in r.refs and r.exists(k)),
            "warnings": self.warnings,
        }
        return ready

    def _start_moto(self):
        port = free_port()
        log = open(os.path.join(self.log_dir, "moto.log"), "ab", buffering=0)
        proc = subprocess.Popen([self.o.python, MOTO_SERIAL, "127.0.0.1", str(port)], stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.stoppers.append(lambda: _terminate(proc, 5))
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"moto exited ({proc.returncode}); see {log.name}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return f"http://127.0.0.1:{port}"
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"moto did not listen on port {port} within 60 s") from None
                time.sleep(0.1)

    def _bind_apis(self, tpl, functions):
        """The HTTP APIs, listening already (their routes come with the functions)."""
        r, body = self.resolver, tpl["Resources"]
        logicals = [k for k, v in body.items() if v.get("Type") == "AWS::Serverless::HttpApi" and r.exists(k)]
        implicit = any(
            e.get("Type") == "HttpApi" and "ApiId" not in (e.get("Properties") or {})
            for f in functions for e in (template.function_properties(tpl, f).get("Events") or {}).values())
        if implicit:
            logicals.append(IMPLICIT_API)
        apis = {}
        for n, logical in enumerate(logicals):
            props = (body.get(logical) or {}).get("Properties") or {}
            if "DefinitionBody" in props or "DefinitionUri" in props:
                raise TemplateError(f"{logical}: an OpenAPI definition is not supported locally")
            for key in sorted(set(props) - {"StageName", "Description", "Tags"}):
                self.warn(f"{logical}: {key} is not emulated locally")
            stage = str(r.resolve(props.get("StageName", "$default")))
            api_id = _suffix(10, string.ascii_lowercase + string.digits)
            port = self.o.api_port if n == 0 and self.o.api_port else 0
            api = front.Api(logical, api_id, stage, [], {}, template.ACCOUNT,
                            os.path.join(self.log_dir, f"api-{logical}.log"))
            server = front.serve(api, "127.0.0.1", port)
            api.port = server.server_address[1]
            self.stoppers.append(server.shutdown)
            r.refs[logical] = api_id
            r.attrs[logical] = {"ApiEndpoint": f"http://127.0.0.1:{api.port}"}
            apis[logical] = api
        return apis

    def _function(self, tpl, logical):
        r, o = self.resolver, self.o
        props = template.function_properties(tpl, logical)
        kind = str(r.resolve(props.get("Runtime", "")))
        if not kind.startswith("provided"):
            raise TemplateError(f"{logical}: runtime {kind}: only custom runtimes (provided.*) run locally")
        meta = tpl["Resources"][logical].get("Metadata") or {}
        binary_name = (meta.get("BuildProperties") or {}).get("Binary")
        if meta.get("BuildMethod") != "rust-cargolambda" or not binary_name:
            raise TemplateError(f"{logical}: needs Metadata BuildMethod rust-cargolambda and BuildProperties.Binary")
        binary = os.path.join(o.bin_dir, str(binary_name))
        if not os.access(binary, os.X_OK):
            raise TemplateError(f"{logical}: {binary} is missing: build it (cargo build --workspace --bins)")
        memory = int(r.resolve(props.get("MemorySize", 128)))
        timeout = float(r.resolve(props.get("Timeout", 3)))
        if not 128 <= memory <= 10240:
            raise TemplateError(f"{logical}: MemorySize {memory} must be 128 to 10240")
        if not 1 <= timeout <= 900:
            raise TemplateError(f"{logical}: Timeout {timeout:g} must be 1 to 900")
        variables = r.resolve(((props.get("Environment") or {}).get("Variables")) or {})
        variables = {str(k): template.env_text(v) for k, v in variables.items()}
        runtime.check_environment(logical, variables)
        spec = runtime.FunctionSpec(logical=logical, name=r.refs[logical], binary=binary,
                                    handler=str(r.resolve(props.get("Handler", "bootstrap"))),
                                    memory=memory, timeout=timeout, environment=variables,
                                    region=o.region, account=template.ACCOUNT)
        return spec, list((props.get("Events") or {}).items())

    def _event(self, logical, event_name, event, spec, apis, mappings, described):
        r, kind = self.resolver, event.get("Type")
        p = event.get("Properties") or {}
        where = f"{logical}.{event_name}"
        if kind == "HttpApi":
            api_id = p.get("ApiId")
            api = api_id["Ref"] if isinstance(api_id, dict) and "Ref" in api_id else IMPLICIT_API
            if api_id is not None and api not in apis:
                raise TemplateError(f"{where}: ApiId is not an HttpApi of this stack")
            version = str(r.resolve(p.get("PayloadFormatVersion", "2.0")))
            if version != "2.0":
                raise TemplateError(f"{where}: payload format {version}: only 2.0 is emulated")
            try:
                route = apigw.route(r.resolve(p.get("Method")), r.resolve(p.get("Path")), logical,
                                    r.resolve(p.get("TimeoutInMillis")))
            except apigw.RouteError as e:
                raise TemplateError(f"{where}: {e}") from None
            apis[api].routes.append(route)
            described["routes"].append(route.key)
        elif kind == "SQS":
            arn = r.resolve(p.get("Queue"))
            if arn not in self.queues:
                raise TemplateError(f"{where}: Queue {arn} is not a queue of this stack")
            queue_logical, url, queue_props = self.queues[arn]
            if p.get("FilterCriteria"):
                raise TemplateError(f"{where}: FilterCriteria is not emulated locally")
            batch = int(r.resolve(p.get("BatchSize", 10)))
            window = int(r.resolve(p.get("MaximumBatchingWindowInSeconds", 0)))
            types = r.resolve(p.get("FunctionResponseTypes") or [])
            max_concurrency = (r.resolve(p.get("ScalingConfig") or {})).get("MaximumConcurrency")
            max_concurrency = int(max_concurrency) if max_concurrency is not None else None
            sqs = resources.client("sqs", self.endpoint, self.o.region)
            attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
            fifo = attrs.get("FifoQueue") == "true"
            esm.check_mapping(where, fifo, int(attrs.get("VisibilityTimeout", 30)), spec.timeout, batch,
                              window, max_concurrency)
            if str(r.resolve(p.get("Enabled", True))).lower() == "false":
                return
            concurrency = min(self.o.pollers, max_concurrency or self.o.pollers)
            mappings.append(esm.Mapping(function=logical, event=event_name, queue_url=url, queue_arn=arn,
                                        fifo=fifo, batch_size=batch, window_secs=window,
                                        report_failures="ReportBatchItemFailures" in types,
                                        concurrency=concurrency))
            described["mappings"].append({"queue": queue_logical, "batch_size": batch,
                                          "window_secs": window, "report_failures": "ReportBatchItemFailures" in types})
        else:
            self.warn(f"{where}: events of type {kind} are not emulated locally")

    def _workers(self, tpl, endpoint, lookup):
        r, o, body = self.resolver, self.o, tpl["Resources"]
        started = []
        events = JsonLines(os.path.join(self.log_dir, "workers.jsonl"))
        processes = []
        for service in [k for k, v in body.items() if v.get("Type") == "AWS::ECS::Service" and r.exists(k)]:
            sp = body[service].get("Properties") or {}
            task_ref = sp.get("TaskDefinition")
            if not (isinstance(task_ref, dict) and task_ref.get("Ref") in body):
                raise TemplateError(f"{service}: TaskDefinition must be a Ref to a task definition of this stack")
            task = body[task_ref["Ref"]].get("Properties") or {}
            count = o.workers if o.workers is not None else int(r.resolve(sp.get("DesiredCount", 1)))
            volumes = {}
            for v in task.get("Volumes") or []:
                volumes[str(r.resolve(v["Name"]))] = os.path.join(o.state_dir, "volumes", str(r.resolve(v["Name"])))
            for c in task.get("ContainerDefinitions") or []:
                name = str(r.resolve(c["Name"]))
                dockerfile = os.path.join(ROOT, "infra", f"{name}.Dockerfile")
                if not os.path.exists(dockerfile):
                    raise TemplateError(f"{service}: container {name}: no infra/{name}.Dockerfile to take its binary from")
                binary_name, image_env = worker.dockerfile_image(dockerfile)
                binary = os.path.join(o.bin_dir, binary_name)
                if not os.access(binary, os.X_OK):
                    raise TemplateError(f"{service}: {binary} is missing: build it (cargo build --workspace --bins)")
                mounts = {}
                for mp in c.get("MountPoints") or []:
                    local = volumes[str(r.resolve(mp["SourceVolume"]))]
                    os.makedirs(local, mode=0o700, exist_ok=True)
                    mounts[str(r.resolve(mp["ContainerPath"]))] = local
                home = os.path.join(o.state_dir, "home")
                os.makedirs(home, exist_ok=True)
                base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home,
                        "AWS_REGION": o.region, "AWS_DEFAULT_REGION": o.region,
                        "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                        "AWS_ENDPOINT_URL": endpoint, "AWS_EXECUTION_ENV": "AWS_ECS_FARGATE"}
                resolved = {"Environment": r.resolve(c.get("Environment") or []),
                            "Secrets": r.resolve(c.get("Secrets") or [])}
                env = worker.container_environment(base, image_env, resolved,
                                                   lambda arn: lookup(*template.parse_secret_reference(arn)),
                                                   o.extra_env, mounts)
                worker.refuse_real_provider(f"{service}/{name}", env)
                spec = worker.ContainerSpec(service=service, name=name, binary=binary, env=env,
                                            stop_timeout=int(r.resolve(c.get("StopTimeout", worker.DEFAULT_STOP_TIMEOUT))))
                for i in range(count):
                    proc = worker.Process(spec, i + 1, self.log_dir, events)
                    proc.start()
                    processes.append(proc)
                    started.append({"service": service, "container": name, "binary": binary,
                                    "index": i + 1, "pid": proc.proc.pid})
        self.stoppers.append(lambda: _in_parallel([p.stop for p in processes]))
        return started

    def _outputs(self, tpl):
        out = {}
        for name, spec in (tpl.get("Outputs") or {}).items():
            if spec.get("Condition") and not self.resolver.condition(spec["Condition"]):
                continue
            try:
                out[name] = self.resolver.resolve(spec.get("Value"))
            except TemplateError as e:
                self.warn(f"output {name}: {e}")
        return out

    # ------------------------------------------------------------------ stop
    def down(self):
        """Stops everything that was started, newest first."""
        while self.stoppers:
            stop = self.stoppers.pop()
            try:
                stop()
            except Exception as e:  # noqa: BLE001 - stopping the rest matters more
                print(f"aws-local: while stopping: {e}", flush=True)


def _in_parallel(calls):
    threads = [threading.Thread(target=c) for c in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _terminate(proc, grace):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
