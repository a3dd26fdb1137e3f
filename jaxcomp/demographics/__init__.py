"""Stage 4-5 of the pipeline: population distributions, marginalised completeness, corrected
CMF/CAF.

* :mod:`~jaxcomp.demographics.distributions`: NumPyro distributions of log_mass,
  log_age and av (power law, Schechter, broken power law, piecewise constant), from
  :mod:`~jaxcomp.demographics.distributions_power_law`,
  :mod:`~jaxcomp.demographics.distributions_schechter`,
  :mod:`~jaxcomp.demographics.distributions_av` and their shared
  :mod:`~jaxcomp.demographics.distributions_base`.
* :mod:`~jaxcomp.demographics.marginalise`: p_obs cached on a 3-D grid
  (:class:`SelectionGrid`) and its jitted, differentiable marginals
  (Tang et al. 2026, eq. 14-16), and the p(A_V) estimate of section 4.4.1.
* :mod:`~jaxcomp.demographics.corrections`: completeness-corrected CMF and CAF
  (eq. 17-18) as astropy tables, and their plot.
* :mod:`~jaxcomp.demographics.correct`: :func:`correct_catalogue`, the one correction
  recipe (float64 marginals, per-cluster interpolation, eq. 17-18) of the command line,
  the workflow, ``inference/`` and the notebooks.
* :mod:`~jaxcomp.demographics.models`: :class:`PopulationModel`, the hierarchical
  population model (functional forms, supports, priors, likelihood options).
* :mod:`~jaxcomp.demographics.likelihood`: the selection-normalised likelihood
  (Mandel, Farr & Gair 2019) with p_obs on a quadrature grid, and the NumPyro model.
* :mod:`~jaxcomp.demographics.fit`: :func:`fit_population` (NumPyro NUTS;
  :mod:`~jaxcomp.demographics.fit_posterior`: the draws made into a result);
  :mod:`~jaxcomp.demographics.fit_result`: its :class:`FitResult` (ArviZ InferenceData,
  r_hat / ESS / divergences, posterior predictive checks, :func:`plot_ppc`, :func:`plot_pair`).
* :mod:`~jaxcomp.demographics.multifield_model` / :mod:`~jaxcomp.demographics.multifield`:
  several fields, each with its own selection grid, in one hierarchical model
  (:class:`MultiFieldModel`: complete, partial or no pooling; centred or non-centred
  per-field values, :mod:`~jaxcomp.demographics.multifield_parametrisation`), :func:`fit_fields`,
  and PSIS-LOO comparison of the pooling forms (:func:`compare_pooling`);
  :mod:`~jaxcomp.demographics.multifield_selection`: each field's likelihood averaged
  over its own selection ensemble (``MultiFieldFitter(selection_uncertainty="ensemble")``);
  :mod:`~jaxcomp.demographics.sufficient_statistics`: the per-cluster sum of an exact
  catalogue's log density from a few sufficient statistics (the sampler's O(1) likelihood).
* :mod:`~jaxcomp.demographics.selection_uncertainty`: p_obs of every ensemble member on
  one grid, the likelihood averaged over them and the diagnostics of every fit.
* :mod:`~jaxcomp.demographics.simulate`: simulated catalogues for validation.
* :mod:`~jaxcomp.demographics.sensitivity`: derivatives of N_exp, corrected counts and
  maximum-likelihood hyperparameters with respect to Λ and to a shift of the
  selection's inputs (depth, extinction); Fisher forecasts against survey depth
  (:mod:`~jaxcomp.demographics.sensitivity_integrals`,
  :mod:`~jaxcomp.demographics.sensitivity_fisher`,
  :mod:`~jaxcomp.demographics.sensitivity_max_likelihood`).
"""

