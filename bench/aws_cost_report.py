"""The report of bench/aws-cost: per-send requests, capacity units, Lambda GB-seconds and log
bytes out of what the run recorded, and the cost per million sends with the stack's fixed
monthly costs. Prices are on-demand, us-east-1, without free tiers.

Usage: aws_cost_report.py OUT N IDLE_START IDLE_END POLL_START POLL_END POLLS START END WAITS LAMBDA_LOG
"""
import json
import os
import sys
from collections import Counter, defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
sys.dont_write_bytecode = True
from aws_local import template  # noqa: E402

OUT, N = sys.argv[1], int(sys.argv[2])
IDLE_S = float(sys.argv[4]) - float(sys.argv[3])
POLL_S, POLLS = float(sys.argv[6]) - float(sys.argv[5]), int(sys.argv[7])
BUSY_S, WAITS = float(sys.argv[9]) - float(sys.argv[8]), int(sys.argv[10])
LAMBDA_LOG = sys.argv[11]
MONTH_S = 730 * 3600

# On-demand prices, us-east-1.
WRU, RRU = 0.625e-6, 0.125e-6                 # DynamoDB per write / read request unit
SQS_FIFO, SQS_STANDARD = 0.50e-6, 0.40e-6     # per request (64 KB)
LAMBDA_REQUEST, LAMBDA_GBS = 0.20e-6, 0.0000133334   # arm64, what the template declares
HTTP_API = 1.00e-6                            # per request, the first 300 million a month
LOG_INGEST, LOG_STORE = 0.50, 0.03            # per GB ingested; per GB-month stored
FARGATE_VCPU_H, FARGATE_GB_H = 0.03238, 0.00356   # Linux/ARM64
ALARM_METRIC = 0.10                           # per standard-resolution alarm metric, a month
SECRET = 0.40                                 # per secret, a month


def load(name):
    with open(os.path.join(OUT, name)) as f:
        return json.load(f)


idle, polls, busy = load("idle.json"), load("polls.json"), load("busy.json")
marks = {k: load(k) for k in ("idle.start", "idle.end", "polls.start", "polls.end", "busy.start", "busy.end")}


def per_send(op):
    """`op`'s count per send: the busy count less the idle rate over the busy time and the
    waiting reads (each costs what one calibration read cost, its idle share taken out)."""
    per_poll = (polls.get(op, 0) - idle.get(op, 0) / IDLE_S * POLL_S) / POLLS
    return (busy.get(op, 0) - idle.get(op, 0) / IDLE_S * BUSY_S - per_poll * WAITS) / N


keys = sorted(set(busy) | set(idle) | set(polls))
requests = {k: per_send(k) for k in keys if k.split()[0] in ("dynamodb", "sqs", "other")}
requests = {k: v for k, v in requests.items() if abs(v) >= 0.005}
units = {k: per_send(k) for k in keys if k.split()[0] in ("rru", "wru", "wru-gsi")}

print(f"{N} waited sends in {BUSY_S:.1f} s through the local Lambda stack; idle polling subtracted "
      f"({IDLE_S:.1f} s measured), and the {WAITS} reads waiting for the deliveries")
print("requests per send:")
total = Counter()
for k, v in requests.items():
    print(f"  {k:60s} {v:6.2f}")
    total[k.split()[0]] += v
items = per_send("items TransactWriteItems")
print(f"  (TransactWriteItems: {items:.2f} items per send)")
print(f"  DynamoDB {total['dynamodb']:.2f} + SQS {total['sqs']:.2f} = {total['dynamodb'] + total['sqs']:.2f} requests "
      f"(other services: {total['other']:.2f})")


def unit_sum(prefix):
    return sum(v for k, v in units.items() if k.split()[0] == prefix)


print("DynamoDB capacity units per send:")
for k, v in sorted(units.items()):
    if abs(v) >= 0.005:
        print(f"  {k:60s} {v:6.2f}")
reads, writes, gsi = unit_sum("rru"), unit_sum("wru"), unit_sum("wru-gsi")
print(f"  read {reads:.2f}, write {writes:.2f} (table) + {gsi:.2f} (indexes) = {writes + gsi:.2f}")


def lambda_records(start, end):
    with open(LAMBDA_LOG) as f:
        lines = f.readlines()[marks[start]["lambda_lines"]:marks[end]["lambda_lines"]]
    out = defaultdict(list)
    for line in lines:
        r = json.loads(line)
        if r.get("event") == "invoke":
            out[r["function"]].append(r)
    return out


