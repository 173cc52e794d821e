"""The operator's routes on the local stack, over real HTTP: the same API and token as ingest,
routed to the operations function like API Gateway routes the template."""

from __future__ import annotations

import io
import json
import warnings
from dataclasses import replace
from typing import Any

import pytest
import requests
from hubspot_activation.messages import shard_of
from hubspot_activation.model import AudienceChange, AudienceStatus, ContactUpdate

from hubspot_activation_cli.main import main as cli
from local import stack as local_stack
from local.api_server import LocalContext
from local.functions import handler
from tests.builders import pack

ROUTES = [
    ("GET", "/sync/status"),
    ("GET", "/sync/issues?status=failed"),
    ("GET", "/contacts/ada@example.com"),
    ("PUT", "/audiences/gold"),
    ("DELETE", "/audiences/gold"),
    ("POST", "/replay"),
]


def call(
    stack: local_stack.LocalStack, method: str, path: str, body: Any = None, token: str | None = ""
) -> requests.Response:
    headers = {} if token is None else {"Authorization": f"Bearer {token or stack.ingest_token}"}
    return requests.request(method, f"{stack.api.url}{path}", json=body, headers=headers, timeout=30)


def answer(stack: local_stack.LocalStack, method: str, path: str, body: Any = None, status: int = 200) -> Any:
    response = call(stack, method, path, body)
    assert response.status_code == status, response.text
    return response.json()


def post(stack: local_stack.LocalStack, *profiles: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = answer(stack, "POST", "/activations", {"profiles": list(profiles)}, status=202)
    return body


def member(
    email: str,
    audience: str,
    status: str = "realized",
    timestamp: str = "2026-11-20T10:00:00Z",
    name: str | None = None,
) -> dict[str, Any]:
    entry: dict[str, Any] = {"status": status, "timestamp": timestamp}
    if name:
        entry["name"] = name
    return {"email": email, "audiences": {audience: entry}}


def sandbox_contact(stack: local_stack.LocalStack, email: str) -> dict[str, str]:
    assert stack.sandbox is not None
    state = stack.sandbox.state
    return dict(state.contacts[state.email_index[email]]["properties"])


def drain(stack: local_stack.LocalStack) -> None:
    """Until the queue is merged, no flush runs and no contact is pending."""
    assert local_stack.drain(stack, show=False, timeout=120)


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_operations_route_refuses_a_missing_or_wrong_token(
    running: local_stack.LocalStack, method: str, path: str
) -> None:
    for token in (None, "wrong-token"):
        response = call(running, method, path, {"name": "Gold"}, token=token)
        assert response.status_code == 401, (token, response.text)
        body = response.json()
        assert body["error"] == "unauthorized" and body["requestId"]


def test_issues_are_listed_newest_first_a_page_at_a_time(running: local_stack.LocalStack) -> None:
    for batch in range(3):
        post(running, *({"email": f"broken-{batch}-{i}", "attributes": {"firstname": "X"}} for i in range(2)))
    pages, cursor = [], None
    while True:
        path = "/sync/issues?status=excluded&limit=4" + (f"&cursor={cursor}" if cursor else "")
        page = answer(running, "GET", path)
        pages.append(page["items"])
        cursor = page["cursor"]
        if cursor is None:
            break
    assert [len(items) for items in pages] == [4, 2]
    items = [item for page in pages for item in page]
    assert sorted(item["email"] for item in items) == sorted(
        f"broken-{b}-{i}" for b in range(3) for i in range(2)
    )
    assert [item["at"] for item in items] == sorted((item["at"] for item in items), reverse=True)
    assert all(item["reason"] == "email has no '@' between a local part and a domain" for item in items)
    for bad in (
        "/sync/issues?status=excluded&cursor=bm90LWEtY3Vyc29y",
        "/sync/issues?limit=101",
        "/sync/issues?status=lost",
    ):
        refused = call(running, "GET", bad)
        assert refused.status_code == 400
        assert refused.json()["field"] == bad.rsplit("?", 1)[1].split("&")[-1].split("=")[0]


def test_replay_after_a_fix_turns_failed_contacts_into_synced_ones(running: local_stack.LocalStack) -> None:
    assert running.sandbox is not None
    state = running.sandbox.state
    # No room for another custom property: the audience cannot get one, its contacts fail.
    state.config.update({"custom_property_limit": state.custom_property_count()})
    post(running, member("ada@example.com", "vip", name="VIP"), member("bob@example.com", "vip"))
    drain(running)
    failed = answer(running, "GET", "/sync/issues?status=failed")["items"]
    assert sorted(item["email"] for item in failed) == ["ada@example.com", "bob@example.com"]
    assert all("property limit" in item["reason"] for item in failed)
    ada = answer(running, "GET", "/contacts/ADA@Example.com")
    assert ada["status"] == "failed" and ada["pending"]["audiences"]["vip"]["status"] == "realized"
    status = answer(running, "GET", "/sync/status")
    assert status["contacts"]["failed"] == 2 and "property_limit" in status["lastErrorByKind"]

    dry = answer(running, "POST", "/replay", {"dryRun": True})
    assert dry["failedContacts"]["count"] == 2 and dry["more"] is False
    assert sorted(dry["failedContacts"]["emails"]) == ["ada@example.com", "bob@example.com"]
    assert running.poller.pending() == 0  # a dry run queues nothing
    assert answer(running, "GET", "/contacts/ada@example.com")["status"] == "failed"

    state.config.update({"custom_property_limit": 1000})  # the operator's fix
    done = answer(running, "POST", "/replay", {"dryRun": False})
    assert done["failedContacts"]["count"] == 2 and done["failedContacts"]["messages"] >= 1
    drain(running)
    assert answer(running, "GET", "/sync/issues?status=failed")["items"] == []
    for email in ("ada@example.com", "bob@example.com"):
        assert sandbox_contact(running, email)["aud_vip"] == "realized"
        view = answer(running, "GET", f"/contacts/{email}")
        assert view["status"] == "synced" and view["pending"]["audiences"] == {}
    assert state.properties["aud_vip"]["label"] == "VIP"


def dead_letter(running: local_stack.LocalStack, update: ContactUpdate, received_ms: int) -> None:
    (message,) = pack([replace(update, received_ms=received_ms)], 8)
    running.aws.client("sqs").send_message(
        QueueUrl=running.aws.physical_id("ActivationsDeadLetterQueue"),
        MessageBody=message.body,
        MessageGroupId=message.group_id,
        MessageDeduplicationId=message.deduplication_id,
    )


def dead_letter_messages(running: local_stack.LocalStack) -> list[Any]:
    """Every message in the DLQ, received and made visible again at once."""
    sqs = running.aws.client("sqs")
    url = running.aws.physical_id("ActivationsDeadLetterQueue")
    received: list[Any] = []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30).get(
        "Messages", []
    ):
        received += batch
    for message in received:
        sqs.change_message_visibility(
            QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
        )
    return received


