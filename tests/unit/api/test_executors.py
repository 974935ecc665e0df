"""Executors: the API starts one Step Functions execution per job (moto's Step Functions, the API in
process over a fake NATS), and the state machine in deploy/ runs in moto's ASL interpreter with the
Lambda handler's contract (its result, its crash, the failure report of its Catch)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import msgspec
import pytest
from litestar.testing import TestClient
from moto import mock_aws

from mpr_api.app import services
from mpr_api.jobs import executors
from mpr_api.jobs.service import queued_view
from mpr_api.settings import ApiSettings
from mpr_common import subjects as s
from mpr_common.codec import decode
from mpr_common.events import JobFailed, JobRequested
from mpr_common.settings import S3Settings
from mpr_transcoder import lambda_handler
from tests.fakes import FakeKV, FakeNats
from tests.unit.api.inprocess import serving

ROOT = Path(__file__).resolve().parents[3]
TOKEN = "t0ken"
REGION = "us-east-1"
ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/mpr-stepfunctions"
ARN = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:mpr-job"
FUNCTION_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:mpr-transcoder"
CALLBACK_BASE = "https://api.example"


def definition() -> str:
    text = (ROOT / "deploy" / "stepfunctions" / "job.asl.json").read_text()
    return text.replace("${TranscoderFunctionArn}", FUNCTION_ARN)


@pytest.fixture
def sfn():
    """moto's Step Functions with the state machine of deploy/, and no client cached from another test."""
    executors.stepfunctions.cache_clear()
    with mock_aws():
        client = boto3.client("stepfunctions", region_name=REGION)
        client.create_state_machine(name="mpr-job", definition=definition(), roleArn=ROLE)
        yield client
    executors.stepfunctions.cache_clear()


@pytest.fixture
def make_api() -> Iterator[Any]:
    """Makes an API client (settings overridden by its keywords), its fake NATS and its callback tokens;
    the client is not yet entered. What it serves ends with the test."""
    configured = {
        "stepfunctions_state_machine_arn": ARN,
        "callback_url": CALLBACK_BASE + "/",
        "callback_secret": "callback-secret",
    }
    with ExitStack() as served:

        def make(**overrides: Any):
            settings = ApiSettings(tokens=frozenset({TOKEN}), **{**configured, **overrides})
            nc = FakeNats()
            state = services(settings, nc, FakeKV(), public_s3=None, owners_kv=FakeKV())
            client = TestClient(served.enter_context(serving(settings, state)), base_url="http://mpr.local")
            client.headers["Authorization"] = f"Bearer {TOKEN}"
            return client, nc, state["jobs"].callbacks

        yield make


def executions(sfn) -> list[dict]:
    return sfn.list_executions(stateMachineArn=ARN)["executions"]


def execution_input(sfn, name: str) -> dict:
    arn = f"arn:aws:states:{REGION}:{ACCOUNT}:execution:mpr-job:{name}"
    return json.loads(sfn.describe_execution(executionArn=arn)["input"])


JOB = {"kind": "audio", "source_key": "talks/a.mp4", "executor": "stepfunctions"}


# --- the API starts executions -------------------------------------------------------------------
def test_a_job_starts_one_execution_named_after_it_with_the_job_and_its_own_callback(sfn, make_api):
    client, nc, callbacks = make_api()
    with client:
        r = client.post("/api/jobs", json=JOB)
    assert r.status_code == 202, r.text
    out = r.json()
    job_id = out["job"]["id"]
    assert out["callback_token"] is None  # it travels in the execution's input only
    [(subject, payload, headers)] = nc.js.published
    assert subject == s.JOB_DISPATCHED and headers["Nats-Msg-Id"] == job_id  # the catalog records it
    [execution] = executions(sfn)
    assert execution["name"] == job_id and execution["status"] == "RUNNING"
    given = execution_input(sfn, job_id)
    assert set(given) == {"job", "callback", "s3"}
    assert given["job"] == msgspec.to_builtins(decode(payload, JobRequested))
    assert given["callback"]["url"] == f"{CALLBACK_BASE}/api/jobs/{job_id}/callback"
    assert callbacks.valid(job_id, given["callback"]["token"])
    assert not callbacks.valid("another-job", given["callback"]["token"])
    assert given["s3"] == {"bucket_in": "mpr-media-in", "bucket_out": "mpr-media-out"}
    text = json.dumps(given)
    assert TOKEN not in text and "callback-secret" not in text  # no credential but the job's own


