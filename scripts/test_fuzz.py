"""A short, bounded fuzz pass over every cargo-fuzz target (scripts/fuzz.sh --smoke).

Each target first replays its committed corpus (fuzz/corpus/<target>/: every input that once
reached new code, so a regression on any of them fails here), then fuzzes for a few
seconds. The long runs (>= 1 M executions per target) are `scripts/fuzz.sh --long`.

cargo-fuzz needs the nightly toolchain; where nightly or cargo-fuzz is missing (stable-only
CI) the test is skipped and says so — the rest of the suite does not depend on it.
"""
import os
import re
import subprocess
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECONDS = os.environ.get("MC_FUZZ_SECONDS", "5")


def have_cargo_fuzz():
    try:
        out = subprocess.run(["cargo", "+nightly", "fuzz", "--version"], capture_output=True,
                             timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0


@unittest.skipUnless(have_cargo_fuzz(),
                     "nightly toolchain or cargo-fuzz missing (rustup toolchain install nightly;"
                     " cargo install cargo-fuzz): fuzz smoke pass skipped")
class FuzzSmoke(unittest.TestCase):
    def test_every_target_survives_its_corpus_and_a_short_run(self):
        out = subprocess.run(["bash", os.path.join(ROOT, "scripts", "fuzz.sh"), "--smoke",
                              SECONDS], capture_output=True, text=True, timeout=3600)
        report = out.stdout + out.stderr
        self.assertEqual(out.returncode, 0, "fuzz smoke pass failed:\n" + report[-20000:])
        targets = subprocess.run(["cargo", "+nightly", "fuzz", "list"], cwd=os.path.join(ROOT, "fuzz"),
                                 capture_output=True, text=True).stdout.split()
        self.assertGreaterEqual(len(targets), 11)
        for t in targets:
            self.assertIn(f"== {t}:", report, f"{t} was not run")
        # Every run replayed its corpus and ended normally (libFuzzer's final statistics),
        # having executed at least the committed inputs.
        executed = [int(n) for n in re.findall(r"stat::number_of_executed_units: (\d+)", report)]
        self.assertEqual(len(executed), len(targets), report[-5000:])
        for t, n in zip(targets, executed):
            corpus = len(os.listdir(os.path.join(ROOT, "fuzz", "corpus", t)))
            self.assertGreaterEqual(n, corpus, f"{t}: {n} executions for {corpus} corpus inputs")


if __name__ == "__main__":
    unittest.main()
