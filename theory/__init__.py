"""Closed-form and symbolic results for MAML on linear models.

Every public quantity here has a Monte-Carlo or autograd twin in ``simulations/``
with the same name stem and the same parameters (a ``LinearTaskFamily``).
"""
