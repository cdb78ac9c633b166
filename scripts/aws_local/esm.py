"""The SQS event source mappings of the local stack, as Lambda runs them: pollers
long-poll the queue, gather a batch (`BatchSize`, `MaximumBatchingWindowInSeconds`, at
most 6 MB), invoke the function with the SQS event Lambda builds, then delete what
succeeded. With `ReportBatchItemFailures` the function's `batchItemFailures` stay in the
queue; a function error (or timeout) leaves the whole batch; either comes back after the
queue's visibility timeout, and SQS's redrive policy counts the receives. FIFO order holds
because SQS hands out a message group only while none of its messages is in flight.

The checks Lambda makes when a mapping is created are made here too (the queue's
visibility timeout at least the function's timeout, batch sizes and windows).
"""

import base64
import json
import math
import threading
import time
from dataclasses import dataclass

from .resources import client
from .template import TemplateError

# Lambda's limit on one batch's payload.
BATCH_PAYLOAD_LIMIT = 6 * 1024 * 1024
# How long a poller's receive waits (SQS long polling, its maximum; what Lambda uses).
LONG_POLL_SECS = 20

_RECORD_ATTRIBUTES = ("ApproximateReceiveCount", "SentTimestamp", "SenderId",
                      "ApproximateFirstReceiveTimestamp", "SequenceNumber", "MessageGroupId",
                      "MessageDeduplicationId", "AWSTraceHeader")


@dataclass
class Mapping:
    """One `SQS` event of a function, resolved."""

    function: str
    event: str
    queue_url: str
    queue_arn: str
    fifo: bool
    batch_size: int = 10
    window_secs: int = 0
    report_failures: bool = False
    concurrency: int = 2


def check_mapping(name, fifo, visibility_timeout, function_timeout, batch_size, window_secs,
                  max_concurrency):
    """The checks of CreateEventSourceMapping; raises TemplateError as a deployment fails."""
    if visibility_timeout < function_timeout:
        raise TemplateError(
            f"{name}: queue visibility timeout {visibility_timeout} s is less than the function "
            f"timeout {function_timeout:g} s")
    limit = 10 if fifo else 10000
    if not 1 <= batch_size <= limit:
        raise TemplateError(f"{name}: BatchSize {batch_size} must be 1 to {limit}")
    if fifo and window_secs:
        raise TemplateError(f"{name}: FIFO queues take no MaximumBatchingWindowInSeconds")
    if not 0 <= window_secs <= 300:
        raise TemplateError(f"{name}: MaximumBatchingWindowInSeconds must be 0 to 300")
    if batch_size > 10 and window_secs < 1:
        raise TemplateError(f"{name}: a BatchSize over 10 needs MaximumBatchingWindowInSeconds of at least 1")
    if max_concurrency is not None and not 2 <= max_concurrency <= 1000:
        raise TemplateError(f"{name}: ScalingConfig.MaximumConcurrency must be 2 to 1000")


