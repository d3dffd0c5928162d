"""Checks of raw config text: shape, numerals, paths and URLs, the direct-boot keys.

Every plain value ends in a VM's files, a libvirt object or a Pulumi resource,
so what may not be there (control characters, huge strings, odd numerals,
relative paths, other URL schemes) is refused here, naming the key.
"""
from __future__ import annotations

import itertools
import os
import re
import urllib.parse
from typing import Mapping

from lablib import names
from lablib.errors import ConfigError

MAX_TEXT = 4096  # longer than any path, URL or key line (RSA 16384) a user types
MAX_SHORT = 64  # numbers, networks, choices
MAX_LENGTH = {"ike": 512, "esp": 512, "poolPath": MAX_TEXT, "sshPublicKey": MAX_TEXT,
              **dict.fromkeys(("routedSpokes", "vtiSpokes", "xfrmSpokes", "pskSpokes", "certSpokes",
                               "revokedSpokes", "asDeployedSpokes", "kernelGreSpokes", "tcpSpokes"), 2048),  # 250 spoke numbers
              "spokeWans": 4 * MAX_TEXT,  # 250 spokes' settings
              "idDomain": 253,  # a DNS name's most (lablib/auth.py checks the whole ID)
              "hosts": 16 * MAX_TEXT, "spokeHosts": 4 * MAX_TEXT,  # lablib/hosts.py: 64 hosts, 250 pins
              **{key: MAX_TEXT for key in ("image", "kernel", "initrd", "kernelCmdline",
                                           "hubImage", "hubKernel", "hubInitrd", "hubKernelCmdline")}}
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_DIGITS = re.compile(r"[0-9]{1,9}")
_INT_LIST = re.compile(r"\[\s*(?:[0-9]{1,9}(?:\s*,\s*[0-9]{1,9})*\s*)?\]")


def check_texts(raw: Mapping[str, str | None]) -> None:
    """One line of plain text per value: no control characters (NUL, newline, ...), no huge strings."""
    for key, text in raw.items():
        if text is None:
            continue
        limit = MAX_LENGTH.get(key, MAX_SHORT)
        if len(text) > limit:
            raise ConfigError(key, text, f"is longer than {limit} characters")
        bad = _CONTROL.search(text)
        if bad:
            raise ConfigError(key, text, f"contains control character {bad.group()!r} at {bad.start()}: "
                                         "values must be one line of text")


def check_secret_text(key: str, secret: str) -> None:
    """A secret of whitespace only, or with a NUL byte, is a paste gone wrong."""
    if not secret.strip():
        raise ConfigError(key, "[secret]", "is only whitespace")
    if "\x00" in secret:
        raise ConfigError(key, "[secret]", "contains a NUL byte")


def integer_text(key: str, text: str, low: int, high: int) -> int:
    """Plain ASCII decimal digits only: not "1e3", "0x10", "٣", " 2 ", "+2" or "2_0"."""
    allowed = f"must be an integer from {low} to {high} (decimal digits only)"
    if not _DIGITS.fullmatch(text):
        raise ConfigError(key, text, allowed)
    value = int(text)
    if not low <= value <= high:
        raise ConfigError(key, text, allowed)
    return value


def integer_list_text(key: str, text: str, allowed: str) -> list[int]:
    """A JSON array of plain decimal integers, as Pulumi hands an integer array; nothing nested."""
    if not _INT_LIST.fullmatch(text):
        raise ConfigError(key, text, allowed)
    return [int(number) for number in re.findall(r"[0-9]+", text)]


def required(raw: Mapping[str, str | None], key: str) -> str:
    value = raw.get(key)
    if value is None:
        raise ConfigError(key, None, "is missing (Pulumi.yaml declares its default)")
    return value


def spoke_numbers(raw: Mapping[str, str | None], key: str, spokes: int) -> frozenset[int]:
    """A list of distinct spoke numbers from 1 to spokes (routedSpokes, vtiSpokes, ...)."""
    text = required(raw, key)
    allowed = f"must be a list of distinct spoke numbers from 1 to {spokes}"
    numbers = integer_list_text(key, text, allowed)
    if not all(1 <= n <= spokes for n in numbers):
        raise ConfigError(key, text, allowed)
    if len(set(numbers)) != len(numbers):
        raise ConfigError(key, text, allowed)
    return frozenset(numbers)


