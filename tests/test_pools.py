"""The pooling catalogue (poolkit.pools) is the one description every consumer reads."""

from __future__ import annotations

import subprocess
import sys

import pytest

from poolkit.experiments.explain_op import explain_op, list_ops
from poolkit.nn import PoolInfo as NNPoolInfo
from poolkit.nn import list_pools, pool_info
from poolkit.pools import IDENTITY, POOLS, PoolInfo, explained_names, factory_names


def test_catalogue_imports_neither_numpy_nor_torch():
    code = "import sys, poolkit.pools; print(sorted({'numpy', 'torch'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_factory_builds_exactly_the_catalogue_entries():
    outside = sorted(set(list_pools()) - set(factory_names()))
    assert not outside, (
        f"pools registered outside the catalogue: {outside}; give each a PoolInfo entry in "
        "poolkit/pools.py and its constructor in poolkit/nn/factory.py's _CONSTRUCTORS"
    )
    assert sorted(factory_names()) == list_pools()
    assert NNPoolInfo is PoolInfo
    for name in list_pools():
        assert pool_info(name) is POOLS[name]
    assert pool_info("") == PoolInfo(**{**IDENTITY.__dict__, "name": ""})


def test_explain_walks_through_the_entries_with_a_formula():
    assert sorted(list_ops()) == sorted(explained_names())


@pytest.mark.parametrize("name", explained_names())
def test_explain_takes_title_formula_and_paper_from_the_catalogue(name):
    info = POOLS[name]
    arguments = {"output_size": 2} if "output_size" in info.size_args else {}
    explanation = explain_op(name, **arguments)
    assert (explanation.title, explanation.formula, explanation.paper) == (
        info.title, info.formula, info.paper)


def test_entries_are_keyword_only():
    with pytest.raises(TypeError):
        PoolInfo("max", "Max pooling", "y = max x")  # type: ignore[misc]
    info = PoolInfo(name="roi_max", title="RoI max pooling", summary="max over each RoI bin",
                    global_=False, size_args=("output_size",), factory=False)
    assert info.windowed_dims == (1, 2, 3) and info.paper == ""


def test_names_are_unique_and_described():
    for name, info in POOLS.items():
        assert info.name == name and info.title and info.summary
        assert info.windowed_dims or info.global_
