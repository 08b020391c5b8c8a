"""One module per deployment target; each returns {relative path: text}."""
