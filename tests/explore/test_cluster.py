"""The swarm on a real dask.distributed LocalCluster (2 worker processes)."""
import os
import subprocess
import sys

import pytest

from protocol.sim import runner
from protocol.sim.cluster import ClusterError, run_on_cluster

distributed = pytest.importorskip("distributed")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def cluster():
    os.environ["PYTHONPATH"] = ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as c:
        yield c


def test_a_cluster_gives_the_local_results(cluster):
    seeds = range(100, 124)
    local = runner.run(seeds, workers=1)
    remote = runner.run(seeds, cluster=cluster.scheduler_address)
    assert remote["results"] == local["results"]
    for key in ("seeds", "checkpoints", "violations", "hangs", "outcomes", "coverage"):
        assert remote[key] == local[key]
    assert remote["workers"] == "cluster " + cluster.scheduler_address


def test_explore_cluster_from_the_cli(cluster):
    r = subprocess.run([sys.executable, "-m", "colo_tui", "explore", "--swarm", "12",
                        "--cluster", cluster.scheduler_address],
                       capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "seeds 12" in r.stdout and "cluster" in r.stdout


def test_an_unreachable_scheduler_is_a_clear_error():
    with pytest.raises(ClusterError, match="cannot reach the Dask scheduler at tcp://"):
        run_on_cluster("tcp://127.0.0.1:9", iter([[1]]), lambda batch: None,
                       runner.Budget(None), timeout_s=2)
