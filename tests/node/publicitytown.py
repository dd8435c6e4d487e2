"""A town with three months of entries and a resident register, for the publicity tests.

The log (Asia/Shanghai, UTC+8) records:

* January: the staff and rules, awards for every resident on 20 January, a deduction for
  dgc-0003, a 50-point council award for dgc-0004 (grade AAA), and one award at
  2026-01-31 15:59:59 UTC, the last second of January in Shanghai;
* February: an award at 2026-01-31 16:00:00 UTC (midnight, 1 February in Shanghai), an
  award recorded on 5 February for a deed of 30 January, an objection to the deduction,
  and on 10 February its reversal by the council (a late correction of January);
* March: a deduction with a note (so that February has ended in the log too), and the
  resident's objection to it in the same month.

The register names residents with names of one to four characters, compound surnames and
non-Chinese names, an ID number and a phone each; two have no legal basis for publication.
"""

from __future__ import annotations

import dataclasses
import datetime
from dataclasses import dataclass
from pathlib import Path

from tests.builders import RuleSpec, Town, append_with_texts, create_log

from redlist.ledger.registerstore import RegisterStore
from redlist.ledger.residents import Resident, id_check_character

JAN_20 = 1_768_867_200_000  # 2026-01-20T00:00:00Z
LAST_SECOND_OF_JANUARY = 1_769_875_199_000  # 2026-01-31T15:59:59Z = 23:59:59 in Shanghai
FIRST_SECOND_OF_FEBRUARY = 1_769_875_200_000  # 2026-01-31T16:00:00Z = 1 February 00:00
FEB_5 = 1_770_249_600_000  # 2026-02-05T00:00:00Z
FEB_10 = 1_770_681_600_000
MAR_2 = 1_772_409_600_000  # 2026-03-02T00:00:00Z
#: March's note and how the notice shows it (the register's 张三 masked, numbers hidden).
MARCH_NOTE = "和张三一起捡垃圾，电话13912345678，身份证370681195102021011，2026-03-01"
MARCH_NOTE_SHOWN = "和张*一起捡垃圾，电话***********，身份证******************，2026-03-01"

#: (account, name, basis) of the register; every resident of 东村 but the two of 西村.
PEOPLE = (
    ("dgc-0001", "张", "consent", "东村"),
    ("dgc-0002", "张三", "consent", "东村"),
    ("dgc-0003", "李四光", "statute", "东村"),
    ("dgc-0004", "欧阳娜娜", "consent", "东村"),
    ("dgc-0005", "欧阳华", "consent", "西村"),
    ("dgc-0006", "Anna Schmidt", "consent", "西村"),
    ("dgc-0007", "阿依古丽·买买提", "statute", "西村"),
    ("dgc-0008", "王五", "", "东村"),
    ("dgc-0009", "赵六", "", "西村"),
)
#: How the register's names appear masked (DESIGN 3.7).
MASKED = {
    "dgc-0001": "张*",
    "dgc-0002": "张*",
    "dgc-0003": "李*光",
    "dgc-0004": "欧**娜",
    "dgc-0005": "欧*华",
    "dgc-0006": "A*** ******t",
    "dgc-0007": "阿***·**提",
}
LEFT_OUT = ("dgc-0008", "dgc-0009")
#: The register's accounts that are not people (the others are).
KINDS = {"dgc-0006": "household", "dgc-0007": "organisation"}


def id_number(serial: int) -> str:
    born = datetime.date(1960, 1, 1) + datetime.timedelta(days=serial * 400)
    first17 = f"370203{born:%Y%m%d}{serial:03d}"
    return first17 + id_check_character(first17)


def phone(serial: int) -> str:
    return f"1390631{serial:04d}"


@dataclass
class PublicityTown:
    """The data directory and what the tests look for."""

    data: Path
    town: Town
    #: Seqs of note: the deduction of dgc-0003 (January), its objection and reversal.
    deduction: int
    objection: int
    reversal: int
    #: Every seq of January's and February's entries: [start, end).
    january: tuple[int, int]
    february: tuple[int, int]
    #: The objection of dgc-0001 to its March deduction, in March.
    march_objection: int

    @property
    def log_key(self) -> str:
        return (self.data / "log.pub").read_text().strip()

    def personal_data(self) -> list[str]:
        """Every name, ID number and phone number of the register."""
        found = []
        for serial, (_account, name, _basis, _village) in enumerate(PEOPLE, start=1):
            found += [name, id_number(serial), phone(serial)]
        return found


#: The meeting that voted the pond rule, as its ``decided`` text.
DECIDED = "东村村民代表大会 2025年12月28日"


def build(data: Path) -> PublicityTown:
    town = Town.generate()
    town.now_ms = JAN_20 - 3_600_000
    with create_log(data, town, setup=True) as log:
        # The pond rule again, now with the meeting that voted it (the notice shows it).
        pond = RuleSpec("clean-pond", "Cleaned the village pond", "environment", 5)
        pond = dataclasses.replace(pond, decided=DECIDED)
        append_with_texts(log, [town.set_rule(pond)], town.now_ms)
        town.now_ms = JAN_20
        awards = [
            town.award(account, "clean-pond", note="清理了东边的池塘")
            for account, _name, _basis, _village in PEOPLE
        ]
        awards.append(town.award("dgc-0003", "burn-straw"))
        awards.append(town.award("dgc-0004", "mediate-dispute", qty=3))
        seqs = append_with_texts(log, awards, town.now_ms).seqs
        deduction = seqs[-2]
        town.now_ms = LAST_SECOND_OF_JANUARY
        append_with_texts(log, [town.award("dgc-0004", "epidemic-duty", note="夜班")], town.now_ms)
        january_end = log.size
        town.now_ms = FIRST_SECOND_OF_FEBRUARY
        append_with_texts(log, [town.award("dgc-0002", "clean-pond")], town.now_ms)
        town.now_ms = FEB_5
        objection = append_with_texts(
            log,
            [
                town.award("dgc-0006", "epidemic-duty", date="2026-01-30"),
                town.objection(deduction),
            ],
            town.now_ms,
        ).seqs[1]
        town.now_ms = FEB_10
        reversal = append_with_texts(log, [town.reverse(deduction)], town.now_ms).seqs[0]
        february_end = log.size
        town.now_ms = MAR_2
        # A note as a clerk may type it: another resident's name, a phone, an ID number.
        march_note = town.award("dgc-0001", "litter", note=MARCH_NOTE)
        littered = append_with_texts(log, [march_note], town.now_ms).seqs[0]
        # The resident objects in the same month: the notice's black list says so.
        march_objection = append_with_texts(log, [town.objection(littered)], town.now_ms).seqs[0]
    residents = [
        Resident(
            account,
            name,
            id_number(serial),
            phone(serial),
            village,
            "7" if serial < 5 else "",
            basis,
            "2025-12-01" if basis else "",
            JAN_20,
            KINDS.get(account, "person"),
        )
        for serial, (account, name, basis, village) in enumerate(PEOPLE, start=1)
    ]
    with RegisterStore.open(data, write=True) as register:
        register.add(residents)
    return PublicityTown(
        data,
        town,
        deduction,
        objection,
        reversal,
        (0, january_end),
        (january_end, february_end),
        march_objection,
    )
