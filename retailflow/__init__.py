"""retailflow application shell: settings, logging, database, CLI and the embedded dev stack."""
