"""Gradient-based sensitivity of cluster demographics to the population and to the selection.

Everything here is a pure, differentiable JAX function of the population
hyperparameters Λ and of a **shift of the selection's inputs**
``δ = (δ log M [dex], δ log T [dex], δ A_V [mag])``: the selection that would
hold if every cluster were seen with its inputs displaced by δ,

    p_obs^δ(log M, log T, A_V) = p_obs(log M + δ_M, log T + δ_T, A_V + δ_A).

Two shifts have a direct physical reading:

* a **magnitude-limit (depth) offset** Δm [mag] (positive = deeper): at fixed
  age and extinction a cluster's magnitudes scale as -2.5 log M, so a survey
  Δm deeper sees a cluster of mass M as the original survey sees one of mass
  M · 10^(0.4 Δm): ``δ_M = 0.4 Δm`` (:func:`depth_shift`).  This is exact when
  the selection acts on magnitudes at fixed colours (every band deeper by the
  same Δm);
* an **extinction offset** δ_A [mag]: the selection of clusters that all carry
  δ_A more extinction than their catalogue A_V (e.g. an error in the foreground
  or in the extinction law's zero point).

The shift is applied to the population instead of the grid,
``∫ p_obs(θ + δ) p(θ|Λ) dθ = ∫ p_obs(θ') p(θ' - δ|Λ) dθ'``, i.e. the
quadrature weights of :func:`~jaxcomp.demographics.quadrature_weights` are taken
on the nodes ``x - δ``: the p_obs table is never interpolated, and the result is
smooth in δ (not piecewise linear between grid nodes).

Contents
--------
This module is the public home of the names below (import them from here or from
:mod:`jaxcomp.demographics`); the code lives in three modules:

* :mod:`~jaxcomp.demographics.sensitivity_integrals`: :func:`expected_detected` (N_exp),
  :func:`detection_fraction_shifted` (α), and :func:`intensity_grid` (expected detected
  clusters per grid cell); :func:`corrected_bin_counts`: completeness-corrected counts per
  bin (eq. 17-18, clipped, unmasked) as a differentiable function of Λ and δ;
  :func:`depth_shift` and :class:`ParameterSpace`;
* :mod:`~jaxcomp.demographics.sensitivity_fisher`:
  :func:`fisher_information` and :func:`fisher_forecast`: the Fisher matrix of
  the inhomogeneous Poisson likelihood (``F = ∫ ∂λ ∂λᵀ / λ dθ``, by the same
  quadrature as N_exp) and σ(Λ) against survey depth;
* :mod:`~jaxcomp.demographics.sensitivity_max_likelihood`:
  :func:`maximum_likelihood` and :func:`shift_sensitivity`: the maximum-likelihood
  (= MAP under the flat priors, = Laplace mean) hyperparameters of a catalogue, their
  Laplace covariance, and their derivatives with respect to δ by the implicit
  function theorem, ``dΛ̂/dδ = -H_ΛΛ⁻¹ H_Λδ``.

Parameter vectors
-----------------
Fisher matrices and optimisers work on a flat vector (:class:`ParameterSpace`):
the model's scalar hyperparameters in :attr:`PopulationModel.scalar_parameters`
order, then ``log10_N`` (Fisher only: the total number is always a parameter of
the Poisson process, whatever ``model.likelihood`` says), then, for a piecewise
p(A_V), the first K-1 bin probabilities ``av_weights[0..K-2]`` (the last is one
minus their sum).
"""

from .sensitivity_fisher import FisherResult, fisher_forecast, fisher_information
from .sensitivity_integrals import (
    ParameterSpace,
    corrected_bin_counts,
    depth_shift,
    detection_fraction_shifted,
    expected_detected,
    intensity_grid,
)
from .sensitivity_max_likelihood import MaximumLikelihood, maximum_likelihood, shift_sensitivity

__all__ = [
    "ParameterSpace",
    "FisherResult",
    "MaximumLikelihood",
    "depth_shift",
    "detection_fraction_shifted",
    "expected_detected",
    "intensity_grid",
    "corrected_bin_counts",
    "fisher_information",
    "fisher_forecast",
    "maximum_likelihood",
    "shift_sensitivity",
]
