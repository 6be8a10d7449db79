"""Tests for sk_asd.io.audio: reading, channel/rate rules, errors, batches."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from sk_asd.io import (
    AudioBatch,
    AudioFileNotFoundError,
    AudioLoadError,
    SkippedFile,
    load_audio,
    load_audios,
    write_audio,
)

SR = 16000


def _sine(freq: float, n: int, sr: int, amp: float = 0.5) -> np.ndarray:
    return amp * np.sin(2 * np.pi * freq * np.arange(n) / sr)


def _peak_hz(wave: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(wave.size)))
    return float(np.fft.rfftfreq(wave.size, 1 / sr)[np.argmax(spectrum)])


# --------------------------------------------------------------------------
# Sample formats
# --------------------------------------------------------------------------


def test_int16_scaled_by_2_pow_15(tmp_path: Path) -> None:
    ints = np.array([0, 1, -1, 16384, -32768, 32767], dtype=np.int16)
    path = tmp_path / "i16.wav"
    sf.write(path, ints, SR, subtype="PCM_16")
    wave = load_audio(path)
    assert wave.dtype == np.float32
    assert wave.shape == (6,)
    np.testing.assert_array_equal(wave, ints.astype(np.float32) / 2**15)


def test_int32_scaled_by_2_pow_31(tmp_path: Path) -> None:
    ints = np.array([0, 2**30, -(2**31), 2**31 - 1, 123456789], dtype=np.int32)
    path = tmp_path / "i32.wav"
    sf.write(path, ints, SR, subtype="PCM_32")
    wave = load_audio(path, dtype=np.float64)
    assert wave.dtype == np.float64
    np.testing.assert_array_equal(wave, ints.astype(np.float64) / 2**31)


def test_float32_values_unchanged(tmp_path: Path) -> None:
    # Float files are not rescaled, even outside [-1, 1].
    values = np.array([0.0, 0.25, -1.5, 2.0, 1e-6], dtype=np.float32)
    path = write_audio(tmp_path / "f32.wav", values, subtype="FLOAT")
    np.testing.assert_array_equal(load_audio(path), values)


@pytest.mark.parametrize("suffix", [".flac", ".ogg"])
def test_other_containers(tmp_path: Path, suffix: str) -> None:
    x = _sine(440, SR, SR)
    path = write_audio(tmp_path / f"tone{suffix}", x, subtype=None)
    wave = load_audio(path)
    assert wave.shape == (SR,)
    assert _peak_hz(wave, SR) == pytest.approx(440, abs=2)


# --------------------------------------------------------------------------
# Channels
# --------------------------------------------------------------------------


@pytest.fixture
def eight_channel(tmp_path: Path) -> tuple[Path, np.ndarray]:
    # Each channel holds a distinct constant, so picking and averaging are
    # unambiguous; 1/8 steps are exact in int16.
    levels = np.arange(8) / 16 - 0.25
    data = np.tile(levels, (100, 1))
    return write_audio(tmp_path / "eight.wav", data), levels


def test_multichannel_mean(eight_channel: tuple[Path, np.ndarray]) -> None:
    path, levels = eight_channel
    wave = load_audio(path, channel="mean")
    assert wave.shape == (100,)
    np.testing.assert_allclose(wave, levels.mean(), atol=1e-6)


@pytest.mark.parametrize("index", [0, 3, 7, -1])
def test_multichannel_index(eight_channel: tuple[Path, np.ndarray], index: int) -> None:
    path, levels = eight_channel
    wave = load_audio(path, channel=index)
    np.testing.assert_allclose(wave, levels[index], atol=1e-6)


@pytest.mark.parametrize("index", [8, -9, 100])
def test_multichannel_index_out_of_range(
    eight_channel: tuple[Path, np.ndarray], index: int
) -> None:
    path, _ = eight_channel
    with pytest.raises(AudioLoadError, match="8 channel") as info:
        load_audio(path, channel=index)
    assert info.value.path == str(path)
    assert "eight.wav" in str(info.value)


@pytest.mark.parametrize("bad", ["first", 1.0, True, None])
def test_invalid_channel_argument(tmp_path: Path, bad: object) -> None:
    path = write_audio(tmp_path / "m.wav", np.zeros(10))
    with pytest.raises(ValueError, match="channel must be"):
        load_audio(path, channel=bad)  # type: ignore[arg-type]


def test_mono_accepts_channel_zero(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "m.wav", np.full(10, 0.5))
    np.testing.assert_array_equal(load_audio(path, channel=0), np.full(10, 0.5))
    with pytest.raises(AudioLoadError, match="1 channel"):
        load_audio(path, channel=1)


def test_each_channel_keeps_every_channel(
    eight_channel: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    path, levels = eight_channel
    waves = load_audio(path, channel="each")
    assert waves.shape == (8, 100) and waves.dtype == np.float32
    np.testing.assert_allclose(waves, np.tile(levels[:, None], (1, 100)), atol=1e-6)
    # Resampling and max_samples work per channel.
    assert load_audio(path, channel="each", sample_rate=8000).shape == (8, 50)
    assert load_audio(path, channel="each", max_samples=30).shape == (8, 30)
    mono = write_audio(tmp_path / "m.wav", np.full(40, 0.5))
    assert load_audio(mono, channel="each").shape == (1, 40)


def test_load_audios_each_channel_is_a_clip_mapped_back(
    eight_channel: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    path, levels = eight_channel
    mono = write_audio(tmp_path / "m.wav", np.full(40, 0.5))
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio")
    batch = load_audios([mono, bad, path], channel="each", skip_bad=True)
    assert batch.waves.shape == (9, 100)
    assert batch.indices.tolist() == [0] + [2] * 8
    assert batch.channels.tolist() == [0, *range(8)]
    assert batch.paths == [str(mono)] + [str(path)] * 8
    assert batch.lengths.tolist() == [40] + [100] * 8
    np.testing.assert_allclose(batch.waves[1:, 0], levels, atol=1e-6)
    # A per-file value (e.g. a score) is the mean over the file's rows.
    rows = batch.indices == 2
    assert batch.waves[rows, 0].mean() == pytest.approx(levels.mean(), abs=1e-6)
    assert load_audios([mono], channel="mean").channels is None


# --------------------------------------------------------------------------
# Resampling
# --------------------------------------------------------------------------


def test_stereo_44k1_resampled_keeps_frequency(tmp_path: Path) -> None:
    n = 44100  # one second
    left = _sine(1000, n, 44100)
    right = _sine(1000, n, 44100, amp=0.3)
    path = write_audio(tmp_path / "cd.wav", np.stack([left, right], 1), 44100)
    wave = load_audio(path)
    assert wave.shape == (SR,)  # ceil(44100 * 160 / 441)
    assert _peak_hz(wave, SR) == pytest.approx(1000, abs=1)
    # The mean of the two channels has amplitude 0.4; the anti-alias filter
    # leaves a 1 kHz tone untouched away from the edges.
    assert np.abs(wave[1000:-1000]).max() == pytest.approx(0.4, abs=0.01)


def test_resample_length_is_ceil(tmp_path: Path) -> None:
    # 8 kHz -> 16 kHz doubles; 22050 -> 16000 uses 320/441.
    path = write_audio(tmp_path / "a.wav", np.zeros(1001), 8000)
    assert load_audio(path).shape == (2002,)
    path = write_audio(tmp_path / "b.wav", np.zeros(1000), 22050)
    assert load_audio(path).shape == (int(np.ceil(1000 * 320 / 441)),)


def test_same_rate_is_not_resampled(tmp_path: Path) -> None:
    x = np.random.default_rng(0).uniform(-0.5, 0.5, 777)
    path = write_audio(tmp_path / "x.wav", x, subtype="FLOAT")
    np.testing.assert_array_equal(load_audio(path), x.astype(np.float32))


def test_custom_target_rate(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "x.wav", _sine(500, SR, SR))
    wave = load_audio(path, sample_rate=8000)
    assert wave.shape == (8000,)
    assert _peak_hz(wave, 8000) == pytest.approx(500, abs=1)


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.wav"
    with pytest.raises(FileNotFoundError, match="nope.wav") as info:
        load_audio(path)
    assert isinstance(info.value, AudioLoadError)
    assert isinstance(info.value, AudioFileNotFoundError)
    assert info.value.path == str(path)


def test_empty_file_zero_frames(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "empty.wav", np.zeros(0))
    with pytest.raises(AudioLoadError, match="no audio frames") as info:
        load_audio(path)
    assert info.value.path == str(path)


def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "zero.wav"
    path.write_bytes(b"")
    with pytest.raises(AudioLoadError, match="zero.wav"):
        load_audio(path)


def test_garbage_bytes(tmp_path: Path) -> None:
    path = tmp_path / "garbage.wav"
    path.write_bytes(np.random.default_rng(1).bytes(4000))
    with pytest.raises(AudioLoadError, match="not readable audio") as info:
        load_audio(path)
    assert "garbage.wav" in str(info.value)


@pytest.mark.parametrize("keep_bytes", [30, 1000, 20000])
def test_truncated_wav(tmp_path: Path, keep_bytes: int) -> None:
    # 30 bytes cuts the header; the others cut the data chunk, which
    # libsndfile alone would read as a shorter clip without complaint.
    whole = write_audio(tmp_path / "whole.wav", _sine(300, SR, SR))
    cut = tmp_path / "cut.wav"
    cut.write_bytes(whole.read_bytes()[:keep_bytes])
    with pytest.raises(AudioLoadError, match="cut.wav"):
        load_audio(cut)
    # The intact original still loads, so the error is about truncation.
    assert load_audio(whole).shape == (SR,)


def test_truncated_wav_reason_mentions_truncation(tmp_path: Path) -> None:
    whole = write_audio(tmp_path / "whole.wav", np.zeros(1000))
    cut = tmp_path / "cut.wav"
    cut.write_bytes(whole.read_bytes()[:1000])
    with pytest.raises(AudioLoadError, match="truncated"):
        load_audio(cut)


def test_truncated_flac(tmp_path: Path) -> None:
    noise = np.random.default_rng(2).uniform(-0.5, 0.5, SR)
    whole = write_audio(tmp_path / "whole.flac", noise)
    cut = tmp_path / "cut.flac"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(AudioLoadError, match="cut.flac"):
        load_audio(cut)


def test_nan_samples_rejected(tmp_path: Path) -> None:
    path = tmp_path / "nan.wav"
    sf.write(path, np.array([0.0, np.nan, 0.1]), SR, subtype="FLOAT")
    with pytest.raises(AudioLoadError, match="NaN"):
        load_audio(path)


def test_directory_is_not_audio(tmp_path: Path) -> None:
    folder = tmp_path / "folder.wav"
    folder.mkdir()
    with pytest.raises(AudioLoadError, match="not a regular file"):
        load_audio(folder)


def test_error_pickles_with_fields() -> None:
    for err in (AudioLoadError("a.wav", "bad", "fix it"), AudioFileNotFoundError("b")):
        copy = pickle.loads(pickle.dumps(err))
        assert type(copy) is type(err)
        assert (copy.path, copy.reason, str(copy)) == (err.path, err.reason, str(err))


def test_bad_arguments(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "m.wav", np.zeros(10))
    with pytest.raises(ValueError, match="sample_rate"):
        load_audio(path, sample_rate=0)
    with pytest.raises(ValueError, match="floating"):
        load_audio(path, dtype=np.int16)


# --------------------------------------------------------------------------
# load_audios: ragged lengths
# --------------------------------------------------------------------------


@pytest.fixture
def ragged(tmp_path: Path) -> list[Path]:
    # Lengths 300, 500, 400 with distinct constant levels.
    return [
        write_audio(tmp_path / f"c{i}.wav", np.full(n, level))
        for i, (n, level) in enumerate([(300, 0.25), (500, 0.5), (400, -0.5)])
    ]


def test_pad_to_longest(ragged: list[Path]) -> None:
    batch = load_audios(ragged)
    assert isinstance(batch, AudioBatch)
    assert batch.waves.shape == (3, 500)
    assert batch.waves.dtype == np.float32
    np.testing.assert_array_equal(batch.lengths, [300, 500, 400])
    np.testing.assert_array_equal(batch.waves[0, :300], 0.25)
    np.testing.assert_array_equal(batch.waves[0, 300:], 0.0)
    np.testing.assert_array_equal(batch.waves[1], 0.5)
    np.testing.assert_array_equal(batch.waves[2, 400:], 0.0)
    assert batch.paths == [str(p) for p in ragged]
    assert batch.skipped == []
    assert len(batch) == 3


def test_pad_to_target_length_crops_and_pads(ragged: list[Path]) -> None:
    batch = load_audios(ragged, target_length=350)
    assert batch.waves.shape == (3, 350)
    np.testing.assert_array_equal(batch.waves[0, 300:], 0.0)  # padded
    np.testing.assert_array_equal(batch.waves[1], 0.5)  # cut at the end
    np.testing.assert_array_equal(batch.waves[2], -0.5)


def test_crop_to_shortest(ragged: list[Path]) -> None:
    batch = load_audios(ragged, length="crop")
    assert batch.waves.shape == (3, 300)
    np.testing.assert_array_equal(batch.waves[:, 0], [0.25, 0.5, -0.5])
    np.testing.assert_array_equal(batch.lengths, [300, 500, 400])


def test_list_keeps_lengths(ragged: list[Path]) -> None:
    batch = load_audios(ragged, length="list")
    assert isinstance(batch.waves, list)
    assert [w.shape for w in batch.waves] == [(300,), (500,), (400,)]
    np.testing.assert_array_equal(batch.waves[2], -0.5)


def test_length_argument_validation(ragged: list[Path]) -> None:
    with pytest.raises(ValueError, match="length must be one of"):
        load_audios(ragged, length="stretch")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="only used with length='pad'"):
        load_audios(ragged, length="crop", target_length=100)
    with pytest.raises(ValueError, match="positive int"):
        load_audios(ragged, target_length=0)
    with pytest.raises(ValueError, match="at least one path"):
        load_audios([])


def test_threads_give_same_result(ragged: list[Path]) -> None:
    serial = load_audios(ragged * 3)
    threaded = load_audios(ragged * 3, n_jobs=2)
    np.testing.assert_array_equal(serial.waves, threaded.waves)
    assert serial.paths == threaded.paths


# --------------------------------------------------------------------------
# load_audios: bad files
# --------------------------------------------------------------------------


def test_bad_file_raises_without_skip(ragged: list[Path], tmp_path: Path) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF....not a wave")
    with pytest.raises(AudioLoadError, match="bad.wav"):
        load_audios([ragged[0], bad])


def test_skip_bad_reports_and_keeps_order(ragged: list[Path], tmp_path: Path) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all")
    empty = write_audio(tmp_path / "empty.wav", np.zeros(0))
    missing = tmp_path / "missing.wav"
    paths = [bad, ragged[0], missing, ragged[1], empty]
    batch = load_audios(paths, skip_bad=True)
    assert batch.waves.shape == (2, 500)
    assert batch.paths == [str(ragged[0]), str(ragged[1])]
    np.testing.assert_array_equal(batch.indices, [1, 3])
    assert [s.path for s in batch.skipped] == [str(bad), str(missing), str(empty)]
    assert all(isinstance(s, SkippedFile) for s in batch.skipped)
    reasons = [s.reason for s in batch.skipped]
    assert "not readable audio" in reasons[0]
    assert "does not exist" in reasons[1]
    assert "no audio frames" in reasons[2]


def test_skip_bad_all_bad_raises(tmp_path: Path) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"xx")
    with pytest.raises(ValueError, match="none of the 2 audio files"):
        load_audios([bad, tmp_path / "missing.wav"], skip_bad=True)


# --------------------------------------------------------------------------
# write_audio
# --------------------------------------------------------------------------


def test_write_audio_round_trip_and_guards(tmp_path: Path) -> None:
    x = _sine(250, 800, SR)
    path = write_audio(tmp_path / "sub" / "x.wav", x)
    assert path.exists()
    info = sf.info(path)
    assert (info.samplerate, info.subtype, info.frames) == (SR, "PCM_16", 800)
    np.testing.assert_allclose(load_audio(path), x, atol=1 / 2**15)
    with pytest.raises(ValueError, match="outside"):
        write_audio(tmp_path / "loud.wav", np.array([0.0, 1.5]))
    with pytest.raises(ValueError, match="NaN"):
        write_audio(tmp_path / "nan.wav", np.array([np.nan]))
    with pytest.raises(ValueError, match="1-D"):
        write_audio(tmp_path / "cube.wav", np.zeros((2, 2, 2)))


@pytest.mark.parametrize("n_jobs", [None, 2])
def test_load_audios_reports_progress_in_order(tmp_path: Path, n_jobs) -> None:
    paths = [write_audio(tmp_path / f"{i}.wav", np.full(20, 0.1)) for i in range(5)]
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio")
    seen: list[tuple[int, int]] = []
    batch = load_audios(
        [*paths[:2], bad, *paths[2:]],
        skip_bad=True,
        n_jobs=n_jobs,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert seen == [(i, 6) for i in range(1, 7)]  # the skipped file counts too
    assert batch.waves.shape == (5, 20)
