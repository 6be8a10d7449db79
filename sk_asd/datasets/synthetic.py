"""Synthetic machine sounds with labelled anomalies.

The generator below stands in for real recordings (such as the DCASE machine
condition monitoring data) in the package's demo, tests, examples and
benchmarks. It simulates several machines of one broad type, each with its own
rotation speed and timbre, recorded on a shared noisy factory floor, and four
physically motivated fault types.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
from sklearn.utils import Bunch, check_random_state

__all__ = ["ANOMALY_KINDS", "make_machine_sounds"]

#: Names of the anomaly kinds that :func:`make_machine_sounds` can simulate.
ANOMALY_KINDS: tuple[str, ...] = ("bearing", "imbalance", "speed_drift", "rubbing")

# Rotation frequencies of the simulated machines span this range (Hz).
_F0_RANGE = (20.0, 60.0)
# Structural resonances are drawn (log-uniformly) in this band (Hz).
_RESONANCE_RANGE = (300.0, 6000.0)
# Bearing-defect ringing lives in this band (Hz).
_BEARING_RANGE = (2000.0, 6000.0)
# No synthesised component is placed above this fraction of the sample rate, so
# nothing aliases and resonances keep a little room below Nyquist.
_MAX_FREQ_FRACTION = 0.4
# Size of the one-period wavetable used to render the harmonics; 8192 points
# keep linear-interpolation images of a 200th harmonic below -60 dB.
_TABLE_SIZE = 8192
# Clips whose peak would exceed this are scaled down (never happens for
# ``anomaly_strength`` up to about 4, but keeps the output a valid recording).
_PEAK_LIMIT = 0.9
_MIN_SAMPLE_RATE = 8000
# Level of white noise in the factory floor, relative to the pink noise at
# 100 Hz (it equals the pink noise at about 10 kHz).
_WHITE_FLOOR = 0.01

# Natural clip-to-clip variation of a healthy machine.
_F0_JITTER = 0.005  # relative standard deviation of the rotation frequency
_HARMONIC_AMP_JITTER = 0.08  # log-amplitude standard deviation per harmonic
_HARMONIC_PHASE_JITTER = 0.15  # radians
_GAIN_JITTER = 0.05  # log standard deviation of the clip level (about 0.4 dB)

# Anomaly sizes at ``anomaly_strength=1``, relative to the machine's RMS.
_BEARING_LEVEL = 0.12  # RMS of the impulse-train response
# Extra amplitude at 1x and 2x rotation, relative to the machine's own
# harmonic there (added in power), and depth of the modulation at f0.
_IMBALANCE_1X = 1.0
_IMBALANCE_2X = 0.5
_IMBALANCE_AM = 0.3  # before saturation below 1
_DRIFT_RANGE = (0.02, 0.04)  # total relative change of f0 over the clip
_RUBBING_LEVEL = 0.3  # RMS of the noise inside one friction burst
_RUBBING_RATE = 1.75  # expected bursts per second (at least one per clip)
_RUBBING_DURATION = (0.02, 0.1)  # seconds

# Operating conditions (``attributes`` and the target domain). The speed is
# set by the motor supply: a clip at ``volts`` runs at volts / 28 times the
# machine's nominal rotation frequency, as the toy cars of DCASE's ToyADMOS2
# are labelled by their supply voltage (``spd_28V``).
_NOMINAL_VOLTS = 28.0
# Source-domain conditions cycled through with ``attributes=True``: three
# speeds (about +-7 %) times two loads.
_SOURCE_VOLTS = (26.0, 28.0, 30.0)
_SOURCE_LOADS = (1.0, 2.0)
# At ``domain_shift=1`` the target runs 6 V faster (about +21 %) under load 3.
_TARGET_VOLTS_STEP = 6.0
_TARGET_LOAD_STEP = 2.0
# Log-slope of the harmonic envelope per load step: a loaded machine puts
# more of its (unchanged) harmonic power into the upper harmonics.
_LOAD_TILT = 0.12
# Target microphone (mic 2) at ``domain_shift=1``: a first-order roll-off
# above this corner (Hz), and extra pink noise of this RMS relative to the
# machine's, i.e. a lower SNR.
_MIC2_CORNER = 1500.0
_MIC2_NOISE = 0.35
# Far microphone of ``n_channels=2``: direct sound attenuated by this factor
# and delayed, a room reverberation tail with this decay time (s), and extra
# room noise of this RMS relative to the machine's.
_FAR_GAIN = 0.5
_FAR_DELAY = 0.004
_FAR_RT60 = 0.3
_FAR_REVERB = 0.6  # RMS of the reverberant part relative to the direct part
_FAR_NOISE = 0.25


@dataclass(frozen=True)
class _Factory:
    """Properties shared by every recording: the room and the machine type."""

    mains_hz: float
    hum_levels: np.ndarray  # amplitude of mains harmonics, relative to noise RMS
    brown_weight: float  # weight of 1/f**2 against 1/f noise in the floor
    f0_offset: float  # start of the golden-ratio sequence of machine speeds
    alpha: float  # type-level harmonic decay exponent
    top_hz: float  # harmonics are synthesised up to this frequency
    resonance_u: np.ndarray  # type-level resonance positions in [0, 1)


@dataclass(frozen=True)
class _Machine:
    """Identity of one machine ID: everything that is constant across clips."""

    f0: float
    amplitudes: np.ndarray  # nominal harmonic amplitudes, index k-1 for k*f0
    phases: np.ndarray  # nominal harmonic phases (radians)
    noise_filter: np.ndarray  # magnitude response of the structural noise
    noise_rms: float  # RMS of the structural noise for a gain-1 clip
    rms: float  # nominal RMS of the healthy machine
    bearing_ratio: float  # defect frequency / rotation frequency
    bearing_hz: float  # ringing frequency excited by bearing impacts
    bearing_tau: float  # decay time of that ringing (s)


@dataclass(frozen=True)
class _Condition:
    """Operating condition of a clip: speed, load and microphone."""

    volts: float  # motor supply; speed factor volts / _NOMINAL_VOLTS
    load: float  # 1 is the nominal load
    mic: int  # 1 the source microphone, 2 the target one
    mic_strength: float = 0.0  # how far mic 2 differs (domain_shift)

    @property
    def label(self) -> str:
        """DCASE-style attribute text, e.g. ``"spd_28V_load_1_mic_1"``."""
        return f"spd_{self.volts:g}V_load_{self.load:g}_mic_{self.mic}"

    @property
    def speed(self) -> float:
        """Rotation speed relative to the machine's nominal one."""
        return self.volts / _NOMINAL_VOLTS

    @property
    def nominal(self) -> bool:
        """True when the clip sounds exactly as without conditions."""
        return (
            self.volts == _NOMINAL_VOLTS
            and self.load == 1.0
            and (self.mic == 1 or self.mic_strength == 0.0)
        )


