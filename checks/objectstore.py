"""The target's bucket through boto3's S3 client: one attempt per call, bounded by the probe timeout.

S3, GCS (S3 interoperability API) and S3-compatible stores (MinIO, Ceph) all answer here. Writes
happen only in the opt-in throughput probe, and only under a prefix of lsready's own.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlsplit

from checks.config import BlobConfig

PROBE_PREFIX = "lsready-probe/"


class ObjectStore:
    """A small wrapper over an S3 client for one bucket."""

    def __init__(self, cfg: BlobConfig, timeout_s: float) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = cfg.bucket
        self.throughput_probe = cfg.throughput_probe
        # Custom endpoints (MinIO, moto, an IP) rarely serve virtual-hosted bucket names.
        host = (urlsplit(cfg.endpoint_url).hostname or "") if cfg.endpoint_url else "s3.amazonaws.com"
        style = "auto" if host.endswith("amazonaws.com") else "path"
        self.client = boto3.session.Session().client(
            "s3",
            endpoint_url=cfg.endpoint_url,
            region_name=cfg.region,
            aws_access_key_id=cfg.access_key_id,
            aws_secret_access_key=cfg.secret_access_key,
            config=Config(
                connect_timeout=timeout_s,
                read_timeout=timeout_s,
                retries={"max_attempts": 1},
                s3={"addressing_style": style},
            ),
        )

    @property
    def endpoint_url(self) -> str:
        """The endpoint the client really talks to (the regional default when none is configured)."""
        return str(self.client.meta.endpoint_url)

    def head_bucket(self) -> dict[str, Any]:
        return self.client.head_bucket(Bucket=self.bucket)

    def lifecycle_rules(self) -> list[dict[str, Any]]:
        """The bucket's lifecycle rules; a bucket without a lifecycle configuration has none."""
        from botocore.exceptions import ClientError

        try:
            return list(self.client.get_bucket_lifecycle_configuration(Bucket=self.bucket)["Rules"])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "NoSuchLifecycleConfiguration":
                return []
            raise

    def new_probe_prefix(self) -> str:
        """A fresh prefix under lsready's own, for one throughput run."""
        return f"{PROBE_PREFIX}{uuid.uuid4()}/"

    def put(self, key: str, body: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=_own(key), Body=body)

    def get(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=_own(key))["Body"].read()

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=_own(key))


def _own(key: str) -> str:
    # lsready must never touch LangSmith's objects (ttl_s/, ttl_l/ ...): refuse any other key.
    if not key.startswith(PROBE_PREFIX):
        raise ValueError(f"lsready only writes under {PROBE_PREFIX}, not {key!r}")
    return key


def open_objectstore(cfg: BlobConfig, timeout_s: float) -> ObjectStore:
    """An ObjectStore for the configured bucket; nothing is sent until a probe asks."""
    return ObjectStore(cfg, timeout_s)
