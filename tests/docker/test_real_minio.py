"""Real MinIO publishing real bucket notifications into NATS JetStream (testcontainers).

Needs a Docker engine: skipped cleanly without one. The same path is covered without Docker by
tests/system/test_events_and_modes.py (notifications injected in MinIO's format) and
tests/unit/scanner/test_minio_events.py.
"""

from __future__ import annotations

import asyncio
import json

import pytest

pytestmark = pytest.mark.docker


def docker_available() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True
    except Exception:
        return False


if not docker_available():
    pytest.skip("no Docker engine: testcontainers tests skipped", allow_module_level=True)

from testcontainers.core.container import DockerContainer  # noqa: E402
from testcontainers.core.network import Network  # noqa: E402
from testcontainers.core.waiting_utils import wait_for_logs  # noqa: E402

from mpr_common import subjects as s  # noqa: E402
from mpr_common.streams import ensure_streams  # noqa: E402
from mpr_scanner.minio_events import translate  # noqa: E402


def test_minio_notification_reaches_jetstream_and_translates(tmp_path):
    import boto3
    import nats

    with Network() as net:
        with (
            DockerContainer("nats:2.10-alpine")
            .with_command("-js")
            .with_network(net)
            .with_network_aliases("nats")
            .with_exposed_ports(4222) as nats_c
        ):
            wait_for_logs(nats_c, "Server is ready")
            nats_url = f"nats://{nats_c.get_container_host_ip()}:{nats_c.get_exposed_port(4222)}"

            async def setup():
                nc = await nats.connect(nats_url)
                await ensure_streams(nc.jetstream())
                await nc.close()

            asyncio.run(setup())
            minio = (
                DockerContainer("minio/minio:RELEASE.2025-04-22T22-12-26Z")
                .with_command("server /data")
                .with_network(net)
                .with_exposed_ports(9000)
                .with_env("MINIO_NOTIFY_NATS_ENABLE_PRIMARY", "on")
                .with_env("MINIO_NOTIFY_NATS_ADDRESS_PRIMARY", "nats:4222")
                .with_env("MINIO_NOTIFY_NATS_SUBJECT_PRIMARY", s.MINIO_EVENTS)
                .with_env("MINIO_NOTIFY_NATS_JETSTREAM_PRIMARY", "on")
            )
            with minio as m:
                wait_for_logs(m, "API:")
                endpoint = f"http://{m.get_container_host_ip()}:{m.get_exposed_port(9000)}"
                s3 = boto3.client(
                    "s3",
                    endpoint_url=endpoint,
                    aws_access_key_id="minioadmin",
                    aws_secret_access_key="minioadmin",
                    region_name="us-east-1",
                )
                s3.create_bucket(Bucket="mpr-media-in")
                s3.put_bucket_notification_configuration(
                    Bucket="mpr-media-in",
                    NotificationConfiguration={
                        "QueueConfigurations": [
                            {"QueueArn": "arn:minio:sqs::PRIMARY:nats", "Events": ["s3:ObjectCreated:*"]}
                        ]
                    },
                )
                s3.put_object(Bucket="mpr-media-in", Key="sub dir/my video.mp4", Body=b"x")

                async def read():
                    nc = await nats.connect(nats_url)
                    sub = await nc.jetstream().pull_subscribe(s.MINIO_EVENTS, stream=s.MINIO_STREAM)
                    msgs = await sub.fetch(1, timeout=20)
                    await nc.close()
                    return msgs[0].data

                payload = asyncio.run(read())
                assert json.loads(payload)["Records"]
                (ev,) = translate(payload, "mpr-media-in")
                assert ev.key == "sub dir/my video.mp4" and ev.source == "notification"