def make_machine_sounds(
    n_machines: int = 4,
    *,
    n_normal_train: int = 40,
    n_normal_test: int = 20,
    n_anomalous_test: int = 20,
    duration: float = 2.0,
    sample_rate: int = 16000,
    anomaly_kinds: Sequence[str] = ANOMALY_KINDS,
    anomaly_strength: float = 1.0,
    snr_db: float | tuple[float, float] = (6.0, 15.0),
    machine_spread: float = 1.0,
    speed_variation: float = 0.0,
    interference: float = 0.0,
    attributes: bool = False,
    n_target_train: int = 0,
    n_target_normal_test: int | None = None,
    n_target_anomalous_test: int | None = None,
    domain_shift: float = 1.0,
    n_channels: int = 1,
    random_state: int | np.random.RandomState | None = None,
) -> Bunch:
    """Generate synthetic machine sounds with labelled anomalies.

    Every machine ID is a rotating machine of the same broad type (think of
    several fans or pumps of one model) recorded by a single microphone on a
    shared factory floor. Training data contain only normal clips; test data
    mix normal and anomalous clips, as in the DCASE anomalous sound detection
    challenges.

    **Healthy machine.** Machine ID ``m`` turns at its own rotation frequency
    ``f0`` between 20 and 60 Hz (the IDs follow a golden-ratio sequence on a
    log scale, so they are spread out without being far apart). Its sound is a
    sum of harmonics ``k * f0`` up to a few kHz whose amplitudes follow a
    random, decaying envelope ``k ** -alpha`` with ID-specific ripples, plus
    broadband structural noise. Two to four structural resonances (300-6000 Hz,
    positions shared by the machine type but shifted per ID) colour both the
    harmonics and the noise.

    **Natural variation.** Each clip has its own rotation frequency (0.5 %
    jitter), slightly different harmonic amplitudes and phases, a random start
    angle of the rotor, and a level within about 0.4 dB of the machine's.

    **Background.** Every clip carries the same kind of factory floor: a
    mixture of pink and brown noise over a faint white floor, with a little
    mains hum (50 or 60 Hz and two harmonics), added at a machine-to-background
    ratio drawn from ``snr_db``.

    **Anomalies.** Each kind is scaled by ``anomaly_strength``; at 0 an
    anomalous clip is drawn from exactly the same distribution as a normal one.

    - ``"bearing"``: a localised bearing defect. Impacts repeat at a
      defect frequency that is a non-integer multiple (3.15-4.85) of ``f0``,
      with a little slip jitter and load-zone modulation at ``f0``; each
      impact rings a decaying resonance between 2 and 6 kHz.
    - ``"imbalance"``: a mass imbalance. Extra energy at 1x and 2x the
      rotation frequency and amplitude modulation of the machine at ``f0``.
    - ``"speed_drift"``: the rotation frequency changes linearly by 2-4 %
      (times the strength, up or down, at most 50 %) over the clip, so every
      harmonic moves.
    - ``"rubbing"``: contact between moving and static parts. Short (20-100
      ms) broadband friction bursts, about 1.75 per second (at least one).

    Parameters
    ----------
    n_machines : int, default=4
        Number of machine IDs.
    n_normal_train : int, default=40
        Normal training clips per machine.
    n_normal_test : int, default=20
        Normal test clips per machine. May be 0.
    n_anomalous_test : int, default=20
        Anomalous test clips per machine. May be 0.
    duration : float, default=2.0
        Clip length in seconds.
    sample_rate : int, default=16000
        Sample rate in Hz; at least 8000. Frequencies quoted above are capped
        at 0.4 times the sample rate.
    anomaly_kinds : sequence of str, default=("bearing", "imbalance", \
"speed_drift", "rubbing")
        Kinds of anomaly to simulate. Anomalous test clips cycle through this
        sequence (over all machines), so the kinds are balanced; listing a
        kind twice doubles its share. A single string is read as one kind.
    anomaly_strength : float, default=1.0
        Size of every anomaly: 0 gives anomalous clips the distribution of
        normal ones, 1 moderately strong faults, 2 and above obvious ones.
    snr_db : float or (float, float), default=(6.0, 15.0)
        Machine-to-background power ratio in dB, either fixed or drawn
        uniformly per clip from the given range.
    machine_spread : float, default=1.0
        How different the machine IDs are. 1 spreads the rotation
        frequencies over 20-60 Hz, shifts resonances by about 12 % and varies
        the harmonic envelope freely; smaller values shrink all three towards
        one machine model (0.2: rotation frequencies within about +-10 % of
        35 Hz), which makes telling the IDs apart harder, as it is for several
        units of one machine model in the DCASE data. Must be in (0, 1].
    speed_variation : float, default=0.0
        Clip-to-clip spread of the operating speed of a healthy machine:
        every clip (training and test, normal and anomalous) runs at its
        machine's rotation frequency times ``exp(speed_variation * z)``,
        ``z`` standard normal (0.05: about +-5 %), as a machine does under
        varying load.  All harmonics move with it; the resonances do not.
        This makes the machine IDs harder to tell apart by their speed alone
        and widens what "normal" looks like to a spectrum-average detector.
        0 (default) leaves every clip exactly as without this option.
    interference : float, default=0.0
        Level of foreign sounds on the factory floor, in normal and anomalous
        clips alike: the hum of another machine (a tone of 70-400 Hz with a
        few harmonics, its level changing from clip to clip and absent from
        about a third of them) and knocks (short decaying impacts of passing
        tools and carts, about one every two seconds, at random times and
        levels).  At 1 the hum has about the background's RMS and a knock
        peaks at about twice the machine's RMS; both scale linearly.  They
        are not anomalies of the machine, so a detector must learn to ignore
        them, as on a real shop floor.  0 (default) leaves every clip exactly
        as without this option.
    attributes : bool, default=False
        If True, the source-domain clips run under six operating conditions
        instead of one, cycled clip by clip: three speeds (motor supply 26,
        28 or 30 V; the rotation frequency scales with the voltage, so every
        harmonic moves by about 7 % per step) times two loads (load 2 tilts
        the harmonic envelope towards the upper harmonics at unchanged
        power). Each clip's condition is returned as an attribute label in
        the DCASE file-name style, ``"spd_28V_load_1_mic_1"``, ready to serve
        as the auxiliary class of a detector trained on machine x attribute
        classes. False (default) records every source clip at the nominal
        condition ``"spd_28V_load_1_mic_1"``, which sounds exactly as without
        this option.
    n_target_train : int, default=0
        Normal training clips per machine recorded in the *target* domain,
        under a condition never seen in the source domain (DCASE 2022 and
        later ship about ten per section). The target condition is the same
        for all machines: a faster speed (``spd_34V`` at ``domain_shift=1``,
        +21 %: every harmonic moves), a heavier load (``load_3``: the
        harmonic envelope tilts) and another microphone (``mic_2``: a
        first-order roll-off above 1.5 kHz and extra pink noise, i.e. a few
        dB less SNR). 0 (default) makes no target domain. Source clips are
        the same with and without a target domain.
    n_target_normal_test, n_target_anomalous_test : int, optional
        Normal and anomalous target-domain test clips per machine; by default
        ``n_normal_test`` and ``n_anomalous_test`` when ``n_target_train > 0``
        (the DCASE test sets are balanced between the domains), else 0.
        Giving either without ``n_target_train`` is an error.
    domain_shift : float, default=1.0
        Size of the difference between the target condition and the nominal
        source one, in [0, 2]: the speed step (6 V per unit), the load step
        (2 per unit) and the strength of the microphone's roll-off and noise
        all scale with it. At 0 the target clips are drawn from the nominal
        source distribution (a control); the attribute labels say which
        condition was used.
    n_channels : {1, 2}, default=1
        1 gives one microphone, ``X`` of shape ``(n_clips, n_samples)``. 2
        simulates a near and a far microphone (the DCASE 2026 stereo
        setting), ``X`` of shape ``(n_clips, 2, n_samples)``: channel 0 is
        the near microphone, exactly the clip that ``n_channels=1`` gives;
        channel 1 the far one, with the direct sound halved and delayed by
        4 ms, a room reverberation tail (0.3 s decay, the room fixed per
        machine) and extra room noise, so its SNR is several dB lower.
    random_state : int, RandomState instance or None, default=None
        Controls everything: the factory, the machine identities, every clip
        and every anomaly. The same value gives bit-identical output; another
        value gives another factory with other machines. Given one seed, the
        machines do not depend on the clip counts, ``duration``,
        ``anomaly_kinds`` or ``anomaly_strength`` (and machine ``m`` is the
        same for any ``n_machines > m``); training clips do not depend on the
        test settings, and changing ``anomaly_strength`` changes only the
        added fault, not the healthy sound underneath it. The target domain,
        the attributes and the far microphone draw from their own streams:
        with their defaults every output is bit-identical to that of a call
        without them.

    Returns
    -------
    data : sklearn.utils.Bunch
        Dictionary-like object with the attributes:

        X_train : ndarray of shape (n_machines * n_normal_train, n_samples)
            Normal training waveforms, float32, grouped by machine (source
            clips first, then the ``n_target_train`` target clips of each
            machine). With ``n_channels=2`` the shape is ``(n_train, 2,
            n_samples)``.
        machine_ids_train : ndarray of str of shape (n_train,)
            Machine ID of each training clip, such as ``"id_00"``.
        X_test : ndarray of shape \
(n_machines * (n_normal_test + n_anomalous_test), n_samples)
            Test waveforms, float32, grouped by machine, normal clips first;
            with a target domain, each machine's source normal and anomalous
            clips come before its target normal and anomalous clips, and the
            first dimension grows accordingly. ``(n_test, 2, n_samples)``
            with ``n_channels=2``.
        machine_ids_test : ndarray of str of shape (n_test,)
            Machine ID of each test clip.
        is_anomaly_test : ndarray of int of shape (n_test,)
            1 for anomalous clips and 0 for normal ones (DCASE convention).
        anomaly_kind_test : ndarray of str of shape (n_test,)
            ``"normal"`` or the kind of anomaly of each test clip.
        domain_train, domain_test : ndarray of str of shape (n_train,) \
and (n_test,)
            ``"source"`` or ``"target"`` for each clip. Only present when
            ``attributes=True`` or ``n_target_train > 0``.
        attributes_train, attributes_test : ndarray of str of shape \
(n_train,) and (n_test,)
            The operating condition of each clip as DCASE-style attribute
            text, ``"spd_<V>V_load_<L>_mic_<M>"``. Only present when
            ``attributes=True`` or ``n_target_train > 0``.
        machine_ids : ndarray of str of shape (n_machines,)
            Sorted unique machine IDs.
        sample_rate : int
            Sample rate in Hz.
        DESCR : str
            Short description of the data set.

    Raises
    ------
    ValueError
        If a count, the duration, the sample rate, the strength or the SNR is
        out of range, or if ``anomaly_kinds`` is empty or names unknown kinds.

    Notes
    -----
    Waveforms have an RMS of roughly 0.05-0.1 and peaks well inside [-1, 1];
    a clip whose peak would exceed 0.9 (only possible for very strong
    anomalies, from about ``anomaly_strength=4``, or very low ``snr_db``) is
    scaled down to that peak.

    Examples
    --------
    >>> from sk_asd.datasets.synthetic import make_machine_sounds
    >>> data = make_machine_sounds(2, n_normal_train=3, n_normal_test=2,
    ...                            n_anomalous_test=2, duration=0.5,
    ...                            random_state=0)
    >>> data.X_train.shape, data.X_test.shape
    ((6, 8000), (8, 8000))
    >>> data.machine_ids.tolist()
    ['id_00', 'id_01']
    >>> data.is_anomaly_test.tolist()
    [0, 0, 1, 1, 0, 0, 1, 1]

    A target domain with a few training clips, and attribute labels:

    >>> shifted = make_machine_sounds(1, n_normal_train=3, n_target_train=1,
    ...                               n_normal_test=1, n_anomalous_test=1,
    ...                               attributes=True, duration=0.5,
    ...                               random_state=0)
    >>> shifted.domain_train.tolist()
    ['source', 'source', 'source', 'target']
    >>> shifted.attributes_train.tolist()
    ['spd_26V_load_1_mic_1', 'spd_28V_load_1_mic_1', \
'spd_30V_load_1_mic_1', 'spd_34V_load_3_mic_2']
    >>> shifted.domain_test.tolist(), shifted.is_anomaly_test.tolist()
    (['source', 'source', 'target', 'target'], [0, 1, 0, 1])
    """
    kinds = _check_arguments(
        n_machines=n_machines,
        n_normal_train=n_normal_train,
        n_normal_test=n_normal_test,
        n_anomalous_test=n_anomalous_test,
        duration=duration,
        sample_rate=sample_rate,
        anomaly_kinds=anomaly_kinds,
        anomaly_strength=anomaly_strength,
        snr_db=snr_db,
    )
    if not (isinstance(machine_spread, Real) and 0.0 < machine_spread <= 1.0):
        raise ValueError(
            f"machine_spread must be a number in (0, 1], got {machine_spread!r}."
        )
    if not (isinstance(speed_variation, Real) and 0.0 <= speed_variation <= 0.2):
        raise ValueError(
            f"speed_variation must be a number in [0, 0.2], got {speed_variation!r}."
        )
    if not (_is_finite_real(interference) and 0.0 <= interference <= 10.0):
        raise ValueError(
            f"interference must be a number in [0, 10], got {interference!r}."
        )
    n_target_normal_test, n_target_anomalous_test = _check_domain_arguments(
        attributes=attributes,
        n_target_train=n_target_train,
        n_target_normal_test=n_target_normal_test,
        n_target_anomalous_test=n_target_anomalous_test,
        domain_shift=domain_shift,
        n_channels=n_channels,
        n_normal_test=n_normal_test,
        n_anomalous_test=n_anomalous_test,
    )
    with_domains = bool(attributes) or n_target_train > 0
    snr_range = (
        (float(snr_db), float(snr_db))
        if isinstance(snr_db, Real)
        else (float(snr_db[0]), float(snr_db[1]))
    )
    n_samples = int(round(duration * sample_rate))
    # One draw from the caller's generator seeds independent streams, keyed by
    # purpose and machine, so that e.g. the test settings cannot change the
    # machines or the training clips (see the ``random_state`` docstring).
    entropy = int(check_random_state(random_state).randint(np.iinfo(np.int32).max))

    def stream(*key: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=key))

    def speeds(key: int, m: int, n: int) -> np.ndarray:
        # Own streams, so that speed_variation=0 changes nothing else.
        return np.exp(speed_variation * stream(key, m).standard_normal(n))

    factory = _draw_factory(stream(0), sample_rate)
    # Own streams again: interference=0 draws nothing and changes nothing.
    foreign_hz = float(_log_uniform(stream(7).random(), 70.0, 400.0))

    def foreign(key: int, m: int, clips: np.ndarray) -> np.ndarray:
        if interference > 0:
            clips += _interference(
                stream(key, m),
                len(clips),
                n_samples,
                sample_rate,
                foreign_hz=foreign_hz,
                level=float(interference),
            )
            peak = np.max(np.abs(clips), axis=1)
            clips *= np.minimum(1.0, _PEAK_LIMIT / np.maximum(peak, 1e-12))[:, None]
        return clips

    width = max(2, len(str(n_machines - 1)))
    ids = [f"id_{m:0{width}d}" for m in range(n_machines)]

    source_conditions = (
        [
            _Condition(volts=v, load=load, mic=1)
            for load in _SOURCE_LOADS
            for v in _SOURCE_VOLTS
        ]
        if attributes
        else [_Condition(volts=_NOMINAL_VOLTS, load=1.0, mic=1)]
    )
    shift = float(domain_shift)
    target_condition = _Condition(
        volts=round(_NOMINAL_VOLTS + _TARGET_VOLTS_STEP * shift, 1),
        load=round(1.0 + _TARGET_LOAD_STEP * shift, 2),
        mic=2,
        mic_strength=shift,
    )

    def conditions_for(
        domain: str, n_normal: int, n_anomalous: int = 0
    ) -> list[_Condition]:
        if domain == "target":
            return [target_condition] * (n_normal + n_anomalous)
        # Normal and anomalous clips cycle through the conditions separately,
        # so that no condition is more common among the anomalies.
        cycle = source_conditions
        return [cycle[j % len(cycle)] for j in range(n_normal)] + [
            cycle[j % len(cycle)] for j in range(n_anomalous)
        ]

    def record(
        key: int,
        m: int,
        machine: _Machine,
        kinds_: list[str],
        fault_rngs: list[np.random.Generator | None],
        conds: list[_Condition],
        strength: float,
        foreign_key: int,
        speed_key: int,
    ) -> np.ndarray:
        """Render, add foreign sounds and apply the recording conditions."""
        gains = None
        speed = speeds(speed_key, m, len(kinds_))
        if not all(c.nominal for c in conds):
            speed = speed * np.array([c.speed for c in conds])
            gains = _condition_gains(machine, conds, speed, sample_rate)
        clips = foreign(
            foreign_key,
            m,
            _render(
                machine,
                factory,
                kinds_,
                rng=stream(key, m),
                fault_rngs=fault_rngs,
                speed_factors=speed,
                strength=strength,
                snr_range=snr_range,
                n_samples=n_samples,
                sample_rate=sample_rate,
                harmonic_gains=gains,
            ),
        )
        mic2 = [j for j, c in enumerate(conds) if c.mic == 2 and c.mic_strength > 0]
        if mic2:
            # Own stream (key 17 + the clip set's key), so the microphone's
            # noise does not depend on anything else drawn.
            clips[mic2] = _second_microphone(
                stream(17, key, m),
                clips[mic2],
                machine,
                strength=target_condition.mic_strength,
                sample_rate=sample_rate,
            )
        return clips

    width = max(2, len(str(n_machines - 1)))
    ids = [f"id_{m:0{width}d}" for m in range(n_machines)]

    # Per machine, the clip sets in output order: (domain, split, clips).
    x_train: list[np.ndarray] = []
    x_test: list[np.ndarray] = []
    test_kinds: list[str] = []
    ids_train: list[str] = []
    ids_test: list[str] = []
    domain_train: list[str] = []
    domain_test: list[str] = []
    attrs_train: list[str] = []
    attrs_test: list[str] = []
    for m in range(n_machines):
        machine = _draw_machine(
            stream(1, m), factory, m, sample_rate, spread=float(machine_spread)
        )
        # The room of the far microphone is fixed per machine (its place on
        # the floor), drawn from its own stream.
        room = _room_response(stream(18, m), sample_rate) if n_channels == 2 else None
        # Keys: render stream, fault streams, speed jitter, foreign sounds.
        train_sets = [("source", n_normal_train, 2, 5, 8)]
        if n_target_train:
            train_sets.append(("target", n_target_train, 11, 14, 15))
        for domain, n, key, speed_key, foreign_key in train_sets:
            conds = conditions_for(domain, n)
            clips = record(
                key,
                m,
                machine,
                ["normal"] * n,
                [None] * n,
                conds,
                0.0,
                foreign_key,
                speed_key,
            )
            if room is not None:
                clips = _far_microphone(stream(19, key, m), clips, room, machine)
            x_train.append(clips)
            ids_train += [ids[m]] * n
            domain_train += [domain] * n
            attrs_train += [c.label for c in conds]

        test_sets = [("source", n_normal_test, n_anomalous_test, 3, 4, 6, 9)]
        if n_target_normal_test or n_target_anomalous_test:
            test_sets.append(
                (
                    "target",
                    n_target_normal_test,
                    n_target_anomalous_test,
                    12,
                    13,
                    16,
                    20,
                )
            )
        for domain, n_norm, n_anom, key, fault_key, speed_key, foreign_key in test_sets:
            first = m * n_anom
            clip_kinds = ["normal"] * n_norm + [
                kinds[(first + j) % len(kinds)] for j in range(n_anom)
            ]
            conds = conditions_for(domain, n_norm, n_anom)
            clips = record(
                key,
                m,
                machine,
                clip_kinds,
                # Each anomalous clip gets its own stream so that its fault
                # does not depend on the kinds or number of the other clips.
                [None] * n_norm + [stream(fault_key, m, j) for j in range(n_anom)],
                conds,
                float(anomaly_strength),
                foreign_key,
                speed_key,
            )
            if room is not None:
                clips = _far_microphone(stream(19, key, m), clips, room, machine)
            x_test.append(clips)
            test_kinds.extend(clip_kinds)
            ids_test += [ids[m]] * len(clip_kinds)
            domain_test += [domain] * len(clip_kinds)
            attrs_test += [c.label for c in conds]

    anomaly_kind_test = np.asarray(test_kinds, dtype=str)
    descr = (
        "Synthetic machine sounds (sk_asd.datasets.make_machine_sounds)\n"
        f"{n_machines} rotating machines of one type recorded on a shared "
        f"factory floor; {duration:g} s clips at {sample_rate} Hz.\n"
        f"Train: {n_normal_train} normal clips per machine. Test: "
        f"{n_normal_test} normal and {n_anomalous_test} anomalous clips per "
        f"machine (kinds: {', '.join(kinds)}; strength {anomaly_strength:g}; "
        f"SNR {snr_range[0]:g}-{snr_range[1]:g} dB"
        + (f"; foreign hum and knocks at {interference:g}" if interference else "")
        + ").\n"
        + (
            f"Source conditions: {', '.join(c.label for c in source_conditions)}"
            f". Target domain ({target_condition.label}): {n_target_train} "
            f"normal training clips, {n_target_normal_test} normal and "
            f"{n_target_anomalous_test} anomalous test clips per machine.\n"
            if with_domains
            else ""
        )
        + (
            "Two channels: a near microphone (0) and a far one (1).\n"
            if n_channels == 2
            else ""
        )
        + "Labels follow the DCASE convention: is_anomaly_test == 1 marks an "
        "anomalous clip."
    )
    extra: dict[str, np.ndarray] = {}
    if with_domains:
        extra = dict(
            domain_train=np.asarray(domain_train, dtype=str),
            domain_test=np.asarray(domain_test, dtype=str),
            attributes_train=np.asarray(attrs_train, dtype=str),
            attributes_test=np.asarray(attrs_test, dtype=str),
        )
    return Bunch(
        X_train=np.concatenate(x_train, axis=0),
        # The dtype of the ID list itself, so that empty sets keep it too.
        machine_ids_train=np.asarray(ids_train, dtype=np.asarray(ids).dtype),
        X_test=np.concatenate(x_test, axis=0),
        machine_ids_test=np.asarray(ids_test, dtype=np.asarray(ids).dtype),
        is_anomaly_test=(anomaly_kind_test != "normal").astype(int),
        anomaly_kind_test=anomaly_kind_test,
        **extra,
        machine_ids=np.asarray(ids, dtype=str),
        sample_rate=int(sample_rate),
        DESCR=descr,
    )


