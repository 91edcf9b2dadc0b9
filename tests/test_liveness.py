"""The reaper: tasks whose worker stopped beating are handed out again, once, with their image key.

On the conftest's private key prefix: reaping scans the whole running set, which other tests also fill."""

from __future__ import annotations

from server.core.liveness import Liveness
from server.core.persistence import TaskPersistence
from server.core.storage import new_key


def running(persistence: TaskPersistence, task_id: str, owner: str, **fields: object) -> None:
    assert persistence.claim_task(task_id, {"status": "queued", "attempts": 0, **fields})
    assert persistence.start_attempt(task_id, {"status": "processing", "owner": owner}) is not None


def test_tasks_of_a_dead_worker_are_handed_out_once(persistence: TaskPersistence) -> None:
    reaper = Liveness(persistence, "alive@host", ("pano", "ceph"))
    reaper.beat()
    image_key = new_key(".jpg")
    running(persistence, "dead-owner", "dead@host", taskType="ceph", imageKey=image_key)
    running(persistence, "seed-style", "dead@host", taskType="pano", imagePath="/data/x.jpg")
    running(persistence, "live-owner", "alive@host", taskType="pano", imageKey=new_key(".png"))
    assert sorted(reaper.orphans()) == [("dead-owner", "ceph", image_key), ("seed-style", "pano", None)]
    assert reaper.orphans() == []  # marked reaped: another reaper does not send them again
    owners = {task_id: (persistence.get_task(task_id) or {}).get("owner") for task_id in ("dead-owner", "live-owner")}
    assert str(owners["dead-owner"]).startswith("reaped@")
    assert owners["live-owner"] == "alive@host"
