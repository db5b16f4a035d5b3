"""Tests of scripts/capacity.py against a hand-worked example."""
import math
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import capacity as c  # noqa: E402


# A record with round numbers: one-hop coin 100 µs end to end, 80 µs in kernels, of which
# hash_to_g1 50 µs; 2 threads give 1.8× one thread.
R = c.Record(engine_1t_us=100.0, kernels_1t_us=80.0, hash_to_g1_us=50.0, thread_scaling=1.8, threads=2)


class HandWorked(unittest.TestCase):
    def test_coin_costs(self):
        # u = (80 - 50) / 3 = 10 µs; overhead 100/80 = 1.25.
        self.assertAlmostEqual(c.signature_unit_us(R), 10.0)
        self.assertAlmostEqual(c.coin_cost_us(R, 1, False), 100.0)  # (50 + 3·10)·1.25
        self.assertAlmostEqual(c.coin_cost_us(R, 2, False), 112.5)  # (50 + 4·10)·1.25
        # Allowance on a 2-hop coin: 2 tokens × (50 + 20) more kernel µs.
        self.assertAlmostEqual(c.coin_cost_us(R, 2, True), (90 + 140) * 1.25)

    def test_cores_for_a_day(self):
        w = c.Workload(coins_per_day=86_400_000, peak_to_average=2, hops_mix={1: 1.0})
        # Peak: 1000 coins/s × 2 = 2000/s. One core: 10 000 coins/s × efficiency 0.9 = 9000/s,
        # at 70 % utilisation 6300/s → 1 core.
        self.assertAlmostEqual(c.peak_rate(w), 2000.0)
        self.assertEqual(c.cores_needed(R, w), 1)
        w.coins_per_day *= 10  # 20 000/s at peak → 20 000 / 6300 = 3.17 → 4 cores
        self.assertEqual(c.cores_needed(R, w), 4)
        self.assertEqual(c.plan(R, w)["servers"], 1)

    def test_storage(self):
        w = c.Workload(coins_per_day=1_000_000, hops_mix={1: 1.0}, retention_epochs=2, epoch_days=30)
        # 30 M serials per epoch → slots ≥ 40 M → 2^26 = 67 108 864 × 40 B = 2.5 GiB table.
        self.assertEqual(c.table_bytes(30_000_000), 2**26 * 40)
        self.assertEqual(c.spent_set_ram_bytes(w), 2 * (2**26 * 40 + 2 * 30_000_000))
        # Journal: 98 + 32·2 = 162 B per receipt; batches 900 B per record kept 7 days.
        self.assertAlmostEqual(c.receipt_bytes(w), 162.0)
        self.assertAlmostEqual(c.disk_bytes(w, 1), 162e6 + 900e6 + 2**26 * 40)

    def test_stages_name_the_bottleneck(self):
        self.assertEqual(c.plan(R, c.Workload(coins_per_day=1e6))["bottleneck_stage"], "n/a")
        doc = {"per_coin": {"engine_1t_us": 100.0, "kernels_1t_us": 80.0},
               "primitives_us": {"hash_to_g1": 50.0}, "ratios": {"thread_scaling": 1.8},
               "threads": 2, "stages_1t_us": {"hash_to_g1": 50.0, "pallas_check": 20.0}}
        r = c.Record.from_json(doc)
        self.assertEqual(c.plan(r, c.Workload(coins_per_day=1e6))["bottleneck_stage"],
                         "hash_to_g1 (50.0 µs)")

    def test_measured_points_are_the_record_and_log_scale_when_demand_is_tiny(self):
        # 100 µs per coin: 10 000/s on one thread, 18 000/s on the record's 2 threads.
        self.assertEqual(c.measured_points(R), [(1, 10_000.0), (2, 18_000.0)])
        line = [c.throughput(R, c.Workload(coins_per_day=1e6), k) for k in range(1, 65)]
        self.assertTrue(c.log_scale(line, 1.0))
        self.assertFalse(c.log_scale(line, max(line) / 2))

    def test_hops_mix_parsing(self):
        self.assertEqual(c.parse_hops_mix("1:80,2:15,3:5"), {1: 80.0, 2: 15.0, 3: 5.0})
        with self.assertRaises(ValueError):
            c.parse_hops_mix("1:0")

    def test_plots_are_written(self):
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            self.skipTest("matplotlib not installed (.ci/run installs it)")
        with tempfile.TemporaryDirectory() as d:
            paths = c.plots(R, c.Workload(coins_per_day=1e7), d)
            self.assertEqual(len(paths), 2)
            for p in paths:
                with open(p, "rb") as f:
                    self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")


if __name__ == "__main__":
    unittest.main()


class Cluster(unittest.TestCase):
    CR = c.ClusterRecord(raw_bytes_per_coin=1000.0, seq_bytes_per_coin=300.0,
                         votes_bytes_per_coin=0.0, single_machine_coins_per_s=20_000.0, cores=2)

    def test_a_million_coins_per_second(self):
        # 1 M coins/s at peak (86.4 G/day, peak-to-average 1), one-hop coins.
        w = c.Workload(coins_per_day=86_400_000_000, peak_to_average=1, hops_mix={1: 1.0})
        p = c.cluster_plan(self.CR, w, c.ClusterLimits(), R)
        # Workers: 1 M / 6300 per core (R above) → 159 cores → 10 servers of 16.
        self.assertEqual(p["worker_cores"], 159)
        self.assertEqual(p["worker_servers"], 10)
        # Streams: 1000 MB/s of raw records over 5 work streams; 300 MB/s of global order.
        self.assertAlmostEqual(p["work_stream_mb_s"], 1000.0)
        self.assertEqual(p["work_streams"], 5)
        self.assertAlmostEqual(p["seq_stream_mb_s"], 300.0)
        # PostgreSQL: 2 M rows/s over 100 k per primary.
        self.assertEqual(p["pg_primaries"], 20)
        # The bottleneck is the one with the highest demand over capacity: PG at 20×.
        self.assertTrue(p["bottleneck"].startswith("one PostgreSQL primary at 20.00x"), p["bottleneck"])

    def test_without_a_bench_record_workers_come_from_the_cluster_record(self):
        w = c.Workload(coins_per_day=864_000_000, peak_to_average=1, hops_mix={1: 1.0})
        # 10 000 coins/s / (10 000 per core × 0.7) → 2 cores.
        p = c.cluster_plan(self.CR, w, c.ClusterLimits())
        self.assertEqual(p["worker_cores"], 2)
        self.assertEqual(p["nats_nodes"], 3)

    def test_the_cli_prints_the_cluster_plan(self):
        import contextlib
        import io
        import json
        with tempfile.TemporaryDirectory() as d:
            rec = os.path.join(d, "r.json")
            crec = os.path.join(d, "c.json")
            json.dump({"per_coin": {"engine_1t_us": 100.0, "kernels_1t_us": 80.0},
                       "primitives_us": {"hash_to_g1": 50.0}, "ratios": {"thread_scaling": 1.8},
                       "threads": 2}, open(rec, "w"))
            json.dump({"raw_bytes_per_coin": 1000.0, "single_machine_coins_per_s": 20000.0,
                       "machine": {"cores": 2}, "runs": [{"seq_bytes_per_coin": 300.0,
                                                          "votes_bytes_per_coin": 0.5}]}, open(crec, "w"))
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                self.assertEqual(c.main(["--record", rec, "--cluster", crec, "--coins-per-day", "1e9"]), 0)
            self.assertIn("bottleneck", out.getvalue())
            self.assertIn("worker_servers", out.getvalue())
