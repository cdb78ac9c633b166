"""The Lambda service of the local stack: each function's real binary in execution
environments behind the Lambda Runtime API (`/2018-06-01/runtime/...`), as Lambda runs a
custom runtime (`provided.al2023`).

- Environments start on demand: an invocation takes a warm idle environment, or starts a
  new one when all are busy (up to a cap per function; beyond it, invocations wait for one
  to free up instead of being throttled). Each serves one invocation at a time.
- An environment gets what Lambda gives a process (`AWS_LAMBDA_RUNTIME_API`,
  `AWS_LAMBDA_FUNCTION_NAME`, `..._MEMORY_SIZE`, `..._VERSION`, `AWS_REGION`, `_HANDLER`,
  credentials, ...), plus `AWS_ENDPOINT_URL` pointing at the emulator, plus the function's
  resolved `Environment`; each invocation the headers of `invocation/next`
  (`Lambda-Runtime-Aws-Request-Id`, `-Deadline-Ms`, `-Invoked-Function-Arn`, `-Trace-Id`).
- Failures as Lambda handles them: the function's `Timeout` kills the environment
  (`Sandbox.Timedout`); a process that exits (`Runtime.ExitError`) or reports an init error
  is replaced at the next invocation; a response over 6,291,556 bytes is refused with
  Lambda's 413 and fails the invocation (`Function.ResponseSizeTooLarge`).
- Cold starts are measured: from the process start to its first `invocation/next` (init)
  and to its first answer, written with every invocation's duration, billed duration and
  peak memory to `lambda.jsonl` in the log directory (and a Lambda-style REPORT line to
  the environment's own log).
"""

import json
import math
import os
import queue
import re
import secrets
import signal
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass

from . import httpio
from .template import TemplateError

# Invoke refuses a synchronous request payload of 6 MiB or more ("Request must be smaller
# than 6291456 bytes for the InvokeFunction operation").
REQUEST_LIMIT = 6 * 1024 * 1024
# The Runtime API refuses a response over this ("Exceeded maximum allowed payload size
# (6291556 bytes).", errorType RequestEntityTooLarge, HTTP 413).
RESPONSE_LIMIT = 6 * 1024 * 1024 + 100
# Lambda's limit on an on-demand environment's init phase.
INIT_LIMIT = 10.0
# The JSON of a function's variables may not exceed 4 KB.
ENVIRONMENT_LIMIT = 4096
# Keys a function's `Environment` may not set.
RESERVED = frozenset({
    "_HANDLER", "_X_AMZN_TRACE_ID", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION", "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME", "AWS_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR",
})

_INVOCATION = re.compile(r"/2018-06-01/runtime/invocation/([^/]+)/(response|error)")


@dataclass
class FunctionSpec:
    """What the template says about one function, resolved."""

    logical: str
    name: str
    binary: str
    handler: str
    memory: int
    timeout: float
    environment: dict
    region: str
    account: str

    @property
    def arn(self):
        return f"arn:aws:lambda:{self.region}:{self.account}:function:{self.name}"


def check_environment(name, variables):
    """Lambda's checks of a function's variables at deployment: no reserved key, at most
    4 KB in all."""
    reserved = sorted(set(variables) & RESERVED)
    if reserved:
        raise TemplateError(f"{name}: reserved environment variables {', '.join(reserved)}")
    size = len(json.dumps(variables, separators=(",", ":")))
    if size > ENVIRONMENT_LIMIT:
        raise TemplateError(f"{name}: its environment variables take {size} bytes, over Lambda's 4 KB")


def lambda_environment(spec, runtime_api, endpoint, log_stream, extra):
    """The environment of one execution environment's process."""
    code_dir = os.path.dirname(os.path.abspath(spec.binary))
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "LAMBDA_TASK_ROOT": code_dir,
        "LAMBDA_RUNTIME_DIR": code_dir,
        "_HANDLER": spec.handler,
        "AWS_LAMBDA_RUNTIME_API": runtime_api,
        "AWS_LAMBDA_FUNCTION_NAME": spec.name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": log_stream,
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_REGION": spec.region,
        "AWS_DEFAULT_REGION": spec.region,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_SESSION_TOKEN": "test",
        "AWS_ENDPOINT_URL": endpoint,
    }
    env.update(spec.environment)
    env.update(extra)
    return env


