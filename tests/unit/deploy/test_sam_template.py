"""The SAM template (deploy/aws/template.yaml) passes cfn-lint and agrees with the code it deploys: the handler
and zip that ``fraudstream package-lambda`` builds, variables the settings know, keys only from Secrets Manager."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fraudstream.services.api.lambda_function import SECRET_VARIABLES
from fraudstream.services.cli.package_lambda import DEFAULT_OUT
from fraudstream.services.packaging.lambda_zip import DEFAULT_PYTHON, HANDLER
from fraudstream.services.settings import env_names

ROOT = Path(__file__).resolve().parents[3]
TEMPLATE = ROOT / "deploy" / "aws" / "template.yaml"
CFN_LINT = Path(sys.executable).with_name("cfn-lint")


def lint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CFN_LINT), "--", str(path)], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    from cfnlint.decode import decode

    decoded, problems = decode(str(TEMPLATE))
    assert problems == [] and decoded is not None
    return decoded


@pytest.fixture(scope="module")
def function(template: dict[str, Any]) -> dict[str, Any]:
    return template["Resources"]["ScoringFunction"]["Properties"]


def test_cfn_lint_accepts_the_template() -> None:
    result = lint(TEMPLATE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_cfn_lint_would_catch_a_broken_template(tmp_path: Path) -> None:
    """The check above can fail: a misspelt property of the function is an error cfn-lint reports."""
    broken = tmp_path / "template.yaml"
    broken.write_text(TEMPLATE.read_text().replace("Handler: lambda_function", "Handlr: lambda_function"))
    result = lint(broken)
    assert result.returncode != 0 and "'Handlr' was unexpected" in result.stdout


def test_it_deploys_what_package_lambda_builds(function: dict[str, Any]) -> None:
    assert function["Handler"] == HANDLER
    assert function["Runtime"] == f"python{DEFAULT_PYTHON}" and function["Architectures"] == ["x86_64"]
    assert (TEMPLATE.parent / function["CodeUri"]).resolve() == (ROOT / DEFAULT_OUT).resolve()


def test_every_variable_is_a_setting_or_a_secret_reference(function: dict[str, Any]) -> None:
    variables = set(function["Environment"]["Variables"])
    unknown = variables - set(env_names()) - set(SECRET_VARIABLES)
    assert unknown == set()


def test_keys_and_passwords_come_only_from_secrets_manager(template: dict[str, Any], function: dict[str, Any]) -> None:
    variables = function["Environment"]["Variables"]
    assert not {"FRAUDSTREAM_API_KEYS", "FRAUDSTREAM_API_LABEL_KEYS", "FRAUDSTREAM_OPENSEARCH_PASSWORD"} & set(variables)
    secret_parameters = {name for name in template["Parameters"] if "Key" in name or "Password" in name}
    assert secret_parameters == {"ApiKeysSecretArn", "LabelKeysSecretArn", "OpenSearchPasswordSecretArn"}
    for name in secret_parameters:
        assert "secretsmanager" in template["Parameters"][name]["AllowedPattern"]
        assert template["Parameters"][name].get("NoEcho") is None  # an ARN is not a secret; a key never is a parameter
    assert variables["FRAUDSTREAM_API_KEYS_SECRET_ARN"] == {"Ref": "ApiKeysSecretArn"}
