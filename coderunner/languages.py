"""The language catalogue, read from languages.toml: adding a language is a data change."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from coderunner.domain import AppliedLimits
from coderunner.settings import ImageSet

CATALOGUE = Path(__file__).with_name("languages.toml")


@dataclass(frozen=True, slots=True)
class Language:
    id: str
    name: str
    version: str
    file: str
    run: tuple[str, ...]
    compile: tuple[str, ...] | None
    images: dict[str, str]
    limits: AppliedLimits
    compile_limits: AppliedLimits

    @property
    def compiled(self) -> bool:
        return self.compile is not None

    def image(self, image_set: ImageSet) -> str:
        return self.images[image_set.value]


def load_languages(path: Path = CATALOGUE) -> dict[str, Language]:
    """Parse the catalogue; a broken entry raises ValueError naming the language and field."""
    data = tomllib.loads(path.read_text())
    defaults = data.pop("defaults")
    return {lang_id: _language(lang_id, entry, defaults) for lang_id, entry in data.items()}


@cache
def languages() -> dict[str, Language]:
    """The packaged catalogue, parsed once."""
    return load_languages()


def _language(lang_id: str, entry: dict[str, Any], defaults: dict[str, int]) -> Language:
    try:
        limits = {**defaults, **entry.get("limits", {})}
        return Language(
            id=lang_id,
            name=entry["name"],
            version=str(entry["version"]),
            file=entry["file"],
            run=tuple(entry["run"]),
            compile=tuple(entry["compile"]) if "compile" in entry else None,
            images=dict(entry["image"]),
            limits=_limits(limits, prefix=""),
            compile_limits=_limits(limits, prefix="compile_"),
        )
    except KeyError as exc:
        raise ValueError(f"languages.toml: [{lang_id}] lacks required field {exc}") from None


def _limits(values: dict[str, int], prefix: str) -> AppliedLimits:
    def pick(name: str) -> int:
        return values.get(prefix + name, values[name])

    return AppliedLimits(**{name: pick(name) for name in AppliedLimits.model_fields})
