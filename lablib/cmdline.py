"""lab:kernelCmdline in the form terraform-provider-libvirt 0.8.1 (pulumi-libvirt 0.5.4) keeps.

The provider takes `cmdlines`, a list of maps, and writes the domain's
command line as the SORTED list of its "key=value" (or, for key "_", bare)
entries joined by spaces (setCmdlineArgs). Reading the domain back it splits
that line at single spaces into maps, starting a new map when a key repeats,
and puts all bare words, joined, in one last {"_": ...} map
(splitKernelCmdLine). Any other shape than that read-back is a diff, and a
replacement, on every run; anything the round trip cannot carry is refused.
"""
from __future__ import annotations

from lablib.errors import ConfigError

MAX_CMDLINE = 2047  # x86 COMMAND_LINE_SIZE 2048, with its NUL


def provider_line(cmdlines: list[dict[str, str]]) -> str:
    """The domain's <cmdline> the provider writes for cmdlines (setCmdlineArgs)."""
    entries = [value if key == "_" else f"{key}={value}" for entry in cmdlines for key, value in entry.items()]
    return " ".join(sorted(entries))


def provider_read(line: str) -> list[dict[str, str]]:
    """What the provider reads back from a domain's <cmdline> (splitKernelCmdLine)."""
    if not line:
        return []
    maps: list[dict[str, str]] = []
    current: dict[str, str] = {}
    bare: list[str] = []
    for word in line.split(" "):
        if "=" not in word:
            bare.append(word)
            continue
        key, _, value = word.partition("=")
        if key in current:
            maps.append(current)
            current = {}
        current[key] = value
    maps += [current] if current else []
    return maps + ([{"_": " ".join(bare)}] if bare else [])


def _error(cmdline: str, why: str) -> ConfigError:
    return ConfigError("kernelCmdline", cmdline, why)


def _values_in_order(words: list[str]) -> dict[str, list[str]]:
    """Each key's values in command-line order: the order the kernel applies repeats in."""
    seen: dict[str, list[str]] = {}
    for word in words:
        key, sep, value = word.partition("=")
        if sep:
            seen.setdefault(key, []).append(value)
    return seen


def kernel_cmdlines(cmdline: str) -> list[dict[str, str]]:
    """The provider's cmdlines for cmdline, as it reads them back; ConfigError if the provider
    would hand the kernel a different command line than the one written (up to the order of
    different parameters, which the kernel ignores)."""
    if len(cmdline) > MAX_CMDLINE:
        raise _error(cmdline, f"is longer than the kernel's {MAX_CMDLINE} characters")
    words = cmdline.split()
    if any(not word.isascii() or not word.isprintable() for word in words):
        raise _error(cmdline, "must be printable ASCII words separated by spaces")
    if '"' in cmdline and any(word.count('"') % 2 for word in words):
        raise _error(cmdline, "has a quoted value with a space: the libvirt provider splits the command line "
                              "at every space when it reads it back, so the quotes cannot be kept")
    if "--" in words:
        raise _error(cmdline, "has `--` (arguments for init): the libvirt provider sorts the parameters, "
                              "so what follows `--` would not stay after it")
    for word in words:
        key, sep, _ = word.partition("=")
        if sep and key in ("", "_"):
            raise _error(cmdline, f"parameter {word!r} has no usable name (the provider reserves `_`)")
    pairs = [word.partition("=") for word in words]
    cmdlines = provider_read(provider_line([{key: value} if sep else {"_": key} for key, sep, value in pairs]))
    domain_line = provider_line(cmdlines)
    written, passed = _values_in_order(words), _values_in_order(domain_line.split(" "))
    for key, values in written.items():
        if passed[key] != values:
            raise _error(cmdline, f"repeats {key}= in an order the libvirt provider does not keep (it sorts the "
                                  f"parameters, giving {' '.join(f'{key}={v}' for v in passed[key])}); "
                                  "write the repeats in sorted order, or once")
    if provider_read(domain_line) != cmdlines:  # what the next run compares against
        raise _error(cmdline, "has a form the libvirt provider does not read back the same way")
    return cmdlines
