"""Key files on disk: the private key a staff member signs with and its public twin.

``redlist keygen --out FILE`` writes two files:

* ``FILE``: the Ed25519 private key as unencrypted PKCS#8 PEM, readable by its
  owner only (mode 0600). It never leaves the staff member's machine.
* ``FILE.pub``: a few ``#`` comment lines (the holder's name, the raw public key
  in hex and the key id) followed by the public key as SubjectPublicKeyInfo PEM.
  PEM itself has no field for a name, so the name travels in the comments. PEM
  readers skip text before the ``-----BEGIN`` line, so this file is what a staff
  member hands to the town's admin for ``redlist key add --pub FILE.pub``.

Every failure is a ``KeyFileError`` that names the file.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from redlist.ledger import crypto
from redlist.ledger.errors import KeyFileError, NoteError, RedlistError
from redlist.ledger.i18n import _, in_words
from redlist.ledger.logkeyfile import read_log_key_file
from redlist.ledger.note.keys import ALG_ED25519, NoteSigner, VerifierKey
from redlist.ledger.text import KEY_NAME_MAX, key_name_refusal

PUBLIC_SUFFIX = ".pub"
PRIVATE_MODE = 0o600
PUBLIC_MODE = 0o644
#: Longest holder name accepted: the format's limit for a key name.
MAX_NAME_LENGTH = KEY_NAME_MAX

_PUBLIC_PEM = b"-----BEGIN PUBLIC KEY-----"
# The comment line of a public key file that names the holder (``public_text``).
_NAME_LINE = "# name: "
_PRIVATE_PEM = b"PRIVATE KEY-----"


@dataclass(frozen=True)
class KeyFiles:
    """Where a key pair was written."""

    private: Path
    public: Path


def public_path(private: Path) -> Path:
    """The public twin of a private key file: the same name with ``.pub`` appended."""
    return private.with_name(private.name + PUBLIC_SUFFIX)


def check_name(name: str) -> str:
    """The holder's name as the log will hold it (NFC, no surrounding spaces), if the
    format allows it as a key name (docs/format.md, "Text")."""
    stripped = unicodedata.normalize("NFC", name.strip())
    if not stripped:
        raise KeyFileError(_("the key holder's name must not be empty"))
    if any(char in stripped for char in "\r\n"):
        raise KeyFileError(_("the key holder's name must be a single line of text"))
    refusal = key_name_refusal(stripped)
    if refusal is not None:
        raise KeyFileError(
            _("the key holder's name {stripped!r} {problem}").format(
                stripped=stripped, problem=in_words(refusal)
            )
        )
    return stripped


def public_text(public: bytes, name: str) -> str:
    """The contents of a ``.pub`` file for the raw public key ``public`` held by ``name``."""
    pem = Ed25519PublicKey.from_public_bytes(public).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return (
        "# redlist staff key (public part; safe to share)\n"
        f"{_NAME_LINE}{check_name(name)}\n"
        f"# public key (hex): {public.hex()}\n"
        f"# key id: {crypto.key_id(public).hex()}\n" + pem.decode("ascii")
    )


def write_key_files(
    private: Path, key: crypto.SigningKey, name: str, *, force: bool = False
) -> KeyFiles:
    """Write ``key`` to ``private`` (PKCS#8 PEM, mode 0600) and its public twin.

    Refuses when either file exists, unless ``force``: overwriting a private key
    destroys it, and every entry it signed stays attributed to the lost key.
    """
    _check_destination(private)
    files = KeyFiles(private, public_path(private))
    public = public_text(key.public, name).encode("utf-8")
    if not force:
        for path in (files.private, files.public):
            if _exists(path):
                raise KeyFileError(
                    _(
                        "{path} already exists; a key file is never overwritten (choose another "
                        "--out, "
                        "or pass --force to destroy the old key)"
                    ).format(path=path)
                )
    _write(files.private, key.to_pem(), PRIVATE_MODE, force)
    _write(files.public, public, PUBLIC_MODE, force)
    return files


def read_signing_key(path: Path) -> crypto.SigningKey:
    """The private key in ``path`` (unencrypted PKCS#8 PEM, as keygen writes it)."""
    data = _read(path, _("private key file"))
    if _PUBLIC_PEM in data and _PRIVATE_PEM not in data:
        # The most common mix-up: the FILE.pub that keygen wrote next to the key.
        raise KeyFileError(
            _(
                "{path} holds a public key; signing needs the private key file (the one keygen "
                "wrote without {PUBLIC_SUFFIX!r})"
            ).format(path=path, PUBLIC_SUFFIX=PUBLIC_SUFFIX)
        )
    try:
        return crypto.SigningKey.from_pem(data)
    except KeyFileError as error:
        raise KeyFileError(f"{path}: {error.diagnostics()}") from None


def read_public_key(path: Path) -> bytes:
    """The raw public key in ``path``: a ``.pub`` file, a PEM public key or a private key."""
    data = _read(path, _("key file"))
    try:
        return crypto.public_key_from_pem(data)
    except KeyFileError as error:
        raise KeyFileError(f"{path}: {error.diagnostics()}") from None


def read_holder_name(private: Path) -> str | None:
    """The holder's name in the public twin of ``private`` (its ``# name:`` line), if any.

    None when the twin is missing or names nobody; a twin that cannot be read is an error.
    """
    path = public_path(private)
    if not path.is_file():
        return None
    text = _read(path, _("public key file")).decode("utf-8", "replace")
    for line in text.splitlines():
        if line.startswith(_NAME_LINE):
            return check_name(line[len(_NAME_LINE) :])
    return None


def _check_destination(private: Path) -> None:
    """Refuse an ``--out`` that cannot name a new key file, before anything is written."""
    if private.name in ("", ".", ".."):
        raise KeyFileError(
            _(
                "--out {private!r} names a directory; give the key file to create, e.g. wang.pem"
            ).format(private=str(private))
        )
    try:
        is_directory, folder_exists = private.is_dir(), private.parent.is_dir()
    except OSError as error:  # e.g. a name too long for the file system
        raise KeyFileError(
            _("cannot write {private}: {strerror}").format(private=private, strerror=error.strerror)
        ) from None
    if is_directory:
        raise KeyFileError(
            _("{private} is a directory; --out names the key file to create, e.g. {value}").format(
                private=private, value=private / "wang.pem"
            )
        )
    if not folder_exists:
        raise KeyFileError(
            _(
                "cannot write {private}: the directory {parent} does not exist (create it first)"
            ).format(private=private, parent=private.parent)
        )


def _exists(path: Path) -> bool:
    try:
        return path.exists() or path.is_symlink()
    except OSError as error:  # e.g. a name too long for the file system
        raise KeyFileError(
            _("cannot write {path}: {strerror}").format(path=path, strerror=error.strerror)
        ) from None


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise KeyFileError(_("{what} {path} does not exist").format(what=what, path=path)) from None
    except IsADirectoryError:
        raise KeyFileError(
            _("{what} {path} is a directory, not a file").format(what=what, path=path)
        ) from None
    except OSError as error:
        raise KeyFileError(
            _("cannot read {what} {path}: {strerror}").format(
                what=what, path=path, strerror=error.strerror
            )
        ) from None


def _write(path: Path, data: bytes, mode: int, force: bool) -> None:
    """Write ``data`` to ``path`` with permissions ``mode``, atomically.

    The bytes go to a temporary file in the same directory first; it is then
    renamed over ``path`` (``force``) or hard-linked to it, which fails when
    ``path`` appeared meanwhile. A crash leaves either no key or a whole one.
    """
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(descriptor, "wb") as handle:
            os.fchmod(handle.fileno(), mode)  # the umask may have removed bits we want
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if force:
            os.replace(temporary, path)
        else:
            os.link(temporary, path)
    except FileExistsError:
        raise KeyFileError(
            _("{path} already exists; a key file is never overwritten").format(path=path)
        ) from None
    except OSError as error:
        raise KeyFileError(
            _("cannot write {path}: {strerror}").format(path=path, strerror=error.strerror)
        ) from None
    finally:
        temporary.unlink(missing_ok=True)


def read_note_signer(private: Path, name: str | None, what: str) -> NoteSigner:
    """A key from ``redlist keygen`` as a note signer (an auditor's, a witness's).

    The signer's name is ``name``, else the one in the key's public twin (``# name:``);
    it must be a note key name (no spaces, no '+'). ``what`` names the option for
    messages (``--attest-key``).
    """
    key = read_signing_key(private)
    if name is None:
        name = read_holder_name(private)
        if name is None:
            raise KeyFileError(
                _(
                    "{what} {private} has no name (its {name}{PUBLIC_SUFFIX} is missing or names "
                    "nobody): give the name with the option beside it"
                ).format(what=what, private=private, name=private.name, PUBLIC_SUFFIX=PUBLIC_SUFFIX)
            )
    try:
        return NoteSigner(name, key)
    except NoteError as error:
        raise KeyFileError(
            _(
                "the name {name!r} of {what} {private} cannot name a note key ({error}); give a "
                "name without spaces or '+', such as county-audit"
            ).format(name=name, what=what, private=private, error=error)
        ) from None


def read_note_key(
    given: str, what: str, read_file: Callable[[Path], bytes] | None = None
) -> VerifierKey:
    """An Ed25519 note key (algorithm 0x01) that signs other things than checkpoints,
    such as an auditor's: the verifier key string, a file holding it, or the ``FILE.pub``
    that ``redlist keygen`` wrote (its name and public key make the key).

    ``read_file`` reads a file (default: at most ``logkeyfile.LOG_KEY_FILE_LIMIT`` bytes). Every
    problem is a ``KeyFileError`` naming ``what`` (``--auditor-key``).
    """
    path = Path(given)
    try:
        is_file = path.is_file()
    except (OSError, ValueError):
        is_file = False
    if not is_file:
        if "+" not in given:
            raise KeyFileError(
                _("{what} {given!r} is neither a file nor a key string (name+hash+key)").format(
                    what=what, given=given
                )
            )
        text = given.strip()
    else:
        try:
            data = (read_file or read_log_key_file)(path)
        except RedlistError as exc:
            raise KeyFileError(exc.diagnostics()) from None
        except OSError as exc:
            raise KeyFileError(
                _("cannot read {what} {path}: {strerror}").format(
                    what=what, path=path, strerror=exc.strerror
                )
            ) from None
        if _PUBLIC_PEM in data:
            return _note_key_from_pem(path, data, what)
        try:
            text = data.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise KeyFileError(
                _("{what} {path} is not UTF-8 text").format(what=what, path=path)
            ) from None
    try:
        key = VerifierKey.parse(text)
    except NoteError as exc:
        raise KeyFileError(
            _("{what} {given!r} is not a verifier key string: {exc}").format(
                what=what, given=given, exc=exc
            )
        ) from None
    if key.algorithm != ALG_ED25519:
        raise KeyFileError(
            _("{what} {describe} is a witness's cosigning key, not a note key").format(
                what=what, describe=key.describe()
            )
        )
    return key


def _note_key_from_pem(path: Path, data: bytes, what: str) -> VerifierKey:
    try:
        public = crypto.public_key_from_pem(data)
    except KeyFileError as error:
        raise KeyFileError(f"{what} {path}: {error.diagnostics()}") from None
    name = None
    for line in data.decode("utf-8", "replace").splitlines():
        if line.startswith(_NAME_LINE):
            name = line[len(_NAME_LINE) :].strip()
    if name is None:
        raise KeyFileError(
            _("{what} {path} names nobody (no '{strip}' line): give the key string").format(
                what=what, path=path, strip=_NAME_LINE.strip()
            )
        )
    try:
        return VerifierKey.for_ed25519(name, public)
    except NoteError as error:
        raise KeyFileError(
            _(
                "the name {name!r} in {what} {path} cannot name a note key ({error}); give the "
                "key string the signer printed instead"
            ).format(name=name, what=what, path=path, error=error)
        ) from None
