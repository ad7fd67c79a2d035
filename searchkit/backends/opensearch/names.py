"""What an OpenSearch index is called and which of its fields filters read: shared by the export and the searcher
(without the export's pandas and build side)."""

from __future__ import annotations

from ...errors import SearchkitError

UNSLUGGED = ("product_id", "title", "description", "keywords")  # text fields no filter reads as slugs
MAX_NAME_BYTES = 255
NAME_FORBIDDEN = set(' "*\\<|,>/?:#+')  # OpenSearch: MetadataCreateIndexService.validateIndexOrAliasName


def index_name(name: str) -> str:
    """`name` as a cluster accepts it for an index: lower case (capitals are lowered), none of the characters
    OpenSearch refuses, not starting with -, _ or +, not . or .., at most 255 bytes; else one clear line."""
    lowered = name.lower()
    bad = sorted(set(lowered) & NAME_FORBIDDEN)
    if bad or not lowered or lowered[0] in "-_+" or lowered in (".", "..") or len(lowered.encode()) > MAX_NAME_BYTES:
        refused = "".join(sorted(NAME_FORBIDDEN - {" "}))
        raise SearchkitError(f"index name {name!r}: OpenSearch refuses it (no spaces or {refused}, not starting "
                             "with - _ +, at most 255 bytes); give --name")
    return lowered


def slug_columns(types: dict[str, str]) -> list[str]:
    """The text columns exported as slugs for filters (`slug.<column>`)."""
    return [c for c, kind in types.items() if kind == "text" and c not in UNSLUGGED]
