# "ScalableViT-XS": the custom arch of the demo's ScalableViT models (the classifier
# scalablevit-xs_shapes-cls.py and the segmentor upernet_scalablevit-xs_shapes.py, which
# starts from it), written here once. It keeps ScalableViT-S's attention settings (heads
# of 32 channels, SSA reduction 8/4/2/1, channel scaling 1.25, 7x7 IWSA windows) at half
# its width and with 6 blocks instead of 26: 1.9 M backbone parameters against 25.8 M,
# so that it learns in minutes on 2 CPU cores. ScalableViT validates it like the released
# archs. The file defines only a name that no real config defines, so it can be listed as
# a second base; a config writes ``backbone=dict(arch=_base_.scalablevit_xs)``.
scalablevit_xs = dict(
    _delete_=True,  # replaces the real config's arch name as a whole
    embed_dims=[32, 64, 128, 256],
    depths=[1, 1, 3, 1],
    num_heads=[1, 2, 4, 8],
    mlp_ratios=[4, 4, 4, 4],
    sr_ratios=[8, 4, 2, 1],
    c_ratios=[1.25, 1.25, 1.25, 1],
    window_sizes=[7, 7, 7, 7])
