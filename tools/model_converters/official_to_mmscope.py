"""Convert official checkpoints of any mmscope backbone family to mmscope (mmpretrain)
checkpoints, and back.

    python tools/model_converters/official_to_mmscope.py SRC DST [--family FAMILY]
        [--arch ARCH] [--backbone-only] [--to-official] [--config CFG] [--key KEY]
        [--force] [--trust]

The family (``scopevit``, ``scalablevit``, ...) is found from the checkpoint keys unless
``--family`` names it. See docs/converters.md; the logic lives in mmscope/converters.
"""
import os.path as osp

from mmscope.converters.engine import main

if __name__ == '__main__':
    main(prog=osp.basename(__file__))
