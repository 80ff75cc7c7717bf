"""No result from weights that were not loaded: tools/test.py, tools/train.py's
fine-tuning (load_from), inference and ONNX export against checkpoints that do not fit the
config's model (mmscope.utils.checkpoint.check_weights); --tta where the model has none."""
import os
import os.path as osp

import pytest
import torch
from tool_helpers import ROOT, _checkpoint, _tool


def test_test_tool_refuses_what_is_not_its_model(workspace, tmp_path):
    """tools/test.py reports no metric for a checkpoint that leaves the model mostly
    unloaded (another family's), and calls a text file what it is, trusted or not."""
    from mmscope.utils.checkpoint import CheckpointMismatchError, NotACheckpointError
    root, cfg = workspace
    test = _tool('test')
    work = ['--work-dir', str(tmp_path / 'w')]
    other = _checkpoint(cfg, str(tmp_path / 'other.pth'), other_family=True)
    with pytest.raises(
            CheckpointMismatchError,
            match=r'(?s)other.pth does not fit the ImageClassifier of this config: it would '
            r'leave \d+ of the model.s \d+ tensors unloaded or of another shape, in '
            r'backbone:\n  backbone: \d+ of \d+ loaded.*head: 2 of 2 loaded.*another family'):
        test([cfg, other] + work)
    text = tmp_path / 'notes.pth'
    text.write_text('epoch 12, top-1 51.5\n')
    for trust in ([], ['--trust-checkpoint', str(text)]):
        with pytest.raises(NotACheckpointError, match='notes.pth: not a PyTorch checkpoint') \
                as info:
            test([cfg, str(text)] + work + trust)
        assert 'trust' not in str(info.value).lower()
    assert not osp.exists(osp.join(str(tmp_path / 'w'), 'vis'))


def _reheaded(path, out, classes=3, drop_head=False):
    """The checkpoint ``path`` with a head of ``classes`` outputs (or none at all, as a
    detector's or a segmentor's checkpoint has for a classifier)."""
    ckpt = torch.load(path)
    sd = ckpt['state_dict']
    for k in [k for k in sd if k.startswith('head.')]:
        if drop_head:
            del sd[k]
        else:
            sd[k] = torch.zeros((classes, ) + tuple(sd[k].shape[1:]))
    torch.save(ckpt, out)
    return out


def test_test_tool_refuses_a_checkpoint_whose_head_does_not_fit(workspace, tmp_path):
    """Backbone and neck fit, the head does not (another class count) or is absent
    (another task's checkpoint): no metric, the head named with its counts and the way
    to fine-tune instead."""
    from mmscope.utils.checkpoint import CheckpointMismatchError
    root, cfg = workspace
    own = _checkpoint(cfg, str(tmp_path / 'own.pth'))
    three = _reheaded(own, str(tmp_path / 'three.pth'))
    headless = _reheaded(own, str(tmp_path / 'headless.pth'), drop_head=True)
    work = ['--work-dir', str(tmp_path / 'w')]
    with pytest.raises(
            CheckpointMismatchError,
            match=r'three.pth does not fit the ImageClassifier of this config: it '
            r'would leave 2 of the model.s \d+ tensors unloaded or of another shape, '
            r'in head:\n  backbone: (\d+) of \1 loaded\n  head: 0 of 2 loaded \(2 of '
            r'another shape: head.fc.weight \(3, 256\) in the checkpoint, \(2, 256\)'):
        _tool('test')([cfg, three] + work)
    with pytest.raises(
            CheckpointMismatchError,
            match=r'(?s)head: 0 of 2 loaded \(2 missing: head.fc.weight, head.fc.bias\)'
            r'.*load_from=CHECKPOINT'):
        _tool('test')([cfg, headless] + work)


