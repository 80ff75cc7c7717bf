"""Check that mmcv's compiled ops exist and run against the installed torch.

mmcv builds silently without ops when torch is missing from its build environment, and
pip's wheel cache can hand back an mmcv wheel built against another torch. Exit status 1
with the reason when either happened.
"""
import sys


def main() -> int:
    try:
        import mmcv
        import torch
    except Exception as exc:  # report the import problem itself
        print(f'mmcv ops check: cannot import torch/mmcv: {exc!r}', file=sys.stderr)
        return 1
    try:
        from mmcv.ops import RoIAlign, nms
    except Exception as exc:
        print(
            'mmcv ops check FAILED: mmcv was built without its C++ ops or against '
            f'another torch (torch {torch.__version__}, mmcv {mmcv.__version__}): '
            f'{exc!r}',
            file=sys.stderr)
        return 1
    try:
        boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.], [20., 20., 30., 30.]])
        scores = torch.tensor([0.9, 0.8, 0.7])
        _, keep = nms(boxes, scores, iou_threshold=0.5)
        assert keep.tolist() == [0, 2], keep
        feat = torch.arange(16, dtype=torch.float32).reshape(1, 1, 4, 4)
        rois = torch.tensor([[0., 0., 0., 3., 3.]])
        out = RoIAlign((2, 2), spatial_scale=1.0, sampling_ratio=2, aligned=False)(feat, rois)
        assert out.shape == (1, 1, 2, 2), out.shape
        assert torch.isfinite(out).all()
    except Exception as exc:
        print(f'mmcv ops check FAILED while running nms/RoIAlign: {exc!r}', file=sys.stderr)
        return 1
    print(f'mmcv ops OK (mmcv {mmcv.__version__}, torch {torch.__version__})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