def test_a_repeated_submit_starts_no_second_execution_and_a_lost_answer_is_started_on_retry(sfn, make_api):
    client, nc, _ = make_api()
    with client:
        first = client.post("/api/jobs", json={**JOB, "job_id": "talk-1"})
        assert first.status_code == 202
        nc.jobs["talk-1"] = queued_view(decode(nc.js.published[0][1], JobRequested))  # as the catalog has it
        again = client.post("/api/jobs", json={**JOB, "job_id": "talk-1"})
        assert again.status_code == 200 and again.json()["job"]["id"] == "talk-1"
        assert [e["name"] for e in executions(sfn)] == ["talk-1"]

        # Stored, but the acknowledgement was lost: the client got a 503 before any execution started.
        nc.js.lose_acks = True
        lost = client.post("/api/jobs", json={**JOB, "job_id": "talk-2"})
        assert lost.status_code == 503 and lost.json()["job_id"] == "talk-2"
        assert [e["name"] for e in executions(sfn)] == ["talk-1"]
        nc.js.lose_acks = False
        nc.jobs["talk-2"] = queued_view(decode(nc.js.published[1][1], JobRequested))
        retried = client.post("/api/jobs", json={**JOB, "job_id": "talk-2"})
        assert retried.status_code == 200
        assert sorted(e["name"] for e in executions(sfn)) == ["talk-1", "talk-2"]
        # once running (or ended) there, a retry starts nothing
        nc.jobs["talk-2"] = msgspec.structs.replace(nc.jobs["talk-2"], status="running", worker="lambda")
        assert client.post("/api/jobs", json={**JOB, "job_id": "talk-2"}).status_code == 200
    assert len(executions(sfn)) == 2
    assert [p[0] for p in nc.js.published] == [s.JOB_DISPATCHED, s.JOB_DISPATCHED]


def test_the_deployment_default_applies_when_the_request_names_no_executor(sfn, make_api):
    client, nc, _ = make_api(executor="stepfunctions")
    with client:
        default = client.post("/api/jobs", json={"kind": "audio", "source_key": "a.mp4"}).json()
        workers = client.post(
            "/api/jobs", json={"kind": "audio", "source_key": "b.mp4", "executor": "workers"}
        )
    assert workers.status_code == 202
    assert [e["name"] for e in executions(sfn)] == [default["job"]["id"]]
    assert [p[0] for p in nc.js.published] == [s.JOB_DISPATCHED, s.JOB_REQUESTED]


def test_an_execution_that_does_not_start_fails_the_job_with_the_reason_and_is_a_503(sfn, make_api):
    missing = ARN.replace("mpr-job", "no-such-machine")
    client, nc, _ = make_api(stepfunctions_state_machine_arn=missing)
    with client:
        r = client.post("/api/jobs", json={**JOB, "job_id": "talk-3"})
    assert r.status_code == 503, r.text
    body = r.json()
    assert body["job_id"] == "talk-3" and "Step Functions did not start job talk-3" in body["detail"]
    assert "StateMachineDoesNotExist" in body["detail"]
    (_, _, dispatched_headers), (subject, payload, headers) = nc.js.published
    assert subject == s.JOB_FAILED and headers["Nats-Msg-Id"] == "failed-talk-3"
    failed = decode(payload, JobFailed)
    assert failed.job_id == "talk-3" and failed.reason == "internal"
    assert failed.error.startswith("Step Functions did not start the job: StateMachineDoesNotExist")
    assert executions(sfn) == []


