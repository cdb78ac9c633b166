"""The template's ECS service, locally: each container of the service's task definition
runs as processes of the binary its image starts (the `ENTRYPOINT` of
`infra/<container name>.Dockerfile`), with the image's `ENV`, then the container's
`Environment` and `Secrets` (read from Secrets Manager) resolved from the template, and
the stack's AWS endpoint and credentials. The task's volumes are directories of the
stack's state directory, shared by every process as an EFS volume is shared by tasks;
values naming a path under a mount point are mapped onto them. As ECS replaces a stopped
task, a process that exits is started again; SIGTERM stops one, then SIGKILL after the
container's `StopTimeout`.
"""

import json
import os
import shlex
import signal
import subprocess
import threading
import time
from dataclasses import dataclass

from .template import TemplateError

# ECS's default StopTimeout.
DEFAULT_STOP_TIMEOUT = 30


def dockerfile_image(path):
    """(the binary's name, the image's ENV) of the final stage of a Dockerfile."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().replace("\\\n", " ").splitlines()
    entrypoint, env = None, {}
    for line in lines:
        words = line.strip().split(None, 1)
        if not words or words[0].startswith("#"):
            continue
        instruction, rest = words[0].upper(), (words[1] if len(words) > 1 else "")
        if instruction == "FROM":
            entrypoint, env = None, {}
        elif instruction == "ENTRYPOINT":
            rest = rest.strip()
            entrypoint = json.loads(rest) if rest.startswith("[") else shlex.split(rest)
        elif instruction == "ENV":
            parts = shlex.split(rest)
            if len(parts) == 2 and "=" not in parts[0]:
                env[parts[0]] = parts[1]
            else:
                env.update(p.split("=", 1) for p in parts if "=" in p)
    if not entrypoint:
        raise TemplateError(f"{path}: no ENTRYPOINT in its final stage")
    return os.path.basename(entrypoint[0]), env


def map_paths(env, mounts):
    """`env` with values under a container path of `mounts` (container path -> local
    directory) moved onto the local directory."""
    out = {}
    for key, value in env.items():
        for container_path, local in sorted(mounts.items(), key=lambda m: -len(m[0])):
            if value == container_path or value.startswith(container_path.rstrip("/") + "/"):
                value = local + value[len(container_path.rstrip("/")):]
                break
        out[key] = value
    return out


def container_environment(base, image_env, container, secret, extra, mounts):
    """A container process's environment: `base` (PATH, AWS endpoint, credentials, region),
    the image's ENV, the container's `Environment`, its `Secrets` (`secret(arn)` reads
    one), then `extra`, with paths mapped onto the local volumes."""
    env = dict(base)
    env.update(image_env)
    for item in container.get("Environment") or []:
        env[str(item["Name"])] = str(item["Value"])
    for item in container.get("Secrets") or []:
        env[str(item["Name"])] = secret(str(item["ValueFrom"]))
    env.update(extra)
    return map_paths(env, mounts)


def refuse_real_provider(name, env):
    """The local stack never connects beyond this machine: the worker must run the sandbox."""
    provider = env.get("WA_PROVIDER", "whatsapp")
    if provider != "sandbox":
        raise TemplateError(
            f"{name}: WA_PROVIDER is {provider}; the local stack runs only the sandbox "
            "(it never connects to WhatsApp): pass Provider=sandbox")


@dataclass
class ContainerSpec:
    """One container of the service, resolved."""

    service: str
    name: str
    binary: str
    env: dict
    stop_timeout: int


class Process:
    """One running container process, restarted when it exits on its own."""

    def __init__(self, spec, index, log_dir, events):
        self.spec = spec
        self.index = index
        self.log_path = os.path.join(log_dir, f"{spec.service}-{spec.name}-{index}.log")
        self.events = events
        self.proc = None
        self.stopping = threading.Event()
        self.restarts = 0

    def start(self):
        log = open(self.log_path, "ab", buffering=0)
        self.proc = subprocess.Popen([self.spec.binary], env=self.spec.env, stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.events.write({"event": "started", "service": self.spec.service,
                           "container": self.spec.name, "index": self.index,
                           "pid": self.proc.pid, "restarts": self.restarts})
        threading.Thread(target=self._watch, args=(self.proc,), daemon=True).start()

    def _watch(self, proc):
        code = proc.wait()
        self.events.write({"event": "exited", "service": self.spec.service,
                           "container": self.spec.name, "index": self.index, "pid": proc.pid,
                           "code": code})
        if not self.stopping.wait(1):
            self.restarts += 1
            self.start()

    def stop(self):
        """SIGTERM, then SIGKILL after the container's StopTimeout."""
        self.stopping.set()
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.spec.stop_timeout
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
