"""Tests for the synthetic machine-sound generator."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from sklearn.metrics import roc_auc_score

from sk_asd.datasets.synthetic import ANOMALY_KINDS, make_machine_sounds

# Small settings keep the whole module to a few seconds.
SMALL = dict(
    n_normal_train=4,
    n_normal_test=3,
    n_anomalous_test=5,
    duration=0.25,
    sample_rate=16000,
)


def _log_spectrogram(x: np.ndarray, n_fft: int = 1024) -> np.ndarray:
    """Log power spectrogram, shape (n_clips, n_frames, n_fft // 2 + 1)."""
    frames = sliding_window_view(x, n_fft, axis=1)[:, :: n_fft // 2]
    power = np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=-1)) ** 2
    return np.log(power + 1e-12)


def _anomaly_scores(data, transient: bool) -> np.ndarray:
    """A deliberately simple detector, fitted per machine on training clips.

    Stationary faults change the clip's average spectrum, so they are scored by
    the ten largest squared z-scores of the mean log spectrum; transient faults
    hide in a few frames, so they are scored by the worst frame's mean squared
    z-score against the training frames.
    """
    train = _log_spectrogram(data.X_train)
    test = _log_spectrogram(data.X_test)
    scores = np.empty(len(test))
    for machine_id in data.machine_ids:
        ref = train[data.machine_ids_train == machine_id]
        rows = data.machine_ids_test == machine_id
        if transient:
            z = (test[rows] - ref.mean(axis=(0, 1))) / ref.std(axis=(0, 1))
            scores[rows] = (z**2).mean(axis=-1).max(axis=-1)
        else:
            means = ref.mean(axis=1)
            z = (test[rows].mean(axis=1) - means.mean(axis=0)) / means.std(axis=0)
            scores[rows] = np.sort(z**2, axis=-1)[:, -10:].mean(axis=-1)
    return scores


def test_shapes_dtypes_and_labels():
    data = make_machine_sounds(3, random_state=0, **SMALL)
    n_samples = 4000
    n_test = 3 * (3 + 5)

    assert data.X_train.shape == (3 * 4, n_samples)
    assert data.X_test.shape == (n_test, n_samples)
    assert data.X_train.dtype == np.float32
    assert data.X_test.dtype == np.float32
    assert data.sample_rate == 16000
    assert isinstance(data.DESCR, str) and "Synthetic" in data.DESCR

    assert data.machine_ids.tolist() == ["id_00", "id_01", "id_02"]
    assert data.machine_ids.tolist() == sorted(set(data.machine_ids_train))
    for machine_id in data.machine_ids:
        assert np.sum(data.machine_ids_train == machine_id) == 4
        rows = data.machine_ids_test == machine_id
        assert rows.sum() == 8
        assert data.is_anomaly_test[rows].sum() == 5

    assert np.issubdtype(data.is_anomaly_test.dtype, np.integer)
    assert set(np.unique(data.is_anomaly_test)) == {0, 1}
    assert data.machine_ids_test.shape == data.anomaly_kind_test.shape == (n_test,)
    # "normal" exactly where the label says normal, a known kind elsewhere.
    is_normal = data.anomaly_kind_test == "normal"
    np.testing.assert_array_equal(is_normal, data.is_anomaly_test == 0)
    assert set(data.anomaly_kind_test[~is_normal]) <= set(ANOMALY_KINDS)


def test_anomaly_kinds_cycle_and_balance():
    data = make_machine_sounds(3, random_state=0, **{**SMALL, "n_anomalous_test": 6})
    kinds, counts = np.unique(
        data.anomaly_kind_test[data.is_anomaly_test == 1], return_counts=True
    )
    assert sorted(kinds) == sorted(ANOMALY_KINDS)
    assert counts.max() - counts.min() <= 1
    assert counts.sum() == 18

    only = make_machine_sounds(2, anomaly_kinds="rubbing", random_state=0, **SMALL)
    assert set(only.anomaly_kind_test) == {"normal", "rubbing"}