def test_fine_tuning_names_a_new_head_and_refuses_another_backbone(workspace, tmp_path):
    """tools/train.py with load_from: a checkpoint of another class count trains with a
    new head, said in a warning; another family's checkpoint (backbone not loaded) is
    refused instead of training from scratch."""
    from mmscope.utils.checkpoint import CheckpointMismatchError
    root, cfg = workspace
    own = _checkpoint(cfg, str(tmp_path / 'own.pth'))
    three = _reheaded(own, str(tmp_path / 'three.pth'))
    other = _checkpoint(cfg, str(tmp_path / 'other.pth'), other_family=True)
    opts = [
        'train_cfg.max_iters=1', 'val_cfg=None', 'val_dataloader=None', 'val_evaluator=None',
        'default_hooks.checkpoint.interval=1'
    ]
    work = str(tmp_path / 'w')
    with pytest.raises(
            CheckpointMismatchError,
            match=r'(?s)other.pth matches less than its whole backbone \(the '
            r'ImageClassifier of this config\):\n  backbone: \d+ of \d+ loaded.*'
            r"init_cfg=dict\(type='Pretrained'"):
        _tool('train')([cfg, '--work-dir', work, '--cfg-options', f'load_from={other}'] + opts)
    assert not osp.exists(osp.join(work, 'iter_1.pth'))
    with pytest.warns(
            UserWarning,
            match=r'three.pth: fine-tuning the ImageClassifier with head '
            r'not \(fully\) loaded'):
        _tool('train')([cfg, '--work-dir', work, '--cfg-options', f'load_from={three}'] + opts)
    from mmscope.utils.checkpoint import safe_load
    trained = safe_load(osp.join(work, 'iter_1.pth'))['state_dict']
    assert trained['head.fc.weight'].shape == (2, 256)


def test_inference_and_export_refuse_a_checkpoint_that_does_not_fit(workspace, tmp_path):
    """demo/image_demo.py (mmscope.apis.inference) predicts nothing, and
    pytorch2onnx (mmscope.deploy) exports nothing, with weights that did not load."""
    from mmscope.apis.inference import inference
    from mmscope.deploy.from_config import export_config
    from mmscope.utils.checkpoint import CheckpointMismatchError
    root, cfg = workspace
    own = _checkpoint(cfg, str(tmp_path / 'own.pth'))
    headless = _reheaded(own, str(tmp_path / 'headless.pth'), drop_head=True)
    other = _checkpoint(cfg, str(tmp_path / 'other.pth'), other_family=True)
    image = osp.join(root, 'data', 'val', 'left', '0.png')
    out = str(tmp_path / 'vis')
    with pytest.raises(
            CheckpointMismatchError,
            match=r'headless.pth does not fit the '
            r'ImageClassifier.*in head:'):
        inference([image], cfg, headless, out, device='cpu', min_size=0)
    assert not os.listdir(out)
    (res, ) = inference([image], cfg, own, out, device='cpu', min_size=0)
    assert res['summary'].split()[0] in ('left', 'right')
    onnx = str(tmp_path / 'm.onnx')
    with pytest.raises(
            CheckpointMismatchError,
            match=r'other.pth does not fit the ImageClassifier of this config.*'
            r'in backbone:\n  backbone: \d+ of \d+ loaded'):
        export_config(cfg, other, onnx, shape=(64, 64))
    assert not osp.exists(onnx)
    # --backbone-only needs the backbone's weights only (a headless checkpoint loads)
    from mmscope.apis import load_config
    from mmscope.deploy.from_config import load_model
    model = load_model(load_config(cfg), headless, 'backbone')
    saved = torch.load(headless)['state_dict']
    assert all(
        torch.equal(v, saved[f'backbone.{k}']) for k, v in model.backbone.state_dict().items()
        if not k.endswith('num_batches_tracked'))
    with pytest.raises(
            CheckpointMismatchError,
            match=r'the backbone.\* weights of checkpoint '
            r'.*other.pth does not fit the ScopeViT'):
        load_model(load_config(cfg), other, 'backbone')


def test_tta_of_instance_segmentation_is_refused(tmp_path):
    """tools/test.py --tta on Mask R-CNN ended in mmdet's bare AssertionError."""
    ckpt = tmp_path / 'any.pth'
    ckpt.write_bytes(b'')
    config = osp.join(
        ROOT, 'projects/shapes_demo/configs/quick/'
        'mask-rcnn_scopevit-xt_fpn_shapes_quick.py')
    with pytest.raises(
            ValueError,
            match=r'--tta: MaskRCNN predicts instance masks.*instance '
            r'segmentation has no TTA. Test without --tta'):
        _tool('test')([config, str(ckpt), '--tta', '--work-dir', str(tmp_path / 'w')])
