"""env_switch: the on/off environment switches."""
import pytest

from mmscope.utils.env import env_switch

NAME = 'MMSCOPE_TEST_SWITCH'


@pytest.mark.parametrize('value,expected', [('1', True), ('true', True), (' ON ', True),
                                            ('0', False), ('False', False), ('off', False)])
def test_values(monkeypatch, value, expected):
    monkeypatch.setenv(NAME, value)
    assert env_switch(NAME) is expected
    assert env_switch(NAME, default=not expected) is expected  # set: the default is unused


@pytest.mark.parametrize('default', [True, False])
def test_unset_gives_the_default(monkeypatch, default):
    monkeypatch.delenv(NAME, raising=False)
    assert env_switch(NAME, default) is default


@pytest.mark.parametrize('value', ['', 'yes', '2', 'of'])
def test_other_values_are_refused_by_name(monkeypatch, value):
    monkeypatch.setenv(NAME, value)
    with pytest.raises(ValueError, match=f'{NAME} must be 0/1, true/false or on/off, got'):
        env_switch(NAME)
