"""One queue per task type: a worker serves only the queues it was started for, and several share one."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from server.embedded_redis import EmbeddedRedis
from tests.conftest import new_stack
from tests.support.images import sample_dicom_bytes
from tests.support.receiver import CallbackReceiver
from tests.support.stack import Stack


@pytest.fixture
def routed(redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = new_stack(redis_server, tmp_path_factory, XRAY__PIPELINES__MOCK_DELAY_S="0.2")
    stack.start_api()
    stack.start_delivery()
    yield stack
    stack.stop()


def test_a_ceph_task_is_never_taken_by_a_pano_only_worker(routed: Stack, receiver: CallbackReceiver) -> None:
    routed.start_worker("pano-worker", "--queues", "pano")
    ceph_id = routed.submit(receiver.url(), "ceph", ("c.dcm", sample_dicom_bytes()))
    pano_ids = [routed.submit(receiver.url(), "pano") for _ in range(3)]
    for pano_id in pano_ids:
        assert receiver.wait_for(pano_id)[0].json["status"] == "succeeded"
    time.sleep(1.0)  # the pano worker is idle now; it would have taken the ceph message by now
    assert routed.view(ceph_id)["status"] == "queued"
    assert routed.queued_messages()["ceph"] == 1
    assert ceph_id not in routed.log("pano-worker")
    routed.start_worker("ceph-worker", "--queues", "ceph")
    assert receiver.wait_for(ceph_id)[0].json["status"] == "succeeded"
    assert ceph_id in routed.log("ceph-worker")


def test_several_workers_share_one_queue_without_duplicate_results(routed: Stack, receiver: CallbackReceiver) -> None:
    routed.start_worker("first", "--queues", "pano")
    routed.start_worker("second", "--queues", "pano")
    task_ids = [routed.submit(receiver.url(), "pano") for _ in range(16)]
    for task_id in task_ids:
        receiver.wait_for(task_id)
    time.sleep(0.5)  # a duplicate would arrive now
    assert all(len(receiver.for_task(task_id)) == 1 for task_id in task_ids)
    assert all(routed.record(task_id)["attempts"] == 1 for task_id in task_ids)
    ran_in = {name: sum(task_id in routed.log(name) for task_id in task_ids) for name in ("first", "second")}
    assert sum(ran_in.values()) == len(task_ids)
    assert min(ran_in.values()) > 0, ran_in  # 16 tasks of 0.2 s on 2 × 2 slots: both workers take some
