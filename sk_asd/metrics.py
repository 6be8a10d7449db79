"""Official DCASE Task 2 metrics: AUC, pAUC and the yearly score tables.

All functions take their inputs the DCASE way round:

* ``is_anomaly``: 1 for an anomalous clip, 0 for a normal one (the anomalous
  clips are the *positive* class);
* ``anomaly_score``: higher means more anomalous.

:class:`~sk_asd.AnomalousSoundDetector` follows the scikit-learn outlier
convention instead: its ``score_samples`` is *higher = more normal*. Flip the
sign before scoring, ``anomaly_score = -detector.score_samples(X)``; passing
``score_samples`` unchanged turns an AUC of ``a`` into ``1 - a``.

The definitions follow the organisers' public evaluator scripts for DCASE
2020-2024 Task 2 (read, not copied):

* AUC is :func:`sklearn.metrics.roc_auc_score` (ties count one half);
* pAUC is ``roc_auc_score(..., max_fpr=0.1)``, the area under the ROC curve up
  to a false-positive rate of 0.1, standardised by McClish's correction as
  scikit-learn does: ``0.5 * (1 + (A - A_min) / (A_max - A_min))`` with
  ``A_min = 0.5 * max_fpr**2`` and ``A_max = max_fpr``, so chance gives 0.5
  and a perfect detector gives 1;
* :func:`dcase2020_table`: per machine ID, arithmetic means over the IDs of a
  machine type, then over the types (plus mAUC, the worst ID of each type);
* :func:`dcase2021_table`: per section and domain, harmonic means from 2021 on,
  with the domain rules of the chosen ``year``.

Harmonic means clip every value at the machine epsilon first, as the official
evaluators do, so that a zero AUC gives a tiny mean instead of a division by
zero.
"""

from __future__ import annotations

import numbers
from collections.abc import Hashable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

__all__ = [
    "ScoreTable",
    "auc_pauc",
    "dcase2020_table",
    "dcase2021_table",
    "official_layout",
]

# Labels of the summary rows. User labels equal to these are refused, so that
# a summary row can never be mistaken for a machine, ID or section.
_ALL_TYPES = "all"
_MEAN = "mean"
_HMEAN = "hmean"
_ALL_DOMAINS = "all"
# Label of the single machine type used when ``machine_types`` is None.
_SINGLE_TYPE = "-"
_DOMAINS = ("source", "target")


