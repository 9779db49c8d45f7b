#!/usr/bin/env python3
"""The no-data-loss property test (issue #12).

Random, seeded, reproducible sequences of what a user does in a workspace:
edit an input, edit or delete an output (or the file `pipe run --report`
writes) by hand, drop an extra file into an output folder, change a
stage's outputs or command, `pipe run`, `pipe run -f` (either with
--report), `pipe checkout` of an earlier run (with and without --force),
`pipe gc`, and SIGKILL of pipe at a random moment. After every step an oracle checks
that every version of every file the user wrote, that was in the workspace
when a pipe command started, is still in the workspace or retrievable with
a documented command (`pipe get REF PATH`, REF a commit that `pipe log
displaced` or `pipe log STAGE` lists). After a kill, the next `pipe run`
must not fail on the lock (exit 3).

Usage: no_data_loss.py --steps N --seed S [--keep]
Prints "ok - ..." / "not ok - ..." lines and "N passed, N failed" last.
"""
import argparse
import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

PIPE = os.environ.get("PIPE", "pipe")

# Stage variants the Pipefile edits choose among: each stage has two
# commands and two sets of outputs. A command writes only what its stage
# declares (a command that writes elsewhere can destroy anything, and no
# tool can stop it).
S1_CMDS = [
    "mkdir -p o1 && cp in1.txt o1/a.txt",
    "mkdir -p o1 && cp in1.txt o1/a.txt && cat in1.txt in1.txt > o1/b.txt",
]
S1_OUTS = ["[o1/]", "[o1/, s1.log]"]
S2_CMDS = [
    "cat o1/a.txt in2.txt > o2.txt",
    "cat in2.txt o1/a.txt > o2.txt",
]
S2_OUTS = ["[o2.txt]", "[o2.txt, o2b.txt]"]
S3_CMDS = [
    'mkdir -p "$PIPE_OUT" && cp "$PIPE_DATUM" "$PIPE_OUT/$(basename $PIPE_DATUM).out"',
    'mkdir -p "$PIPE_OUT" && cat "$PIPE_DATUM" "$PIPE_DATUM" > "$PIPE_OUT/$(basename $PIPE_DATUM).out"',
]

# not an output: the file `pipe run --report` writes, which the user may
# hand-write or delete too (pipe replaces only its own report)
REPORT = "report.xml"
INPUTS = ["in1.txt", "in2.txt", "d/1.txt", "d/2.txt", "d/3.txt"]
OUT_FILES = ["o1/a.txt", "o1/b.txt", "s1.log", "o2.txt", "o2b.txt",
             "o3/1.txt.out", "o3/2.txt.out", REPORT]
OUT_DIRS = ["o1", "o3"]


