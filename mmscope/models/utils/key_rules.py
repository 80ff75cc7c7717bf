"""Template-based renaming of checkpoint keys between official models and mmscope.

The rule *tables* of the built-in families are in :mod:`.key_tables`; this module is the
one engine that applies such a table in both directions. The convention is the same for all
families: official keys are mapped to the keys of an mmpretrain ``ImageClassifier``
built with the backbone, i.e. ``backbone.``-prefixed backbone keys and ``head.``-prefixed
classifier-head keys. :func:`strip_backbone_prefix` turns such a state dict into the
bare keys of the backbone module itself.
"""
import re
from collections import OrderedDict
from typing import Callable, Dict, Mapping, Optional, Sequence, Tuple

#: Prefix of the backbone keys of an mmpretrain/mmdet/mmseg model.
BACKBONE_PREFIX = 'backbone.'

_FIELD = re.compile(r'\{(\w+)\}')


def strip_backbone_prefix(state_dict: Mapping, prefix: str = BACKBONE_PREFIX) -> 'OrderedDict':
    """The ``prefix``-ed entries of ``state_dict`` with the prefix removed (bare backbone
    keys); all other entries (neck, heads) are dropped."""
    return OrderedDict((k[len(prefix):], v) for k, v in state_dict.items() if k.startswith(prefix))


class KeyRules:
    """A one-to-one renaming between official keys and mmscope classifier keys.

    The renaming is a table of ``(official template, mmscope template)`` pairs; the first
    pair whose source template matches the *whole* key is used. A template is a key with
    ``{name}`` fields:

    * ``placeholders[name]``: the regular expression the field matches (without groups),
      e.g. ``r'\\d+'``; the matched text is copied into the other template;
    * ``derived[name]``: a function of the matched fields (a ``dict`` of strings) giving
      a field of the target template that the source does not have, e.g. ScopeViT's
      1-based stage ``{S}`` from the 0-based ``{s}`` (a field can be both: matched where
      it appears, derived where it does not);
    * ``constants[name]``: a function of ``num_stages`` whose value replaces the field
      literally in both templates before matching, e.g. ScalableViT's ``{last}``.

    Args:
        rules: ``(official, mmscope)`` template pairs; mmscope templates start with
            ``backbone.`` or ``head.``.
        placeholders: field name -> regular expression.
        derived: field name -> function of the matched fields.
        constants: field name -> function of ``num_stages``.
        family: model name used in error messages.
    """

    def __init__(self,
                 rules: Sequence[Tuple[str, str]],
                 placeholders: Mapping[str, str],
                 derived: Optional[Mapping[str, Callable[[Dict[str, str]], object]]] = None,
                 constants: Optional[Mapping[str, Callable[[int], object]]] = None,
                 family: str = 'model'):
        self.rules = tuple(rules)
        self.placeholders = dict(placeholders)
        self.derived = dict(derived or {})
        self.constants = dict(constants or {})
        self.family = family
        known = set(self.placeholders) | set(self.derived) | set(self.constants)
        for pair in self.rules:
            unknown = {f for t in pair for f in _FIELD.findall(t)} - known
            if unknown:
                raise ValueError(f'{family} key rule {pair}: unknown fields {sorted(unknown)}')
        self._compiled: Dict[int, tuple] = {}

    # ------------------------------------------------------------------------------------
    def _regex(self, template: str) -> 're.Pattern':
        parts = _FIELD.split(template)  # literal, field, literal, field, ...
        regex = ''
        for i, part in enumerate(parts):
            if i % 2 == 0:
                regex += re.escape(part)
            elif part in self.placeholders:
                regex += f'(?P<{part}>{self.placeholders[part]})'
            else:
                raise ValueError(f'{self.family} key template {template!r}: field {part!r} '
                                 'is derived only and cannot be matched')
        return re.compile(regex)

    def _tables(self, num_stages: int) -> tuple:
        """``(official -> mmscope, mmscope -> official)`` compiled rule lists."""
        if num_stages not in self._compiled:
            values = {k: str(f(num_stages)) for k, f in self.constants.items()}

            def fix(template):
                return _FIELD.sub(lambda m: values.get(m.group(1), m.group(0)), template)

            pairs = [(fix(o), fix(m)) for o, m in self.rules]
            self._compiled[num_stages] = (tuple(
                (self._regex(o), m) for o, m in pairs), tuple(
                    (self._regex(m), o) for o, m in pairs))
        return self._compiled[num_stages]

    def _fill(self, template: str, groups: Dict[str, str]) -> str:
        values = dict(groups)
        for name in _FIELD.findall(template):
            if name not in values:
                values[name] = str(self.derived[name](groups))
        return template.format(**values)

    def _rename(self, key: str, forward: bool, num_stages: int) -> str:
        for regex, template in self._tables(num_stages)[0 if forward else 1]:
            match = regex.fullmatch(key)
            if match:
                return self._fill(template, match.groupdict())
        side = 'an official' if forward else 'an mmscope classifier'
        raise KeyError(f'{key!r} is not {side} {self.family} key ({num_stages} stages)')

    # ------------------------------------------------------------------------------------
    def rule_index(self, key: str, num_stages: int = 4) -> Optional[int]:
        """Index of the rule that renames the official ``key`` (None if none does)."""
        for i, (regex, _) in enumerate(self._tables(num_stages)[0]):
            if regex.fullmatch(key):
                return i
        return None

    def official_to_mmscope_key(self, key: str, num_stages: int = 4) -> str:
        """Official key -> mmscope classifier key (``backbone.*`` / ``head.*``).

        Raises KeyError for keys without a counterpart."""
        return self._rename(key, True, num_stages)

    def mmscope_to_official_key(self, key: str, num_stages: int = 4) -> str:
        """mmscope classifier key -> official key (inverse of
        :meth:`official_to_mmscope_key`); KeyError for keys without a counterpart."""
        return self._rename(key, False, num_stages)

    def convert_official_state_dict(self,
                                    state_dict: Mapping,
                                    num_stages: int = 4,
                                    backbone_only: bool = False) -> 'OrderedDict':
        """Rename every key of an official state dict (values are kept as they are).

        Args:
            state_dict: the official state dict (no ``module.`` prefix); every key must
                have a counterpart (KeyError otherwise).
            num_stages (int): stages of the model. Defaults to 4.
            backbone_only (bool): return the bare keys of the backbone module (see
                :func:`strip_backbone_prefix`) instead of classifier keys.
        """
        out = OrderedDict(
            (self.official_to_mmscope_key(k, num_stages), v) for k, v in state_dict.items())
        return strip_backbone_prefix(out) if backbone_only else out
