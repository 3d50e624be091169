"""connect() finds the daemon as the CLI does (src/config.rs default_socket_path)."""

from __future__ import annotations

import os

import agentjail
from agentjail import _socket


def test_env_var_wins(monkeypatch):
    monkeypatch.setenv("AGENTJAIL_SOCKET", "/srv/aj.sock")
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert agentjail.default_socket() == "/srv/aj.sock"


def test_root_uses_the_system_socket(monkeypatch):
    monkeypatch.delenv("AGENTJAIL_SOCKET", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/0")
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert agentjail.default_socket() == "/run/agentjail/agentjail.sock"


def test_other_users_use_xdg_runtime_dir(monkeypatch):
    monkeypatch.delenv("AGENTJAIL_SOCKET", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1000")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert agentjail.default_socket() == "/run/user/1000/agentjail.sock"


def test_without_xdg_runtime_dir_a_per_uid_temp_socket(monkeypatch):
    monkeypatch.delenv("AGENTJAIL_SOCKET", raising=False)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setenv("TMPDIR", "/var/tmp")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(os, "getuid", lambda: 1000)
    monkeypatch.setattr(_socket.tempfile, "tempdir", None)
    assert agentjail.default_socket() == "/var/tmp/agentjail-1000.sock"


def test_socket_forms(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _socket.resolve_socket("unix:///run/x.sock") == "/run/x.sock"
    assert _socket.resolve_socket("rel.sock") == str(tmp_path / "rel.sock")


def test_connect_uses_the_env_var(daemon, monkeypatch):
    monkeypatch.setenv("AGENTJAIL_SOCKET", str(daemon.socket))
    with agentjail.connect() as c:
        assert c.socket == str(daemon.socket)
        assert c.whoami().agent == "local"
