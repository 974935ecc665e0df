"""What the jobs domain reads: who runs a job (docs/executors.md) and how jobs run elsewhere call back.
The executors' names and when Step Functions counts as configured are defined here, so that both the
start-up check and ``executors.py`` use the one definition."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from mpr_common.settings import env

from ..http.settings import HttpSettings

Executor = Literal["workers", "stepfunctions", "lambda"]
EXECUTORS: tuple[str, ...] = get_args(Executor)


@dataclass(frozen=True)
class JobSettings(HttpSettings):
    # Signs per-job callback tokens (Lambda jobs). Unset: a random one per process (one API replica).
    callback_secret: str | None = env("API_CALLBACK_SECRET", default=None)
    callback_ttl: float = env("API_CALLBACK_TTL", default=6 * 3600.0 + 600)  # a job's timeout and some
    # Who runs a job whose request names no executor (docs/executors.md): "workers" (the transcoders),
    # "stepfunctions" (an execution of the state machine below, which invokes the transcoder Lambda) or
    # "lambda" (recorded and answered with its callback token: the caller runs the Lambda handler).
    executor: str = env("API_EXECUTOR", default="workers")
    stepfunctions_state_machine_arn: str | None = env("API_STEPFUNCTIONS_STATE_MACHINE_ARN", default=None)
    stepfunctions_region: str | None = env("API_STEPFUNCTIONS_REGION", default=None)  # unset: AWS_REGION
    # Another Step Functions endpoint (tests: moto's server); unset: AWS's.
    stepfunctions_endpoint_url: str | None = env("API_STEPFUNCTIONS_ENDPOINT_URL", default=None)
    # A named AWS profile for Step Functions (e.g. a role), when AWS_ACCESS_KEY_ID is MinIO's; unset:
    # the default credential chain.
    stepfunctions_profile: str | None = env("API_STEPFUNCTIONS_PROFILE", default=None)
    # The API's address as the Lambda reaches it, for its callbacks; unset: API_PUBLIC_URL.
    callback_url: str | None = env("API_CALLBACK_URL", default=None)

    def __post_init__(self) -> None:
        super().__post_init__()
        # A deployment that names an executor it cannot use fails at start, not on every job.
        if self.executor not in EXECUTORS:
            raise ValueError(f"API_EXECUTOR={self.executor!r}: one of {', '.join(EXECUTORS)}")
        if self.executor == "stepfunctions" and not stepfunctions_configured(self):
            raise ValueError(
                "API_EXECUTOR=stepfunctions needs API_STEPFUNCTIONS_STATE_MACHINE_ARN and "
                "API_CALLBACK_URL (or API_PUBLIC_URL)"
            )


def stepfunctions_configured(settings: JobSettings) -> bool:
    return bool(settings.stepfunctions_state_machine_arn and callback_base(settings))


def callback_base(settings: JobSettings) -> str | None:
    """The API's address as the Lambda reaches it."""
    base = settings.callback_url or settings.public_url
    return base.rstrip("/") if base else None
