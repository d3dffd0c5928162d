"""The one error type bad stack config raises."""


SHOWN = 80  # characters of a refused value an error quotes


class ConfigError(ValueError):
    """One bad stack config value: names the key, the value and what is allowed."""

    def __init__(self, key: str, value: object, allowed: str) -> None:
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f"config lab:{key} = {_shown(value)} is invalid: {allowed}")


def _shown(value: object) -> str:
    """The value as the error quotes it: a huge one cut to its first SHOWN characters."""
    if isinstance(value, str) and len(value) > SHOWN:
        return f"{value[:SHOWN]!r}... ({len(value)} characters)"
    return repr(value)