def test_an_undecodable_dead_letter_never_holds_back_the_letters_behind_it(
    running: local_stack.LocalStack,
) -> None:
    # 95 contacts of one FIFO group, whose letters sit in the DLQ behind one the merge cannot
    # decode (the merge moves such a message to the DLQ at once, in its group).
    shards = int(running.aws.function_environment("OperationsFunction")["SHARD_COUNT"])
    emails = [
        email for email in (f"user{i}@example.com" for i in range(20_000)) if shard_of(email, shards) == "c7"
    ]
    emails = emails[:95]
    assert len(emails) == 95
    sqs = running.aws.client("sqs")
    sqs.send_message(
        QueueUrl=running.aws.physical_id("ActivationsDeadLetterQueue"),
        MessageBody='{"v": 99}',
        MessageGroupId="c7",
        MessageDeduplicationId="undecodable-head",
    )
    realized = AudienceChange("gold", AudienceStatus.REALIZED, 1_795_000_000_000)
    for email in emails:
        (message,) = pack([ContactUpdate(email, (realized,), received_ms=1_795_000_000_000)], shards)
        assert message.group_id == "c7"
        sqs.send_message(
            QueueUrl=running.aws.physical_id("ActivationsDeadLetterQueue"),
            MessageBody=message.body,
            MessageGroupId=message.group_id,
            MessageDeduplicationId=message.deduplication_id,
        )
    answers: list[Any] = []
    while len(answers) < 20:
        answers.append(answer(running, "POST", "/replay", {"dryRun": False}))
        if not answers[-1]["more"]:
            break
    assert sum(reply["deadLetters"]["moved"] for reply in answers) == 95
    assert all(
        reply["deadLetters"]["failed"] == 0 and not reply["deadLetters"]["errors"] for reply in answers
    )
    (left,) = dead_letter_messages(running)
    assert left["Body"] == '{"v": 99}'
    drain(running)
    for email in emails:
        assert sandbox_contact(running, email)["aud_gold"] == "realized", email
    # Nothing movable is left: a further call moves nothing and says so; the letter stays reported.
    again = answer(running, "POST", "/replay", {"dryRun": False})
    assert again["more"] is False and again["deadLetters"]["moved"] == 0
    assert again["deadLetters"]["undecodable"]["messageIds"] == [left["MessageId"]]


