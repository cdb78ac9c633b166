"""Init time of a Lambda bootstrap under a local Lambda Runtime API emulator.

Usage: lambda_init.py BOOTSTRAP EVENT_FILE RUNS

For each run it starts BOOTSTRAP with AWS_LAMBDA_RUNTIME_API pointing at this process, and
measures the time from the spawn to the function's first `GET /invocation/next` (its init:
loading, configuration, SDK clients), then hands it EVENT_FILE and waits for its answer.
Prints one JSON line: the median and minimum init and first-invocation times in ms.
"""
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BOOTSTRAP, EVENT_FILE, RUNS = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(EVENT_FILE, "rb") as f:
    EVENT = f.read()

state = {}
cond = threading.Condition()


class Runtime(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if not self.path.endswith("/runtime/invocation/next"):
            self.send_error(404)
            return
        with cond:
            if "next" in state:
                # The second `next` of a run: hold it until the run ends.
                cond.wait(timeout=30)
                return
            state["next"] = time.perf_counter()
            cond.notify_all()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("lambda-runtime-aws-request-id", "bench-request-1")
        self.send_header("lambda-runtime-deadline-ms", str(int(time.time() * 1000) + 30000))
        self.send_header(
            "lambda-runtime-invoked-function-arn",
            "arn:aws:lambda:us-east-1:123456789012:function:bench",
        )
        self.send_header("lambda-runtime-trace-id", "Root=1-5e9f0c65-1de4d666d4dd26aced652b6c")
        self.send_header("content-length", str(len(EVENT)))
        self.end_headers()
        self.wfile.write(EVENT)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        with cond:
            state["done"] = time.perf_counter()
            state["answer"] = body[:300].decode(errors="replace")
            state["path"] = self.path
            cond.notify_all()
        self.send_response(202)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


base_env = dict(os.environ)
base_env.update(
    {
        "AWS_LAMBDA_FUNCTION_NAME": "bench",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
        "AWS_LAMBDA_LOG_GROUP_NAME": "bench",
    }
)
inits, firsts = [], []
for _ in range(RUNS):
    # A fresh emulator per run: a killed function's last request cannot reach the next run.
    server = ThreadingHTTPServer(("127.0.0.1", 0), Runtime)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = dict(base_env, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{server.server_port}")
    with cond:
        state.clear()
    start = time.perf_counter()
    proc = subprocess.Popen([BOOTSTRAP], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with cond:
        ok = cond.wait_for(lambda: "done" in state, timeout=30)
        result = dict(state)
        cond.notify_all()
    proc.kill()
    proc.wait()
    server.shutdown()
    server.server_close()
    if not ok:
        sys.exit(f"{BOOTSTRAP}: no answer within 30 s (init reached: {'next' in result})")
    if "/error" in result["path"]:
        sys.exit(f"{BOOTSTRAP}: the invocation failed: {result['answer']}")
    inits.append((result["next"] - start) * 1000)
    firsts.append((result["done"] - result["next"]) * 1000)
print(
    json.dumps(
        {
            "init_ms_median": round(statistics.median(inits), 2),
            "init_ms_min": round(min(inits), 2),
            "first_invoke_ms_median": round(statistics.median(firsts), 2),
        }
    )
)
