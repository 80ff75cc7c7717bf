# "ScalableViT-XS": the custom arch of the demo's ScalableViT models (the classifier
# scalablevit-xs_shapes-cls.py and the segmentor upernet_scalablevit-xs_shapes.py, which
# starts from it), written here once. It keeps ScalableViT-S's attention settings (heads
# of 32 channels, SSA reduction 8/4/2/1, channel scaling 1.25, 7x7 IWSA windows) at half
# its width and with 8 blocks instead of 26, two per stage, so that every stage has an
# SSA and an IWSA block: 2.6 M backbone parameters against 25.8 M, a training step (32
# images of 64x64) in 0.15 s on 2 CPU cores. In the measurements of docs/demo.md, the
# classifier reached 80.0% top-1 after 15 epochs with 2-2-2-2 and 75.0% with 1-1-3-1,
# which has only SSA in its first two stages. ScalableViT validates it like the released
# archs. The file defines only a name that no real config defines, so it can be listed as
# a second base; a config writes ``backbone=dict(arch=_base_.scalablevit_xs)``.
scalablevit_xs = dict(
    _delete_=True,  # replaces the real config's arch name as a whole
    embed_dims=[32, 64, 128, 256],
    depths=[2, 2, 2, 2],
    num_heads=[1, 2, 4, 8],
    mlp_ratios=[4, 4, 4, 4],
    sr_ratios=[8, 4, 2, 1],
    c_ratios=[1.25, 1.25, 1.25, 1],
    window_sizes=[7, 7, 7, 7])
