# Mask R-CNN + FPN, ScopeViT-T, COCO 1x (mask-rcnn_scopevit-t_fpn_1x_coco.py) fine-tuned with
# layer-wise learning-rate decay: the learning rate shrinks by 0.9 per layer from the heads
# down to the stem. Layers (ScopeViT.get_layer_depth): the stem is layer 0, the 11 blocks
# layers 1-11, the last norm, the neck and the heads layer 12; a parameter of layer i trains
# with lr * 0.9 ** (12 - i) (the stem at 0.28 x lr, the first block at 0.31 x, the last at
# 0.9 x). The rate is the usual starting point of per-block decay (BEiT, ConvNeXt recipes),
# not tuned for ScopeViT. mmscope.BackboneOptimWrapperConstructor (set in the 1x config)
# reads the layers and the no-decay keys from the backbone.
_base_ = './mask-rcnn_scopevit-t_fpn_1x_coco.py'

optim_wrapper = dict(paramwise_cfg=dict(layer_decay_rate=0.9))
