# UperNet, ScalableViT-S, ADE20K 160k (upernet_scalablevit-s_8xb2-160k_ade20k-512x512.py)
# fine-tuned with layer-wise learning-rate decay: the learning rate shrinks by 0.95 per
# layer from the heads down to the stem. Layers (ScalableViT.get_layer_depth): the stem
# (stage 0's patch embedding) is layer 0, the 26 blocks layers 1-26, the last norm and the
# heads layer 27; a parameter of layer i trains with lr * 0.95 ** (27 - i) (the stem at
# 0.25 x lr, the first block at 0.26 x, the last at 0.95 x). 0.95 rather than 0.9 because
# ScalableViT-S is twice as deep as a 12-block model (BEiT-L's 24 blocks also use 0.95);
# not tuned for ScalableViT. mmscope.BackboneOptimWrapperConstructor (set in the 160k
# config) reads the layers and the no-decay keys from the backbone.
_base_ = './upernet_scalablevit-s_8xb2-160k_ade20k-512x512.py'

optim_wrapper = dict(paramwise_cfg=dict(layer_decay_rate=0.95))