def record(message, queue_arn, region):
    """The SQS event record Lambda builds from a received message (boto3's shape)."""
    received = message.get("Attributes") or {}
    attributes = {k: received[k] for k in _RECORD_ATTRIBUTES if k in received}
    message_attributes = {}
    for name, a in (message.get("MessageAttributes") or {}).items():
        value = {
            "stringListValues": list(a.get("StringListValues") or []),
            "binaryListValues": [base64.b64encode(b).decode() for b in a.get("BinaryListValues") or []],
            "dataType": a.get("DataType"),
        }
        if "StringValue" in a:
            value["stringValue"] = a["StringValue"]
        if "BinaryValue" in a:
            value["binaryValue"] = base64.b64encode(a["BinaryValue"]).decode()
        message_attributes[name] = value
    out = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message.get("Body", ""),
        "attributes": attributes,
        "messageAttributes": message_attributes,
        "md5OfBody": message.get("MD5OfBody"),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
    if message.get("MD5OfMessageAttributes"):
        out["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return out


def deletions(ids, ok, payload, report_failures):
    """The message ids of a batch to delete after the invocation. A function error deletes
    none; without `ReportBatchItemFailures` success deletes all. With it, an empty or null
    response or `batchItemFailures` deletes all, listed ids stay, and an invalid answer (not
    JSON, not an object, an item without a known `itemIdentifier`) deletes none."""
    if not ok:
        return []
    if not report_failures:
        return list(ids)
    try:
        doc = json.loads(payload or b"null")
    except ValueError:
        return []
    if doc is None:
        return list(ids)
    if not isinstance(doc, dict):
        return []
    failures = doc.get("batchItemFailures")
    if not failures:
        return list(ids) if failures in (None, []) else []
    if not isinstance(failures, list):
        return []
    failed = set()
    for item in failures:
        ident = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not isinstance(ident, str) or ident not in ids:
            return []
        failed.add(ident)
    return [i for i in ids if i not in failed]


class Poller:
    """One poller of a mapping (Lambda runs several per mapping)."""

    def __init__(self, mapping, function, endpoint, region, log):
        self.mapping = mapping
        self.function = function
        self.endpoint = endpoint
        self.region = region
        self.log = log
        self.stopped = threading.Event()

    def start(self):
        threading.Thread(target=self._run, daemon=True).start()

    def stop(self):
        self.stopped.set()

    def _receive(self, sqs, count, wait):
        return sqs.receive_message(
            QueueUrl=self.mapping.queue_url, MaxNumberOfMessages=count, WaitTimeSeconds=wait,
            AttributeNames=["All"], MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"]).get("Messages", [])

    def _batch(self, sqs):
        """The next batch: after a first long poll returns messages, more are gathered for
        up to the batching window (none: that first receive is the batch)."""
        m = self.mapping
        batch, size, deadline = [], 0, None
        while len(batch) < m.batch_size and not self.stopped.is_set():
            if deadline is None:
                wait = LONG_POLL_SECS
            else:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                wait = min(LONG_POLL_SECS, math.ceil(left))
            for message in self._receive(sqs, min(10, m.batch_size - len(batch)), wait):
                grown = size + len(json.dumps(record(message, m.queue_arn, self.region)))
                if grown > BATCH_PAYLOAD_LIMIT and batch:
                    self._release(sqs, [message])
                    continue
                batch.append(message)
                size = grown
            if not batch or not m.window_secs:
                break
            if deadline is None:
                deadline = time.monotonic() + m.window_secs
        return batch

    def _release(self, sqs, messages):
        for message in messages:
            try:
                sqs.change_message_visibility(QueueUrl=self.mapping.queue_url,
                                              ReceiptHandle=message["ReceiptHandle"],
                                              VisibilityTimeout=0)
            except Exception:  # noqa: BLE001 - it comes back after its visibility timeout
                pass

    def _run(self):
        sqs = client("sqs", self.endpoint, self.region, read_timeout=LONG_POLL_SECS + 40)
        m = self.mapping
        while not self.stopped.is_set():
            try:
                batch = self._batch(sqs)
            except Exception as e:  # noqa: BLE001 - a poller keeps polling, as Lambda's does
                self.log.write({"mapping": f"{m.function}.{m.event}", "error": f"receive: {e}"})
                self.stopped.wait(1)
                continue
            if not batch:
                continue
            if self.stopped.is_set():
                self._release(sqs, batch)
                break
            started = time.monotonic()
            event = {"Records": [record(msg, m.queue_arn, self.region) for msg in batch]}
            outcome = self.function.invoke(json.dumps(event, separators=(",", ":")).encode())
            ids = [msg["MessageId"] for msg in batch]
            delete = set(deletions(ids, outcome.ok, outcome.payload, m.report_failures))
            handles = [msg["ReceiptHandle"] for msg in batch if msg["MessageId"] in delete]
            failed_deletes = self._delete(sqs, handles)
            self.log.write({
                "mapping": f"{m.function}.{m.event}", "received": len(batch),
                "deleted": len(handles) - failed_deletes, "kept": len(batch) - len(handles),
                "error": outcome.error_type, "ms": round((time.monotonic() - started) * 1000, 2),
            })

    def _delete(self, sqs, handles):
        failed = 0
        for i in range(0, len(handles), 10):
            entries = [{"Id": str(n), "ReceiptHandle": h} for n, h in enumerate(handles[i:i + 10])]
            try:
                answer = sqs.delete_message_batch(QueueUrl=self.mapping.queue_url, Entries=entries)
                failed += len(answer.get("Failed") or [])
            except Exception:  # noqa: BLE001 - undeleted messages come back, as on AWS
                failed += len(entries)
        return failed
