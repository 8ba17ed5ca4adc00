#!/usr/bin/env python3
"""Check the delivery invariants of one fault-injection case.

Run by check_invariants in tests/faults/lib.sh after the last agent run of
a case. Every failed invariant is printed on its own line, and the exit
status is 1 when any failed.

The invariants:

* Every upload that must be delivered has exactly one output document,
  identified by its source path and content SHA-256 (the output's source
  object, docs/formats.md), counted over the consumer's collection folder
  and what is left in the output folder. No document exists for anything
  else, and no output file name was published twice.
* Nothing is lost: each upload is in the archive (delivered and identical
  re-uploads), in the error folder with a .reason.txt beside it (failed),
  or in the inbox when the case expects it there. Remote files are counted
  by content, so a copy that vanished or appeared twice shows up.
* Nothing is half done: status --json shows no record in seen, downloaded
  or delivered, and no pending hook.
* The output folder has no temporary files and the download folder is
  empty.
* The manifest agrees with the remote folders: every archived record names
  an archive file with its SHA-256, every failed record names an error
  file with a reason file, and every uploaded path has a record.

The uploads file has one JSON object per line: {"rel": hex of the path
below the inbox, "sha256": ..., "expect": "deliver" | "duplicate" | "fail"
| "inbox"}. "duplicate" is an identical re-upload of a delivered version.
"""

import argparse
import base64
import collections
import hashlib
import json
import os
import re
import sys

problems = []


def problem(text):
    problems.append(text)


def display(raw):
    """Return raw bytes as the agent's names_display() shows them."""
    out = []
    i = 0
    while i < len(raw):
        for length in (4, 3, 2, 1):
            chunk = raw[i:i + length]
            if len(chunk) != length:
                continue
            try:
                text = chunk.decode("utf-8")
            except UnicodeDecodeError:
                continue
            if len(text) == 1 and text != "\0":
                out.append(text)
                i += length
                break
        else:
            out.append("%%%02X" % raw[i])
            i += 1
    return "".join(out)


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def walk_files(top):
    """Yield the regular files below top as byte paths."""
    for folder, _, names in os.walk(os.fsencode(top)):
        for name in names:
            path = os.path.join(folder, name)
            if os.path.isfile(path) and not os.path.islink(path):
                yield path


def read_uploads(path):
    uploads = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                entry = json.loads(line)
                entry["rel"] = bytes.fromhex(entry["rel"])
                uploads.append(entry)
    return uploads


def strip_collect_prefix(name):
    """The consumer stores files as NNNNNNNN-<output name>."""
    return name.split(b"-", 1)[1] if re.match(rb"^\d{8}-", name) else name


def check_outputs(args, uploads):
    inbox = args.inbox.rstrip("/")
    documents = collections.Counter()
    names = collections.Counter()
    for top in (args.collect, args.out):
        for path in walk_files(top):
            base = os.path.basename(path)
            if top == args.out and (base.startswith(b".") or
                                    base.endswith(b".tmp")):
                problem("temporary file left in the output folder: %r" % path)
                continue
            names[strip_collect_prefix(base) if top == args.collect
                  else base] += 1
            if not base.endswith(b".json"):
                continue
            with open(path, "rb") as handle:
                source = json.load(handle).get("source", {})
            documents[(source.get("path"), source.get("sha256"))] += 1

    for name, count in names.items():
        if count != 1:
            problem("output file %r was published %d times" % (name, count))

    expected = set()
    for upload in uploads:
        if upload["expect"] not in ("deliver", "duplicate"):
            continue
        key = (display(os.fsencode(inbox) + b"/" + upload["rel"]),
               upload["sha256"])
        expected.add(key)
    for key in sorted(expected, key=str):
        if documents[key] != 1:
            problem("%s (sha256 %s) has %d deliveries, expected 1"
                    % (key[0], key[1][:16], documents[key]))
    for key, count in documents.items():
        if key not in expected:
            problem("unexpected document for %s (sha256 %s), %d copies"
                    % (key[0], str(key[1])[:16], count))


