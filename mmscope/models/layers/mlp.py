"""Token MLP and LayerScale shared by the backbones."""
import torch
import torch.nn as nn


class Mlp(nn.Module):
    """``fc1 -> act -> drop -> fc2 -> drop`` on channels-last tokens.

    Args:
        in_features (int): Input (and by default output) channels.
        hidden_features (int, optional): Hidden channels. Defaults to ``in_features``.
        out_features (int, optional): Output channels. Defaults to ``in_features``.
        act_layer (type): Activation class. Defaults to ``nn.GELU``.
        drop (float): Dropout after the activation and after ``fc2``. Defaults to 0.
        bias (bool): Whether the linear layers have biases. Defaults to True.
    """

    def __init__(self,
                 in_features: int,
                 hidden_features: int = None,
                 out_features: int = None,
                 act_layer: type = nn.GELU,
                 drop: float = 0.,
                 bias: bool = True):
        super().__init__()
        hidden_features = hidden_features or in_features
        out_features = out_features or in_features
        self.fc1 = nn.Linear(in_features, hidden_features, bias=bias)
        self.act = act_layer()
        self.fc2 = nn.Linear(hidden_features, out_features, bias=bias)
        self.drop = nn.Dropout(drop) if drop > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class LayerScale(nn.Module):
    """Per-channel learnable scale ``x * gamma`` on the last dimension.

    Args:
        dim (int): Number of channels.
        init_value (float): Initial value of ``gamma``. Defaults to 1e-6.
    """

    def __init__(self, dim: int, init_value: float = 1e-6):
        super().__init__()
        self.gamma = nn.Parameter(init_value * torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma
