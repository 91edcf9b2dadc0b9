"""The outbox against a real Redis: hand-offs, claims, renewals and settles, as the delivery service uses them."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from server.core.outbox import MAX_HANDOFFS, CallbackOutbox, DeliveryQueue, Handoff, claim_lease_s
from server.core.persistence import TaskPersistence, async_redis_client
from server.core.status import CANCELED, CallbackStatus, Outcome, TaskStatus
from server.delivery import DeliveryService
from server.schemas import CallbackPayload
from server.settings import Settings, settings_from_mapping
from tests.support.receiver import CallbackReceiver, Reply

T = TypeVar("T")


def on_queue(settings: Settings, use: Callable[[DeliveryQueue], Awaitable[T]]) -> T:
    """`use(queue)` on a fresh event loop, as the delivery service would run it."""

    async def scenario() -> T:
        client = async_redis_client(settings.redis)
        try:
            return await use(DeliveryQueue(client, settings))
        finally:
            await client.aclose()

    return asyncio.run(scenario())


def next_handoff(settings: Settings) -> Handoff | None:
    return on_queue(settings, lambda queue: queue.next_handoff(0.2))


def accepted(persistence: TaskPersistence, client_id: str = "", url: str = "http://receiver.test/cb") -> str:
    """A queued task of tenant `clinic`; returns its reference."""
    client_id = client_id or str(uuid.uuid4())
    record = {
        "taskId": client_id,
        "tenant": "clinic",
        "taskType": "ceph",
        "callbackUrl": url,
        "status": "queued",
        "attempts": 0,
    }
    ref = f"clinic:{client_id}"
    assert persistence.claim_task(ref, record)
    return ref


RESULT = {"landmarks": [{"name": "S", "x": 0.1 + 0.2, "y": 1e-7}], "label": 'naïve "quoted"\nline'}


def test_ending_a_task_hands_its_exact_callback_to_the_delivery_service(
    private_settings: Settings, persistence: TaskPersistence
) -> None:
    ref = accepted(persistence, "case-7")
    before = time.time()
    assert CallbackOutbox(persistence).end_task(ref, Outcome(TaskStatus.SUCCEEDED, data=RESULT))
    handoff = next_handoff(private_settings)
    assert handoff is not None
    assert (handoff.task_id, handoff.callback_url) == (ref, "http://receiver.test/cb")
    assert handoff.state == {"status": "pending", "attempts": 0, "failures": 0}
    # Claimed for the delivery service at once: the member's score is the hand-off's lease.
    lease_s = claim_lease_s(private_settings.callback)
    assert before + lease_s <= handoff.lease <= time.time() + lease_s
    assert persistence.redis_client.zscore(CallbackOutbox(persistence).due_key, ref) == handoff.lease
    # The client's id (not the tenant's reference), the result's every float and character intact.
    payload = json.loads(handoff.body)
    assert payload == {"taskId": "case-7", "taskType": "ceph", "status": "succeeded", "data": RESULT, "error": None}
    assert CallbackPayload.model_validate(payload).taskId == "case-7"
    assert next_handoff(private_settings) is None  # handed to one taker only


def test_a_handed_off_callback_is_not_claimed_again_until_its_lease_lapses(
    private_settings: Settings, persistence: TaskPersistence
) -> None:
    ref = accepted(persistence)
    CallbackOutbox(persistence).end_task(ref, CANCELED)
    handoff = next_handoff(private_settings)
    assert handoff is not None
    assert on_queue(private_settings, lambda queue: queue.claim_due(time.time(), 30, 10)) == []
    # Its taker died: once the lease has lapsed, a claim gets the same callback, byte for byte.
    later = handoff.lease + 1
    claimed = on_queue(private_settings, lambda queue: queue.claim_due(later, 30, 10))
    assert [(c.task_id, c.body, c.lease) for c in claimed] == [(ref, handoff.body, later + 30)]
    assert json.loads(handoff.body)["error"] == {"code": 12005, "message": "Task canceled"}


def test_a_renewal_extends_a_waiting_hand_off_only_while_the_claim_is_still_its_own(
    private_settings: Settings, persistence: TaskPersistence
) -> None:
    outbox = CallbackOutbox(persistence)
    ref = accepted(persistence)
    outbox.end_task(ref, Outcome(TaskStatus.FAILED, error={"code": 12003, "message": "bad image"}))
    handoff = next_handoff(private_settings)
    assert handoff is not None
    renewal = on_queue(private_settings, lambda queue: queue.renew(handoff, handoff.lease + 60))
    assert renewal is not None and (renewal.lease, renewal.body) == (handoff.lease + 60, handoff.body)
    renewed = renewal
    # The old lease is no longer the claim's, so a second renewal on it is refused.
    assert on_queue(private_settings, lambda queue: queue.renew(handoff, handoff.lease + 120)) is None
    # A replay supersedes the claim too (and hands the callback off afresh).
    assert outbox.replay(ref, {"status": "pending", "attempts": 1, "failures": 0}, time.time())
    assert on_queue(private_settings, lambda queue: queue.renew(renewed, renewed.lease + 60)) is None
    replayed = next_handoff(private_settings)
    assert replayed is not None and replayed.state["attempts"] == 1 and replayed.body == handoff.body


def test_a_settle_only_counts_for_the_current_claim_and_settled_callbacks_leave_the_outbox(
    private_settings: Settings, persistence: TaskPersistence
) -> None:
    ref = accepted(persistence)
    CallbackOutbox(persistence).end_task(ref, Outcome(TaskStatus.SUCCEEDED, data={"teeth": []}))
    handoff = next_handoff(private_settings)
    assert handoff is not None
    delivered = {"status": CallbackStatus.DELIVERED, "attempts": 1, "failures": 0}
    stale = on_queue(private_settings, lambda queue: queue.settle(ref, delivered, None, handoff.lease - 1))
    assert stale is False
    assert on_queue(private_settings, lambda queue: queue.settle(ref, delivered, None, handoff.lease)) is True
    record = persistence.get_task(ref)
    assert record is not None and record["callback"]["status"] == "delivered"
    assert persistence.redis_client.zscore(CallbackOutbox(persistence).due_key, ref) is None


def test_a_claim_drops_members_that_owe_nothing(private_settings: Settings, persistence: TaskPersistence) -> None:
    outbox = CallbackOutbox(persistence)
    expired, delivered, owed = accepted(persistence), accepted(persistence), accepted(persistence)
    for ref in (expired, delivered, owed):
        outbox.end_task(ref, Outcome(TaskStatus.SUCCEEDED))
    persistence.delete_task(expired)  # its record expired
    persistence.redis_client.hset(persistence._build_key(delivered), "callback", json.dumps({"status": "delivered"}))
    later = time.time() + claim_lease_s(private_settings.callback) + 1
    claimed = on_queue(private_settings, lambda queue: queue.claim_due(later, 30, 10))
    assert [c.task_id for c in claimed] == [owed]
    assert set(persistence.redis_client.zrange(outbox.due_key, 0, -1)) == {owed}


def handed_off_and_delivered(settings: Settings, receiver: CallbackReceiver, lease_s: float, path: str) -> int:
    """End a task whose hand-off carries a lease of `lease_s` from now, run a delivery service until
    its callback arrived and long enough after for a duplicate; how many times it was sent."""
    client_id = str(uuid.uuid4())

    async def scenario() -> None:
        stop = asyncio.Event()
        service = asyncio.create_task(DeliveryService(settings).run(stop))
        await asyncio.to_thread(receiver.wait_for, client_id, 1, 20.0)
        await asyncio.sleep(2.5)  # two looks for due callbacks, at least
        stop.set()
        await service

    with TaskPersistence(settings) as persistence:
        outbox = CallbackOutbox(persistence)
        outbox.lease_s = lease_s
        ref = accepted(persistence, client_id, url=receiver.url(path))
        outbox.end_task(ref, Outcome(TaskStatus.SUCCEEDED, data=RESULT))
        asyncio.run(scenario())
        record = persistence.get_task(ref)
    assert record is not None and record["callback"]["status"] == "delivered"
    return sum(f'"taskId":"{client_id}"'.encode() in body for body in receiver.arrived)


@pytest.fixture
def slow_receiver_settings(private_settings: Settings) -> Settings:
    """Attempts may take 15 s: a claim lasts 25 s, and a hand-off is sent on only with 20 s of it left."""
    return settings_from_mapping(
        private_settings.model_dump(mode="json")
        | {"callback": private_settings.callback.model_dump(mode="json") | {"timeout": 5.0}}
    )


def test_a_hand_off_that_waited_is_renewed_before_it_is_sent(
    slow_receiver_settings: Settings, receiver: CallbackReceiver
) -> None:
    receiver.replies["/slow"] = Reply(200, delay_s=3.0)  # longer than the 2 s of claim left
    # Sent on the old claim, the attempt would have outlived it and been claimed and sent again.
    assert handed_off_and_delivered(slow_receiver_settings, receiver, lease_s=2.0, path="/slow") == 1


def test_a_hand_off_whose_claim_lapsed_and_was_claimed_again_is_not_sent_twice(
    private_settings: Settings, receiver: CallbackReceiver
) -> None:
    # Its taker died a minute ago: the first look for due callbacks claims it, and the hand-off
    # still on the list must then be dropped, not sent as well.
    assert handed_off_and_delivered(private_settings, receiver, lease_s=-60.0, path="/callback") == 1


def test_a_task_without_a_callback_url_owes_no_callback(
    private_settings: Settings, persistence: TaskPersistence
) -> None:
    ref = "clinic:no-url"
    assert persistence.claim_task(ref, {"taskId": "no-url", "taskType": "pano", "status": "queued", "attempts": 0})
    assert CallbackOutbox(persistence).end_task(ref, Outcome(TaskStatus.SUCCEEDED))
    assert persistence.redis_client.zscore(CallbackOutbox(persistence).due_key, ref) is None
    assert next_handoff(private_settings) is None


def test_the_hand_off_list_keeps_the_newest_and_the_dropped_are_still_owed(
    private_settings: Settings, persistence: TaskPersistence
) -> None:
    outbox = CallbackOutbox(persistence)
    refs = [accepted(persistence) for _ in range(MAX_HANDOFFS + 2)]
    for ref in refs:
        outbox.end_task(ref, Outcome(TaskStatus.SUCCEEDED))
    assert persistence.redis_client.llen(outbox.handoff_key) == MAX_HANDOFFS
    oldest_kept = next_handoff(private_settings)
    assert oldest_kept is not None and oldest_kept.task_id == refs[2]
    # The two dropped ones are claimed like any other once their lease lapses (theirs lapse first).
    later = time.time() + claim_lease_s(private_settings.callback) + 1
    claimed = on_queue(private_settings, lambda queue: queue.claim_due(later, 30, 2))
    assert [c.task_id for c in claimed] == refs[:2]
