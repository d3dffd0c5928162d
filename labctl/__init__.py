"""labctl: the lab's command-line program (`python -m labctl --help`); the tests call the same code."""