class ScoreTable:
    """Table of DCASE scores: a dict of rows plus the headline numbers.

    Built by :func:`dcase2020_table` and :func:`dcase2021_table`; there is
    rarely a reason to build one directly.

    Parameters
    ----------
    data : mapping of tuple to mapping of str to float
        One entry per row: the row key (a tuple of labels, one per name in
        ``key_names``) maps to the row's values by column name. A row may omit
        columns that do not apply to it.
    key_names : sequence of str
        Names of the parts of a row key, e.g. ``("machine_type",
        "machine_id")``.
    columns : sequence of str
        Value columns, in display order.
    summary : mapping of str to float
        The headline numbers, e.g. ``{"AUC": ..., "pAUC": ...}``.
    title : str, default=""
        First line of the printed table.

    Attributes
    ----------
    data : dict of tuple to dict of str to float
        The rows, in display order (row key -> column -> value).
    key_names : tuple of str
        Names of the parts of a row key.
    columns : tuple of str
        Value columns, in display order.
    summary : dict of str to float
        The headline numbers. ``table[name]`` with a string name reads the
        same values.
    title : str
        First line of the printed table.

    Notes
    -----
    ``str(table)`` (the same as ``table.to_string()``) gives an aligned text
    table with every value as a percentage with two decimals (``0.95123`` is
    shown as ``95.12``); ``table.to_string(percent=False)`` shows the raw
    values with four decimals (``0.9512``). The title line, if any, says
    which. Values a row does not have are left blank.

    Examples
    --------
    >>> table = ScoreTable(
    ...     {("fan", "id_00"): {"AUC": 0.9, "pAUC": 0.75}},
    ...     key_names=("machine_type", "machine_id"),
    ...     columns=("AUC", "pAUC"),
    ...     summary={"AUC": 0.9, "pAUC": 0.75},
    ... )
    >>> table["AUC"]
    0.9
    >>> table[("fan", "id_00")]["pAUC"]
    0.75
    >>> table.rows
    [{'machine_type': 'fan', 'machine_id': 'id_00', 'AUC': 0.9, 'pAUC': 0.75}]
    >>> print(table)
    machine_type  machine_id    AUC   pAUC
    fan           id_00       90.00  75.00
    """

    def __init__(
        self,
        data: Mapping[tuple[Hashable, ...], Mapping[str, float]],
        *,
        key_names: Sequence[str],
        columns: Sequence[str],
        summary: Mapping[str, float],
        title: str = "",
    ) -> None:
        self.key_names = tuple(key_names)
        self.columns = tuple(columns)
        self.data = {tuple(key): dict(row) for key, row in data.items()}
        for key, row in self.data.items():
            if len(key) != len(self.key_names):
                raise ValueError(
                    f"row key {key!r} has {len(key)} parts, but key_names has "
                    f"{len(self.key_names)}: {self.key_names!r}"
                )
            unknown = set(row) - set(self.columns)
            if unknown:
                raise ValueError(
                    f"row {key!r} has columns {sorted(unknown)!r} that are not "
                    f"in columns={self.columns!r}"
                )
        self.summary = dict(summary)
        self.title = title

    @property
    def rows(self) -> list[dict[str, Any]]:
        """The rows as flat dicts, key parts first, in display order.

        ``pandas.DataFrame(table.rows)`` gives a data frame with one column
        per key part and per value column (missing values become NaN).

        Returns
        -------
        list of dict
            One dict per row, from ``key_names`` and ``columns`` to values.

        Examples
        --------
        >>> table = ScoreTable(
        ...     {("fan",): {"AUC": 0.5}},
        ...     key_names=("machine_type",),
        ...     columns=("AUC",),
        ...     summary={},
        ... )
        >>> table.rows
        [{'machine_type': 'fan', 'AUC': 0.5}]
        """
        return [
            {**dict(zip(self.key_names, key, strict=True)), **row}
            for key, row in self.data.items()
        ]

    def to_dict(self) -> dict[tuple[Hashable, ...], dict[str, float]]:
        """Return a copy of the rows as a plain dict.

        Returns
        -------
        dict of tuple to dict of str to float
            Row key -> column name -> value, in display order. Changing it
            leaves the table untouched.

        Examples
        --------
        >>> table = ScoreTable(
        ...     {("fan",): {"AUC": 0.5}},
        ...     key_names=("machine_type",),
        ...     columns=("AUC",),
        ...     summary={},
        ... )
        >>> table.to_dict()
        {('fan',): {'AUC': 0.5}}
        """
        return {key: dict(row) for key, row in self.data.items()}

    def __getitem__(self, key: str | tuple[Hashable, ...]) -> Any:
        """Return a headline number (string key) or a row (tuple key).

        Parameters
        ----------
        key : str or tuple
            A name in :attr:`summary`, or a row key of :attr:`data`.

        Returns
        -------
        float or dict
            The headline number, or a copy of the row's values.

        Examples
        --------
        >>> table = ScoreTable(
        ...     {("fan",): {"AUC": 0.5}},
        ...     key_names=("machine_type",),
        ...     columns=("AUC",),
        ...     summary={"AUC": 0.5},
        ... )
        >>> table["AUC"], table[("fan",)]
        (0.5, {'AUC': 0.5})
        """
        if isinstance(key, str):
            return self.summary[key]
        return dict(self.data[key])

    def __iter__(self) -> Iterator[tuple[Hashable, ...]]:
        """Iterate over the row keys in display order."""
        return iter(self.data)

    def __len__(self) -> int:
        """Return the number of rows."""
        return len(self.data)

    def to_string(self, *, percent: bool = True) -> str:
        """Render the table as aligned text.

        Parameters
        ----------
        percent : bool, default=True
            If True, show each value times 100 with two decimals (``95.12``);
            otherwise the raw value with four decimals (``0.9512``).

        Returns
        -------
        str
            The title (if any), a header line and one line per row; key parts
            are left-aligned, values right-aligned, missing values blank.

        Examples
        --------
        >>> table = ScoreTable(
        ...     {("fan",): {"AUC": 0.5}},
        ...     key_names=("machine_type",),
        ...     columns=("AUC",),
        ...     summary={},
        ... )
        >>> print(table.to_string(percent=False))
        machine_type     AUC
        fan           0.5000
        """
        header = list(self.key_names) + list(self.columns)
        body = []
        for key, row in self.data.items():
            cells = [_format_label(part) for part in key]
            for column in self.columns:
                value = row.get(column)
                if value is None:
                    cells.append("")
                elif percent:
                    cells.append(f"{100.0 * value:.2f}")
                else:
                    cells.append(f"{value:.4f}")
            body.append(cells)
        widths = [
            max(len(line[i]) for line in [header, *body]) for i in range(len(header))
        ]
        n_keys = len(self.key_names)

        def render(cells: list[str]) -> str:
            parts = [
                cell.ljust(width) if i < n_keys else cell.rjust(width)
                for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
            ]
            return "  ".join(parts).rstrip()

        lines = []
        if self.title:
            unit = "values in %" if percent else "values as fractions"
            lines.append(f"{self.title} ({unit})")
        lines.append(render(header))
        lines.extend(render(cells) for cells in body)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_string()

    def __repr__(self) -> str:
        headline = ", ".join(f"{k}={v:.4f}" for k, v in self.summary.items())
        return f"<ScoreTable: {len(self.data)} rows; {headline}>"


