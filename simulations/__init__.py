"""Torch simulations: task samplers, models, functional MAML, and the Monte-Carlo twins
of every closed form in ``theory/``. Nothing here evaluates the closed form it checks."""
