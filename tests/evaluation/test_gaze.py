"""Gaze metrics with answers computed by hand, and the Atari-HEAD loader on a synthetic trial."""

import io
import math
import tarfile

import numpy as np
import pytest
from PIL import Image

from digr.errors import DigrError
from digr.evaluation.atari_head import load_atari_head_trial
from digr.evaluation.gaze import fixation_map, gaussian_blur, kl_to_fixation_map, nss, shuffled_auc


def _indicator(shape, pixels):
    m = np.zeros(shape, dtype=np.int64)
    for r, c in pixels:
        m[r, c] += 1
    return m


# --------------------------------------------------------------------------------------------- NSS
def test_nss_of_the_fixation_indicator():
    """s = indicator of K of N pixels: mean p = K/N, std sqrt(p(1-p)), so NSS = (1-p)/std = sqrt((1-p)/p)."""
    f = _indicator((6, 8), [(0, 0), (2, 3), (5, 7)])
    p = 3 / 48
    assert nss(f.astype(float), f) == pytest.approx(math.sqrt((1 - p) / p))
    # affine maps with a positive scale give the same NSS; the inverted map the opposite one
    assert nss(3 * f + 0.5, f) == pytest.approx(math.sqrt((1 - p) / p))
    assert nss(1 - f, f) == pytest.approx(-math.sqrt((1 - p) / p))


def test_nss_weights_repeated_fixations_and_is_nan_when_undefined():
    s = np.array([[0.0, 1.0], [2.0, 3.0]])  # mean 1.5, std sqrt(1.25)
    f = np.array([[0, 2], [0, 1]])  # (1 - 1.5) twice and (3 - 1.5) once
    assert nss(s, f) == pytest.approx((2 * -0.5 + 1.5) / (3 * math.sqrt(1.25)))
    assert math.isnan(nss(np.ones((3, 3)), _indicator((3, 3), [(1, 1)])))
    assert math.isnan(nss(s, np.zeros((2, 2))))


# ----------------------------------------------------------------------------------------- fixations
def test_fixation_map_scales_frame_pixels_and_drops_off_frame_samples():
    gaze = [(0.0, 0.0), (159.9, 209.9), (80.0, 105.0), (80.5, 105.2), (-1.0, 5.0), (10.0, 210.0)]
    m = fixation_map(gaze, (84, 84))  # x = column in [0, 160), y = row in [0, 210)
    expected = np.zeros((84, 84), dtype=np.int64)
    expected[0, 0] = 1
    expected[83, 83] = 1
    expected[42, 42] = 2  # floor(105 * 84 / 210) = 42, floor(80 * 84 / 160) = 42
    np.testing.assert_array_equal(m, expected)
    assert fixation_map(np.zeros((0, 2)), (5, 5)).sum() == 0
    np.testing.assert_array_equal(fixation_map([(3.5, 1.2)], (4, 6), frame_shape=(4, 6)),
                                  _indicator((4, 6), [(1, 3)]))


# ------------------------------------------------------------------------------------------- blur/KL
def test_gaussian_blur_of_a_delta():
    x = np.zeros((41, 41))
    x[20, 20] = 1.0
    b = gaussian_blur(x, sigma=2.0)
    assert b[20, 20] == pytest.approx(1 / (2 * math.pi * 4), rel=1e-3)  # 2-D Gaussian peak 1/(2 pi s^2)
    assert b.sum() == pytest.approx(1.0)  # far from the borders nothing is lost
    np.testing.assert_allclose(b, b.T)
    assert b[20, 22] / b[20, 20] == pytest.approx(math.exp(-0.5), rel=1e-2)
    # borders reflect (OpenCV's default): a constant map stays constant
    np.testing.assert_allclose(gaussian_blur(np.full((5, 7), 3.0), sigma=4.0), 3.0)


def test_kl_of_identical_maps_is_zero_and_by_hand():
    f = _indicator((20, 24), [(4, 5), (4, 5), (15, 20)])
    same = gaussian_blur(f, sigma=2.0)
    assert kl_to_fixation_map(same * 7.0, f, sigma=2.0) == pytest.approx(0.0, abs=1e-12)
    # fixations everywhere blur to the uniform P = 1/4; KL(P || Q) = sum 1/4 log((1/4) / q)
    q = np.array([[0.4, 0.1], [0.25, 0.25]])
    assert kl_to_fixation_map(q, np.ones((2, 2)), sigma=1.0) == pytest.approx(0.25 * math.log(0.625 * 2.5))
    other = np.ones((20, 24))
    assert kl_to_fixation_map(other, f, sigma=2.0) > 0


