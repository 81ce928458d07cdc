"""Evaluation: COCO OKS AP (pycocotools), MPII PCKh, the end-to-end runner and a training callback."""
from rsn_tf.evaluation.coco import STAT_NAMES, CocoKeypointEvaluator, format_table
from rsn_tf.evaluation.mpii import pckh

__all__ = ["STAT_NAMES", "CocoKeypointEvaluator", "format_table", "pckh"]