@pytest.mark.parametrize(
    "body",
    ['{"v":2,"rcv":1e999,"updates":[]}', '{"v":2,"rcv":1,"updates":[{"email":"a@example.com","pos":1e999}]}'],
    ids=["receive-time", "position"],
)
def test_a_dead_letter_with_a_number_no_integer_holds_is_set_aside_not_a_500(
    running: local_stack.LocalStack, body: str
) -> None:
    """JSON's ``1e999`` is an infinite float: ``int()`` raises OverflowError on it. Such a letter at
    the head of its group is undecodable like any other: set aside, the letter behind it moved."""
    shards = int(running.aws.function_environment("OperationsFunction")["SHARD_COUNT"])
    email = next(e for e in (f"big{i}@example.com" for i in range(10_000)) if shard_of(e, shards) == "c3")
    sqs = running.aws.client("sqs")
    dlq = running.aws.physical_id("ActivationsDeadLetterQueue")
    sqs.send_message(QueueUrl=dlq, MessageBody=body, MessageGroupId="c3", MessageDeduplicationId="overflow")
    realized = AudienceChange("gold", AudienceStatus.REALIZED, 1_795_000_000_000)
    (message,) = pack([ContactUpdate(email, (realized,), received_ms=1_795_000_000_000)], shards)
    sqs.send_message(
        QueueUrl=dlq,
        MessageBody=message.body,
        MessageGroupId=message.group_id,
        MessageDeduplicationId=message.deduplication_id,
    )
    moved = answer(running, "POST", "/replay", {"dryRun": False})["deadLetters"]
    assert moved["moved"] == 1 and moved["undecodable"]["setAside"] == 1, moved
    (left,) = dead_letter_messages(running)
    assert left["Body"] == body and [left["MessageId"]] == moved["undecodable"]["messageIds"]


def test_dead_letters_move_back_and_never_overwrite_a_newer_state(running: local_stack.LocalStack) -> None:
    post(running, member("ada@example.com", "gold", "realized", "2026-11-20T10:00:00Z"))
    drain(running)
    older = AudienceChange("gold", AudienceStatus.EXITED, 1_795_000_000_000)  # 2026-11-18, before
    dead_letter(running, ContactUpdate("ada@example.com", (older,)), received_ms=1_795_000_000_000)
    dead_letter(running, ContactUpdate("cy@example.com", (older,)), received_ms=1_795_000_000_000)
    assert local_stack.dead_letters(running) == 2
    assert answer(running, "POST", "/replay", {"dryRun": True})["deadLetters"]["count"] == 2
    assert local_stack.dead_letters(running) == 2  # the dry run moved nothing
    running.aws.client("sqs").send_message(
        QueueUrl=running.aws.physical_id("ActivationsDeadLetterQueue"),
        MessageBody="not a queue message",
        MessageGroupId="other",
        MessageDeduplicationId="garbage",
    )
    moved = answer(running, "POST", "/replay", {})
    assert moved["deadLetters"]["moved"] == 2 and moved["deadLetters"]["failed"] == 0
    # Undecodable: not moved (it would only come back), left visible in the DLQ (set aside in its
    # own group) and reported under its id there.
    undecodable = moved["deadLetters"]["undecodable"]
    assert undecodable["count"] == 1 and undecodable["setAside"] == 1
    (left,) = dead_letter_messages(running)
    assert left["Body"] == "not a queue message" and [left["MessageId"]] == undecodable["messageIds"]
    assert local_stack.dead_letters(running) == 1
    drain(running)
    # Ada's newer membership stands; Cy, whom nothing newer reached, gets the moved-back change.
    assert sandbox_contact(running, "ada@example.com")["aud_gold"] == "realized"
    assert answer(running, "GET", "/contacts/ada@example.com")["audiences"]["gold"]["status"] == "realized"
    assert sandbox_contact(running, "cy@example.com")["aud_gold"] == "exited"


