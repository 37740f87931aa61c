"""The gateway membership contract (serving/membership.py): the file, its watcher, the query encoding."""

from __future__ import annotations

from pathlib import Path

import pytest

from milestone_lib.errors import DeploymentError
from milestone_lib.net import free_port
from milestone_lib.serving.membership import (
    EndpointsWatcher,
    Membership,
    decode_membership,
    encode_membership,
    read_endpoints,
    wait_for_membership,
    write_endpoints,
)
from milestone_lib.serving.protocol import model_config_pb2


def test_the_watcher_sees_every_atomic_rewrite_and_skips_a_bad_file(tmp_path: Path) -> None:
    path = tmp_path / "endpoints.json"
    write_endpoints(path, {"detect": ["127.0.0.1:2", "127.0.0.1:1"], "classify": []})
    watcher = EndpointsWatcher(path)
    assert watcher.poll() == {"detect": ["127.0.0.1:1", "127.0.0.1:2"], "classify": []} and watcher.poll() is None
    for port in (3, 4):  # same size, written back to back: each is still a change
        write_endpoints(path, {"detect": [f"127.0.0.1:{port}"], "classify": []})
        assert watcher.poll() == {"detect": [f"127.0.0.1:{port}"], "classify": []}
    path.write_text('{"detect": "127.0.0.1:5"}')
    assert watcher.poll() is None  # logged and ignored until the file changes again
    with pytest.raises(ValueError, match="'detect' must be a list of 'host:port' strings"):
        read_endpoints(path)
    assert EndpointsWatcher(tmp_path / "missing.json").poll() is None  # the deployer may be replacing it


def test_membership_travels_in_model_config_parameters() -> None:
    config = model_config_pb2.ModelConfig(name="pipeline")
    encode_membership(config.parameters, Membership(7, {"detect": ["b:2", "a:1"], "classify": ["c:3"]}))
    assert decode_membership(config.parameters) == Membership(7, {"detect": ["a:1", "b:2"], "classify": ["c:3"]})
    assert Membership(2, {"detect": ["b", "a"]}).matches({"detect": ["a", "b"]})
    assert not Membership(2, {"detect": ["a"]}).matches({"detect": ["a", "b"]})
    encode_membership(config.parameters, Membership(1, {"detect": ["a:1"]}, "f00d"))
    assert decode_membership(config.parameters).instance == "f00d"


def test_a_restarted_gateway_counts_as_newer_whatever_its_generation() -> None:
    before = Membership(5, {"detect": ["a:1"]}, "old")
    assert Membership(6, instance="old").newer_than(before) and not Membership(5, instance="old").newer_than(before)
    assert Membership(1, instance="new").newer_than(before)  # restarted: generations start again at 1
    assert Membership(1, instance="new").newer_than(None)


def test_waiting_on_a_gateway_that_does_not_answer_names_it_and_what_was_expected() -> None:
    address = f"127.0.0.1:{free_port()}"
    with pytest.raises(DeploymentError, match=rf"the gateway at {address} did not report membership "
                                              r"\{'detect': \['x:1'\]\} after generation 4.*an error") as info:
        wait_for_membership(address, expected={"detect": ["x:1"]}, after=Membership(4, instance="x"), timeout_s=0.2,
                            hint="read gateway.err")
    assert str(info.value).endswith("read gateway.err")
    calls: list[int] = []

    def gateway_died() -> None:
        calls.append(1)
        raise DeploymentError("the gateway exited")

    with pytest.raises(DeploymentError, match="the gateway exited"):
        wait_for_membership(address, timeout_s=5, check=gateway_died)
    assert calls == [1]  # checked before the first query
