# mmdeploy 1.3.1 deploy config: an mmdet instance segmenter (Mask R-CNN) as one ONNX graph
# for onnxruntime, dynamic batch and image size; outputs dets, labels and masks
# (B, N, 28, 28 mask logits per box, pasted into the image outside the graph).
_base_ = ['./detection_onnxruntime_dynamic.py']
onnx_config = dict(
    output_names=['dets', 'labels', 'masks'],
    dynamic_axes=dict(masks=dict(zip((0, 1), ('batch', 'num_dets')))))
codebase_config = dict(post_processing=dict(export_postprocess_mask=False))
