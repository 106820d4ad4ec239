"""serverless.yml rendered the way `multi-scf` deploys it: names, environment merge, triggers, settings.

Each check here is one way a real `sls deploy` broke while every local test passed: async invokes of
names that do not exist, a function-level `environments` silently replacing the shared list, API-gateway
triggers without integrated response, settings (region, timeouts, ownership, webhook trust) never set.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import get_args

import pytest
from pydantic import SecretStr

from shared.config import Settings
from shared.domain.models import StepKind
from tests.deploy.multiscf import Function, Rendered, RenderError, integrated_response, render

ROOT = Path(__file__).resolve().parents[2]
SERVERLESS = ROOT / "serverless.yml"
TERRAFORM = ROOT / "infra" / "terraform" / "main.tf"

# What an operator exports before `sls deploy` (the docs list them); a realistic CA keeps the 4 KB check honest.
DEPLOY_ENV = {
    "STAGE": "prod",
    "REGION": "ap-shanghai",
    "STORE_URL": "redis://10.0.0.12:6379/0",
    "CLUSTER_ID": "cls-abcd1234",
    "VPC_ID": "vpc-abcd1234",
    "SUBNET_ID": "subnet-abcd1234",
    "KUBE_API_SERVER": "https://10.0.0.3:443",
    "KUBE_CA_DATA": "LS0tLS1CRUdJTi" + "A" * 1600,
    "WEBHOOK_URL": "https://service-abcd1234-1250000000.sh.apigw.tencentcs.com/release/admission",
    "LAYER_VERSION": "3",
}
SCF_ENV_LIMIT_BYTES = 4096
# Every function that can invoke another (the shell's invoker, or a lazy one: admission kicks the guardian).
INVOKE_TARGETS = sorted(set(get_args(StepKind)) | {"guardian"})


@pytest.fixture(scope="module")
def rendered() -> Rendered:
    return render(SERVERLESS, DEPLOY_ENV)


def settings_of(function: Function) -> Settings:
    return Settings.load(environ=function.env)


def shell_of(key: str) -> object:
    return importlib.import_module(f"functions.{key}.handler").shell


def test_every_function_module_is_deployed_with_its_handler(rendered: Rendered) -> None:
    keys = sorted(p.name for p in (ROOT / "functions").iterdir() if (p / "handler.py").exists())
    assert sorted(rendered.functions) == keys
    for key, function in rendered.functions.items():
        assert function.inputs["handler"] == f"functions/{key}/handler.main_handler"
        assert function.name == f"clb-direct-prod-clb-direct-{key}"
        assert function.inputs["runtime"] == "Python3.10"
        assert function.inputs["layers"] == [{"name": "clb-direct-shared", "version": "3"}]


def test_every_invoke_target_exists_under_its_deployed_name(rendered: Rendered) -> None:
    deployed = rendered.by_name()
    for key, function in rendered.functions.items():
        shell = shell_of(key)
        invokes = getattr(shell, "_with_invoker", False) or key == "admission"
        settings = settings_of(function)
        if not invokes:
            continue
        assert settings.invoker == "scf", key
        missing = [t for t in INVOKE_TARGETS if settings.function_name(t) not in deployed and t in rendered.functions]
        assert missing == [], f"{key} would invoke functions that do not exist: {missing}"
        assert settings.scf_namespace == "default"


def test_invokes_target_the_namespace_the_functions_are_deployed_in() -> None:
    """SCF_NAMESPACE moves the functions and every Invoke with them (multi-scf reads `inputs.namespace`)."""
    rendered = render(SERVERLESS, {**DEPLOY_ENV, "SCF_NAMESPACE": "platform"})
    for key, function in rendered.functions.items():
        assert function.namespace == "platform", key
        if "CLB_DIRECT_SCF_NAMESPACE" in function.env:
            assert settings_of(function).scf_namespace == function.namespace, key


def test_each_function_gets_the_settings_it_reads(rendered: Rendered) -> None:
    for key, function in rendered.functions.items():
        settings, shell = settings_of(function), shell_of(key)
        assert settings.store_url.startswith("redis://"), key
        assert settings.store_password is not None, key
        assert settings.region == rendered.inputs["region"] == "ap-shanghai", key
        assert settings.cluster_id == "cls-abcd1234", key
        assert settings.function_timeout_s == float(function.inputs["timeout"]), key
        if getattr(shell, "_with_clb", False):
            assert settings.vpc_id == "vpc-abcd1234", key
        if getattr(shell, "_with_cluster", False) or key == "admission":
            assert settings.kube_api_server and settings.kube_token and settings.kube_ca_data, key
        if key in ("guardian", "admission", "reconcile"):
            assert settings.webhook_url == DEPLOY_ENV["WEBHOOK_URL"] and settings.webhook_ca_mode == "public", key
        if key != "guardian":
            assert settings.service_ownership == "load-balancer-class", key
    assert settings_of(rendered.functions["router"]).relay_hmac_key is not None
    assert settings_of(rendered.functions["health"]).health_notify_secret is not None


def test_no_secret_is_a_plain_value(rendered: Rendered) -> None:
    secret_fields = {f for f, info in Settings.model_fields.items() if SecretStr in get_args(info.annotation)}
    assert {"relay_hmac_key", "health_notify_secret", "store_password", "kube_token"} <= secret_fields
    for function in rendered.functions.values():
        settings = settings_of(function)
        for name in secret_fields:
            value = getattr(settings, name)
            if value is not None:
                assert value.get_secret_value().startswith("ssm:clb-direct-"), (function.key, name)
        assert "@" not in settings.store_url.split("//", 1)[1], "no password in the store URL"


def test_environment_fits_scf_limit(rendered: Rendered) -> None:
    for function in rendered.functions.values():
        size = sum(len(k) + len(v) for k, v in function.env.items())
        assert size <= SCF_ENV_LIMIT_BYTES, (function.key, size)


def test_a_function_environments_list_replaces_the_shared_one(tmp_path: Path) -> None:
    """The merge the old file relied on does not exist: the router lost every shared variable."""
    path = tmp_path / "serverless.yml"
    path.write_text(
        "app: a\nstage: s\ncomponent: multi-scf\nname: n\ninputs:\n"
        "  environments: [{key: CLB_DIRECT_STORE_URL, value: 'redis://r:6379/0'}]\n"
        "  functions:\n    router:\n      handler: h\n"
        "      environments: [{key: CLB_DIRECT_RELAY_HMAC_KEY, value: k}]\n"
        "    bind:\n      handler: h\n"
    )
    out = render(path, {})
    assert out.functions["router"].env == {"CLB_DIRECT_RELAY_HMAC_KEY": "k"}
    assert out.functions["bind"].env == {"CLB_DIRECT_STORE_URL": "redis://r:6379/0"}
    assert out.functions["bind"].name == "n-s-a-bind"


def test_unset_variables_and_unknown_trigger_functions_fail_the_render(tmp_path: Path) -> None:
    with pytest.raises(RenderError, match="STORE_URL"):
        render(SERVERLESS, {k: v for k, v in DEPLOY_ENV.items() if k != "STORE_URL"})
    path = tmp_path / "serverless.yml"
    path.write_text(
        "app: a\nstage: s\ncomponent: multi-scf\nname: n\ninputs:\n  functions: {f: {handler: h}}\n"
        "  triggers: [{type: apigw, parameters: {apis: [{path: /x, method: POST, function: f, "
        "isIntegratedResponse: true}]}}]\n"
    )
    out = render(path, {})
    assert integrated_response(out.triggers[0]["parameters"]["apis"][0]) is False
    path.write_text(path.read_text().replace("function: f,", "function: g,"))
    with pytest.raises(RenderError, match="not in deploy list"):
        render(path, {})


def test_triggers_timers_here_and_integrated_response_apis_in_terraform(rendered: Rendered) -> None:
    assert not [t for t in rendered.triggers if t["type"] == "apigw"], (
        "multi-scf cannot enable integrated response; the APIs belong to infra/terraform"
    )
    timers = {t["parameters"]["name"]: t for t in rendered.triggers if t["type"] == "timer"}
    assert {t["function"] for t in timers.values()} == {"reconcile", "health", "guardian"}
    assert {t["type"] for t in rendered.triggers} == {"timer"}  # booleans stay booleans: no "${env:..}" flags
    timers = {name: t["parameters"] for name, t in timers.items()}
    assert all(p["enable"] is True and len(p["cronExpression"].split()) == 7 for p in timers.values())
    tf = TERRAFORM.read_text()
    apis = re.search(r"apis = \{(.*?)\n  \}", tf, re.S)
    assert apis is not None
    routes = dict(re.findall(r"(\w+)\s+=\s+\{ path = \"(/\w+)\"", apis.group(1)))
    assert routes == {"admission": "/admission", "router": "/router", "health": "/health", "prestop": "/prestop"}
    api_block = tf[tf.index('resource "tencentcloud_api_gateway_api"') :]
    api_block = api_block[: api_block.index("\n}\n")]
    assert re.search(r"service_scf_is_integrated_response\s*=\s*true", api_block)
    assert re.search(r"service_id\s*=\s*tencentcloud_api_gateway_service\.clb_direct\.id", api_block)
    template = re.search(r'service_scf_function_name\s*=\s*"([^"]+)"', api_block)
    assert template is not None
    for key in routes:
        name = template.group(1).replace("${var.stage}", "prod").replace("${each.key}", key)
        assert name == rendered.functions[key].name


def test_every_secret_reference_is_a_secret_terraform_creates_and_the_role_may_read(rendered: Rendered) -> None:
    tf = TERRAFORM.read_text()
    block = re.search(r"secrets = \{(.*?)\n  \}", tf, re.S)
    assert block is not None
    created = {name.replace("${var.ssm_prefix}", "clb-direct") for name in re.findall(r'"([^"]+)"', block.group(1))}
    referenced = {
        value[len("ssm:") :]
        for function in rendered.functions.values()
        for value in function.env.values()
        if value.startswith("ssm:")
    }
    assert referenced == created
    assert re.search(r'"ssm:GetSecretValue"', tf) and "values(local.secrets)" in tf


def test_the_local_runtime_gives_each_function_the_timeout_serverless_yml_deploys(rendered: Rendered) -> None:
    from emulators.runtime.runtime import DEFAULT_FUNCTIONS

    local = {spec.name: spec.timeout_s for spec in DEFAULT_FUNCTIONS}
    deployed = {key: float(function.inputs["timeout"]) for key, function in rendered.functions.items()}
    assert local == deployed


def test_terraform_and_serverless_yml_default_to_the_same_stage_region_prefix_and_namespace() -> None:
    """Terraform names the APIs' functions and scopes the CAM policy with these; sls deploy names the functions."""
    variables = (TERRAFORM.parent / "variables.tf").read_text()
    text = SERVERLESS.read_text()
    for tf_name, env_name in (
        ("stage", "STAGE"),
        ("region", "REGION"),
        ("ssm_prefix", "SSM_PREFIX"),
        ("scf_namespace", "SCF_NAMESPACE"),
    ):
        block = re.search(rf'variable "{tf_name}" \{{(.*?)\n\}}', variables, re.S)
        assert block is not None, tf_name
        tf_default = re.search(r'default\s*=\s*"([^"]*)"', block.group(1))
        assert tf_default is not None, f"Terraform variable {tf_name} has no default"
        yml_defaults = set(re.findall(rf"\$\{{env:{env_name},\s*([^}}]*)\}}", text))
        assert yml_defaults == {tf_default.group(1)}, (tf_name, env_name, yml_defaults)