def test_an_executor_the_api_cannot_use_is_a_400_before_anything_is_published(sfn, make_api):
    client, nc, _ = make_api(stepfunctions_state_machine_arn=None)
    with client:
        r = client.post("/api/jobs", json=JOB)
        assert r.status_code == 400 and "API_STEPFUNCTIONS_STATE_MACHINE_ARN" in r.json()["detail"]
    client, nc, _ = make_api()
    with client:
        r = client.post(
            "/api/jobs", json={"kind": "package", "source_key": "a.mp4", "executor": "stepfunctions"}
        )
        assert r.status_code == 400 and "runs on the transcoders" in r.json()["detail"]
        r = client.post("/api/jobs", json={**JOB, "executor": "batch"})
        assert r.status_code == 400
    assert nc.js.published == [] and executions(sfn) == []


def test_lambda_stays_a_manual_dispatch_answered_with_the_callback_token(sfn, make_api):
    client, nc, callbacks = make_api()
    with client:
        out = client.post("/api/jobs", json={**JOB, "executor": "lambda"}).json()
    assert callbacks.valid(out["job"]["id"], out["callback_token"])
    assert [p[0] for p in nc.js.published] == [s.JOB_DISPATCHED] and executions(sfn) == []


def test_settings_refuse_an_executor_the_deployment_cannot_use():
    with pytest.raises(ValueError, match="one of workers, stepfunctions, lambda"):
        ApiSettings.from_env({"API_EXECUTOR": "batch"})
    with pytest.raises(ValueError, match="API_STEPFUNCTIONS_STATE_MACHINE_ARN"):
        ApiSettings.from_env({"API_EXECUTOR": "stepfunctions", "API_CALLBACK_URL": CALLBACK_BASE})
    with pytest.raises(ValueError, match="API_CALLBACK_URL"):
        ApiSettings.from_env({"API_EXECUTOR": "stepfunctions", "API_STEPFUNCTIONS_STATE_MACHINE_ARN": ARN})
    ok = ApiSettings.from_env(
        {
            "API_EXECUTOR": "stepfunctions",
            "API_STEPFUNCTIONS_STATE_MACHINE_ARN": ARN,
            "API_PUBLIC_URL": CALLBACK_BASE,
        }
    )
    assert executors.callback_base(ok) == CALLBACK_BASE


def test_execution_names_are_the_job_id_within_step_functions_limit():
    assert executors.execution_name("a" * 64) == "a" * 64  # every id the API accepts
    long_a, long_b = "x" * 90 + "a", "x" * 90 + "b"  # an id made elsewhere, longer than 80
    name = executors.execution_name(long_a)
    assert len(name) == 80 and name.startswith("x" * 40)
    assert name == executors.execution_name(long_a) != executors.execution_name(long_b)


# --- the handler's side of the contract -----------------------------------------------------------
def test_a_caught_failure_is_reported_with_its_reason():
    timeout = lambda_handler.reported_failure({"Error": "States.Timeout", "Cause": "Task timed out"})
    assert timeout["reason"] == "timeout" and timeout["status"] == "failed"
    cause = json.dumps({"errorType": "MemoryError", "errorMessage": "out of memory", "stackTrace": []})
    crash = lambda_handler.reported_failure({"Error": "MemoryError", "Cause": cause})
    assert crash["reason"] == "internal"
    assert crash["error"] == "the transcoder Lambda did not finish (MemoryError): MemoryError: out of memory"
    killed = json.dumps(
        {"errorType": "Sandbox.Timedout", "errorMessage": "Task timed out after 900.00 seconds"}
    )
    assert (
        lambda_handler.reported_failure({"Error": "Sandbox.Timedout", "Cause": killed})["reason"] == "timeout"
    )
    assert lambda_handler.reported_failure(None)["error"] == "the transcoder Lambda did not finish (error)"


