"""Images in an S3-compatible bucket (AWS S3, MinIO, Ceph RGW, …): `storage.backend: s3`.

The API still stages each upload in a local file (under `api.upload_dir`), so that its checks
run on a file and a refused image never reaches the store; `commit()` uploads the checked file
and removes it. The worker reads and deletes objects only, so API and worker machines share
nothing but the broker and the bucket.

Failures of the store surface as `ObjectStoreError`, an `OSError`, so that callers treat the
bucket exactly like a disk that is full or gone (the API answers 503/10007). A missing object
is `ImageMissing`, as for a missing file.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from server.core.storage import ImageMissing, StagedImage, checked_key, new_key, sweep_staged_files

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from server.settings import S3Settings

logger = logging.getLogger(__name__)

# The API commits from anyio's worker threads (40 by default); with fewer pooled connections,
# urllib3 opens and throws away extra ones under load, warning each time.
MAX_POOL_CONNECTIONS = 40
# One PUT per image up to this size: no parts left behind in the bucket by a process that dies
# mid-upload, and no transfer threads of its own inside the API's worker threads.
MULTIPART_THRESHOLD = 64 * 1024 * 1024
# What S3 and the stores copying it answer for an absent object (GET says NoSuchKey, HEAD only 404).
_MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})


class ObjectStoreError(OSError):
    """The bucket could not be reached or refused the request; the details are in the log.

    Its `strerror` may reach an API client (503/10007), so it names the kind of failure only,
    never the endpoint, bucket or key.
    """


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


@contextmanager
def _store_errors(operation: str, key: str) -> Iterator[None]:
    """Turn whatever boto3 raises for `operation` on `key` into `ObjectStoreError`."""
    try:
        yield
    except ClientError as exc:  # the store answered, with an error (AccessDenied, NoSuchBucket, …)
        code = _error_code(exc) or "error"
        logger.warning("object store: %s %s refused: %s", operation, key, exc)
        raise ObjectStoreError(errno.EIO, f"object store refused {operation}: {code}") from exc
    except (BotoCoreError, Boto3Error) as exc:  # no answer (connection, timeout, credentials), or a wrapped one
        logger.warning("object store: %s %s failed: %s", operation, key, exc)
        answer = exc.__context__  # upload_file wraps the store's ClientError in S3UploadFailedError
        if isinstance(answer, ClientError):
            raise ObjectStoreError(errno.EIO, f"object store refused {operation}: {_error_code(answer)}") from exc
        raise ObjectStoreError(errno.EIO, f"object store unreachable ({type(exc).__name__})") from exc


def s3_client(settings: S3Settings) -> S3Client:
    """A client for the configured store; thread-safe, so one per process serves every thread."""
    config = Config(
        connect_timeout=settings.connect_timeout_s,
        read_timeout=settings.read_timeout_s,
        retries={"max_attempts": settings.max_attempts, "mode": "standard"},
        s3={"addressing_style": settings.addressing_style},
        max_pool_connections=MAX_POOL_CONNECTIONS,
    )
    if settings.endpoint_url is not None:
        # Since botocore 1.36 every upload carries CRC checksum headers that many S3-compatible
        # stores (older MinIO and Ceph, B2, GCS) refuse; send them only where an operation
        # requires them, as botocore did before. AWS itself keeps the default.
        config = config.merge(
            Config(request_checksum_calculation="when_required", response_checksum_validation="when_required")
        )
    key_id, secret = settings.access_key_id, settings.secret_access_key
    # A session of its own: boto3's default session is shared module state and not thread-safe.
    session = boto3.session.Session()
    client: S3Client = session.client(
        "s3",
        endpoint_url=settings.endpoint_url,
        region_name=settings.region,
        aws_access_key_id=key_id.get_secret_value() if key_id else None,
        aws_secret_access_key=secret.get_secret_value() if secret else None,
        config=config,
    )
    return client


class _UploadOnCommit(StagedImage):
    """A local staging file whose commit uploads it, then removes it whether or not that worked."""

    def __init__(self, name_in_staging_dir: Path, upload: Callable[[Path], None]) -> None:
        super().__init__(name_in_staging_dir)  # the bytes go to ".<name>.part" beside it
        self._upload = upload

    def _publish(self) -> None:
        try:
            self._upload(self.path)
        finally:
            self.path.unlink(missing_ok=True)


class S3Storage:
    """One bucket (under a key prefix); staging files in `staging_dir` on this machine."""

    def __init__(self, settings: S3Settings, staging_dir: Path, client: S3Client | None = None) -> None:
        if settings.bucket is None:  # the settings refuse backend s3 without one; this is for direct use
            raise ValueError("S3Storage needs storage.s3.bucket")
        self.bucket = settings.bucket
        self.prefix = settings.prefix
        # Not created here: a worker only reads and deletes objects, and needs no writable directory.
        self.staging_dir = staging_dir.resolve()
        self.client = client or s3_client(settings)
        self._transfer = TransferConfig(multipart_threshold=MULTIPART_THRESHOLD, use_threads=False)

    @property
    def root(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    @staticmethod
    def new_key(extension: str) -> str:
        return new_key(extension)

    def object_key(self, key: str) -> str:
        """The object's key in the bucket: the prefix, then the generated key (never client input)."""
        return self.prefix + checked_key(key)

    def stage(self, key: str) -> StagedImage:
        object_key = self.object_key(key)  # refuses a bad key before a file is opened
        self.staging_dir.mkdir(parents=True, exist_ok=True)
        return _UploadOnCommit(self.staging_dir / key, lambda path: self._upload(path, object_key))

    def _upload(self, path: Path, object_key: str) -> None:
        with _store_errors("upload", object_key):
            self.client.upload_file(str(path), self.bucket, object_key, Config=self._transfer)

    def read_bytes(self, key: str) -> bytes:
        object_key = self.object_key(key)
        with _store_errors("read", object_key):
            try:
                response = self.client.get_object(Bucket=self.bucket, Key=object_key)
            except ClientError as exc:
                if _error_code(exc) in _MISSING_CODES:
                    raise ImageMissing(key) from None
                raise
            data: bytes = response["Body"].read()  # a body cut off midway raises here, within the mapping
        return data

    def exists(self, key: str) -> bool:
        object_key = self.object_key(key)
        with _store_errors("check", object_key):
            try:
                self.client.head_object(Bucket=self.bucket, Key=object_key)
            except ClientError as exc:
                if _error_code(exc) in _MISSING_CODES:
                    return False
                raise
        return True

    def delete(self, key: str) -> bool:
        """Always True once the store accepted it: S3 answers alike whether or not the object existed."""
        object_key = self.object_key(key)
        with _store_errors("delete", object_key):
            self.client.delete_object(Bucket=self.bucket, Key=object_key)
        return True

    def sweep_staged(self, older_than_s: float) -> int:
        return sweep_staged_files(self.staging_dir, older_than_s)
