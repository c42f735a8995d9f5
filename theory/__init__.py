"""Closed-form and symbolic results for MAML on linear models.

One module per result (a "stem"): wishart_moments, wishart_words, shallow_maml, preconditioned_maml,
deep_linear, depth2_maml, logistic, scalar_deep, bayes_floor, anil_width, finite_tasks, fixed_points, dynamics
(how meta-training gets there), linear_attention (in-context learning as one meta-learned step),
meta_sgd (a meta-learned step size per parameter: the best diagonal preconditioner), ridge_maml (iMAML's
proximal inner problem: the ridge loss, the posterior mean, the best λ). Each stem has,
under the same name, simulations/twins/<stem>.py (Monte-Carlo or autograd twins of its quantities, same
parameters, never computed from the closed form), simulations/checks/<stem>.py (its ``verify`` checks, named
``<stem>.<quantity>``) and tests/test_<stem>.py; tests/test_layout.py keeps it so.
The other modules are the ground the stems stand on: task_family (the one LinearTaskFamily that
theory and simulation share), structured_family (the same families stored in O(d r) numbers where Σx is
diagonal and Σw diagonal or of rank r, with the closed forms of ``explore --theory-only`` in O(d r²): the stems'
dense forms at any d, held to them by tests/test_structured_family.py), latex (the formulas) and the package
``ground``, the floor every layer imports (errors, the statistics constants and comparison rules, atomic
writes, command-line options).
"""
