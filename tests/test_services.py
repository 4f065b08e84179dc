"""The service fixtures: a missing service fails in CI and skips locally."""

from __future__ import annotations

import pytest


def test_service_fixture_fails_in_ci_and_skips_locally(monkeypatch):
    from support import services

    closed = services.Service("Nothing", "127.0.0.1", 9, "nothing to start")
    monkeypatch.setitem(services.SERVICES, "nothing", closed)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI requires Nothing"):
        services.require("nothing")
    monkeypatch.setenv("CI", "")
    with pytest.raises(pytest.skip.Exception):
        services.require("nothing")
