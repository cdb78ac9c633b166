"""Fills the event outbox of a stopped server with N events spread over D devices of one App,
numbered per device, so the webhook benchmark measures the dispatcher alone."""
import json
import sqlite3
import sys
import time
import uuid

db_path, app_id, total, devices = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
db = sqlite3.connect(db_path)
device_ids = [str(uuid.uuid4()) for _ in range(devices)]
now = int(time.time() * 1000)
rows = []
for i in range(total):
    device = device_ids[i % devices]
    request_id = str(uuid.uuid4())
    body = {
        "request_id": request_id,
        "event": "presence",
        "app_id": app_id,
        "device_id": device,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "payload": {"jid": "15550001111@s.whatsapp.net", "presence": "available", "n": i // devices},
    }
    rows.append((request_id, app_id, device, json.dumps(body), now))
db.executemany(
    "INSERT INTO deliveries (request_id, app_id, device_id, body, status, next_attempt_ms, updated_ms) "
    "VALUES (?, ?, ?, ?, 'pending', ?, ?)",
    [(r[0], r[1], r[2], r[3], r[4], r[4]) for r in rows],
)
db.commit()
print(total)
