"""The language of the command lines (docs/adr/0034): one gettext catalogue, complete
for every marked message, compiled and fresh; no English-only message left unmarked in
the modules of ``redlist``, ``redlist-node`` and ``redlist-verify``; the language chosen
by ``--lang`` or the locale, English for anything missing."""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from redlist.ledger import i18n

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("i18n_script", ROOT / "scripts" / "i18n.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SCRIPT = _load_script()

# ---------------------------------------------------------------------------
# The catalogue

_FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)[^{}]*\}")
_PERCENT = re.compile(r"%(?:\([a-z_]+\))?[a-z]")


def _fields(text: str) -> set[str]:
    text = text.replace("{{", "").replace("}}", "")
    return set(_FIELD.findall(text)) | set(_PERCENT.findall(text))


def test_every_marked_message_has_a_chinese_translation() -> None:
    catalogue = SCRIPT.read_catalogue()
    missing = []
    for msgid, where, line, context in SCRIPT.marked():
        message = catalogue.get(msgid, context)
        strings = () if message is None else message.string
        strings = strings if isinstance(strings, tuple) else (strings,)
        if message is None or not all(strings) or message.fuzzy:
            missing.append(f"{where}:{line}: {msgid!r}")
    assert not missing, "untranslated (python scripts/i18n.py extract):\n" + "\n".join(missing)


def test_every_translation_uses_only_the_values_its_message_has() -> None:
    """A translation naming a value its message does not pass would fail at run time."""
    catalogue = SCRIPT.read_catalogue()
    wrong = []
    for message in catalogue:
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        allowed = set().union(*(_fields(one) for one in ids))
        for string in strings:
            if string and not _fields(string) <= allowed:
                wrong.append(f"{ids[0]!r}: {sorted(_fields(string) - allowed)}")
    assert not wrong, "\n".join(wrong)


#: The words the council's review of proposals may use: the act is 审核 (what a town
#: office calls reviewing and approving a submission), its queue 待审核队列; 评议 is only
#: in the council's name (评议会), its members' (评议员), and the catalogue column
#: 需评议 (whether a rule needs the council), which sheets use as a header.
_COUNCIL_NAMES = re.compile(r"评议会|评议员|需评议")


def test_the_councils_review_is_called_one_thing() -> None:
    catalogue = SCRIPT.read_catalogue()
    mixed = []
    for message in catalogue:
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        for string in strings:
            if "评议" in _COUNCIL_NAMES.sub("", string) or re.search("待审(?!核)|审批", string):
                mixed.append(string)
    assert not mixed, "say 审核 for the council's review:\n" + "\n".join(mixed)


def test_the_committed_catalogue_is_the_compilation_of_the_po_file() -> None:
    assert SCRIPT.MO.read_bytes() == SCRIPT.compiled(), "run python scripts/i18n.py compile"


def test_the_catalogue_ships_inside_the_ledger_package() -> None:
    assert i18n.LOCALE_DIR / "zh_CN" / "LC_MESSAGES" / "redlist.mo" == SCRIPT.MO


# ---------------------------------------------------------------------------
# No user-facing message left unmarked

NODE = ROOT / "node" / "src" / "redlist" / "node"
#: The modules whose messages reach a person at the command line: every module of the
#: staff tools and of their client, every module of the verifier, the node's commands and
#: the modules they report from, and the shared command-line frame. The node's server
#: modules (servicer, batcher, admission, ...) answer clients in English and log for
#: operators' tools in English.
CLI_MODULES = sorted(
    [
        *(ROOT / "staff" / "src" / "redlist" / "staff").rglob("*.py"),
        *(ROOT / "verifier" / "src" / "redlist" / "verifier").rglob("*.py"),
        *(NODE / "commands").glob("*.py"),
        NODE / "cli.py",
        *(
            NODE / f"{name}.py"
            for name in (
                "config",
                "towncfg",
                "mirrorcfg",
                "tomlfile",
                "residentfile",
                "export",
                "publicity",
                "tls",
                "listenflags",
                "recognition",
                "texts",
                "evidence",
                "publication",
            )
        ),
        ROOT / "proto" / "src" / "redlist" / "proto" / "client.py",
        ROOT / "proto" / "src" / "redlist" / "proto" / "errors.py",
        ROOT / "ledger" / "src" / "redlist" / "ledger" / "console.py",
        ROOT / "ledger" / "src" / "redlist" / "ledger" / "keyfile.py",
        ROOT / "ledger" / "src" / "redlist" / "ledger" / "logkeyfile.py",
    ]
)
#: Lines that stay English on purpose, as (module name, start of the text): lines that
#: scripts read, and call descriptions naming gRPC methods.
ENGLISH_ON_PURPOSE = {
    ("mirror.py", "mirroring log "),
}

