"""Tracked poses against a synthetic clip's truth: keypoint error, identities, jitter and lag.

``evaluate_video(poses_doc, truth_doc)`` (the contents of ``poses.json`` and of ``truth.json`` from
``rsn synth-video``). Per frame, predicted poses are matched to truth people greedily by OKS (best pair
first, OKS >= ``min_oks``; COCO sigmas, the person's area taken as the box of all its keypoints). A truth
person counts as *present* in a frame when at least ``min_visible`` of its keypoints show (visibility 2).

- ``error_px``: mean distance (px) of visible keypoints of matched pairs; ``error_rel``: the same divided by
  the person's height (extent of its true keypoints).
- ``recall``: share of present person-frames with a matched pose; ``precision``: share of poses matched to
  someone.
- ``id_switches``: a present person matched to a track other than the one it was last matched to
  (CLEAR-MOT IDSW); ``fragments``: times a present person's matching stops and later resumes.
- ``jitter_px``: for people who stand still (role ``static``; their true acceleration is 0), the mean
  ``|p[t+1] - 2 p[t] + p[t-1]|`` (px/frame^2) of visible keypoints over three frames on one track.
- ``lag_frames``: for the runner (role ``runner``), the least-squares delay ``tau`` in
  ``pred(t) ~ truth(t - tau)``, i.e. ``sum((truth - pred) . v) / sum(|v|^2)`` with the true velocity ``v``
  (px/frame, central difference) of visible keypoints moving faster than 1 px/frame; ``runner_error_px``
  its mean keypoint error.

Each is computed for ``keypoints`` (as written: smoothed when smoothing was on) and, when poses.json has
them, ``keypoints_raw`` (the estimator's) -- so one run measures smoothing on and off.
"""
from __future__ import annotations

import numpy as np

from rsn_tf.keypoints import COCO


def _oks(pred: np.ndarray, truth: np.ndarray, labelled: np.ndarray, area: float, sigmas: np.ndarray) -> float:
    if not labelled.any():
        return 0.0
    d2 = ((pred - truth) ** 2).sum(-1)
    e = d2 / (2.0 * max(area, 1.0) * (2 * sigmas) ** 2)
    return float(np.exp(-e)[labelled].mean())


def _truth_people(frame: dict) -> list[dict]:
    out = []
    for p in frame["people"]:
        k = np.asarray(p["keypoints"], np.float64)
        v = np.asarray(p["visible"], np.int64)
        lo, hi = k.min(0), k.max(0)
        out.append({"id": p["id"], "k": k, "v": v, "height": float(hi[1] - lo[1]),
                    "area": float(np.prod(np.maximum(hi - lo, 1.0)))})
    return out


def match_frame(poses: list[dict], people: list[dict], key: str, sigmas, min_oks: float) -> list[tuple[int, int]]:
    """Greedy OKS matching of one frame: [(pose index, person index)]."""
    if not poses or not people:
        return []
    sim = np.zeros((len(poses), len(people)))
    for i, p in enumerate(poses):
        k = np.asarray(p[key], np.float64)
        for j, t in enumerate(people):
            sim[i, j] = _oks(k, t["k"], t["v"] > 0, t["area"], sigmas)
    pairs, used_p, used_t = [], set(), set()
    for flat in np.argsort(-sim, axis=None, kind="stable"):
        i, j = np.unravel_index(flat, sim.shape)
        if sim[i, j] < min_oks:
            break
        if i not in used_p and j not in used_t:
            used_p.add(i)
            used_t.add(j)
            pairs.append((int(i), int(j)))
    return pairs