def test_empty_test_split_is_allowed():
    data = make_machine_sounds(
        2, **{**SMALL, "n_normal_test": 0, "n_anomalous_test": 0}, random_state=0
    )
    assert data.X_test.shape == (0, 4000)
    assert data.is_anomaly_test.shape == (0,)


def test_same_seed_is_bit_identical():
    first = make_machine_sounds(2, random_state=7, **SMALL)
    second = make_machine_sounds(2, random_state=7, **SMALL)
    # sklearn convention: an int seed and a RandomState seeded alike agree.
    third = make_machine_sounds(2, random_state=np.random.RandomState(7), **SMALL)
    for other in (second, third):
        assert other.keys() == first.keys()
        for key, value in first.items():
            if isinstance(value, np.ndarray):
                np.testing.assert_array_equal(other[key], value, err_msg=key)
            else:
                assert other[key] == value


def test_different_seeds_and_clips_differ():
    a = make_machine_sounds(2, random_state=0, **SMALL)
    b = make_machine_sounds(2, random_state=1, **SMALL)
    assert not np.allclose(a.X_train, b.X_train)
    assert not np.allclose(a.X_test, b.X_test)
    # No two clips of one call are the same recording.
    clips = np.concatenate([a.X_train, a.X_test])
    assert len(np.unique(clips, axis=0)) == len(clips)


def test_seed_streams_are_independent_of_other_settings():
    base = make_machine_sounds(2, random_state=3, **SMALL)
    # Training clips ignore the test settings ...
    other = make_machine_sounds(
        2,
        random_state=3,
        **{**SMALL, "n_normal_test": 1, "n_anomalous_test": 9},
        anomaly_strength=2.5,
        anomaly_kinds=("bearing",),
    )
    np.testing.assert_array_equal(other.X_train, base.X_train)
    # ... machine 0 does not depend on how many machines there are ...
    single = make_machine_sounds(1, random_state=3, **SMALL)
    np.testing.assert_array_equal(single.X_train, base.X_train[:4])
    # ... and the strength only changes the anomalous clips.
    quiet = make_machine_sounds(2, random_state=3, anomaly_strength=0.0, **SMALL)
    normal = base.is_anomaly_test == 0
    np.testing.assert_array_equal(quiet.X_test[normal], base.X_test[normal])
    assert not np.allclose(quiet.X_test[~normal], base.X_test[~normal])


@pytest.mark.parametrize("strength", [0.0, 1.0, 3.0])
def test_amplitude_is_realistic_and_never_clips(strength):
    data = make_machine_sounds(
        3, anomaly_strength=strength, random_state=0, **{**SMALL, "duration": 0.5}
    )
    clips = np.concatenate([data.X_train, data.X_test])
    assert np.all(np.isfinite(clips))
    rms = np.sqrt(np.mean(clips.astype(float) ** 2, axis=1))
    assert np.all(rms > 0.02)
    assert np.all(rms < 0.2)
    assert np.max(np.abs(clips)) < 0.9 + 1e-6


