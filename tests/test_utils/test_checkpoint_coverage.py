"""The one check of what a checkpoint covers (:func:`mmscope.utils.checkpoint.check_weights`):
testing, inference and export need every tensor of the model; fine-tuning needs at least
the whole backbone and names the parts it leaves to initialisation."""
import warnings

import pytest
import torch
import torch.nn as nn

from mmscope.utils.checkpoint import (CheckpointMismatchError, check_weights, describe_coverage,
                                      weight_coverage)


class _Model(nn.Module):
    """backbone (a conv and a BN), neck, head with ``classes`` outputs."""

    def __init__(self, classes=2, width=4):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, width, 3), nn.BatchNorm2d(width))
        self.neck = nn.Linear(width, 4)
        self.head = nn.Linear(4, classes)


def _sd(**kw):
    torch.manual_seed(0)
    return _Model(**kw).state_dict()


def test_coverage_per_part_counts_names_and_shapes():
    sd = _sd(classes=3)
    del sd['neck.bias'], sd['backbone.1.num_batches_tracked']  # a counter is no weight
    parts = weight_coverage(_Model(), sd)
    assert list(parts) == ['backbone', 'neck', 'head']
    assert (parts['backbone']['loaded'], parts['backbone']['total']) == (6, 6)
    assert parts['neck']['missing'] == ['neck.bias'] and parts['neck']['loaded'] == 1
    assert parts['head']['loaded'] == 0 and parts['head']['reshaped'][0] == \
        'head.weight (3, 4) in the checkpoint, (2, 4) in the model'
    text = describe_coverage(parts)
    assert text.splitlines()[0] == 'backbone: 6 of 6 loaded'
    assert 'neck: 1 of 2 loaded (1 missing: neck.bias)' in text
    assert 'head: 0 of 2 loaded (2 of another shape: head.weight (3, 4)' in text


def test_evaluate_needs_every_tensor():
    model = _Model()
    fits = check_weights(model, _sd(), 'checkpoint own.pth')
    assert list(fits) == list(model.state_dict())
    with pytest.raises(CheckpointMismatchError) as err:
        check_weights(model, _sd(classes=3), 'checkpoint three.pth')
    msg = str(err.value)
    assert msg.startswith('checkpoint three.pth does not fit the _Model of this config: it '
                          "would leave 2 of the model's 10 tensors unloaded or of another "
                          'shape, in head:')
    assert 'head: 0 of 2 loaded (2 of another shape' in msg and 'backbone: 6 of 6' in msg
    assert 'load_from=CHECKPOINT' in msg  # what to do instead
    no_neck = {k: v for k, v in _sd().items() if not k.startswith('neck.')}
    with pytest.raises(
            CheckpointMismatchError,
            match=r'unloaded or of another shape, in neck:'
            r'[\s\S]*neck: 0 of 2 loaded \(2 missing: neck.weight, neck.bias\)'):
        check_weights(model, no_neck, 'checkpoint b.pth', 'evaluate')
    with pytest.raises(ValueError, match=r"purpose must be one of \('evaluate', 'finetune'\)"):
        check_weights(model, _sd(), 'x', 'test')


def test_finetune_allows_a_new_head_and_says_so():
    model = _Model()
    with pytest.warns(
            UserWarning,
            match=r'fine-tuning the _Model with head not \(fully\) loaded'
            r'[\s\S]*head: 0 of 2 loaded'):
        fits = check_weights(model, _sd(classes=3), 'checkpoint three.pth', 'finetune')
    assert not any(k.startswith('head.') for k in fits) and 'neck.weight' in fits
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # a full match says nothing
        check_weights(model, _sd(), 'checkpoint own.pth', 'finetune')


def test_finetune_refuses_less_than_the_backbone_or_nothing():
    model = _Model()
    with pytest.raises(
            CheckpointMismatchError,
            match=r'matches less than its whole backbone[\s\S]*backbone: 0 of 6 '
            r'loaded \(6 of another shape[\s\S]*init_cfg=dict\(type=.Pretrained.'):
        check_weights(model, _sd(classes=2, width=5), 'checkpoint wide.pth', 'finetune')
    other = {f'model.{k}': v for k, v in _sd().items()}
    with pytest.raises(CheckpointMismatchError, match='matches no tensor of the model'):
        check_weights(model, other, 'checkpoint other.pth', 'finetune')