def git_blob_id(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class World:
    def __init__(self, ws, rng):
        self.ws = ws
        self.rng = rng
        self.variant = [0, 0, 0, 0, 0]  # s1 cmd, s1 outs, s2 cmd, s2 outs, s3 cmd
        self.mine = {}        # path -> bytes the user wrote, still theirs
        self.owed = {}        # (path, blob id) -> bytes: must stay retrievable
        self.index = {}       # (path, blob id) -> commit holding it
        self.seen = set()     # commits indexed
        self.confirmed = {}   # (path, blob id) -> (commit, gc epoch) pipe get read it from
        self.epoch = 0        # bumped by every gc: only gc removes commits
        self.counter = 0

    # ---- the workspace -------------------------------------------------
    def path(self, p):
        return os.path.join(self.ws, p)

    def read(self, p):
        try:
            with open(self.path(p), "rb") as f:
                return f.read()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None

    def release(self, p):
        """The user overwrites or deletes p: what it holds is theirs to
        lose, not pipe's."""
        old = self.read(p)
        if old is not None:
            self.owed.pop((p, git_blob_id(old)), None)

    def user_write(self, p, data):
        full = self.path(p)
        parent = os.path.dirname(full)
        if os.path.isfile(parent) or os.path.islink(parent):
            return False  # a file where the folder would be: skip
        if os.path.isdir(full):
            return False
        os.makedirs(parent, exist_ok=True)
        self.release(p)
        with open(full, "wb") as f:
            f.write(data)
        self.mine[p] = data
        return True

    def user_delete(self, p):
        full = self.path(p)
        if os.path.isdir(full) and not os.path.islink(full):
            for root, _, files in os.walk(full):
                for name in files:
                    self.release(os.path.relpath(os.path.join(root, name),
                                                 self.ws))
            shutil.rmtree(full)
            for k in [k for k in self.mine if k.startswith(p + "/")]:
                del self.mine[k]
        elif os.path.lexists(full):
            self.release(p)
            os.unlink(full)
            self.mine.pop(p, None)

    def content(self, tag):
        self.counter += 1
        return ("%s %d %x\n" % (tag, self.counter,
                                self.rng.getrandbits(48))).encode()

    def write_pipefile(self):
        v = self.variant
        text = (
            "version: 1\n"
            "stages:\n"
            "  s1:\n"
            "    cmd: sh -c '%s%s'\n"
            "    inputs: [in1.txt]\n"
            "    outputs: %s\n"
            "  s2:\n"
            "    cmd: sh -c '%s%s'\n"
            "    inputs: [o1/, in2.txt]\n"
            "    outputs: %s\n"
            "  s3:\n"
            "    cmd: sh -c '%s'\n"
            "    inputs: [d/]\n"
            "    datums: \"d/*.txt\"\n"
            "    outputs: [o3/]\n"
        ) % (S1_CMDS[v[0]], "; echo ran > s1.log" if v[1] else "",
             S1_OUTS[v[1]], S2_CMDS[v[2]],
             "; echo %d > o2b.txt" % v[2] if v[3] else "", S2_OUTS[v[3]],
             S3_CMDS[v[4]])
        with open(self.path("Pipefile"), "w") as f:
            f.write(text)

    # ---- pipe ---------------------------------------------------------
    def oblige(self):
        """A pipe command starts: what the user wrote and is there now
        is owed from here on."""
        for p, data in list(self.mine.items()):
            if self.read(p) == data:
                self.owed[(p, git_blob_id(data))] = data
            else:
                del self.mine[p]

    def settle_mine(self):
        for p, data in list(self.mine.items()):
            if self.read(p) != data:
                del self.mine[p]

    def pipe(self, *args, timeout=120):
        self.oblige()
        r = subprocess.run([PIPE] + list(args), cwd=self.ws,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout)
        self.settle_mine()
        return r

    def pipe_killed(self, *args):
        self.oblige()
        delay = self.rng.uniform(0, 0.06)
        p = subprocess.Popen([PIPE] + list(args), cwd=self.ws,
                             stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        time.sleep(delay)
        try:
            p.send_signal(signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()
        self.settle_mine()
        return delay

    def git(self, *args):
        return subprocess.run(["git", "--git-dir",
                               self.path(".pipe/store")] + list(args),
                              stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL).stdout

    def index_store(self):
        if not os.path.isdir(self.path(".pipe/store")):
            return
        for c in self.git("rev-list", "--all").decode().split():
            if c in self.seen:
                continue
            self.seen.add(c)
            for line in self.git("ls-tree", "-r", c).decode().splitlines():
                meta, name = line.split("\t", 1)
                mode, kind, oid = meta.split()
                if kind == "blob":
                    self.index.setdefault((name, oid), c)

    def runs(self):
        if not os.path.isdir(self.path(".pipe/store")):
            return 0
        return len(self.git("rev-list", "refs/pipe/runs").split())

    def check(self):
        """Every owed version is in the workspace, or `pipe get` gives it
        back from a commit in the store. Returns a list of problems."""
        problems = []
        self.index_store()
        for (p, oid), data in self.owed.items():
            if self.read(p) == data:
                continue
            c, epoch = self.confirmed.get((p, oid), (None, -1))
            if c and (epoch == self.epoch or
                      self.git("cat-file", "-t", c).strip()):
                # pipe get gave it back from c, which is still there
                self.confirmed[(p, oid)] = (c, self.epoch)
                continue
            c = self.index.get((p, oid))
            if c and self.epoch and not self.git("cat-file", "-t",
                                                 c).strip():
                c = None  # removed by gc: look again
            if not c:
                self.seen.clear()
                self.index.clear()
                self.index_store()
                c = self.index.get((p, oid))
            if not c:
                problems.append("%s (%r) is lost" % (p, data[:40]))
                continue
            r = subprocess.run([PIPE, "get", c, p], cwd=self.ws,
                               stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
            if r.returncode != 0 or r.stdout != data:
                problems.append("%s: pipe get %s %s gives %r (exit %d)" %
                                (p, c[:12], p, r.stdout[:40], r.returncode))
            else:
                self.confirmed[(p, oid)] = (c, self.epoch)
        return problems


def step(w, rng):
    """One random step; returns its description and an extra problem."""
    r = rng.random()
    if r < 0.14:
        p = rng.choice(INPUTS)
        w.user_write(p, w.content("input " + p))
        return "edit input %s" % p, None
    if r < 0.26:
        p = rng.choice(OUT_FILES)
        if w.user_write(p, w.content("hand " + p)):
            return "hand-edit output %s" % p, None
        return "hand-edit output %s (skipped)" % p, None
    if r < 0.32:
        p = rng.choice(OUT_FILES + OUT_DIRS)
        w.user_delete(p)
        return "delete output %s" % p, None
    if r < 0.40:
        d = rng.choice(OUT_DIRS)
        p = "%s/extra-%d.txt" % (d, rng.randrange(1000))
        if w.user_write(p, w.content("extra " + p)):
            return "extra file %s" % p, None
        return "extra file %s (skipped)" % p, None
    if r < 0.48:
        k = rng.randrange(5)
        w.variant[k] ^= 1
        w.write_pipefile()
        return "Pipefile: variant %s" % w.variant, None
    if r < 0.72:
        args = ["run", "-k"] + (["-f"] if r >= 0.66 else []) + \
            (["--report", REPORT] if rng.random() < 0.4 else [])
        res = w.pipe(*args)
        if res.returncode == 3:
            return " ".join(args), "exit 3: " + res.stderr.decode()[-300:]
        return "%s (exit %d)" % (" ".join(args), res.returncode), None
    if r < 0.82:
        n = w.runs()
        if not n:
            return "checkout (no runs yet)", None
        ref = "runs~%d" % rng.randrange(n)
        force = rng.random() < 0.5
        args = ["checkout"] + (["--force"] if force else []) + [ref]
        res = w.pipe(*args)
        if res.returncode == 3:
            return " ".join(args), "exit 3: " + res.stderr.decode()[-300:]
        return "%s (exit %d)" % (" ".join(args), res.returncode), None
    if r < 0.84:
        res = w.pipe("gc")
        w.epoch += 1
        return "gc (exit %d)" % res.returncode, None
    # SIGKILL at a random moment of a run or a forced checkout, then a
    # run that must not fail on the lock
    n = w.runs()
    if n and rng.random() < 0.3:
        args = ["checkout", "--force", "runs~%d" % rng.randrange(n)]
    else:
        args = ["run", "-k"] + (["-f"] if rng.random() < 0.3 else [])
    delay = w.pipe_killed(*args)
    res = w.pipe("run", "-k")
    desc = "kill -9 %s after %.0f ms, then run (exit %d)" % (
        " ".join(args), delay * 1000, res.returncode)
    if res.returncode == 3:
        return desc, "exit 3 after a kill: " + res.stderr.decode()[-300:]
    return desc, None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()

    rng = random.Random(a.seed)
    ws = tempfile.mkdtemp(prefix="pipe-ndl.")
    w = World(ws, rng)
    passed = failed = 0
    history = []
    for p in INPUTS:
        w.user_write(p, w.content("input " + p))
    w.write_pipefile()
    t0 = time.time()
    for i in range(a.steps):
        desc, extra = step(w, rng)
        history.append(desc)
        problems = w.check()
        if extra:
            problems.append(extra)
        if problems:
            failed += 1
            print("not ok - seed %d step %d: %s" % (a.seed, i, desc))
            for p in problems:
                print("    " + p)
            print("    last steps: " + " | ".join(history[-8:]))
            break  # later steps would only repeat it
        passed += 1
    kills = sum(1 for h in history if h.startswith("kill"))
    print("# seed %d: %d steps (%d kills, %d owed versions) in %.1fs" %
          (a.seed, len(history), kills, len(w.owed), time.time() - t0))
    if failed == 0:
        print("ok - seed %d: every version the user wrote is retrievable "
              "after each of %d steps" % (a.seed, len(history)))
    if a.keep or failed:
        print("# workspace kept: %s" % ws)
    else:
        shutil.rmtree(ws, ignore_errors=True)
    return passed, failed


if __name__ == "__main__":
    p, f = main()
    print("%d passed, %d failed" % (p, f))
    sys.exit(1 if f else 0)
