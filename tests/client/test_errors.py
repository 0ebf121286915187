"""map_azure_error: every Azure SDK failure becomes the azfinetune error a user can act on, in one place."""

from __future__ import annotations

import json
from typing import Any

import pytest
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)

from azfinetune.client import is_name_conflict, is_transient, map_azure_error
from azfinetune.errors import (
    AuthError,
    ConflictError,
    JobFailedError,
    NotFoundError,
    QuotaError,
    ServiceError,
    SubmitError,
    ThrottledError,
    UserInputError,
)


class FakeResponse:
    """Just enough of an azure-core HttpResponse for HttpResponseError to parse an ARM/MFE error body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        self.status_code = status
        self.reason = "reason"
        self.headers: dict[str, str] = {"Content-Type": "application/json"}
        self.content_type = "application/json"
        self.request = None
        self._body = json.dumps({"error": {"code": code, "message": message}}).encode()

    def body(self) -> bytes:
        return self._body

    def text(self, encoding: str | None = None) -> str:
        return self._body.decode()


def http(cls: type[HttpResponseError], status: int, code: str, message: str) -> HttpResponseError:
    return cls(response=FakeResponse(status, code, message))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("error", "kind", "needles"),
    [
        pytest.param(
            http(
                ClientAuthenticationError, 401, "InvalidAuthenticationToken", "The access token is invalid."
            ),
            AuthError,
            ["401", "az login"],
            id="401",
        ),
        pytest.param(
            ClientAuthenticationError("DefaultAzureCredential failed to retrieve a token"),
            AuthError,
            ["no usable Azure credential", "az login"],
            id="no-credential",
        ),
        pytest.param(
            http(
                HttpResponseError,
                403,
                "AuthorizationFailed",
                "The client 'ann@contoso.com' with object id '1234' does not have authorization to perform action "
                "'Microsoft.MachineLearningServices/workspaces/computes/write' over scope '/subscriptions/x'",
            ),
            AuthError,
            ["ann@contoso.com (object id 1234)", "computes/write", "AzureML Compute Operator"],
            id="403-compute",
        ),
        pytest.param(
            http(
                HttpResponseError,
                403,
                "AuthorizationFailed",
                "The client 'ann@contoso.com' with object id '1234' does not have authorization to perform action "
                "'Microsoft.MachineLearningServices/workspaces/marketplaceSubscriptions/write' over scope '/x'",
            ),
            AuthError,
            ["Azure AI Developer", "Marketplace"],
            id="403-marketplace",
        ),
        pytest.param(
            http(
                ResourceNotFoundError,
                404,
                "ResourceNotFound",
                "The Resource 'Microsoft.MachineLearningServices/workspaces/ws1' under resource group 'rg' was not found.",
            ),
            NotFoundError,
            ["workspace ws1 not found", "--workspace"],
            id="404-workspace",
        ),
        pytest.param(
            http(
                ResourceNotFoundError,
                404,
                "ResourceGroupNotFound",
                "Resource group 'rg9' could not be found.",
            ),
            NotFoundError,
            ["resource group rg9 not found"],
            id="404-resource-group",
        ),
        pytest.param(
            http(ResourceNotFoundError, 404, "UserError", "Compute 'gpu-x' was not found in workspace 'ws'."),
            NotFoundError,
            ["compute gpu-x not found", "target.compute"],
            id="404-compute",
        ),
        pytest.param(
            http(
                ResourceNotFoundError,
                404,
                "UserError",
                "Model 'azureml://registries/azureml/models/Phi-9' was not found in workspace 'ws'.",
            ),
            NotFoundError,
            ["model azureml://registries/azureml/models/Phi-9 not found", "spec's model"],
            id="404-model",
        ),
        pytest.param(
            http(ResourceNotFoundError, 404, "UserError", "Job 'j1' was not found in workspace 'ws'."),
            NotFoundError,
            ["job j1 not found", "azfinetune list"],
            id="404-job",
        ),
        pytest.param(
            http(
                HttpResponseError,
                400,
                "UserError",
                "A job with this name already exists. If you are trying to create a new job, use a different name.",
            ),
            ConflictError,
            ["already exists", "--new-run"],
            id="immutable",
        ),
        pytest.param(
            http(ResourceExistsError, 409, "Conflict", "exists"), ConflictError, ["--new-run"], id="409"
        ),
        pytest.param(
            http(HttpResponseError, 429, "TooManyRequests", "throttled"),
            ThrottledError,
            ["429", "retries"],
            id="429",
        ),
        pytest.param(
            http(
                HttpResponseError,
                400,
                "QuotaExceeded",
                "Operation could not be completed as it results in exceeding approved quota.",
            ),
            QuotaError,
            ["quota", "instance_type"],
            id="quota",
        ),
        pytest.param(
            http(HttpResponseError, 503, "ServiceUnavailable", "down"), ServiceError, ["503"], id="503"
        ),
        pytest.param(
            ServiceRequestError("Connection refused"), ServiceError, ["could not reach Azure"], id="connect"
        ),
        pytest.param(ServiceResponseError("reset"), ServiceError, ["dropped"], id="lost"),
        pytest.param(
            http(HttpResponseError, 400, "UserError", "bad request"),
            SubmitError,
            ["refused", "400"],
            id="400",
        ),
    ],
)
def test_azure_core_errors(error: Exception, kind: type[Exception], needles: list[str]) -> None:
    mapped = map_azure_error(error, job_name="j1")
    assert type(mapped) is kind
    for needle in needles:
        assert needle in str(mapped)


def test_marshmallow_and_azure_ai_ml_validation_are_user_errors() -> None:
    from azure.ai.ml.exceptions import ValidationException
    from marshmallow.exceptions import ValidationError

    mapped = map_azure_error(ValidationError({"learning_rat": ["Unknown field."]}))
    assert type(mapped) is UserInputError and mapped.exit_code == 2 and "learning_rat" in str(mapped)
    exception = ValidationException(
        message="Inputs to job does not contain 'train'", no_personal_data_message="x"
    )
    mapped = map_azure_error(exception)
    assert isinstance(mapped, UserInputError) and "does not contain 'train'" in str(mapped)


def test_azure_ai_ml_wrapping_is_seen_through() -> None:
    from azure.ai.ml.exceptions import MlException

    inner = http(ResourceNotFoundError, 404, "UserError", "Compute 'c9' was not found in workspace 'ws'.")
    try:
        try:
            raise inner
        except ResourceNotFoundError:
            raise MlException(message="wrapped", no_personal_data_message="wrapped") from None
    except MlException as outer:
        assert outer.__context__ is inner
        mapped = map_azure_error(outer)
    assert isinstance(mapped, NotFoundError) and "compute c9" in str(mapped)


def test_a_failed_job_carries_the_service_message() -> None:
    from azure.ai.ml.exceptions import JobException

    payload = {"error": {"code": "UserError", "message": "ValueError: tokenizer has no chat template"}}
    mapped = map_azure_error(
        JobException(message=f"Exception : \n {json.dumps(payload)} ", no_personal_data_message="x"),
        job_name="j7",
    )
    assert isinstance(mapped, JobFailedError)
    assert str(mapped).startswith("job j7 failed: UserError: ValueError: tokenizer has no chat template")


def test_classifiers() -> None:
    assert is_transient(ServiceRequestError("x")) and is_transient(
        http(HttpResponseError, 502, "BadGateway", "x")
    )
    assert not is_transient(http(HttpResponseError, 429, "TooManyRequests", "x"))
    assert not is_transient(http(ClientAuthenticationError, 401, "x", "x"))
    assert not is_transient(ValueError("x"))
    assert is_name_conflict(http(HttpResponseError, 400, "UserError", "A job with this name already exists."))
    assert not is_name_conflict(http(HttpResponseError, 400, "UserError", "bad"))


def test_the_cli_boundary_uses_the_mapping(capsys: pytest.CaptureFixture[str]) -> None:
    from azfinetune.cli._app import _map_foreign

    mapped: Any = _map_foreign(http(HttpResponseError, 429, "TooManyRequests", "slow down"))
    assert isinstance(mapped, ThrottledError) and mapped.exit_code == 1
