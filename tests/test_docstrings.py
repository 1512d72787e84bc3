"""Every public class of the library packages documents itself: a docstring of at least a
sentence; the models' modules their input and output shapes; the configs an ``Attributes:``
section naming every field; and the docstring examples of poolkit.models and poolkit.nn run.

The classes are found by importing every module of the packages (``pkgutil.walk_packages``), so
a new class is checked the day it is added.
"""

from __future__ import annotations

import dataclasses
import doctest
import enum
import importlib
import inspect
import pkgutil
import re
from types import ModuleType

import pytest
import torch

PACKAGES = ("poolkit.models", "poolkit.nn", "poolkit.train", "poolkit.experiments")


def _keras_importable() -> bool:
    try:
        importlib.import_module("keras")
    except ImportError:
        return False
    return True


def _import(name: str) -> ModuleType | None:
    """The module ``name``; ``None`` only for a module that needs keras where keras is absent."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] == "keras" and not _keras_importable():
            return None
        raise


def _modules() -> list[ModuleType]:
    modules = []
    for package_name in PACKAGES:
        package = importlib.import_module(package_name)
        modules.append(package)
        for info in pkgutil.walk_packages(package.__path__, package_name + "."):
            module = _import(info.name)
            if module is not None:
                modules.append(module)
    return modules


MODULES = _modules()
CLASSES = sorted(
    {
        f"{module.__name__}.{name}": obj
        for module in MODULES
        for name, obj in vars(module).items()
        if inspect.isclass(obj) and obj.__module__ == module.__name__ and not name.startswith("_")
    }.items()
)


def _params(items):
    return [pytest.param(cls, id=path) for path, cls in items]


def own_docstring(cls: type) -> str:
    """The class's own docstring, "" where it has none: not inherited, and not the signature
    that ``dataclass`` and ``namedtuple`` write in its place."""
    doc = cls.__dict__.get("__doc__") or ""
    generated = (dataclasses.is_dataclass(cls) or issubclass(cls, tuple)) and doc.startswith(
        f"{cls.__name__}(")
    if generated or (issubclass(cls, enum.Enum) and doc == "An enumeration."):
        return ""
    return inspect.cleandoc(doc)


def is_sentence(text: str) -> bool:
    """At least three words and a full stop (or ? or !) that ends a sentence."""
    return len(text.split()) >= 3 and re.search(r"[.!?](\s|$)", text) is not None


def documented_fields(doc: str) -> set[str]:
    """The names listed in the docstring's ``Attributes:`` section (an entry may list several,
    ``lora_r, lora_alpha: ...``)."""
    _, _, section = doc.partition("\nAttributes:\n")
    names = set()
    for line in section.splitlines():
        if line.strip() and not line.startswith(" "):
            break  # the next section
        match = re.match(r"^    (\w+(?:, \w+)*):", line)
        if match:
            names.update(match.group(1).split(", "))
    return names


def test_the_walk_finds_the_classes_it_must_check():
    found = dict(CLASSES)
    for path in ("poolkit.models.textcnn.TextCNN", "poolkit.models.convnet.ConvNetConfig",
                 "poolkit.nn.sequence.SequencePool", "poolkit.train.trainer.TrainConfig",
                 "poolkit.experiments.explain_op.OpExplanation"):
        assert path in found
    assert len(found) > 100


def test_the_checks_catch_what_they_are_for():
    @dataclasses.dataclass
    class Bare:
        width: int = 1

    @dataclasses.dataclass
    class Half:
        """A config.

        Attributes:
            width, height: its sides.
        """

        width: int = 1
        height: int = 1
        depth: int = 2

    assert own_docstring(Bare) == ""  # dataclass wrote "Bare(width: int = 1)"
    assert not is_sentence("``(H, W)``") and is_sentence("The size of it, ``(H, W)``.")
    assert documented_fields(own_docstring(Half)) == {"width", "height"}


@pytest.mark.parametrize("cls", _params(CLASSES))
def test_public_class_has_a_docstring_of_at_least_a_sentence(cls):
    doc = own_docstring(cls)
    assert is_sentence(doc), f"{cls.__module__}.{cls.__qualname__} needs a docstring: {doc!r}"


MODEL_MODULES = [
    (path, cls) for path, cls in CLASSES
    if path.startswith("poolkit.models.") and issubclass(cls, torch.nn.Module)
]


@pytest.mark.parametrize("cls", _params(MODEL_MODULES))
def test_model_module_docstring_gives_the_shapes(cls):
    doc = own_docstring(cls)
    assert re.search(r"\(B, ", doc), (
        f"{cls.__qualname__}'s docstring must give its input and output shapes, e.g. "
        "``(B, T)`` ids -> ``(B, num_classes)`` logits"
    )


NN_MODULES = [
    (path, cls) for path, cls in CLASSES
    if path.startswith("poolkit.nn.") and not path.startswith("poolkit.nn._")
    and issubclass(cls, torch.nn.Module)
]


@pytest.mark.parametrize("cls", _params(NN_MODULES))
def test_layer_docstring_gives_the_shapes(cls):
    doc = own_docstring(cls)
    assert "\nShape:" in doc or re.search(r"\((N|B|K), ", doc), (
        f"{cls.__qualname__}'s docstring must give its shapes: a Shape: section or "
        "``(N, C, H, W)``-style shapes"
    )


def _config_classes():
    from poolkit.models.registry import get_model_spec, list_models

    configs = {f"{c.__module__}.{c.__qualname__}": c
               for c in (get_model_spec(name).config_cls for name in list_models())}
    configs.update((path, cls) for path, cls in CLASSES
                   if dataclasses.is_dataclass(cls) and path.endswith("Config"))
    return sorted(configs.items())


@pytest.mark.parametrize("cls", _params(_config_classes()))
def test_config_docstring_has_attributes_for_every_field(cls):
    doc = own_docstring(cls)
    assert "\nAttributes:\n" in doc, f"{cls.__qualname__} needs an Attributes: section"
    fields = {f.name for f in dataclasses.fields(cls)}
    assert fields - documented_fields(doc) == set()


DOCUMENTED = [(path, cls) for path, cls in CLASSES
              if dataclasses.is_dataclass(cls) and "\nAttributes:\n" in own_docstring(cls)]


@pytest.mark.parametrize("cls", _params(DOCUMENTED))
def test_attributes_sections_name_exactly_the_fields(cls):
    fields = {f.name for f in dataclasses.fields(cls)}
    assert documented_fields(own_docstring(cls)) == fields


EXAMPLE_MODULES = [m for m in MODULES if m.__name__.split(".")[1] in ("models", "nn")]


@pytest.mark.parametrize("module", EXAMPLE_MODULES, ids=[m.__name__ for m in EXAMPLE_MODULES])
def test_docstring_examples_run(module):
    # examples assume ``import torch``, as PyTorch's own do
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner(verbose=False)
    for test in finder.find(module, module.__name__, extraglobs={"torch": torch}):
        runner.run(test)
    results = runner.summarize(verbose=False)
    assert results.failed == 0, f"{results.failed} of {results.attempted} examples failed"
