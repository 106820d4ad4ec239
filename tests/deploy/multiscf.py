"""A model of how the Serverless Framework component `multi-scf` turns serverless.yml into SCF functions.

Written from the component's source (src/formatter.ts of serverless-components/tencent-multi-scf and the
apigw trigger of tencent-component-toolkit), so the deploy tests see what a real `sls deploy` would create:
- variables `${env:NAME}` / `${env:NAME, default}` are substituted (a missing one without default fails);
- each function's inputs are `Object.assign({}, shared inputs, function inputs)`: a shallow merge, so a
  function's `environments` list replaces the shared one as a whole;
- a function is named `name` if given, else `${name}-${stage}-${app}-${key}`;
- it is deployed into the SCF namespace `inputs.namespace`, `default` when that is not set;
- `environments: [{key, value}]` becomes the function's environment variables (values are strings);
- a trigger's `function` (or an apigw api's `function`) must be a function key; an apigw api's function
  block is rebuilt as {name, type, functionName, functionNamespace, functionQualifier}, so
  `isIntegratedResponse` can never reach the API (it is false on every API the component creates).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

_VARIABLE = re.compile(r"\$\{env:([A-Za-z0-9_]+)(?:,\s*([^}]*))?\}")


class RenderError(ValueError):
    pass


@dataclass
class Function:
    key: str
    name: str
    inputs: dict[str, Any]
    env: dict[str, str] = field(default_factory=dict)
    namespace: str = "default"


@dataclass
class Rendered:
    app: str
    stage: str
    name: str
    inputs: dict[str, Any]
    functions: dict[str, Function]
    triggers: list[dict[str, Any]]

    def by_name(self) -> dict[str, Function]:
        return {f.name: f for f in self.functions.values()}


def _substitute(value: Any, env: Mapping[str, str]) -> Any:
    if isinstance(value, str):

        def one(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is None:
                raise RenderError(f"${{env:{name}}} is not set and has no default")
            return default.strip()

        return _VARIABLE.sub(one, value)
    if isinstance(value, list):
        return [_substitute(v, env) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, env) for k, v in value.items()}
    return value


def render(path: Path, env: Mapping[str, str]) -> Rendered:
    doc = _substitute(yaml.safe_load(path.read_text()), env)
    app, stage, name, inputs = doc["app"], doc["stage"], doc["name"], doc["inputs"]
    common = {k: v for k, v in inputs.items() if k not in ("src", "functions", "triggers")}
    functions: dict[str, Function] = {}
    for key, func in inputs["functions"].items():
        merged = {**common, **func}  # Object.assign: shallow, the function's keys win whole
        fname = merged.get("name") or f"{name}-{stage}-{app}-{key}"
        variables: dict[str, str] = {}
        for item in merged.get("environments") or []:
            if not isinstance(item.get("value"), str):
                raise RenderError(f"function {key}: environment {item.get('key')} value must be a string")
            variables[item["key"]] = item["value"]
        namespace = merged.get("namespace") or "default"
        functions[key] = Function(key=key, name=fname, inputs=merged, env=variables, namespace=namespace)
    triggers = list(inputs.get("triggers") or [])
    for trigger in triggers:
        if trigger["type"] == "apigw":
            for api in trigger["parameters"].get("apis") or []:
                if api["function"] not in functions:
                    raise RenderError(f"Function {api['function']} not in deploy list")
        elif trigger.get("function") not in functions:
            raise RenderError(f"Function {trigger.get('function')} not in deploy list")
    return Rendered(app=app, stage=stage, name=name, inputs=inputs, functions=functions, triggers=triggers)


def integrated_response(api: Mapping[str, Any]) -> bool:
    """What the toolkit sends as serviceScfIsIntegratedResponse for an api multi-scf built."""
    rebuilt = {"name": api["function"], "functionName": api["function"]}  # the yaml's block is dropped
    return bool(rebuilt.get("isIntegratedResponse"))
