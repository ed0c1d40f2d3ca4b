"""`stopped-for-checkpoint` says the PVM stopped for checkpoint n.  The run state
"colo" is also a failover's stop (colo_do_failover stops the VM): after the secondary
died, the primary's take-over stop was logged as "the VM stops for checkpoint 0"."""
import pytest

from protocol.core.events import Checkpoint, Failover, StoppedForCheckpoint
from protocol.sim.config import SimConfig
from protocol.sim.core import Simulation


@pytest.mark.parametrize("fault", ["kill-secondary@vmstate-loaded#2",
                                   "kill-secondary@checkpoint-request#3"])
def test_only_a_checkpoint_stop_is_called_one(fault):
    sim = Simulation(SimConfig(guest="model", checkpoints=4, faults=[fault]))
    sim.run()
    assert sim.outcome() == "failover"
    failover_at = next(e.seq for e in sim.events
                       if type(e) is Failover and e.side == "primary")
    begun = set()
    for e in sim.events:
        if type(e) is Checkpoint and e.side == "primary" and e.phase == "begin":
            begun.add(e.n)
        elif type(e) is StoppedForCheckpoint:
            assert e.n in begun and e.seq < failover_at, e
    assert begun and {e.n for e in sim.events if type(e) is StoppedForCheckpoint}