def test_audience_rename_relabels_the_property(running: local_stack.LocalStack) -> None:
    assert running.sandbox is not None
    post(running, member("ada@example.com", "gold", name="Gold"))
    drain(running)
    properties = running.sandbox.state.properties
    assert properties["aud_gold"]["label"] == "Gold"
    # The first PUT creates the audience's metadata (201), as AEP's create call does.
    renamed = answer(
        running, "PUT", "/audiences/gold", {"name": "Gold members", "description": "from AEP"}, status=201
    )
    assert renamed["externalAudienceId"] == "gold" and renamed["labelUpdated"] is True
    assert renamed["resumed"] == {"queued": False}  # never deleted: nothing to resume
    assert properties["aud_gold"]["label"] == "Gold members" and "aud_gold" in properties
    assert answer(running, "PUT", "/audiences/x", {"name": ""}, status=400)["field"] == "name"
    post(running, member("ada@example.com", "gold", "exited", "2026-11-22T10:00:00Z", name="stale name"))
    drain(running)
    assert sandbox_contact(running, "ada@example.com")["aud_gold"] == "exited"
    assert properties["aud_gold"]["label"] == "Gold members"  # the stored name wins over the payload's


def test_the_cli_reads_the_routes(running: local_stack.LocalStack) -> None:
    post(running, member("ada@example.com", "gold"), {"email": "nope", "attributes": {"firstname": "X"}})
    drain(running)
    connection = ["--url", running.api.url, f"--token={running.ingest_token}"]
    answers = {}
    for command in (
        ["status"],
        ["issues", "--status", "excluded"],
        ["contact", "Ada@Example.com"],
        ["replay", "--dry-run"],
    ):
        out, err = io.StringIO(), io.StringIO()
        assert cli([*command, *connection], out=out, err=err) == 0, err.getvalue()
        answers[command[0]] = json.loads(out.getvalue())
    assert answers["status"]["contacts"]["excluded"] == 1
    assert answers["issues"]["items"][0]["email"] == "nope"
    assert (
        answers["contact"]["status"] == "synced"
        and answers["contact"]["audiences"]["gold"]["status"] == "realized"
    )
    assert answers["replay"]["dryRun"] is True
    out, err = io.StringIO(), io.StringIO()
    assert cli(["contact", "nobody@example.com", *connection], out=out, err=err) == 1
    assert "HTTP 404" in err.getvalue()


def test_path_parameters_are_decoded_once(running: local_stack.LocalStack) -> None:
    # %25 is a literal "%": the id is "a%2Fb", not "a/b" decoded a second time.
    created = answer(running, "PUT", "/audiences/a%252Fb", {"name": "Percent"}, status=201)
    assert created["externalAudienceId"] == "a%2Fb"
    assert answer(running, "DELETE", "/audiences/a%252Fb")["audienceId"] == "a%2Fb"
    post(running, member("100%41@example.com", "gold"))
    drain(running)
    assert answer(running, "GET", "/contacts/100%2541@example.com")["email"] == "100%41@example.com"
    assert call(running, "GET", "/contacts/100A@example.com").status_code == 404


def api_gateway_event(method: str, route: str, params: dict[str, str], token: str, body: Any = None) -> Any:
    """What API Gateway hands the function once it matched ``route``: the path and the parameters
    already decoded (``%2F`` is a "/" by then)."""
    path = route
    for name, value in params.items():
        path = path.replace("{" + name + "}", value)
    return {
        "version": "2.0",
        "routeKey": f"{method} {route}",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"authorization": f"Bearer {token}", "content-type": "application/json"},
        "pathParameters": params,
        "requestContext": {
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.1"},
            "requestId": "req-slash",
            "routeKey": f"{method} {route}",
            "stage": "$default",
        },
        "body": json.dumps(body) if body is not None else None,
        "isBase64Encoded": False,
    }


