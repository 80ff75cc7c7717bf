"""Convert official ScopeViT checkpoints to mmscope (mmpretrain) checkpoints, and back.

    python tools/model_converters/scopevit_to_mmscope.py SRC DST [--arch ARCH]
        [--backbone-only] [--to-official] [--config CFG] [--key KEY] [--force] [--trust]

See docs/converters.md; the logic lives in mmscope/converters.
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmscope.converters.engine import main  # noqa: E402
from mmscope.converters.scopevit import SCOPEVIT  # noqa: E402

if __name__ == '__main__':
    main(SCOPEVIT, prog=osp.basename(__file__))
