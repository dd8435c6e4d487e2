"""``frozen.builder``: values built without ``__init__`` are the values ``__init__`` makes."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from redlist.ledger import bodydecode, points, state
from redlist.ledger.bodies import Award, Redeem
from redlist.ledger.envelope import EntrySignature, Envelope, Leaf
from redlist.ledger.frozen import builder
from redlist.ledger.points import Effect
from redlist.ledger.state import Balance, TargetRecord

# Every builder the hot paths use, with the class it builds.
USED = [
    (bodydecode._build_award, Award),
    (bodydecode._build_redeem, Redeem),
]

values = st.one_of(st.none(), st.integers(), st.text(max_size=8), st.binary(max_size=8))


@pytest.mark.parametrize(("build", "cls"), USED, ids=lambda item: getattr(item, "__name__", ""))
@given(data=st.data())
def test_a_built_value_is_the_value_init_makes(build, cls, data) -> None:
    fields = dataclasses.fields(cls)
    arguments = [data.draw(values, label=field.name) for field in fields]
    positional = [field for field in fields if not field.kw_only]
    made = cls(
        *arguments[: len(positional)],
        **{
            field.name: value
            for field, value in zip(fields, arguments, strict=True)
            if field.kw_only
        },
    )
    built = build(*arguments)
    assert type(built) is cls
    assert built == made
    assert repr(built) == repr(made)
    assert vars(built) == vars(made)
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.extra = 1  # type: ignore[attr-defined]
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(built, fields[0].name, arguments[0])


def test_a_builder_takes_every_field_and_nothing_else() -> None:
    with pytest.raises(TypeError):
        bodydecode._build_redeem("log", b"id")
    with pytest.raises(TypeError):
        bodydecode._build_redeem(*range(7))
    built = bodydecode._build_redeem("log", b"i" * 16, 0, "a-1", 5, b"h" * 32)
    assert built == Redeem("log", b"i" * 16, 0, "a-1", 5, b"h" * 32)


texts = st.text(max_size=8)
maybe = st.one_of(st.none(), st.integers())


@given(
    st.tuples(st.integers(), st.integers(), st.integers()),
    st.tuples(texts, texts, st.integers(), texts, maybe, st.integers(), texts),
    st.tuples(st.integers(), texts, st.lists(texts).map(tuple), st.one_of(st.none(), texts),
              st.one_of(st.none(), texts), st.integers(), st.integers(), maybe),
)  # fmt: skip
def test_the_named_tuples_made_without_new_are_the_values_their_class_makes(
    totals: tuple[object, ...], target: tuple[object, ...], effect: tuple[object, ...]
) -> None:
    """``Balance``, ``TargetRecord``, ``Effect``, ``Leaf``, ``EntrySignature`` and
    ``Envelope`` are made as ``tuple.__new__(cls, fields)`` on the hot paths (``points``, ``state``,
    ``envelope``): the values ``cls(*fields)`` makes, as immutable."""
    for cls, fields in (
        (Balance, totals),
        (TargetRecord, target),
        (Effect, effect),
        (Leaf, (totals[0], totals[1], b"p" * 32, b"envelope")),
        (EntrySignature, (b"k" * 8, b"s" * 64)),
        (Envelope, (b"body", (EntrySignature(b"k" * 8, b"s" * 64),), b"raw")),
    ):
        made = state._new_tuple(cls, fields)
        assert type(made) is cls
        assert made == cls(*fields) and repr(made) == repr(cls(*fields))
        assert made is not fields and points._new_tuple is state._new_tuple is tuple.__new__
        with pytest.raises(AttributeError):
            setattr(made, cls._fields[0], fields[0])


def test_classes_whose_init_does_more_are_refused() -> None:
    @dataclasses.dataclass(frozen=True)
    class Checked:
        value: int

        def __post_init__(self) -> None:
            if self.value < 0:
                raise ValueError("negative")

    @dataclasses.dataclass(frozen=True, slots=True)
    class Slotted:
        value: int

    @dataclasses.dataclass(frozen=True)
    class Derived:
        value: int
        double: int = dataclasses.field(init=False, default=0)

    class Plain:
        value: int

    for cls in (Checked, Slotted, Derived, Plain):
        with pytest.raises(TypeError):
            builder(cls)
