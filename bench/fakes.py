"""In-memory stand-ins for the boto3 SQS FIFO and DynamoDB clients, so benchmarks of the merge and
flush functions measure the product and not moto (whose milliseconds per call, tens of them on a
loaded machine, would dominate every figure). The product's builders (``upsert.wiring``) take them
as the clients they are given.

They honour what the functions rely on and nothing more:

- ``MemoryFifo``: messages of a group in send order; a group with a message in flight (received,
  neither deleted nor made visible again) hands out nothing, to anyone; one receive returns up to 10
  messages, as many as possible from one group first (as SQS FIFO does); receive counts and a new
  receipt handle per receive; deletes and visibility changes by the latest receipt handle;
  ``ApproximateNumberOfMessages`` (the visible messages). No deduplication, no redrive (no message
  fails in a benchmark).
- ``MemoryTimerQueue``: the lists function's standard timer queue and its event source: each
  message delivered ``DelaySeconds`` after it was sent, as a Lambda SQS event of one record to the
  function it is given; a record the function names in ``batchItemFailures`` comes back after the
  queue's visibility timeout (scaled down: a benchmark run is minutes long).
- ``MemoryDynamoDb``: items by their ``email`` key; the table's secondary indexes (from
  template.yaml) kept up to date on every write; the update, condition and key-condition
  expressions the ledger package writes (``SET``/``REMOVE``/``ADD``, ``if_not_exists``,
  ``attribute_exists``/``attribute_not_exists``, ``contains`` on a string, comparisons joined by
  ``AND``/``OR``), anything else refused with a ValueError. Strongly consistent, reads and writes
  alike, and it counts its calls by operation. A scan walks the items in the order of a hash of
  their key (as a table's partitions do: no item kind comes in a run), its ``Limit`` counts the
  items read before the filter drops any (a page can hold fewer, even none), and it answers a
  ``LastEvaluatedKey`` whenever it stopped at the limit, the last item included (DynamoDB does not
  know it was the last: the next page is empty).
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError
from hubspot_activation.messages import QueueMessage
from hubspot_activation.upsert.plan import InboundMessage

from local.template import load_sam

#: Long enough that nothing reappears during a run (the template's is 360 s).
VISIBILITY_TIMEOUT = 720.0
KEY = "email"
Item = dict[str, Any]


@dataclass
class _Stored:
    message_id: str
    group_id: str
    body: str
    receive_count: int = 0
    receipt_handle: str = ""
    invisible_until: float = 0.0


class MemoryFifo:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._groups: dict[str, deque[_Stored]] = {}
        self._by_handle: dict[str, _Stored] = {}
        self._ids = itertools.count(1)
        self._handles = itertools.count(1)
        self._rotation = 0
        self.receives = 0
        self.deleted = 0

    # --- producer ----------------------------------------------------------------------------------

    def send(self, group_id: str, body: str) -> None:
        with self._lock:
            stored = _Stored(f"m{next(self._ids)}", group_id, body)
            self._groups.setdefault(group_id, deque()).append(stored)

    def publish(self, messages: Sequence[QueueMessage], request_id: str) -> int:
        """The ``MessagePublisher`` Protocol: what ingest packed goes straight into the queue."""
        for message in messages:
            self.send(message.group_id, message.body)
        return 0

    def __len__(self) -> int:
        with self._lock:
            return sum(len(group) for group in self._groups.values())

    def visible(self) -> int:
        with self._lock:
            now = self._clock()
            return sum(1 for group in self._groups.values() for m in group if m.invisible_until <= now)

    # --- consumer ----------------------------------------------------------------------------------

    def receive(self, max_messages: int = 10) -> list[InboundMessage]:
        with self._lock:
            self.receives += 1
            now = self._clock()
            names = list(self._groups)
            if not names:
                return []
            # Start at another group each time, so consumers do not all queue up behind one group.
            self._rotation = (self._rotation + 1) % len(names)
            taken: list[_Stored] = []
            for name in names[self._rotation :] + names[: self._rotation]:
                group = self._groups[name]
                if any(stored.invisible_until > now for stored in itertools.islice(group, 10)):
                    continue  # a message of the group is in flight: the group is locked
                for stored in itertools.islice(group, max_messages - len(taken)):
                    stored.receive_count += 1
                    stored.receipt_handle = f"r{next(self._handles)}"
                    stored.invisible_until = now + VISIBILITY_TIMEOUT
                    self._by_handle[stored.receipt_handle] = stored
                    taken.append(stored)
                if len(taken) >= max_messages:
                    break
            return [
                InboundMessage(s.message_id, s.group_id, s.body, s.receipt_handle, s.receive_count)
                for s in taken
            ]

    def delete(self, receipt_handle: str) -> bool:
        with self._lock:
            stored = self._by_handle.pop(receipt_handle, None)
            if stored is None or stored.receipt_handle != receipt_handle:
                return False
            group = self._groups[stored.group_id]
            group.remove(stored)
            if not group:
                del self._groups[stored.group_id]
            self.deleted += 1
            return True

    def change_visibility(self, receipt_handle: str, seconds: float) -> None:
        with self._lock:
            stored = self._by_handle.get(receipt_handle)
            if stored is not None:
                stored.invisible_until = self._clock() + seconds

    # --- the boto3 SQS client surface the product calls -------------------------------------------

    def get_queue_attributes(self, **kwargs: Any) -> dict[str, Any]:
        visible = self.visible()
        return {
            "Attributes": {
                "ApproximateNumberOfMessages": str(visible),
                "ApproximateNumberOfMessagesNotVisible": str(len(self) - visible),
            }
        }

    def send_message_batch(self, **kwargs: Any) -> dict[str, Any]:
        for entry in kwargs["Entries"]:
            self.send(entry["MessageGroupId"], entry["MessageBody"])
        return {"Successful": [{"Id": entry["Id"]} for entry in kwargs["Entries"]], "Failed": []}

    def delete_message_batch(self, **kwargs: Any) -> dict[str, Any]:
        successful: list[dict[str, str]] = []
        failed: list[dict[str, str]] = []
        for entry in kwargs["Entries"]:
            (successful if self.delete(entry["ReceiptHandle"]) else failed).append({"Id": entry["Id"]})
        return {"Successful": successful, "Failed": failed}

    def change_message_visibility_batch(self, **kwargs: Any) -> dict[str, Any]:
        for entry in kwargs["Entries"]:
            self.change_visibility(entry["ReceiptHandle"], float(entry["VisibilityTimeout"]))
        return {"Successful": [{"Id": entry["Id"]} for entry in kwargs["Entries"]], "Failed": []}


class MemoryTimerQueue:
    """A standard SQS queue of delayed timer messages and its event source to ``deliver``."""

    def __init__(
        self, deliver: Callable[[dict[str, Any]], dict[str, Any] | None], retry_seconds: float = 5.0
    ) -> None:
        self._deliver = deliver
        self._retry_seconds = retry_seconds
        self._lock = threading.Lock()
        self._in_flight = 0
        self._ids = itertools.count(1)
        self._stopped = False
        self.sent = 0

    def send_message(self, **kwargs: Any) -> dict[str, Any]:
        message_id = f"timer-{next(self._ids)}"
        with self._lock:
            self.sent += 1
        self._later(float(kwargs.get("DelaySeconds", 0)), message_id, str(kwargs["MessageBody"]))
        return {"MessageId": message_id}

    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    def stop(self) -> None:
        self._stopped = True

    def _later(self, delay: float, message_id: str, body: str) -> None:
        with self._lock:
            self._in_flight += 1
        timer = threading.Timer(delay, self._fire, args=(message_id, body))
        timer.daemon = True
        timer.start()

    def _fire(self, message_id: str, body: str) -> None:
        try:
            if self._stopped:
                return
            answer = self._deliver(
                {"Records": [{"messageId": message_id, "body": body, "eventSource": "aws:sqs"}]}
            )
            failed = {item["itemIdentifier"] for item in (answer or {}).get("batchItemFailures", [])}
            if message_id in failed:
                self._later(self._retry_seconds, message_id, body)
        finally:
            with self._lock:
                self._in_flight -= 1


class RoutedSqs:
    """One SQS client for several queues: ``send_message`` to the queue its ``QueueUrl`` names
    (the timer queue), everything else to the FIFO queue."""

    def __init__(self, fifo: MemoryFifo, queues: Mapping[str, MemoryTimerQueue]) -> None:
        self._fifo = fifo
        self._queues = dict(queues)

    def send_message(self, **kwargs: Any) -> dict[str, Any]:
        return self._queues[kwargs["QueueUrl"]].send_message(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fifo, name)


def sqs_event(messages: Sequence[InboundMessage]) -> dict[str, Any]:
    """The Lambda SQS event the event source would hand the function for these messages."""
    return {
        "Records": [
            {
                "messageId": m.message_id,
                "receiptHandle": m.receipt_handle,
                "body": m.body,
                "attributes": {
                    "ApproximateReceiveCount": str(m.receive_count),
                    "MessageGroupId": m.group_id,
                },
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:bench.fifo",
                "awsRegion": "us-east-1",
            }
            for m in messages
        ]
    }


# --- DynamoDB ------------------------------------------------------------------------------------


def template_indexes() -> dict[str, tuple[str, str]]:
    """The ledger table's secondary indexes: name -> (partition key, sort key)."""
    return {name: keys for name, (keys, _projected) in _template_index_specs().items()}


