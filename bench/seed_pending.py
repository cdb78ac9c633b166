"""Seeds N pending (`queued`) sends in the database of a stopped server, spread round-robin
over the devices whose one queued send it finds (each is the template of its device's
copies, then replaced by them), and removes every command from the commands queue: as
after an outage that lost the commands of N accepted sends. Prints the seeded message ids,
one a line, to the file given.
Usage: python3 bench/seed_pending.py DB N IDS_FILE"""
import json
import secrets
import sqlite3
import sys

db_path, total, ids_path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
db = sqlite3.connect(db_path)
templates = db.execute(
    "SELECT device_id, message_id, created_ms, body FROM messages WHERE status = 'queued' "
    "ORDER BY device_id"
).fetchall()
assert templates, "no queued send to copy"
rows = []
ids = []
for i in range(total):
    device_id, _, created_ms, body = templates[i % len(templates)]
    m = json.loads(body)
    m["message_id"] = "3EB0" + secrets.token_hex(9).upper()
    ids.append(m["message_id"])
    rows.append((device_id, m["message_id"], "queued", created_ms, json.dumps(m)))
db.execute("BEGIN")
db.executemany("DELETE FROM messages WHERE device_id = ? AND message_id = ?",
               [(t[0], t[1]) for t in templates])
db.executemany(
    "INSERT INTO messages (device_id, message_id, status, created_ms, body) VALUES (?, ?, ?, ?, ?)",
    rows,
)
db.execute("DELETE FROM queue_messages WHERE queue = 'commands'")
db.execute("COMMIT")
with open(ids_path, "w") as f:
    f.write("\n".join(ids) + "\n")
print(len(ids))
