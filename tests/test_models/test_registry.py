"""mmscope components build from mmpretrain, mmdet and mmseg registries by scoped name:
the backbones (``MODELS``) and the optimizer wrapper constructor
(``OPTIM_WRAPPER_CONSTRUCTORS``)."""
import subprocess
import sys

import pytest

from mmscope.registry import MODELS

SMALL_SCOPEVIT = dict(type='mmscope.ScopeViT', arch='xtiny', out_indices=(0, 1, 2, 3))


def test_registry_is_child_of_mmengine_root():
    from mmengine.registry import MODELS as ROOT
    assert MODELS.scope == 'mmscope'
    assert MODELS.parent is ROOT
    assert ROOT.children['mmscope'] is MODELS
    assert 'mmscope.models' in MODELS._locations


@pytest.mark.parametrize('library', ['mmpretrain', 'mmdet', 'mmseg'])
@pytest.mark.parametrize('custom_imports', [True, False])
def test_fresh_process_builds_scoped_type(library, custom_imports):
    """With or without custom_imports: nothing imported mmscope beforehand."""
    prelude = ("from mmengine.utils import import_modules_from_strings; "
               "import_modules_from_strings(['mmscope'], allow_failed_imports=False); "
               if custom_imports else '')
    code = (f'import sys; {prelude}'
            f'from {library}.registry import MODELS; '
            f'from {library}.utils import register_all_modules; register_all_modules(); '
            f'm = MODELS.build(dict(type="mmscope.ScalableViT", arch="small")); '
            'print(type(m).__module__)')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == 'mmscope.models.backbones.scalablevit'


def test_unknown_scoped_type_is_a_clear_error():
    from mmdet.registry import MODELS as DET
    with pytest.raises(KeyError, match='NoSuchBackbone'):
        DET.build(dict(type='mmscope.NoSuchBackbone'))


@pytest.mark.parametrize('library', ['mmdet', 'mmseg'])
def test_fresh_process_builds_the_optim_wrapper_constructor(library):
    """``constructor='mmscope.BackboneOptimWrapperConstructor'`` under another library's
    default scope, as its runner builds it, with nothing of mmscope imported before."""
    code = ('from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS, init_default_scope; '
            f'init_default_scope("{library}"); '
            'c = OPTIM_WRAPPER_CONSTRUCTORS.build(dict('
            'type="mmscope.BackboneOptimWrapperConstructor", '
            'optim_wrapper_cfg=dict(optimizer=dict(type="AdamW", lr=1.)), '
            'paramwise_cfg=dict(layer_decay_rate=0.5))); '
            'print(type(c).__module__, c.layer_decay_rate)')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == \
        'mmscope.engine.optim_wrapper_constructor 0.5'