def test_the_handler_takes_buckets_from_the_input_and_lambdas_session_credentials():
    s3 = S3Settings(access_key_id="k", secret_access_key="s")
    given = lambda_handler.s3_settings_for(s3, {"bucket_in": "in-b", "bucket_out": "out-b", "x": "y"}, {})
    assert (given.bucket_in, given.bucket_out, given.access_key_id) == ("in-b", "out-b", "k")
    on_lambda = lambda_handler.s3_settings_for(s3, None, {"AWS_SESSION_TOKEN": "session"})
    # the key pair alone is refused without its session token: the default chain carries all three
    assert on_lambda.access_key_id is None and on_lambda.secret_access_key is None
    assert lambda_handler.s3_settings_for(s3, None, {}) is s3


def test_the_handler_finds_its_callback_in_the_input_or_the_earlier_forms():
    url = f"{CALLBACK_BASE}/api/jobs/j1/callback"
    cb = lambda_handler.callback_from({"callback": {"url": url, "token": "t1"}}, "j1", {})
    assert cb is not None and (cb.url, cb.token) == (url, "t1")
    cb = lambda_handler.callback_from({"callback_url": CALLBACK_BASE + "/", "callback_token": "t2"}, "j1", {})
    assert cb is not None and (cb.url, cb.token) == (url, "t2")
    env = {"MPR_CALLBACK_URL": CALLBACK_BASE, "MPR_CALLBACK_TOKEN": "t3"}
    cb = lambda_handler.callback_from({}, "j1", env)
    assert cb is not None and (cb.url, cb.token) == (url, "t3")
    assert lambda_handler.callback_from({}, "j1", {}) is None


# --- the state machine, run by moto's ASL interpreter --------------------------------------------
def test_the_definition_is_valid_asl_with_retries_a_catch_and_timeouts():
    # Imported here, not at the top: moto's ASL interpreter takes seconds to import, which every test
    # process would pay at collection although only this file's process runs it.
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    StepFunctionsParserBackend._validate_definition(definition=definition())  # raises on invalid ASL
    states = json.loads(definition())["States"]
    for name in ("RunJob", "ReportFailure"):
        task = states[name]
        assert task["Resource"] == "arn:aws:states:::lambda:invoke"
        assert task["Parameters"]["FunctionName"] == FUNCTION_ARN
        assert 0 < task["TimeoutSeconds"]
        assert {"Lambda.ServiceException", "Lambda.TooManyRequestsException"} <= set(
            task["Retry"][0]["ErrorEquals"]
        )
        assert task["Catch"][0]["ErrorEquals"] == ["States.ALL"]
    assert states["RunJob"]["TimeoutSeconds"] > 900  # the longest a Lambda runs: its own timeout comes first


