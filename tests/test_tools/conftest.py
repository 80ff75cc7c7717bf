"""The tool tests' shared fixture."""
import os.path as osp

import pytest
from tool_helpers import CONFIG, _write_images


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('tools'))
    data = osp.join(root, 'data')
    _write_images(data, 'train', 8)
    _write_images(data, 'val', 4)
    cfg = osp.join(root, 'cls_cfg.py')
    with open(cfg, 'w') as f:
        f.write(CONFIG.format(root=data))
    return root, cfg