def auc_pauc(
    is_anomaly: Any,
    anomaly_score: Any,
    *,
    max_fpr: float = 0.1,
) -> tuple[float, float]:
    """Compute the AUC and the McClish-standardised pAUC of one group of clips.

    Parameters
    ----------
    is_anomaly : array-like of shape (n_clips,)
        1 for anomalous clips, 0 for normal ones. Both must occur.
    anomaly_score : array-like of shape (n_clips,)
        Anomaly scores, higher = more anomalous (for the detector,
        ``-score_samples``).
    max_fpr : float, default=0.1
        Upper end of the false-positive-rate range of the pAUC, in (0, 1].
        With 1 the "pAUC" is the plain AUC (scikit-learn then skips McClish's
        correction).

    Returns
    -------
    auc : float
        ``roc_auc_score(is_anomaly, anomaly_score)``: the probability that an
        anomalous clip scores higher than a normal one, ties counting 1/2.
    pauc : float
        ``roc_auc_score(is_anomaly, anomaly_score, max_fpr=max_fpr)``.

    Raises
    ------
    ValueError
        If the inputs differ in length, are not 1-D, hold labels other than 0
        and 1 or non-finite scores, or hold only one class (AUC undefined).

    Examples
    --------
    >>> auc, pauc = auc_pauc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    >>> float(auc), round(float(pauc), 4)
    (0.75, 0.7368)
    """
    _check_max_fpr(max_fpr)
    labels, scores = _check_labels_scores(is_anomaly, anomaly_score)
    _check_both_classes(labels, "the clips given")
    return _auc_pauc_checked(labels, scores, max_fpr)


