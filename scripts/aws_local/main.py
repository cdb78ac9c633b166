"""The command line of scripts/aws-local: options and template parameters in, one JSON
ready line on stdout (everything a client needs), hints for a person on stderr, then it
runs until SIGTERM, Ctrl-C or the end of the process that started it."""

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import threading

from .stack import ROOT, Options, Stack
from .template import TemplateError

USAGE = """scripts/aws-local [PARAMETER=VALUE ...] [options]

Runs template.yaml's stack on this machine: moto, each function's binary behind a Lambda
Runtime API emulator, the HTTP API, the SQS event source mappings and the worker.
Parameters are the template's (for example Provider=sandbox); the others keep their
defaults. Example: scripts/aws-local Provider=sandbox"""


def parse(argv):
    parser = argparse.ArgumentParser(prog="scripts/aws-local", usage=USAGE)
    parser.add_argument("parameters", nargs="*", metavar="PARAMETER=VALUE")
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
    parser.add_argument("--template", default=os.path.join(ROOT, "template.yaml"))
    parser.add_argument("--bin-dir", default=os.path.join(target, "debug"),
                        help="where the cargo-built binaries are (default: the target dir's debug/; "
                             "pass target/release for a release build)")
    parser.add_argument("--state-dir", help="logs and the worker's volume (default: a new temporary directory)")
    parser.add_argument("--moto-endpoint", help="use this running moto server instead of starting one")
    parser.add_argument("--port", type=int, default=0, help="the HTTP API's port (default: a free one)")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--stack-name", default="wa-local")
    parser.add_argument("--workers", type=int, help="worker processes (default: the service's DesiredCount)")
    parser.add_argument("--max-envs", type=int, default=4,
                        help="execution environments per function at most (default 4)")
    parser.add_argument("--pollers", type=int, default=2, help="pollers per SQS event source mapping (default 2)")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                        help="an extra variable for every function and worker (a local override)")
    parser.add_argument("--jwt-secret", help="the JWT key stored in Secrets Manager (default: random)")
    parser.add_argument("--tenant", default="local", help="the tenant of the printed JWT (default local)")
    parser.add_argument("--clean", action="store_true", help="remove the state directory (logs included) when it stops")
    args = parser.parse_args(argv)

    def pairs(items, what):
        out = {}
        for item in items:
            key, sep, value = item.partition("=")
            if not sep or not key:
                parser.error(f"{what} {item}: expected KEY=VALUE")
            out[key] = value
        return out

    state_dir = args.state_dir or tempfile.mkdtemp(prefix=f"aws-local-{args.stack_name}-")
    os.makedirs(state_dir, exist_ok=True)
    args.state_dir = state_dir
    return args, Options(
        template=args.template, parameters=pairs(args.parameters, "parameter"),
        bin_dir=os.path.abspath(args.bin_dir), state_dir=os.path.abspath(state_dir),
        python=sys.executable, region=args.region, stack_name=args.stack_name,
        moto_endpoint=args.moto_endpoint, api_port=args.port, workers=args.workers,
        max_envs=max(1, args.max_envs), pollers=max(1, args.pollers),
        extra_env=pairs(args.env, "--env"), jwt_secret=args.jwt_secret, tenant=args.tenant)


def hints(ready):
    api, moto = ready["api_url"], ready["moto_endpoint"]
    lines = [f"aws-local: stack {ready['stack']} is up"]
    if api:
        lines.append(f"  API            export API={api}")
    lines += [
        f"  moto           {moto}   (export AWS_ENDPOINT_URL={moto} AWS_REGION={ready['region']} "
        "AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test)",
    ]
    if ready.get("tenant_jwt") and api:
        lines += [
            f"  tenant JWT     export JWT={ready['tenant_jwt']}",
            f"  create an App  curl -s {api}/apps -H \"Authorization: Bearer $JWT\" "
            "-H 'Content-Type: application/json' -d '{\"name\": \"demo\"}'",
        ]
    for logical, r in ready["resources"].items():
        where = r.get("url") or r.get("name")
        lines.append(f"  {logical:<26} {where}")
    for w in ready["workers"]:
        lines.append(f"  worker {w['index']} ({w['container']})  pid {w['pid']}")
    for w in ready["warnings"]:
        lines.append(f"  warning: {w}")
    lines += [f"  logs           {ready['log_dir']}", "  stop           Ctrl-C (or SIGTERM)"]
    return "\n".join(lines)


def main(argv=None):
    args, options = parse(sys.argv[1:] if argv is None else argv)
    stack = Stack(options)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    parent = os.getppid()
    try:
        ready = stack.up()
    except TemplateError as e:
        print(f"aws-local: {e}", file=sys.stderr, flush=True)
        stack.down()
        return 2
    except Exception as e:  # noqa: BLE001 - report and stop what started
        print(f"aws-local: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        stack.down()
        return 1
    print(json.dumps(ready), flush=True)
    print(hints(ready), file=sys.stderr, flush=True)
    # Stops with the process that started it, however that one ends.
    while not stop.wait(0.5):
        if os.getppid() != parent:
            break
    print("aws-local: stopping", file=sys.stderr, flush=True)
    stack.down()
    if args.clean:
        shutil.rmtree(options.state_dir, ignore_errors=True)
    return 0
