"""How the simulated kubelet stops containers: preStop kinds, SIGTERM app models, the kill at the grace end.

Real Pod servers and real sockets; every wait is a poll with a generous deadline, never a timed assertion.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from emulators.cluster.termination import ON_SIGTERM_ANNOTATION
from tests.integration.cluster_sim.conftest import Behaviours, condition, http_get, running_behaviours
from tests.support.polling import eventually


def _pod(
    name: str, *, on_sigterm: str | None = None, prestop: dict[str, Any] | None = None, grace: int = 30
) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "web",
        "image": "example/web:v1",
        "ports": [{"name": "http", "containerPort": 8080}],
    }
    if prestop is not None:
        container["lifecycle"] = {"preStop": prestop}
    body: dict[str, Any] = {
        "metadata": {"name": name},
        "spec": {"terminationGracePeriodSeconds": grace, "containers": [container]},
    }
    if on_sigterm is not None:
        body["metadata"]["annotations"] = {ON_SIGTERM_ANNOTATION: on_sigterm}
    return body


def _start(behaviours: Behaviours, body: dict[str, Any]) -> str:
    behaviours.store.create("pods", "default", body)
    name = body["metadata"]["name"]

    def ready() -> str | None:
        pod = behaviours.pod(name)
        state = condition(pod, "Ready")
        return str(pod["status"]["podIP"]) if pod and state and state["status"] == "True" else None

    return eventually(ready, f"pod {name} Ready")


class _Request:
    """One GET in a background thread: its status, or the exception that ended it."""

    def __init__(self, ip: str, delay_ms: int) -> None:
        self.status: int | None = None
        self.error: BaseException | None = None
        self.connected = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ip, delay_ms), daemon=True)
        self._thread.start()
        assert self.connected.wait(10), "the request never connected"

    def _run(self, ip: str, delay_ms: int) -> None:
        connection = http.client.HTTPConnection(ip, 8080, timeout=60)
        try:
            connection.connect()
            connection.request("GET", f"/slow?delay_ms={delay_ms}")
            self.connected.set()
            response = connection.getresponse()
            response.read()
            self.status = response.status
        except (OSError, http.client.HTTPException) as exc:
            self.error = exc
        finally:
            self.connected.set()
            connection.close()

    def finished(self) -> bool:
        self._thread.join(0.05)
        return not self._thread.is_alive()


def _wait_accepted(behaviours: Behaviours, name: str) -> None:
    # A request written to the socket may still sit in the listen backlog, and closing the listener resets
    # those: only a connection the app has accepted is "in flight". On a loaded machine the accept can lag.
    eventually(lambda: behaviours.kubelet.connections_in_flight("default", name) >= 1, f"{name} accepted the request")


@pytest.fixture
def long_grace() -> Iterator[Behaviours]:
    with running_behaviours(max_grace_s=None) as running:
        yield running


def test_default_app_closes_its_listener_on_sigterm_and_finishes_requests_in_flight(long_grace: Behaviours) -> None:
    ip = _start(long_grace, _pod("plain"))
    in_flight = _Request(ip, delay_ms=1500)
    _wait_accepted(long_grace, "plain")
    long_grace.store.delete("pods", "default", "plain")
    # No preStop: SIGTERM at once, the listener closes, new connections are refused ...
    eventually(lambda: http_get(ip, 8080) is None, "listener closed on SIGTERM")
    # ... while the request already accepted is answered, and then the process exits.
    eventually(in_flight.finished, "in-flight request finished")
    assert in_flight.status == 200 and in_flight.error is None
    eventually(lambda: long_grace.pod("plain") is None, "pod removed once its container exited")


def test_serve_for_n_seconds_keeps_answering_after_sigterm(long_grace: Behaviours) -> None:
    ip = _start(long_grace, _pod("lingers", on_sigterm="serve:3"))
    long_grace.store.delete("pods", "default", "lingers")
    eventually(lambda: condition(long_grace.pod("lingers"), "Ready")["status"] == "False", "unready")  # type: ignore[index]
    assert http_get(ip, 8080) is not None, "serve:3 answers new connections right after SIGTERM"
    eventually(lambda: http_get(ip, 8080) is None, "stops serving after 3 s")
    eventually(lambda: long_grace.pod("lingers") is None, "pod removed")


def test_an_app_ignoring_sigterm_is_killed_abruptly_at_the_end_of_the_grace_period(
    long_grace: Behaviours, capfd: pytest.CaptureFixture[str]
) -> None:
    ip = _start(long_grace, _pod("stubborn", on_sigterm="ignore", grace=1))
    in_flight = _Request(ip, delay_ms=20_000)
    _wait_accepted(long_grace, "stubborn")
    long_grace.store.delete("pods", "default", "stubborn")
    assert http_get(ip, 8080) is not None, "SIGTERM ignored: still serving"
    eventually(in_flight.finished, "in-flight request cut by the kill")
    assert in_flight.status is None and isinstance(in_flight.error, (ConnectionError, http.client.HTTPException))
    eventually(lambda: long_grace.pod("stubborn") is None, "pod removed after the kill")
    assert http_get(ip, 8080) is None
    printed = capfd.readouterr()
    assert "Traceback" not in printed.err + printed.out, "a reset connection prints nothing (no BrokenPipe noise)"


@pytest.mark.parametrize(
    "prestop",
    [
        {"exec": {"command": ["sleep", "3"]}},
        {"exec": {"command": ["/bin/sh", "-c", "sleep 3"]}},
        {"sleep": {"seconds": 3}},
    ],
    ids=["exec-sleep", "exec-sh-sleep", "native-sleep"],
)
def test_sleep_prestop_keeps_the_container_serving_before_sigterm(
    long_grace: Behaviours, prestop: dict[str, Any]
) -> None:
    ip = _start(long_grace, _pod("sleeper", prestop=prestop))
    long_grace.store.delete("pods", "default", "sleeper")
    eventually(lambda: condition(long_grace.pod("sleeper"), "Ready")["status"] == "False", "unready")  # type: ignore[index]
    assert http_get(ip, 8080) is not None, "the preStop sleep runs before SIGTERM: still serving"
    eventually(lambda: http_get(ip, 8080) is None, "SIGTERM after the sleep closes the listener")
    eventually(lambda: long_grace.pod("sleeper") is None, "pod removed")


class _HookServer:
    """An HTTP endpoint standing in for a preStop target: records requests, answers when released."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.release = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests.append({"path": self.path, "headers": dict(self.headers.items())})
                outer.release.wait(30)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def test_http_get_prestop_calls_the_host_it_names_and_holds_sigterm_until_answered(long_grace: Behaviours) -> None:
    hook = _HookServer()
    try:
        prestop = {
            "httpGet": {
                "scheme": "HTTP",
                "host": "127.0.0.1",
                "port": hook.port,
                "path": "/drain?ns=default&id=abc",
                "httpHeaders": [{"name": "X-Token", "value": "t-1"}, {"name": "Host", "value": "drain.example"}],
            }
        }
        ip = _start(long_grace, _pod("hooked", prestop=prestop))
        long_grace.store.delete("pods", "default", "hooked")
        request = eventually(lambda: hook.requests and hook.requests[0], "the kubelet called the hook")
        assert request["path"] == "/drain?ns=default&id=abc"
        assert request["headers"]["X-Token"] == "t-1" and request["headers"]["Host"] == "drain.example"
        assert request["headers"]["User-Agent"].startswith("kube-lifecycle/")
        assert http_get(ip, 8080) is not None, "no SIGTERM while the hook is unanswered"
        hook.release.set()
        eventually(lambda: http_get(ip, 8080) is None, "SIGTERM once the hook answered")
        eventually(lambda: long_grace.pod("hooked") is None, "pod removed")
    finally:
        hook.close()


