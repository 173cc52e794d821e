"""The benchmarks' cost meter on the local stack: it sees every function the stack runs (through
the stack's ``instrument``) and the AWS calls those functions and the event source make."""

from __future__ import annotations

import requests

from bench.cost import AWS_LATENCY_MS, CostMeter, function_memory
from bench.harness import aep_profiles
from local import stack as local_stack
from local.template import translate


def test_the_meter_sees_the_stacks_functions_and_their_aws_calls() -> None:
    meter = CostMeter(function_memory(translate())).attach()
    stack = local_stack.start(instrument=meter.function)
    try:
        meter.observe_event_source(stack.poller.sqs)
        ledger = stack.aws.physical_id("LedgerTable")
        response = requests.post(
            stack.activations_url,
            json={"profiles": aep_profiles(20, "meter")},
            headers={"Authorization": f"Bearer {stack.ingest_token}"},
            timeout=30,
        )
        assert response.status_code == 202, response.text
        assert local_stack.drain(stack, show=False)
    finally:
        meter.detach()
        stack.stop()
    usage = meter.usage
    assert usage.api_gateway_requests == 1
    assert usage.functions["IngestFunction"].invocations == 1
    assert usage.functions["MergeFunction"].invocations >= 1
    assert usage.functions["MergeFunction"].memory_mb == 256
    assert usage.functions["FlushFunction"].invocations >= 1
    assert usage.functions["FlushFunction"].memory_mb == 512
    # Each contact's desired state merged, then its confirmed state recorded.
    assert usage.write_units_by_target[ledger] >= 40
    assert usage.read_units_by_target[ledger] >= 20  # each contact's state read before planning
    assert usage.calls["sqs.SendMessageBatch"] >= 1  # ingest
    assert usage.calls["sqs.DeleteMessageBatch"] >= 1  # the event source
    # The flusher's look at the queue's depth; the local poller's own checks are not counted.
    assert usage.calls["sqs.GetQueueAttributes"] < usage.functions["FlushFunction"].invocations * 20
    assert usage.secrets_manager_calls >= 2  # the ingest token and the HubSpot credential
    assert usage.sqs_fifo_requests >= 3
    # The AWS calls timed for the modeled durations include those of the flush's worker threads:
    # each contact's outcome is recorded by a thread-pool worker, with a write of its own.
    flush, merge = usage.functions["FlushFunction"], usage.functions["MergeFunction"]
    assert flush.aws_calls >= 20
    assert merge.aws_calls >= 20  # each contact's conditional merge
    assert flush.aws_call_modeled_seconds >= flush.aws_calls * min(AWS_LATENCY_MS.values()) / 1000