def test_a_decoded_slash_in_a_parameter_stays_one_parameter(running: local_stack.LocalStack) -> None:
    operations = handler("operations")
    put = api_gateway_event("PUT", "/audiences/{id}", {"id": "a/b%2F"}, running.ingest_token, {"name": "S"})
    response = operations(put, LocalContext())
    assert response["statusCode"] == 201, response
    assert json.loads(response["body"])["externalAudienceId"] == "a/b%2F"
    post(running, member("x/y%2F@example.com", "gold"))
    drain(running)
    get = api_gateway_event("GET", "/contacts/{email}", {"email": "X/y%2F@example.com"}, running.ingest_token)
    response = operations(get, LocalContext())
    assert response["statusCode"] == 200, response
    assert json.loads(response["body"])["email"] == "x/y%2f@example.com"


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/activations"), ("DELETE", "/activations"), ("PUT", "/sync/status")]
)
def test_an_unrouted_method_gets_api_gateways_own_404(
    running: local_stack.LocalStack, method: str, path: str
) -> None:
    # As docs/ingest-contract.md says: the route table answers, not the function (no 405 naming the method).
    response = call(running, method, path, {})
    assert response.status_code == 404
    assert response.json() == {"message": "Not Found"}


def test_a_rename_answers_when_the_hubspot_secret_cannot_be_read(running: local_stack.LocalStack) -> None:
    running.aws.client("secretsmanager").delete_secret(
        SecretId=running.aws.physical_id("HubSpotCredentialSecret"), ForceDeleteWithoutRecovery=True
    )
    renamed = answer(running, "PUT", "/audiences/gold", {"name": "Gold members"}, status=201)
    assert (
        renamed["labelUpdated"] is False and "the next sync of the audience sets it" in renamed["labelNote"]
    )
    # The metadata is stored all the same: the flush labels the property with it on the next sync.
    assert answer(running, "PUT", "/audiences/gold", {"name": "Gold members"})["name"] == "Gold members"


def test_a_rename_makes_one_short_attempt_when_hubspot_is_slow(running: local_stack.LocalStack) -> None:
    assert running.sandbox is not None
    state = running.sandbox.state
    post(running, member("ada@example.com", "gold", name="Gold"))
    drain(running)
    # Slower than the relabel's 2 s read timeout (the flush's client would wait up to 20 s).
    state.config.update({"latency_ms": 2500})
    before = state.faults["latency"]
    renamed = answer(running, "PUT", "/audiences/gold", {"name": "Gold members"}, status=201)
    assert renamed["labelUpdated"] is False and "labelNote" in renamed
    assert state.faults["latency"] - before == 1  # one attempt, no retries
    state.config.update({"latency_ms": 0})


def test_replay_publishes_its_metrics_and_read_routes_publish_nothing(
    running: local_stack.LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    # The functions of one process share powertools' one metric set (in Lambda each has a process of
    # its own): a flush run on the stack's schedule would publish, or swallow, what the routes count.
    running.schedule.stop()
    running.flusher.stop()
    operations = handler("operations")
    token = running.ingest_token
    dead_letter(running, ContactUpdate("cy@example.com", ()), received_ms=1_795_000_000_000)
    running.aws.client("sqs").send_message(
        QueueUrl=running.aws.physical_id("ActivationsDeadLetterQueue"),
        MessageBody="not a queue message",
        MessageGroupId="other",
        MessageDeduplicationId="garbage",
    )
    capsys.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        status = operations(api_gateway_event("GET", "/sync/status", {}, token), LocalContext())
    assert status["statusCode"] == 200
    assert not [w for w in caught if "metrics" in str(w.message)]
    assert capsys.readouterr().out == ""  # nothing counted, nothing printed
    replay = api_gateway_event("POST", "/replay", {}, token, {"dryRun": False})
    assert operations(replay, LocalContext())["statusCode"] == 200
    (emf,) = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    names = {metric["Name"] for metric in emf["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert names == {"ContactsReplayed", "DeadLettersMoved", "DeadLettersNotMoved"}
    assert (emf["ContactsReplayed"], emf["DeadLettersMoved"], emf["DeadLettersNotMoved"]) == ([0], [1], [1])
