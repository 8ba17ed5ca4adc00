#!/usr/bin/env python3
"""Write a varied backlog of Rossum exports into an SFTP inbox.

Usage: backlog.py DATA_DIR INBOX UPLOADS PREFIX COUNT

Export number n is one of the samples in DATA_DIR (tests/data), made
unique by n where the format allows it. Every 25th file is a broken XML
that must fail, and every 40th (from the first) an original document for
a passthrough pattern "*invoice_file-*". Each file is written under a
temporary dot name with an mtime one minute in the past and then renamed,
so the agent never lists it half written. One line per file is appended to
UPLOADS in the format that check_invariants.py reads.
"""

import hashlib
import json
import os
import sys
import time


def export(data_dir, n):
    """Return (extension, bytes) of export number n."""
    def sample(name):
        with open(os.path.join(data_dir, name), "rb") as handle:
            return handle.read()

    kind = n % 7
    if kind == 0:
        return "xml", sample("rossum_export_single.xml").replace(
            b"4410001", str(5000000 + n).encode())
    if kind == 1:
        return "xml", sample("rossum_export_multi.xml") + \
            b"<!-- copy %d -->\n" % n
    if kind == 2:
        return "xml", sample("rossum_export_edge_cases.xml") + \
            b"<!-- copy %d -->\n" % n
    if kind == 3:
        return "json", sample("rossum_export_multi.json") + b" " * n + b"\n"
    if kind == 4:
        return "csv", sample("rossum_export_multi.csv")
    if kind == 5:
        return "csv", sample("rossum_export_single.csv")
    return "xml", sample("rossum_export_empty.xml") + b"<!-- copy %d -->\n" % n


def main():
    data_dir, inbox, uploads, prefix, count = sys.argv[1:6]
    past = time.time() - 60
    with open(uploads, "a", encoding="utf-8") as log:
        for n in range(1, int(count) + 1):
            if n % 25 == 0:
                name, content, expect = "%s%04d.xml" % (prefix, n), \
                    b'<?xml version="1.0"?>\n<export><results><annotation %d\n' \
                    % n, "fail"
            elif n % 40 == 1:
                name, content, expect = "%sinvoice_file-%04d" % (prefix, n), \
                    b"%%PDF-1.4 original document %d\n" % n, "deliver"
            else:
                ext, content = export(data_dir, n)
                name, expect = "%s%04d.%s" % (prefix, n, ext), "deliver"
            temp = os.path.join(inbox, ".upload.tmp")
            with open(temp, "wb") as handle:
                handle.write(content)
            os.utime(temp, (past, past))
            os.rename(temp, os.path.join(inbox, name))
            log.write(json.dumps({
                "rel": name.encode().hex(),
                "sha256": hashlib.sha256(content).hexdigest(),
                "expect": expect}) + "\n")


if __name__ == "__main__":
    main()
