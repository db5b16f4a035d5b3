"""The cluster end to end (scripts/cluster-check.sh): two generated days cleared on 3 nats
nodes, PostgreSQL, 2 workers and 4 partition owners give the single machine's verdicts and
credits; and again with a nats node, a worker and a partition owner killed -9 and
restarted during each day.

Needs nats-server and PostgreSQL (Debian's packages; `.ci/run` installs them and sets
MICROCASH_REQUIRE_CLUSTER=1, which turns a missing tool into a failure, not a skip)."""

import glob
import os
import shutil
import subprocess
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHECK = os.path.join(ROOT, "scripts", "cluster-check.sh")


def missing_tools():
    missing = [t for t in ("nats-server", "curl", "psql") if shutil.which(t) is None]
    if not glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        missing.append("initdb (postgresql)")
    return missing


class ClusterCheck(unittest.TestCase):
    def setUp(self):
        missing = missing_tools()
        if missing:
            if os.environ.get("MICROCASH_REQUIRE_CLUSTER") == "1":
                self.fail(f"cluster tools missing: {', '.join(missing)}")
            self.skipTest(f"cluster tools missing: {', '.join(missing)}")

    def run_check(self, *args):
        env = dict(os.environ, MICROCASH_CLUSTER_DIR=f"/tmp/microcash-test-cluster-{os.getpid()}")
        proc = subprocess.run(
            [CHECK, "--coins", "4000", *args],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
        )
        out = proc.stdout + proc.stderr
        self.assertEqual(proc.returncode, 0, out[-4000:])
        return out

    def test_cluster_verdicts_equal_the_single_machine(self):
        out = self.run_check()
        self.assertIn("day 1: 4000 records, 0 verdicts differ, credits equal", out)
        self.assertIn("day 2: 4000 records, 0 verdicts differ, credits equal", out)

    def test_cluster_survives_kill_9_of_a_node_a_worker_and_an_owner(self):
        out = self.run_check("--kill", "--seed", "3")
        self.assertEqual(out.count("kill -9"), 6, out[-3000:])
        self.assertIn("through the faults", out)


if __name__ == "__main__":
    unittest.main()
