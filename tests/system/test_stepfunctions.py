"""The Step Functions executor end to end: the API (a process of the stack) starts an execution on
moto's Step Functions server with the job and its callback; that input then runs through the state
machine of deploy/ in moto's ASL interpreter, whose Lambda invocations call the real handler (FFmpeg,
moto's S3), which calls the API back: the job ends in the API as the Lambda ran it."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from moto import mock_aws

from mpr_devstack.servers import free_port
from mpr_devstack.stack import DEV_ACCESS_KEY, DEV_API_TOKEN, DEV_SECRET_KEY, Stack
from mpr_transcoder.lambda_handler import handler
from mpr_transcoder.settings import TranscoderSettings
from tests.media import probe
from tests.system.conftest import wait_job

pytestmark = pytest.mark.system

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's
ARN = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:mpr-job"
FUNCTION_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:mpr-transcoder"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/mpr-stepfunctions"


def definition() -> str:
    text = (ROOT / "deploy" / "stepfunctions" / "job.asl.json").read_text()
    return text.replace("${TranscoderFunctionArn}", FUNCTION_ARN)


@pytest.fixture(scope="module")
def sfn_stack(tmp_path_factory) -> Iterator[Stack]:
    """The stack with the API's Step Functions on moto's server (the one S3 is on), no transcoders:
    nothing but the Lambda handler runs these jobs."""
    s3_port, api_port = free_port(), free_port()
    env = {
        "API_STEPFUNCTIONS_STATE_MACHINE_ARN": ARN,
        "API_STEPFUNCTIONS_ENDPOINT_URL": f"http://127.0.0.1:{s3_port}",
        "API_CALLBACK_URL": f"http://127.0.0.1:{api_port}",
    }
    st = Stack(
        tmp_path_factory.mktemp("sfn-stack"), transcoders=0, s3_port=s3_port, api_port=api_port, extra_env=env
    )
    try:
        st.start()
        sfn_server(st).create_state_machine(name="mpr-job", definition=definition(), roleArn=ROLE)
        yield st
    finally:
        st.stop()


def sfn_server(stack: Stack) -> Any:
    assert stack.moto
    return boto3.client(
        "stepfunctions",
        endpoint_url=stack.moto.url,
        region_name=REGION,
        aws_access_key_id=DEV_ACCESS_KEY,
        aws_secret_access_key=DEV_SECRET_KEY,
    )


@pytest.fixture(scope="module")
def api(sfn_stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=sfn_stack.api_url, headers={"Authorization": f"Bearer {DEV_API_TOKEN}"}, timeout=60
    ) as client:
        yield client


class LambdaContext:
    """What Lambda passes a Python handler (the parts it reads)."""

    aws_request_id = "req-1"
    function_name = "mpr-transcoder"

    def get_remaining_time_in_millis(self) -> int:
        return 900_000


@pytest.fixture
def run_state_machine(sfn_stack: Stack, tmp_path, monkeypatch):
    """Runs an input through the state machine in moto's ASL interpreter; its Lambda invocations call
    the handler as Lambda would (the event, a context), unless ``crash`` names the job: then its first
    invocation ends as a Lambda killed at its timeout."""
    env = {**sfn_stack.env(), "TRANSCODER_WORKDIR": str(tmp_path)}
    settings = TranscoderSettings.from_env(env)
    crash: set[str] = set()

    def invoke(self, function_name, qualifier, body, headers, response_headers):
        event = json.loads(body)
        if event["job"]["job_id"] in crash and "error" not in event:
            response_headers["x-amz-function-error"] = "Unhandled"
            killed = {"errorType": "Sandbox.Timedout", "errorMessage": "Task timed out after 900.00 seconds"}
            return json.dumps(killed).encode()
        return json.dumps(handler(event, LambdaContext(), settings=settings, environ=env)).encode()

    # Imported here, not at the top: moto's Lambda backend takes a noticeable time to import, which
    # every test process would pay at collection although only this file's process uses it.
    from moto.awslambda_simple.models import LambdaSimpleBackend

    monkeypatch.setattr(LambdaSimpleBackend, "invoke", invoke)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}):
        local = boto3.client("stepfunctions", region_name=REGION)
        arn = local.create_state_machine(name="mpr-job", definition=definition(), roleArn=ROLE)[
            "stateMachineArn"
        ]

        def run(name: str, given: str) -> dict:
            ex = local.start_execution(stateMachineArn=arn, name=name, input=given)["executionArn"]
            deadline = time.monotonic() + 120
            while (done := local.describe_execution(executionArn=ex))["status"] == "RUNNING":
                assert time.monotonic() < deadline, "the execution did not end"
                time.sleep(0.1)
            return done

        yield run, crash


def started(stack: Stack, job_id: str) -> str:
    """The input of the execution the API started for a job (on moto's server)."""
    sfn = sfn_server(stack)
    [execution] = [e for e in sfn.list_executions(stateMachineArn=ARN)["executions"] if e["name"] == job_id]
    return sfn.describe_execution(executionArn=execution["executionArn"])["input"]


def test_a_job_runs_on_the_lambda_through_the_state_machine_and_completes(
    sfn_stack, api, run_state_machine, media_dir
):
    run, _ = run_state_machine
    key = f"sfn-{uuid.uuid4().hex[:6]}/a.mp4"
    sfn_stack.s3_client().upload_file(str(media_dir / "sample.mp4"), "mpr-media-in", key)
    spec = {"kind": "trim", "source_key": key, "start": 1.0, "end": 3.0, "preset": "h264-480p"}
    r = api.post("/api/jobs", json={**spec, "executor": "stepfunctions"})
    assert r.status_code == 202, r.text
    job_id = r.json()["job"]["id"]
    given = started(sfn_stack, job_id)
    event = json.loads(given)
    assert event["job"]["job_id"] == job_id and event["job"]["source_key"] == key
    assert event["callback"]["url"] == f"{sfn_stack.api_url}/api/jobs/{job_id}/callback"
    assert api.get(f"/api/jobs/{job_id}").json()["job"]["status"] == "queued"  # no transcoder runs it

    assert run(job_id, given)["status"] == "SUCCEEDED"
    done = wait_job(api, job_id)
    assert done["job"]["status"] == "completed" and done["job"]["worker"] == "lambda", done
    assert float(probe(done["output_url"])["format"]["duration"]) == pytest.approx(2.0, abs=0.15)


def test_a_failing_job_and_a_killed_lambda_are_reported_failed_with_their_reasons(
    sfn_stack, api, run_state_machine
):
    run, crash = run_state_machine
    missing = api.post(
        "/api/jobs",
        json={
            "kind": "thumbnail",
            "source_key": f"missing-{uuid.uuid4().hex}.mp4",
            "executor": "stepfunctions",
        },
    ).json()["job"]["id"]
    execution = run(missing, started(sfn_stack, missing))
    assert (execution["status"], execution["error"]) == ("FAILED", "JobFailed")
    job = wait_job(api, missing)["job"]
    assert (job["status"], job["failure_reason"], job["error"]) == (
        "failed",
        "source",
        "source object not found",
    )

    killed = api.post(
        "/api/jobs", json={"kind": "audio", "source_key": "long/film.mp4", "executor": "stepfunctions"}
    ).json()["job"]["id"]
    crash.add(killed)
    execution = run(killed, started(sfn_stack, killed))
    assert (execution["status"], execution["error"]) == ("FAILED", "RunFailed")  # reported by ReportFailure
    job = wait_job(api, killed)["job"]
    assert job["status"] == "failed" and job["failure_reason"] == "timeout" and job["worker"] == "lambda"
    assert "Task timed out after 900.00 seconds" in job["error"]
