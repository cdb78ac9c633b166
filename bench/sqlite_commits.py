"""Reference figure: single-row SQLite commits per second with journal_mode=WAL and
synchronous=FULL, in the given directory (the disk the server's data directory is on).
Prints the rate and the p99 latency of one commit in milliseconds."""
import os
import sqlite3
import sys
import time

directory = sys.argv[1]
seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 5.0
path = os.path.join(directory, "reference.db")
for suffix in ("", "-wal", "-shm"):
    try:
        os.remove(path + suffix)
    except FileNotFoundError:
        pass
db = sqlite3.connect(path, isolation_level=None)
db.execute("PRAGMA journal_mode=WAL")
db.execute("PRAGMA synchronous=FULL")
db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
body = "x" * 400
latencies = []
start = time.monotonic()
while time.monotonic() - start < seconds:
    t = time.monotonic()
    db.execute("BEGIN")
    db.execute("INSERT INTO t (body) VALUES (?)", (body,))
    db.execute("COMMIT")
    latencies.append(time.monotonic() - t)
elapsed = time.monotonic() - start
latencies.sort()
p99 = latencies[int(len(latencies) * 0.99)] * 1000
print(f"{len(latencies) / elapsed:.0f} {p99:.2f}")