def spoke_exceptions(raw: Mapping[str, str | None], keys: Mapping[str, str], spokes: int, default: str,
                     what: str) -> tuple[tuple[int, str], ...]:
    """Per-spoke exceptions to a default: keys maps each value to the key listing the spokes that
    take it (vtiSpokes / xfrmSpokes, pskSpokes / certSpokes). Returns (spoke, value) where the value
    is not the default, sorted; a spoke in two lists is an error naming both keys."""
    listed = {value: spoke_numbers(raw, key, spokes) for value, key in keys.items()}
    for (first, in_first), (second, in_second) in itertools.combinations(listed.items(), 2):
        both = in_first & in_second
        if both:
            raise ConfigError(keys[first], required(raw, keys[first]),
                              f"lists spoke(s) {sorted(both)} that {keys[second]} lists too: a spoke has one {what}")
    return tuple(sorted((n, value) for value, numbers in listed.items() if value != default for n in numbers))


CACHE_TOKEN = "$LAB_CACHE"  # in a boot file path: the lab's cache (lab.env, or LAB_CACHE if set)


def boot_file(key: str, text: str) -> str:
    """An http(s) URL, or an absolute path (after ~ and a leading $LAB_CACHE) to an existing file;
    return what Pulumi gets. $LAB_CACHE lets the committed stacks name the lab image wherever the
    cache is, without spelling its location."""
    if "://" in text:
        return _boot_url(key, text)
    if text == CACHE_TOKEN or text.startswith(CACHE_TOKEN + "/"):
        text = str(names.CACHE_DIR) + text[len(CACHE_TOKEN):]
    path = os.path.expanduser(text)
    if not os.path.isabs(path):
        raise ConfigError(key, text, "must be an absolute path (~ allowed) or an http(s) URL")
    if not os.path.isfile(path):
        raise ConfigError(key, text, f"names no existing file ({path})")
    return path


def directory_path(key: str, text: str) -> str:
    """An absolute directory path, normalised as libvirt stores a pool's target (it drops // and a
    trailing /): the path the provider reads back is the one declared, so no diff on the next run."""
    if not os.path.isabs(text):
        raise ConfigError(key, text, "must be an absolute directory path")
    path = "/" + os.path.normpath(text).lstrip("/")
    if os.path.exists(path) and not os.path.isdir(path):
        raise ConfigError(key, text, f"names {path}, which exists and is not a directory")
    return path


def _boot_url(key: str, text: str) -> str:
    try:
        url = urllib.parse.urlsplit(text)
        host, _ = url.hostname, url.port  # both parse lazily: a bad host or port raises here
    except ValueError as error:
        raise ConfigError(key, text, f"is not a valid URL ({error})") from None
    if url.scheme not in ("http", "https"):
        raise ConfigError(key, text, "must be an http(s) URL or an absolute path to an existing file "
                                     f"(scheme {url.scheme!r} is not fetched)")
    if not host or " " in text:
        raise ConfigError(key, text, "must be an http(s) URL with a host and no space (write %20)")
    if url.username is not None or url.password is not None:
        raise ConfigError(key, "[URL with credentials]", "must not carry a user or password: the URL is "
                                                         "kept in plain text in the Pulumi state")
    return text


def direct_boot(given: dict[str, str], optional: str) -> None:
    """The kernel, initrd and command-line keys (in that order, e.g. kernel, initrd, kernelCmdline)
    come together, except the optional one (the initrd: the lab's own kernel needs none); the error
    names the key really missing."""
    if not any(given.values()):
        return
    needed = [key for key in given if key != optional]
    missing = [key for key in needed if not given[key]]
    if missing:
        set_keys = " and ".join(f"lab:{key}" for key, value in given.items() if value)
        raise ConfigError(missing[0], "", f"is missing: {set_keys} set means direct kernel boot, "
                                          f"which needs {' and '.join(needed)} ({optional} optional)")
