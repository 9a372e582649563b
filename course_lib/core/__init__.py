"""The math core: distributions, the surrogate objectives, curvature (Fisher-vector products),
solvers (conjugate gradient, the trust-region step, the line search) and advantages (GAE).

Pure functions of arrays; every module imports only :mod:`course_lib._validate`. The reference
for an engineer reading course_lib as a TRPO/PPO implementation starts here.
"""
