"""Audio input and output: files in, mono float waveforms out."""

from sk_asd.io.audio import (
    AudioBatch,
    AudioFileNotFoundError,
    AudioLoadError,
    SkippedFile,
    load_audio,
    load_audios,
    probe_audio,
    write_audio,
)
from sk_asd.io.model import (
    MODEL_SUFFIX,
    ModelFileNotFoundError,
    ModelLoadError,
    ModelVersionWarning,
    load_model,
    save_model,
)

__all__ = [
    "AudioBatch",
    "AudioFileNotFoundError",
    "AudioLoadError",
    "MODEL_SUFFIX",
    "ModelFileNotFoundError",
    "ModelLoadError",
    "ModelVersionWarning",
    "SkippedFile",
    "load_audio",
    "load_audios",
    "load_model",
    "probe_audio",
    "save_model",
    "write_audio",
]
