"""HTTP over the library: the FastAPI app and its page."""