def evaluate_video(poses_doc: dict, truth_doc: dict, key: str = "keypoints", min_oks: float = 0.3,
                   min_visible: int = 4) -> dict:
    """Metrics of ``poses_doc[frames][*][poses][*][key]`` against the truth (see the module docstring)."""
    sigmas = np.asarray(COCO.sigmas, np.float64)
    roles = {p["id"]: p["role"] for p in truth_doc.get("people", [])}
    truth_frames = {f["index"]: f for f in truth_doc["frames"]}
    pred_frames = {f["index"]: f for f in poses_doc["frames"]}
    errors, rel, runner_err = [], [], []
    present = matched_present = n_poses = matched_poses = 0
    last_track: dict[int, int] = {}
    tracked_before: dict[int, bool] = {}
    lost_since: dict[int, bool] = {}
    switches = fragments = 0
    per_person: dict[int, dict[int, np.ndarray]] = {}   # truth id -> {frame: predicted keypoints}
    per_track: dict[int, dict[int, int]] = {}          # truth id -> {frame: track id}
    truth_k: dict[int, dict[int, tuple]] = {}
    for index in sorted(truth_frames):
        people = _truth_people(truth_frames[index])
        poses = (pred_frames.get(index) or {"poses": []})["poses"]
        n_poses += len(poses)
        pairs = match_frame(poses, people, key, sigmas, min_oks)
        matched = {j: i for i, j in pairs}
        matched_poses += len(pairs)
        for j, t in enumerate(people):
            truth_k.setdefault(t["id"], {})[index] = (t["k"], t["v"])
            is_present = int((t["v"] == 2).sum()) >= min_visible
            if j in matched:
                pose = poses[matched[j]]
                k = np.asarray(pose[key], np.float64)
                vis = t["v"] == 2
                if vis.any():
                    d = np.linalg.norm(k[vis] - t["k"][vis], axis=-1)
                    errors.extend(d.tolist())
                    rel.extend((d / max(t["height"], 1.0)).tolist())
                    if roles.get(t["id"]) == "runner":
                        runner_err.extend(d.tolist())
                per_person.setdefault(t["id"], {})[index] = k
                per_track.setdefault(t["id"], {})[index] = pose["track_id"]
            if not is_present:
                continue
            present += 1
            if j in matched:
                matched_present += 1
                tid = poses[matched[j]]["track_id"]
                if t["id"] in last_track and last_track[t["id"]] != tid:
                    switches += 1
                last_track[t["id"]] = tid
                if lost_since.get(t["id"]):
                    fragments += 1
                tracked_before[t["id"]] = True
                lost_since[t["id"]] = False
            elif tracked_before.get(t["id"]):
                lost_since[t["id"]] = True

    jitter = []
    num, den = 0.0, 0.0
    for pid, frames in per_person.items():
        role = roles.get(pid)
        tracks = per_track[pid]
        tk = truth_k[pid]
        for f in sorted(frames):
            if role == "static" and f - 1 in frames and f + 1 in frames and \
                    tracks[f - 1] == tracks[f] == tracks[f + 1]:
                vis = (tk[f - 1][1] == 2) & (tk[f][1] == 2) & (tk[f + 1][1] == 2)
                if vis.any():
                    acc = frames[f + 1] - 2 * frames[f] + frames[f - 1]
                    jitter.extend(np.linalg.norm(acc[vis], axis=-1).tolist())
            if role == "runner" and f - 1 in tk and f + 1 in tk:
                vel = (tk[f + 1][0] - tk[f - 1][0]) / 2.0
                ok = (tk[f][1] == 2) & (np.linalg.norm(vel, axis=-1) > 1.0)
                if ok.any():
                    num += float(((tk[f][0][ok] - frames[f][ok]) * vel[ok]).sum())
                    den += float((vel[ok] ** 2).sum())
    return {
        "key": key, "frames": len(truth_frames), "present_person_frames": present,
        "recall": round(matched_present / present, 4) if present else None,
        "precision": round(matched_poses / n_poses, 4) if n_poses else None,
        "error_px": round(float(np.mean(errors)), 3) if errors else None,
        "error_rel": round(float(np.mean(rel)), 4) if rel else None,
        "id_switches": switches, "fragments": fragments,
        "tracks": len(poses_doc.get("tracks", [])),
        "jitter_px": round(float(np.mean(jitter)), 4) if jitter else None,
        "lag_frames": round(num / den, 3) if den > 0 else None,
        "runner_error_px": round(float(np.mean(runner_err)), 3) if runner_err else None,
    }


def evaluate_smoothing(poses_doc: dict, truth_doc: dict, **kwargs) -> dict:
    """``{"raw": metrics of keypoints_raw, "smoothed": metrics of keypoints}`` for a run with smoothing on
    (``{"raw": ...}`` only for a run without)."""
    has_raw = bool(((poses_doc.get("settings") or {}).get("smoothing") or {}).get("enabled")) or any(
        "keypoints_raw" in p for f in poses_doc["frames"] for p in f["poses"])
    out = {"raw": evaluate_video(poses_doc, truth_doc, "keypoints_raw" if has_raw else "keypoints", **kwargs)}
    if has_raw:
        out["smoothed"] = evaluate_video(poses_doc, truth_doc, "keypoints", **kwargs)
    return out
