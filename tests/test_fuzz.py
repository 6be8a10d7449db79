"""Property-based fuzzing of the input contract (issue 15, item 10).

Whatever the waveforms, machine IDs, parameters or file bytes: a failure is a
``ValueError`` / ``TypeError`` (the package's own errors are ValueErrors) with
a message, never a crash deep in torch or numpy, and the caller's arrays are
never modified. Examples are few and derandomised, so the suite is quick and
repeatable; raise ``max_examples`` locally to search harder.
"""

from __future__ import annotations

import io
import os
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

from sk_asd import AnomalousSoundDetector  # noqa: E402
from sk_asd.estimator.guards import NonFiniteScoreWarning  # noqa: E402
from sk_asd.io import (  # noqa: E402
    AudioLoadError,
    ModelLoadError,
    load_audio,
    load_model,
    save_model,  # noqa: E402
)
from tests.conftest import FAST, tiny_clips  # noqa: E402

FUZZ = settings(
    # SK_ASD_FUZZ_EXAMPLES=500 searches harder (and randomly) on request.
    max_examples=int(os.environ.get("SK_ASD_FUZZ_EXAMPLES", "25")),
    deadline=None,
    derandomize="SK_ASD_FUZZ_EXAMPLES" not in os.environ,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
EXPECTED = (ValueError, TypeError)


@pytest.fixture(scope="module")
def fitted():
    X, ids = tiny_clips(n_per_machine=6)
    return AnomalousSoundDetector(**{**FAST, "max_epochs": 1}).fit(X, ids)


@pytest.fixture(scope="module")
def model_file(fitted, tmp_path_factory) -> Path:
    # A path, not the bytes: hypothesis prints its arguments on a failure.
    return save_model(fitted, tmp_path_factory.mktemp("fuzz_model") / "m.skasd")


def _message_of(exc: BaseException) -> str:
    text = str(exc).strip()
    assert text, f"{type(exc).__name__} without a message"
    return text


_dtypes = st.sampled_from(
    [np.float32, np.float64, np.float16, np.int16, np.int32, np.uint8, np.int8]
)
_n_samples = st.one_of(st.just(4000), st.integers(0, 5000))  # training: 4000
_shapes = st.one_of(
    st.tuples(st.integers(0, 4), _n_samples),
    st.tuples(_n_samples),
    st.tuples(st.integers(0, 3), _n_samples, st.integers(1, 2)),
)
_waveforms = hnp.arrays(
    dtype=_dtypes,
    shape=_shapes,
    elements=None,  # anything the dtype holds: NaN, inf, extremes
)


@FUZZ
@given(X=_waveforms, use_ids=st.booleans())
def test_scoring_any_array_fails_cleanly_and_never_modifies_it(fitted, X, use_ids):
    before = X.copy()
    n = X.shape[0] if X.ndim else 0
    ids = ["a"] * n if use_ids else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NonFiniteScoreWarning)
        try:
            labels = fitted.predict(X, machine_ids=ids)
        except EXPECTED as exc:
            _message_of(exc)
        else:
            assert labels.shape == (n,) and set(labels.tolist()) <= {-1, 1}
    np.testing.assert_array_equal(X, before)


_labels = st.one_of(
    st.none(),
    st.integers(-3, 3),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=3),
    st.booleans(),
    st.tuples(st.integers(0, 2)),
    st.lists(st.integers(0, 2), max_size=2),  # unhashable
)


@FUZZ
@given(ids=st.lists(_labels, min_size=0, max_size=14))
def test_any_machine_ids_fail_cleanly(fitted, ids):
    X, _ = tiny_clips(n_per_machine=6)
    original = list(ids)
    try:
        fitted.score_samples(X, machine_ids=ids)
    except EXPECTED as exc:
        _message_of(exc)
    assert ids == original or any(v != v for v in ids)  # NaN != NaN


_weird = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
    st.lists(st.integers(), max_size=2),
)
_params = st.sampled_from(sorted(AnomalousSoundDetector().get_params()))


@FUZZ
@given(name=_params, value=_weird)
def test_any_parameter_value_is_validated_with_a_clear_error(name, value):
    det = AnomalousSoundDetector(**{name: value})
    try:
        det._validate_params()
        if name == "device" and isinstance(value, str):
            from sk_asd.estimator.detector import resolve_device

            resolve_device(value)
        if name == "crop_seconds" and value is not None:
            det._crop_samples()
    except EXPECTED as exc:
        _message_of(exc)


def _wav_bytes(seed: int) -> bytes:
    buffer = io.BytesIO()
    wave = np.random.RandomState(seed).uniform(-0.5, 0.5, 800)
    sf.write(buffer, wave, 16000, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


@st.composite
def _mutated(draw, original: bytes) -> bytes:
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 8))):
        position = draw(st.integers(0, len(data) - 1))
        data[position] = draw(st.integers(0, 255))
    cut = draw(st.integers(0, len(data)))
    return bytes(data[: cut or len(data)])


_audio_bytes = st.one_of(st.binary(max_size=300), _mutated(_wav_bytes(0)))


@FUZZ
@given(content=_audio_bytes, suffix=st.sampled_from([".wav", ".flac", ".bin"]))
def test_any_audio_file_bytes_load_or_fail_cleanly(tmp_path_factory, content, suffix):
    path = Path(tmp_path_factory.mktemp("fuzz_audio")) / f"clip{suffix}"
    path.write_bytes(content)
    try:
        wave = load_audio(path)
    except AudioLoadError as exc:
        assert str(path) in _message_of(exc)
    else:
        assert wave.ndim == 1 and wave.size > 0 and np.isfinite(wave).all()


@FUZZ
@given(data=st.data())
def test_any_model_file_bytes_load_or_fail_cleanly(model_file, tmp_path_factory, data):
    model_bytes = model_file.read_bytes()
    content = data.draw(
        st.one_of(
            st.binary(max_size=200),
            _mutated(model_bytes),
            st.just(b"PK\x03\x04").map(lambda head: head + b"\x00" * 40),
        )
    )
    path = Path(tmp_path_factory.mktemp("fuzz_model_bytes")) / "m.skasd"
    path.write_bytes(content)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            det = load_model(path)
    except ModelLoadError as exc:
        assert str(path) in _message_of(exc)
    else:
        assert isinstance(det, AnomalousSoundDetector)


@FUZZ
@given(data=st.data())
def test_tampered_model_documents_fail_cleanly(model_file, tmp_path_factory, data):
    """Valid zip, valid JSON, hostile values in the document."""
    import json

    with zipfile.ZipFile(model_file) as zf:
        members = {i.filename: zf.read(i) for i in zf.infolist()}
    document = json.loads(members["document.json"])
    section = data.draw(st.sampled_from(["params", "attributes"]))
    key = data.draw(st.sampled_from(sorted(document["estimator"][section])))
    document["estimator"][section][key] = data.draw(
        st.one_of(
            _weird,
            st.fixed_dictionaries(
                {"kind": st.sampled_from(["json", "array", "numpy_scalar", "x"])},
                optional={"value": _weird, "member": st.text(max_size=8)},
            ),
        )
    )
    members["document.json"] = json.dumps(document).encode()
    path = Path(tmp_path_factory.mktemp("fuzz_doc")) / "m.skasd"
    with zipfile.ZipFile(path, "w") as zf:
        for name, payload in members.items():
            zf.writestr(name, payload)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            load_model(path)
    except ModelLoadError as exc:
        assert str(path) in _message_of(exc)