def test_http_get_prestop_on_the_pod_ip_by_port_name(long_grace: Behaviours) -> None:
    # No host: the kubelet calls the Pod's own IP; a named port resolves against the container's ports.
    ip = _start(long_grace, _pod("self-hook", prestop={"httpGet": {"port": "http", "path": "/shutdown"}}))
    long_grace.store.delete("pods", "default", "self-hook")
    eventually(lambda: long_grace.pod("self-hook") is None, "pod removed after its own hook answered")
    assert http_get(ip, 8080) is None
    assert not _events(long_grace, "self-hook", "FailedPreStopHook")


def _events(behaviours: Behaviours, pod: str, reason: str) -> list[dict[str, Any]]:
    events, _ = behaviours.store.list("events", "default")
    return [e for e in events if e["involvedObject"].get("name") == pod and e.get("reason") == reason]


def test_an_unreachable_http_hook_is_a_warning_and_the_pod_still_terminates(long_grace: Behaviours) -> None:
    with ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler) as closed:
        port = closed.server_address[1]  # bound then closed below: nothing listens there
    ip = _start(long_grace, _pod("orphan", prestop={"httpGet": {"host": "127.0.0.1", "port": port, "path": "/x"}}))
    long_grace.store.delete("pods", "default", "orphan")
    eventually(lambda: long_grace.pod("orphan") is None, "pod removed despite the failed hook")
    assert http_get(ip, 8080) is None
    (event,) = eventually(lambda: _events(long_grace, "orphan", "FailedPreStopHook"), "FailedPreStopHook event")
    assert event["type"] == "Warning" and "/x" in event["message"]


def test_a_prestop_overrunning_the_grace_period_is_cut_and_sigterm_follows() -> None:
    with running_behaviours(max_grace_s=None) as behaviours:
        ip = _start(behaviours, _pod("overrun", prestop={"exec": {"command": ["sleep", "600"]}}, grace=1))
        behaviours.store.delete("pods", "default", "overrun")
        # The hook is abandoned after the 1 s grace period; SIGTERM then gets the 2 s minimum.
        eventually(lambda: behaviours.pod("overrun") is None, "pod removed although its hook never finished")
        assert http_get(ip, 8080) is None
