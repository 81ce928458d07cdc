"""The tf.data input pipeline: instances -> (normalised crops, multi-level heatmap targets) batches.

Data flow per instance (all numpy/OpenCV, run by ``tf.numpy_function`` inside a parallel
``Dataset.map``; OpenCV releases the GIL while decoding, warping and blurring):

    read_image (BGR uint8) -> person_box -> train_params/eval_params -> apply_crop (uint8 crop)
                           -> codec.encode_levels (one Gaussian kernel per head)

``DataConfig.mode`` ("authors" or "mmpose") picks each reference's box, crop-matrix, bounds and
encode rules (:mod:`rsn_tf.data.augment`, :mod:`rsn_tf.codec`); in "mmpose" mode a sample is
bit-identical to mmpose's ``LoadImage -> GetBBoxCenterScale -> TopdownAffine -> GenerateTarget``.

then, in the graph on whole batches, ``preprocess_tf`` (colour order, (x - mean) / std).

Determinism: every random draw of instance number ``n`` (its position in the stream, across epochs)
comes from ``np.random.default_rng([seed, 1, n])`` and the epoch ``e`` permutation from
``default_rng([seed, 0, e])``, so a seeded pipeline gives the same batches whatever the thread
scheduling (``map(deterministic=True)`` keeps the order).
"""
from __future__ import annotations

import atexit
import functools
import logging
import os
import threading
import time

import numpy as np

from rsn_tf.codec import MegviiHeatmapCodec, level_kernels
from rsn_tf.data.augment import apply_crop, eval_params, person_box, train_params
from rsn_tf.data.config import DataConfig
from rsn_tf.data.images import read_image
from rsn_tf.data.instances import Instances
from rsn_tf.data.preprocess import preprocess_tf

log = logging.getLogger(__name__)

# Interpreter exit with a live, unfinished iterator can hang (tensorflow#21277): tf.data threads that
# enter a numpy_function after Python starts finalising never get the GIL back, and the iterator's
# destructor waits for them. At exit (before finalisation) we stop starting new Python work and let the
# calls in flight finish, so the tf.data threads end up waiting on their own buffers, not on the GIL.
_EXITING = threading.Event()
_IN_FLIGHT = [0]
_IN_FLIGHT_LOCK = threading.Lock()


@atexit.register
def _drain_python_calls(timeout_s: float = 2.0) -> None:
    _EXITING.set()
    deadline = time.monotonic() + timeout_s
    quiet = 0
    while time.monotonic() < deadline and quiet < 5:
        with _IN_FLIGHT_LOCK:
            busy = _IN_FLIGHT[0]
        quiet = quiet + 1 if busy == 0 else 0
        time.sleep(0.02)


class _PythonCall:
    """Counts a numpy_function body in flight; refuses to start once the interpreter is exiting."""

    def __enter__(self):
        if _EXITING.is_set():
            raise RuntimeError("interpreter is exiting: input pipeline stopped")
        with _IN_FLIGHT_LOCK:
            _IN_FLIGHT[0] += 1

    def __exit__(self, *exc):
        with _IN_FLIGHT_LOCK:
            _IN_FLIGHT[0] -= 1


# --------------------------------------------------------------------------------------- loading
def load_instances(data_cfg: DataConfig, split: str = "train") -> Instances:
    """The person instances of ``split``, read and validated (cached per config, file and mtime)."""
    ann, images = data_cfg.split_paths(split)
    try:
        mtime = os.path.getmtime(ann)
    except OSError:
        mtime = None
    # key on what the readers use only, so changing e.g. the augmentation does not re-read COCO (~20 s)
    return _load_cached(data_cfg.format, ann, images, data_cfg.keypoints, data_cfg.sigmas, data_cfg.flip_pairs,
                        data_cfg.check_images, data_cfg.skip_bad_images, data_cfg.mpii_scale_factor,
                        data_cfg.mpii_center_shift, mtime)


@functools.lru_cache(maxsize=8)
def _load_cached(fmt, ann, images, keypoints, sigmas, flip_pairs, check_images, skip_bad_images, mpii_scale_factor,
                 mpii_center_shift, mtime) -> Instances:
    if fmt == "coco":
        from rsn_tf.data.coco import load_coco
        return load_coco(ann, images, keypoints, sigmas, flip_pairs, check_images=check_images,
                         skip_bad_images=skip_bad_images)
    from rsn_tf.data.mpii import load_mpii
    return load_mpii(ann, images, keypoints or "mpii", check_images=check_images, skip_bad_images=skip_bad_images,
                     scale_factor=mpii_scale_factor, center_shift=mpii_center_shift)


def num_instances(data_cfg: DataConfig, split: str = "train") -> int:
    """Number of person instances in ``split`` (after the readers' skips)."""
    return len(load_instances(data_cfg, split))


