"""Edge export: SavedModel, TFLite fp32/fp16/int8 and ONNX from the deploy graph, each validated.

Entry points: :func:`rsn_tf.export.exporter.export_with_crops` (what ``rsn export`` runs, with one
:class:`rsn_tf.export.core.ExportConfig`), :func:`rsn_tf.export.exporter.export_model`,
:func:`rsn_tf.export.exporter.load_exported_estimator` (an export inside :class:`rsn_tf.inference.PoseEstimator`),
:func:`rsn_tf.export.graph.deploy_model`, :func:`rsn_tf.export.runtimes.load_runner`.

:mod:`rsn_tf.export.core` is the leaf every other module reads (the format table, bounds, the config, the
decode choice, the one comparison); it imports no other export module. Modules import TensorFlow and the
runtimes lazily where they can.
"""
