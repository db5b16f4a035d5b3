"""Contract tests against a live `microcash serve`: schemathesis drives it from
docs/openapi.yaml, and `promtool check metrics` reads its /metrics.

Every operation gets a bounded number of generated requests (valid and invalid ones) with
every check schemathesis has: no 5xx, answers match their documented status codes, schemas
and headers, invalid data is refused, valid data is not refused except with the statuses
listed in scripts/contract/schemathesis.toml. Zero failures are allowed.

The tests need the release binary (`cargo test --workspace --release` builds it, README's
test command runs this afterwards), schemathesis (`.ci/run` installs it from PyPI) and
promtool (Debian's `prometheus` package; `.ci/run` tries to install it); when one is
missing its test is skipped with the reason.
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(ROOT, "target", "release", "microcash")
SPEC = os.path.join(ROOT, "docs", "openapi.yaml")
CONFIG = os.path.join(ROOT, "scripts", "contract", "schemathesis.toml")
# Examples per operation: enough to reach every status an operation documents, small
# enough for CI (about half a minute on two cores).
MAX_EXAMPLES = int(os.environ.get("MC_CONTRACT_EXAMPLES", "30"))


def have_schemathesis():
    try:
        import schemathesis  # noqa: F401
    except ImportError:
        return False
    return True


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def microcash(*args):
    out = subprocess.run([BINARY, *args], capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise AssertionError(f"microcash {' '.join(args)} failed: {out.stderr}")
    return out.stdout


def token(prefix, text):
    m = re.search(rf"\b{prefix}_[0-9a-f]+\b", text)
    if not m:
        raise AssertionError(f"no {prefix}_ token in: {text!r}")
    return m.group(0)


@unittest.skipUnless(os.path.exists(BINARY), f"{BINARY} missing: run cargo build --release first")
class LiveServer(unittest.TestCase):
    """Starts an issuer with an account, a partner and an admin token, and serves it."""
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="mc-contract-")
        self.server = None

    def tearDown(self):
        if self.server is not None:
            self.server.terminate()
            self.log.close()
            try:
                self.server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.server.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def start_server(self):
        issuer = os.path.join(self.tmp, "issuer")
        microcash("issuer", "init", "--issuer", issuer)
        microcash("account", "create", "alice", "--issuer", issuer)
        account = token("mct", microcash("account", "create", "bob", "--issuer", issuer))
        microcash("account", "fund", "bob", "5000", "--issuer", issuer)
        partner = token("mcp", microcash("partner", "create", "bank", "--issuer", issuer))
        admin = "mca_" + os.urandom(16).hex()
        admin_file = os.path.join(self.tmp, "admin-token")
        with open(os.open(admin_file, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(admin + "\n")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        self.log = open(os.path.join(self.tmp, "serve.log"), "w")
        self.server = subprocess.Popen(
            [BINARY, "serve", "--addr", f"127.0.0.1:{port}", "--store", issuer,
             "--admin-token-file", admin_file],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if self.server.poll() is not None or time.time() > deadline:
                raise AssertionError("server did not start: " + open(self.log.name).read())
            time.sleep(0.2)
        return url, {"MC_PARTNER_TOKEN": partner, "MC_ACCOUNT_TOKEN": account,
                     "MC_ADMIN_TOKEN": admin}


@unittest.skipUnless(have_schemathesis(), "schemathesis not installed (pip install schemathesis)")
class Contract(LiveServer):
    def test_every_operation_keeps_the_documented_contract(self):
        url, tokens = self.start_server()
        env = dict(os.environ, **tokens)
        cmd = [sys.executable, "-m", "schemathesis.cli", "--config-file", CONFIG, "run", SPEC,
               "--url", url, "--checks", "all", "--max-examples", str(MAX_EXAMPLES),
               "--seed", "1", "--no-color"]
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=self.tmp,
                             timeout=900)
        report = out.stdout + out.stderr
        if os.environ.get("MC_CONTRACT_VERBOSE"):
            print(report)
        self.assertEqual(out.returncode, 0, "schemathesis found failures:\n" + report)
        # Guard against a run that tested nothing (a spec that failed to load, a config
        # that filtered every operation out).
        m = re.search(r"(\d+) generated", report)
        self.assertTrue(m and int(m.group(1)) > 100, "too few cases generated:\n" + report)
        self.assertEqual(self.server.poll(), None, "the server died during the run")


@unittest.skipUnless(shutil.which("promtool"), "promtool not installed (apt-get install prometheus)")
class Metrics(LiveServer):
    def test_metrics_pass_promtool(self):
        url, _ = self.start_server()
        # Traffic first, so request counters and histograms have series (a 404 included).
        for path in ("/healthz", "/v1/keys", "/no-such-route"):
            try:
                urllib.request.urlopen(url + path, timeout=5).read()
            except urllib.error.HTTPError:
                pass
        with urllib.request.urlopen(url + "/metrics", timeout=5) as r:
            text = r.read()
        self.assertIn(b"# TYPE microcash_http_request_duration_seconds histogram", text)
        self.assertIn(b"# TYPE process_cpu_seconds_total counter", text)
        out = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                             timeout=60)
        self.assertEqual(out.returncode, 0,
                         "promtool: " + (out.stdout + out.stderr).decode(errors="replace"))


if __name__ == "__main__":
    unittest.main()
