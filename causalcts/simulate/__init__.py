"""Simulated panels with known truth (the generator layer: imports only the data layer)."""

from causalcts.simulate.simulator import OUTCOMES, Simulation, SimulationDesign, Truth, simulate

__all__ = ["OUTCOMES", "Simulation", "SimulationDesign", "Truth", "simulate"]
