"""Waits until the sandbox's sent logs of the given devices hold `expected` records in all,
then prints the seconds since `start` (a Unix time) it took and the records counted. The
logs are the sandbox's own files (`<data dir>/sandbox/sent/<device>.jsonl`): what the
simulated WhatsApp received."""
import os
import sys
import time

data_dir, start, expected = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
devices = sys.argv[4].split(",")
paths = [os.path.join(data_dir, "sandbox", "sent", d + ".jsonl") for d in devices]
offsets = [0] * len(paths)
counts = [0] * len(paths)
deadline = time.time() + 600
while True:
    for i, p in enumerate(paths):
        try:
            with open(p, "rb") as f:
                f.seek(offsets[i])
                chunk = f.read()
        except FileNotFoundError:
            continue
        # Count whole lines only; a partly written one is read again next time.
        end = chunk.rfind(b"\n") + 1
        counts[i] += chunk[:end].count(b"\n")
        offsets[i] += end
    total = sum(counts)
    now = time.time()
    if total >= expected or now > deadline:
        break
    time.sleep(0.005)
print(f"{now - start:.3f} {total}")