def test_very_strong_anomalies_are_limited_not_clipped():
    data = make_machine_sounds(2, anomaly_strength=50.0, random_state=0, **SMALL)
    assert np.max(np.abs(data.X_test)) <= 0.9 + 1e-6
    assert np.all(np.isfinite(data.X_test))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_machines": 0}, "n_machines must be positive"),
        ({"n_machines": 2.0}, "n_machines must be an integer"),
        ({"n_normal_train": 0}, "n_normal_train must be positive"),
        ({"n_normal_test": -1}, "n_normal_test must be non-negative"),
        ({"n_anomalous_test": True}, "n_anomalous_test must be an integer"),
        ({"duration": 0.0}, "duration must be a positive number"),
        ({"duration": float("nan")}, "duration must be a positive number"),
        ({"duration": 1e-6}, "shorter than one sample"),
        ({"sample_rate": 4000}, "sample_rate must be at least 8000"),
        ({"sample_rate": 16000.0}, "sample_rate must be an integer"),
        ({"anomaly_strength": -0.5}, "anomaly_strength must be a non-negative"),
        ({"anomaly_kinds": ()}, "anomaly_kinds must not be empty"),
        ({"snr_db": (15.0, 6.0)}, "low <= high"),
        ({"snr_db": (1.0, 2.0, 3.0)}, "snr_db must be a number or a"),
        ({"snr_db": float("inf")}, "snr_db must be finite"),
    ],
)
def test_invalid_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_machine_sounds(**{"n_machines": 2, **SMALL, **kwargs})


def test_unknown_kind_lists_the_valid_ones():
    with pytest.raises(ValueError) as info:
        make_machine_sounds(2, anomaly_kinds=("bearing", "cavitation"), **SMALL)
    message = str(info.value)
    assert "cavitation" in message
    for kind in ANOMALY_KINDS:
        assert kind in message


def test_machine_ids_are_distinguishable():
    data = make_machine_sounds(
        5,
        n_normal_train=8,
        n_normal_test=12,
        n_anomalous_test=0,
        duration=0.5,
        random_state=0,
    )
    train = _log_spectrogram(data.X_train).mean(axis=1)
    test = _log_spectrogram(data.X_test).mean(axis=1)
    centroids = np.stack(
        [train[data.machine_ids_train == m].mean(axis=0) for m in data.machine_ids]
    )
    distances = ((test[:, None, :] - centroids[None]) ** 2).sum(axis=-1)
    predicted = data.machine_ids[np.argmin(distances, axis=1)]
    assert np.mean(predicted == data.machine_ids_test) > 0.9


@pytest.mark.parametrize("kind", ANOMALY_KINDS)
def test_anomalies_get_easier_with_strength(kind):
    auc = {}
    for strength in (0.0, 0.2, 2.0):
        data = make_machine_sounds(
            2,
            n_normal_train=30,
            n_normal_test=40,
            n_anomalous_test=40,
            duration=0.5,
            anomaly_kinds=(kind,),
            anomaly_strength=strength,
            random_state=0,
        )
        scores = _anomaly_scores(data, transient=kind == "rubbing")
        auc[strength] = roc_auc_score(data.is_anomaly_test, scores)
    # No fault, no signal; a strong fault is plain to even this simple score.
    assert abs(auc[0.0] - 0.5) < 0.2
    assert auc[2.0] > auc[0.2] + 0.2
    assert auc[2.0] > 0.8


def _speed_spread(speed_variation: float) -> float:
    """Std of each clip's speed relative to the first clip, from its spectrum.

    The log-power spectra on a log-frequency axis are shifted copies of each
    other when only the speed changes; the best-matching shift is the log
    speed ratio.
    """
    data = make_machine_sounds(
        n_machines=1,
        n_normal_train=10,
        n_normal_test=0,
        n_anomalous_test=0,
        duration=2.0,
        snr_db=30.0,
        speed_variation=speed_variation,
        random_state=0,
    )
    power = np.abs(np.fft.rfft(data.X_train, axis=1)) ** 2
    freqs = np.fft.rfftfreq(data.X_train.shape[1], 1.0 / data.sample_rate)
    grid = np.geomspace(60.0, 3000.0, 4000)
    spectra = np.log10(np.stack([np.interp(grid, freqs, p) for p in power]) + 1e-12)
    spectra -= spectra.mean(axis=1, keepdims=True)
    n = grid.size
    lags = np.arange(-150, 151)  # +-15 %
    shifts = []
    for row in spectra:
        fit = [
            row[max(0, k) : n + min(0, k)] @ spectra[0][max(0, -k) : n - max(0, k)]
            for k in lags
        ]
        shifts.append(lags[int(np.argmax(fit))] * np.log(grid[1] / grid[0]))
    return float(np.std(shifts))


