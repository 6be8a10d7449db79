"""Data: the synthetic machine-sound generator and DCASE folder loaders."""

from sk_asd.datasets.dcase import (
    list_machine_types,
    load_dcase,
    parse_dcase_filename,
    read_dcase_ground_truth,
    write_dcase2023_folder,
)
from sk_asd.datasets.synthetic import ANOMALY_KINDS, make_machine_sounds

__all__ = [
    "ANOMALY_KINDS",
    "list_machine_types",
    "load_dcase",
    "make_machine_sounds",
    "parse_dcase_filename",
    "read_dcase_ground_truth",
    "write_dcase2023_folder",
]
