"""C2SP signed notes, checkpoints and witness cosignatures (DESIGN 3.5, 8.1). Pure.

A *signed note* (c2sp.org/signed-note) is UTF-8 text with no control characters
other than newline. Its text ends with a newline; after it comes one blank line,
then one or more signature lines ``— <key name> <base64(key hash || signature)>``
(an em dash U+2014 and a space first). The text is everything up to the last
blank line. Key names are non-empty and contain no whitespace and no ``+``.
The 4-byte key hash is ``SHA-256(name || "\\n" || algorithm || public key)[:4]``.

* Algorithm 0x01, Ed25519: the signature is Ed25519 over the note text.
* Algorithm 0x04, cosignature/v1 (c2sp.org/tlog-cosignature): the signature is
  an 8-byte big-endian POSIX time ``T`` followed by Ed25519 over
  ``"cosignature/v1\\ntime T\\n" || note text``.

A verifier ignores signatures by keys it does not know, refuses the note when a
known key's signature fails, and accepts it when at least one known key's
signature verifies. Keys are exchanged as *verifier key* strings
``<name>+<8 hex digits of key hash>+<base64(algorithm || public key)>``; a log
keeps its private key as ``PRIVATE+KEY+<name>+<key hash>+<base64(0x01 || seed)>``.

A *checkpoint* (c2sp.org/tlog-checkpoint) is a note whose text is the log's
origin, its tree size in decimal, its base64 RFC 6962 root hash, then optional
non-empty extension lines, one per line. The log signs it with the key named
after the origin; witnesses add cosignatures.

Parsing is strict so that a note has exactly one encoding: base64 must be
canonical, and ``Note.parse(data).encode()`` gives back ``data``. Every malformed
input raises ``NoteError`` (``KeyFileError`` for private key strings).

The modules, from the bottom up:

* ``syntax``: the textual rules every part follows (key names, lines, canonical
  base64, the size limit of a note);
* ``keys``: verifier keys and note signers, the two signature algorithms;
* ``signed``: signed notes: parsing, signing, opening against trusted keys;
* ``checkpoint``: the checkpoint body, and ``SignedCheckpoint``, a checkpoint
  verified once against its log's key and carried as a value from then on;
* ``cosignature``: witness cosignatures on a checkpoint.
"""