def _check_arguments(
    *,
    n_machines: object,
    n_normal_train: object,
    n_normal_test: object,
    n_anomalous_test: object,
    duration: object,
    sample_rate: object,
    anomaly_kinds: object,
    anomaly_strength: object,
    snr_db: object,
) -> tuple[str, ...]:
    """Validate the arguments of :func:`make_machine_sounds`.

    Returns
    -------
    kinds : tuple of str
        The anomaly kinds, normalised to a tuple.
    """
    for name, value, minimum in (
        ("n_machines", n_machines, 1),
        ("n_normal_train", n_normal_train, 1),
        ("n_normal_test", n_normal_test, 0),
        ("n_anomalous_test", n_anomalous_test, 0),
    ):
        # bool is an Integral, but ``n_machines=True`` is surely a mistake.
        if not isinstance(value, Integral) or isinstance(value, bool):
            raise ValueError(f"{name} must be an integer, got {value!r}.")
        if value < minimum:
            bound = "positive" if minimum == 1 else "non-negative"
            raise ValueError(f"{name} must be {bound}, got {value}.")

    if not isinstance(sample_rate, Integral) or isinstance(sample_rate, bool):
        raise ValueError(f"sample_rate must be an integer, got {sample_rate!r}.")
    if sample_rate < _MIN_SAMPLE_RATE:
        raise ValueError(
            f"sample_rate must be at least {_MIN_SAMPLE_RATE} Hz, got {sample_rate}."
        )
    if not _is_finite_real(duration) or duration <= 0:
        raise ValueError(f"duration must be a positive number, got {duration!r}.")
    if round(duration * sample_rate) < 1:
        raise ValueError(
            f"duration={duration!r} s is shorter than one sample at {sample_rate} Hz."
        )
    if not _is_finite_real(anomaly_strength) or anomaly_strength < 0:
        raise ValueError(
            f"anomaly_strength must be a non-negative number, got {anomaly_strength!r}."
        )

    if isinstance(snr_db, Real):
        if not _is_finite_real(snr_db):
            raise ValueError(f"snr_db must be finite, got {snr_db!r}.")
    else:
        try:
            low, high = snr_db  # type: ignore[misc]
        except (TypeError, ValueError):
            raise ValueError(
                f"snr_db must be a number or a (low, high) pair, got {snr_db!r}."
            ) from None
        if not (_is_finite_real(low) and _is_finite_real(high)) or low > high:
            raise ValueError(
                "snr_db range must be two finite numbers with low <= high, got "
                f"{snr_db!r}."
            )

    if isinstance(anomaly_kinds, str):
        anomaly_kinds = (anomaly_kinds,)
    try:
        kinds = tuple(anomaly_kinds)  # type: ignore[arg-type]
    except TypeError:
        raise ValueError(
            f"anomaly_kinds must be a sequence of str, got {anomaly_kinds!r}."
        ) from None
    if not kinds:
        raise ValueError(
            f"anomaly_kinds must not be empty; valid kinds are {ANOMALY_KINDS}."
        )
    unknown = [kind for kind in kinds if kind not in ANOMALY_KINDS]
    if unknown:
        raise ValueError(
            f"Unknown anomaly kind(s) {unknown}; valid kinds are {ANOMALY_KINDS}."
        )
    return kinds