busy_inv, idle_inv = lambda_records("busy.start", "busy.end"), lambda_records("idle.start", "idle.end")
print("Lambda per send (the devices function only answers this script's waiting reads):")
gbs_total = invocations = 0.0
for fn in sorted(busy_inv):
    if fn == "DevicesFunction":
        continue
    recs = busy_inv[fn]
    idle_count = len(idle_inv.get(fn, [])) / IDLE_S * BUSY_S
    gbs = sum(r["billed_ms"] / 1000 * r["memory_mb"] / 1024 for r in recs)
    idle_gbs = sum(r["billed_ms"] / 1000 * r["memory_mb"] / 1024 for r in idle_inv.get(fn, [])) / IDLE_S * BUSY_S
    count = (len(recs) - idle_count) / N
    per = (gbs - idle_gbs) / N
    durations = sorted(r["duration_ms"] for r in recs)
    median = durations[len(durations) // 2] if durations else 0
    print(f"  {fn:20s} {count:5.2f} invocations, {per:.4f} GB-s ({recs[0]['memory_mb']} MB, "
          f"median {median:.0f} ms, {sum(r['cold'] for r in recs)} cold)")
    gbs_total += per
    invocations += count


def log_bytes(start, end, skip="DevicesFunction-"):
    a, b = marks[start]["log_bytes"], marks[end]["log_bytes"]
    return sum(v - a.get(k, 0) for k, v in b.items() if not k.startswith(skip))


logs = (log_bytes("busy.start", "busy.end") - log_bytes("idle.start", "idle.end") / IDLE_S * BUSY_S) / N
idle_logs_per_s = log_bytes("idle.start", "idle.end", skip="\0") / IDLE_S
print(f"  log bytes written per send (functions but the devices one, and the worker): {logs:.0f}")

received = []
path = os.path.join(OUT, "receiver", "received.jsonl")
with open(path) as f:
    lines = f.readlines()[marks["busy.start"]["received"]:marks["busy.end"]["received"]]
received = [json.loads(line) for line in lines]
events = Counter(r["body"]["event"] for r in received if r.get("body"))
verified = sum(1 for r in received if r.get("verified"))
print(f"webhooks received during the sends: {len(received)} ({verified} verified): {dict(events)}")

# ---------------------------------------------------------------- cost per million sends
sqs_cost = sum(v * (SQS_FIFO if k.split()[-1].endswith(".fifo") else SQS_STANDARD)
               for k, v in requests.items() if k.startswith("sqs "))
dynamo_cost = reads * RRU + (writes + gsi) * WRU
lambda_cost = invocations * LAMBDA_REQUEST + gbs_total * LAMBDA_GBS
api_cost = HTTP_API
log_cost = logs / 1e9 * (LOG_INGEST + LOG_STORE)
per_million = 1e6 * (sqs_cost + dynamo_cost + lambda_cost + api_cost + log_cost)
print("cost per million sends (on-demand, us-east-1, no free tier):")
for name, c in (("DynamoDB", dynamo_cost), ("SQS", sqs_cost), ("Lambda (arm64)", lambda_cost),
                ("HTTP API", api_cost), ("CloudWatch Logs", log_cost)):
    print(f"  {name:18s} ${c * 1e6:7.2f}")
print(f"  {'total':18s} ${per_million:7.2f}")

# ---------------------------------------------------------------- fixed monthly costs
tpl = template.load(os.path.join(ROOT, "template.yaml"))
params = template.parameter_values(tpl, {"Provider": "whatsapp"})
params["JwtSecretArn"] = "arn:aws:secretsmanager:us-east-1:123456789012:secret:jwt"
r = template.Resolver(tpl, params, template.pseudo_parameters("wa", "us-east-1"), lambda *ref: "key")
body = tpl["Resources"]
alarm_metrics = 0
for logical, res in body.items():
    if res.get("Type") == "AWS::CloudWatch::Alarm" and r.exists(logical):
        p = res["Properties"]
        alarm_metrics += 1 if "MetricName" in p else sum(1 for m in p["Metrics"] if "MetricStat" in m)
task = body["WorkerTask"]["Properties"]
vcpu, gb = int(task["Cpu"]) / 1024, int(task["Memory"]) / 1024
tasks = int(params["WorkerDesiredCount"])
fargate = tasks * 730 * (vcpu * FARGATE_VCPU_H + gb * FARGATE_GB_H)
# Idle polling: every receive long-polls 20 s, 3 a minute per poller. Lambda polls each SQS
# event source mapping with at least 5 pollers; each worker task long-polls the commands
# queue with one. (The 10 s idle measurement above sees few or none of these.)
ready = load("ready.json")
LAMBDA_POLLERS = 5
month_minutes = MONTH_S / 60
idle_sqs = 0.0
pollers = []
for fn in ready["functions"].values():
    for m in fn["mappings"]:
        name = ready["resources"][m["queue"]]["name"]
        idle_sqs += LAMBDA_POLLERS * 3 * month_minutes * (SQS_FIFO if name.endswith(".fifo") else SQS_STANDARD)
        pollers.append(m["queue"])
idle_sqs += tasks * 3 * month_minutes * SQS_FIFO
idle_log_gb = idle_logs_per_s * MONTH_S / 1e9
fixed = {
    f"Fargate worker ({tasks} task, {vcpu:g} vCPU, {gb:g} GB, ARM64, 730 h)": fargate,
    f"CloudWatch alarms ({alarm_metrics} alarm metrics, Provider=whatsapp)": alarm_metrics * ALARM_METRIC,
    "Secrets Manager (the JWT key)": SECRET,
    f"SQS long polls at idle ({LAMBDA_POLLERS} Lambda pollers on each of {', '.join(pollers)}; "
    f"the worker on the commands queue)": idle_sqs,
    f"CloudWatch Logs at idle ({idle_log_gb:.3f} GB a month, kept 30 days)": idle_log_gb * (LOG_INGEST + LOG_STORE),
}
print("fixed monthly costs:")
for name, c in fixed.items():
    print(f"  {name:90s} ${c:6.2f}")
print(f"  {'total':90s} ${sum(fixed.values()):6.2f}")
print(f"  (idle here: {sum(v for k, v in idle.items() if k.startswith('sqs ')):.0f} SQS and "
      f"{sum(v for k, v in idle.items() if k.startswith('dynamodb ')):.0f} DynamoDB requests in {IDLE_S:.1f} s)")
print("not included: DynamoDB storage and point-in-time recovery (per GB), EFS and ECR storage (cents for "
      "session keys and one image), Container Insights' metrics, data transfer, a NAT gateway if the "
      "worker's subnets need one")
print(f"a million sends a month: ${per_million + sum(fixed.values()):.2f}")
