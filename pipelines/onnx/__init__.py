"""The generic ONNX backend: a model card, a checked onnxruntime session, and the decoders.

A task pipeline's `load()` opens a runner once per process; `predict()` runs and decodes:

    runner = ModelRunner.open(path, device="auto")            # session + card, checked; raises OnnxModelError
    runner.warm_up()
    output, transform = runner.infer(image)                   # pipelines.onnx.preprocess.prepare + run
    boxes = decode_yolo(output, runner.card.output, transform, runner.card.output_channels)
    peaks = decode_heatmaps(output, transform, (card.input.width, card.input.height), card.output.min_confidence)

Modules: `card` (the card file and its schema), `session` (providers, `ModelRunner`), `preprocess`
(image → tensor, `Transform` and the coordinate convention), `detection`, `heatmap`, `errors`.
Nothing is imported here, so reading a card does not load onnxruntime.
"""