def dcase2020_table(
    is_anomaly: Any,
    anomaly_score: Any,
    machine_types: Any,
    machine_ids: Any,
    *,
    max_fpr: float = 0.1,
) -> ScoreTable:
    """Score clips the DCASE 2020 Task 2 way: per machine ID, arithmetic means.

    Parameters
    ----------
    is_anomaly : array-like of shape (n_clips,)
        1 for anomalous clips, 0 for normal ones.
    anomaly_score : array-like of shape (n_clips,)
        Anomaly scores, higher = more anomalous (``-score_samples``).
    machine_types : array-like of shape (n_clips,) or None
        Machine type of each clip (e.g. ``"fan"``), any hashable labels. None
        means all clips come from one machine type, labelled ``"-"``.
    machine_ids : array-like of shape (n_clips,)
        Machine ID of each clip (e.g. ``"id_00"``), any hashable labels. IDs
        are grouped within a machine type, so ``"id_00"`` of two types are two
        machines.
    max_fpr : float, default=0.1
        Upper end of the false-positive-rate range of the pAUC.

    Returns
    -------
    ScoreTable
        Keys ``(machine_type, machine_id)``. One row per machine ID with
        ``"AUC"`` and ``"pAUC"``; after the IDs of each type, a row
        ``(machine_type, "mean")`` with the arithmetic means of the type's AUC
        and pAUC and ``"mAUC"``, the *minimum* AUC over its IDs; last, the row
        ``("all", "mean")`` with the arithmetic means of those three over the
        machine types (each type weighs the same, whatever its number of IDs).
        ``table.summary`` is ``{"AUC", "pAUC", "mAUC"}`` from that last row.
        Types and IDs are sorted (numbers numerically, others as text).

    Raises
    ------
    ValueError
        If the inputs differ in length, a label is invalid, a machine ID has
        only normal or only anomalous clips, or a label equals a summary label
        (machine type ``"all"``, machine ID ``"mean"``).

    Notes
    -----
    This is the organisers' 2020 evaluator (AUC and pAUC per ID, averaged per
    type). mAUC is not an official 2020 figure; it is the extra figure of
    later papers (e.g. STgram-MFN), averaged over types like the others.

    Examples
    --------
    >>> table = dcase2020_table(
    ...     is_anomaly=[0, 0, 1, 1, 0, 0, 1, 1],
    ...     anomaly_score=[0.1, 0.4, 0.35, 0.8, 0.2, 0.3, 0.9, 0.7],
    ...     machine_types=["fan"] * 8,
    ...     machine_ids=["id_00"] * 4 + ["id_02"] * 4,
    ... )
    >>> float(table[("fan", "id_00")]["AUC"]), float(table[("fan", "id_02")]["AUC"])
    (0.75, 1.0)
    >>> float(table["AUC"]), float(table["mAUC"])
    (0.875, 0.75)
    >>> print(table)
    DCASE 2020 Task 2: arithmetic means; pAUC with max_fpr=0.1 (values in %)
    machine_type  machine_id     AUC    pAUC   mAUC
    fan           id_00        75.00   73.68
    fan           id_02       100.00  100.00
    fan           mean         87.50   86.84  75.00
    all           mean         87.50   86.84  75.00
    """
    _check_max_fpr(max_fpr)
    labels, scores = _check_labels_scores(is_anomaly, anomaly_score)
    n_clips = labels.shape[0]
    types = _check_groups(machine_types, "machine_types", n_clips, _ALL_TYPES)
    ids = _check_groups(machine_ids, "machine_ids", n_clips, _MEAN)

    data: dict[tuple[Hashable, ...], dict[str, float]] = {}
    type_rows = []
    for machine_type, type_idx in _group_indices(types).items():
        aucs, paucs = [], []
        for machine_id, idx in _group_indices(ids, type_idx).items():
            _check_both_classes(
                labels[idx], f"machine type {machine_type!r}, ID {machine_id!r}"
            )
            auc, pauc = _auc_pauc_checked(labels[idx], scores[idx], max_fpr)
            data[(machine_type, machine_id)] = {"AUC": auc, "pAUC": pauc}
            aucs.append(auc)
            paucs.append(pauc)
        type_row = {
            "AUC": float(np.mean(aucs)),
            "pAUC": float(np.mean(paucs)),
            "mAUC": float(np.min(aucs)),
        }
        data[(machine_type, _MEAN)] = type_row
        type_rows.append(type_row)

    summary = {
        column: float(np.mean([row[column] for row in type_rows]))
        for column in ("AUC", "pAUC", "mAUC")
    }
    data[(_ALL_TYPES, _MEAN)] = dict(summary)
    return ScoreTable(
        data,
        key_names=("machine_type", "machine_id"),
        columns=("AUC", "pAUC", "mAUC"),
        summary=summary,
        title=f"DCASE 2020 Task 2: arithmetic means; pAUC with max_fpr={max_fpr:g}",
    )