def _check_domain_arguments(
    *,
    attributes: object,
    n_target_train: object,
    n_target_normal_test: object,
    n_target_anomalous_test: object,
    domain_shift: object,
    n_channels: object,
    n_normal_test: int,
    n_anomalous_test: int,
) -> tuple[int, int]:
    """Validate the domain, attribute and channel arguments.

    Returns
    -------
    n_target_normal_test, n_target_anomalous_test : int
        The target test counts, defaults resolved.
    """
    if not isinstance(attributes, bool | np.bool_):
        raise ValueError(f"attributes must be True or False, got {attributes!r}.")
    counts = {}
    for name, value in (
        ("n_target_train", n_target_train),
        ("n_target_normal_test", n_target_normal_test),
        ("n_target_anomalous_test", n_target_anomalous_test),
    ):
        if value is None and name != "n_target_train":
            counts[name] = None
            continue
        if not isinstance(value, Integral) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}.")
        counts[name] = int(value)
    n_train = counts["n_target_train"]
    if not n_train and any(
        counts[k] for k in ("n_target_normal_test", "n_target_anomalous_test")
    ):
        # Target test clips without target training clips would be a domain
        # the detector never heard, which DCASE never does; refuse rather
        # than silently return clips a user may think are source ones.
        raise ValueError(
            "n_target_normal_test and n_target_anomalous_test need a target "
            "domain; pass n_target_train >= 1 (e.g. 10) as well."
        )
    n_normal = counts["n_target_normal_test"]
    n_anomalous = counts["n_target_anomalous_test"]
    if n_normal is None:
        n_normal = n_normal_test if n_train else 0
    if n_anomalous is None:
        n_anomalous = n_anomalous_test if n_train else 0
    if not (_is_finite_real(domain_shift) and 0.0 <= domain_shift <= 2.0):
        raise ValueError(
            f"domain_shift must be a number in [0, 2], got {domain_shift!r}."
        )
    if n_channels not in (1, 2) or isinstance(n_channels, bool):
        raise ValueError(
            f"n_channels must be 1 (one microphone) or 2 (near and far "
            f"microphones), got {n_channels!r}."
        )
    return n_normal, n_anomalous


