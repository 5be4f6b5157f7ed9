"""Entity tags. A task's ETag is its version, quoted (`"3"`); If-Match and If-None-Match name
versions the client has seen (RFC 9110 sections 8.8.3 and 13.1).

Parsing fails closed: a field that is not `*` or a well-formed list of entity tags, or whose
tags name none of our versions exactly (`"01"` is not `"1"`), matches nothing. A write
guarded by it is refused with 412, and a conditional GET returns the full task.
"""

import re
from dataclasses import dataclass

_TAG = r'(W/)?"([!#-~]*)"'  # etagc: visible ASCII except the double quote
_MEMBER = re.compile(_TAG)
# RFC 9110's list syntax: empty elements between commas are allowed, anything else is not.
# Possessive quantifiers: no backtracking, so a hostile 1 KiB field costs linear time.
_TAG_LIST = re.compile(rf"[ \t]*+(?:{_TAG})?+(?:[ \t]*+,[ \t]*+(?:{_TAG})?+)*+[ \t]*+")
_MAX_VERSION_DIGITS = 18  # fits a bigint


@dataclass(frozen=True)
class EntityTags:
    """A parsed If-Match or If-None-Match field: `*`, or the versions its entity tags name."""

    any: bool
    strong_versions: frozenset[int] = frozenset()
    weak_versions: frozenset[int] = frozenset()

    @classmethod
    def parse(cls, field: str) -> "EntityTags":
        if field.strip() == "*":
            return cls(any=True)
        if not _TAG_LIST.fullmatch(field):
            return cls(any=False)
        strong: set[int] = set()
        weak: set[int] = set()
        for is_weak, opaque in _MEMBER.findall(field):
            version = _version(opaque)
            if version is not None:
                (weak if is_weak else strong).add(version)
        return cls(any=False, strong_versions=frozenset(strong), weak_versions=frozenset(weak))

    def matches_weakly(self, version: int) -> bool:
        """If-None-Match: weak and strong tags alike (weak comparison)."""
        return self.any or version in self.strong_versions or version in self.weak_versions


def _version(opaque: str) -> int | None:
    """The version an opaque tag spells exactly as our ETags do, if any."""
    if not (opaque.isascii() and opaque.isdigit()) or len(opaque) > _MAX_VERSION_DIGITS:
        return None
    version = int(opaque)
    return version if str(version) == opaque else None


def etag(version: int) -> str:
    return f'"{version}"'
