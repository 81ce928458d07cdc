"""Top-down inference: person boxes -> crops -> network (+ flip test) -> decode -> image keypoints."""
from rsn_tf.inference.boxes import PersonBox, clip_box, detection_file_boxes, full_image_boxes, gt_boxes
from rsn_tf.inference.estimator import Pose, PoseEstimator, normalize_crops
from rsn_tf.inference.nms import oks_iou, oks_nms

__all__ = ["PersonBox", "clip_box", "detection_file_boxes", "full_image_boxes", "gt_boxes", "Pose", "PoseEstimator",
           "normalize_crops", "oks_iou", "oks_nms"]
