"""Entity tags. A task's ETag is its version, quoted (`"3"`); If-Match and If-None-Match name
versions the client has seen (RFC 9110 sections 8.8.3 and 13.1).

Parsing fails closed: a field that names none of our versions (malformed, weak where strong
comparison is needed, or another server's tags) matches nothing, so a write guarded by it is
refused with 412 and a conditional GET returns the full task.
"""

import re
from dataclasses import dataclass

_ENTITY_TAG = re.compile(r'(W/)?"([!#-~]*)"')  # etagc: visible ASCII except the double quote
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
        strong, weak = set(), set()
        for is_weak, opaque in _ENTITY_TAG.findall(field):
            if opaque.isdigit() and len(opaque) <= _MAX_VERSION_DIGITS:
                (weak if is_weak else strong).add(int(opaque))
        return cls(any=False, strong_versions=frozenset(strong), weak_versions=frozenset(weak))

    def matches_weakly(self, version: int) -> bool:
        """If-None-Match: weak and strong tags alike (weak comparison)."""
        return self.any or version in self.strong_versions or version in self.weak_versions


def etag(version: int) -> str:
    return f'"{version}"'
