"""Atomic writes: readers never see half a file, and the file gets the permissions `open()` would give."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from milestone_lib.files import atomic_write_json, atomic_write_text


def test_default_mode_is_what_open_gives_and_secrets_can_ask_for_less(tmp_path: Path) -> None:
    with open(tmp_path / "plain.txt", "w") as handle:  # the reference: a plain open() under this umask
        handle.write("x")
    written = atomic_write_text(tmp_path / "report.csv", "a,b\n")
    assert written.stat().st_mode & 0o777 == (tmp_path / "plain.txt").stat().st_mode & 0o777
    secret = atomic_write_text(tmp_path / "credentials.env", "KEY=1\n", mode=0o600)
    assert secret.stat().st_mode & 0o777 == 0o600


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path: Path) -> None:
    target = atomic_write_json(tmp_path / "state.json", {"generation": 1})
    with pytest.raises(TypeError):
        atomic_write_json(target, {"not json": object()})
    assert json.loads(target.read_text()) == {"generation": 1}
    assert sorted(os.listdir(tmp_path)) == ["state.json"]