class Recorder(BaseHTTPRequestHandler):
    posts: list[tuple[str, str, dict]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.posts.append((self.path, self.headers.get("Authorization", ""), body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


class LambdaContext:
    """What Lambda passes a Python handler (the parts it reads)."""

    aws_request_id = "req-1"
    function_name = "mpr-transcoder"

    def get_remaining_time_in_millis(self) -> int:
        return 900_000


@pytest.fixture
def api_recorder():
    Recorder.posts = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", Recorder.posts
    server.shutdown()
    server.server_close()


@pytest.fixture
def interpreter(monkeypatch):
    """moto running the state machine; ``runs`` maps a job id to what its RunJob invocation does
    (a result, or an error as Lambda reports one), every other invocation is the real handler."""
    runs: dict[str, dict] = {}
    invoked: list[dict] = []

    def invoke(self, function_name, qualifier, body, headers, response_headers):
        event = json.loads(body)
        invoked.append(event)
        outcome = runs.get(event["job"]["job_id"]) if "error" not in event else None
        if outcome is None:
            return json.dumps(lambda_handler.handler(event, LambdaContext(), environ={})).encode()
        if "errorType" in outcome:
            response_headers["x-amz-function-error"] = "Unhandled"
        return json.dumps(outcome).encode()

    from moto.awslambda_simple.models import LambdaSimpleBackend  # as above: imported where it is used

    monkeypatch.setattr(LambdaSimpleBackend, "invoke", invoke)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}):
        client = boto3.client("stepfunctions", region_name=REGION)
        arn = client.create_state_machine(name="mpr-job", definition=definition(), roleArn=ROLE)[
            "stateMachineArn"
        ]

        def run(job_id: str, callback_url: str) -> dict:
            given = {
                "job": {"job_id": job_id, "kind": "audio", "source_key": "a.mp4"},
                "callback": {"url": f"{callback_url}/api/jobs/{job_id}/callback", "token": f"tok-{job_id}"},
                "s3": {"bucket_in": "in", "bucket_out": "out"},
            }
            ex = client.start_execution(stateMachineArn=arn, name=job_id, input=json.dumps(given))[
                "executionArn"
            ]
            deadline = time.monotonic() + 20
            while (done := client.describe_execution(executionArn=ex))["status"] == "RUNNING":
                assert time.monotonic() < deadline, "the execution did not end"
                time.sleep(0.02)
            return done

        yield runs, invoked, run


def test_the_state_machine_ends_as_the_job_did_and_reports_a_crash_through_the_handler(
    interpreter, api_recorder
):
    runs, invoked, run = interpreter
    url, posts = api_recorder
    runs["ok"] = {"job_id": "ok", "status": "completed"}
    runs["bad"] = {"job_id": "bad", "status": "failed"}  # the handler reported it already
    runs["crash"] = {"errorType": "MemoryError", "errorMessage": "out of memory"}
    runs["killed"] = {"errorType": "Sandbox.Timedout", "errorMessage": "Task timed out after 900.00 seconds"}

    assert run("ok", url)["status"] == "SUCCEEDED"
    bad = run("bad", url)
    assert (bad["status"], bad["error"]) == ("FAILED", "JobFailed")
    assert posts == [] and len(invoked) == 2  # a result the Lambda returned needs no report

    crash = run("crash", url)
    assert (crash["status"], crash["error"]) == ("FAILED", "RunFailed")
    report = invoked[-1]
    assert set(report) == {"job", "callback", "error"} and report["job"]["job_id"] == "crash"
    [(path, auth, body)] = posts
    assert path == "/api/jobs/crash/callback" and auth == "Bearer tok-crash"  # the job's own credential
    assert body["status"] == "failed" and body["reason"] == "internal" and "out of memory" in body["error"]

    assert run("killed", url)["error"] == "RunFailed"
    assert posts[-1][2]["reason"] == "timeout"


def test_the_lambda_image_passes_hadolint_and_names_the_handler():
    import re
    import subprocess
    import sys

    dockerfile = ROOT / "deploy" / "lambda" / "Dockerfile"
    hadolint = Path(sys.executable).parent / "hadolint"
    r = subprocess.run(
        [str(hadolint), "--config", str(ROOT / ".hadolint.yaml"), str(dockerfile)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    text = dockerfile.read_text()
    module, _, name = re.search(r'^CMD \["([^"]+)"\]', text, re.M).group(1).rpartition(".")
    assert module == lambda_handler.__name__ and callable(getattr(lambda_handler, name))
    assert "--package mpr-transcoder" in text and "--frozen" in text  # the locked versions
    assert re.search(r"^FROM public\.ecr\.aws/lambda/python:\d+\.\d+$", text, re.M)
    assert re.search(r"^FROM mwader/static-ffmpeg:\d+\.\d+\.\d+ AS ffmpeg$", text, re.M)  # a pinned FFmpeg
