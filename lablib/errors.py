"""The one error type bad stack config raises."""


class ConfigError(ValueError):
    """One bad stack config value: names the key, the value and what is allowed."""

    def __init__(self, key: str, value: object, allowed: str) -> None:
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f"config lab:{key} = {value!r} is invalid: {allowed}")