# --------------------------------------------------------------------------------------- one sample
class SampleMaker:
    """Builds one training/eval sample from instance ``index`` with the random stream of ``counter``.

    Call it with (index, counter); returns a tuple of numpy arrays (see ``OUTPUTS``); ``image`` is the
    uint8 BGR crop [H, W, 3] (normalised later, per batch). Usable without TF.
    """

    OUTPUTS = ("image", "heatmaps", "weights", "visible", "center", "scale", "ok")

    def __init__(self, instances: Instances, data_cfg: DataConfig, model_cfg, train: bool, seed: int):
        self.instances = instances
        self.data_cfg = data_cfg
        self.model_cfg = model_cfg
        self.train = train
        self.seed = int(seed)
        self.augment = data_cfg.augment.resolved()
        h, w = model_cfg.input_size
        self.output_size = (w, h)
        self.aspect_ratio = w / h
        self.mode = data_cfg.resolved_mode
        self.codec = MegviiHeatmapCodec(tuple(model_cfg.input_size), encode_mode=data_cfg.resolved_encode_mode)
        self.kernels = level_kernels(model_cfg.num_stages)
        self.flip_pairs = instances.spec.flip_pairs
        self.skipped = 0
        self._lock = threading.Lock()

    def box(self, index: int) -> np.ndarray:
        """The person box of instance ``index`` in the data mode's form (:func:`augment.person_box`)."""
        inst = self.instances
        raw = None if inst.raw_boxes is None else inst.raw_boxes[index]
        size = None if inst.image_sizes is None else inst.image_sizes[index]
        return person_box(inst.boxes[index], raw, size, self.mode)

    def params(self, index: int, counter: int):
        inst = self.instances
        if not self.train:
            return eval_params(self.box(index), self.aspect_ratio, self.data_cfg.test_padding, self.mode)
        rng = np.random.default_rng([self.seed, 1, int(counter)])
        return train_params(rng, self.box(index), inst.keypoints[index], inst.visible[index], inst.spec,
                            self.augment, self.aspect_ratio, self.data_cfg.test_padding, self.mode)

    def __call__(self, index, counter):
        with _PythonCall():
            return self._make(int(index), counter)

    def _make(self, index: int, counter):
        inst = self.instances
        params = self.params(index, counter)
        path = inst.image_paths[index]
        try:
            image = read_image(path)
        except (OSError, ValueError) as e:
            if not self.data_cfg.skip_bad_images:
                raise ValueError(f"{e} (instance {index}, annotation id {inst.ann_ids[index]} of {inst.source})") \
                    from None
            with self._lock:
                self.skipped += 1
                count = self.skipped
            log.warning("skipped instance %d (%s); %d skipped so far", index, e, count)
            return self._empty(params)
        crop, kpts, vis = apply_crop(image, inst.keypoints[index], inst.visible[index], params, self.output_size,
                                     self.flip_pairs, self.mode)
        # mmpose's encoder reads keypoints_visible = min(1, v); the authors' reads v (0/1/2).
        enc_vis = np.minimum(vis, 1.0) if self.codec.encode_mode == "mmpose" else vis
        heatmaps, weights = self.codec.encode_levels(kpts, enc_vis, self.kernels)
        vis = np.where(weights > 0, vis, 0.0).astype(np.float32)
        return (crop, heatmaps, weights, vis, params.center.astype(np.float32), params.scale.astype(np.float32),
                np.bool_(True))

    def _empty(self, params):
        h, w = self.model_cfg.input_size
        hh, hw = self.codec.heatmap_size
        k = self.instances.num_keypoints
        return (np.zeros((h, w, 3), np.uint8), np.zeros((len(self.kernels), hh, hw, k), np.float32),
                np.zeros((k,), np.float32), np.zeros((k,), np.float32), params.center.astype(np.float32),
                params.scale.astype(np.float32), np.bool_(False))