def dcase2021_table(
    is_anomaly: Any,
    anomaly_score: Any,
    machine_types: Any,
    sections: Any,
    domains: Any,
    *,
    year: int = 2023,
    max_fpr: float = 0.1,
) -> ScoreTable:
    """Score clips the DCASE 2021-2024 Task 2 way: per section and domain.

    Parameters
    ----------
    is_anomaly : array-like of shape (n_clips,)
        1 for anomalous clips, 0 for normal ones.
    anomaly_score : array-like of shape (n_clips,)
        Anomaly scores, higher = more anomalous (``-score_samples``).
    machine_types : array-like of shape (n_clips,) or None
        Machine type of each clip, any hashable labels. None means one type,
        labelled ``"-"``.
    sections : array-like of shape (n_clips,)
        Section of each clip (e.g. ``"00"``), any hashable labels, grouped
        within a machine type.
    domains : array-like of shape (n_clips,)
        Domain of each clip: ``"source"`` or ``"target"`` (any case), or 0
        (source) and 1 (target) as in the organisers' ground-truth files.
    year : int, default=2023
        Which year's rules to apply (see Notes): 2021, or 2022 and later.
    max_fpr : float, default=0.1
        Upper end of the false-positive-rate range of the pAUC.

    Returns
    -------
    ScoreTable
        Keys ``(machine_type, section, domain)``, types and sections sorted.
        Per section: rows ``domain="source"`` and ``"target"`` with
        ``"AUC"`` (and, for 2021, ``"pAUC"``); from 2022 a row
        ``domain="all"`` with the section's ``"pAUC"``. After the sections of
        each type, rows ``(machine_type, "hmean", domain)`` with harmonic
        means over the type's sections: for ``"source"`` and ``"target"`` over
        that domain, for ``"all"`` over both domains, plus ``"score"``, the
        harmonic mean of every AUC and pAUC of the type that enters the
        official score. Last, the same three rows for ``machine_type="all"``,
        over all types and sections pooled. ``table.summary`` holds
        ``"score"`` (the official score), ``"AUC"``, ``"pAUC"``,
        ``"AUC (source)"``, ``"AUC (target)"`` and, for 2021,
        ``"pAUC (source)"`` and ``"pAUC (target)"``, all from the last rows.

    Raises
    ------
    ValueError
        If the inputs differ in length, a label or domain is invalid, a clip
        group that needs both classes lacks one, ``year`` is before 2021, or
        a label equals a summary label (machine type ``"all"``, section
        ``"hmean"``).

    Notes
    -----
    The rules, checked against the organisers' public evaluator scripts for
    2021, 2022, 2023 and 2024:

    * ``year=2021``: the AUC *and* the pAUC of a domain are computed on that
      domain's clips of the section (its normal and its anomalous clips). The
      official score is the harmonic mean of all of them, over machine types,
      sections and both domains.
    * ``year >= 2022``: the AUC of a domain uses that domain's normal clips
      and *all* anomalous clips of the section (both domains); the pAUC is
      computed once per section on all its clips. The official score is the
      harmonic mean of AUC(source), AUC(target) and pAUC over all machine
      types and sections, each section's pAUC counted once.

    The 2022 evaluator already uses the "all anomalous clips" domain rule
    that is often credited to 2023, so 2022 follows it here too. Years after
    2024 are assumed to keep the 2023 rules (not checked). The per-type and
    overall "all" rows of ``"AUC"`` pool both domains' AUCs, as the
    evaluators' "harmonic mean" lines do.

    Examples
    --------
    >>> table = dcase2021_table(
    ...     is_anomaly=[0, 0, 1, 0, 0, 1],
    ...     anomaly_score=[0.1, 0.3, 0.9, 0.2, 0.95, 0.8],
    ...     machine_types=None,
    ...     sections=["00"] * 6,
    ...     domains=["source"] * 3 + ["target"] * 3,
    ...     year=2023,
    ... )
    >>> float(table[("-", "00", "source")]["AUC"])
    1.0
    >>> float(table[("-", "00", "target")]["AUC"])
    0.5
    >>> round(table["score"], 4)
    0.587
    """
    _check_max_fpr(max_fpr)
    if isinstance(year, bool) or not isinstance(year, numbers.Integral):
        raise TypeError(f"year must be an int such as 2021 or 2023, got {year!r}")
    if year < 2021:
        raise ValueError(
            f"year={year}: the section/domain rules start in 2021; use "
            "dcase2020_table for DCASE 2020"
        )
    labels, scores = _check_labels_scores(is_anomaly, anomaly_score)
    n_clips = labels.shape[0]
    types = _check_groups(machine_types, "machine_types", n_clips, _ALL_TYPES)
    sects = _check_groups(sections, "sections", n_clips, _HMEAN)
    is_target = _check_domains(domains, n_clips)
    per_domain = year == 2021
    hint = (
        ""
        if per_domain
        else " (from 2022 the domain AUC takes the domain's normal clips and all"
        " anomalous clips of the section)"
    )

    data: dict[tuple[Hashable, ...], dict[str, float]] = {}
    # Values entering each harmonic mean, for one type and for all types.
    pooled: dict[str, list[float]] = _empty_pools()
    for machine_type, type_idx in _group_indices(types).items():
        pools = _empty_pools()
        for section, idx in _group_indices(sects, type_idx).items():
            where = f"machine type {machine_type!r}, section {section!r}"
            sec_labels, sec_scores = labels[idx], scores[idx]
            sec_target = is_target[idx]
            for domain, in_domain in zip(
                _DOMAINS, (~sec_target, sec_target), strict=True
            ):
                if per_domain:
                    # 2021: the domain's own normal and anomalous clips.
                    keep = in_domain
                else:
                    # 2022+: the domain's normal clips plus every anomalous
                    # clip of the section, whatever its domain.
                    keep = in_domain | (sec_labels == 1)
                _check_both_classes(
                    sec_labels[keep], f"{where}, domain {domain!r}", hint
                )
                auc, pauc = _auc_pauc_checked(
                    sec_labels[keep], sec_scores[keep], max_fpr
                )
                row = {"AUC": auc}
                pools[f"AUC ({domain})"].append(auc)
                if per_domain:
                    row["pAUC"] = pauc
                    pools[f"pAUC ({domain})"].append(pauc)
                data[(machine_type, section, domain)] = row
            if not per_domain:
                _check_both_classes(sec_labels, where)
                _, pauc = _auc_pauc_checked(sec_labels, sec_scores, max_fpr)
                data[(machine_type, section, _ALL_DOMAINS)] = {"pAUC": pauc}
                pools["pAUC"].append(pauc)
        data.update(_hmean_rows(machine_type, pools, per_domain))
        for name, values in pools.items():
            pooled[name].extend(values)

    overall = _hmean_rows(_ALL_TYPES, pooled, per_domain)
    data.update(overall)
    summary = {"score": overall[(_ALL_TYPES, _HMEAN, _ALL_DOMAINS)]["score"]}
    summary["AUC"] = overall[(_ALL_TYPES, _HMEAN, _ALL_DOMAINS)]["AUC"]
    summary["pAUC"] = overall[(_ALL_TYPES, _HMEAN, _ALL_DOMAINS)]["pAUC"]
    for domain in _DOMAINS:
        summary[f"AUC ({domain})"] = overall[(_ALL_TYPES, _HMEAN, domain)]["AUC"]
        if per_domain:
            summary[f"pAUC ({domain})"] = overall[(_ALL_TYPES, _HMEAN, domain)]["pAUC"]
    rule = (
        "AUC and pAUC per domain"
        if per_domain
        else "domain AUC = its normal + all anomalous clips; pAUC per section"
    )
    return ScoreTable(
        data,
        key_names=("machine_type", "section", "domain"),
        columns=("AUC", "pAUC", "score"),
        summary=summary,
        title=f"DCASE {year} Task 2: harmonic means; {rule}; max_fpr={max_fpr:g}",
    )


