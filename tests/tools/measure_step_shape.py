"""Measure the shape of the bind path: run with `python -m tests.tools.measure_step_shape`.

(a) Hops of a Pod-created event: a relay batch with one ready Pod goes through the router, and the
invocations it causes run from the step queue (against the CLB emulator model and the fake cluster of
the functional tests) until the CLB registration call. A `sys.setprofile` hook records every call into
a function defined under `shared/` or `functions/` (the project's own code, not libraries or tests);
the report gives the invocations, the calls, the distinct functions (hops) and the distinct files.
(b) The largest functions under `shared/`: an `ast` scan, top 10 by lines, with cyclomatic complexity
(1 + branches: if/for/while/except/with-items excluded, boolean operators, comprehension ifs, match cases).
Not a test: a tool for the notes of a refactoring (issue 10), kept so the figures can be re-measured.
"""

from __future__ import annotations

import ast
import json
import sys
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
OWN = (str(ROOT / "shared") + "/", str(ROOT / "functions") + "/")


def complexity(node: ast.AST) -> int:
    score = 1
    for child in ast.walk(node):
        if isinstance(child, (ast.If, ast.For, ast.While, ast.IfExp, ast.ExceptHandler, ast.AsyncFor)):
            score += 1
        elif isinstance(child, ast.BoolOp):
            score += len(child.values) - 1
        elif isinstance(child, ast.comprehension):
            score += 1 + len(child.ifs)
        elif isinstance(child, ast.match_case):
            score += 1
    return score


def largest_functions(top: int = 10) -> list[tuple[int, int, str]]:
    found: list[tuple[int, int, str]] = []
    for path in sorted((ROOT / "shared").rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                found.append((lines, complexity(node), f"{path.relative_to(ROOT)}:{node.name}"))
    return sorted(found, reverse=True)[:top]


def trace_pod_created() -> dict[str, Any]:
    from emulators.clb.config import ClbEmulatorConfig
    from emulators.clb.responses_transport import clb_fake
    from shared.adapters.store_factory import open_store
    from shared.adapters.tencent_clb import TencentClbGateway
    from shared.clock import FakeClock
    from shared.deps import Deps
    from shared.events.apigw import ApiGatewayEvent
    from shared.router import route_signed
    from shared.signing import sign_batch
    from tests.functional.plumbing.test_converge import pod_json, service_json
    from tests.functional.steps.conftest import FUNCTIONS, handler, make_settings, pod, service
    from tests.support.fakes import FakeCluster, StepQueue

    key = "measure-key"
    clock = FakeClock()
    with clb_fake(config=ClbEmulatorConfig(task_duration_s=0, rate_limit_per_s=10_000)) as (model, endpoint):
        settings = make_settings(endpoint, relay_hmac_key=key)
        store = open_store("memory://")
        cluster, queue = FakeCluster(), StepQueue()
        gateway = TencentClbGateway.from_settings(settings, clock=clock)
        deps = Deps(settings=settings, store=store, clock=clock, clb=gateway, cluster=cluster, invoker=queue)
        for function in FUNCTIONS:
            handler(function).shell.use(deps)

        def invoke(function: str, event: Any) -> Any:
            return handler(function).main_handler(event, {"request_id": "measure", "function_name": function})

        def deliver(kind: str, resource: str, obj: dict[str, Any]) -> None:
            batch = {
                "batchId": uuid.uuid4().hex,
                "relay": "measure",
                "createdAt": clock.now(),
                "droppedTotal": 0,
                "items": [{"source": "watch", "type": kind, "resource": resource, "object": obj}],
            }
            body = json.dumps(batch).encode()
            headers = sign_batch(key.encode(), body, batch_id=batch["batchId"], now=clock.now()).as_dict()
            event = {"httpMethod": "POST", "headers": headers, "body": body.decode()}
            route_signed(deps, ApiGatewayEvent.model_validate(event))

        try:
            web = service()
            cluster.put_service(web)
            deliver("ADDED", "services", service_json(web))
            queue.run(invoke)
            new = pod("web-1", "10.0.0.1")
            cluster.put_pod(new)
            calls: list[tuple[str, str]] = []
            invocations = ["router"]
            registered = [False]

            depth = [0, 0]  # current, deepest nesting of our own functions

            def profile(frame: Any, event: str, _arg: Any) -> None:
                own = frame.f_code.co_filename.startswith(OWN)
                if event == "return" and own:
                    depth[0] -= 1
                if event != "call" or registered[0]:
                    return
                filename = frame.f_code.co_filename
                if own:
                    depth[0] += 1
                    depth[1] = max(depth[1], depth[0])
                    calls.append((str(Path(filename).relative_to(ROOT)), frame.f_code.co_qualname))
                    if frame.f_code.co_name == "register_targets" and "adapters/tencent_clb" in filename:
                        registered[0] = True

            def traced(function: str, event: Any) -> Any:
                if not registered[0]:
                    invocations.append(function)
                return invoke(function, event)

            sys.setprofile(profile)
            try:
                deliver("ADDED", "pods", pod_json(new))
                queue.run(traced)
            finally:
                sys.setprofile(None)
        finally:
            for function in FUNCTIONS:
                handler(function).shell.use(None)
            store.close()
    return {
        "registered": registered[0],
        "invocations": invocations,
        "calls": len(calls),
        "distinct_functions": len(set(calls)),
        "distinct_files": len({f for f, _ in calls}),
        "max_depth": depth[1],
        "files": sorted({f for f, _ in calls}),
        "by_file": {f: sorted({q for g, q in set(calls) if g == f}) for f in sorted({f for f, _ in calls})},
    }


def main() -> None:
    hops = trace_pod_created()
    print(
        f"Pod created -> CLB register: {len(hops['invocations'])} invocations {hops['invocations']}, "
        f"{hops['calls']} calls, {hops['distinct_functions']} distinct functions (hops), "
        f"{hops['distinct_files']} files, deepest nesting {hops['max_depth']} (registered={hops['registered']})"
    )
    for name, functions in hops["by_file"].items():
        print(
            f"  {len(functions):3d} functions  {name}: {', '.join(functions)}"
            if "-v" in sys.argv
            else f"  {len(functions):3d}  {name}"
        )
    print("largest functions in shared/ (lines, cyclomatic complexity):")
    for lines, score, name in largest_functions():
        print(f"  {lines:4d} lines  cc {score:3d}  {name}")


if __name__ == "__main__":
    main()