from .catalogue import load_catalogue, restrict_to_model, validate_catalogue
from .correct import CorrectionResult, correct_catalogue, marginal_completeness
from .corrections import (
    AGE_CLIP,
    AGE_MIN_MEAN,
    MASS_CLIP,
    corrected_age_function,
    corrected_counts,
    corrected_mass_function,
    plot_corrected_distribution,
)
from .distributions import (
    AV_RANGE,
    LOG_AGE_RANGE,
    LOG_MASS_RANGE,
    BrokenPowerLawLogAge,
    PiecewiseConstantAV,
    PowerLawLogAge,
    PowerLawLogMass,
    SchechterLogMass,
)
from .fit import PopulationFitter, fit_population
from .fit_result import FitResult, plot_pair, plot_ppc
from .likelihood import (
    LikelihoodGrid,
    PopulationData,
    detection_fraction,
    expected_number,
    log_likelihood,
    pointwise_log_likelihood,
    population_model,
    prepare_data,
)
from .marginalise import (
    PAPER_GRID_SHAPE,
    PHYSICAL_AXES,
    AVEstimate,
    SelectionGrid,
    estimate_av_distribution,
    interpolate_marginal,
    normalised_quadrature,
    p_corr_log_age,
    p_corr_log_mass,
    p_obs_mass_age,
    quadrature_weights,
)
from .models import DEFAULT_PRIORS, PopulationModel
from .multifield import (
    MultiFieldFitter,
    MultiFieldResult,
    compare_pooling,
    fit_fields,
    plot_shrinkage,
)
from .multifield_model import POOLING_FORMS, MultiFieldData, MultiFieldModel, stack_fields
from .multifield_output import write_multifield_outputs
from .multifield_parametrisation import PARAMETRISATIONS
from .multifield_selection import (
    field_ensemble_log_likelihoods,
    field_member_log_likelihoods,
    field_selection_diagnostics,
)
from .selection_uncertainty import (
    SELECTION_UNCERTAINTY,
    TALBOT_GOLOMB_VARIANCE,
    MemberFits,
    ensemble_log_likelihood,
    ensemble_members,
    fit_members,
    mean_member_grid,
    member_grid,
    member_likelihood_grid,
    member_log_likelihoods,
    member_selection_grid,
    over_members,
    plan_campaign_size,
    selection_diagnostics,
    stack_member_grids,
)
from .sensitivity import (
    FisherResult,
    MaximumLikelihood,
    ParameterSpace,
    corrected_bin_counts,
    depth_shift,
    detection_fraction_shifted,
    expected_detected,
    fisher_forecast,
    fisher_information,
    intensity_grid,
    maximum_likelihood,
    shift_sensitivity,
)
from .simulate import sample_population, simulate_catalogue, smoothed_selection
from .sufficient_statistics import (
    CatalogueSummary,
    is_summarisable,
    summarise_catalogue,
    summary_log_likelihood,
)

__all__ = [
    "CorrectionResult",
    "correct_catalogue",
    "marginal_completeness",
    "load_catalogue",
    "restrict_to_model",
    "validate_catalogue",
    "AGE_CLIP",
    "AGE_MIN_MEAN",
    "AV_RANGE",
    "AVEstimate",
    "BrokenPowerLawLogAge",
    "LOG_AGE_RANGE",
    "LOG_MASS_RANGE",
    "MASS_CLIP",
    "PAPER_GRID_SHAPE",
    "PHYSICAL_AXES",
    "PiecewiseConstantAV",
    "PowerLawLogAge",
    "PowerLawLogMass",
    "SchechterLogMass",
    "SelectionGrid",
    "corrected_age_function",
    "corrected_counts",
    "corrected_mass_function",
    "estimate_av_distribution",
    "interpolate_marginal",
    "p_corr_log_age",
    "p_corr_log_mass",
    "p_obs_mass_age",
    "plot_corrected_distribution",
    "normalised_quadrature",
    "quadrature_weights",
    "DEFAULT_PRIORS",
    "FitResult",
    "LikelihoodGrid",
    "PopulationData",
    "PopulationFitter",
    "PopulationModel",
    "detection_fraction",
    "expected_number",
    "fit_population",
    "log_likelihood",
    "plot_pair",
    "plot_ppc",
    "pointwise_log_likelihood",
    "population_model",
    "prepare_data",
    "sample_population",
    "simulate_catalogue",
    "smoothed_selection",
    "FisherResult",
    "MaximumLikelihood",
    "ParameterSpace",
    "corrected_bin_counts",
    "depth_shift",
    "detection_fraction_shifted",
    "expected_detected",
    "fisher_forecast",
    "fisher_information",
    "intensity_grid",
    "maximum_likelihood",
    "shift_sensitivity",
    "PARAMETRISATIONS",
    "POOLING_FORMS",
    "MultiFieldData",
    "MultiFieldFitter",
    "MultiFieldModel",
    "MultiFieldResult",
    "compare_pooling",
    "fit_fields",
    "plot_shrinkage",
    "field_ensemble_log_likelihoods",
    "field_member_log_likelihoods",
    "field_selection_diagnostics",
    "write_multifield_outputs",
    "stack_fields",
    "SELECTION_UNCERTAINTY",
    "TALBOT_GOLOMB_VARIANCE",
    "ensemble_log_likelihood",
    "ensemble_members",
    "mean_member_grid",
    "member_grid",
    "member_likelihood_grid",
    "member_log_likelihoods",
    "member_selection_grid",
    "over_members",
    "plan_campaign_size",
    "selection_diagnostics",
    "MemberFits",
    "fit_members",
    "stack_member_grids",
    "CatalogueSummary",
    "is_summarisable",
    "summarise_catalogue",
    "summary_log_likelihood",
]
