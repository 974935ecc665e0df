"""Settings: each field's env var and its one default; conversion by the field's type."""

from mpr_api.settings import ApiSettings
from mpr_catalog.settings import CatalogSettings
from mpr_common.settings import JobQueueSettings, S3Settings
from mpr_transcoder.settings import TranscoderSettings


def test_defaults_come_from_the_declaration():
    assert ApiSettings.from_env({}) == ApiSettings()
    t = TranscoderSettings.from_env({"MPR_INSTANCE": "w1"})
    assert (t.workdir, t.concurrency, t.instance) == ("/tmp/mpr-transcoder", 1, "w1")
    assert JobQueueSettings.from_env({}) == JobQueueSettings(ack_wait=30.0, max_deliver=5)


def test_values_are_converted_by_type():
    a = ApiSettings.from_env(
        {
            "API_PORT": "9",
            "API_TOKENS": " a, b ,,",
            "API_PUBLIC_MEDIA": "false",
            "API_REQUEST_TIMEOUT": "2.5",
            "S3_ENDPOINT_URL": "",
            "NATS_URL": "nats://n1:4222,nats://n2:4222",
        }
    )
    assert (a.port, a.tokens, a.public_media, a.request_timeout) == (9, frozenset({"a", "b"}), False, 2.5)
    assert a.s3.endpoint_url is None and a.nats.connect_options("x")["servers"] == [
        "nats://n1:4222",
        "nats://n2:4222",
    ]
    assert CatalogSettings.from_env({"CATALOG_MIGRATE": "no"}).migrate is False


def test_the_first_of_several_names_wins():
    assert S3Settings.from_env({"AWS_DEFAULT_REGION": "eu-west-1"}).region == "eu-west-1"
    assert (
        S3Settings.from_env({"AWS_REGION": "us-east-2", "AWS_DEFAULT_REGION": "eu-west-1"}).region
        == "us-east-2"
    )
