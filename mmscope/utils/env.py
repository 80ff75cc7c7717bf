"""On/off switches read from the environment."""
import os

__all__ = ['env_switch']

_ON, _OFF = ('1', 'true', 'on'), ('0', 'false', 'off')


def env_switch(name: str, default: bool = True) -> bool:
    """The on/off value of the environment variable ``name`` (``default`` when unset):
    ``1``/``true``/``on`` or ``0``/``false``/``off``, any case. Any other value is a
    ValueError that names the variable and the valid values."""
    value = os.environ.get(name)
    if value is None:
        return default
    value = value.strip().lower()
    if value not in _ON + _OFF:
        raise ValueError(f'{name} must be 0/1, true/false or on/off, got {value!r}')
    return value in _ON
