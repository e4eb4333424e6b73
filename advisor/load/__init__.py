"""Load on a serving replica: the one load model and what checks it.

- demand.py: what the user asks (N users, an arrival rate, an offline batch), resolved once;
- costs.py: the StepCosts protocol the engines' speed models implement;
- schedulers.py: the load model, per kind of scheduler: the figures the plan reads;
- closed_forms.py: M/D/1, M/M/c, mean-value analysis, saturation: building blocks and checks;
- simulation.py, replica.py: the discrete-event simulation the model is checked against.
"""

from advisor.load.costs import StepCosts
from advisor.load.demand import Demand, Mode
from advisor.load.schedulers import (
    SCHEDULERS,
    ContinuousBatching,
    FixedSlots,
    Load,
    OneAtATime,
    Scheduler,
    amdahl_step,
)

__all__ = ["SCHEDULERS", "ContinuousBatching", "Demand", "FixedSlots", "Load", "Mode", "OneAtATime", "Scheduler",
           "StepCosts", "amdahl_step"]
