"""Arch names: the one rule that turns a user's spelling into a canonical arch name."""
from typing import Mapping

__all__ = ['resolve_arch_alias']


def resolve_arch_alias(arch: str, aliases: Mapping[str, str]) -> str:
    """``arch`` lower-cased, then through ``aliases`` (other spelling -> canonical name):
    ``'T'`` -> ``'tiny'``, ``'Tiny'`` -> ``'tiny'``. Whether the result is a known arch is
    the caller's check (each says what is valid for it): the backbone's ``parse_arch``,
    the family descriptor's ``canonical_arch`` and the released-code loader's
    ``official_arch`` all resolve through this function."""
    key = str(arch).lower()
    return aliases.get(key, key)
