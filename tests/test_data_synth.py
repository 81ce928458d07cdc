"""The synthetic dataset: deterministic, valid COCO, truthful visibility, drawable."""
import hashlib
import json
import os

import numpy as np

from rsn_tf.data.synth import make_synthetic_dataset, render_image


def _digest(folder):
    h = hashlib.sha256()
    for root, _, files in sorted(os.walk(folder)):
        for f in sorted(files):
            h.update(f.encode())
            h.update(open(os.path.join(root, f), "rb").read())
    return h.hexdigest()


def test_deterministic_and_valid_coco(tmp_path):
    from pycocotools.coco import COCO

    a = make_synthetic_dataset(str(tmp_path / "a"), 6, seed=7, size=(160, 120))
    b = make_synthetic_dataset(str(tmp_path / "b"), 6, seed=7, size=(160, 120))
    c = make_synthetic_dataset(str(tmp_path / "c"), 6, seed=8, size=(160, 120))
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b") != _digest(tmp_path / "c")
    assert a["train"]["images"] + a["val"]["images"] == 6 and a["val"]["images"] >= 1
    for split in ("train", "val"):
        coco = COCO(a[split]["ann"])
        assert len(coco.getImgIds()) == a[split]["images"]
        assert len(coco.getAnnIds()) == a[split]["instances"] > 0
        cat = coco.loadCats(1)[0]
        assert len(cat["keypoints"]) == 17 and cat["keypoints"][0] == "nose"
        for ann in coco.loadAnns(coco.getAnnIds()):
            kp = np.array(ann["keypoints"]).reshape(17, 3)
            assert ann["num_keypoints"] == int((kp[:, 2] > 0).sum()) > 0
            assert ann["area"] > 0 and ann["bbox"][2] > 0 and ann["bbox"][3] > 0 and ann["iscrowd"] == 0
            assert np.all(kp[kp[:, 2] == 0, :2] == 0)  # COCO style: unlabelled = (0, 0, 0)
            lab = kp[kp[:, 2] > 0]
            assert np.all((lab[:, 0] >= 0) & (lab[:, 0] <= 159) & (lab[:, 1] >= 0) & (lab[:, 1] <= 119))
        for img in coco.loadImgs(coco.getImgIds()):
            assert os.path.exists(os.path.join(tmp_path / "a" / "images", img["file_name"]))


def test_visibility_is_truthful():
    seen = {0: 0, 1: 0, 2: 0}
    for i in range(30):
        rng = np.random.default_rng([1, i])
        image, figures = render_image(rng, 192, 144)
        assert image.shape == (144, 192, 3) and image.dtype == np.uint8
        for f in figures:
            inside = (f.points[:, 0] >= 0) & (f.points[:, 0] <= 191) & (f.points[:, 1] >= 0) & (f.points[:, 1] <= 143)
            np.testing.assert_array_equal(f.visible == 0, ~inside)  # v=0 exactly when outside the image
            for v in (0, 1, 2):
                seen[v] += int((f.visible == v).sum())
    # the generator makes all three cases (truncation and occlusion happen)
    assert seen[0] > 0 and seen[1] > 0 and seen[2] > seen[1]


def test_left_right_cue_survives_a_mirror_flip():
    """Front-facing figures: the person's left shoulder/hip lie on the image right of the right ones,
    and a mirrored, label-swapped figure obeys the same rule (so flip augmentation is consistent).
    Left and right limbs are drawn alike: no chirality cue that a flip would contradict."""
    from rsn_tf import geometry
    from rsn_tf.keypoints import COCO

    checked = 0
    for i in range(12):
        image, figures = render_image(np.random.default_rng([2, i]), 320, 240, max_people=1)
        p = figures[0].points
        assert p[5, 0] > p[6, 0] and p[11, 0] > p[12, 0]
        q, _ = geometry.flip_points(p, 320, COCO.flip_pairs)
        assert q[5, 0] > q[6, 0] and q[11, 0] > q[12, 0]
        f = figures[0]
        if np.all(f.visible[[11, 12, 13, 14]] == 2):  # mid-thigh colours match
            left = ((p[11] + p[13]) / 2).astype(int)
            right = ((p[12] + p[14]) / 2).astype(int)
            gl, gr = image[left[1], left[0]].astype(int), image[right[1], right[0]].astype(int)
            assert np.abs(gl - gr).max() <= 40  # same trouser colour (noise/blur aside)
            checked += 1
    assert checked >= 5


def test_cli_and_contact_sheet(tmp_path, capsys):
    from rsn_tf.cli import main

    out = tmp_path / "s"
    assert main(["synth", "--out", str(out), "--images", "3", "--seed", "1", "--image-size", "96x128",
                 "--sheet", str(tmp_path / "sheet.png")]) == 0
    assert os.path.getsize(tmp_path / "sheet.png") > 1000
    data = json.load(open(out / "person_keypoints_train.json"))
    assert len(data["images"]) == 2 and "train: 2 images" in capsys.readouterr().out
    assert (data["images"][0]["height"], data["images"][0]["width"]) == (96, 128)  # HxW, as --input everywhere
    assert main(["synth", "--out", str(out), "--image-size", "12"]) == 2
    assert "expected HxW" in capsys.readouterr().err
    # the old WxH spelling is refused with the replacement spelled out, not silently transposed
    assert main(["synth", "--out", str(out), "--size", "128x96"]) == 2
    assert "--image-size 96x128" in capsys.readouterr().err
    # a dataset already in --out is not replaced silently
    assert main(["synth", "--out", str(out), "--images", "2", "--image-size", "96x128"]) == 2
    assert "already holds a dataset" in capsys.readouterr().err
    assert len(json.load(open(out / "person_keypoints_train.json"))["images"]) == 2