# --------------------------------------------------------------------------------------- tf.data
def build_dataset(data_cfg: DataConfig, model_cfg, split: str = "train", batch_size: int = 32,
                  seed: int | None = None, shuffle: bool | None = None, repeat: bool | None = None,
                  drop_remainder: bool | None = None, augment: bool | None = None, with_meta: bool = False,
                  instances: Instances | None = None, epochs: int | None = None):
    """A ``tf.data.Dataset`` of ``(images, targets)`` (or ``(images, targets, meta)`` with ``with_meta``).

    Args:
      data_cfg: :class:`DataConfig`; model_cfg: :class:`rsn_tf.model.ModelConfig` (input size,
        num_stages, num_keypoints, preprocessing).
      split: "train" or "val". Defaults follow it: train = augment, shuffle, repeat forever, drop the
        last partial batch; val = eval crop (test padding), file order, one pass, keep every instance.
      seed: makes order and augmentation reproducible (None = fresh entropy).
      instances: use these rows instead of reading ``split`` (e.g. detection boxes at evaluation).
      epochs: with ``repeat``, stop after this many passes (None = forever).

    Yields:
      images: [B, H, W, 3] float32, ``preprocess``-ed (color order then (x - mean) / std).
      targets: ``heatmaps`` [B, L, H/4, W/4, K] float32 peak 255, L = num_stages * 4, kernels
        ``level_kernels(num_stages)`` (model output order); ``weights`` [B, K] float32 (1 = labelled
        and inside the crop); ``visible`` [B, K] float32 COCO 0/1/2 after augmentation.
      meta (with_meta): ``center``/``scale`` [B, 2] float32 (crop region, image pixels, for
        ``geometry.crop_to_image``), ``image_id`` [B] int64, ``ann_id`` [B] int64, ``bbox`` [B, 4],
        ``score`` [B], ``area`` [B] float32, ``index`` [B] int64 (row in the instances).
    """
    import tensorflow as tf

    train = split == "train"
    shuffle = train if shuffle is None else shuffle
    repeat = train if repeat is None else repeat
    drop_remainder = train if drop_remainder is None else drop_remainder
    augment = train if augment is None else augment
    inst = load_instances(data_cfg, split) if instances is None else instances
    n = len(inst)
    if n == 0:
        raise ValueError(f"{inst.source or split}: no usable person instances")
    if inst.num_keypoints != model_cfg.num_keypoints:
        raise ValueError(f"{inst.source}: {inst.num_keypoints} keypoints per instance but the model has "
                         f"num_keypoints={model_cfg.num_keypoints}")
    if seed is None:
        seed = int(np.random.SeedSequence().generate_state(1)[0])
    maker = SampleMaker(inst, data_cfg, model_cfg, augment, seed)

    if shuffle and data_cfg.shuffle_buffer <= 0:
        def permutation(epoch):
            with _PythonCall():
                return np.random.default_rng([seed, 0, int(epoch)]).permutation(n).astype(np.int64)

        def one_epoch(epoch):
            perm = tf.numpy_function(permutation, [epoch], tf.int64, stateful=False)
            perm.set_shape([n])
            return tf.data.Dataset.from_tensor_slices(perm)

        passes = tf.data.Dataset.range(epochs) if (repeat and epochs) else (
            tf.data.Dataset.counter() if repeat else tf.data.Dataset.range(1))
        ds = passes.flat_map(one_epoch)
    else:
        ds = tf.data.Dataset.range(n)
        if shuffle:
            ds = ds.shuffle(data_cfg.shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        if repeat:
            ds = ds.repeat(epochs)
    ds = ds.enumerate()

    h, w = model_cfg.input_size
    k = model_cfg.num_keypoints
    levels = len(maker.kernels)
    hh, hw = maker.codec.heatmap_size
    shapes = ([h, w, 3], [levels, hh, hw, k], [k], [k], [2], [2], [])
    dtypes = (tf.uint8, tf.float32, tf.float32, tf.float32, tf.float32, tf.float32, tf.bool)
    meta_arrays = dict(image_id=inst.image_ids, ann_id=inst.ann_ids, bbox=inst.boxes, score=inst.scores,
                       area=inst.areas)

    def load(counter, index):
        out = tf.numpy_function(maker, [index, counter], dtypes, stateful=False)
        for t, s in zip(out, shapes):
            t.set_shape(s)
        sample = dict(zip(SampleMaker.OUTPUTS, out))
        sample["index"] = index
        return sample

    par = tf.data.AUTOTUNE if data_cfg.num_parallel_calls < 0 else max(1, data_cfg.num_parallel_calls)
    ds = ds.map(load, num_parallel_calls=par, deterministic=True)
    if data_cfg.skip_bad_images:
        ds = ds.filter(lambda s: s["ok"])
    tables = {key: tf.constant(v) for key, v in meta_arrays.items()}

    def arrange(s):
        targets = {"heatmaps": s["heatmaps"], "weights": s["weights"], "visible": s["visible"]}
        if not with_meta:
            return s["image"], targets
        meta = {"center": s["center"], "scale": s["scale"], "index": s["index"]}
        meta.update({key: tf.gather(t, s["index"]) for key, t in tables.items()})
        return s["image"], targets, meta

    ds = ds.map(arrange, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    preprocessing = model_cfg.preprocessing

    def normalise(images, *rest):
        return (preprocess_tf(images, preprocessing, input_order="bgr"), *rest)

    ds = ds.map(normalise, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.prefetch(tf.data.AUTOTUNE if data_cfg.prefetch < 0 else data_cfg.prefetch)
    options = tf.data.Options()
    options.deterministic = True
    return ds.with_options(options)
