"""The S3 storage backend against a real S3-compatible server (moto's) on loopback.

First `S3Storage` on its own, then whole stacks whose API and worker have separate local
directories, so that the broker and the bucket are all they share.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from moto.server import ThreadedMotoServer
from mypy_boto3_s3 import S3Client

from server.core.object_storage import ObjectStoreError, S3Storage, s3_client
from server.core.storage import ImageMissing, make_storage
from server.embedded_redis import EmbeddedRedis, free_port
from server.errors import ErrorCode, StorageUnavailable, UnsupportedImage
from server.settings import S3Settings, settings_from_mapping
from server.upload import UploadedImage
from tests.conftest import new_stack
from tests.support.images import jpeg_bytes, noisy_image_bytes
from tests.support.receiver import CallbackReceiver
from tests.support.stack import Stack, wait_until

# moto accepts any credentials; these keep boto3 from looking for real ones.
ACCESS_KEY_ID = "test-access-key"
SECRET_ACCESS_KEY = "test-secret-key"  # noqa: S105 - a fake for a fake server
TRUNCATED_JPEG = noisy_image_bytes("JPEG")[:-2000]


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server in a thread of this process, on a free loopback port."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def s3_settings(endpoint: str, bucket: str, **overrides: object) -> S3Settings:
    values: dict[str, object] = {
        "bucket": bucket,
        "endpoint_url": endpoint,
        "access_key_id": ACCESS_KEY_ID,
        "secret_access_key": SECRET_ACCESS_KEY,
        "addressing_style": "path",  # a loopback IP has no bucket subdomains
        "connect_timeout_s": 2,
        "read_timeout_s": 10,
        "max_attempts": 1,  # a refused connection fails at once instead of after retries
    }
    return S3Settings.model_validate(values | overrides)


def s3_environment(endpoint: str, bucket: str) -> dict[str, str]:
    """The same settings as `XRAY__…` variables, for service processes."""
    return {
        "XRAY__STORAGE__BACKEND": "s3",
        "XRAY__STORAGE__S3__BUCKET": bucket,
        "XRAY__STORAGE__S3__ENDPOINT_URL": endpoint,
        "XRAY__STORAGE__S3__ACCESS_KEY_ID": ACCESS_KEY_ID,
        "XRAY__STORAGE__S3__SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
        "XRAY__STORAGE__S3__ADDRESSING_STYLE": "path",
        "XRAY__STORAGE__S3__MAX_ATTEMPTS": "1",
    }


@pytest.fixture(scope="module")
def admin(s3_endpoint: str) -> Iterator[S3Client]:
    """A client of the test's own, to look into buckets behind the service's back."""
    client = s3_client(s3_settings(s3_endpoint, "unused"))
    yield client
    client.close()


@pytest.fixture
def bucket(admin: S3Client) -> str:
    """A new, empty bucket per test, so that counting objects needs no cleanup."""
    name = f"xray-{uuid.uuid4().hex[:16]}"
    admin.create_bucket(Bucket=name)
    return name


@pytest.fixture
def storage(s3_endpoint: str, bucket: str, tmp_path: Path) -> Iterator[S3Storage]:
    storage = S3Storage(s3_settings(s3_endpoint, bucket), tmp_path / "staging")
    yield storage
    storage.client.close()


def objects(admin: S3Client, bucket: str) -> list[str]:
    return sorted(item["Key"] for item in admin.list_objects_v2(Bucket=bucket).get("Contents", []))


def files_in(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file()) if directory.exists() else []


# --- S3Storage on its own ---------------------------------------------------------------------


def test_stage_commit_read_delete_round_trip(storage: S3Storage, admin: S3Client, bucket: str) -> None:
    image = jpeg_bytes()
    key = storage.new_key(".jpg")
    staged = storage.stage(key)
    staged.write(image[:100])
    staged.write(image[100:])
    staged.flush()
    assert staged.path.read_bytes() == image  # the API's checks read the local staging file
    assert not storage.exists(key), "visible before commit"
    staged.commit()
    assert files_in(storage.staging_dir) == []
    assert objects(admin, bucket) == [f"images/{key}"]
    assert storage.exists(key)
    assert storage.read_bytes(key) == image
    assert storage.delete(key)
    assert objects(admin, bucket) == []
    assert not storage.exists(key)


def test_a_missing_object_is_image_missing(storage: S3Storage) -> None:
    with pytest.raises(ImageMissing):
        storage.read_bytes(storage.new_key(".png"))
    storage.delete(storage.new_key(".png"))  # deleting what is not there is no error


def test_other_store_errors_are_os_errors_not_image_missing(s3_endpoint: str, tmp_path: Path) -> None:
    storage = S3Storage(s3_settings(s3_endpoint, "no-such-bucket"), tmp_path)
    with pytest.raises(ObjectStoreError, match="NoSuchBucket"):
        storage.read_bytes(storage.new_key(".jpg"))
    storage.client.close()


def test_keys_that_the_service_did_not_make_are_refused(storage: S3Storage) -> None:
    for key in ("../etc/passwd.jpg", "x.jpg", f"{uuid.uuid4().hex}.jpg/../other"):
        with pytest.raises(ValueError, match="not a storage key"):
            storage.read_bytes(key)


def test_commit_while_the_store_is_down_is_storage_unavailable(bucket: str, tmp_path: Path) -> None:
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    storage = S3Storage(s3_settings(down, bucket), tmp_path)
    image = UploadedImage(storage, storage.new_key(".jpg"), ".jpg", "x.jpg")
    image.keep(memoryview(jpeg_bytes()))
    started = time.monotonic()
    with pytest.raises(OSError) as raised:  # what the submitter turns into StorageUnavailable
        image.commit()
    assert time.monotonic() - started < 5
    assert isinstance(raised.value, ObjectStoreError)
    error = StorageUnavailable(raised.value)
    assert (error.status_code, error.code) == (503, ErrorCode.DEPENDENCY_UNAVAILABLE)
    assert "unreachable" in (error.detail or "")
    assert "127.0.0.1" not in (error.detail or ""), "the endpoint leaked to the client"
    image.discard()
    assert files_in(tmp_path) == []
    storage.client.close()


def test_discard_leaves_nothing_locally_or_remotely(storage: S3Storage, admin: S3Client, bucket: str) -> None:
    staged_only = UploadedImage(storage, storage.new_key(".jpg"), ".jpg", "a.jpg")
    staged_only.keep(memoryview(jpeg_bytes()))
    staged_only.flush()
    assert len(files_in(storage.staging_dir)) == 1
    staged_only.discard()
    committed = UploadedImage(storage, storage.new_key(".jpg"), ".jpg", "b.jpg")
    committed.keep(memoryview(jpeg_bytes()))
    committed.commit()
    assert objects(admin, bucket) == [f"images/{committed.key}"]
    committed.discard()  # as after a commit when Redis or the broker then fails
    assert files_in(storage.staging_dir) == []
    assert objects(admin, bucket) == []


def test_a_refused_image_never_reaches_the_bucket(storage: S3Storage, admin: S3Client, bucket: str) -> None:
    image = UploadedImage(storage, storage.new_key(".jpg"), ".jpg", "cut.jpg")
    image.keep(memoryview(TRUNCATED_JPEG))
    with pytest.raises(UnsupportedImage):
        image.commit()
    image.discard()
    assert files_in(storage.staging_dir) == []
    assert objects(admin, bucket) == []


def test_sweep_removes_only_old_staging_files(storage: S3Storage) -> None:
    old = storage.stage(storage.new_key(".jpg"))
    fresh = storage.stage(storage.new_key(".jpg"))
    hour_ago = time.time() - 3600
    os.utime(old.path, (hour_ago, hour_ago))
    assert storage.sweep_staged(60) == 1
    assert files_in(storage.staging_dir) == [fresh.path]
    fresh.discard()
    old.discard()


def test_the_configured_backend_is_built(s3_endpoint: str, bucket: str, tmp_path: Path) -> None:
    local = settings_from_mapping({"api": {"upload_dir": str(tmp_path / "local")}})
    assert type(make_storage(local)).__name__ == "LocalStorage"
    s3 = s3_settings(s3_endpoint, bucket).model_dump()
    s3.update(access_key_id=ACCESS_KEY_ID, secret_access_key=SECRET_ACCESS_KEY)
    configured = {"api": {"upload_dir": str(tmp_path / "s3")}, "storage": {"backend": "s3", "s3": s3}}
    storage = make_storage(settings_from_mapping(configured))
    assert isinstance(storage, S3Storage)
    assert storage.root == f"s3://{bucket}/images/"
    assert not (tmp_path / "s3").exists()  # created on the first upload only: a worker needs no directory
    storage.client.close()


# --- Whole stacks: API and worker share the broker and the bucket only ------------------------


def s3_stack(
    redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory, endpoint: str, bucket: str, **env: str
) -> tuple[Stack, Path, Path]:
    """A stack with its API running on directory A; the worker, once started, gets directory B."""
    api_dir = tmp_path_factory.mktemp("api-machine")
    worker_dir = tmp_path_factory.mktemp("worker-machine") / "uploads"
    stack = new_stack(
        redis_server, tmp_path_factory, XRAY__API__UPLOAD_DIR=str(api_dir), **s3_environment(endpoint, bucket), **env
    )
    stack.start_api()
    stack.settings["XRAY__API__UPLOAD_DIR"] = str(worker_dir)  # what start_worker() passes on
    return stack, api_dir, worker_dir


def test_api_stores_worker_reads_and_the_object_is_deleted_at_the_end(
    redis_server: EmbeddedRedis,
    tmp_path_factory: pytest.TempPathFactory,
    s3_endpoint: str,
    bucket: str,
    admin: S3Client,
    receiver: CallbackReceiver,
) -> None:
    stack, api_dir, worker_dir = s3_stack(redis_server, tmp_path_factory, s3_endpoint, bucket)
    try:
        assert f"storage s3://{bucket}/images/" in stack.log("api")
        refused = stack.post_analyze(
            {"taskId": str(uuid.uuid4()), "taskType": "pano", "callbackUrl": receiver.url()},
            ("cut.jpg", TRUNCATED_JPEG),
        )
        assert (refused.status_code, refused.json()["code"]) == (400, ErrorCode.UNSUPPORTED_IMAGE)
        assert objects(admin, bucket) == []

        task_id = stack.submit(receiver.url())  # no worker yet: the task waits in the queue
        key = stack.record(task_id)["imageKey"]
        assert objects(admin, bucket) == [f"images/{key}"]
        assert files_in(api_dir) == []  # the staging file went with the commit

        stack.start_worker()
        stack.start_delivery()
        payload = receiver.wait_for(task_id)[0].json
        assert (payload["status"], payload["error"]) == ("succeeded", None)
        assert payload["data"]["image"]["sizeBytes"] == len(jpeg_bytes())  # the bytes came from the bucket
        wait_until(lambda: objects(admin, bucket) == [])
        assert files_in(worker_dir) == []
        assert files_in(api_dir) == []
    finally:
        stack.stop()


def test_keep_images_leaves_the_object_in_the_bucket(
    redis_server: EmbeddedRedis,
    tmp_path_factory: pytest.TempPathFactory,
    s3_endpoint: str,
    bucket: str,
    admin: S3Client,
    receiver: CallbackReceiver,
) -> None:
    stack, _, worker_dir = s3_stack(
        redis_server, tmp_path_factory, s3_endpoint, bucket, XRAY__STORAGE__KEEP_IMAGES="true"
    )
    try:
        stack.start_worker()
        stack.start_delivery()
        task_id = stack.submit(receiver.url())
        assert receiver.wait_for(task_id)[0].json["status"] == "succeeded"
        wait_until(lambda: stack.record(task_id).get("status") == "succeeded")
        assert objects(admin, bucket) == [f"images/{stack.record(task_id)['imageKey']}"]
        assert files_in(worker_dir) == []
    finally:
        stack.stop()


def test_an_unreachable_store_is_503_10007_and_leaves_nothing(
    redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory, receiver: CallbackReceiver
) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    stack, api_dir, _ = s3_stack(redis_server, tmp_path_factory, down, "xray-down")
    try:
        task_id = str(uuid.uuid4())
        response = stack.post_analyze(
            {"taskId": task_id, "taskType": "pano", "callbackUrl": receiver.url()}, ("x.jpg", jpeg_bytes())
        )
        assert response.status_code == 503
        assert response.json()["code"] == ErrorCode.DEPENDENCY_UNAVAILABLE
        assert "Retry-After" in response.headers
        assert down not in response.text
        assert stack.record(task_id) == {}
        assert files_in(api_dir) == []
        assert stack.queued_messages() == {"pano": 0, "ceph": 0}
        # The same task id is free for the retry the 503 asks for.
        assert httpx.get(f"{stack.base_url}/api/v1/task/{task_id}", timeout=10).status_code == 404
    finally:
        stack.stop()
