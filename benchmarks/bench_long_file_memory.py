"""Peak memory of ``sk-asd score`` on a long file: does it grow with the file?

Trains a tiny model on 10-second clips, then scores, each in a fresh process,
one 10-second file and one long file (default 60 minutes, 16 kHz; with
``--stereo``, 44.1 kHz stereo) and prints the peak resident set size of both
and their ratio. Only the frames the model's clip length needs are decoded,
so the ratio should stay under 2 (the whole file was decoded as float64
before: 1.5 GB peak for an hour at 16 kHz mono, 4.5 GB at 44.1 kHz stereo).
Usage::

    python benchmarks/bench_long_file_memory.py             # 10 s vs 60 min
    python benchmarks/bench_long_file_memory.py --minutes 5 --stereo
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

CHILD = """
import json, resource, sys
from sk_asd.cli.main import main
status = main(["score", sys.argv[1], sys.argv[2], "--csv", sys.argv[3], "-q"])
peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"status": status, "peak_mib": peak_kib / 1024}))
"""


def write_long(path: Path, seconds: float, sample_rate: int, channels: int) -> None:
    """A long noise file, written block by block (never held in memory)."""
    import soundfile as sf

    rng = np.random.RandomState(0)
    block = sample_rate * 10
    remaining = int(seconds * sample_rate)
    with sf.SoundFile(
        path, "w", samplerate=sample_rate, channels=channels, subtype="PCM_16"
    ) as fh:
        while remaining > 0:
            n = min(block, remaining)
            fh.write(0.1 * rng.randn(n, channels))
            remaining -= n


def peak_of_scoring(model: Path, audio: Path, out: Path) -> float:
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(model), str(audio), str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["status"] == 0, result.stderr
    return float(record["peak_mib"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--stereo", action="store_true", help="44.1 kHz stereo")
    args = parser.parse_args()

    from sk_asd import AnomalousSoundDetector
    from sk_asd.io import save_model

    rate, channels = (44100, 2) if args.stereo else (16000, 1)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        X = 0.1 * np.random.RandomState(0).randn(8, 16000 * 10).astype(np.float32)
        det = AnomalousSoundDetector(
            max_epochs=1, n_mels=32, batch_size=8, device="cpu", random_state=0
        ).fit(X, ["a"] * 4 + ["b"] * 4)
        model = save_model(det, folder / "m.skasd")
        short, long = folder / "short.wav", folder / "long.wav"
        write_long(short, 10, rate, channels)
        write_long(long, 60 * args.minutes, rate, channels)
        peak_short = peak_of_scoring(model, short, folder / "short.csv")
        peak_long = peak_of_scoring(model, long, folder / "long.csv")
    print(
        f"peak RSS scoring 10 s: {peak_short:.0f} MiB; {args.minutes:g} min "
        f"({rate} Hz, {channels} channel(s)): {peak_long:.0f} MiB; ratio "
        f"{peak_long / peak_short:.2f} (target < 2)"
    )


if __name__ == "__main__":
    main()