def _condition_gains(
    machine: _Machine,
    conds: list[_Condition],
    speed: np.ndarray,
    sample_rate: int,
) -> np.ndarray:
    """Harmonic amplitude factors of each clip's operating condition.

    A load tilts the envelope by ``k ** (_LOAD_TILT * (load - 1))`` at
    unchanged harmonic power (the level is set by the machine, the SNR by the
    room). Harmonics that a faster speed would push above 0.4 times the
    sample rate are silenced, so nothing aliases.
    """
    n_h = machine.amplitudes.size
    k = np.arange(1, n_h + 1)
    tilt = np.array([_LOAD_TILT * (c.load - 1.0) for c in conds])
    gains = k[None, :] ** tilt[:, None]
    power = machine.amplitudes**2
    gains /= np.sqrt((gains**2 @ power) / np.sum(power))[:, None]
    # 1 % headroom over the clip's own speed covers the natural jitter.
    top = k[None, :] * machine.f0 * speed[:, None] * 1.01
    gains[top >= _MAX_FREQ_FRACTION * sample_rate] = 0.0
    return gains


def _limit_peak(clips: np.ndarray) -> np.ndarray:
    """Scale clips whose peak exceeds the limit down to it (in place)."""
    if clips.size:
        peak = np.max(np.abs(clips), axis=-1, keepdims=True)
        if clips.ndim == 3:
            # One factor per clip, the same on both microphones.
            peak = np.max(peak, axis=1, keepdims=True)
        clips *= np.minimum(1.0, _PEAK_LIMIT / np.maximum(peak, 1e-12))
    return clips


def _second_microphone(
    rng: np.random.Generator,
    clips: np.ndarray,
    machine: _Machine,
    *,
    strength: float,
    sample_rate: int,
) -> np.ndarray:
    """Record ``clips`` with the target microphone (``mic_2``).

    Another microphone at another place hears the same sound through another
    frequency response and closer to other noise sources: a first-order
    roll-off above ``_MIC2_CORNER`` (its order scaled by ``strength``, at
    unchanged overall level) and extra pink noise.
    """
    n_clips, n_samples = clips.shape
    freqs = np.fft.rfftfreq(n_samples, 1.0 / sample_rate)
    response = (1.0 + (freqs / _MIC2_CORNER) ** 2) ** (-0.5 * strength)
    spectrum = np.fft.rfft(clips.astype(np.float64), axis=-1)
    power_before = np.sum(np.abs(spectrum) ** 2, axis=-1)
    spectrum *= response
    power_after = np.sum(np.abs(spectrum) ** 2, axis=-1)
    spectrum *= np.sqrt(power_before / np.maximum(power_after, 1e-30))[:, None]
    out = np.fft.irfft(spectrum, n=n_samples, axis=-1)
    pink = 100.0 / np.sqrt(freqs**2 + 20.0**2) + _WHITE_FLOOR
    level = strength * _MIC2_NOISE * machine.rms
    out += (
        _gaussian_noise(rng, n_samples, np.tile(pink / pink.mean(), (n_clips, 1)))
        * level
    )
    return _limit_peak(out).astype(np.float32)


