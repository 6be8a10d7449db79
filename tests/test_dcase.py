"""Tests for sk_asd.datasets.dcase: file-name parsing and folder loading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sk_asd.datasets.dcase import (
    list_machine_types,
    load_dcase,
    parse_dcase_filename,
    read_dcase_ground_truth,
    write_dcase2023_folder,
)
from sk_asd.io import AudioLoadError, write_audio

SR = 16000
MINI_ROOT = Path(__file__).resolve().parents[2] / "shared/data/dcase2020-mini"


# --------------------------------------------------------------------------
# parse_dcase_filename
# --------------------------------------------------------------------------

PARSE_CASES = [
    # DCASE 2020 development data.
    (
        "normal_id_00_00000000.wav",
        dict(scheme="2020", machine_id="id_00", section=None, domain=None,
             split=None, is_anomaly=0, index=0, attributes=None),
    ),
    (
        "anomaly_id_04_00000338.wav",
        dict(scheme="2020", machine_id="id_04", section=None, domain=None,
             split=None, is_anomaly=1, index=338, attributes=None),
    ),
    # DCASE 2020 evaluation test data carries no label.
    (
        "id_05_00000514.wav",
        dict(scheme="2020", machine_id="id_05", section=None, domain=None,
             split=None, is_anomaly=None, index=514, attributes=None),
    ),
    # DCASE 2021: no attributes.
    (
        "section_01_target_train_normal_0002.wav",
        dict(scheme="2021+", machine_id="section_01", section="01",
             domain="target", split="train", is_anomaly=0, index=2,
             attributes=None),
    ),
    (
        "section_02_source_test_anomaly_0099.wav",
        dict(scheme="2021+", machine_id="section_02", section="02",
             domain="source", split="test", is_anomaly=1, index=99,
             attributes=None),
    ),
    # DCASE 2022-2024: attributes after the clip number.
    (
        "section_00_source_train_normal_0000_car_A1_spd_28V_mic_1.wav",
        dict(scheme="2021+", machine_id="section_00", section="00",
             domain="source", split="train", is_anomaly=0, index=0,
             attributes="car_A1_spd_28V_mic_1"),
    ),
    (
        "section_00_target_test_anomaly_0041_vel_16_loc_D.wav",
        dict(scheme="2021+", machine_id="section_00", section="00",
             domain="target", split="test", is_anomaly=1, index=41,
             attributes="vel_16_loc_D"),
    ),
    (
        "section_00_source_test_normal_0002_noAttribute.wav",
        dict(scheme="2021+", machine_id="section_00", section="00",
             domain="source", split="test", is_anomaly=0, index=2,
             attributes="noAttribute"),
    ),
    # Evaluation test data: no domain and no label.
    (
        "section_03_0123.wav",
        dict(scheme="2021+", machine_id="section_03", section="03",
             domain=None, split=None, is_anomaly=None, index=123,
             attributes=None),
    ),
    # Domain known, label hidden.
    (
        "section_00_source_test_0007.wav",
        dict(scheme="2021+", machine_id="section_00", section="00",
             domain="source", split="test", is_anomaly=None, index=7,
             attributes=None),
    ),
]  # fmt: skip


@pytest.mark.parametrize(("name", "expected"), PARSE_CASES)
def test_parse_every_pattern(name: str, expected: dict) -> None:
    assert parse_dcase_filename(name) == expected


def test_parse_accepts_paths_and_other_suffixes(tmp_path: Path) -> None:
    from_path = parse_dcase_filename(tmp_path / "test" / "anomaly_id_02_00000001.wav")
    assert from_path["machine_id"] == "id_02"
    assert from_path["is_anomaly"] == 1
    no_suffix = parse_dcase_filename("section_04_target_test_normal_0005")
    assert no_suffix["section"] == "04"
    assert no_suffix["index"] == 5
    flac = parse_dcase_filename("section_00_0001_car_B2.FLAC")
    assert flac["attributes"] == "car_B2"
    assert flac["index"] == 1


@pytest.mark.parametrize(
    "name",
    [
        "recording.wav",
        "normal_00000000.wav",
        "abnormal_id_00_00000000.wav",
        "section_00_source_train_normal.wav",
        "section_00_source_train_normal_0000_.wav",
        "section_xx_0000.wav",
        "id_00.wav",
        "",
    ],
)
def test_parse_rejects_unknown_names(name: str) -> None:
    with pytest.raises(ValueError, match="DCASE") as info:
        parse_dcase_filename(name)
    message = str(info.value)
    assert f"'{name}'" in message
    assert "section_<SS>" in message and "id_<ID>" in message


# --------------------------------------------------------------------------
# load_dcase on generated trees
# --------------------------------------------------------------------------


def _make_tree(root: Path, machine: str, split: str, names: list[str], n: int) -> None:
    for i, name in enumerate(names):
        # Each clip has its own level so row order can be checked.
        write_audio(root / machine / split / name, np.full(n, (i + 1) / 64))


NAMES_2023 = [
    "section_00_source_train_normal_0000_car_A1_spd_28V_mic_1.wav",
    "section_00_target_train_normal_0001_car_A2_spd_31V_mic_1.wav",
    "section_01_source_train_normal_0000_noAttribute.wav",
]
NAMES_2023_TEST = [
    "section_00_source_test_anomaly_0000_car_A1.wav",
    "section_00_target_test_normal_0000_car_A1.wav",
    "section_00_0000.wav",
]
NAMES_2020 = [
    "normal_id_00_00000001.wav",
    "anomaly_id_02_00000000.wav",
    "normal_id_02_00000000.wav",
]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "dev_data"
    _make_tree(root, "ToyCar", "train", NAMES_2023, 200)
    _make_tree(root, "ToyCar", "test", NAMES_2023_TEST, 200)
    _make_tree(root, "fan", "test", NAMES_2020, 160)
    (root / "notes").mkdir()  # not a machine type: no split folder
    (root / "fan" / "test" / "README.txt").write_text("ignored: not audio")
    return root


def test_list_machine_types(tree: Path) -> None:
    assert list_machine_types(tree) == ["fan", "ToyCar"]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        list_machine_types(tree / "absent")


def test_load_2021_plus_train(tree: Path) -> None:
    data = load_dcase(tree, "ToyCar")
    assert data.scheme == "2021+"
    assert data.clips.shape == (3, 200)
    assert data.clips.dtype == np.float32
    # Sorted by file name: section_00 source, section_00 target, section_01.
    assert [Path(p).name for p in data.paths] == sorted(NAMES_2023)
    assert data.machine_ids.tolist() == ["section_00", "section_00", "section_01"]
    assert data.section.tolist() == ["00", "00", "01"]
    assert data.domain.tolist() == ["source", "target", "source"]
    assert data.is_anomaly.tolist() == [0, 0, 0]
    assert data.attributes.tolist() == [
        "car_A1_spd_28V_mic_1",
        "car_A2_spd_31V_mic_1",
        "noAttribute",
    ]
    np.testing.assert_allclose(data.clips[:, 0], [1 / 64, 2 / 64, 3 / 64])
    assert (data.machine_type, data.split, data.sample_rate) == ("ToyCar", "train", SR)


def test_load_2021_plus_test_with_unlabelled(tree: Path) -> None:
    data = load_dcase(tree, "ToyCar", split="test", year=2023)
    names = [Path(p).name for p in data.paths]
    assert names == sorted(NAMES_2023_TEST)
    label = dict(zip(names, data.is_anomaly.tolist(), strict=True))
    assert label["section_00_source_test_anomaly_0000_car_A1.wav"] == 1
    assert label["section_00_target_test_normal_0000_car_A1.wav"] == 0
    assert label["section_00_0000.wav"] == -1
    assert data.domain[names.index("section_00_0000.wav")] is None


def test_load_2020(tree: Path) -> None:
    data = load_dcase(tree, "fan", split="test")
    assert data.scheme == "2020"
    assert data.clips.shape == (3, 160)
    assert [Path(p).name for p in data.paths] == sorted(NAMES_2020)
    assert data.machine_ids.tolist() == ["id_02", "id_00", "id_02"]
    assert data.is_anomaly.tolist() == [1, 0, 0]
    assert data.index.tolist() == [0, 1, 0]
    assert all(s is None for s in data.section)
    assert all(d is None for d in data.domain)


def test_return_paths_reads_no_audio(tree: Path) -> None:
    # A corrupt file is not noticed because nothing is decoded.
    (tree / "fan" / "test" / "normal_id_04_00000000.wav").write_bytes(b"junk")
    data = load_dcase(tree, "fan", split="test", return_paths=True)
    assert data.clips is None
    assert len(data.paths) == 4
    assert data.is_anomaly.tolist() == [1, 0, 0, 0]


def test_skip_bad_filters_metadata(tree: Path) -> None:
    bad = tree / "fan" / "test" / "anomaly_id_00_00000005.wav"
    bad.write_bytes(b"junk")
    with pytest.raises(AudioLoadError, match="anomaly_id_00_00000005"):
        load_dcase(tree, "fan", split="test")
    data = load_dcase(tree, "fan", split="test", skip_bad=True)
    assert [s.path for s in data.skipped] == [str(bad)]
    assert data.clips.shape == (3, 160)
    assert str(bad) not in data.paths
    assert data.machine_ids.tolist() == ["id_02", "id_00", "id_02"]
    assert data.is_anomaly.tolist() == [1, 0, 0]


def test_resampling_and_length_options(tree: Path) -> None:
    data = load_dcase(tree, "fan", split="test", sample_rate=8000, target_length=100)
    assert data.clips.shape == (3, 100)
    assert data.sample_rate == 8000
    listed = load_dcase(tree, "fan", split="test", length="list")
    assert [w.shape for w in listed.clips] == [(160,)] * 3


def test_dcase2021_source_and_target_test_folders(tmp_path: Path) -> None:
    _make_tree(
        tmp_path, "pump", "source_test", ["section_00_source_test_normal_0000.wav"], 50
    )
    _make_tree(
        tmp_path, "pump", "target_test", ["section_00_target_test_anomaly_0000.wav"], 50
    )
    data = load_dcase(tmp_path, "pump", split="test")
    assert data.domain.tolist() == ["source", "target"]
    assert data.is_anomaly.tolist() == [0, 1]
    assert list_machine_types(tmp_path) == ["pump"]


def test_missing_root_machine_and_split(tree: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_dcase(tree / "nowhere", "fan")
    with pytest.raises(FileNotFoundError, match="machine types found") as info:
        load_dcase(tree, "fna")
    assert "'fan'" in str(info.value) and "'ToyCar'" in str(info.value)
    assert "Did you mean 'fan'" in str(info.value)
    with pytest.raises(FileNotFoundError, match="No 'train' folder") as info:
        load_dcase(tree, "fan", split="train")
    assert "'test'" in str(info.value)
    with pytest.raises(ValueError, match="split must be"):
        load_dcase(tree, "fan", split="eval")  # type: ignore[arg-type]


def test_empty_split_folder(tmp_path: Path) -> None:
    (tmp_path / "valve" / "train").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="No audio files"):
        load_dcase(tmp_path, "valve")


def test_unknown_name_in_folder(tree: Path) -> None:
    write_audio(tree / "fan" / "test" / "my_recording.wav", np.zeros(160))
    with pytest.raises(ValueError, match="my_recording.wav"):
        load_dcase(tree, "fan", split="test")


def test_year_checks(tree: Path) -> None:
    assert load_dcase(tree, "fan", split="test", year=2020).scheme == "2020"
    with pytest.raises(ValueError, match="year=2022 expects DCASE 2021\\+"):
        load_dcase(tree, "fan", split="test", year=2022)
    with pytest.raises(ValueError, match="year=2020 expects DCASE 2020"):
        load_dcase(tree, "ToyCar", year=2020)
    with pytest.raises(ValueError, match="starts in 2020"):
        load_dcase(tree, "fan", split="test", year=2019)


def test_mixed_schemes_rejected(tree: Path) -> None:
    write_audio(tree / "fan" / "test" / "section_00_0000.wav", np.zeros(160))
    with pytest.raises(ValueError, match="mix DCASE naming schemes"):
        load_dcase(tree, "fan", split="test")


# --------------------------------------------------------------------------
# The real DCASE 2020 sample shipped beside the repository
# --------------------------------------------------------------------------

MINI_COUNTS = {
    # machine type: (normal, anomaly, seconds per clip)
    "fan": (9, 8, 10),
    "pump": (10, 6, 10),
    "slider": (8, 8, 10),
    "valve": (8, 8, 10),
    "ToyCar": (8, 8, 11),
    "ToyConveyor": (6, 6, 10),
}


@pytest.fixture(scope="module")
def mini_root() -> Path:
    if not MINI_ROOT.is_dir():
        pytest.skip(f"DCASE 2020 sample not found at {MINI_ROOT}")
    return MINI_ROOT


def test_mini_machine_types(mini_root: Path) -> None:
    assert sorted(list_machine_types(mini_root)) == sorted(MINI_COUNTS)


@pytest.mark.parametrize("machine_type", sorted(MINI_COUNTS))
def test_mini_counts_and_lengths(mini_root: Path, machine_type: str) -> None:
    n_normal, n_anomaly, seconds = MINI_COUNTS[machine_type]
    data = load_dcase(mini_root, machine_type, split="test")
    assert data.scheme == "2020"
    assert data.clips.shape == (n_normal + n_anomaly, seconds * SR)
    assert data.clips.dtype == np.float32
    assert int((data.is_anomaly == 0).sum()) == n_normal
    assert int((data.is_anomaly == 1).sum()) == n_anomaly
    # Every clip filled the whole row, so nothing was padded.
    assert data.skipped == []
    assert np.abs(data.clips[:, -SR:]).max(axis=1).min() > 0
    assert np.abs(data.clips).max() <= 1.0
    assert all(m.startswith("id_") for m in data.machine_ids)
    names = [Path(p).name for p in data.paths]
    for name, label in zip(names, data.is_anomaly, strict=True):
        assert name.startswith("anomaly_" if label == 1 else "normal_")


def test_mini_has_no_train_split(mini_root: Path) -> None:
    with pytest.raises(FileNotFoundError, match="No 'train' folder"):
        load_dcase(mini_root, "fan")


# ground truth of anonymous evaluation names
# --------------------------------------------------------------------------


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_read_ground_truth_in_every_shipped_format(tmp_path: Path) -> None:
    data = _write(
        tmp_path / "data.csv", "section_00_0000.wav,1\nsection_00_0001.wav,0\n"
    )
    truth = read_dcase_ground_truth(data)
    assert truth == {
        "section_00_0000": {"is_anomaly": 1, "domain": None, "attributes": None},
        "section_00_0001": {"is_anomaly": 0, "domain": None, "attributes": None},
    }
    domain = _write(tmp_path / "domain.csv", "section_00_0000.wav,1\n")
    assert read_dcase_ground_truth(domain, column="domain")["section_00_0000"] == {
        "is_anomaly": None,
        "domain": "target",
        "attributes": None,
    }
    # The organisers' attribute files give the development-style name.
    attrs = _write(
        tmp_path / "attributes.csv",
        "section_00_0000.wav,section_00_source_test_anomaly_0000_vel_12\n",
    )
    assert read_dcase_ground_truth(attrs)["section_00_0000"] == {
        "is_anomaly": 1,
        "domain": "source",
        "attributes": "vel_12",
    }
    # Three columns, a header, a byte-order mark, blank lines and words.
    three = tmp_path / "three.csv"
    three.write_bytes(
        b"\xef\xbb\xbffilename,label,domain\n\nsection_00_0002.flac,anomaly,0\n"
    )
    assert read_dcase_ground_truth(three) == {
        "section_00_0002": {"is_anomaly": 1, "domain": "source", "attributes": None}
    }


@pytest.mark.parametrize(
    "text, match",
    [
        ("section_00_0000.wav\n", "line 1 has 1 cell"),
        ("section_00_0000.wav,2\n", "neither a label"),
        ("section_00_0000.wav,0,elsewhere\n", "domain 'elsewhere'"),
        ("a.wav,0\na.wav,1\n", "line 2 lists 'a.wav' again"),
        ("\n\n", "lists no clips"),
    ],
)
def test_read_ground_truth_rejects_malformed_rows(
    tmp_path: Path, text: str, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        read_dcase_ground_truth(_write(tmp_path / "gt.csv", text))


def test_read_ground_truth_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="ground_truth_data"):
        read_dcase_ground_truth(tmp_path / "nope.csv")


def test_load_dcase_fills_labels_and_domains_of_anonymous_names(
    tree: Path, tmp_path: Path
) -> None:
    labels = _write(tmp_path / "labels.csv", "section_00_0000.wav,1\n")
    domains = _write(tmp_path / "domains.csv", "section_00_0000.wav,1\nx.wav,0\n")
    data = load_dcase(
        tree, "ToyCar", split="test", return_paths=True, labels=labels, domains=domains
    )
    row = [Path(p).name for p in data.paths].index("section_00_0000.wav")
    assert data.is_anomaly[row] == 1 and data.domain[row] == "target"
    # Named clips keep their labels; unused rows are reported.
    assert sorted(data.is_anomaly.tolist()) == [0, 1, 1]
    assert data.unused_ground_truth == ["x"]
    assert "unused_ground_truth" not in load_dcase(tree, "ToyCar", return_paths=True)


def test_load_dcase_ground_truth_errors(tree: Path, tmp_path: Path) -> None:
    other = _write(tmp_path / "other.csv", "section_07_0000.wav,1\n")
    with pytest.raises(ValueError, match="name none of the 3 clip"):
        load_dcase(tree, "ToyCar", split="test", return_paths=True, labels=other)
    # A labels file must cover every clip without a label in its name.
    named = _write(
        tmp_path / "named.csv", "section_00_source_test_anomaly_0000_car_A1.wav,1\n"
    )
    with pytest.raises(ValueError, match="1 clip.*section_00_0000.wav"):
        load_dcase(tree, "ToyCar", split="test", return_paths=True, labels=named)
    # ... and must not contradict a name.
    wrong = _write(
        tmp_path / "wrong.csv",
        "section_00_source_test_anomaly_0000_car_A1.wav,0\nsection_00_0000.wav,0\n",
    )
    with pytest.raises(ValueError, match="is_anomaly=1 by its name but 0"):
        load_dcase(tree, "ToyCar", split="test", return_paths=True, labels=wrong)
    # Two files that disagree about a clip.
    a = _write(tmp_path / "a.csv", "section_00_0000.wav,0\n")
    b = _write(tmp_path / "b.csv", "section_00_0000.wav,1\n")
    with pytest.raises(ValueError, match="only the files of this machine type"):
        load_dcase(tree, "ToyCar", split="test", return_paths=True, labels=[a, b])


def test_write_dcase2023_folder_round_trip(tmp_path: Path) -> None:
    from sk_asd.datasets import make_machine_sounds

    data = make_machine_sounds(
        2, n_normal_train=3, n_target_train=1, n_normal_test=1, n_anomalous_test=2,
        attributes=True, duration=0.05, random_state=0,
    )  # fmt: skip
    out = write_dcase2023_folder(tmp_path / "eval", data, machine_type="fan")
    train = load_dcase(tmp_path / "eval", "fan")
    assert train.machine_ids.tolist() == ["section_00"] * 4 + ["section_01"] * 4
    assert train.domain.tolist() == (["source"] * 3 + ["target"]) * 2
    assert train.attributes.tolist() == data.attributes_train.tolist()
    np.testing.assert_allclose(train.clips, data.X_train, atol=1 / 32768)

    test = load_dcase(tmp_path / "eval", "fan", split="test", labels=out.ground_truth)
    assert set(test.is_anomaly) == {0, 1}
    # Anonymous names: match clips back through the returned paths.
    order = [test.paths.index(p) for p in out.test]
    assert test.is_anomaly[order].tolist() == data.is_anomaly_test.tolist()
    assert test.domain[order].tolist() == data.domain_test.tolist()
    assert test.machine_ids[order].tolist() == [
        m.replace("id_", "section_") for m in data.machine_ids_test
    ]
    np.testing.assert_allclose(test.clips[order], data.X_test, atol=1 / 32768)

    named = write_dcase2023_folder(tmp_path / "dev", data, anonymous_test=False)
    assert named.ground_truth is None
    dev = load_dcase(tmp_path / "dev", "synth", split="test")
    order = [dev.paths.index(p) for p in named.test]
    assert dev.is_anomaly[order].tolist() == data.is_anomaly_test.tolist()
    assert dev.attributes[order].tolist() == data.attributes_test.tolist()


def test_write_dcase2023_folder_stereo_and_plain_bunches(tmp_path: Path) -> None:
    from sk_asd.datasets import make_machine_sounds
    from sk_asd.io import probe_audio

    stereo = make_machine_sounds(
        1, n_normal_train=2, n_normal_test=1, n_anomalous_test=1,
        duration=0.05, n_channels=2, random_state=0,
    )  # fmt: skip
    out = write_dcase2023_folder(tmp_path, stereo)
    assert probe_audio(out.train[0])[1] == 2
    # Without domains and attributes: all source, "noAttribute" as DCASE.
    assert Path(out.train[0]).name == (
        "section_00_source_train_normal_0000_noAttribute.wav"
    )
    near = load_dcase(tmp_path, "synth", channel=0)
    np.testing.assert_allclose(near.clips, stereo.X_train[:, 0], atol=1 / 32768)
    with pytest.raises(ValueError, match="lacks"):
        write_dcase2023_folder(tmp_path, {"X_train": stereo.X_train})


def test_load_dcase_each_channel(tmp_path: Path) -> None:
    from sk_asd.datasets import make_machine_sounds

    stereo = make_machine_sounds(
        1, n_normal_train=2, n_normal_test=1, n_anomalous_test=1,
        duration=0.05, n_channels=2, random_state=0,
    )  # fmt: skip
    write_dcase2023_folder(tmp_path, stereo, anonymous_test=False)
    data = load_dcase(tmp_path, "synth", split="test", channel="each")
    assert data.clips.shape == (4, 800)
    assert data.channel_index.tolist() == [0, 1, 0, 1]
    assert data.paths[0] == data.paths[1] and data.paths[2] == data.paths[3]
    assert data.is_anomaly.tolist() in ([0, 0, 1, 1], [1, 1, 0, 0])
    assert "channel_index" not in load_dcase(tmp_path, "synth", split="test")
