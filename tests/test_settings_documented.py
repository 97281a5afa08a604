"""Every setting is documented in the README under its environment variable name."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import BaseModel

from grounded.errors import ConfigError
from grounded.settings import Settings, load_settings
from tests.conftest import ROOT


def env_names(model: type[BaseModel], prefix: str = "GROUNDED_") -> Iterator[str]:
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from env_names(annotation, f"{prefix}{name.upper()}__")
        else:
            yield f"{prefix}{name.upper()}"


def test_every_setting_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [name for name in env_names(Settings) if f"`{name}`" not in readme]
    assert missing == []
    assert "`GROUNDED_CONFIG`" in readme


def test_environment_and_config_file_are_both_read(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "grounded.toml"
    config.write_text('collection = "manuals"\n[chunk]\nmax_tokens = 384\noverlap_tokens = 64\n')
    monkeypatch.setenv("GROUNDED_CONFIG", str(config))
    monkeypatch.setenv("GROUNDED_RETRIEVE__K", "7")
    settings = load_settings()
    assert (settings.collection, settings.chunk.max_tokens, settings.retrieve.k) == (
        "manuals",
        384,
        7,
    )
    monkeypatch.setenv("GROUNDED_CHUNK__MAX_TOKENS", "512")
    assert load_settings().chunk.max_tokens == 512, "environment wins over the file"


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("GROUNDED_CHUNK__OVERLAP_TOKENS", "200", "overlap_tokens"),
        ("GROUNDED_COLLECTION", "bad name;", "collection"),
        ("GROUNDED_EMBED__BACKEND", "magic", "embed.backend"),
    ],
)
def test_bad_settings_name_the_setting(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, named: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=named):
        load_settings()