def _room_response(rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """Impulse response from a machine to the far microphone.

    A delayed, attenuated direct path plus an exponentially decaying noise
    tail (a diffuse reverberant field), normalised so that the tail carries
    ``_FAR_REVERB`` times the energy-RMS of the direct path.
    """
    delay = int(round(_FAR_DELAY * sample_rate))
    n_tail = int(round(_FAR_RT60 * sample_rate))
    t = np.arange(n_tail) / sample_rate
    # RT60: the energy falls by 60 dB, the amplitude by 10**-3, in _FAR_RT60.
    tail = rng.standard_normal(n_tail) * 10.0 ** (-3.0 * t / _FAR_RT60)
    tail *= _FAR_REVERB / max(float(np.sqrt(np.sum(tail**2))), 1e-12)
    response = np.zeros(delay + 1 + n_tail)
    response[delay] = 1.0
    response[delay + 1 :] = tail
    return _FAR_GAIN * response


def _far_microphone(
    rng: np.random.Generator,
    near: np.ndarray,
    room: np.ndarray,
    machine: _Machine,
) -> np.ndarray:
    """Stack the near clips with their far-microphone recording.

    Returns an array of shape ``(n_clips, 2, n_samples)``: channel 0 is
    ``near`` unchanged, channel 1 the clips through ``room`` plus extra room
    noise (pink), i.e. a lower SNR and a smeared time structure.
    """
    from scipy.signal import fftconvolve

    n_clips, n_samples = near.shape
    if n_clips == 0:
        return np.zeros((0, 2, n_samples), dtype=np.float32)
    far = fftconvolve(near.astype(np.float64), room[None, :], axes=-1)[:, :n_samples]
    freqs = np.fft.rfftfreq(n_samples)
    pink = 1.0 / np.sqrt(freqs**2 + 1e-6) + 1.0
    noise = _gaussian_noise(rng, n_samples, np.tile(pink / pink.mean(), (n_clips, 1)))
    far += _FAR_NOISE * machine.rms * noise
    # Only the far channel can exceed the limit (the near one already obeys
    # it), and scaling the near one would break "channel 0 = mono".
    _limit_peak(far)
    return np.stack([near, far.astype(np.float32)], axis=1)


def _is_finite_real(value: object) -> bool:
    """Tell whether ``value`` is a finite real number (and not a bool)."""
    return (
        isinstance(value, Real)
        and not isinstance(value, bool)
        and bool(np.isfinite(float(value)))
    )


def _log_uniform(u: np.ndarray | float, low: float, high: float) -> np.ndarray:
    """Map values in [0, 1] to a log-uniform position in [low, high]."""
    return low * (high / low) ** np.asarray(u, dtype=float)


def _capped_range(band: tuple[float, float], sample_rate: int) -> tuple[float, float]:
    """Clip a frequency band to what the sample rate can represent."""
    top = _MAX_FREQ_FRACTION * sample_rate
    return min(band[0], 0.5 * top), min(band[1], top)


def _draw_factory(rng: np.random.Generator, sample_rate: int) -> _Factory:
    """Draw the room and the machine type shared by all machine IDs."""
    return _Factory(
        mains_hz=50.0 if rng.random() < 0.5 else 60.0,
        hum_levels=np.array([0.12, 0.06, 0.04]) * rng.uniform(0.5, 1.5, size=3),
        brown_weight=rng.uniform(0.5, 2.0),
        f0_offset=rng.random(),
        alpha=rng.uniform(0.4, 0.8),
        top_hz=min(rng.uniform(2500.0, 4000.0), _MAX_FREQ_FRACTION * sample_rate),
        resonance_u=rng.random(4),
    )


def _resonance_power(
    freqs: np.ndarray, centres: np.ndarray, q: np.ndarray, gains: np.ndarray
) -> np.ndarray:
    """Power response of parallel second-order band-pass resonators.

    The response of one resonator is ``1 / (1 + Q**2 (f/fc - fc/f)**2)``,
    which is 1 at the centre and falls off symmetrically on a log axis.
    """
    f = np.maximum(np.asarray(freqs, dtype=float), 1.0)[..., None]
    detune = f / centres - centres / f
    return (gains / (1.0 + (q * detune) ** 2)).sum(axis=-1)


def _draw_machine(
    rng: np.random.Generator,
    factory: _Factory,
    index: int,
    sample_rate: int,
    spread: float = 1.0,
) -> _Machine:
    """Draw the identity of machine ``index``: speed, timbre and fault sites.

    ``spread`` scales every ID-to-ID difference (speed range on a log axis,
    resonance shifts, envelope ripple and slope) around the type's model.
    """
    # Golden-ratio steps spread any number of IDs evenly over the speed range
    # while keeping every machine independent of how many others there are.
    u_f0 = (factory.f0_offset + index * 0.6180339887498949) % 1.0
    u_f0 = 0.5 + spread * (u_f0 - 0.5)
    f0 = float(_log_uniform(u_f0, *_F0_RANGE))

    # Resonances: the type's positions, shifted by about 12 % per ID; an ID
    # keeps two to four of them.
    low, high = _capped_range(_RESONANCE_RANGE, sample_rate)
    n_res = int(rng.integers(2, 5))
    centres = _log_uniform(factory.resonance_u, low, high)
    shift = np.exp(0.12 * spread * rng.standard_normal(4))
    centres = np.clip(centres * shift, low, high)
    centres = centres[rng.permutation(4)[:n_res]]
    q = rng.uniform(4.0, 15.0, size=n_res)
    gains = _log_uniform(rng.random(n_res), 3.0, 30.0)

    n_harmonics = max(1, int(factory.top_hz // f0))
    k = np.arange(1, n_harmonics + 1)
    alpha = factory.alpha + 0.1 * spread * rng.standard_normal()
    # Decaying envelope with ID-specific ripple, lifted where harmonics meet a
    # structural resonance.
    amplitudes = (
        k ** (-alpha)
        * np.exp(0.35 * spread * rng.standard_normal(n_harmonics))
        * np.sqrt(1.0 + _resonance_power(k * f0, centres, q, gains))
    )
    phases = rng.uniform(0.0, 2.0 * np.pi, size=n_harmonics)

    # Structural noise: a weak pink floor plus the same resonances. The filter
    # is stored on a fine grid and interpolated to each clip length.
    grid = np.linspace(0.0, sample_rate / 2.0, 2049)
    floor = 0.3 * 1000.0 / np.sqrt(grid**2 + 100.0**2)
    noise_filter = np.sqrt(floor + _resonance_power(grid, centres, q, gains))
    noise_filter[grid > _MAX_FREQ_FRACTION * sample_rate * 1.1] = 0.0

    rms = 0.06 * float(np.exp(rng.uniform(-0.2, 0.2)))
    noise_share = rng.uniform(0.2, 0.4)  # of the healthy machine's power
    amplitudes *= rms * np.sqrt((1.0 - noise_share) * 2.0 / np.sum(amplitudes**2))

    b_low, b_high = _capped_range(_BEARING_RANGE, sample_rate)
    return _Machine(
        f0=f0,
        amplitudes=amplitudes,
        phases=phases,
        noise_filter=noise_filter,
        noise_rms=rms * float(np.sqrt(noise_share)),
        rms=rms,
        # Defect frequencies of real bearings are not integer multiples of the
        # shaft speed; keep the fractional part well away from 0 and 1.
        bearing_ratio=float(rng.integers(3, 5) + rng.uniform(0.15, 0.85)),
        bearing_hz=float(_log_uniform(rng.random(), b_low, b_high)),
        bearing_tau=float(rng.uniform(0.8e-3, 2.0e-3)),
    )


def _gaussian_noise(
    rng: np.random.Generator, n_samples: int, power: np.ndarray
) -> np.ndarray:
    """Stationary Gaussian noise with a given power spectrum.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness.
    n_samples : int
        Length of each noise signal.
    power : ndarray of shape (n_clips, n_samples // 2 + 1)
        Power spectral shape at the rFFT bins, one row per clip; the variance
        of each output row is the mean of its ``power`` row.

    Returns
    -------
    noise : ndarray of shape (n_clips, n_samples)
        The noise is shaped directly in the frequency domain, which is cheaper
        than filtering and exact for stationary noise (it is circular, so a
        clip loops seamlessly, as a stationary process may).
    """
    n_clips, n_bins = power.shape
    # Real and imaginary parts drawn side by side and viewed as complex.
    spectrum = rng.standard_normal((n_clips, n_bins, 2)).view(complex)[..., 0]
    # With E|X_k|**2 = 2 c**2 P_k, the inverse rFFT has variance
    # 2 c**2 mean(P) / n_samples, so c**2 = n_samples / 2 gives mean(P).
    spectrum *= np.sqrt(power * (n_samples / 2.0))
    return np.fft.irfft(spectrum, n=n_samples, axis=-1)


def _render(
    machine: _Machine,
    factory: _Factory,
    kinds: list[str],
    *,
    rng: np.random.Generator,
    fault_rngs: list[np.random.Generator | None],
    speed_factors: np.ndarray,
    strength: float,
    snr_range: tuple[float, float],
    n_samples: int,
    sample_rate: int,
    harmonic_gains: np.ndarray | None = None,
) -> np.ndarray:
    """Render the clips of one machine, one per entry of ``kinds``.

    Parameters
    ----------
    machine, factory : _Machine, _Factory
        The machine to record and where it stands.
    kinds : list of str
        ``"normal"`` or an anomaly kind for each clip.
    rng : numpy.random.Generator
        Source of the healthy sound and the background of every clip.
    fault_rngs : list of numpy.random.Generator or None
        Source of the fault of each anomalous clip (None for normal clips).
    speed_factors : ndarray of shape (len(kinds),)
        Operating speed of each clip relative to the machine's.
    strength : float
        Multiplier of every fault.
    snr_range : (float, float)
        Range of the machine-to-background ratio in dB.
    n_samples, sample_rate : int
        Clip length and sample rate.
    harmonic_gains : ndarray of shape (len(kinds), n_harmonics), optional
        Factors on each clip's harmonic amplitudes (operating conditions);
        None leaves them, and the rendering, exactly as without.

    Returns
    -------
    clips : ndarray of shape (len(kinds), n_samples), dtype float32
    """
    n_clips = len(kinds)
    if n_clips == 0:
        return np.zeros((0, n_samples), dtype=np.float32)
    t = np.arange(n_samples) / sample_rate
    length = n_samples / sample_rate
    freqs = np.fft.rfftfreq(n_samples, 1.0 / sample_rate)

    # Natural clip-to-clip variation. Every clip consumes ``rng`` in the same
    # way whatever its kind, so a fault is added on top of an ordinary healthy
    # clip and ``strength=0`` reproduces the normal distribution exactly.
    n_h = machine.amplitudes.size
    f0 = machine.f0 * speed_factors * (1.0 + _F0_JITTER * rng.standard_normal(n_clips))
    start = rng.random(n_clips)  # rotor angle at t = 0, in turns
    amp = machine.amplitudes * np.exp(
        _HARMONIC_AMP_JITTER * rng.standard_normal((n_clips, n_h))
    )
    if harmonic_gains is not None:
        amp *= harmonic_gains
    phase = machine.phases + _HARMONIC_PHASE_JITTER * rng.standard_normal(
        (n_clips, n_h)
    )
    gain = np.exp(_GAIN_JITTER * rng.standard_normal(n_clips))
    snr = rng.uniform(snr_range[0], snr_range[1], size=n_clips)
    brown = factory.brown_weight * np.exp(0.2 * rng.standard_normal(n_clips))
    hum_phase = rng.uniform(0.0, 2.0 * np.pi, size=(n_clips, factory.hum_levels.size))
    # The SNR is relative to the healthy machine, so a fault adds energy on
    # top of an unchanged background.
    background_rms = gain * machine.rms * 10.0 ** (-snr / 20.0)
    hum_share = np.sum(factory.hum_levels**2) / 2.0  # hum power / noise power
    floor_rms = background_rms / np.sqrt(1.0 + hum_share)

    # Structural noise of the machine and the factory floor are independent
    # stationary Gaussian processes, so their sum is one Gaussian process with
    # the summed power spectrum: a single draw and inverse FFT serve both.
    structural = np.interp(
        freqs,
        np.linspace(0.0, sample_rate / 2.0, machine.noise_filter.size),
        machine.noise_filter**2,
    )
    structural /= max(np.mean(structural), 1e-30)
    # Pink plus brown noise with a soft corner at 20 Hz, so that the brown
    # part does not run away towards DC.
    pink = 100.0 / np.sqrt(freqs**2 + 20.0**2)
    # A little white noise (microphone and electronics) keeps the top octaves
    # from being unrealistically empty.
    floor = pink + brown[:, None] * pink**2 + _WHITE_FLOOR
    floor /= np.mean(floor, axis=1, keepdims=True)
    noise = _gaussian_noise(
        rng,
        n_samples,
        (gain[:, None] * machine.noise_rms) ** 2 * structural
        + floor_rms[:, None] ** 2 * floor,
    )

    angle = start[:, None] + f0[:, None] * t  # rotor angle in turns
    am_depth = np.zeros(n_clips)  # imbalance modulation depth, 0 if none
    am_phase = np.zeros(n_clips)
    extra: dict[int, np.ndarray] = {}  # additive fault sounds by clip index
    for j, kind in enumerate(kinds):
        fault_rng = fault_rngs[j]
        if kind == "normal" or fault_rng is None:
            continue
        if kind == "imbalance":
            level = np.exp(0.2 * fault_rng.standard_normal() - 0.04)
            # Add in power, so the extra 1x/2x energy can never cancel the
            # machine's own harmonic at that frequency.
            for order, rel in ((1, _IMBALANCE_1X), (2, _IMBALANCE_2X)):
                if order <= n_h:
                    add = strength * rel * level * machine.amplitudes[order - 1]
                    amp[j, order - 1] = np.hypot(amp[j, order - 1], add)
            depth = _IMBALANCE_AM * strength
            am_depth[j] = depth / (1.0 + depth)  # saturates below 1
            am_phase[j] = fault_rng.uniform(0.0, 2.0 * np.pi)
        elif kind == "speed_drift":
            sign = 1.0 if fault_rng.random() < 0.5 else -1.0
            drift = strength * sign * fault_rng.uniform(*_DRIFT_RANGE)
            # Beyond +-50 % the "machine" would nearly stop or run backwards.
            drift = float(np.clip(drift, -0.5, 0.5))
            # f(t) = f0 (1 + drift t / length) integrates to this extra angle.
            angle[j] += f0[j] * drift * t**2 / (2.0 * length)
        elif kind == "bearing":
            extra[j] = strength * _bearing_wave(
                fault_rng, machine, f0[j], n_samples, sample_rate
            )
        else:  # rubbing
            extra[j] = strength * _rubbing_wave(
                fault_rng, machine, n_samples, sample_rate
            )

    # Harmonics are read from a one-period wavetable at the rotor angle: far
    # cheaper than summing hundreds of sinusoids per clip, and a speed drift
    # is simply another angle trajectory.
    table_spec = np.zeros((n_clips, _TABLE_SIZE // 2 + 1), dtype=complex)
    table_spec[:, 1 : n_h + 1] = amp * np.exp(1j * phase)
    table = np.fft.irfft(table_spec, n=_TABLE_SIZE, axis=-1) * (_TABLE_SIZE / 2)
    table = np.concatenate([table, table[:, :1]], axis=1).ravel()  # wrap-around
    pos = angle * _TABLE_SIZE
    idx = np.floor(pos)
    pos -= idx  # fractional part, for linear interpolation
    # The table size is a power of two, so a bit mask wraps whole turns more
    # cheaply than a float modulo.
    idx = idx.astype(np.intp) & (_TABLE_SIZE - 1)
    idx += (np.arange(n_clips) * (_TABLE_SIZE + 1))[:, None]
    lower = table[idx]
    idx += 1
    clips = table[idx]  # the harmonics, interpolated in place below
    clips -= lower
    clips *= pos
    clips += lower
    del lower, pos, idx
    for j in np.flatnonzero(am_depth):
        clips[j] *= 1.0 + am_depth[j] * np.cos(2.0 * np.pi * angle[j] + am_phase[j])

    for j, wave in extra.items():
        clips[j] += wave
    clips *= gain[:, None]
    clips += noise

    # Mains hum: cos(w t + p) = cos p cos(w t) - sin p sin(w t), so one cosine
    # and one sine per harmonic serve all clips.
    for h, level in enumerate(factory.hum_levels, start=1):
        if h * factory.mains_hz < _MAX_FREQ_FRACTION * sample_rate:
            w = 2.0 * np.pi * h * factory.mains_hz * t
            amplitude = level * floor_rms
            clips += (amplitude * np.cos(hum_phase[:, h - 1]))[:, None] * np.cos(w)
            clips -= (amplitude * np.sin(hum_phase[:, h - 1]))[:, None] * np.sin(w)

    peak = np.max(np.abs(clips), axis=1)
    clips *= np.minimum(1.0, _PEAK_LIMIT / np.maximum(peak, 1e-12))[:, None]
    return clips.astype(np.float32)


def _bearing_wave(
    rng: np.random.Generator,
    machine: _Machine,
    f0: float,
    n_samples: int,
    sample_rate: int,
) -> np.ndarray:
    """Ringing of a bearing resonance hit at the defect frequency.

    Returns the fault sound at ``anomaly_strength=1`` (RMS about
    ``_BEARING_LEVEL`` times the machine's RMS).
    """
    period = sample_rate / (machine.bearing_ratio * f0)  # samples per impact
    n_impacts = int(n_samples / period) + 2
    # Rolling elements slip a little, so impacts are not exactly periodic.
    times = (
        rng.random() + np.arange(n_impacts) + 0.02 * rng.standard_normal(n_impacts)
    ) * period
    # Impacts are stronger in the load zone, which turns with the shaft; the
    # factors below have a mean square of about one.
    load = 1.0 + 0.5 * np.cos(
        2.0 * np.pi * f0 * times / sample_rate + rng.uniform(0.0, 2.0 * np.pi)
    )
    sizes = (
        load / np.sqrt(1.125) * np.exp(0.25 * rng.standard_normal(n_impacts) - 0.0625)
    )
    keep = (times >= 0) & (times < n_samples)
    impulses = np.zeros(n_samples)
    np.add.at(impulses, times[keep].astype(np.intp), sizes[keep])

    n_kernel = max(1, int(np.ceil(5.0 * machine.bearing_tau * sample_rate)))
    k = np.arange(n_kernel) / sample_rate
    kernel = np.exp(-k / machine.bearing_tau) * np.sin(
        2.0 * np.pi * machine.bearing_hz * k
    )
    wave = np.convolve(impulses, kernel)[:n_samples]
    # Expected power: impact rate times kernel energy (unit mean-square sizes).
    expected = np.sqrt(np.sum(kernel**2) / period)
    return wave * (_BEARING_LEVEL * machine.rms / max(expected, 1e-12))


def _rubbing_wave(
    rng: np.random.Generator, machine: _Machine, n_samples: int, sample_rate: int
) -> np.ndarray:
    """Short broadband friction bursts at random times.

    Returns the fault sound at ``anomaly_strength=1``: each burst has an RMS
    of about ``_RUBBING_LEVEL`` times the machine's RMS.
    """
    wave = np.zeros(n_samples)
    n_bursts = max(1, int(rng.poisson(_RUBBING_RATE * n_samples / sample_rate)))
    for _ in range(n_bursts):
        size = int(round(rng.uniform(*_RUBBING_DURATION) * sample_rate))
        size = min(max(size, 2), n_samples)
        first = int(rng.integers(0, n_samples - size + 1))
        # Hann envelope: contact builds up and releases rather than switching.
        envelope = np.hanning(size + 2)[1:-1]
        envelope /= np.sqrt(np.mean(envelope**2))
        level = _RUBBING_LEVEL * machine.rms * np.exp(0.3 * rng.standard_normal())
        # Friction noise is broadband: flat from a few hundred Hz up to a
        # corner of 1-3 kHz, then falling at 6 dB per octave.
        freqs = np.fft.rfftfreq(size, 1.0 / sample_rate)
        corner = _log_uniform(rng.random(), 1000.0, 3000.0)
        power = freqs**2 / (freqs**2 + 200.0**2) / (1.0 + (freqs / corner) ** 2)
        noise = _gaussian_noise(rng, size, power[None, :])[0]
        noise /= max(np.sqrt(np.mean(power)), 1e-12)
        wave[first : first + size] += level * envelope * noise
    return wave


# Foreign sounds (``interference``): levels at interference=1, relative to a
# machine's nominal RMS of about 0.06 (see _draw_machine).
_FOREIGN_HUM_RMS = 0.03
_KNOCK_PEAK = 0.12
_KNOCK_RATE = 0.5  # expected knocks per second


def _interference(
    rng: np.random.Generator,
    n_clips: int,
    n_samples: int,
    sample_rate: int,
    *,
    foreign_hz: float,
    level: float,
) -> np.ndarray:
    """Foreign hum and knocks for ``n_clips`` clips (added to any clip kind).

    The hum is another machine on the same floor: its fundamental
    ``foreign_hz`` is fixed for the factory, its level, harmonic balance and
    phase change from clip to clip, and it is off in about a third of the
    clips.  Knocks are impacts (a tool dropped, a cart passing a joint):
    a broadband click that rings a random low-mid resonance for a few tens of
    milliseconds, at Poisson times.
    """
    t = np.arange(n_samples) / sample_rate
    out = np.zeros((n_clips, n_samples))
    top = _MAX_FREQ_FRACTION * sample_rate
    for j in range(n_clips):
        if rng.random() > 1.0 / 3.0:
            rms = level * _FOREIGN_HUM_RMS * float(_log_uniform(rng.random(), 0.3, 3.0))
            drift = 1.0 + 0.01 * rng.standard_normal()
            hum = np.zeros(n_samples)
            for h in range(1, 5):
                if h * foreign_hz * drift < top:
                    hum += (rng.uniform(0.2, 1.0) / h) * np.sin(
                        2.0 * np.pi * h * foreign_hz * drift * t
                        + rng.uniform(0.0, 2.0 * np.pi)
                    )
            out[j] += hum * (rms / max(float(np.sqrt(np.mean(hum**2))), 1e-12))
        n_knocks = int(rng.poisson(_KNOCK_RATE * n_samples / sample_rate))
        for _ in range(n_knocks):
            first = int(rng.integers(0, n_samples))
            tau = rng.uniform(0.005, 0.04)
            ring = float(_log_uniform(rng.random(), 150.0, min(2500.0, top)))
            size = min(n_samples - first, int(6.0 * tau * sample_rate) + 1)
            k = np.arange(size) / sample_rate
            click = rng.standard_normal(size) * np.exp(-k / (0.2 * tau))
            wave = np.exp(-k / tau) * np.sin(2.0 * np.pi * ring * k) + 0.5 * click
            peak = level * _KNOCK_PEAK * float(_log_uniform(rng.random(), 0.3, 3.0))
            out[j, first : first + size] += peak * wave
    return out.astype(np.float32)