_MARKERS = {"_", "N_", "ngettext", "pgettext"}
_WORD = re.compile(r"[A-Za-z]{2,}")
#: One lower-case word: a check's or a field's name, which errors carry for programs.
_TOKEN = re.compile(r"[a-z][a-z0-9_-]*")


def _text(node: ast.expr) -> str | None:
    """The text of a string literal (``{}`` for an f-string's values), else None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
    return None


def _name(call: ast.Call) -> str:
    function = call.func
    if isinstance(function, ast.Name):
        return function.id
    if isinstance(function, ast.Attribute):
        return function.attr
    return ""


def unmarked(source: str, filename: str) -> Iterator[str]:
    """The user-facing string literals of ``source`` that are not marked for translation:
    what ``print`` shows or a stream's ``write`` writes, argparse's help, descriptions and
    group titles, a parser's ``error``, and the message of a raised ``...Error``. An
    f-string there is unmarked by nature (its text cannot be looked up); so is a bare
    name given as help.

    Labels kept in tuples and lists are found too (:func:`_unmarked_labels`).

    A ``VerificationError``'s first value is its check's name and stays English; its
    message (the second) is the technical detail that ``--json`` carries as
    ``error.message``, in English whatever the language: the verifier's report gives
    the check's plain words, translated, beside it (docs/adr/0034)."""

    def check(node: ast.expr | None, what: str) -> Iterator[str]:
        if node is None:
            return
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):  # "\n" + text
            yield from check(node.left, what)
            yield from check(node.right, what)
            return
        text = _text(node)
        if text is not None and _WORD.search(text) and not _TOKEN.fullmatch(text):
            if not any(
                filename.endswith(module) and text.startswith(start)
                for module, start in ENGLISH_ON_PURPOSE
            ):
                yield f"{filename}:{node.lineno}: {what}: {text[:70]!r}"
        elif isinstance(node, ast.Name) and what in {"help", "description", "epilog"}:
            yield f"{filename}:{node.lineno}: {what}: {node.id} is not translated where used"

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            name = _name(node)
            if name in _MARKERS or name == "format":  # format(): the values of a message
                continue
            for keyword in node.keywords:
                if keyword.arg in {"help", "description", "epilog", "title"}:
                    yield from check(keyword.value, keyword.arg)
            if name == "add_argument_group" and node.args:
                yield from check(node.args[0], "group title")
            if name in {"print", "error", "write"} and node.args:
                yield from check(node.args[0], name)
        elif isinstance(node, ast.Raise):
            exc = node.exc
            if isinstance(exc, ast.Call) and _name(exc).endswith("Error") and exc.args:
                yield from check(exc.args[0], "raise")
    yield from _unmarked_labels(source, filename)


_SHOWN = {"print", "write", "error"}


def _cells(rows: ast.expr, bound: dict[str, list[ast.expr]]) -> Iterator[ast.expr]:
    """The literal texts a table's rows hold: a row's cells as written in the
    comprehension or list that makes the rows, through ``a if c else b`` and ``a or b``
    (not into calls: ``shown(rule.title)`` is a value)."""
    for value in bound.get(rows.id, []) if isinstance(rows, ast.Name) else [rows]:
        if isinstance(value, (ast.ListComp, ast.GeneratorExp)):
            made = [value.elt]
        elif isinstance(value, (ast.List, ast.Tuple)):
            made = list(value.elts)
        else:
            continue
        for row in made:
            for cell in row.elts if isinstance(row, (ast.Tuple, ast.List)) else []:
                yield from _literal_texts(cell)


