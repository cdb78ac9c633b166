"""DynamoDB on-demand capacity units of one request, derived from item sizes as AWS documents
them (the counting proxy, bench/aws_proxy.py, hands in the items before and after a write
and the items a read answered; moto's own ConsumedCapacity is a constant, not a size).

- Item size: attribute names plus values (strings and binaries by their bytes, numbers about
  one byte per two significant digits plus one, booleans and nulls 1 byte, lists and maps
  3 bytes plus 1 per element plus their elements).
- A write: one write unit per started 1 KB of the larger of the item before and after it
  (at least 1); two in a transaction. A failed conditional write still costs its units.
- Each global secondary index (all three project ALL) costs standard writes of its entry:
  1 when the item enters or leaves the index, or changes in it; 2 (a delete and a put)
  when its index key changes.
- A read: one read unit per started 4 KB of what it returned (at least 1), half of that
  when eventually consistent (every GSI query), twice in a transaction; a query sums the
  sizes of its items before rounding.
"""
import base64
import math

WRITE_UNIT = 1024
READ_UNIT = 4096


def number_size(text):
    digits = text.lstrip("-").replace(".", "").lstrip("0").split("e")[0].split("E")[0]
    return (max(len(digits.rstrip("0")), 1) + 1) // 2 + 1


def value_size(value):
    (kind, v), = value.items()
    if kind == "S":
        return len(v.encode())
    if kind == "N":
        return number_size(v)
    if kind == "B":
        return len(base64.b64decode(v))
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode()) for s in v)
    if kind == "NS":
        return sum(number_size(n) for n in v)
    if kind == "BS":
        return sum(len(base64.b64decode(b)) for b in v)
    if kind == "L":
        return 3 + sum(1 + value_size(e) for e in v)
    if kind == "M":
        return 3 + sum(len(k.encode()) + 1 + value_size(e) for k, e in v.items())
    raise ValueError(f"unknown attribute type {kind}")


def item_size(item):
    """The size of an item (None: no item) in bytes."""
    if not item:
        return 0
    return sum(len(name.encode()) + value_size(v) for name, v in item.items())


def write_units(old, new, transactional=False):
    """Table write units of one write that took the item from `old` to `new` (None: absent)."""
    units = max(1, math.ceil(max(item_size(old), item_size(new)) / WRITE_UNIT))
    return units * (2 if transactional else 1)


def gsi_write_units(old, new, indexes):
    """Write units of the index entries of one write; `indexes` is a list of (hash, range)
    attribute names (range may be None)."""
    total = 0
    for keys in indexes:
        def entry(item):
            if not item or any(k and k not in item for k in keys):
                return None
            return tuple(item[k] for k in keys if k)
        before, after = entry(old), entry(new)
        if before is None and after is None:
            continue
        if before is None:
            total += math.ceil(item_size(new) / WRITE_UNIT) or 1
        elif after is None:
            total += math.ceil(item_size(old) / WRITE_UNIT) or 1
        elif before != after:
            total += (math.ceil(item_size(old) / WRITE_UNIT) or 1) + (math.ceil(item_size(new) / WRITE_UNIT) or 1)
        else:
            total += max(1, math.ceil(max(item_size(old), item_size(new)) / WRITE_UNIT))
    return total


def read_units(items, consistent, transactional=False):
    """Read units of one read that returned `items` (a GetItem: a list of its item or none)."""
    units = max(1, math.ceil(sum(item_size(i) for i in items) / READ_UNIT))
    if transactional:
        return units * 2
    return units if consistent else units / 2
