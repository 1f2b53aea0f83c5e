"""A pool split at random, fixed by the pool: the members to train on and the non-members.

The membership audit's bounds need the two sets to differ only in which
records trained the model. Sets chosen otherwise (here: a different label
mix) make a model that ignores its input look leaky; split from one pool,
the same records give no such signal.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from cleanroom.audit import AuditSpec, LabelledRecords, run_membership_audit, split_pool
from cleanroom.cli.main import main
from cleanroom.errors import AuditError

SpecFactory = Any


def _pool(n: int, *, ones: int | None = None) -> LabelledRecords:
    labels = np.zeros(n, dtype=np.int64)
    labels[: n // 2 if ones is None else ones] = 1
    features = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
    return LabelledRecords.of(features, labels)


def test_the_split_is_fixed_by_the_pool_and_covers_it() -> None:
    pool = _pool(11)
    members, nonmembers = split_pool(pool)
    assert (len(members), len(nonmembers)) == (6, 5)
    assert split_pool(pool)[0].commitment() == members.commitment()
    rows = {tuple(r) for r in pool.features.tolist()}
    got = [tuple(r) for r in (*members.features.tolist(), *nonmembers.features.tolist())]
    assert set(got) == rows
    assert len(got) == len(rows)
    # Each set keeps pool order.
    assert list(members.features[:, 0]) == sorted(members.features[:, 0])


def test_the_split_is_pinned() -> None:
    """The same pool gives the same split on every machine and version (no RNG):
    SHA-256 keys over the pool's commitment and each record's index."""
    members, _ = split_pool(_pool(10))
    assert [int(r) // 3 for r in members.features[:, 0]] == [1, 3, 4, 5, 8]


def test_a_changed_pool_gives_another_split() -> None:
    pool = _pool(40)
    changed = LabelledRecords.of(pool.features + np.float32(0.5), pool.labels)
    first = np.flatnonzero(np.isin(pool.features[:, 0], split_pool(pool)[0].features[:, 0]))
    second = np.flatnonzero(np.isin(changed.features[:, 0], split_pool(changed)[0].features[:, 0]))
    assert list(first) != list(second)


def test_a_pool_of_one_record_is_refused() -> None:
    with pytest.raises(AuditError, match="at least two records"):
        split_pool(_pool(1, ones=0))


def _constant(_: dict[str, npt.NDArray[np.generic]]) -> dict[str, npt.NDArray[np.generic]]:
    """A model that ignores its input: (ε = 0)-DP whatever it was trained on."""
    return {"probabilities": np.tile(np.float32([0.6, 0.4]), (len(_["X"]), 1))}


def _audit(spec_doc: SpecFactory, members: LabelledRecords, nonmembers: LabelledRecords) -> Any:
    doc = spec_doc(
        datasets={"members": members.commitment(), "nonmembers": nonmembers.commitment()},
        attribute_inference=[],
        epsilon_claim=0.1,
    )
    return run_membership_audit(AuditSpec.from_json(doc), _constant, members, nonmembers)


def test_sets_not_split_at_random_accuse_a_model_that_ignores_its_input(
    spec_doc: SpecFactory,
) -> None:
    rng = np.random.default_rng(5)
    features = rng.standard_normal((800, 4)).astype(np.float32)
    skewed_members = LabelledRecords.of(features[:400], (rng.random(400) < 0.3).astype(int))
    skewed_nonmembers = LabelledRecords.of(features[400:], (rng.random(400) < 0.7).astype(int))
    assert _audit(spec_doc, skewed_members, skewed_nonmembers).verdict == "VIOLATION"
    pool = LabelledRecords.of(
        features,
        np.concatenate([skewed_members.labels, skewed_nonmembers.labels]),
    )
    assert _audit(spec_doc, *split_pool(pool)).verdict == "CONSISTENT"


def test_a_spec_names_its_pool(spec_doc: SpecFactory) -> None:
    members, nonmembers = split_pool(_pool(20))
    datasets = {
        "members": members.commitment(),
        "nonmembers": nonmembers.commitment(),
        "pool": _pool(20).commitment(),
    }
    spec = AuditSpec.from_json(spec_doc(datasets=datasets))
    assert spec.pool_commitment == datasets["pool"]
    assert AuditSpec.from_bytes(spec.canonical_bytes()) == spec
    without = AuditSpec.from_json(
        spec_doc(datasets={k: v for k, v in datasets.items() if k != "pool"})
    )
    assert without.pool_commitment is None
    assert without.digest != spec.digest
    for bad in (None, "sha256:xyz", 7):
        with pytest.raises(AuditError, match=r"datasets\.pool"):
            AuditSpec.from_json(spec_doc(datasets={**datasets, "pool": bad}))


def test_cli_split_writes_the_sets_and_prints_the_datasets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pool = _pool(9)
    pool_file = tmp_path / "pool.npz"
    np.savez(pool_file, features=pool.features, labels=pool.labels)
    argv = ["audit", "split", str(pool_file), "--members", str(tmp_path / "m.npz")]
    argv += ["--nonmembers", str(tmp_path / "n.npz")]
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out)["datasets"]
    members, nonmembers = split_pool(pool)
    assert printed == {
        "members": members.commitment(),
        "nonmembers": nonmembers.commitment(),
        "pool": pool.commitment(),
    }
    with np.load(tmp_path / "m.npz") as written:
        again = LabelledRecords.of(written["features"], written["labels"])
    assert again.commitment() == members.commitment()
    # Existing files are never overwritten.
    assert main(argv) != 0
