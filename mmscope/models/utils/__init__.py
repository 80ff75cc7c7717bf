"""Helpers shared by the mmscope backbones that are not layers."""
from .key_rules import BACKBONE_PREFIX, KeyRules, strip_backbone_prefix

__all__ = ['BACKBONE_PREFIX', 'KeyRules', 'strip_backbone_prefix']
