"""The settlement store: staged settlement lines, matching results, exceptions and journals."""
