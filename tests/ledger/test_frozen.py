"""``frozen.builder``: values built without ``__init__`` are the values ``__init__`` makes."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from redlist.ledger import bodydecode, envelope, points, state
from redlist.ledger.bodies import Award, Redeem
from redlist.ledger.envelope import EntrySignature, Envelope, Leaf
from redlist.ledger.frozen import builder
from redlist.ledger.points import Effect
from redlist.ledger.state import Balance, TargetRecord

# Every builder the hot paths use, with the class it builds.
USED = [
    (envelope._build_leaf, Leaf),
    (envelope._build_signature, EntrySignature),
    (envelope._build_envelope, Envelope),
    (bodydecode._build_award, Award),
    (bodydecode._build_redeem, Redeem),
    (points._build_effect, Effect),
    (points._build_balance, Balance),
    (points._build_target, TargetRecord),
    (state._build_balance, Balance),
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
        points._build_balance(1, 2)
    with pytest.raises(TypeError):
        points._build_balance(1, 2, 3, 4)
    assert points._build_balance(1, 2, 3) == Balance(1, 2, 3)


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
