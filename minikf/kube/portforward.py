"""`kubectl port-forward` in Python: a listener on 127.0.0.1 that relays each connection to a
pod's port through the API server (kubernetes.stream.portforward).

The relay is separate from how the remote end is opened (`open_remote`), so it is tested here
with a real TCP server; the kubernetes client's websocket port-forward needs a real API server.
"""

from __future__ import annotations

import re
import select
import socket
import threading
from collections.abc import Callable


class Relay:
    """Accept on 127.0.0.1:<free port>; pipe each connection to a fresh `open_remote()` socket."""

    def __init__(self, open_remote: Callable[[], socket.socket]) -> None:
        self._open_remote = open_remote
        self._listener: socket.socket | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.errors: list[str] = []

    def start(self) -> str:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self._listener.settimeout(0.2)
        thread = threading.Thread(target=self._accept, name="minikf-port-forward", daemon=True)
        thread.start()
        self._threads.append(thread)
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                local, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._pipe, args=(local,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _pipe(self, local: socket.socket) -> None:
        try:
            remote = self._open_remote()
        except Exception as exc:  # noqa: BLE001 - the client sees a closed connection; we keep why
            self.errors.append(f"{type(exc).__name__}: {exc}")
            local.close()
            return
        pair = {local: remote, remote: local}
        try:
            while not self._stop.is_set():
                readable, _, _ = select.select(list(pair), [], [], 0.2)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    pair[sock].sendall(data)
        except OSError:
            return
        finally:
            local.close()
            self._closed(remote)
            remote.close()

    def _closed(self, remote: socket.socket) -> None:
        """Called as each relayed connection ends; a remote end with errors of its own adds them."""

    def close(self) -> None:
        self._stop.set()
        if self._listener is not None:
            self._listener.close()
        for thread in self._threads:
            thread.join(timeout=2)


def api_error_message(exc: BaseException) -> str:
    """The API server's own words from a refused port-forward ("pods "x" not found", "pod x does
    not have a host assigned"), not the websocket handshake's headers."""
    text = f"{getattr(exc, 'body', None) or ''} {exc}"
    found = re.search(r'"message":\s*"((?:[^"\\]|\\.)*)"', text)
    if found:
        status = re.search(r'"code":\s*(\d+)', text)
        message = found.group(1).replace('\\"', '"')
        return f"{message} (HTTP {status.group(1)})" if status else message
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


class PortForward(Relay):
    """A Relay whose remote end is the pod's port through the API server. What the API server
    says when it refuses (no such pod, no host assigned) or ends a stream with an error is kept
    in `errors`, in its words."""

    def __init__(self, api_client, namespace: str, pod: str, port: int) -> None:
        super().__init__(self._open)
        self._config = api_client.configuration
        self.namespace, self.pod, self.port = namespace, pod, port
        self._streams: dict[int, object] = {}

    def _open(self) -> socket.socket:
        from kubernetes import client
        from kubernetes.client.rest import ApiException
        from kubernetes.stream import portforward

        # its own ApiClient: the stream helper swaps the client's request method while it runs
        api = client.CoreV1Api(client.ApiClient(self._config))
        try:
            forward = portforward(api.connect_get_namespaced_pod_portforward, self.pod, self.namespace,
                                  ports=str(self.port))
        except ApiException as exc:
            raise ConnectionRefusedError(f"the API server refused the port-forward to pod "
                                         f"{self.pod}: {api_error_message(exc)}") from None
        remote = forward.socket(self.port)
        self._streams[id(remote)] = forward
        return remote

    def _closed(self, remote: socket.socket) -> None:
        forward = self._streams.pop(id(remote), None)
        error = forward.error(self.port) if forward is not None else None
        if error:
            self.errors.append(f"the port-forward to pod {self.pod} ended with an error: {error.strip()}")
