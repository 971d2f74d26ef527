"""Measurements: shift invariance, locality and rotation equivariance, usable from Python.

=====================  =====================================================================
module                 what it measures
=====================  =====================================================================
:mod:`.shift`          planar equivariance error vs shift, consistency, the border band,
                       the absolute-position test (Kayhan & van Gemert 2020)
:mod:`.locality`       theoretical vs gradient receptive field, effective receptive fields
                       (Luo et al. 2016) and their growth with depth, kernel, dilation, stride
                       (from :mod:`.receptive_field` and :mod:`.erf`)
:mod:`.sphere`         equivariance under exact grid symmetries and random rotations (beside the
                       interpolation floor), spherical effective receptive fields
=====================  =====================================================================

Every probe takes a model and tensors (or a grid and a size), runs on the model's device and
returns plain numbers or small dataclasses; the Hydra experiments call them through
:mod:`geoconv.experiment.jobs`.
"""

from geoconv.probes.locality import (
    effective_receptive_field,
    erf_std,
    erf_sweep,
    gradient_support,
    layers_of,
    loglog_slope,
    theoretical_receptive_field,
    uniform_erf_variance,
)
from geoconv.probes.position import absolute_position_test, border_profile, consistency, predicted_border_band
from geoconv.probes.shift import ShiftCurve, shift_equivariance
from geoconv.probes.sphere import (
    ERF_CENTRES,
    RotationResult,
    centroid_offset,
    erf_radii,
    geodesic_radius,
    plot_sphere_map,
    rotation_error,
    spherical_erf,
    symmetry_error,
)

__all__ = [
    "ERF_CENTRES",
    "RotationResult",
    "ShiftCurve",
    "absolute_position_test",
    "border_profile",
    "centroid_offset",
    "consistency",
    "effective_receptive_field",
    "erf_radii",
    "erf_std",
    "erf_sweep",
    "geodesic_radius",
    "gradient_support",
    "layers_of",
    "loglog_slope",
    "plot_sphere_map",
    "predicted_border_band",
    "rotation_error",
    "shift_equivariance",
    "spherical_erf",
    "symmetry_error",
    "theoretical_receptive_field",
    "uniform_erf_variance",
]
