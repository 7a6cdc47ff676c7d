"""How a worker turns its failure into an exit code the launcher can weigh (contract.PEER_ECHO_CODES)."""

from __future__ import annotations

import pytest

from minikf.workload import train_worker
from minikf.workload.contract import EXIT_PEER_LOST, EXIT_PEER_TIMEOUT, PEER_ECHO_CODES


def _raise(exc: BaseException):
    raise exc


@pytest.mark.parametrize("exc, code", [
    (RuntimeError("[gloo/transport/tcp/pair.cc:537] Read error [127.0.0.1]:11477: Connection reset by "
                  "peer. This is typically caused by a remote worker hanging"), EXIT_PEER_LOST),
    (RuntimeError("[pair.cc:598] Connection closed by peer [127.0.0.1]:40000"), EXIT_PEER_LOST),
    (RuntimeError("Timed out waiting 3000ms for recv operation to complete"), EXIT_PEER_TIMEOUT),
    (ValueError("bad shape"), 1),
])
def test_a_lost_peer_and_a_timeout_are_echo_codes_anything_else_is_one(exc, code, capsys):
    assert train_worker.exit_code_of(_raise, exc) == code
    assert (code in PEER_ECHO_CODES) == (code != 1)
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("minikf: rank")
