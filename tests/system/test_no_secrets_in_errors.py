"""No presigned URL or credential in an error, a log line or an event: FFmpeg's and ffprobe's stderr name
the source by its object key, and what is left of any other URL has no query string. Real FFmpeg and
ffprobe failures on presigned URLs of moto's S3 server, signed with a recognisable access key id."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from mpr_catalog.models import Asset
from mpr_catalog.prober import Prober
from mpr_common import storage
from mpr_common.events import PROBE_VERSION, JobRequested, MediaInfo
from mpr_common.mediainfo import ProbeError, probe, redact
from mpr_common.settings import S3Settings
from mpr_devstack.servers import MotoServer, free_port
from mpr_transcoder.ffmpeg import FfmpegError, run_ffmpeg
from mpr_transcoder.pipeline import JobError, run_job

pytestmark = pytest.mark.system

KEY_ID = "AKIASENTINELKEY12345"  # the shape of an AWS access key id
SECRET = "sentinel/Secret+Key/0123456789abcdefghij"
BAD = "in dir/bad clip é.mp4"  # a key that needs URL-encoding
# Anything that would give away a presigned URL or a credential.
FORBIDDEN = (KEY_ID, "X-Amz", "Signature", "Credential", "%2F", "?")

PRESIGNED = (
    "http://127.0.0.1:9000/mpr-media-in/a%20b.mp4?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    f"&X-Amz-Credential={KEY_ID}%2F20260101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20260101T000000Z"
    "&X-Amz-Expires=21600&X-Amz-SignedHeaders=host&X-Amz-Signature=0123456789abcdef"
)


def assert_clean(text: str) -> None:
    for bad in FORBIDDEN:
        assert bad not in text, f"{bad!r} in {text!r}"


# Below WARNING these libraries log signed requests; services cap them at WARNING (mpr_common.logs).
QUIET = ("botocore", "boto3", "urllib3", "s3transfer")


def log_text(caplog: pytest.LogCaptureFixture) -> str:
    fmt = logging.Formatter()
    return "\n".join(
        r.getMessage() + (fmt.formatException(r.exc_info) if r.exc_info else "")
        for r in caplog.records
        if r.levelno >= logging.WARNING or not r.name.startswith(QUIET)
    )


# --- the redaction -----------------------------------------------------------------------------


def test_a_presigned_url_becomes_its_object_key():
    line = f"{PRESIGNED}: Invalid data found when processing input"
    assert redact(line, {PRESIGNED: "a b.mp4"}) == "a b.mp4: Invalid data found when processing input"


def test_an_unknown_url_loses_its_query_and_user_info():
    assert redact(f"{PRESIGNED}: Server returned 403 Forbidden (access denied)") == (
        "http://127.0.0.1:9000/mpr-media-in/a%20b.mp4: Server returned 403 Forbidden (access denied)"
    )
    assert redact('URL: "https://user:pw@s3.example.com/b/k.mp4?AWSAccessKeyId=AKIAX&Signature=s#f", ok') == (
        'URL: "https://s3.example.com/b/k.mp4", ok'
    )
    # Plain URLs and FFmpeg's tcp:// lines are kept as they are.
    assert redact("Connection to tcp://127.0.0.1:9000 failed: Connection refused") == (
        "Connection to tcp://127.0.0.1:9000 failed: Connection refused"
    )


def test_credentials_outside_a_url_are_removed():
    # e.g. a URL cut in two by a line break, or quoted in pieces
    text = f"... &X-Amz-Credential={KEY_ID}%2F2026&X-Amz-Signature=abc and x-amz-security-token=T0K3N"
    out = redact(text)
    assert_clean(out)
    assert "T0K3N" not in out
    assert redact(f"key id {KEY_ID} leaked") == "key id <access key id> leaked"


def test_redaction_keeps_ordinary_text():
    for text in ("moov atom not found", "Invalid data found when processing input", "a:b c?d", ""):
        assert redact(text) == text


# --- real failures on presigned URLs --------------------------------------------------------------


@pytest.fixture(scope="module")
def moto():
    server = MotoServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def s3_settings(moto):
    settings = S3Settings(
        endpoint_url=moto.url,
        bucket_in="sec-in",
        bucket_out="sec-out",
        access_key_id=KEY_ID,
        secret_access_key=SECRET,
    )
    client = storage.get_s3_client(settings)
    storage.ensure_buckets(client, "sec-in", "sec-out")
    client.put_object(Bucket="sec-in", Key=BAD, Body=b"\x00" * 4096)
    return settings


@pytest.fixture
def s3(s3_settings):
    return storage.get_s3_client(s3_settings)


def presigned(s3, key: str) -> str:
    url = storage.get_presigned_url(key, "sec-in", 3600, client=s3)
    assert KEY_ID in url and "X-Amz-Signature" in url
    return url


async def test_ffmpeg_failure_names_the_key_not_the_presigned_url(s3, s3_settings, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)

    async def known(bucket: str, key: str, etag: str) -> MediaInfo:  # probe passed: FFmpeg itself fails
        return MediaInfo(
            duration=10.0,
            video_codec="h264",
            width=320,
            height=240,
            audio_codec="aac",
            probe_version=PROBE_VERSION,
        )

    with pytest.raises(JobError) as err:
        await run_job(
            JobRequested(job_id="sec-ffmpeg", kind="transcode", source_key=BAD, output_key="o/sec.mp4"),
            s3=s3,
            s3_settings=s3_settings,
            workdir=tmp_path,
            on_progress=lambda pct, rep: None,
            known_info=known,
        )
    message = str(err.value)
    assert err.value.reason == "ffmpeg" and "Invalid data found" in message, message
    assert f"{BAD}: Invalid data found" in message  # the object's key where FFmpeg printed the URL
    assert_clean(message)
    assert_clean(log_text(caplog))


async def test_ffprobe_failure_names_the_key_not_the_presigned_url(s3, s3_settings, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    with pytest.raises(JobError) as err:
        await run_job(
            JobRequested(job_id="sec-probe", kind="transcode", source_key=BAD, output_key="o/sec2.mp4"),
            s3=s3,
            s3_settings=s3_settings,
            workdir=tmp_path,
            on_progress=lambda pct, rep: None,
        )
    message = str(err.value)
    assert err.value.reason == "source" and message.startswith("source is not readable media: "), message
    assert BAD in message
    assert_clean(message)
    assert_clean(log_text(caplog))


async def test_runner_stderr_tail_is_redacted(s3, tmp_path):
    url = presigned(s3, "missing/none.mp4")
    args = ["ffmpeg", "-nostdin", "-v", "error", "-i", url, "-f", "null", "-"]
    with pytest.raises(FfmpegError) as err:
        await run_ffmpeg(args, lambda r: None, timeout=30, names={url: "missing/none.mp4"})
    assert "missing/none.mp4: Server returned 404 Not Found" in err.value.tail
    assert_clean(str(err.value) + err.value.tail)
    # Without a name for the URL: still no query string, no credential.
    with pytest.raises(FfmpegError) as err:
        await run_ffmpeg(args, lambda r: None, timeout=30)
    assert "Server returned 404" in err.value.tail
    assert_clean(str(err.value) + err.value.tail)


async def test_probe_error_is_redacted(s3):
    url = presigned(s3, BAD)
    with pytest.raises(ProbeError) as err:
        await probe(url, timeout=30, name=BAD)
    assert str(err.value) == f"{BAD}: Invalid data found when processing input"
    with pytest.raises(ProbeError) as err:
        await probe(url, timeout=30)
    assert "Invalid data found" in str(err.value)
    assert_clean(str(err.value))


async def test_catalog_probe_error_and_logs_carry_no_credential(s3, caplog):
    caplog.set_level(logging.DEBUG)
    done: list = []

    async def on_done(asset, info, error):
        done.append(error)

    prober = Prober(s3, on_done, concurrency=1, timeout=10)
    asset = Asset(id="e" * 32, bucket="sec-in", key=BAD, etag="e", size=4096)
    info, error = await prober.probe(asset)
    assert info is None and error and "Invalid data found" in error
    assert_clean(error)

    # S3 unreachable: the probe is deferred, and the log line says why without the URL.
    gone = storage.get_s3_client(
        S3Settings(
            endpoint_url=f"http://127.0.0.1:{free_port()}", access_key_id=KEY_ID, secret_access_key=SECRET
        )
    )
    prober = Prober(gone, on_done, concurrency=1, timeout=10, retry_delay=30)
    prober.start()
    prober.submit(asset)
    for _ in range(200):
        if any("probe deferred" in r.getMessage() for r in caplog.records):
            break
        await asyncio.sleep(0.05)
    await prober.stop()
    assert "probe deferred" in log_text(caplog) and done == []
    assert_clean(log_text(caplog))


async def test_storage_errors_carry_no_credential(s3_settings, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    gone = S3Settings(
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        bucket_in="sec-in",
        bucket_out="sec-out",
        access_key_id=KEY_ID,
        secret_access_key=SECRET,
    )
    client = storage.get_s3_client(gone)
    with pytest.raises(JobError) as err:
        await run_job(
            JobRequested(job_id="sec-s3", kind="transcode", source_key="a.mp4", output_key="o/a.mp4"),
            s3=client,
            s3_settings=gone,
            workdir=Path(tmp_path),
            on_progress=lambda pct, rep: None,
        )
    assert err.value.reason == "storage" and err.value.retryable
    assert_clean(str(err.value))
    assert_clean(log_text(caplog))
