"""Test-wide settings: rank promotion raises, so a silent [T,1] + [T] broadcast is a failure."""

import jax

jax.config.update("jax_numpy_rank_promotion", "raise")
