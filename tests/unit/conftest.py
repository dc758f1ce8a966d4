"""Unit tests see the settings' defaults, not whatever the developer's shell exports."""

from __future__ import annotations

import pytest

from coderunner.settings import Settings


@pytest.fixture(autouse=True)
def _no_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