def test_kl_zero_mass_where_fixated():
    f = _indicator((9, 9), [(4, 4)])
    s = np.zeros((9, 9))
    s[0, 0] = 1.0
    assert kl_to_fixation_map(s, f, sigma=1.0) == math.inf
    regularised = kl_to_fixation_map(s, f, sigma=1.0, eps=1e-7)
    assert math.isfinite(regularised) and regularised > 0
    assert math.isnan(kl_to_fixation_map(np.zeros((9, 9)), f, sigma=1.0))
    assert math.isnan(kl_to_fixation_map(s, np.zeros((9, 9)), sigma=1.0))


# ------------------------------------------------------------------------------------- shuffled AUC
def test_shuffled_auc_perfect_constant_and_inverted():
    f = _indicator((10, 10), [(1, 1), (2, 7), (8, 3)])
    other = _indicator((10, 10), [(5, 5), (0, 9), (9, 0), (4, 4)])
    assert shuffled_auc(f.astype(float), f, other, seed=0) == 1.0
    assert shuffled_auc(np.full((10, 10), 0.3), f, other, seed=0) == 0.5  # all ties count one half
    assert shuffled_auc(1.0 - f, f, other, seed=0) == 0.0


def test_shuffled_auc_ties_by_hand_and_seeded():
    """One fixation with saliency 0.5; negatives drawn from two equally likely pixels with saliency
    0.2 (a win) and 0.5 (a tie): expected AUC 0.5 * 1 + 0.5 * 0.5 = 0.75."""
    s = np.array([[0.5, 0.2, 0.5, 0.9]])
    f = np.array([[1, 0, 0, 0]])
    other = np.array([[0, 1, 1, 0]])
    got = shuffled_auc(s, f, other, seed=3, splits=4000)
    assert got == pytest.approx(0.75, abs=0.02)  # std of the mean ~0.004
    assert got == shuffled_auc(s, f, other, seed=3, splits=4000)
    assert math.isnan(shuffled_auc(s, np.zeros((1, 4)), other, seed=0))


@pytest.mark.parametrize("call", [
    lambda: nss(np.ones((3, 3)), np.ones((3, 4))),
    lambda: nss(np.full((3, 3), np.nan), np.ones((3, 3))),
    lambda: nss(np.ones(9), np.ones(9)),
    lambda: kl_to_fixation_map(np.ones((3, 3)), -np.ones((3, 3)), sigma=1.0),
    lambda: kl_to_fixation_map(np.ones((3, 3)), np.ones((3, 3)), sigma=0.0),
    lambda: kl_to_fixation_map(-np.ones((3, 3)), np.ones((3, 3)), sigma=1.0),
    lambda: shuffled_auc(np.ones((3, 3)), np.ones((3, 3)), np.ones((3, 3)), seed=0, splits=0),
    lambda: fixation_map(np.ones((2, 3)), (4, 4)),
])
def test_bad_input_raises_one_line(call):
    with pytest.raises(DigrError) as info:
        call()
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------------------------------- loader
TRIAL = "100_RZ_3592991_Aug-24-11-44-38"
HEADER = "frame_id,episode_id,score,duration(ms),unclipped_reward,action,gaze_positions"
ROWS = [
    "RZ_3592991_1,null,null,null,null,0,null",
    "RZ_3592991_2,0,0,405,0,1,80.5,105.2,81.0,106.0",
    "RZ_3592991_3,0,4,211,4,3,10.25,20.5",
]


def _frame(i):
    rng = np.random.default_rng(i)
    return rng.integers(0, 256, size=(210, 160, 3), dtype=np.uint8)


def _png(i):
    buf = io.BytesIO()
    Image.fromarray(_frame(i)).save(buf, format="PNG")
    return buf.getvalue()


def _write_trial(root, *, archive=True, folder=False, extra=()):
    (root / f"{TRIAL}.txt").write_text("\n".join([HEADER, *ROWS]) + "\n")
    if folder:
        (root / TRIAL).mkdir()
        for i in (1, 2, 3):
            (root / TRIAL / f"RZ_3592991_{i}.png").write_bytes(_png(i))
    if archive:
        with tarfile.open(root / f"{TRIAL}.tar.bz2", "w:bz2") as tar:
            for name, data in list(extra) + [(f"{TRIAL}/RZ_3592991_{i}.png", _png(i)) for i in (3, 1, 2)]:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return root


