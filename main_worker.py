"""Start a Celery worker: `python main_worker.py [--queues pano,ceph] [--concurrency N]`."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys

from server.logsetup import configure_logging
from server.settings import TASK_TYPES, startup_settings


def main(argv: list[str] | None = None) -> int:
    # SIGTERM (what orchestrators send) becomes Celery's soft-then-cold shutdown: running tasks get
    # worker.shutdown_grace_s to finish, then their messages go back to the queue at once instead
    # of after the broker's visibility timeout. Read by billiard when Celery is imported, so here.
    os.environ.setdefault("REMAP_SIGTERM", "SIGQUIT")
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--queues", help=f"comma-separated queues to consume (default: worker.queues; known: {', '.join(TASK_TYPES)})"
    )
    parser.add_argument("--concurrency", type=int, help="pool processes (default: worker.concurrency)")
    args = parser.parse_args(argv)
    if args.queues:
        # Through the configuration, so every pool process loads just these queues' pipelines.
        os.environ["XRAY__WORKER__QUEUES"] = json.dumps(args.queues.split(","))
    settings = startup_settings()
    queues = list(settings.worker.queues)
    from server.metrics_dir import use_process_group

    use_process_group("worker")  # before Celery imports the tasks, and so the metrics
    configure_logging(settings.worker.loglevel, settings.app.log_format)

    from server.worker import celery_app

    celery_app.worker_main(
        [
            "worker",
            f"--loglevel={settings.worker.loglevel.upper()}",
            f"--concurrency={args.concurrency or settings.worker.concurrency}",
            f"--queues={','.join(queues)}",
            "--pool=solo" if os.name == "nt" else "--pool=prefork",
            # Unique per start: a restarted worker (same PID 1 in a container, same host name) must
            # not inherit the identity, and so the heartbeat, of the one that died.
            f"--hostname=xray-{os.getpid()}-{secrets.token_hex(4)}@%h",
            # Mingle and gossip cost a second of start-up and chatter; nothing here relies on them.
            "--without-mingle",
            "--without-gossip",
        ]
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
