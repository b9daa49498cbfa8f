"""CNI spec versions: parsing, comparing, choosing, and VERSION answers.

libcni_py implements spec versions 0.1.0 to 1.1.0.  Comparison follows Go's
``version.ParseVersion`` (an empty version means 0.1.0; up to three numeric
parts).  Selection from ``cniVersion`` and ``cniVersions`` follows Go libcni
1.2+: the highest of all listed versions that is not newer than what this
runtime implements.
"""

from __future__ import annotations

from ..errors import VersionError
from .value import Value

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = [
    "CURRENT",
    "SPEC_VERSIONS",
    "PluginInfo",
    "family",
    "gte",
    "parse",
    "select",
]

#: Every spec version this runtime implements, oldest first.
SPEC_VERSIONS = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")

#: The newest spec version implemented (what a VERSION probe announces).
CURRENT = SPEC_VERSIONS[-1]

_FAMILIES = {
    "": "020",
    "0.1.0": "020",
    "0.2.0": "020",
    "0.3.0": "040",
    "0.3.1": "040",
    "0.4.0": "040",
    "1.0.0": "100",
    "1.1.0": "100",
}


def parse(text: str) -> tuple[int, int, int]:
    """``"1.0.0"`` -> ``(1, 0, 0)``, as Go's ``version.ParseVersion``.

    Raises:
        VersionError: more than three parts, or a part that is not a number.
    """
    if text == "":
        return (0, 1, 0)
    parts = text.split(".")
    if len(parts) > 3:
        raise VersionError(f'invalid version "{text}": too many parts')
    numbers = [0, 0, 0]
    for index, part in enumerate(parts):
        stripped = part[1:] if part[:1] in "+-" else part
        if not stripped.isascii() or not stripped.isdigit():
            raise VersionError(f'invalid version "{text}": "{part}" is not a number')
        value = int(part)
        if abs(value) > 2**63 - 1:  # Go's strconv.Atoi on 64-bit
            raise VersionError(f'invalid version "{text}": "{part}" is out of range')
        numbers[index] = value
    return (numbers[0], numbers[1], numbers[2])


def gte(text: str, other: str) -> bool:
    """True when version ``text`` >= ``other`` (Go's ``GreaterThanOrEqualTo``)."""
    return parse(text) >= parse(other)


def family(text: str) -> str:
    """The result-type family of a version: ``"020"``, ``"040"`` or ``"100"``.

    Raises:
        VersionError: a version this runtime does not implement.
    """
    fam = _FAMILIES.get(text)
    if fam is None:
        raise VersionError(
            f'unsupported CNI version "{text}"',
            hint=f"this runtime implements {', '.join(SPEC_VERSIONS)}",
        )
    return fam


def select(cni_version: str, cni_versions: Iterable[str] | None) -> str:
    """The version a list runs at, from its ``cniVersion`` and ``cniVersions``.

    Without ``cniVersions`` it is ``cniVersion`` as written.  With it, the
    highest of both that is not newer than :data:`CURRENT` (Go libcni 1.2+);
    when all are newer, ``cniVersion`` as written.

    Raises:
        VersionError: an entry that is not a version at all.
    """
    if cni_versions is None:
        return cni_version
    current = parse(CURRENT)
    candidates: list[tuple[tuple[int, int, int], str]] = []
    for entry in cni_versions:
        parsed = parse(entry)
        if parsed <= current:
            candidates.append((parsed, entry))
    if cni_version:
        parsed = parse(cni_version)
        if parsed <= current:
            candidates.append((parsed, cni_version))
    if not candidates:
        return cni_version
    return max(candidates)[1]


class PluginInfo(Value):
    """A plugin's answer to VERSION: the spec versions it supports."""

    cni_version: str
    supported_versions: tuple[str, ...]

    def supports(self, version: str) -> bool:
        """True if the plugin lists ``version`` (an empty version means 0.1.0)."""
        return (version or "0.1.0") in self.supported_versions

    def to_json(self) -> dict[str, object]:
        """The VERSION answer as a JSON-ready dict."""
        return {"cniVersion": self.cni_version, "supportedVersions": list(self.supported_versions)}


#: What a plugin that does not understand VERSION supports (Go's ``Legacy``).
LEGACY_INFO = PluginInfo(cni_version="0.1.0", supported_versions=("0.1.0",))
