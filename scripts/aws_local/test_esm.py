"""The SQS event source mapping rules `esm` emulates: one test per row."""

import base64
import unittest

from aws_local import esm
from aws_local.template import TemplateError

IDS = ["m1", "m2", "m3"]


class Deletions(unittest.TestCase):
    def test_a_function_error_keeps_the_whole_batch(self):
        self.assertEqual(esm.deletions(IDS, False, b"{}", True), [])
        self.assertEqual(esm.deletions(IDS, False, b"{}", False), [])

    def test_without_partial_responses_success_deletes_all(self):
        self.assertEqual(esm.deletions(IDS, True, b'{"batchItemFailures": [{"itemIdentifier": "m1"}]}', False), IDS)

    def test_listed_failures_stay(self):
        payload = b'{"batchItemFailures": [{"itemIdentifier": "m2"}]}'
        self.assertEqual(esm.deletions(IDS, True, payload, True), ["m1", "m3"])

    def test_empty_or_null_answers_are_complete_successes(self):
        for payload in [b"", b"null", b"{}", b'{"batchItemFailures": []}', b'{"batchItemFailures": null}']:
            self.assertEqual(esm.deletions(IDS, True, payload, True), IDS, payload)

    def test_invalid_answers_are_complete_failures(self):
        for payload in [b"not json", b'"ok"', b'{"batchItemFailures": [{"itemIdentifier": ""}]}',
                        b'{"batchItemFailures": [{"itemIdentifier": null}]}',
                        b'{"batchItemFailures": [{"id": "m1"}]}',
                        b'{"batchItemFailures": [{"itemIdentifier": "m9"}]}',
                        b'{"batchItemFailures": "m1"}']:
            self.assertEqual(esm.deletions(IDS, True, payload, True), [], payload)


class Records(unittest.TestCase):
    MESSAGE = {
        "MessageId": "id-1", "ReceiptHandle": "rh", "MD5OfBody": "md5", "Body": "hello",
        "Attributes": {"ApproximateReceiveCount": "2", "SentTimestamp": "1", "SenderId": "s",
                       "ApproximateFirstReceiveTimestamp": "2", "MessageGroupId": "g",
                       "MessageDeduplicationId": "d", "SequenceNumber": "7", "Other": "x"},
        "MD5OfMessageAttributes": "md5a",
        "MessageAttributes": {
            "wa-reason": {"StringValue": "why", "DataType": "String"},
            "bin": {"BinaryValue": b"\x01", "DataType": "Binary"},
        },
    }

    def test_a_record_as_lambda_builds_it(self):
        r = esm.record(self.MESSAGE, "arn:aws:sqs:us-east-1:1:q.fifo", "us-east-1")
        self.assertEqual(r["messageId"], "id-1")
        self.assertEqual(r["receiptHandle"], "rh")
        self.assertEqual(r["body"], "hello")
        self.assertEqual(r["md5OfBody"], "md5")
        self.assertEqual(r["md5OfMessageAttributes"], "md5a")
        self.assertEqual(r["eventSource"], "aws:sqs")
        self.assertEqual(r["eventSourceARN"], "arn:aws:sqs:us-east-1:1:q.fifo")
        self.assertEqual(r["awsRegion"], "us-east-1")
        self.assertEqual(r["attributes"]["ApproximateReceiveCount"], "2")
        self.assertEqual(r["attributes"]["MessageGroupId"], "g")
        self.assertEqual(r["attributes"]["SequenceNumber"], "7")
        self.assertNotIn("Other", r["attributes"])
        self.assertEqual(r["messageAttributes"]["wa-reason"],
                         {"stringValue": "why", "stringListValues": [], "binaryListValues": [],
                          "dataType": "String"})
        self.assertEqual(base64.b64decode(r["messageAttributes"]["bin"]["binaryValue"]), b"\x01")


class Checks(unittest.TestCase):
    def check(self, **kw):
        args = dict(name="f.e", fifo=False, visibility_timeout=180, function_timeout=30,
                    batch_size=10, window_secs=0, max_concurrency=None)
        args.update(kw)
        esm.check_mapping(**args)

    def test_a_valid_mapping_passes(self):
        self.check()
        self.check(batch_size=100, window_secs=1)

    def test_what_lambda_refuses(self):
        for kw in [dict(visibility_timeout=20), dict(batch_size=0), dict(batch_size=11),
                   dict(fifo=True, batch_size=11, window_secs=1), dict(fifo=True, window_secs=1),
                   dict(window_secs=301), dict(max_concurrency=1)]:
            with self.assertRaises(TemplateError, msg=kw):
                self.check(**kw)


if __name__ == "__main__":
    unittest.main()
