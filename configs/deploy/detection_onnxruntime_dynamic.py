# mmdeploy 1.3.1 deploy config: an mmdet detector (boxes only) as one ONNX graph for
# onnxruntime, dynamic batch and image size. Used by tools/deployment/pytorch2onnx.py
# (mmscope.deploy.mmdeploy_compat.export_detector); outputs: dets (B, N, 5: x1 y1 x2 y2
# score), labels (B, N). Opset 17: RoIAlign and NMS are standard ONNX ops there, so no
# mmdeploy custom-op library is needed at run time.
onnx_config = dict(
    type='onnx',
    export_params=True,
    keep_initializers_as_inputs=False,
    opset_version=17,
    save_file='end2end.onnx',
    input_names=['input'],
    output_names=['dets', 'labels'],
    input_shape=None,
    optimize=True,
    dynamic_axes=dict(
        input=dict(zip((0, 2, 3), ('batch', 'height', 'width'))),
        dets=dict(zip((0, 1), ('batch', 'num_dets'))),
        labels=dict(zip((0, 1), ('batch', 'num_dets')))))
# the post-processing mmdeploy writes into the graph (score filter, NMS, top-k), matching
# the test_cfg of the mmscope detector configs
codebase_config = dict(
    type='mmdet',
    task='ObjectDetection',
    model_type='end2end',
    post_processing=dict(
        score_threshold=0.05,
        confidence_threshold=0.005,
        iou_threshold=0.5,
        max_output_boxes_per_class=200,
        pre_top_k=5000,
        keep_top_k=100,
        background_label_id=-1))
backend_config = dict(type='onnxruntime')
