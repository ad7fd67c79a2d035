"""Typed errors raised by the library; the CLI turns each into one clear line and a non-zero exit."""


class SearchkitError(Exception):
    """Base class for every error searchkit raises on purpose."""


class CatalogError(SearchkitError):
    """A catalog or pairs file cannot be used: unreadable, missing columns, bad rows."""


class IndexFormatError(SearchkitError):
    """An index folder is missing, broken, from another format version, or inconsistent."""


class IndexMismatchError(IndexFormatError):
    """An index is intact but does not fit what it is used with (another model, text pipeline or dimension)."""


class ModelError(SearchkitError):
    """A model folder cannot be loaded."""


class QueryError(SearchkitError):
    """A query or its options are not usable (empty text, k < 1, unknown filter)."""