def _literal_texts(node: ast.expr) -> Iterator[ast.expr]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield node
    elif isinstance(node, ast.IfExp):
        yield from _literal_texts(node.body)
        yield from _literal_texts(node.orelse)
    elif isinstance(node, ast.BoolOp):
        for value in node.values:
            yield from _literal_texts(value)


#: Calls whose values reach programs, not people, even when printed: JSON.
_FOR_PROGRAMS = {"dumps", "dump"}


def _names_shown(node: ast.AST) -> Iterator[str]:
    """The variables ``node`` shows, leaving out what goes through ``json.dumps``."""
    if isinstance(node, ast.Call) and _name(node) in _FOR_PROGRAMS:
        return
    if isinstance(node, ast.Name):
        yield node.id
    for child in ast.iter_child_nodes(node):
        yield from _names_shown(child)


def _unmarked_labels(source: str, filename: str) -> Iterator[str]:
    """The English labels of ``source`` kept in a tuple or a list and shown from there:

    * the items of a literal (or a name bound to one) a ``for`` loop walks, at the
      positions whose loop variables the loop's body prints or writes: ``for label,
      value in (("name", ...), ...): print(f"{label}: {value}")``;
    * the headers given to ``print_table`` as a literal or a name bound to one, and the
      literal texts of its rows' cells (``"yes" if rule.council else "no"``).

    A single lower-case word counts here (``"name"`` is a label, not a check's name),
    since these are shown as they are. Tuples that only reach JSON, CSV files for
    programs (``writerow``) or log lines are not shown by ``print``/``write`` and pass.
    """
    tree = ast.parse(source)
    # Every value each name is given anywhere in the module (a name may be reused).
    bound: dict[str, list[ast.expr]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name):
                bound.setdefault(target.id, []).append(node.value)
        elif (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and node.value is not None
        ):
            bound.setdefault(node.target.id, []).append(node.value)

    def items(node: ast.expr) -> list[ast.expr]:
        values = bound.get(node.id, []) if isinstance(node, ast.Name) else [node]
        return [
            item
            for value in values
            if isinstance(value, (ast.Tuple, ast.List))
            for item in value.elts
        ]

    def label(node: ast.expr, what: str) -> Iterator[str]:
        text = _text(node)
        if (
            text is not None
            and _WORD.search(text)
            and not any(
                filename.endswith(module) and text.startswith(start)
                for module, start in ENGLISH_ON_PURPOSE
            )
        ):
            yield f"{filename}:{node.lineno}: {what}: {text[:70]!r}"

    for node in ast.walk(tree):
        if isinstance(node, ast.For):
            walked = items(node.iter)
            if not walked:
                continue
            shown = {
                name
                for statement in node.body
                for call in ast.walk(statement)
                if isinstance(call, ast.Call) and _name(call) in _SHOWN
                for argument in [*call.args, *(keyword.value for keyword in call.keywords)]
                for name in _names_shown(argument)
            }
            target = node.target
            names = target.elts if isinstance(target, ast.Tuple) else [target]
            for item in walked:
                parts = item.elts if isinstance(item, ast.Tuple) else [item]
                if len(parts) != len(names):
                    continue
                for name, part in zip(names, parts, strict=True):
                    if isinstance(name, ast.Name) and name.id in shown:
                        yield from label(part, "label in a tuple")
        elif isinstance(node, ast.Call) and _name(node) == "print_table":
            given = dict(zip(("stream", "headers", "rows"), node.args, strict=False))
            given.update((keyword.arg, keyword.value) for keyword in node.keywords if keyword.arg)
            if "headers" in given:
                for header in items(given["headers"]):
                    yield from label(header, "table header")
            if "rows" in given:
                for cell in _cells(given["rows"], bound):
                    yield from label(cell, "table cell")


def test_no_message_of_the_command_lines_is_left_unmarked() -> None:
    found = [
        problem
        for path in CLI_MODULES
        for problem in unmarked(path.read_text(encoding="utf-8"), path.name)
    ]
    assert not found, "mark these with _() (docs/adr/0034):\n" + "\n".join(found)