def official_layout(table: ScoreTable) -> ScoreTable:
    """Lay a 2022+ score table out as the organisers' result files do.

    :func:`dcase2021_table` gives one row per section *and domain*; the
    organisers' evaluator (2022-2024) reports one row per section with its
    AUC on the source domain, its AUC on the target domain (each domain's
    normal clips against all anomalous clips of the section) and its pAUC
    over both domains, then harmonic means, then the official score. This
    function rearranges the same numbers that way; nothing is recomputed.

    Parameters
    ----------
    table : ScoreTable
        Made by :func:`dcase2021_table` with ``year >= 2022``.

    Returns
    -------
    ScoreTable
        Keys ``(machine_type, section)``; columns ``"AUC (source)"``,
        ``"AUC (target)"``, ``"pAUC"`` and ``"score"``. Per section the
        first three; per machine type a row ``(machine_type, "hmean")`` with
        their harmonic means over its sections and ``"score"``, the harmonic
        mean of all of them; last ``("all", "hmean")`` over every type. The
        summary is ``table``'s; ``summary["score"]`` is the official score.

    Raises
    ------
    ValueError
        If ``table`` was not made by :func:`dcase2021_table` under the 2022+
        rules (2021 tables have a pAUC per domain and no such layout).

    Examples
    --------
    >>> table = dcase2021_table(
    ...     is_anomaly=[0, 0, 1, 0, 0, 1],
    ...     anomaly_score=[0.1, 0.3, 0.9, 0.2, 0.95, 0.8],
    ...     machine_types=None,
    ...     sections=["00"] * 6,
    ...     domains=["source"] * 3 + ["target"] * 3,
    ... )
    >>> print(official_layout(table).to_string(percent=False))
    ... # doctest: +NORMALIZE_WHITESPACE
    DCASE 2022+ Task 2, official layout: ... (values as fractions)
    machine_type  section  AUC (source)  AUC (target)    pAUC   score
    -             00             1.0000        0.5000  0.4737
    -             hmean          1.0000        0.5000  0.4737  0.5870
    all           hmean          1.0000        0.5000  0.4737  0.5870
    """
    if table.key_names != ("machine_type", "section", "domain") or not any(
        key[2] == _ALL_DOMAINS and key[1] != _HMEAN for key in table.data
    ):
        raise ValueError(
            "official_layout needs a table from dcase2021_table with year >= "
            "2022 (one pAUC per section); 2021 tables keep their own layout."
        )
    data: dict[tuple[Hashable, ...], dict[str, float]] = {}
    for (machine_type, section, domain), row in table.data.items():
        out = data.setdefault((machine_type, section), {})
        if domain == _ALL_DOMAINS:
            out["pAUC"] = row["pAUC"]
            if section == _HMEAN:
                out["score"] = row["score"]
        else:
            out[f"AUC ({domain})"] = row["AUC"]
    # Columns in the organisers' order, whatever order the rows came in.
    columns = ("AUC (source)", "AUC (target)", "pAUC", "score")
    data = {key: {c: row[c] for c in columns if c in row} for key, row in data.items()}
    return ScoreTable(
        data,
        key_names=("machine_type", "section"),
        columns=columns,
        summary=table.summary,
        title=(
            "DCASE 2022+ Task 2, official layout: AUC per domain (its normal "
            "clips vs all anomalous clips of the section), pAUC over both; "
            "score = harmonic mean of all of them"
        ),
    )