def test_speed_variation_moves_the_speed_of_every_clip_and_nothing_else_at_zero():
    kwargs = dict(n_machines=2, n_normal_train=3, duration=0.5, random_state=4)
    default = make_machine_sounds(**kwargs)
    zero = make_machine_sounds(**kwargs, speed_variation=0.0)
    np.testing.assert_array_equal(default.X_train, zero.X_train)
    np.testing.assert_array_equal(default.X_test, zero.X_test)
    # 0.5 % clip-to-clip jitter without it, about 5 % with 0.05.
    assert _speed_spread(0.0) < 0.01
    assert _speed_spread(0.05) > 0.02


@pytest.mark.parametrize("bad", [-0.1, 0.5, "0.1", float("nan")])
def test_speed_variation_out_of_range_is_rejected(bad):
    with pytest.raises(ValueError, match="speed_variation"):
        make_machine_sounds(speed_variation=bad)


def test_interference_adds_foreign_sounds_to_every_clip_and_zero_changes_nothing():
    settings = dict(n_normal_train=3, n_normal_test=2, n_anomalous_test=2, duration=1.0)
    plain = make_machine_sounds(2, **settings, random_state=3)
    zero = make_machine_sounds(2, **settings, interference=0.0, random_state=3)
    loud = make_machine_sounds(2, **settings, interference=1.0, random_state=3)
    np.testing.assert_array_equal(plain.X_train, zero.X_train)
    np.testing.assert_array_equal(plain.X_test, zero.X_test)
    # Knocks are impulsive: the foreign sound raises the peak-to-RMS ratio of
    # normal clips (training and test alike), which is what makes it hard.
    for a, b in ((plain.X_train, loud.X_train), (plain.X_test, loud.X_test)):
        changed = np.abs(b - a).max(axis=1) > 1e-3
        assert changed.mean() > 0.5
        assert np.abs(b).max() <= 0.9 + 1e-6
    np.testing.assert_array_equal(plain.is_anomaly_test, loud.is_anomaly_test)


@pytest.mark.parametrize("bad", [-0.1, float("nan"), 11.0, "loud"])
def test_interference_out_of_range_is_refused(bad):
    with pytest.raises(ValueError, match="interference"):
        make_machine_sounds(1, n_normal_train=1, duration=0.2, interference=bad)


# ------------------------------------------- domain shift, attributes, stereo
DOMAIN = dict(n_normal_train=6, n_normal_test=2, n_anomalous_test=2, duration=0.25)


def test_new_options_at_their_defaults_change_nothing():
    plain = make_machine_sounds(2, **DOMAIN, random_state=5)
    explicit = make_machine_sounds(
        2,
        **DOMAIN,
        attributes=False,
        n_target_train=0,
        n_target_normal_test=None,
        n_target_anomalous_test=None,
        domain_shift=1.0,
        n_channels=1,
        random_state=5,
    )
    assert sorted(plain) == sorted(explicit)
    assert "domain_train" not in plain and "attributes_test" not in plain
    for key in ("X_train", "X_test", "machine_ids_train", "anomaly_kind_test"):
        np.testing.assert_array_equal(plain[key], explicit[key])