@pytest.mark.parametrize(
    "source",
    [
        'print("Recorded the award.")',
        'print(f"Recorded {n} awards.")',
        'parser.add_argument("--x", help="the x to use")',
        'parser.add_argument("--x", help=f"the x (default {X})")',
        "parser.add_parser('x', description=DESCRIPTION)",
        'raise FormatError("the date is wrong")',
        'raise FormatError(f"row {row} is wrong")',
        'parser.error("give --month")',
        'parser.add_argument_group("rate limiting")',
        'stdout.write("Checked against the node:\\n")',
        'stderr.write(f"{PROGRAM}: interrupted; nothing was verified\\n")',
        'stdout.write("\\n" + "Checked against the node:" + NEWLINE)',
        # Labels in tuples, as ``residents show`` kept them.
        'for label, value in (("name", n), ("phone", p)):\n    print(f"  {label}: {value}")',
        'ROWS = [(_("kind"), k), ("village", v)]\nfor label, value in ROWS:\n'
        "    stdout.write(label + value)",
        'HEADERS = ("code", "title")\nprint_table(stdout, HEADERS, rows)',
        'print_table(stdout, headers=["key id", _("name")], rows=rows)',
        'rows = [(r.code, "yes" if r.council else "no") for r in rules]\n'
        "print_table(stdout, HEADERS, rows)",
    ],
)
def test_the_unmarked_check_finds_an_english_only_message(source: str) -> None:
    assert list(unmarked(source, "planted.py"))


@pytest.mark.parametrize(
    "source",
    [
        'print(_("Recorded the award."))',
        'print(_("Recorded {n} awards.").format(n=n))',
        'parser.add_argument("--x", help=_("the x (default {X})").format(X=X))',
        "parser.add_parser('x', description=_(DESCRIPTION))",
        'raise FormatError(_("row {row} is wrong").format(row=row))',
        "print(json.dumps(document))",
        'stdout.write(_("Checked against the node:") + "\\n")',
        "stdout.write(json.dumps(value) + NEWLINE)",
        "raise ValueError(value)",
        'for label, value in ((_("name"), n), (_("phone"), p)):\n    print(f"{label}: {value}")',
        'HEADERS = (N_("code"), N_("title"))\nprint_table(stdout, [_(h) for h in HEADERS], rows)',
        # Field names, JSON keys, CSV headers for programs and log lines stay English.
        'for field, text in (("id_number", N_("the ID")),):\n'
        "    parser.add_argument(field, help=_(text))",
        'for key, value in (("ok", ok), ("tree_size", n)):\n    document[key] = value',
        'for key, value in (("ok", ok),):\n    print(json.dumps({key: value}))',
        'writer.writerow(("account", "name", "phone"))',
        'rows = [(shown(r.title), _("yes") if r.council else "", r.note or "-") for r in rules]\n'
        "print_table(stdout, [_(h) for h in HEADERS], rows)",
        'for name in ("account", "name"):\n    logger.info("column %s", name)',
    ],
)
def test_the_unmarked_check_lets_marked_messages_pass(source: str) -> None:
    assert not list(unmarked(source, "planted.py"))


def test_the_verifier_tables_of_words_are_in_the_catalogue() -> None:
    """The verifier's sentences are defined in tables (``N_``) and translated where the
    report shows them: every kind, plain words, advice and report sentence is there."""
    from redlist.verifier import checkwords, failure, report

    catalogue = SCRIPT.read_catalogue()
    tables = [
        checkwords.KINDS,
        checkwords.PLAIN,
        checkwords._ADVICE,
        failure.KIND_NAMES,
        failure._KIND_WORDS,
        failure._SENTENCES,
        report._ENTRY_KINDS,
    ]
    missing = [
        text
        for table in tables
        for text in table.values()
        if catalogue.get(text) is None or not catalogue.get(text).string
    ]
    assert not missing, "\n".join(missing)


# ---------------------------------------------------------------------------
# Choosing the language


@pytest.fixture
def english_after() -> Iterator[None]:
    yield
    i18n.setup(i18n.ENGLISH)