def template_projections() -> dict[str, tuple[str, ...] | None]:
    """The attributes each index projects besides the keys (None: all of them)."""
    return {name: projected for name, (_keys, projected) in _template_index_specs().items()}


def _template_index_specs() -> dict[str, tuple[tuple[str, str], tuple[str, ...] | None]]:
    indexes: dict[str, tuple[tuple[str, str], tuple[str, ...] | None]] = {}
    for spec in load_sam()["Resources"].values():
        if spec.get("Type") != "AWS::DynamoDB::Table":
            continue
        for index in spec["Properties"].get("GlobalSecondaryIndexes", []):
            keys = {key["KeyType"]: key["AttributeName"] for key in index["KeySchema"]}
            projection = index.get("Projection", {})
            projected = (
                None
                if projection.get("ProjectionType") == "ALL"
                else tuple(projection.get("NonKeyAttributes", []))
            )
            indexes[index["IndexName"]] = ((keys["HASH"], keys["RANGE"]), projected)
    return indexes


def _conditional_check_failed(operation: str) -> ClientError:
    return ClientError(
        {"Error": {"Code": "ConditionalCheckFailedException", "Message": "The conditional request failed"}},
        operation,
    )


def _scalar(value: Mapping[str, Any]) -> Any:
    if "N" in value:
        return float(value["N"])
    if "S" in value:
        return value["S"]
    raise ValueError(f"only numbers and strings are compared here, not {sorted(value)}")


