"""The stack's machine-readable logs: one JSON object per line, with the time it was written."""

import json
import threading
import time


class JsonLines:
    """An append-only JSON-lines file, shared by threads."""

    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.file = open(path, "a", encoding="utf-8")

    def write(self, entry):
        line = json.dumps({"time": round(time.time(), 3), **entry})
        with self.lock:
            # What ends after the log was closed (the stack is stopping) is not written.
            if self.file.closed:
                return
            self.file.write(line + "\n")
            self.file.flush()

    def close(self):
        with self.lock:
            self.file.close()
