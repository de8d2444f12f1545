"""Origins as browsers send them, ARENA_WS_ALLOWED_ORIGINS, and who may open /ws."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.common.origins import normalise_origin
from services.common.settings import Settings
from services.gateway.origin_policy import OriginPolicy

# As written in the setting -> as a browser sends it in its Origin header.
NORMALISED = {
    "http://127.0.0.1:8000": "http://127.0.0.1:8000",
    "HTTPS://Arena.Example.com:443/": "https://arena.example.com",
    "http://arena.example.com:80": "http://arena.example.com",
    " https://arena.example.com:8443 ": "https://arena.example.com:8443",
    "http://[::1]:8000": "http://[::1]:8000",
}
NOT_ORIGINS = (
    "null", "arena.example.com", "ftp://arena.example.com", "http://", "http://a.b/path",
    "http://a.b?x=1", "http://user@a.b", "http://a.b:99999",
)  # fmt: skip


@pytest.mark.parametrize(("text", "origin"), NORMALISED.items())
def test_origins_are_normalised_as_browsers_send_them(text: str, origin: str) -> None:
    assert normalise_origin(text) == origin


@pytest.mark.parametrize("text", NOT_ORIGINS)
def test_what_is_not_an_origin_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="is not an origin"):
        normalise_origin(text)


def test_the_setting_is_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARENA_WS_ALLOWED_ORIGINS", "https://Arena.example.com, http://lan:8000,")
    settings = Settings(_env_file=None)
    assert settings.ws_allowed_origins == ("https://arena.example.com", "http://lan:8000")
    monkeypatch.setenv("ARENA_WS_ALLOWED_ORIGINS", "")
    assert Settings(_env_file=None).ws_allowed_origins == ()


def test_a_bad_origin_in_the_setting_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARENA_WS_ALLOWED_ORIGINS", "https://ok.example.com,arena.example.com")
    with pytest.raises(
        ValidationError, match=r"ARENA_WS_ALLOWED_ORIGINS[\s\S]*'arena.example.com'"
    ):
        Settings(_env_file=None)


def test_websocket_limits_have_safe_defaults() -> None:
    settings = Settings(_env_file=None)
    assert settings.ws_max_clients == 500
    assert settings.ws_allowed_origins == ()
    assert settings.ws_client_buffer_bytes == 1024 * 1024
    assert settings.ws_send_timeout == 5


def test_same_origin_by_default_on_the_bound_port() -> None:
    policy = OriginPolicy.configured((), "0.0.0.0", 8123)
    assert policy.allowed == {
        "http://0.0.0.0:8123",
        "http://localhost:8123",
        "http://127.0.0.1:8123",
        "http://[::1]:8123",
    }
    assert policy.allows("http://localhost:8123")
    assert policy.allows("HTTP://127.0.0.1:8123")
    assert not policy.allows("http://localhost:8000")  # another port is another origin
    assert not policy.allows("https://evil.example")
    assert not policy.allows("null")
    assert policy.allows(None)  # not a browser


def test_a_configured_list_replaces_the_default() -> None:
    policy = OriginPolicy.configured(("https://arena.example.com",), "127.0.0.1", 8000)
    assert policy.allows("https://arena.example.com:443")
    assert not policy.allows("http://127.0.0.1:8000")
    assert OriginPolicy.configured(("*",), "127.0.0.1", 8000).allows("https://evil.example")