@pytest.mark.parametrize(
    ("environ", "language"),
    [
        ({}, "en"),
        ({"LANG": "zh_CN.UTF-8"}, "zh_CN"),
        ({"LANG": "zh_TW.UTF-8"}, "zh_CN"),
        ({"LANG": "en_US.UTF-8", "LC_ALL": "zh_CN.GB18030"}, "zh_CN"),
        ({"LANG": "zh_CN.UTF-8", "LC_MESSAGES": "C"}, "en"),
        ({"LANGUAGE": "zh_CN:en_US", "LANG": "C.UTF-8"}, "zh_CN"),
        ({"LANGUAGE": "", "LANG": "zh_CN.UTF-8"}, "zh_CN"),
        ({"LANG": "C.UTF-8"}, "en"),
    ],
)
def test_the_locale_chooses_the_language(environ: dict[str, str], language: str) -> None:
    assert i18n.from_environment(environ) == language


@pytest.mark.parametrize(
    ("argv", "language", "rest"),
    [
        (["--lang", "zh_CN", "award", "--rule", "V01"], "zh_CN", ["award", "--rule", "V01"]),
        (["award", "--lang=en", "--rule", "V01"], "en", ["award", "--rule", "V01"]),
        (["award", "--lang", "zh"], "zh_CN", ["award"]),
        (["--lang", "fr", "award"], None, ["--lang", "fr", "award"]),
        (["award", "--", "--lang", "zh_CN"], None, ["award", "--", "--lang", "zh_CN"]),
        (["award"], None, ["award"]),
    ],
)
def test_the_switch_is_taken_anywhere_before_double_dash(
    argv: list[str], language: str | None, rest: list[str]
) -> None:
    assert i18n.split_option(argv) == (language, rest)


def test_chinese_messages_come_from_the_catalogue_and_english_is_the_fallback(
    english_after: None,
) -> None:
    assert i18n.setup(None, {"LANG": "zh_CN.UTF-8"}) == "zh_CN"
    assert i18n._("commands") == "命令"
    assert i18n.ngettext("{count} row", "{count} rows", 2).format(count=2) == "2 行"
    assert i18n._("a message nobody translated") == "a message nobody translated"
    assert i18n.prose_date("2026-05-03") == "2026年5月3日"
    assert i18n.setup("en") == "en"
    assert i18n._("commands") == "commands"
    assert i18n.prose_date("2026-05-03") == "2026-05-03"


def _run(*argv: str, lang: str) -> subprocess.CompletedProcess[str]:
    environ = {key: value for key, value in os.environ.items() if key not in i18n.LOCALE_VARIABLES}
    return subprocess.run(
        [str(BIN / argv[0]), *argv[1:]],
        env={**environ, "LANG": lang},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("program", "chinese", "english"),
    [
        ("redlist", "镇积分台账的工作人员工具", "Staff tools for a town's credit-point ledger"),
        ("redlist-node", "运行一个镇的积分台账", "Run a town's credit-point ledger"),
        ("redlist-verify", "重新核验一个镇的积分日志", "Re-verify a town's credit-point log"),
    ],
)
def test_every_program_speaks_chinese_in_a_chinese_locale_and_takes_lang(
    program: str, chinese: str, english: str
) -> None:
    zh = _run(program, "--help", lang="zh_CN.UTF-8")
    assert zh.returncode == 0, zh.stderr
    assert chinese in zh.stdout and "用法：" in zh.stdout and "--lang" in zh.stdout
    en = _run(program, "--help", "--lang", "en", lang="zh_CN.UTF-8")
    assert english in en.stdout and "usage:" in en.stdout
    forced = _run(program, "--lang", "zh_CN", "--help", lang="C.UTF-8")
    assert chinese in forced.stdout


def test_a_subcommand_help_and_a_usage_error_are_chinese() -> None:
    help_text = _run("redlist", "submit", "--help", lang="zh_CN.UTF-8").stdout
    assert "从 CSV 文件记录多条积分" in help_text and "账户,规则,数量,日期,备注" in help_text
    error = _run("redlist", "award", "--lang", "zh_CN", lang="C.UTF-8")
    assert error.returncode == 2
    assert "错误" in error.stderr and "缺少以下必需参数" in error.stderr
    refused = _run("redlist", "--lang", "fr", "award", lang="C.UTF-8")
    assert refused.returncode == 2 and "invalid choice: 'fr'" in refused.stderr