def test_target_domain_shapes_order_and_labels():
    data = make_machine_sounds(
        2, **DOMAIN, n_target_train=3, n_target_anomalous_test=1, random_state=0
    )
    # Per machine: 6 source + 3 target training clips; 2 + 2 source test
    # clips and 2 normal (default: n_normal_test) + 1 anomalous target ones.
    assert data.X_train.shape == (2 * 9, 4000)
    assert data.X_test.shape == (2 * 7, 4000)
    assert data.domain_train.tolist() == (["source"] * 6 + ["target"] * 3) * 2
    assert data.domain_test.tolist() == (["source"] * 4 + ["target"] * 3) * 2
    assert data.is_anomaly_test.tolist() == [0, 0, 1, 1, 0, 0, 1] * 2
    assert data.machine_ids_train.tolist() == ["id_00"] * 9 + ["id_01"] * 9
    assert data.machine_ids_test.tolist() == ["id_00"] * 7 + ["id_01"] * 7
    # Without attributes the source is nominal and the target one condition.
    assert set(data.attributes_train[data.domain_train == "source"]) == {
        "spd_28V_load_1_mic_1"
    }
    assert set(data.attributes_test[data.domain_test == "target"]) == {
        "spd_34V_load_3_mic_2"
    }
    for key in ("domain_train", "attributes_train"):
        assert data[key].shape == data.machine_ids_train.shape
    for key in ("domain_test", "attributes_test", "anomaly_kind_test"):
        assert data[key].shape == data.machine_ids_test.shape


def test_adding_a_target_domain_leaves_the_source_clips_as_they_were():
    plain = make_machine_sounds(2, **DOMAIN, random_state=1)
    shifted = make_machine_sounds(2, **DOMAIN, n_target_train=2, random_state=1)
    np.testing.assert_array_equal(
        shifted.X_train[shifted.domain_train == "source"], plain.X_train
    )
    np.testing.assert_array_equal(
        shifted.X_test[shifted.domain_test == "source"], plain.X_test
    )


def test_all_new_options_are_reproducible():
    kwargs = dict(
        **DOMAIN, n_target_train=2, attributes=True, n_channels=2, random_state=9
    )
    a = make_machine_sounds(2, **kwargs)
    b = make_machine_sounds(2, **kwargs)
    for key in ("X_train", "X_test", "attributes_train", "domain_test"):
        np.testing.assert_array_equal(a[key], b[key])
    c = make_machine_sounds(2, **{**kwargs, "random_state": 10})
    assert not np.array_equal(a.X_train, c.X_train)


def test_attributes_cycle_through_six_source_conditions():
    data = make_machine_sounds(
        1, **{**DOMAIN, "n_normal_test": 6, "n_anomalous_test": 6},
        attributes=True, random_state=2,
    )  # fmt: skip
    conditions = [
        f"spd_{v}V_load_{load}_mic_1" for load in (1, 2) for v in (26, 28, 30)
    ]
    assert data.attributes_train.tolist() == conditions
    assert set(data.domain_train) == set(data.domain_test) == {"source"}
    # Normal and anomalous test clips cycle separately: no condition is more
    # common among the anomalies.
    normal = data.attributes_test[data.is_anomaly_test == 0]
    anomalous = data.attributes_test[data.is_anomaly_test == 1]
    assert normal.tolist() == anomalous.tolist() == conditions
    # A clip at the nominal condition sounds as without attributes.
    plain = make_machine_sounds(1, **DOMAIN, random_state=2)
    np.testing.assert_array_equal(data.X_train[1], plain.X_train[1])
    assert not np.array_equal(data.X_train[0], plain.X_train[0])


def _mean_log_spectrum(x: np.ndarray) -> np.ndarray:
    return _log_spectrogram(x.astype(np.float64)).mean(axis=(0, 1))


