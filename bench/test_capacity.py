"""The capacity rules of bench/capacity.py, one case per rule.
Run: python3 -m unittest discover -s bench -p 'test_capacity.py'"""
import unittest

import capacity as c

GSI = [("gsi1pk", "gsi1sk")]


def item(size_of_text, **extra):
    # "pk" (2) + "x" (1) + the text.
    out = {"pk": {"S": ""}, "x": {"S": "a" * (size_of_text - 3)}}
    out.update(extra)
    return out


class Capacity(unittest.TestCase):
    def test_sizes(self):
        self.assertEqual(c.item_size(None), 0)
        self.assertEqual(c.item_size({"ab": {"S": "héllo"}}), 2 + 6)
        self.assertEqual(c.item_size({"n": {"N": "12345"}}), 1 + 4)
        self.assertEqual(c.item_size({"b": {"BOOL": True}}), 2)
        self.assertEqual(c.item_size({"m": {"M": {"k": {"S": "v"}}}}), 1 + 3 + 1 + 1 + 1)
        self.assertEqual(c.item_size({"l": {"L": [{"S": "ab"}]}}), 1 + 3 + 1 + 2)
        self.assertEqual(c.item_size({"b": {"B": "AAEC"}}), 1 + 3)

    def test_writes_round_up_per_kb_of_the_larger_image(self):
        self.assertEqual(c.write_units(None, item(100)), 1)
        self.assertEqual(c.write_units(item(1024), None), 1)
        self.assertEqual(c.write_units(item(1025), item(10)), 2)
        self.assertEqual(c.write_units(None, item(100), transactional=True), 2)
        self.assertEqual(c.write_units(None, None), 1)

    def test_index_entries(self):
        a = item(100, gsi1pk={"S": "a"}, gsi1sk={"S": "1"})
        b = item(100, gsi1pk={"S": "b"}, gsi1sk={"S": "1"})
        plain = item(100)
        self.assertEqual(c.gsi_write_units(None, plain, GSI), 0)
        self.assertEqual(c.gsi_write_units(None, a, GSI), 1)
        self.assertEqual(c.gsi_write_units(a, None, GSI), 1)
        self.assertEqual(c.gsi_write_units(a, a, GSI), 1)
        self.assertEqual(c.gsi_write_units(a, b, GSI), 2)
        self.assertEqual(c.gsi_write_units(a, plain, GSI), 1)

    def test_reads(self):
        self.assertEqual(c.read_units([], consistent=True), 1)
        self.assertEqual(c.read_units([item(100)], consistent=False), 0.5)
        self.assertEqual(c.read_units([item(3000), item(3000)], consistent=True), 2)
        self.assertEqual(c.read_units([item(100)], consistent=True, transactional=True), 2)


if __name__ == "__main__":
    unittest.main()
