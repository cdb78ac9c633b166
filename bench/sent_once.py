"""Checks that the sandbox's sent logs under a data directory hold every message id of
IDS_FILE exactly once, and that the database has no pending send left. Prints
"<ids> <sent records> <missing> <sent twice or more> <still pending>" and exits non-zero
unless the last three are 0.
Usage: python3 bench/sent_once.py DATA_DIR IDS_FILE"""
import collections
import glob
import json
import os
import sqlite3
import sys

data_dir, ids_path = sys.argv[1], sys.argv[2]
with open(ids_path) as f:
    ids = {line.strip() for line in f if line.strip()}
counts = collections.Counter()
for path in glob.glob(os.path.join(data_dir, "sandbox", "sent", "*.jsonl")):
    with open(path) as f:
        for line in f:
            counts[json.loads(line)["message_id"]] += 1
missing = len(ids - counts.keys())
twice = sum(1 for i in ids if counts[i] > 1)
db = sqlite3.connect(os.path.join(data_dir, "wa.db"))
pending = db.execute("SELECT count(*) FROM messages WHERE status IN ('queued', 'sending')").fetchone()[0]
print(len(ids), sum(counts.values()), missing, twice, pending)
sys.exit(1 if missing or twice or pending else 0)