# --------------------------------------------------------------------------
# helpers


def _empty_pools() -> dict[str, list[float]]:
    """Return empty lists for every value kind a harmonic mean may pool."""
    return {
        "AUC (source)": [],
        "AUC (target)": [],
        "pAUC (source)": [],
        "pAUC (target)": [],
        "pAUC": [],
    }


def _hmean(values: Sequence[float]) -> float:
    """Harmonic mean, each value clipped at the machine epsilon first."""
    # The clip mirrors the official evaluators: a zero AUC would otherwise
    # make the mean undefined instead of (almost) zero.
    clipped = np.maximum(np.asarray(values, dtype=float), np.finfo(float).eps)
    return float(clipped.size / np.sum(1.0 / clipped))


def _hmean_rows(
    machine_type: Hashable, pools: Mapping[str, list[float]], per_domain: bool
) -> dict[tuple[Hashable, ...], dict[str, float]]:
    """Build the three harmonic-mean rows of one machine type (or of all)."""
    rows: dict[tuple[Hashable, ...], dict[str, float]] = {}
    for domain in _DOMAINS:
        row = {"AUC": _hmean(pools[f"AUC ({domain})"])}
        if per_domain:
            row["pAUC"] = _hmean(pools[f"pAUC ({domain})"])
        rows[(machine_type, _HMEAN, domain)] = row
    aucs = pools["AUC (source)"] + pools["AUC (target)"]
    if per_domain:
        paucs = pools["pAUC (source)"] + pools["pAUC (target)"]
    else:
        # One pAUC per section: it enters the official score once, next to
        # the section's two domain AUCs.
        paucs = pools["pAUC"]
    rows[(machine_type, _HMEAN, _ALL_DOMAINS)] = {
        "AUC": _hmean(aucs),
        "pAUC": _hmean(paucs),
        "score": _hmean(aucs + paucs),
    }
    return rows


def _auc_pauc_checked(
    labels: np.ndarray, scores: np.ndarray, max_fpr: float
) -> tuple[float, float]:
    """AUC and pAUC of inputs already validated, both classes present."""
    auc = roc_auc_score(labels, scores)
    pauc = roc_auc_score(labels, scores, max_fpr=max_fpr)
    return float(auc), float(pauc)


def _check_max_fpr(max_fpr: float) -> None:
    """Refuse a max_fpr outside (0, 1], before any work is done."""
    if isinstance(max_fpr, bool) or not isinstance(max_fpr, numbers.Real):
        raise TypeError(f"max_fpr must be a number in (0, 1], got {max_fpr!r}")
    if not 0.0 < max_fpr <= 1.0:
        raise ValueError(f"max_fpr must be in (0, 1], got {max_fpr!r}")