@pytest.mark.parametrize("condition", ["speed_and_load", "microphone"])
def test_target_clips_differ_measurably_from_source_clips(condition):
    settings = dict(
        n_normal_train=8,
        n_target_train=8,
        n_normal_test=0,
        n_anomalous_test=0,
        duration=0.5,
        snr_db=12.0,
    )

    def distance(shift: float) -> float:
        data = make_machine_sounds(1, **settings, domain_shift=shift, random_state=3)
        source = data.X_train[data.domain_train == "source"]
        target = data.X_train[data.domain_train == "target"]
        if condition == "microphone":
            # High band only: the microphone's roll-off is above 1.5 kHz.
            return float(
                np.mean(_mean_log_spectrum(source)[200:])
                - np.mean(_mean_log_spectrum(target)[200:])
            )
        return float(
            np.mean((_mean_log_spectrum(source) - _mean_log_spectrum(target)) ** 2)
        )

    # domain_shift=0 is the control: the target is drawn like the source.
    if condition == "microphone":
        # Natural-log power: 0.46 is 2 dB less above 3 kHz in the target
        # (the roll-off outweighs the load's tilt towards the upper harmonics).
        assert distance(1.0) - distance(0.0) > 0.46
    else:
        assert distance(1.0) > 3.0 * distance(0.0)


def test_target_speed_moves_the_fundamental():
    data = make_machine_sounds(
        1,
        n_normal_train=4,
        n_target_train=4,
        n_normal_test=0,
        n_anomalous_test=0,
        duration=1.0,
        snr_db=20.0,
        random_state=4,
    )
    # Harmonic comb: the spectrum's autocorrelation peaks at f0 (in bins of
    # 1 Hz for 1-s clips). 34 V against 28 V moves it by about 21 %.
    f0 = []
    for domain in ("source", "target"):
        x = data.X_train[data.domain_train == domain].astype(np.float64)
        power = (np.abs(np.fft.rfft(x, axis=1)) ** 2).mean(axis=0)[:3000]
        power -= power.mean()
        ac = np.correlate(power, power, mode="full")[power.size - 1 :]
        f0.append(15 + int(np.argmax(ac[15:80])))
    assert f0[1] / f0[0] == pytest.approx(34 / 28, rel=0.05)


def test_two_channels_near_is_the_mono_clip_and_far_is_quieter_and_noisier():
    mono = make_machine_sounds(2, **DOMAIN, n_target_train=1, random_state=6)
    stereo = make_machine_sounds(
        2, **DOMAIN, n_target_train=1, n_channels=2, random_state=6
    )
    assert stereo.X_train.shape == (mono.X_train.shape[0], 2, 4000)
    assert stereo.X_test.shape == (mono.X_test.shape[0], 2, 4000)
    assert stereo.X_train.dtype == np.float32
    np.testing.assert_array_equal(stereo.X_train[:, 0], mono.X_train)
    np.testing.assert_array_equal(stereo.X_test[:, 0], mono.X_test)
    near, far = stereo.X_train[:, 0], stereo.X_train[:, 1]
    assert np.all(np.abs(far) <= 0.9 + 1e-6)
    # Quieter overall, yet relatively more low-frequency noise and reverb:
    # the far channel correlates only partly with the near one.
    assert np.mean(far.astype(float) ** 2) < np.mean(near.astype(float) ** 2)
    corr = [np.corrcoef(a, b)[0, 1] for a, b in zip(near, far, strict=True)]
    assert 0.0 < np.median(corr) < 0.9


def test_empty_test_split_with_two_channels():
    data = make_machine_sounds(
        1, n_normal_train=2, n_normal_test=0, n_anomalous_test=0,
        duration=0.1, n_channels=2, random_state=0,
    )  # fmt: skip
    assert data.X_test.shape == (0, 2, 1600)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_target_train=-1), "n_target_train"),
        (dict(n_target_train=1.5), "n_target_train"),
        (dict(n_target_normal_test=2), "n_target_train >= 1"),
        (dict(n_target_train=1, n_target_anomalous_test=-2), "n_target_anomalous"),
        (dict(domain_shift=2.5), "domain_shift"),
        (dict(domain_shift=float("nan")), "domain_shift"),
        (dict(n_channels=3), "n_channels"),
        (dict(n_channels=True), "n_channels"),
        (dict(attributes="yes"), "attributes"),
    ],
)
def test_invalid_domain_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_machine_sounds(1, n_normal_train=1, duration=0.1, **kwargs)