def _split_top(text: str, separator: str = ",") -> list[str]:
    """``text`` split at ``separator`` outside parentheses."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += (char == "(") - (char == ")")
        if char == separator and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    if current.strip():
        parts.append(current.strip())
    return parts


_COMPARISON = re.compile(r"^(\S+)\s*(<=|>=|<>|=|<|>)\s*(\S+)$")
_FUNCTION = re.compile(r"^(attribute_exists|attribute_not_exists)\(\s*(\S+?)\s*\)$")
_CONTAINS = re.compile(r"^contains\(\s*(\S+?)\s*,\s*(\S+?)\s*\)$")
_IF_NOT_EXISTS = re.compile(r"^if_not_exists\(\s*(\S+?)\s*,\s*(\S+?)\s*\)$")
_SECTION = re.compile(r"\b(SET|REMOVE|ADD)\b")


class _Expression:
    def __init__(self, names: Mapping[str, str] | None, values: Mapping[str, Any] | None) -> None:
        self.names = names or {}
        self.values = values or {}

    def name(self, token: str) -> str:
        return self.names[token] if token.startswith("#") else token

    def value(self, token: str) -> Any:
        if not token.startswith(":"):
            raise ValueError(f"unsupported operand {token!r}")
        return self.values[token]

    def holds(self, condition: str | None, item: Item | None) -> bool:
        if not condition:
            return True
        item = item or {}
        return any(
            all(self._term(term.strip(), item) for term in re.split(r"\s+AND\s+", alternative))
            for alternative in re.split(r"\s+OR\s+", condition)
        )

    def _term(self, term: str, item: Item) -> bool:
        function = _FUNCTION.match(term)
        if function:
            present = self.name(function.group(2)) in item
            return present if function.group(1) == "attribute_exists" else not present
        contains = _CONTAINS.match(term)
        if contains:
            held = item.get(self.name(contains.group(1)), {})
            wanted = self.value(contains.group(2))
            if "S" not in held or "S" not in wanted:
                raise ValueError(f"only contains() of a string in a string is supported, not {term!r}")
            return str(wanted["S"]) in str(held["S"])
        comparison = _COMPARISON.match(term)
        if not comparison:
            raise ValueError(f"unsupported condition {term!r}")
        left = item.get(self.name(comparison.group(1)))
        if left is None:
            return False
        a, b = _scalar(left), _scalar(self.value(comparison.group(3)))
        outcomes: dict[str, bool] = {
            "=": a == b,
            "<>": a != b,
            "<": a < b,
            "<=": a <= b,
            ">": a > b,
            ">=": a >= b,
        }
        return outcomes[comparison.group(2)]

    def apply(self, update: str, item: Item) -> None:
        pieces = _SECTION.split(update)
        for keyword, body in zip(pieces[1::2], pieces[2::2], strict=True):
            for clause in _split_top(body):
                if keyword == "SET":
                    path, operand = (part.strip() for part in clause.split("=", 1))
                    default = _IF_NOT_EXISTS.match(operand)
                    if default:
                        existing = item.get(self.name(default.group(1)))
                        item[self.name(path)] = (
                            existing if existing is not None else self.value(default.group(2))
                        )
                    else:
                        item[self.name(path)] = self.value(operand)
                elif keyword == "REMOVE":
                    item.pop(self.name(clause), None)
                else:
                    path, operand = clause.split()
                    added = float(self.value(operand)["N"]) + float(
                        item.get(self.name(path), {"N": "0"})["N"]
                    )
                    item[self.name(path)] = {"N": str(int(added)) if added.is_integer() else str(added)}


class MemoryDynamoDb:
    """The ledger table's boto3 DynamoDB client surface, in a dict (one table: the ledger's)."""

    def __init__(
        self,
        indexes: Mapping[str, tuple[str, str]] | None = None,
        projections: Mapping[str, tuple[str, ...] | None] | None = None,
    ) -> None:
        """``projections``: the attributes each index returns besides the keys (None: all); the
        template's by default, keys only for an index given without one."""
        self._items: dict[str, Item] = {}
        self._indexes = dict(indexes if indexes is not None else template_indexes())
        self._projections = dict(projections if projections is not None else template_projections())
        #: index -> partition value -> keys of the items in it
        self._members: dict[str, dict[Any, set[str]]] = {name: {} for name in self._indexes}
        #: (hash of the key, key) of every item, in scan order
        self._scan_order: list[tuple[bytes, str]] = []
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()

    # --- what the ledger package calls ------------------------------------------------------------

    def get_item(self, **kwargs: Any) -> dict[str, Any]:
        with self._lock:
            self.calls["GetItem"] += 1
            item = self._items.get(kwargs["Key"][KEY]["S"])
            return {"Item": dict(item)} if item is not None else {}

    def batch_get_item(self, **kwargs: Any) -> dict[str, Any]:
        with self._lock:
            self.calls["BatchGetItem"] += 1
            responses: dict[str, list[Item]] = {}
            for table, request in kwargs["RequestItems"].items():
                found = (self._items.get(key[KEY]["S"]) for key in request["Keys"])
                responses[table] = [dict(item) for item in found if item is not None]
            return {"Responses": responses, "UnprocessedKeys": {}}

    def put_item(self, **kwargs: Any) -> dict[str, Any]:
        with self._lock:
            self.calls["PutItem"] += 1
            item = dict(kwargs["Item"])
            key = item[KEY]["S"]
            expression = _Expression(
                kwargs.get("ExpressionAttributeNames"), kwargs.get("ExpressionAttributeValues")
            )
            if not expression.holds(kwargs.get("ConditionExpression"), self._items.get(key)):
                raise _conditional_check_failed("PutItem")
            self._store(key, item)
            return {}

    def delete_item(self, **kwargs: Any) -> dict[str, Any]:
        with self._lock:
            self.calls["DeleteItem"] += 1
            key = kwargs["Key"][KEY]["S"]
            expression = _Expression(
                kwargs.get("ExpressionAttributeNames"), kwargs.get("ExpressionAttributeValues")
            )
            if not expression.holds(kwargs.get("ConditionExpression"), self._items.get(key)):
                raise _conditional_check_failed("DeleteItem")
            old = self._items.get(key)
            self._store(key, None)
            if old is None or kwargs.get("ReturnValues") != "ALL_OLD":
                return {}
            return {"Attributes": dict(old)}

    def update_item(self, **kwargs: Any) -> dict[str, Any]:
        with self._lock:
            self.calls["UpdateItem"] += 1
            key = kwargs["Key"][KEY]["S"]
            current = self._items.get(key)
            expression = _Expression(
                kwargs.get("ExpressionAttributeNames"), kwargs.get("ExpressionAttributeValues")
            )
            if not expression.holds(kwargs.get("ConditionExpression"), current):
                raise _conditional_check_failed("UpdateItem")
            item = dict(current) if current is not None else {KEY: {"S": key}}
            expression.apply(kwargs["UpdateExpression"], item)
            self._store(key, item)
            return {"Attributes": dict(item)} if kwargs.get("ReturnValues") == "ALL_NEW" else {}

    def batch_write_item(self, **kwargs: Any) -> dict[str, Any]:
        with self._lock:
            self.calls["BatchWriteItem"] += 1
            for requests in kwargs["RequestItems"].values():
                for request in requests:
                    if "PutRequest" in request:
                        item = dict(request["PutRequest"]["Item"])
                        self._store(item[KEY]["S"], item)
                    else:
                        self._store(request["DeleteRequest"]["Key"][KEY]["S"], None)
            return {"UnprocessedItems": {}}

    def query(self, **kwargs: Any) -> dict[str, Any]:
        with self._lock:
            self.calls["Query"] += 1
            partition_key, sort_key = self._indexes[kwargs["IndexName"]]
            expression = _Expression(
                kwargs.get("ExpressionAttributeNames"), kwargs.get("ExpressionAttributeValues")
            )
            terms = re.split(r"\s+AND\s+", kwargs["KeyConditionExpression"])
            partition = _COMPARISON.match(terms[0].strip())
            if not partition or expression.name(partition.group(1)) != partition_key:
                raise ValueError(f"unsupported key condition {kwargs['KeyConditionExpression']!r}")
            wanted = _scalar(expression.value(partition.group(3)))
            members = self._members[kwargs["IndexName"]].get(wanted, set())
            condition = " AND ".join(term.strip() for term in terms[1:])
            items = [self._items[key] for key in members]
            items = [item for item in items if expression.holds(condition, item)] if condition else items
            items.sort(
                key=lambda item: (_scalar(item[sort_key]), item[KEY]["S"]),
                reverse=not kwargs.get("ScanIndexForward", True),
            )
            start = kwargs.get("ExclusiveStartKey")
            if start is not None:
                after = (_scalar(start[sort_key]), start[KEY]["S"])
                forward = kwargs.get("ScanIndexForward", True)
                position = [(_scalar(item[sort_key]), item[KEY]["S"]) for item in items]
                items = [
                    item
                    for item, at in zip(items, position, strict=True)
                    if (at > after if forward else at < after)
                ]
            limit = kwargs.get("Limit")
            page = items[:limit] if limit else items
            projected = self._projections.get(kwargs["IndexName"], ())
            answer: dict[str, Any] = {
                "Items": [
                    dict(item)
                    if projected is None
                    else {
                        name: item[name]
                        for name in (KEY, partition_key, sort_key, *projected)
                        if name in item
                    }
                    for item in page
                ],
                "Count": len(page),
            }
            if limit and len(items) > limit:
                last = page[-1]
                answer["LastEvaluatedKey"] = {name: last[name] for name in (KEY, partition_key, sort_key)}
            return answer

    def scan(self, **kwargs: Any) -> dict[str, Any]:
        with self._lock:
            self.calls["Scan"] += 1
            expression = _Expression(
                kwargs.get("ExpressionAttributeNames"), kwargs.get("ExpressionAttributeValues")
            )
            start = kwargs.get("ExclusiveStartKey")
            position = (
                bisect.bisect_right(self._scan_order, _scan_position(start[KEY]["S"]))
                if start is not None
                else 0
            )
            limit = kwargs.get("Limit") or len(self._scan_order)
            read = self._scan_order[position : position + limit]
            items = [self._items[key] for _hash, key in read]
            kept = [dict(item) for item in items if expression.holds(kwargs.get("FilterExpression"), item)]
            answer: dict[str, Any] = {"Items": kept, "Count": len(kept), "ScannedCount": len(read)}
            if read and len(read) == limit:
                answer["LastEvaluatedKey"] = {KEY: {"S": read[-1][1]}}
            return answer

    # --- the table ----------------------------------------------------------------------------------

    def items(self) -> list[Item]:
        with self._lock:
            return [dict(item) for item in self._items.values()]

    def _store(self, key: str, item: Item | None) -> None:
        old = self._items.pop(key, None)
        if (old is None) != (item is None):
            if item is None:
                self._scan_order.remove(_scan_position(key))
            else:
                bisect.insort(self._scan_order, _scan_position(key))
        for name, (partition_key, sort_key) in self._indexes.items():
            if old is not None and partition_key in old and sort_key in old:
                self._members[name].get(_scalar(old[partition_key]), set()).discard(key)
            if item is not None and partition_key in item and sort_key in item:
                self._members[name].setdefault(_scalar(item[partition_key]), set()).add(key)
        if item is not None:
            self._items[key] = item


def _scan_position(key: str) -> tuple[bytes, str]:
    return hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), key


class MemoryDailyCounter:
    """The governor's ``DailyCounter`` Protocol in a dict."""

    def __init__(self) -> None:
        self.totals: dict[str, int] = {}
        self._lock = threading.Lock()

    def add(self, day: str, calls: int) -> int:
        with self._lock:
            self.totals[day] = self.totals.get(day, 0) + calls
            return self.totals[day]