def _check_labels_scores(
    is_anomaly: Any, anomaly_score: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Validate the labels and scores; return them as int and float arrays."""
    labels = np.asarray(is_anomaly)
    scores = np.asarray(anomaly_score)
    if labels.ndim != 1 or scores.ndim != 1:
        raise ValueError(
            "is_anomaly and anomaly_score must be 1-D (one value per clip); got "
            f"shapes {labels.shape} and {scores.shape}"
        )
    if labels.shape[0] != scores.shape[0]:
        raise ValueError(
            f"is_anomaly has {labels.shape[0]} values but anomaly_score has "
            f"{scores.shape[0]}; give one label and one score per clip"
        )
    if labels.shape[0] == 0:
        raise ValueError("no clips given: is_anomaly and anomaly_score are empty")
    try:
        scores = scores.astype(float)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"anomaly_score must be numbers, got dtype {scores.dtype}"
        ) from exc
    if not np.all(np.isfinite(scores)):
        raise ValueError(
            f"anomaly_score has {int(np.sum(~np.isfinite(scores)))} NaN or "
            "infinite values; every clip needs a finite score"
        )
    if labels.dtype.kind not in "biuf":
        raise ValueError(
            "is_anomaly must hold 1 (anomalous) and 0 (normal); got dtype "
            f"{labels.dtype}"
        )
    # Refuse anything but 0/1 rather than guess: the scikit-learn outlier
    # labels (+1 normal, -1 anomalous) would otherwise be read the wrong way
    # round.
    bad = ~np.isin(labels, (0, 1))
    if np.any(bad):
        found = np.unique(labels[bad])[:5].tolist()
        raise ValueError(
            "is_anomaly must hold only 1 (anomalous) and 0 (normal), the DCASE "
            f"convention; found {found}. scikit-learn outlier labels "
            "(-1 anomalous, +1 normal) convert with (y == -1).astype(int)"
        )
    return labels.astype(int), scores


def _check_groups(
    groups: Any, name: str, n_clips: int, reserved: str
) -> list[Hashable]:
    """Validate one label per clip; None gives one shared label."""
    if groups is None:
        return [_SINGLE_TYPE] * n_clips
    # dtype=object keeps each label's own Python type (a list of mixed str
    # and int stays mixed instead of becoming all strings).
    array = np.asarray(groups, dtype=object)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one label per clip); got {array.shape}")
    if array.shape[0] != n_clips:
        raise ValueError(
            f"{name} has {array.shape[0]} labels but there are {n_clips} clips "
            "(is_anomaly and anomaly_score); give one label per clip"
        )
    labels = array.tolist()
    for label in set(labels):
        if label is None or (isinstance(label, float) and np.isnan(label)):
            raise ValueError(f"{name} holds a missing label ({label!r})")
        if str(label) == reserved:
            raise ValueError(
                f"{name} holds the label {label!r}, which the table uses for "
                "its summary rows; rename it"
            )
    return labels


def _check_domains(domains: Any, n_clips: int) -> np.ndarray:
    """Validate the domains; return a boolean array, True for target."""
    if domains is None:
        raise ValueError("domains is required: 'source' or 'target' for each clip")
    array = np.asarray(domains, dtype=object)
    if array.ndim != 1 or array.shape[0] != n_clips:
        raise ValueError(
            f"domains must be 1-D with one value per clip ({n_clips}); got shape "
            f"{array.shape}"
        )
    is_target = np.zeros(n_clips, dtype=bool)
    for i, value in enumerate(array.tolist()):
        text = value.strip().lower() if isinstance(value, str) else value
        if text in ("source", 0):
            continue
        if text in ("target", 1):
            is_target[i] = True
            continue
        raise ValueError(
            f"domains[{i}] is {value!r}; use 'source' or 'target' (or 0 and 1)"
        )
    return is_target


def _check_both_classes(labels: np.ndarray, where: str, hint: str = "") -> None:
    """Raise a clear error if a group lacks normal or anomalous clips."""
    n_anomalous = int(np.sum(labels == 1))
    n_normal = labels.shape[0] - n_anomalous
    if n_anomalous and n_normal:
        return
    missing = "anomalous" if n_normal else "normal"
    raise ValueError(
        f"{where} has {n_normal} normal and {n_anomalous} anomalous clips: AUC "
        f"and pAUC need both{hint}. Add {missing} clips to this group, or leave "
        "the group out"
    )


def _sort_key(label: Hashable) -> tuple[int, float, str]:
    """Sort numbers numerically and everything else as text, numbers first."""
    if isinstance(label, numbers.Real) and not isinstance(label, bool):
        return (0, float(label), "")
    return (1, 0.0, str(label))


def _group_indices(
    labels: Sequence[Hashable], subset: np.ndarray | None = None
) -> dict[Hashable, np.ndarray]:
    """Map each label (sorted) to the clip indices carrying it."""
    if subset is None:
        subset = np.arange(len(labels))
    found: dict[Hashable, list[int]] = {}
    for i in subset.tolist():
        found.setdefault(labels[i], []).append(i)
    return {
        label: np.asarray(found[label], dtype=int)
        for label in sorted(found, key=_sort_key)
    }


def _format_label(label: Hashable) -> str:
    """Text of a row-key part for printing."""
    return str(label)
