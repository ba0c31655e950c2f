"""The fleet simulator: plausible, messy, deterministic EV telemetry with known truth.

``simulate_fleet(SimConfig(...), storage)`` writes raw provider messages to ``temp/`` and the
truth to ``truth/``; ``tesla_payloads(config)`` yields Fleet Telemetry payloads for a Kafka
producer. See docs/simulator.md for what is simulated.
"""

from bibev.sim.feed import TeslaPayload, tesla_payloads
from bibev.sim.run import SimConfig, SimSummary, default_start, run_sim, simulate_fleet

__all__ = [
    "SimConfig",
    "SimSummary",
    "TeslaPayload",
    "default_start",
    "run_sim",
    "simulate_fleet",
    "tesla_payloads",
]
