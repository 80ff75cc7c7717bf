"""Helpers shared by the mmscope backbones that are not layers: checkpoint key renaming
(:mod:`.key_rules`), the released-checkpoint key tables of the built-in families
(:mod:`.key_tables`) and arch-name resolution (:mod:`.arch_names`)."""
from .arch_names import resolve_arch_alias
from .key_rules import BACKBONE_PREFIX, KeyRules, strip_backbone_prefix
from .key_tables import (SCALABLEVIT_KEY_RULES, SCALABLEVIT_OFFICIAL_TO_MMSCOPE, SCOPEVIT_KEY_RULES,
                         SCOPEVIT_OFFICIAL_TO_MMSCOPE)

__all__ = [
    'BACKBONE_PREFIX', 'KeyRules', 'strip_backbone_prefix', 'resolve_arch_alias',
    'SCALABLEVIT_KEY_RULES', 'SCALABLEVIT_OFFICIAL_TO_MMSCOPE', 'SCOPEVIT_KEY_RULES',
    'SCOPEVIT_OFFICIAL_TO_MMSCOPE'
]
