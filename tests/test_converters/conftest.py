"""The converter tests' shared fixture."""
import pytest
import torch
from converter_helpers import official_state_dict


@pytest.fixture(scope='module')
def xt_official(tmp_path_factory):
    """A ScopeViT-XT checkpoint in the official layout (timm ``state_dict``)."""
    path = str(tmp_path_factory.mktemp('official') / 'scopevit_xt.pth')
    sd = official_state_dict('scopevit', 'xtiny', seed=1)
    torch.save({'state_dict': sd, 'epoch': 10, 'arch': 'scopevit_xtiny'}, path)
    return path, sd
