"""Confusion-matrix metrics: hand-checked cases and agreement with the official Cityscapes evaluator."""
import math

import cv2
import numpy as np
import pytest
import torch
from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as cs_eval
from cityscapesscripts.helpers.labels import labels as cs_labels

from rtseg_ros.data.labels import IGNORE_INDEX, get_dataset_info
from rtseg_ros.eval.metrics import ConfusionMatrix


def test_counts_iou_and_ignore_by_hand():
    cm = ConfusionMatrix(3)
    target = torch.tensor([[0, 0, 1, 1], [1, 255, 255, 0]])
    prediction = torch.tensor([[0, 1, 1, 1], [2, 2, 0, 0]])
    cm.update(prediction, target)
    # rows = ground truth: class 0 -> {0: 2, 1: 1}, class 1 -> {1: 2, 2: 1}; the two 255 pixels are not counted
    assert cm.matrix.tolist() == [[2, 1, 0], [0, 2, 1], [0, 0, 0]]
    iou = cm.iou().tolist()
    assert iou[0] == pytest.approx(2 / 3) and iou[1] == pytest.approx(2 / 4)
    assert iou[2] == 0.0  # predicted but absent from the ground truth: a false positive, IoU 0 (not NaN)
    assert cm.miou() == pytest.approx((2 / 3 + 2 / 4 + 0) / 3)
    assert cm.pixel_accuracy() == pytest.approx(4 / 6)


def test_absent_class_is_nan_and_left_out_of_the_mean():
    cm = ConfusionMatrix(4)
    cm.update(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 0]))
    iou = cm.iou()
    assert math.isnan(iou[2]) and math.isnan(iou[3])
    assert cm.miou() == pytest.approx((1 / 2 + 1 / 2) / 2)
    summary = cm.summary(["a", "b", "c", "d"])
    assert summary["iou"]["a"] == pytest.approx(0.5) and math.isnan(summary["iou"]["d"])
    assert math.isnan(ConfusionMatrix(2).miou())


def test_merge_equals_one_pass_and_rejects_bad_ids():
    rng = torch.Generator().manual_seed(0)
    pred = torch.randint(0, 5, (4, 16, 16), generator=rng)
    gt = torch.randint(0, 6, (4, 16, 16), generator=rng)
    gt[gt == 5] = IGNORE_INDEX
    whole, part_a, part_b = ConfusionMatrix(5), ConfusionMatrix(5), ConfusionMatrix(5)
    whole.update(pred, gt)
    part_a.update(pred[:1], gt[:1])
    part_b.update(pred[1:], gt[1:])
    assert torch.equal(part_a.merge(part_b).matrix, whole.matrix)
    with pytest.raises(ValueError, match="outside"):
        whole.update(torch.zeros(2, dtype=torch.long), torch.tensor([1, 7]))
    with pytest.raises(ValueError, match="shape"):
        whole.update(torch.zeros(2, 2), torch.zeros(4))


def test_matches_official_cityscapes_evaluator(tmp_path, monkeypatch):
    """Random label-id ground truth (void ids included) and predictions written as PNGs, scored by
    ``evalPixelLevelSemanticLabeling.evaluateImgLists``; per-class IoU must agree to 1e-6."""
    info = get_dataset_info("cityscapes")
    train_to_label_id = {l.trainId: l.id for l in cs_labels if 0 <= l.trainId < IGNORE_INDEX}
    # every label id except those of train (16) and motorcycle (17)
    gt_ids = np.array([l.id for l in cs_labels if l.id >= 0 and l.trainId not in (16, 17)], np.uint8)
    rng = np.random.default_rng(0)
    cm = ConfusionMatrix(info.num_classes)
    pred_files, gt_files = [], []
    for i in range(3):
        gt = rng.choice(gt_ids, size=(40, 60)).astype(np.uint8)
        gt_train = info.id_to_train_id[gt]
        # mostly right (so IoUs are not all tiny), otherwise random; train id 17 is never predicted
        pred_train = np.where(rng.random(gt.shape) < 0.6, gt_train, rng.integers(0, 17, gt.shape)).astype(np.uint8)
        pred_train[pred_train == IGNORE_INDEX] = 0
        pred_label = np.vectorize(train_to_label_id.get)(pred_train).astype(np.uint8)
        pred_files.append(str(tmp_path / f"pred_{i}.png"))
        gt_files.append(str(tmp_path / f"gt_{i}_gtFine_labelIds.png"))
        cv2.imwrite(pred_files[-1], pred_label)
        cv2.imwrite(gt_files[-1], gt)
        cm.update(torch.from_numpy(pred_train), torch.from_numpy(gt_train))

    for key, value in {"evalInstLevelScore": False, "evalPixelAccuracy": False, "quiet": True,
                       "JSONOutput": False, "exportFile": str(tmp_path / "result.json")}.items():
        monkeypatch.setattr(cs_eval.args, key, value, raising=False)
    official = cs_eval.evaluateImgLists(pred_files, gt_files, cs_eval.args)

    ours = cm.summary(info.class_names)
    for name in info.class_names:
        theirs = official["classScores"][name]
        if math.isnan(theirs):
            assert math.isnan(ours["iou"][name]), name
        else:
            assert ours["iou"][name] == pytest.approx(theirs, abs=1e-6), name
    assert math.isnan(ours["iou"]["motorcycle"])  # absent and never predicted
    assert ours["iou"]["train"] == 0.0  # absent but predicted
    assert ours["miou"] == pytest.approx(official["averageScoreClasses"], abs=1e-6)