def check_remote(args, uploads):
    archived = collections.Counter()
    for path in walk_files(args.archive):
        archived[sha256_file(path)] += 1
    failed = collections.Counter()
    for path in walk_files(args.error):
        if path.endswith(b".reason.txt"):
            continue
        failed[sha256_file(path)] += 1
        if not os.path.exists(path + b".reason.txt"):
            problem("error file %r has no .reason.txt" % path)
    waiting = collections.Counter()
    for path in walk_files(args.inbox):
        if any(path.startswith(os.fsencode(top) + b"/")
               for top in (args.archive, args.error)):
            continue
        waiting[sha256_file(path)] += 1

    want = {"deliver": collections.Counter(), "fail": collections.Counter(),
            "inbox": collections.Counter()}
    for upload in uploads:
        kind = "deliver" if upload["expect"] == "duplicate" else upload["expect"]
        want[kind][upload["sha256"]] += 1
    for label, found, expected in (("archive", archived, want["deliver"]),
                                   ("error folder", failed, want["fail"]),
                                   ("inbox", waiting, want["inbox"])):
        for sha in set(found) | set(expected):
            if found[sha] != expected[sha]:
                problem("the %s has %d files with sha256 %s, expected %d"
                        % (label, found[sha], sha[:16], expected[sha]))


def check_status(args):
    with open(args.status, encoding="utf-8") as handle:
        status = json.load(handle)
    records = status.get("records", {})
    for state in ("seen", "downloaded", "delivered"):
        if records.get(state, 0) != 0:
            problem("status shows %d records in state %s after the last run"
                    % (records[state], state))
    if status.get("pending_archive", 0) != 0:
        problem("status shows %s files pending archive"
                % status["pending_archive"])
    if status.get("pending_hooks"):
        problem("status shows pending hooks")


def read_manifest(path):
    """Return {key bytes: record dict} from `mdb_dump -s files` (hex)."""
    records = {}
    with open(path, encoding="ascii") as handle:
        lines = [line.rstrip("\n") for line in handle]
    body = lines[lines.index("HEADER=END") + 1:]
    pairs = [bytes.fromhex(line[1:]) for line in body if line.startswith(" ")]
    for key, value in zip(pairs[0::2], pairs[1::2]):
        records[key] = json.loads(value)
    return records


def record_text(record, name):
    if name in record:
        return os.fsencode(record[name])
    if name + "_b64" in record:
        return base64.b64decode(record[name + "_b64"])
    return None


def check_manifest(args, uploads):
    records = read_manifest(args.manifest)
    for upload in uploads:
        if upload["expect"] != "inbox" and upload["rel"] not in records:
            problem("no manifest record for %r" % upload["rel"])
    for key, record in records.items():
        state = record.get("state")
        target = record_text(record, "archive_path")
        if state == "archived" and target is not None:
            if not os.path.isfile(target):
                problem("record %r names archive file %r, which is missing"
                        % (key, target))
            elif sha256_file(target) != record.get("sha256"):
                problem("archive file %r does not have the sha256 of record %r"
                        % (target, key))
        elif state == "failed" and target is not None:
            if not os.path.isfile(target):
                problem("record %r names error file %r, which is missing"
                        % (key, target))
            elif not os.path.isfile(target + b".reason.txt"):
                problem("error file %r of record %r has no reason file"
                        % (target, key))
        elif state not in ("archived", "failed"):
            problem("record %r is in state %s" % (key, state))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for name in ("uploads", "inbox", "archive", "error", "out", "collect",
                 "downloads", "status", "manifest"):
        parser.add_argument("--" + name, required=True)
    args = parser.parse_args()

    uploads = read_uploads(args.uploads)
    check_outputs(args, uploads)
    check_remote(args, uploads)
    check_status(args)
    check_manifest(args, uploads)
    leftovers = os.listdir(args.downloads) if os.path.isdir(args.downloads) \
        else []
    if leftovers:
        problem("download folder not empty: %s" % leftovers)

    for text in problems:
        print("invariant failed: " + text)
    print("invariants: %d uploads checked, %d problems"
          % (len(uploads), len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