def trace_id():
    """An X-Ray trace header as Lambda passes it."""
    return f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)};Parent={secrets.token_hex(8)};Sampled=0"


def report_line(request_id, duration_ms, memory_mb, max_memory_mb, init_ms):
    """Lambda's REPORT log line for one invocation."""
    line = (f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\t"
            f"Billed Duration: {math.ceil(duration_ms)} ms\tMemory Size: {memory_mb} MB\t"
            f"Max Memory Used: {max_memory_mb} MB")
    if init_ms is not None:
        line += f"\tInit Duration: {init_ms:.2f} ms"
    return line


@dataclass
class Outcome:
    """How an invocation ended: its response payload, or a Lambda error."""

    ok: bool
    payload: bytes = b""
    error_type: str = None

    @staticmethod
    def error(error_type, message):
        body = json.dumps({"errorType": error_type, "errorMessage": message}).encode()
        return Outcome(False, body, error_type)


class Invocation:
    """One invocation and its progress."""

    def __init__(self, payload):
        self.request_id = str(uuid.uuid4())
        self.payload = payload
        self.cond = threading.Condition()
        self.submitted = time.monotonic()
        self.started_at = None
        self.finished_at = None
        self.outcome = None
        self.cold = False
        self.env = None

    def start(self):
        with self.cond:
            self.started_at = time.monotonic()
            self.cond.notify_all()

    def finish(self, outcome):
        """Ends the invocation with `outcome` unless it already ended; whether it did."""
        with self.cond:
            if self.outcome is not None:
                return False
            self.outcome, self.finished_at = outcome, time.monotonic()
            self.cond.notify_all()
            return True

    def wait(self, timeout=None):
        """The outcome, or None when `timeout` seconds pass first."""
        with self.cond:
            self.cond.wait_for(lambda: self.outcome is not None, timeout)
            return self.outcome

    def _wait_for(self, predicate, timeout):
        with self.cond:
            return self.cond.wait_for(predicate, timeout)