def test_load_trial_table(tmp_path):
    trial = load_atari_head_trial(_write_trial(tmp_path))
    assert trial.name == TRIAL and len(trial) == 3
    assert trial.frame_ids == ("RZ_3592991_1", "RZ_3592991_2", "RZ_3592991_3")
    np.testing.assert_array_equal(trial.episode_id, [-1, 0, 0])
    np.testing.assert_array_equal(trial.action, [0, 1, 3])
    assert math.isnan(trial.score[0]) and trial.score[2] == 4 and trial.duration_ms[1] == 405
    assert trial.gaze[0].shape == (0, 2)
    np.testing.assert_array_equal(trial.gaze[1], [[80.5, 105.2], [81.0, 106.0]])
    maps = trial.fixation_maps((84, 84))
    assert maps.shape == (3, 84, 84) and maps.sum((1, 2)).tolist() == [0, 2, 1]
    # rows floor(105.2 or 106 * 84 / 210) = 42, columns floor(80.5 or 81 * 84 / 160) = 42
    assert maps[1, 42, 42] == 2


@pytest.mark.parametrize("source", ["folder", "txt", "archive", "pair", "frames-folder"])
def test_load_frames_from_archive_or_folder(tmp_path, source):
    _write_trial(tmp_path, archive=source != "frames-folder", folder=source == "frames-folder")
    arg = {"folder": tmp_path, "txt": tmp_path / f"{TRIAL}.txt", "archive": tmp_path / f"{TRIAL}.tar.bz2",
           "pair": (tmp_path / f"{TRIAL}.txt", tmp_path / f"{TRIAL}.tar.bz2"),
           "frames-folder": tmp_path / TRIAL}[source]
    trial = load_atari_head_trial(arg)
    frames = trial.frames([2, 0])  # table order, whatever the archive order (3, 1, 2)
    assert frames.shape == (2, 210, 160, 3) and frames.dtype == np.uint8
    np.testing.assert_array_equal(frames[0], _frame(3))
    np.testing.assert_array_equal(frames[1], _frame(1))
    assert trial.frames().shape[0] == 3


def test_gaze_metrics_on_a_loaded_trial(tmp_path):
    """End to end: a saliency map equal to frame 2's fixations scores the NSS of an indicator."""
    trial = load_atari_head_trial(_write_trial(tmp_path))
    maps = trial.fixation_maps((84, 84))
    s = (maps[1] > 0).astype(float)
    p = 1 / (84 * 84)  # both samples fall in one pixel
    assert nss(s, maps[1]) == pytest.approx(math.sqrt((1 - p) / p))
    assert shuffled_auc(s, maps[1], maps[2], seed=0) == 1.0


def test_unsafe_or_broken_archives_and_tables(tmp_path):
    root = tmp_path / "evil"
    root.mkdir()
    _write_trial(root, extra=[("../escape.png", b"x")])
    with pytest.raises(DigrError, match="unsafe member"):
        load_atari_head_trial(root).frames()

    root = tmp_path / "link"
    root.mkdir()
    (root / f"{TRIAL}.txt").write_text("\n".join([HEADER, *ROWS]) + "\n")
    with tarfile.open(root / f"{TRIAL}.tar.bz2", "w:bz2") as tar:
        link = tarfile.TarInfo(f"{TRIAL}/RZ_3592991_1.png")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tar.addfile(link)
    with pytest.raises(DigrError, match="lacks 3 requested frame"):  # links are never followed
        load_atari_head_trial(root).frames()

    bad = tmp_path / "bad"
    bad.mkdir()
    for text, msg in [("no,header\n", "not an Atari-HEAD trial table"),
                      (HEADER + "\nRZ_1,0,0,1,0,x,null\n", r"\.txt:2: action"),
                      (HEADER + "\nRZ_1,0,0,1,0,1,3.0\n", "odd number"),
                      (HEADER + "\nRZ_1,0,0\n", "expected 7")]:
        (bad / "t.txt").write_text(text)
        with pytest.raises(DigrError, match=msg):
            load_atari_head_trial(bad / "t.txt")
    (bad / "u.txt").write_text(HEADER + "\n")
    with pytest.raises(DigrError, match="2 trial tables"):
        load_atari_head_trial(bad)
    with pytest.raises(DigrError, match="no frames found"):
        load_atari_head_trial(bad / "u.txt").frames()
    with pytest.raises(DigrError, match="not found"):
        load_atari_head_trial(tmp_path / "nope")