class Environment:
    """One execution environment: a process of the function's binary and its Runtime API."""

    def __init__(self, function, index):
        self.function = function
        self.index = index
        self.inbox = queue.Queue()
        self.lock = threading.Lock()
        self.current = None
        self.alive = True
        self.busy = True
        self.spawned = None
        self.init_done = None
        self.init_error = None
        self.proc = None
        self.server = None

    def start(self):
        fn = self.function
        self.server = httpio.Server(("127.0.0.1", 0), _runtime_api(self))
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        api = f"127.0.0.1:{self.server.server_address[1]}"
        stream = time.strftime("%Y/%m/%d/[$LATEST]") + secrets.token_hex(16)
        env = lambda_environment(fn.spec, api, fn.endpoint, stream, fn.extra_env)
        self.log = open(os.path.join(fn.log_dir, f"{fn.spec.logical}-{self.index}.log"), "ab", buffering=0)
        self.spawned = time.monotonic()
        self.proc = subprocess.Popen(
            [fn.spec.binary], env=env, cwd=env["LAMBDA_TASK_ROOT"], stdin=subprocess.DEVNULL,
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        threading.Thread(target=self._watch, daemon=True).start()

    # ---------------------------------------------------------- the Runtime API
    def next_invocation(self):
        """Blocks until the next invocation for this environment (None: it stops)."""
        if self.init_done is None:
            self.init_done = time.monotonic()
            self.function.record({"event": "init", "env": self.index, "pid": self.proc.pid,
                                  "init_ms": round((self.init_done - self.spawned) * 1000, 2)})
        while self.alive:
            try:
                inv = self.inbox.get(timeout=0.5)
            except queue.Empty:
                continue
            with self.lock:
                self.current = inv
            inv.start()
            return inv
        return None

    def complete(self, request_id, kind, body, error_type):
        """A `response` or `error` posted for `request_id`: (status, answer)."""
        with self.lock:
            inv = self.current
            if inv is None or inv.request_id != request_id:
                return 400, {"errorType": "InvalidRequestID", "errorMessage": "Invalid request ID"}
            self.current = None
        # Free before the caller hears the outcome: its next invocation finds this
        # environment warm (it is queued until the runtime asks for it).
        self.function._release(self)
        if kind == "response" and len(body) > RESPONSE_LIMIT:
            inv.finish(Outcome.error(
                "Function.ResponseSizeTooLarge",
                f"Response payload size exceeded maximum allowed payload size ({RESPONSE_LIMIT} bytes)."))
            return 413, {"errorType": "RequestEntityTooLarge",
                         "errorMessage": f"Exceeded maximum allowed payload size ({RESPONSE_LIMIT} bytes)."}
        if kind == "response":
            inv.finish(Outcome(True, body))
        else:
            inv.finish(Outcome(False, body, error_type or _error_type(body) or "Unhandled"))
        return 202, {"status": "OK"}

    def failed_init(self, body, error_type):
        """The runtime reported that its init failed: the environment is discarded."""
        self.init_error = Outcome(False, body, error_type or _error_type(body) or "Runtime.InitError")
        self.kill()

    # ---------------------------------------------------------- life
    def kill(self):
        """Stops the process (a timeout or shutdown); the environment is not reused."""
        with self.function.cond:
            self.alive = False
            self.function.cond.notify_all()
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def max_memory_mb(self):
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return math.ceil(int(line.split()[1]) / 1024)
        except (OSError, ValueError):
            pass
        return None

    def _watch(self):
        code = self.proc.wait()
        with self.function.cond:
            self.alive = False
            if self in self.function.envs:
                self.function.envs.remove(self)
            self.function.cond.notify_all()
        pending = [self.current] if self.current else []
        while not self.inbox.empty():
            pending.append(self.inbox.get_nowait())
        status = f"signal: {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
        for inv in pending:
            inv.finish(self.init_error or Outcome.error(
                "Runtime.ExitError",
                f"RequestId: {inv.request_id} Error: Runtime exited with error: {status}"))
        self.log.write(f"aws-local: the process ended ({status})\n".encode())
        self.log.close()
        threading.Thread(target=self._close_server, daemon=True).start()

    def _close_server(self):
        self.server.shutdown()
        self.server.server_close()


def _error_type(body):
    """The `errorType` of an error document, if it is one."""
    try:
        doc = json.loads(body or b"{}")
    except ValueError:
        return None
    return doc.get("errorType") if isinstance(doc, dict) else None


def _runtime_api(env):
    fn = env.function

    class RuntimeApi(httpio.Handler):
        def do_GET(self):
            if self.path != "/2018-06-01/runtime/invocation/next":
                return httpio.answer(self, 404, [], b"")
            inv = env.next_invocation()
            if inv is None:
                self.close_connection = True
                return None
            deadline = int(time.time() * 1000 + fn.spec.timeout * 1000)
            headers = [
                ("Content-Type", "application/json"),
                ("Lambda-Runtime-Aws-Request-Id", inv.request_id),
                ("Lambda-Runtime-Deadline-Ms", str(deadline)),
                ("Lambda-Runtime-Invoked-Function-Arn", fn.spec.arn),
                ("Lambda-Runtime-Trace-Id", trace_id()),
            ]
            return httpio.answer(self, 200, headers, inv.payload)

        def do_POST(self):
            body = httpio.read_body(self)
            error_type = self.headers.get("Lambda-Runtime-Function-Error-Type")
            if self.path == "/2018-06-01/runtime/init/error":
                env.failed_init(body, error_type)
                status, reply = 202, {"status": "OK"}
            else:
                m = _INVOCATION.fullmatch(self.path)
                if not m:
                    return httpio.answer(self, 404, [], b"")
                status, reply = env.complete(m.group(1), m.group(2), body, error_type)
            return httpio.answer(self, status, [("Content-Type", "application/json")],
                                 json.dumps(reply).encode())

    return RuntimeApi


class Function:
    """A function's environments and its invocations."""

    def __init__(self, spec, endpoint, log_dir, max_envs, extra_env, timings):
        self.spec = spec
        self.endpoint = endpoint
        self.log_dir = log_dir
        self.max_envs = max_envs
        self.extra_env = extra_env
        self.timings = timings
        self.envs = []
        self.cond = threading.Condition()
        self.started = 0
        self.stopped = False

    def record(self, entry):
        """Appends a timing record (JSON line) for this function."""
        self.timings.write({"function": self.spec.logical, "name": self.spec.name, **entry})

    def submit(self, payload):
        """Starts an invocation with `payload` (bytes); returns it at once."""
        inv = Invocation(payload)
        threading.Thread(target=self._run, args=(inv,), daemon=True).start()
        return inv

    def invoke(self, payload, wait=None):
        """Invokes and waits at most `wait` seconds: the outcome, or None (still running)."""
        return self.submit(payload).wait(wait)

    def stop(self):
        with self.cond:
            self.stopped = True
            envs = list(self.envs)
            self.cond.notify_all()
        for env in envs:
            env.kill()

    def retire(self, within=10.0):
        """Ends the idle environments (as Lambda reclaims idle ones), waiting at most
        `within` seconds for their processes: the next invocation starts cold. Busy ones are
        left alone. Answers whether every idle one ended."""
        with self.cond:
            idle = [env for env in self.envs if not env.busy]
        for env in idle:
            env.kill()
        deadline = time.monotonic() + within
        with self.cond:
            while any(env in self.envs for env in idle):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(left)
        return True

    def _acquire(self):
        with self.cond:
            while not self.stopped:
                for env in self.envs:
                    if env.alive and not env.busy:
                        env.busy = True
                        return env, False
                if len(self.envs) < self.max_envs:
                    self.started += 1
                    env = Environment(self, self.started)
                    self.envs.append(env)
                    return env, True
                self.cond.wait()
        return None, False

    def _release(self, env):
        with self.cond:
            env.busy = False
            self.cond.notify_all()

    def _run(self, inv):
        env, cold = self._acquire()
        if env is None:
            inv.finish(Outcome.error("ServiceException", "the local stack is stopping"))
            return
        inv.env, inv.cold = env, cold
        if cold:
            try:
                env.start()
            except OSError as e:
                with self.cond:
                    self.envs.remove(env)
                    self.cond.notify_all()
                inv.finish(Outcome.error("Runtime.InvalidEntrypoint", str(e)))
                return
        env.inbox.put(inv)
        timeout = self.spec.timeout
        # An init over Lambda's limit counts against the function's timeout.
        inv._wait_for(lambda: inv.started_at is not None or inv.outcome is not None,
                      INIT_LIMIT + timeout if cold else None)
        if inv.outcome is None and inv.started_at is None:
            env.kill()
            inv.finish(Outcome.error("Sandbox.Timedout", "the init phase did not finish in time"))
        elif inv.outcome is None:
            left = timeout - (time.monotonic() - inv.started_at)
            if inv.wait(max(left, 0)) is None:
                env.kill()
                inv.finish(Outcome.error("Sandbox.Timedout", f"Task timed out after {timeout:.2f} seconds"))
        self._report(env, inv)

    def _report(self, env, inv):
        duration = ((inv.finished_at - inv.started_at) * 1000) if inv.started_at else 0.0
        init_ms = round((env.init_done - env.spawned) * 1000, 2) if inv.cold and env.init_done else None
        peak = env.max_memory_mb()
        entry = {"event": "invoke", "env": env.index, "request_id": inv.request_id,
                 "cold": inv.cold, "duration_ms": round(duration, 2),
                 "billed_ms": math.ceil(duration), "memory_mb": self.spec.memory,
                 "max_memory_mb": peak, "error": inv.outcome.error_type}
        if inv.cold:
            entry["init_ms"] = init_ms
            entry["first_answer_ms"] = round((inv.finished_at - env.spawned) * 1000, 2)
        self.record(entry)
        try:
            env.log.write((report_line(inv.request_id, duration, self.spec.memory, peak, init_ms) + "\n").encode())
        except (OSError, ValueError):
            # The process ended and its log is closed.
            pass
